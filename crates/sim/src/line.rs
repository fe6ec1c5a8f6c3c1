//! The device side of the "line" family: a LabCore-style analyzer with a legacy bootloader.
//! Sans-IO: bytes in (with the time they arrived), bytes out plus the time the work took.
//!
//! What the device does, and why:
//! - In its application it answers the text commands of its profile, one reply line each,
//!   terminated by CRLF: `*IDN?` -> `LABCORE,<model>,<serial>,<hardware revision>`,
//!   `VER?` -> `FW <firmware version> BL <bootloader version>` (`FW NONE` when no valid
//!   firmware is in flash), `SUM?` -> `SHA256 <hex>` (the SHA-256 of the firmware in flash, as
//!   a bootloader's checksum command computes it; `SHA256 NONE` with no firmware),
//!   `STATUS?` -> `RUN=0|1` (whether an assay runs). Anything else gets
//!   `ERR UNKNOWN COMMAND`. The profile's regular expressions read these replies; a test
//!   checks that they do.
//! - `BOOT UPDATE` hands over to the bootloader, which answers `READY YMODEM` and becomes a
//!   YMODEM-1K receiver (from `fieldkit-wire`), or `ERR BUSY` while an assay runs.
//! - The bootloader writes in place, as ST AN4657 does: block 0 erases the whole application
//!   area (the state file then holds no firmware), which is why the ACK of block 0 comes late;
//!   data blocks are written as they come. The file must be an MCUboot image (header, payload,
//!   SHA-256 TLV): the device reads its version from the header and checks the hash, which is
//!   how a device with no slots still knows, and reports, what it runs. Anything else leaves
//!   the device with no valid firmware, in its bootloader, where the next `BOOT UPDATE` still
//!   works: an interrupted update cannot make the device unrecoverable, only not running.
//! - When the transfer ends (end of batch, or failure) the device reboots: into the new
//!   firmware if it is valid, else back into the bootloader, which answers the same queries.
//!   A USB link loss (cable pull) aborts the transfer at once, as a USB-CDC device notices it.
//!
//! The faults of issue 7 act on the device's answers: a lost ACK, an ACK that arrives as NAK
//! (so the device sees a duplicate block), a NAK storm on the first block, and an erase delay
//! before the ACK of block 0. Cable pulls and line damage live in the IO loop.

use std::time::{Duration, Instant};

use fieldkit_profile::{FieldValue, Profile};
use fieldkit_wire::line::LineSplitter;
use fieldkit_wire::ymodem::{self, Receiver, ReceiverConfig, RxEvent, Status, Wait};
use sha2::{Digest, Sha256};

use crate::fault::Faults;
use crate::state::{DeviceState, SlotImage, short_hash};

/// How long the bootloader waits at each step before asking again. Short compared with real
/// bootloaders' seconds: the simulator serves tests.
fn wait_time(wait: Wait) -> Duration {
    Duration::from_millis(match wait {
        Wait::Start => 1_000,
        Wait::InBlock => 500,
        Wait::Purge => 100,
        _ => 3_000,
    })
}

/// Consecutive timeouts before the bootloader gives a transfer up.
const RX_RETRIES: u32 = 20;

/// What one call produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Bytes to send, after `busy` and the line's turnaround latency.
    pub bytes: Vec<u8>,
    /// Time the device spent (flash erase and write).
    pub busy: Duration,
    /// Lines for the simulator's log and for tests waiting on events.
    pub events: Vec<String>,
    /// Whether persistent state changed and must be saved.
    pub state_changed: bool,
    /// Whether the device reboots once `bytes` have left.
    pub reboot: bool,
}

/// A transfer in the bootloader.
#[derive(Debug)]
struct Upload {
    rx: Receiver,
    data: Vec<u8>,
    /// Whether block 0 arrived and the application area was erased.
    erased: bool,
    naks_left: u32,
}

/// A simulated line-family device.
#[derive(Debug)]
pub struct LineDevice {
    /// Persistent state; image 0's primary slot is the firmware in place.
    pub state: DeviceState,
    profile: Profile,
    faults: Faults,
    lines: LineSplitter,
    bootloader: bool,
    upload: Option<Upload>,
    /// When the bootloader last heard or did something, for its timeouts.
    last_activity: Instant,
    replies: u64,
}

impl LineDevice {
    /// A device of `profile` with `state`, running its firmware if it has a valid one.
    pub fn new(profile: Profile, state: DeviceState, faults: Faults) -> LineDevice {
        let mut d = LineDevice {
            state,
            profile,
            faults,
            lines: LineSplitter::default(),
            bootloader: false,
            upload: None,
            last_activity: Instant::now(),
            replies: 0,
        };
        d.bootloader = d.firmware().is_none();
        d
    }

    /// The firmware in place, if valid.
    pub fn firmware(&self) -> Option<&SlotImage> {
        self.state.image(0).and_then(|s| s.primary.as_ref())
    }

    /// Whether the bootloader (not the application) is running.
    pub fn in_bootloader(&self) -> bool {
        self.bootloader
    }

    /// When the bootloader's next timeout falls, if a transfer is under way.
    pub fn deadline(&self) -> Option<Instant> {
        self.upload
            .as_ref()
            .map(|u| self.last_activity + wait_time(u.rx.waiting_for()))
    }

    /// Bytes arrived at `now`.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Output {
        let mut out = Output::default();
        if let Some(up) = &mut self.upload {
            up.rx.receive(bytes);
            self.drive(&mut out);
            self.last_activity = now + out.busy;
            return out;
        }
        self.lines.push(bytes);
        while let Some(line) = self.lines.next_line() {
            match line {
                Ok(command) => self.command(command.trim(), &mut out),
                Err(_) => self.reply("ERR LINE TOO LONG", &mut out),
            }
            if self.upload.is_some() {
                // The sender waits for READY before sending: anything after the command is
                // line noise, not YMODEM.
                self.lines.clear();
                self.last_activity = now + out.busy;
                break;
            }
        }
        out
    }

    /// Time passed: runs the bootloader's timeouts.
    pub fn poll(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        if self.deadline().is_some_and(|d| now >= d) {
            if let Some(up) = &mut self.upload {
                up.rx.timeout();
            }
            self.drive(&mut out);
            self.last_activity = now + out.busy;
        }
        out
    }

    /// The device restarts: RAM is lost, and it boots its firmware if valid.
    pub fn reboot(&mut self) -> Vec<String> {
        self.upload = None;
        self.lines.clear();
        self.state.boot_count += 1;
        self.bootloader = self.firmware().is_none();
        vec![match self.firmware() {
            Some(fw) => format!("booted firmware {}", fw.version),
            None => "no valid firmware: staying in the bootloader".into(),
        }]
    }

    /// The USB link went away (cable pull): a transfer under way is abandoned.
    pub fn link_reset(&mut self) -> Vec<String> {
        self.lines.clear();
        match self.upload.take() {
            Some(up) => vec![format!(
                "USB link lost: transfer abandoned after {} bytes{}",
                up.data.len(),
                if up.erased {
                    "; no valid firmware, the bootloader waits for a new upload"
                } else {
                    ""
                }
            )],
            None => Vec::new(),
        }
    }

    fn command(&mut self, command: &str, out: &mut Output) {
        let s = &self.state;
        let running = !self.bootloader
            && self
                .faults
                .fields
                .get("therapy_running")
                .or(s.fields.get("therapy_running"))
                == Some(&FieldValue::Bool(true));
        let is = |c: &str| command.eq_ignore_ascii_case(c);
        if is("*IDN?") {
            let text = format!(
                "LABCORE,{},{},{}",
                s.model,
                s.text("serial"),
                s.text("hardware_revision")
            );
            self.reply(&text, out);
        } else if is("VER?") {
            let fw = self
                .firmware()
                .map_or_else(|| "NONE".to_owned(), |f| f.version.clone());
            let text = format!("FW {fw} BL {}", s.text("bootloader_version"));
            self.reply(&text, out);
        } else if is("SUM?") {
            // The SHA-256 of the firmware as it is in flash, computed by the device; a
            // `field=firmware_sha256=...` fault reports another value (flash that reads back
            // other bytes than were written).
            let sum = match self.faults.fields.get("firmware_sha256") {
                Some(v) => v.to_string(),
                None => self.firmware().map_or_else(
                    || "NONE".to_owned(),
                    |f| hex::encode(Sha256::digest(&f.bytes)),
                ),
            };
            self.reply(&format!("SHA256 {sum}"), out);
        } else if is("STATUS?") {
            self.reply(&format!("RUN={}", u8::from(running)), out);
        } else if is("BOOT UPDATE") {
            if running {
                out.events
                    .push("update refused: an assay is running".into());
                self.reply("ERR BUSY", out);
                return;
            }
            self.reply("READY YMODEM", out);
            self.bootloader = true;
            let mut rx = Receiver::new(ReceiverConfig {
                max_size: u64::from(*self.profile.device.slot_size.get_ref()),
                max_retries: RX_RETRIES,
                ..ReceiverConfig::default()
            });
            out.bytes.extend(rx.transmit().unwrap_or_default());
            self.upload = Some(Upload {
                rx,
                data: Vec::new(),
                erased: false,
                // A storm happens once, like the other faults: the next attempt goes through.
                naks_left: std::mem::take(&mut self.faults.nak_storm),
            });
            out.events.push("bootloader: ready for YMODEM".into());
        } else {
            self.reply("ERR UNKNOWN COMMAND", out);
        }
    }

    fn reply(&mut self, text: &str, out: &mut Output) {
        self.replies += 1;
        if self.faults.never_answer
            || self
                .faults
                .lose_reply
                .is_some_and(|n| self.replies.is_multiple_of(n))
        {
            out.events.push(format!("reply {text:?} lost (fault)"));
            return;
        }
        out.busy += Duration::from_millis(self.faults.answer_late_ms);
        out.bytes.extend_from_slice(text.as_bytes());
        out.bytes.extend_from_slice(b"\r\n");
    }

    /// Takes the receiver's events and answers, applying flash timing and faults.
    fn drive(&mut self, out: &mut Output) {
        let erase = self.erase_time() + Duration::from_millis(self.faults.erase_delay_ms);
        let write_rate = u64::from(self.profile.simulator.write_kib_per_s.max(1)) * 1024;
        let Some(up) = &mut self.upload else {
            return;
        };
        // The data block this answer is about, if it is a new one or a repeat.
        let mut about: Option<u64> = None;
        while let Some(event) = up.rx.poll_event() {
            match event {
                RxEvent::FileStart { header } => {
                    let what = header.as_ref().map_or_else(
                        || "an XMODEM file".to_owned(),
                        |h| format!("{} ({} bytes)", h.name, h.size.unwrap_or(0)),
                    );
                    out.busy += erase;
                    up.erased = true;
                    up.data.clear();
                    if let Some(slots) = self.state.image_mut(0) {
                        slots.primary = None;
                    }
                    out.state_changed = true;
                    out.events.push(format!(
                        "upload of {what}: application area erased in {} ms",
                        erase.as_millis()
                    ));
                }
                RxEvent::Data { block, bytes } => {
                    out.busy += Duration::from_micros(bytes.len() as u64 * 1_000_000 / write_rate);
                    up.data.extend_from_slice(&bytes);
                    about = Some(block);
                }
                RxEvent::Duplicate { block } => {
                    if block > 0 {
                        out.events.push(format!(
                            "block {block} received again: acknowledged, not written twice"
                        ));
                    }
                    about = Some(block);
                }
                RxEvent::FileEnd { received } if self.faults.write_ignored => {
                    out.events.push(format!(
                        "received {received} bytes; flash not written (fault)"
                    ));
                }
                RxEvent::FileEnd { received } => {
                    out.state_changed = true;
                    out.events
                        .push(install(&mut self.state, &up.data, received));
                }
            }
        }
        let mut bytes = up.rx.transmit().unwrap_or_default();
        if bytes == [ymodem::ACK]
            && let Some(block) = about
        {
            if up.naks_left > 0 && block == 1 {
                up.naks_left -= 1;
                bytes = vec![ymodem::NAK];
                out.events
                    .push("block 1 refused with NAK (fault: NAK storm)".into());
            } else if self.faults.lose_ack == Some(block) {
                self.faults.lose_ack = None;
                bytes.clear();
                out.events
                    .push(format!("ACK of block {block} lost (fault)"));
            } else if self.faults.duplicate_block == Some(block) {
                self.faults.duplicate_block = None;
                bytes = vec![ymodem::NAK];
                out.events.push(format!(
                    "ACK of block {block} garbled into NAK: the sender will repeat it (fault)"
                ));
            }
        }
        out.bytes.extend(bytes);
        match up.rx.status().clone() {
            Status::Running => {}
            Status::Done => {
                self.upload = None;
                out.reboot = true;
                out.events.push("transfer complete: rebooting".into());
            }
            Status::Failed(e) => {
                self.upload = None;
                out.reboot = true;
                out.events.push(format!("transfer failed: {e}: rebooting"));
            }
        }
    }

    /// The bootloader erases the whole application area, whatever the file's size.
    fn erase_time(&self) -> Duration {
        let sim = &self.profile.simulator;
        let sectors = u64::from(*self.profile.device.slot_size.get_ref()).div_ceil(4096);
        Duration::from_micros(sectors * u64::from(sim.erase_us_per_sector))
    }
}

/// Checks the received file as the bootloader does and installs it in place; returns the event.
fn install(state: &mut DeviceState, data: &[u8], received: u64) -> String {
    // An XMODEM file keeps its padding: the image's own header says where it ends.
    let exact = fieldkit_mcuboot::Image::parse(data).map(|i| i.as_bytes().to_vec());
    let result = exact.and_then(SlotImage::from_bytes);
    let Some(slots) = state.image_mut(0) else {
        return "no image 0 in the device state".into();
    };
    match result {
        Ok(slot) => {
            let event = format!(
                "firmware {} written ({received} bytes, hash {})",
                slot.version,
                short_hash(&slot.hash)
            );
            slots.primary = Some(slot);
            slots.primary_confirmed = true;
            event
        }
        Err(e) => {
            slots.primary = None;
            format!("received {received} bytes, not a valid firmware image: {e}")
        }
    }
}

#[cfg(test)]
mod tests;
