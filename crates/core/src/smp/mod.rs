//! The SMP family's driver: MCUmgr over a serial line, MCUboot below, in either of the two
//! update modes a profile declares.
//!
//! - `mcuboot-swap` (a Zephyr application): upload to the inactive slot, check the device's
//!   hash against the manifest's, mark for test, reset, wait for the device, read back (the
//!   new image must run), confirm, read back again. Any failure before the confirmation
//!   leaves the old image in charge: MCUboot reverts a tested image that was never confirmed.
//! - `mcuboot-in-place` (MCUboot's serial recovery, `boot/boot_serial`): upload to slot 0,
//!   which the bootloader erases at the first chunk; an interrupted upload starts over from
//!   offset 0; read back by the image's hash in the image list (the bootloader lists only
//!   images that validate); reset into the new application. No test boot, no way back: the
//!   plan says so and the technician accepts it first.
//!
//! The driver opens its link once and keeps it for the whole step (identify, then apply),
//! reopening it only when the device drops it (a reset, a cable pull). [`client`] is the
//! request/reply layer, [`window`] the sans-IO upload window, [`upload`] one pipelined
//! upload pass, [`identify`] the reading of identity fields and the probe.

pub mod client;
mod identify;
mod upload;
pub mod window;

use std::time::Duration;

use fieldkit_profile::{Identity, Profile, UpdateMode};
use fieldkit_wire::smp::{Op, image, os};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

pub use client::{MAX_REPLY, READ_ATTEMPTS, SessionError, SmpClient};
pub(crate) use identify::probe;

use crate::apply::{ApplyError, Connector, ImageToInstall, StepOutcome};
use crate::identify::{IdentifyError, Typed, framing_of};
use crate::progress::{Cancel, Progress, Stage};
use upload::{Pass, Rules};
use window::Window;

/// Attempts of an idempotent request before its timeout is reported.
const REQUEST_ATTEMPTS: u32 = 4;

/// How many times a stalled or broken upload is resumed before giving up.
const MAX_UPLOAD_ATTEMPTS: u32 = 8;

/// How long one "are you there" echo waits while a device restarts.
const PROBE: Duration = Duration::from_millis(500);

/// A device of the SMP family, reached through a connector.
pub struct SmpDriver<C: Connector> {
    connector: C,
    client: Option<SmpClient<C::Link>>,
    profile: Profile,
    typed: Typed,
    /// `buf_size` and `buf_count` as the device advertised them (or the profile's fallback).
    buffers: Option<(usize, usize)>,
    /// The upload window, kept across passes and images of the step.
    window: Option<Window>,
    /// Whether the device answered echo since the last upload pass failed: the evidence that
    /// it is powered and on this port.
    answered_echo: bool,
}

impl<C: Connector> SmpDriver<C> {
    /// A device of `profile` reached through `connector`; `typed` holds the identity fields the
    /// technician typed.
    pub fn new(connector: C, profile: &Profile, typed: Typed) -> SmpDriver<C> {
        SmpDriver {
            connector,
            client: None,
            profile: profile.clone(),
            typed,
            buffers: None,
            window: None,
            answered_echo: false,
        }
    }

    fn t(&self) -> Duration {
        Duration::from_millis(self.profile.timeouts.response_ms)
    }

    fn reset_time(&self) -> Duration {
        Duration::from_millis(self.profile.timeouts.reset_ms)
    }

    /// The connected client, opening the link if needed.
    pub fn client(&mut self, stage: Stage) -> Result<&mut SmpClient<C::Link>, ApplyError> {
        if self.client.is_none() {
            let link = self
                .connector
                .connect()
                .map_err(|source| ApplyError::Link { stage, source })?;
            self.client = Some(SmpClient::new(link, framing_of(&self.profile)));
        }
        Ok(self.client.as_mut().expect("just set"))
    }

    fn dropped(&mut self, e: &SessionError) {
        if matches!(
            e,
            SessionError::Disconnected { .. } | SessionError::Io { .. }
        ) {
            self.client = None;
        }
    }

    /// Reads the device's identity. Patient with a device that is restarting: it waits up to
    /// the profile's reset time for a first answer (reopening the port while it is gone),
    /// then reads every field and slot.
    pub async fn identify(&mut self) -> Result<Identity, IdentifyError> {
        crate::identify::check_typed(&self.profile, &self.typed)?;
        let within = self.reset_time();
        if let Err(e) = self.wait_until_back(Stage::Preparing, within).await {
            let last = match e {
                ApplyError::Session { source, .. } => source.to_string(),
                ApplyError::Link { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            return Err(IdentifyError::Silent {
                waited: within,
                last,
            });
        }
        let usb_serial = self.connector.usb_serial();
        let profile = self.profile.clone();
        let typed = self.typed.clone();
        let client = self
            .client(Stage::Preparing)
            .map_err(|e| IdentifyError::Silent {
                waited: within,
                last: e.to_string(),
            })?;
        let result = identify::identify(client, &profile, usb_serial, &typed).await;
        match &result {
            Ok(id) => {
                if let Some((size, count)) = id.buffers {
                    self.buffers = Some((size.max(128) as usize, count.clamp(1, 16) as usize));
                }
            }
            Err(IdentifyError::Session(e)) => self.dropped(e),
            Err(_) => {}
        }
        result
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
                    self.dropped(&e);
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

    /// The device's buffers: as identify read them, else asked now, else the profile's
    /// fallback (`device.buffer_fallback`, one buffer) for a device that does not say.
    pub async fn read_buffers(&mut self) -> Result<(usize, usize), ApplyError> {
        if let Some(b) = self.buffers {
            return Ok(b);
        }
        let fallback = (*self.profile.device.buffer_fallback.get_ref() as usize, 1);
        let got = match self
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
            Ok(p) => (
                p.buf_size.max(128) as usize,
                p.buf_count.clamp(1, 16) as usize,
            ),
            Err(ApplyError::Session {
                source: SessionError::Device { source, .. },
                ..
            }) if source.is_not_supported() => fallback,
            Err(e) => return Err(e),
        };
        if let Some(c) = self.client.as_mut() {
            c.set_max_reply(got.0 + 64);
        }
        self.buffers = Some(got);
        Ok(got)
    }

    /// Waits until the device answers again (after a reset or a cable pull), reopening the
    /// port while it is gone. Any answer counts, even "echo not supported", and a late answer
    /// to an earlier echo of this wait counts too: the device is there.
    pub async fn wait_until_back(
        &mut self,
        stage: Stage,
        within: Duration,
    ) -> Result<(), ApplyError> {
        let deadline = tokio::time::Instant::now() + within;
        let probe = PROBE.min(self.t());
        let mut asked: Vec<fieldkit_wire::smp::Header> = Vec::new();
        loop {
            let attempt = match self.client(stage) {
                Ok(client) => {
                    let sent = client
                        .send(
                            "are you there (echo)",
                            Op::Write,
                            os::GROUP,
                            os::ECHO,
                            &os::EchoReq {
                                d: "fieldkit".into(),
                            },
                        )
                        .await;
                    let r = match sent {
                        Ok(p) => {
                            asked.push(p.header);
                            client
                                .receive_any("are you there (echo)", &asked, probe)
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    // Any SMP reply is the device being there, even one this client did not
                    // expect (a wrong sequence number is the request's problem, not presence).
                    let heard =
                        matches!(r, Err(SessionError::Timeout { .. })) && client.has_answered();
                    match r {
                        Ok(_) => {
                            self.answered_echo = true;
                            return Ok(());
                        }
                        Err(_) if heard => {
                            self.answered_echo = true;
                            return Ok(());
                        }
                        Err(e) => {
                            if matches!(
                                e,
                                SessionError::Disconnected { .. } | SessionError::Io { .. }
                            ) {
                                self.client = None;
                                asked.clear();
                            }
                            ApplyError::Session { stage, source: e }
                        }
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

    /// The upload window, made on first use from the device's buffers.
    async fn window(&mut self) -> Result<Window, ApplyError> {
        if let Some(w) = &self.window {
            return Ok(w.clone());
        }
        let (buf_size, buf_count) = self.read_buffers().await?;
        let max_packet = framing_of(&self.profile).max_packet(buf_size);
        let w = Window::new(max_packet, buf_count, self.t());
        self.window = Some(w.clone());
        Ok(w)
    }

    /// Uploads `img`, resuming (or, on a device that cannot resume, starting over) after
    /// timeouts and cable pulls. `Ok(false)` when cancelled.
    pub async fn upload(
        &mut self,
        img: &ImageToInstall,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<bool, ApplyError> {
        let in_place = self.profile.device.update == UpdateMode::McubootInPlace;
        let rules = Rules {
            resumable: !in_place,
            alignment: *self.profile.device.write_alignment.get_ref() as usize,
            first_chunk: Duration::from_millis(self.profile.timeouts.first_chunk_ms),
        };
        let sha = Sha256::digest(img.bytes.as_slice()).to_vec();
        let mut window = self.window().await?;
        let mut attempts = 0;
        let mut held = 0u64;
        loop {
            let client = self.client(Stage::Uploading)?;
            let result =
                upload::pass(client, img, &sha, &mut window, rules, progress, cancel).await;
            self.window = Some(window.clone());
            match result {
                Ok(Pass::Done {
                    matched: Some(false),
                }) => {
                    return Err(ApplyError::HashMismatch {
                        component: img.component.clone(),
                        found: "a different SHA-256 of the uploaded bytes".into(),
                        required: hex::encode(&sha),
                    });
                }
                Ok(Pass::Done { .. }) => return Ok(true),
                Ok(Pass::Cancelled) => return Ok(false),
                Err(failed) => {
                    held = held.max(failed.acked);
                    attempts += 1;
                    let e = failed.error;
                    self.dropped(&e);
                    if matches!(e, SessionError::Device { .. }) {
                        return Err(ApplyError::Session {
                            stage: Stage::Uploading,
                            source: e,
                        });
                    }
                    let last = e.to_string();
                    if attempts >= MAX_UPLOAD_ATTEMPTS {
                        return Err(ApplyError::UploadStalled {
                            component: img.component.clone(),
                            attempts,
                            offset: held,
                            total: img.bytes.len() as u64,
                            last,
                            answers_echo: self.answered_echo,
                        });
                    }
                    progress.stage(
                        Stage::Uploading,
                        &format!(
                            "{last}; {}",
                            if in_place {
                                "starting the upload over (serial recovery cannot resume)"
                            } else {
                                "resuming"
                            }
                        ),
                    );
                    self.answered_echo = false;
                    let within = self.reset_time();
                    self.wait_until_back(Stage::Uploading, within).await?;
                }
            }
        }
    }

    /// Resets the device and waits for it. A reset is not idempotent (a second one reverts a
    /// test boot), so a lost reply is not answered by resending: the device is asked whether
    /// it restarted instead.
    async fn reset_and_wait(&mut self, progress: &mut dyn Progress) -> Result<(), ApplyError> {
        progress.stage(Stage::Resetting, "resetting the device");
        let before = self.image_state(Stage::Resetting).await?;
        self.send_reset().await?;
        progress.stage(Stage::WaitingForDevice, "waiting for the device to restart");
        let within = self.reset_time();
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

    /// Sends one reset request; a lost reply is no error (the device may be restarting).
    async fn send_reset(&mut self) -> Result<(), ApplyError> {
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
        // Whatever the device said last belongs to the program that ran before the reset.
        self.buffers = None;
        self.window = None;
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

    /// Applies one step in the profile's update mode. Call [`SmpDriver::identify`] first: the
    /// link stays open from it, and its buffer parameters are used.
    pub async fn apply(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        match self.profile.device.update {
            UpdateMode::McubootInPlace => self.apply_in_place(images, progress, cancel).await,
            _ => self.apply_swap(images, progress, cancel).await,
        }
    }

    /// Serial recovery: each image written over slot 0, read back by its hash in the image
    /// list, then one reset into the new application.
    async fn apply_in_place(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        progress.stage(Stage::Preparing, "reading the device's slots");
        let state = self.image_state(Stage::Preparing).await?;
        let todo: Vec<&ImageToInstall> = images
            .iter()
            .filter(|i| slot0_hash(&state, i.image).as_deref() != Some(i.image_hash.as_str()))
            .collect();
        if todo.is_empty() {
            progress.stage(Stage::Done, "slot 0 already holds this release");
            return Ok(StepOutcome::AlreadyInstalled);
        }
        for img in &todo {
            if cancel.is_cancelled() {
                return Ok(StepOutcome::Cancelled {
                    stage: Stage::Uploading,
                });
            }
            progress.stage(
                Stage::Uploading,
                &format!(
                    "writing {} {} over slot 0 (the bootloader erases the old image first)",
                    img.component, img.version
                ),
            );
            if !self.upload(img, progress, cancel).await? {
                return Ok(StepOutcome::Cancelled {
                    stage: Stage::Uploading,
                });
            }
        }
        progress.stage(
            Stage::Verifying,
            "reading back the image hash the bootloader lists for slot 0",
        );
        let state = self.image_state(Stage::Verifying).await?;
        for img in &todo {
            let found = slot0_hash(&state, img.image)
                .unwrap_or_else(|| "no valid image (the bootloader does not list slot 0)".into());
            if found != img.image_hash {
                return Err(ApplyError::HashMismatch {
                    component: img.component.clone(),
                    found,
                    required: img.image_hash.clone(),
                });
            }
        }
        progress.stage(Stage::Resetting, "resetting into the new application");
        self.send_reset().await?;
        if !self.profile.device.reset.reenumerates {
            progress.stage(Stage::WaitingForDevice, "waiting for the device to restart");
            let within = self.reset_time();
            self.wait_until_back(Stage::WaitingForDevice, within)
                .await?;
        }
        progress.stage(
            Stage::Done,
            "the new image was written in place, read back by its hash, and started",
        );
        Ok(StepOutcome::AppliedInPlace)
    }

    /// MCUboot swap: the step's images are uploaded, tested together with one reset, then
    /// confirmed together.
    async fn apply_swap(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        progress.stage(Stage::Preparing, "reading the device's slots");
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

impl<C: Connector> crate::driver::Driver for SmpDriver<C> {
    async fn identify(&mut self) -> Result<Identity, IdentifyError> {
        SmpDriver::identify(self).await
    }

    async fn apply(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        SmpDriver::apply(self, images, progress, cancel).await
    }
}

fn slot0_hash(state: &image::StateRsp, image: u32) -> Option<String> {
    entry(state, image, 0).and_then(hash_hex)
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
