//! The one vocabulary every protocol family reports through while it works on a device:
//! [`Stage`] names where an update is, [`Progress`] receives stages and bytes (the CLI draws
//! a bar, the app sends them over a channel), and [`Cancel`] is the technician's hand on the
//! brake, polled by the drivers at their safe points.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

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
