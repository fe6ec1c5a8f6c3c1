//! Applying an update to an SMP device, the MCUboot way: upload to the inactive slot
//! (pipelined, resuming where the device says it is), check the device's hash against the
//! manifest's, mark for test, reset, wait for the device, read back (the new image must run),
//! confirm, read back again. Any failure before the confirmation leaves the old image in charge:
//! MCUboot reverts a tested image that was never confirmed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fieldkit_link::{Link, LinkError};
use fieldkit_profile::Profile;
use fieldkit_wire::framing::Framing;
use fieldkit_wire::smp::{Header, Op, image, os};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::smp::{SessionError, SmpClient};

/// Where an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading the device before touching it.
    Preparing,
    /// Sending the image.
    Uploading,
    /// Comparing the device's hash with the manifest's.
    Verifying,
    /// Marking the new image to be tested at the next boot.
    MarkingForTest,
    /// Resetting the device.
    Resetting,
    /// Waiting for the device to boot.
    WaitingForDevice,
    /// Reading back which image runs.
    ReadingBack,
    /// Making the new image permanent.
    Confirming,
    /// Putting the old image back in charge.
    Reverting,
    /// Finished.
    Done,
}

impl Stage {
    /// The stage in words, for people.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Preparing => "preparing",
            Stage::Uploading => "uploading",
            Stage::Verifying => "verifying the device's copy",
            Stage::MarkingForTest => "marking the new image for a test boot",
            Stage::Resetting => "resetting the device",
            Stage::WaitingForDevice => "waiting for the device to restart",
            Stage::ReadingBack => "reading back the running image",
            Stage::Confirming => "confirming the new image",
            Stage::Reverting => "reverting to the previous image",
            Stage::Done => "done",
        }
    }
}

/// Receives progress; the CLI draws a bar, the app sends it over a channel.
pub trait Progress: Send {
    /// A new stage began.
    fn stage(&mut self, stage: Stage, message: &str);
    /// Bytes of `component` the device has acknowledged, out of `total`.
    fn bytes(&mut self, component: &str, done: u64, total: u64);
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&mut self, _: Stage, _: &str) {}
    fn bytes(&mut self, _: &str, _: u64, _: u64) {}
}

/// A cancellation flag shared between the technician's hand and the session.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not yet raised.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks the session to stop at the next safe point.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Opens (and reopens, after a cable pull or a USB re-enumeration) the link to a device.
pub trait Connector: Send {
    /// The link type.
    type Link: Link;
    /// Opens the link.
    fn connect(&mut self) -> Result<Self::Link, LinkError>;
}

/// A serial port path opened with a profile's line settings.
#[derive(Debug, Clone)]
pub struct PortConnector {
    /// The port.
    pub path: std::path::PathBuf,
    /// Line settings.
    pub line: fieldkit_profile::LineSettings,
}

impl Connector for PortConnector {
    type Link = fieldkit_link::SerialLink;

    fn connect(&mut self) -> Result<Self::Link, LinkError> {
        fieldkit_link::open(&self.path, &self.line)
    }
}

/// Why an update step failed. The old image is still in charge unless `stage` says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The device stopped answering or answered with an error.
    #[error("{} failed: {source}", .stage.label())]
    Session {
        /// Stage reached.
        stage: Stage,
        /// What went wrong.
        #[source]
        source: SessionError,
    },
    /// The port could not be reopened.
    #[error("{} failed: {source}", .stage.label())]
    Link {
        /// Stage reached.
        stage: Stage,
        /// What went wrong.
        #[source]
        source: LinkError,
    },
    /// The device's copy of the image differs from the package's.
    #[error(
        "the device's copy of {component} has hash {found}, the package says {required}: the transfer was damaged; nothing was activated"
    )]
    HashMismatch {
        /// Component.
        component: String,
        /// Hash the device reports.
        found: String,
        /// Hash the manifest declares.
        required: String,
    },
    /// The upload kept failing.
    #[error(
        "uploading {component} failed {attempts} times in a row at byte {offset} of {total}: {last}"
    )]
    UploadStalled {
        /// Component.
        component: String,
        /// Attempts.
        attempts: u32,
        /// Bytes the device holds.
        offset: u64,
        /// Image size.
        total: u64,
        /// The last problem.
        last: String,
    },
}

impl ApplyError {
    /// The stage the update reached.
    pub fn stage(&self) -> Stage {
        match self {
            ApplyError::Session { stage, .. } | ApplyError::Link { stage, .. } => *stage,
            ApplyError::HashMismatch { .. } => Stage::Verifying,
            ApplyError::UploadStalled { .. } => Stage::Uploading,
        }
    }

    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::Session { source, .. } => source.kind(),
            ApplyError::Link { .. } => "link",
            ApplyError::HashMismatch { .. } => "hash_mismatch",
            ApplyError::UploadStalled { .. } => "upload_stalled",
        }
    }
}

/// One image to install.
#[derive(Debug, Clone)]
pub struct ImageToInstall {
    /// Component name.
    pub component: String,
    /// MCUboot image number.
    pub image: u32,
    /// The image bytes, exactly as verified for the plan.
    pub bytes: Arc<Vec<u8>>,
    /// Their SHA-256 as the plan names them (hex).
    pub sha256: String,
    /// The MCUboot image hash the device must report (hex).
    pub image_hash: String,
    /// The version, for messages.
    pub version: String,
}

/// How a step ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The new images run and are confirmed.
    Applied,
    /// The device already ran these images.
    AlreadyInstalled,
    /// The device went back to its previous images.
    Reverted {
        /// The stage at which it was found.
        stage: Stage,
        /// Why, in words.
        reason: String,
    },
    /// The device runs an image that is neither the planned one nor the one it ran before.
    WrongImage {
        /// Component.
        component: String,
        /// What runs (version, and hash where the device reports one).
        found: String,
        /// What the plan installs.
        required: String,
    },
    /// The technician cancelled; the previous images run.
    Cancelled {
        /// Stage at which it was cancelled.
        stage: Stage,
    },
}

/// A device being updated: its link (reopened as needed) and its profile's timeouts.
pub struct Device<C: Connector> {
    connector: C,
    client: Option<SmpClient<C::Link>>,
    framing: Framing,
    timeouts: fieldkit_profile::Timeouts,
    buffers: (usize, usize),
}

/// Attempts of an idempotent request before its timeout is reported.
const REQUEST_ATTEMPTS: u32 = 4;

/// The shortest wait for an upload reply, whatever the round trips measured.
const MIN_RTO: Duration = Duration::from_millis(250);

/// The smallest chunk the upload shrinks to on a noisy line.
const MIN_CHUNK: usize = 256;

/// How many times a stalled or broken upload is resumed before giving up.
const MAX_UPLOAD_ATTEMPTS: u32 = 8;

impl<C: Connector> Device<C> {
    /// A device reached through `connector`, speaking `profile`'s framing with its timeouts.
    pub fn new(connector: C, profile: &Profile) -> Device<C> {
        Device {
            connector,
            client: None,
            framing: crate::identify::framing_of(profile),
            timeouts: profile.timeouts.clone(),
            buffers: (profile.simulator.buf_size as usize, 1),
        }
    }

    fn t(&self) -> Duration {
        Duration::from_millis(self.timeouts.response_ms)
    }

    /// The connected client, opening the link if needed.
    pub fn client(&mut self, stage: Stage) -> Result<&mut SmpClient<C::Link>, ApplyError> {
        if self.client.is_none() {
            let link = self
                .connector
                .connect()
                .map_err(|source| ApplyError::Link { stage, source })?;
            self.client = Some(SmpClient::new(link, self.framing));
        }
        Ok(self.client.as_mut().expect("just set"))
    }

    /// One request, retried on timeout: every request sent through here is idempotent (reads,
    /// marking a hash for test, confirming), so a damaged or lost reply costs a resend only.
    async fn request<Req: Serialize, Rsp: serde::de::DeserializeOwned>(
        &mut self,
        stage: Stage,
        what: &str,
        op: Op,
        group: u16,
        id: u8,
        body: &Req,
    ) -> Result<Rsp, ApplyError> {
        let t = self.t();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client(stage)?
                .request(what, op, group, id, body, t)
                .await;
            match result {
                Ok(r) => return Ok(r),
                Err(SessionError::Timeout { .. }) if attempt < REQUEST_ATTEMPTS => {
                    if let Some(c) = self.client.as_mut() {
                        c.reset_decoder();
                    }
                }
                Err(e) => {
                    if matches!(
                        e,
                        SessionError::Disconnected { .. } | SessionError::Io { .. }
                    ) {
                        self.client = None;
                    }
                    return Err(ApplyError::Session { stage, source: e });
                }
            }
        }
    }

    /// Reads the image state.
    pub async fn image_state(&mut self, stage: Stage) -> Result<image::StateRsp, ApplyError> {
        self.request(
            stage,
            "read image state",
            Op::Read,
            image::GROUP,
            image::STATE,
            &os::Empty {},
        )
        .await
    }

    /// Reads the MCUmgr buffer parameters (falls back to one buffer of the profile's size).
    pub async fn read_buffers(&mut self) -> Result<(), ApplyError> {
        match self
            .request::<_, os::ParamsRsp>(
                Stage::Preparing,
                "read MCUmgr parameters",
                Op::Read,
                os::GROUP,
                os::PARAMS,
                &os::Empty {},
            )
            .await
        {
            Ok(p) => {
                self.buffers = (
                    p.buf_size.max(128) as usize,
                    p.buf_count.clamp(1, 16) as usize,
                );
                let max = self.buffers.0 + 64;
                if let Some(c) = self.client.as_mut() {
                    c.set_max_reply(max);
                }
                Ok(())
            }
            Err(ApplyError::Session {
                source: SessionError::Device { source, .. },
                ..
            }) if source.is_not_supported() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the device answers again (after a reset or a cable pull), reopening the
    /// port while it is gone.
    pub async fn wait_until_back(
        &mut self,
        stage: Stage,
        within: Duration,
    ) -> Result<(), ApplyError> {
        let deadline = tokio::time::Instant::now() + within;
        let probe = Duration::from_millis(500);
        loop {
            let attempt = match self.client(stage) {
                Ok(client) => {
                    client.reset_decoder();
                    let r: Result<os::EchoRsp, SessionError> = client
                        .request(
                            "are you there",
                            Op::Write,
                            os::GROUP,
                            os::ECHO,
                            &os::EchoReq {
                                d: "fieldkit".into(),
                            },
                            probe,
                        )
                        .await;
                    match r {
                        Ok(_) => return Ok(()),
                        Err(e @ (SessionError::Disconnected { .. } | SessionError::Io { .. })) => {
                            self.client = None;
                            ApplyError::Session { stage, source: e }
                        }
                        Err(e) => ApplyError::Session { stage, source: e },
                    }
                }
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(attempt);
            }
            // The port is gone (re-enumerating) or the device is still booting: try again
            // shortly. This is the device's time, not a test's.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uploads `img` to the inactive slot, resuming after timeouts and cable pulls.
    pub async fn upload(
        &mut self,
        img: &ImageToInstall,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<bool, ApplyError> {
        let sha = Sha256::digest(img.bytes.as_slice()).to_vec();
        let mut attempts = 0;
        let mut window = self.buffers.1;
        let mut held = 0u64;
        loop {
            match self.upload_once(img, &sha, window, progress, cancel).await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => return Ok(false), // cancelled
                Err((offset, e)) => {
                    held = held.max(offset);
                    attempts += 1;
                    // A device that loses pipelined requests copes better one at a time.
                    window = 1;
                    let last = e.to_string();
                    if matches!(
                        &e,
                        ApplyError::Session {
                            source: SessionError::Device { .. },
                            ..
                        }
                    ) || matches!(e, ApplyError::HashMismatch { .. })
                    {
                        return Err(e);
                    }
                    if attempts >= MAX_UPLOAD_ATTEMPTS {
                        return Err(ApplyError::UploadStalled {
                            component: img.component.clone(),
                            attempts,
                            offset: held,
                            total: img.bytes.len() as u64,
                            last,
                        });
                    }
                    progress.stage(Stage::Uploading, &format!("{last}; resuming"));
                    let within = Duration::from_millis(self.timeouts.reset_ms);
                    self.wait_until_back(Stage::Uploading, within).await?;
                }
            }
        }
    }

    /// One pass of the upload. `Ok(Some(true))` when complete, `Ok(None)` when cancelled, and
    /// on error the offset the device had acknowledged.
    async fn upload_once(
        &mut self,
        img: &ImageToInstall,
        sha: &[u8],
        mut window: usize,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<Option<bool>, (u64, ApplyError)> {
        let total = img.bytes.len();
        // The device counts the decoded frame (length, packet, CRC) against its buffer.
        let buf_size = self.framing.max_packet(self.buffers.0);
        let stage = Stage::Uploading;
        let fail = |acked: usize| {
            move |source: SessionError| (acked as u64, ApplyError::Session { stage, source })
        };
        let first_timeout = Duration::from_millis(self.timeouts.first_chunk_ms);
        let t = self.t();
        let client = self.client(stage).map_err(|e| (0, e))?;

        // The first chunk carries the length and the hash; a device holding part of this very
        // image answers with the offset to resume from.
        let n = image::max_upload_data(buf_size, Some(img.image), Some(total as u32), 0, Some(sha))
            .min(total);
        let first = image::UploadReq {
            image: Some(img.image),
            len: Some(total as u32),
            off: 0,
            sha: Some(ByteBuf::from(sha.to_vec())),
            data: ByteBuf::from(img.bytes[..n].to_vec()),
            upgrade: None,
        };
        let rsp: image::UploadRsp = match client
            .request(
                "upload",
                Op::Write,
                image::GROUP,
                image::UPLOAD,
                &first,
                first_timeout,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let disconnected = matches!(
                    e,
                    SessionError::Disconnected { .. } | SessionError::Io { .. }
                );
                if disconnected {
                    self.client = None;
                }
                return Err(fail(0)(e));
            }
        };
        let mut acked = (rsp.off as usize).min(total);
        let mut next = acked;
        progress.bytes(&img.component, acked as u64, total as u64);
        if acked == total {
            return self.finish(img, rsp.matched, acked);
        }
        let mut inflight: VecDeque<(Header, usize, tokio::time::Instant)> = VecDeque::new();
        // Retransmission timeout learnt from the replies, as TCP does: a lost chunk on a noisy
        // line then costs a few round trips, not the profile's worst-case response time.
        let mut slowest = Duration::ZERO;
        let mut resyncs = 0;
        let mut chunk_limit = buf_size;
        let mut good_in_a_row = 0;
        while acked < total {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let client = self.client.as_mut().expect("connected above");
            while inflight.len() < window && next < total {
                // Offset 0 starts (or restarts) the upload: it carries the length and hash.
                let (len, sha_field) = if next == 0 {
                    (Some(total as u32), Some(sha))
                } else {
                    (None, None)
                };
                let room = image::max_upload_data(
                    chunk_limit,
                    Some(img.image),
                    len,
                    next as u32,
                    sha_field,
                );
                let n = room.min(total - next);
                let req = image::UploadReq {
                    image: Some(img.image),
                    len,
                    off: next as u32,
                    sha: sha_field.map(|s| ByteBuf::from(s.to_vec())),
                    data: ByteBuf::from(img.bytes[next..next + n].to_vec()),
                    upgrade: None,
                };
                let packet = match client
                    .send("upload", Op::Write, image::GROUP, image::UPLOAD, &req)
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        self.client = None;
                        return Err(fail(acked)(e));
                    }
                };
                inflight.push_back((packet.header, next + n, tokio::time::Instant::now()));
                next += n;
            }
            let headers: Vec<Header> = inflight.iter().map(|(h, _, _)| *h).collect();
            let rto = if slowest.is_zero() {
                t
            } else {
                (slowest * 4).clamp(MIN_RTO, t)
            };
            let reply = match client.receive_any("upload", &headers, rto).await {
                Ok(p) => p,
                Err(SessionError::Timeout { .. }) => {
                    // Lost request or reply: fall back to one at a time from what is
                    // acknowledged, in smaller chunks, which a noisy line damages less often.
                    window = 1;
                    chunk_limit = (chunk_limit / 2).max(MIN_CHUNK.min(buf_size));
                    good_in_a_row = 0;
                    inflight.clear();
                    next = acked;
                    resyncs += 1;
                    if resyncs > 2 * MAX_UPLOAD_ATTEMPTS as usize {
                        return Err(fail(acked)(SessionError::Timeout {
                            what: "upload".into(),
                            after: t,
                            last_problem: None,
                        }));
                    }
                    continue;
                }
                Err(e) => {
                    if matches!(
                        e,
                        SessionError::Disconnected { .. } | SessionError::Io { .. }
                    ) {
                        self.client = None;
                    }
                    return Err(fail(acked)(e));
                }
            };
            let rsp: image::UploadRsp = reply.body_as().map_err(|source| {
                fail(acked)(SessionError::Device {
                    what: "upload".into(),
                    source,
                })
            })?;
            let pos = inflight
                .iter()
                .position(|(h, _, _)| h.seq == reply.header.seq)
                .expect("matched one in flight");
            let (_, end, sent) = inflight.remove(pos).expect("present");
            slowest = sent.elapsed().max(slowest * 7 / 8);
            let device_off = (rsp.off as usize).min(total);
            if device_off == end {
                acked = acked.max(end);
                good_in_a_row += 1;
                if good_in_a_row >= 8 && chunk_limit < buf_size {
                    chunk_limit = (chunk_limit * 2).min(buf_size);
                    good_in_a_row = 0;
                }
            } else {
                // The device expects another offset (a chunk was lost or damaged): resend from
                // there; replies to what is still in flight are ignored.
                acked = device_off;
                next = device_off;
                inflight.clear();
                resyncs += 1;
                if resyncs > 3 {
                    window = 1;
                }
            }
            progress.bytes(&img.component, acked as u64, total as u64);
            if acked == total {
                return self.finish(img, rsp.matched, acked);
            }
        }
        Ok(Some(true))
    }

    fn finish(
        &self,
        img: &ImageToInstall,
        matched: Option<bool>,
        acked: usize,
    ) -> Result<Option<bool>, (u64, ApplyError)> {
        if matched == Some(false) {
            return Err((
                acked as u64,
                ApplyError::HashMismatch {
                    component: img.component.clone(),
                    found: "a different SHA-256 of the uploaded bytes".into(),
                    required: hex::encode(Sha256::digest(img.bytes.as_slice())),
                },
            ));
        }
        Ok(Some(true))
    }

    /// Resets the device and waits for it. A reset is not idempotent (a second one reverts a
    /// test boot), so a lost reply is not answered by resending: the device is asked whether
    /// it restarted instead.
    async fn reset_and_wait(&mut self, progress: &mut dyn Progress) -> Result<(), ApplyError> {
        progress.stage(Stage::Resetting, "resetting the device");
        let before = self.image_state(Stage::Resetting).await?;
        let t = self.t();
        let sent = self
            .client(Stage::Resetting)?
            .request::<_, os::Empty>(
                "reset",
                Op::Write,
                os::GROUP,
                os::RESET,
                &os::ResetReq::default(),
                t,
            )
            .await;
        match sent {
            Ok(_) | Err(SessionError::Timeout { .. }) => {}
            Err(SessionError::Disconnected { .. } | SessionError::Io { .. }) => self.client = None,
            Err(source) => {
                return Err(ApplyError::Session {
                    stage: Stage::Resetting,
                    source,
                });
            }
        }
        progress.stage(Stage::WaitingForDevice, "waiting for the device to restart");
        let within = Duration::from_millis(self.timeouts.reset_ms);
        self.wait_until_back(Stage::WaitingForDevice, within)
            .await?;
        // A device that never saw the reset still has its test marks pending: send it again.
        let after = self.image_state(Stage::WaitingForDevice).await?;
        if after == before && after.images.iter().any(|e| e.pending) {
            progress.stage(
                Stage::Resetting,
                "the device did not restart; resetting again",
            );
            self.request::<_, os::Empty>(
                Stage::Resetting,
                "reset",
                Op::Write,
                os::GROUP,
                os::RESET,
                &os::ResetReq::default(),
            )
            .await?;
            self.wait_until_back(Stage::WaitingForDevice, within)
                .await?;
        }
        Ok(())
    }

    /// Puts the previous images back in charge after a test boot that will not be confirmed:
    /// MCUboot reverts at the next reset.
    async fn revert(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
    ) -> Result<(), ApplyError> {
        progress.stage(
            Stage::Reverting,
            "resetting so that the bootloader restores the previous image",
        );
        let state = self.image_state(Stage::Reverting).await?;
        let testing = images
            .iter()
            .any(|i| running(&state, i) && !confirmed(&state, i))
            || state.images.iter().any(|e| e.pending);
        if testing {
            self.reset_and_wait(progress).await?;
            // A pending image boots once on this reset; the next reset reverts it.
            let state = self.image_state(Stage::Reverting).await?;
            if images
                .iter()
                .any(|i| running(&state, i) && !confirmed(&state, i))
            {
                self.reset_and_wait(progress).await?;
            }
        }
        Ok(())
    }

    /// Applies one step: its images are uploaded, tested together with one reset, then
    /// confirmed together.
    pub async fn apply(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        progress.stage(Stage::Preparing, "reading the device");
        self.read_buffers().await?;
        let mut state = self.image_state(Stage::Preparing).await?;
        // An image of this step that already runs on test (an earlier attempt stopped after
        // its test boot): the device booted it, and its hash is the planned one, so it only
        // needs confirming.
        let on_test: Vec<&ImageToInstall> = images
            .iter()
            .filter(|i| running(&state, i) && !confirmed(&state, i))
            .collect();
        if !on_test.is_empty() {
            progress.stage(
                Stage::Confirming,
                "confirming the planned image that already runs on test",
            );
            self.confirm_running(&on_test, images, progress).await?;
            state = self.image_state(Stage::ReadingBack).await?;
            if let Some(img) = on_test
                .iter()
                .find(|i| !(running(&state, i) && confirmed(&state, i)))
            {
                return Ok(StepOutcome::Reverted {
                    stage: Stage::Confirming,
                    reason: format!("{} {} did not stay confirmed", img.component, img.version),
                });
            }
        }
        // An image on test that this step does not install would block marking a new test:
        // let the bootloader revert it to the confirmed one first.
        if state.images.iter().any(|e| {
            e.active
                && !e.confirmed
                && !images
                    .iter()
                    .any(|i| running(&state, i) && i.image == e.image_number())
        }) {
            progress.stage(
                Stage::Reverting,
                "an unplanned image runs on test: resetting so the bootloader restores the confirmed one",
            );
            self.reset_and_wait(progress).await?;
            state = self.image_state(Stage::Preparing).await?;
        }
        let before: Vec<(u32, String, String)> = images
            .iter()
            .map(|i| {
                let e = state
                    .images
                    .iter()
                    .find(|e| e.image_number() == i.image && e.active);
                (
                    i.image,
                    e.and_then(hash_hex).unwrap_or_default(),
                    e.map(|e| e.version.clone()).unwrap_or_default(),
                )
            })
            .collect();
        let todo: Vec<&ImageToInstall> = images.iter().filter(|i| !running(&state, i)).collect();
        if todo.is_empty() {
            progress.stage(Stage::Done, "the device already runs this release");
            return Ok(if on_test.is_empty() {
                StepOutcome::AlreadyInstalled
            } else {
                StepOutcome::Applied
            });
        }
        for img in &todo {
            if slot1_hash(&state, img.image).as_deref() == Some(img.image_hash.as_str()) {
                progress.stage(
                    Stage::Uploading,
                    &format!(
                        "{} {} is already in the inactive slot",
                        img.component, img.version
                    ),
                );
                progress.bytes(
                    &img.component,
                    img.bytes.len() as u64,
                    img.bytes.len() as u64,
                );
                continue;
            }
            progress.stage(
                Stage::Uploading,
                &format!("sending {} {}", img.component, img.version),
            );
            if !self.upload(img, progress, cancel).await? {
                return Ok(StepOutcome::Cancelled {
                    stage: Stage::Uploading,
                });
            }
        }
        progress.stage(
            Stage::Verifying,
            "comparing the device's copy with the package",
        );
        let state = self.image_state(Stage::Verifying).await?;
        for img in &todo {
            let found = slot1_hash(&state, img.image).unwrap_or_else(|| "no image".into());
            if found != img.image_hash {
                return Err(ApplyError::HashMismatch {
                    component: img.component.clone(),
                    found,
                    required: img.image_hash.clone(),
                });
            }
        }
        if cancel.is_cancelled() {
            return Ok(StepOutcome::Cancelled {
                stage: Stage::Verifying,
            });
        }
        progress.stage(
            Stage::MarkingForTest,
            "marking the new image for a test boot",
        );
        for img in &todo {
            let req = image::StateWriteReq {
                hash: Some(ByteBuf::from(
                    hex::decode(&img.image_hash).unwrap_or_default(),
                )),
                confirm: Some(false),
            };
            self.request::<_, image::StateRsp>(
                Stage::MarkingForTest,
                "mark for test",
                Op::Write,
                image::GROUP,
                image::STATE,
                &req,
            )
            .await?;
        }
        if cancel.is_cancelled() {
            self.revert(images, progress).await?;
            return Ok(StepOutcome::Cancelled {
                stage: Stage::MarkingForTest,
            });
        }
        self.reset_and_wait(progress).await?;
        progress.stage(Stage::ReadingBack, "checking that the new image runs");
        let state = self.image_state(Stage::ReadingBack).await?;
        if let Some(img) = todo.iter().find(|i| !running(&state, i)) {
            let runs = running_version(&state, img.image);
            let runs_hash = state
                .images
                .iter()
                .find(|e| e.image_number() == img.image && e.active)
                .and_then(hash_hex)
                .unwrap_or_default();
            let was = before.iter().find(|(n, _, _)| *n == img.image);
            if was.is_some_and(|(_, hash, _)| *hash == runs_hash) {
                return Ok(StepOutcome::Reverted {
                    stage: Stage::ReadingBack,
                    reason: format!(
                        "the bootloader did not start {} {} (it runs {runs} again): the image was refused at boot, for example for an unmet dependency",
                        img.component, img.version
                    ),
                });
            }
            return Ok(StepOutcome::WrongImage {
                component: img.component.clone(),
                found: format!("{runs} (image hash {runs_hash})"),
                required: format!("{} (image hash {})", img.version, img.image_hash),
            });
        }
        if cancel.is_cancelled() {
            self.revert(images, progress).await?;
            return Ok(StepOutcome::Cancelled {
                stage: Stage::ReadingBack,
            });
        }
        progress.stage(Stage::Confirming, "confirming the new image");
        let confirm = image::StateWriteReq {
            hash: None,
            confirm: Some(true),
        };
        if let Err(e) = self
            .request::<_, image::StateRsp>(
                Stage::Confirming,
                "confirm",
                Op::Write,
                image::GROUP,
                image::STATE,
                &confirm,
            )
            .await
        {
            if let ApplyError::Session {
                source: SessionError::Device { .. },
                ..
            } = &e
            {
                self.revert(images, progress).await?;
                return Ok(StepOutcome::Reverted {
                    stage: Stage::Confirming,
                    reason: format!(
                        "the device refused to confirm the new image ({e}); it went back to the previous one"
                    ),
                });
            }
            return Err(e);
        }
        progress.stage(
            Stage::ReadingBack,
            "checking that the new image is confirmed",
        );
        let state = self.image_state(Stage::ReadingBack).await?;
        if let Some(img) = todo
            .iter()
            .find(|i| !(running(&state, i) && confirmed(&state, i)))
        {
            self.revert(images, progress).await?;
            return Ok(StepOutcome::Reverted {
                stage: Stage::Confirming,
                reason: format!("{} {} did not stay confirmed", img.component, img.version),
            });
        }
        progress.stage(Stage::Done, "the new image runs and is confirmed");
        Ok(StepOutcome::Applied)
    }
}

impl<C: Connector> Device<C> {
    /// Confirms the images of `on_test`, which run on test with their planned hashes.
    async fn confirm_running(
        &mut self,
        on_test: &[&ImageToInstall],
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
    ) -> Result<(), ApplyError> {
        for img in on_test {
            let req = image::StateWriteReq {
                hash: Some(ByteBuf::from(
                    hex::decode(&img.image_hash).unwrap_or_default(),
                )),
                confirm: Some(true),
            };
            if let Err(e) = self
                .request::<_, image::StateRsp>(
                    Stage::Confirming,
                    "confirm",
                    Op::Write,
                    image::GROUP,
                    image::STATE,
                    &req,
                )
                .await
            {
                if matches!(
                    &e,
                    ApplyError::Session {
                        source: SessionError::Device { .. },
                        ..
                    }
                ) {
                    self.revert(images, progress).await?;
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

fn entry(state: &image::StateRsp, image: u32, slot: u32) -> Option<&image::ImageStateEntry> {
    state
        .images
        .iter()
        .find(|e| e.image_number() == image && e.slot == slot)
}

fn hash_hex(e: &image::ImageStateEntry) -> Option<String> {
    e.hash.as_ref().map(|h| hex::encode(h.as_slice()))
}

fn slot1_hash(state: &image::StateRsp, image: u32) -> Option<String> {
    entry(state, image, 1).and_then(hash_hex)
}

fn running(state: &image::StateRsp, img: &ImageToInstall) -> bool {
    state.images.iter().any(|e| {
        e.image_number() == img.image
            && e.active
            && hash_hex(e).as_deref() == Some(img.image_hash.as_str())
    })
}

fn confirmed(state: &image::StateRsp, img: &ImageToInstall) -> bool {
    state
        .images
        .iter()
        .any(|e| e.image_number() == img.image && e.active && e.confirmed)
}

fn running_version(state: &image::StateRsp, image: u32) -> String {
    state
        .images
        .iter()
        .find(|e| e.image_number() == image && e.active)
        .map_or("nothing".into(), |e| e.version.clone())
}
