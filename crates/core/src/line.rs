//! The client side of the "line" family: text commands with regex-read replies, and firmware
//! upload by YMODEM-1K through the device's bootloader.
//!
//! Everything device-specific comes from the profile's `[line_protocol]`: the commands, the
//! patterns their replies must match (named groups are identity fields, `version_<component>`
//! groups are component versions), the command that enters the bootloader and the reply that
//! says it is ready. [`LineClient`] owns the link and those settings; [`identify`] reads an
//! [`Identity`]; [`ymodem_upload`] enters the bootloader and sends one file with the
//! `fieldkit-wire` YMODEM sender, falling back to XMODEM-1K when the receiver asks for it.
//! [`LineDriver`] is the family's [`crate::driver::Driver`]: identify, then apply a step by
//! YMODEM in place and read the device back after it restarts by itself.
//!
//! Before each command the client drops whatever the device sent unasked (boot banners, the
//! answers to an earlier client's probing), then takes the first line that is not the echo of
//! the command as the reply: a device that answers something else is reported with what it
//! said and what was required, at once, rather than after a timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use fieldkit_link::Link;
use fieldkit_profile::{
    Family, FieldSource, Identity, LineProtocol, Profile, ProfileSet, SlotState,
};
use fieldkit_wire::line::{self as wire_line, Fields, LineSplitter, Pattern};
use fieldkit_wire::ymodem::{self, Check, Protocol, Sender, Status, Wait};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::apply::{ApplyError, Connector, ImageToInstall, StepOutcome};
use crate::identify::{IdentifyError, Reported, Typed, assemble, identity};
use crate::progress::{Cancel, Progress, Stage};

/// Longest wait between two checks of the cancel flag during an upload.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Why a line-family exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The profile is not a line-family profile.
    #[error("profile {0} has no [line_protocol]: it is not a line-family device")]
    NotLine(String),
    /// A pattern or command in the profile cannot be used.
    #[error("profile {profile}: {source}")]
    Profile {
        /// Profile id.
        profile: String,
        /// What is wrong.
        #[source]
        source: wire_line::LineError,
    },
    /// No reply in time.
    #[error("{what}: no reply within {} ms: is the device powered, in service mode, and on this port?", .after.as_millis())]
    Timeout {
        /// The command.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// The device answered something other than what the profile requires.
    #[error("{what}: the device answered {found:?}, required a reply matching {required}")]
    UnexpectedReply {
        /// The command.
        what: String,
        /// The reply line.
        found: String,
        /// The profile's pattern.
        required: String,
    },
    /// The reply could not be read as a line.
    #[error("{what}: {source}")]
    BadLine {
        /// The command.
        what: String,
        /// What was wrong with it.
        #[source]
        source: wire_line::LineError,
    },
    /// A field's value has the wrong form.
    #[error("{what}: field {field} is {found:?}, required {required}")]
    BadField {
        /// The command.
        what: String,
        /// The field.
        field: String,
        /// The value received.
        found: String,
        /// What it must look like.
        required: &'static str,
    },
    /// The port closed (cable pulled, device reset its USB).
    #[error("{what}: the device disconnected: check the cable, then try again")]
    Disconnected {
        /// What was under way.
        what: String,
    },
    /// Reading or writing the port failed.
    #[error("{what}: port error: {source}")]
    Io {
        /// What was under way.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The YMODEM transfer failed.
    #[error("firmware upload failed after {acked} of {total} bytes: {source}")]
    Upload {
        /// Bytes the device acknowledged.
        acked: u64,
        /// Bytes of the file.
        total: u64,
        /// What went wrong.
        #[source]
        source: ymodem::YmodemError,
    },
    /// The caller cancelled the upload; the device was told with CAN CAN.
    #[error("firmware upload cancelled after {acked} of {total} bytes")]
    Cancelled {
        /// Bytes the device acknowledged.
        acked: u64,
        /// Bytes of the file.
        total: u64,
    },
}

impl LineError {
    /// A short machine-readable kind, for JSON output and the UI's `{kind, message}`.
    pub fn kind(&self) -> &'static str {
        match self {
            LineError::NotLine(_) | LineError::Profile { .. } => "profile",
            LineError::Timeout { .. } => "timeout",
            LineError::UnexpectedReply { .. }
            | LineError::BadLine { .. }
            | LineError::BadField { .. } => "device",
            LineError::Disconnected { .. } => "disconnected",
            LineError::Io { .. } => "io",
            LineError::Upload { .. } => "upload",
            LineError::Cancelled { .. } => "cancelled",
        }
    }
}

/// What an upload achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Bytes delivered and acknowledged.
    pub bytes: u64,
    /// Protocol used in the end (XMODEM if the receiver asked for the fallback).
    pub protocol: Protocol,
    /// Block check used in the end.
    pub check: Check,
    /// Time from the bootloader's first request to the last acknowledgement.
    pub elapsed: Duration,
}

/// A session with a line-family device.
pub struct LineClient<L> {
    link: L,
    profile: String,
    settings: LineProtocol,
    response: Duration,
    first_block: Duration,
    char_time: Duration,
    lines: LineSplitter,
    buf: Vec<u8>,
}

impl<L: Link> LineClient<L> {
    /// A client for a device of `profile` over `link`.
    pub fn new(link: L, profile: &Profile) -> Result<LineClient<L>, LineError> {
        let settings = profile
            .line_protocol
            .clone()
            .ok_or_else(|| LineError::NotLine(profile.id().to_owned()))?;
        let bits = profile.line.bits_per_char();
        let baud = (*profile.line.baud.get_ref()).max(1);
        Ok(LineClient {
            link,
            profile: profile.id().to_owned(),
            settings,
            response: Duration::from_millis(profile.timeouts.response_ms),
            first_block: Duration::from_millis(profile.timeouts.first_chunk_ms),
            char_time: Duration::from_secs_f64(f64::from(bits) / f64::from(baud)),
            lines: LineSplitter::default(),
            buf: vec![0; 4096],
        })
    }

    /// Gives the link back.
    pub fn into_inner(self) -> L {
        self.link
    }

    /// Sends `command` and reads its reply, which must match `pattern`; returns the named
    /// groups that took part.
    pub async fn query(
        &mut self,
        command: &str,
        pattern: &str,
        timeout: Duration,
    ) -> Result<Fields, LineError> {
        let pattern = Pattern::new(pattern).map_err(|source| LineError::Profile {
            profile: self.profile.clone(),
            source,
        })?;
        let line = self.exchange(command, timeout).await?;
        pattern
            .fields(&line)
            .ok_or_else(|| LineError::UnexpectedReply {
                what: command.to_owned(),
                found: line,
                required: pattern.as_str().to_owned(),
            })
    }

    /// Drops stale input, sends a command and returns the first reply line that is not its
    /// echo.
    async fn exchange(&mut self, command: &str, timeout: Duration) -> Result<String, LineError> {
        let bytes = wire_line::command(command, &self.settings.eol).map_err(|source| {
            LineError::Profile {
                profile: self.profile.clone(),
                source,
            }
        })?;
        self.drain(command).await?;
        self.write(command, &bytes).await?;
        let deadline = Instant::now() + timeout + self.wire_time(bytes.len() + 256);
        loop {
            while let Some(line) = self.lines.next_line() {
                let line = line.map_err(|source| LineError::BadLine {
                    what: command.to_owned(),
                    source,
                })?;
                if line.trim() != command {
                    return Ok(line.trim().to_owned());
                }
            }
            match self.read(command, deadline).await? {
                Some(n) => {
                    let chunk = self.buf[..n].to_vec();
                    self.lines.push(&chunk);
                }
                None => {
                    return Err(LineError::Timeout {
                        what: command.to_owned(),
                        after: timeout,
                    });
                }
            }
        }
    }

    /// Discards whatever the device has already sent.
    async fn drain(&mut self, what: &str) -> Result<(), LineError> {
        self.lines.clear();
        loop {
            match tokio::time::timeout(Duration::ZERO, self.link.read(&mut self.buf)).await {
                Ok(Ok(0)) => {
                    return Err(LineError::Disconnected { what: what.into() });
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_error(what, e)),
                Err(_) => return Ok(()),
            }
        }
    }

    async fn write(&mut self, what: &str, bytes: &[u8]) -> Result<(), LineError> {
        self.link
            .write_all(bytes)
            .await
            .map_err(|e| io_error(what, e))?;
        self.link.flush().await.map_err(|e| io_error(what, e))
    }

    /// Reads into `buf` until `deadline`: `Some(n)` bytes, or `None` at the deadline.
    async fn read(&mut self, what: &str, deadline: Instant) -> Result<Option<usize>, LineError> {
        match tokio::time::timeout_at(deadline, self.link.read(&mut self.buf)).await {
            Err(_) => Ok(None),
            Ok(Ok(0)) => Err(LineError::Disconnected { what: what.into() }),
            Ok(Ok(n)) => Ok(Some(n)),
            Ok(Err(e)) => Err(io_error(what, e)),
        }
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        self.char_time * bytes as u32
    }

    /// Sends the profile's "enter bootloader" command and checks the reply; returns the bytes
    /// that followed the reply line (the start of the bootloader's YMODEM requests).
    pub async fn enter_bootloader(&mut self) -> Result<Vec<u8>, LineError> {
        let q = self.settings.enter_bootloader.clone();
        self.query(&q.command, q.reply.get_ref(), self.response)
            .await?;
        Ok(self.lines.take_rest())
    }
}

fn io_error(what: &str, e: std::io::Error) -> LineError {
    use std::io::ErrorKind::*;
    let gone = matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | UnexpectedEof
    ) || e.raw_os_error() == Some(5) // EIO: the other side of a pseudo-terminal went away
        || e.raw_os_error() == Some(19); // ENODEV: the USB adapter vanished
    if gone {
        LineError::Disconnected { what: what.into() }
    } else {
        LineError::Io {
            what: what.into(),
            source: e,
        }
    }
}

/// Reads the identity of a line-family device: every query of the profile, in order. The
/// profile's `from = "line"` fields are named capture groups of the replies;
/// `version_<component>` groups are the components' versions.
pub async fn identify<L: Link>(
    client: &mut LineClient<L>,
    profile: &Profile,
    usb_serial: Option<String>,
    typed: &Typed,
) -> Result<Identity, IdentifyError> {
    if profile.family() != Family::Line {
        return Err(LineError::NotLine(profile.id().to_owned()).into());
    }
    let mut captures: BTreeMap<String, String> = BTreeMap::new();
    for q in client.settings.queries.clone() {
        let got = client
            .query(&q.command, q.reply.get_ref(), client.response)
            .await?;
        captures.extend(got);
    }
    let fields = assemble(
        profile,
        |name, spec| match spec.from.get_ref() {
            FieldSource::Line => captures.get(spec.key_or(name)).cloned().map(Reported::Text),
            _ => None,
        },
        usb_serial,
        typed,
    )?;
    // A line device has one slot per component, written in place: what runs is what is
    // there, nothing is pending and nothing can revert. A component whose version group did
    // not match (`FW NONE`) has no valid image, so it has no slot.
    let slots = profile
        .components
        .iter()
        .filter_map(|c| {
            let version = captures
                .get(&format!("version_{}", c.name.get_ref()))?
                .clone();
            Some(SlotState {
                image: *c.image.get_ref(),
                slot: 0,
                component: Some(c.name.get_ref().clone()),
                version,
                hash: String::new(),
                bootable: true,
                pending: false,
                confirmed: true,
                active: true,
                permanent: false,
            })
        })
        .collect();
    identity(profile, fields, slots, None, None)
}

/// Finds the line-family profile of a device with no USB identity: sends each line profile's
/// first query and takes the profile whose pattern matches (and whose model is the one
/// reported, when the pattern reads the model).
pub async fn probe_profile<'p, L: Link>(
    link: &mut L,
    profiles: &'p ProfileSet,
) -> Result<Option<&'p Profile>, LineError> {
    for p in profiles.iter().filter(|p| p.family() == Family::Line) {
        let mut client = LineClient::new(&mut *link, p)?;
        let Some(q) = client.settings.queries.first().cloned() else {
            continue;
        };
        let t = client.response.min(Duration::from_secs(2));
        let model_key = p.field("model").map_or("model", |f| f.key_or("model"));
        match client.query(&q.command, q.reply.get_ref(), t).await {
            Ok(fields) if fields.get(model_key).is_none_or(|m| *m == p.model) => {
                return Ok(Some(p));
            }
            Ok(_) | Err(LineError::UnexpectedReply { .. } | LineError::BadLine { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// How long a YMODEM sender waits at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YmodemTiming {
    /// Any answer but the one to block 0.
    pub response: Duration,
    /// The answer to block 0, which a device gives after erasing its flash.
    pub first_block: Duration,
    /// Time one character takes on the line, added per byte of the block in flight.
    pub char_time: Duration,
}

impl<L: Link> LineClient<L> {
    /// The profile's timing for uploads.
    pub fn timing(&self) -> YmodemTiming {
        YmodemTiming {
            response: self.response,
            first_block: self.first_block,
            char_time: self.char_time,
        }
    }
}

/// Enters the bootloader with the profile's command, then sends `bytes` as `name` by YMODEM-1K
/// (XMODEM-1K when the profile says `upload = "xmodem"`, or when the bootloader asks for the
/// checksum with NAK). `progress` hears the bytes of `component` acknowledged as blocks are;
/// raising `cancel` aborts the transfer with CAN CAN within a tenth of a second.
///
/// Block 0 waits for the profile's `first_chunk_ms` (the device erases before answering);
/// every other step waits `response_ms` plus the block's time on the wire. The device writes
/// in place: a failure after block 0 leaves it in its bootloader with no valid firmware, and
/// the caller retries the whole upload.
pub async fn ymodem_upload<L: Link>(
    client: &mut LineClient<L>,
    name: &str,
    bytes: Vec<u8>,
    component: &str,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<Uploaded, LineError> {
    let protocol = if client.settings.upload == "xmodem" {
        Protocol::Xmodem
    } else {
        Protocol::Ymodem
    };
    let total = bytes.len() as u64;
    let sender = Sender::new(name, bytes, protocol).map_err(|source| LineError::Upload {
        acked: 0,
        total,
        source,
    })?;
    let rest = client.enter_bootloader().await?;
    let timing = client.timing();
    ymodem_send(
        &mut client.link,
        sender,
        &rest,
        timing,
        &mut |acked, total| progress.bytes(component, acked, total),
        cancel,
    )
    .await
}

/// Runs `sender` over `link` against a receiver that is already listening; `initial` holds
/// bytes already read from it (its first `C`, read along with a reply line).
/// `progress(acked, total)` hears the bytes acknowledged.
pub async fn ymodem_send<L: Link>(
    link: &mut L,
    mut sender: Sender,
    initial: &[u8],
    timing: YmodemTiming,
    progress: &mut (dyn FnMut(u64, u64) + Send),
    cancel: &Cancel,
) -> Result<Uploaded, LineError> {
    let what = "firmware upload";
    let total = sender.len();
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    sender.receive(initial);
    loop {
        if cancel.is_cancelled() {
            sender.cancel();
        }
        if let Some(out) = sender.transmit() {
            link.write_all(&out).await.map_err(|e| io_error(what, e))?;
            link.flush().await.map_err(|e| io_error(what, e))?;
        }
        match sender.status() {
            Status::Running => {}
            Status::Done => {
                let (protocol, check) = sender.mode();
                return Ok(Uploaded {
                    bytes: sender.acked(),
                    protocol,
                    check,
                    elapsed: start.elapsed(),
                });
            }
            Status::Failed(ymodem::YmodemError::Cancelled) => {
                return Err(LineError::Cancelled {
                    acked: sender.acked(),
                    total,
                });
            }
            Status::Failed(e) => {
                return Err(LineError::Upload {
                    acked: sender.acked(),
                    total,
                    source: e.clone(),
                });
            }
        }
        let wait = match sender.waiting_for() {
            Wait::HeaderAck => timing.first_block,
            _ => timing.response,
        } + timing.char_time * sender.in_flight() as u32;
        let deadline = Instant::now() + wait;
        loop {
            let slice = (Instant::now() + CANCEL_POLL).min(deadline);
            match tokio::time::timeout_at(slice, link.read(&mut buf)).await {
                Ok(Ok(0)) => return Err(LineError::Disconnected { what: what.into() }),
                Ok(Ok(n)) => {
                    sender.receive(&buf[..n]);
                    progress(sender.acked(), total);
                    break;
                }
                Ok(Err(e)) => return Err(io_error(what, e)),
                Err(_) if Instant::now() >= deadline => {
                    sender.timeout();
                    break;
                }
                Err(_) if cancel.is_cancelled() => break,
                Err(_) => {}
            }
        }
    }
}

/// A device of the line family, reached through a connector: a legacy bootloader that takes
/// the firmware by YMODEM and writes it in place.
pub struct LineDriver<C: Connector> {
    connector: C,
    client: Option<LineClient<C::Link>>,
    profile: Profile,
    typed: Typed,
}

impl<C: Connector> LineDriver<C> {
    /// A device of `profile` reached through `connector`, with the fields the technician typed.
    pub fn new(connector: C, profile: &Profile, typed: Typed) -> LineDriver<C> {
        LineDriver {
            connector,
            client: None,
            profile: profile.clone(),
            typed,
        }
    }

    fn client(&mut self) -> Result<&mut LineClient<C::Link>, IdentifyError> {
        if self.client.is_none() {
            let link = self.connector.connect()?;
            self.client = Some(LineClient::new(link, &self.profile)?);
        }
        Ok(self.client.as_mut().expect("just set"))
    }

    /// Reads the device, waiting up to the profile's reset time for a first answer (the
    /// device may be restarting, or its USB port re-enumerating).
    pub async fn identify(&mut self) -> Result<Identity, IdentifyError> {
        crate::identify::check_typed(&self.profile, &self.typed)?;
        let within = Duration::from_millis(self.profile.timeouts.reset_ms);
        let deadline = Instant::now() + within;
        loop {
            let usb_serial = self.connector.usb_serial();
            let profile = self.profile.clone();
            let typed = self.typed.clone();
            let attempt = match self.client() {
                Ok(client) => identify(client, &profile, usb_serial, &typed).await,
                Err(e) => Err(e),
            };
            // Silence, a vanished port or a dropped line: the device may be restarting.
            let retry = matches!(
                &attempt,
                Err(IdentifyError::Line(
                    LineError::Timeout { .. }
                        | LineError::Disconnected { .. }
                        | LineError::Io { .. },
                ) | IdentifyError::Link(fieldkit_link::LinkError::NotFound { .. }))
            );
            if !retry {
                return attempt;
            }
            self.client = None;
            if Instant::now() >= deadline {
                return Err(IdentifyError::Silent {
                    waited: within,
                    last: attempt.expect_err("a failed attempt").to_string(),
                });
            }
            // The device's time to restart, not a test's.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends each image by YMODEM through the bootloader, then waits for the device to
    /// restart by itself and reads its versions back.
    pub async fn apply(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        let line = |stage| move |source| ApplyError::Line { stage, source };
        for img in images {
            progress.stage(
                Stage::Uploading,
                &format!("sending {} {} by YMODEM", img.component, img.version),
            );
            let client = self.client().map_err(|e| ApplyError::Identify {
                stage: Stage::Uploading,
                source: Box::new(e),
            })?;
            let name = format!("{}-{}.bin", img.component, img.version);
            let result = ymodem_upload(
                client,
                &name,
                img.bytes.to_vec(),
                &img.component,
                progress,
                cancel,
            )
            .await;
            // The bootloader restarts when the transfer ends, whatever its outcome.
            self.client = None;
            match result {
                Ok(_) => {}
                Err(LineError::Cancelled { .. }) => {
                    return Ok(StepOutcome::Cancelled {
                        stage: Stage::Uploading,
                    });
                }
                Err(e) => return Err(line(Stage::Uploading)(e)),
            }
        }
        progress.stage(Stage::WaitingForDevice, "waiting for the device to restart");
        let identity = self.identify().await.map_err(|e| ApplyError::Identify {
            stage: Stage::WaitingForDevice,
            source: Box::new(e),
        })?;
        progress.stage(Stage::ReadingBack, "checking the new firmware's version");
        for img in images {
            let runs = identity
                .slots
                .iter()
                .find(|s| s.component.as_deref() == Some(img.component.as_str()))
                .map(|s| s.version.clone());
            if runs.as_deref() != Some(img.version.as_str()) {
                // An in-place device has nothing to revert to: what runs now is what the
                // transfer left, and it is not what was planned.
                return Ok(StepOutcome::WrongImage {
                    component: img.component.clone(),
                    found: runs.unwrap_or_else(|| "no firmware".into()),
                    required: img.version.clone(),
                });
            }
            if let Some(wrong) = self.wrong_checksum(&identity, img) {
                return Ok(wrong);
            }
        }
        progress.stage(
            Stage::Done,
            "the new firmware was written in place and runs",
        );
        Ok(StepOutcome::AppliedInPlace)
    }
}

impl<C: Connector> LineDriver<C> {
    /// Where the profile declares a field in which the device reports the SHA-256 of a
    /// component's firmware, the read-back requires it to be the SHA-256 of the bytes sent:
    /// the right version with other bytes is the wrong image. A device that does not report
    /// it (or a value the technician typed) cannot prove it, so that is wrong too.
    fn wrong_checksum(&self, identity: &Identity, img: &ImageToInstall) -> Option<StepOutcome> {
        let field = self
            .profile
            .component(&img.component)?
            .sha256_field
            .as_ref()?;
        let sent = hex::encode(Sha256::digest(img.bytes.as_slice()));
        let reported = identity
            .fields
            .get(field.get_ref())
            .filter(|r| !r.typed())
            .map(|r| r.value.to_string().to_ascii_lowercase());
        if reported.as_deref() == Some(sent.as_str()) {
            return None;
        }
        Some(StepOutcome::WrongImage {
            component: img.component.clone(),
            found: format!(
                "{} {}, {} {}",
                img.component,
                img.version,
                field.get_ref(),
                reported.unwrap_or_else(|| "not reported".into())
            ),
            required: format!("{} {sent} (the bytes sent)", field.get_ref()),
        })
    }
}

impl<C: Connector> crate::driver::Driver for LineDriver<C> {
    async fn identify(&mut self) -> Result<Identity, IdentifyError> {
        LineDriver::identify(self).await
    }

    async fn apply(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        LineDriver::apply(self, images, progress, cancel).await
    }
}

#[cfg(test)]
mod tests;
