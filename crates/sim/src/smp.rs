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

/// The SMP server a simulated device runs: its application, or MCUboot's serial recovery.
#[derive(Debug)]
pub enum Server {
    /// A Zephyr application with MCUmgr (swap mode below).
    Application(crate::zephyr::ZephyrDevice),
    /// MCUboot's serial recovery, which boots `application` on reset when slot 0 holds a
    /// valid image.
    Recovery {
        /// The bootloader.
        bootloader: crate::boot_serial::BootSerial,
        /// The profile of the application, when known.
        application: Option<Box<fieldkit_profile::Profile>>,
    },
}

impl Server {
    /// The persistent state.
    pub fn state(&self) -> &crate::state::DeviceState {
        match self {
            Server::Application(d) => &d.state,
            Server::Recovery { bootloader, .. } => &bootloader.state,
        }
    }

    /// The size of one SMP buffer, as advertised.
    pub fn buf_size(&self) -> usize {
        match self {
            Server::Application(d) => d.buf_size(),
            Server::Recovery { bootloader, .. } => bootloader.buf_size(),
        }
    }

    /// The number of SMP buffers, as advertised.
    pub fn buf_count(&self) -> usize {
        match self {
            Server::Application(d) => d.buf_count(),
            Server::Recovery { bootloader, .. } => bootloader.buf_count(),
        }
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Packet) -> Reply {
        match self {
            Server::Application(d) => d.handle(req),
            Server::Recovery { bootloader, .. } => bootloader.handle(req),
        }
    }

    /// Restarts the device: the bootloader runs, and the application starts if it can.
    /// From serial recovery, a valid image in slot 0 boots the application (MCUboot enters
    /// recovery only when asked to, or when there is nothing valid to boot).
    pub fn reboot(&mut self, faults: &crate::fault::Faults) -> Vec<String> {
        match self {
            Server::Application(d) => d.reboot(),
            Server::Recovery {
                bootloader,
                application,
            } => {
                let mut events = bootloader.reboot();
                match application {
                    Some(app) if bootloader.application_valid() => {
                        let mut state = bootloader.state.clone();
                        // The application reports what the bootloader cannot (battery, ...).
                        for (name, v) in &app.simulator.fields {
                            state
                                .fields
                                .entry(name.clone())
                                .or_insert_with(|| v.get_ref().clone());
                        }
                        events.push(format!(
                            "slot 0 is valid: MCUboot boots the application ({})",
                            app.id()
                        ));
                        *self = Server::Application(crate::zephyr::ZephyrDevice::new(
                            (**app).clone(),
                            state,
                            faults.clone(),
                        ));
                    }
                    _ => events.push("MCUboot stays in serial recovery".into()),
                }
                events
            }
        }
    }
}
