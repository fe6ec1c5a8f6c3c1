//! What every simulated SMP server hands back to the IO loop: the reply to one request, the
//! flash time it cost, and whether the device restarts.

use std::time::Duration;

use fieldkit_wire::smp::{Header, Packet};

/// What the device does after handling a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Carry on.
    Nothing,
    /// Reboot once the reply has gone out (OS reset).
    Reboot,
    /// Reboot now, without replying (power glitch mid-upload).
    CrashReboot,
}

/// The result of one request.
#[derive(Debug)]
pub struct Reply {
    /// The reply packet, if any.
    pub packet: Option<Packet>,
    /// Time the device spent on it (flash erase and write).
    pub busy: Duration,
    /// What happens next.
    pub after: After,
    /// Lines for the simulator's own log, and for tests waiting on events.
    pub events: Vec<String>,
    /// Whether persistent state changed and must be saved.
    pub state_changed: bool,
}

impl Reply {
    /// A reply not yet decided.
    pub(crate) fn new() -> Reply {
        Reply {
            packet: None,
            busy: Duration::ZERO,
            after: After::Nothing,
            events: Vec::new(),
            state_changed: false,
        }
    }
}

/// Flash timing, from the profile's simulator section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flash {
    pub(crate) erase_us_per_sector: u32,
    pub(crate) write_kib_per_s: u32,
}

impl Flash {
    /// Time to erase `len` bytes, in 4 KiB sectors.
    pub(crate) fn erase_time(&self, len: usize) -> Duration {
        let sectors = len.div_ceil(4096) as u64;
        Duration::from_micros(sectors * u64::from(self.erase_us_per_sector))
    }

    /// Time to write `len` bytes.
    pub(crate) fn write_time(&self, len: usize) -> Duration {
        let rate = u64::from(self.write_kib_per_s.max(1)) * 1024;
        Duration::from_micros(len as u64 * 1_000_000 / rate)
    }
}

/// The reply header for a request, for faults that tamper with it.
pub(crate) fn with_seq(mut p: Packet, seq: u8) -> Packet {
    p.header = Header { seq, ..p.header };
    p
}
