//! What applying an update means, whatever the protocol family: the images to install
//! ([`ImageToInstall`]), how a step ended ([`StepOutcome`]), why it failed ([`ApplyError`]),
//! and the [`Connector`] a driver (re)opens its link with. The work itself is done by the
//! drivers of [`crate::driver`]: [`crate::smp::SmpDriver`] (MCUboot swap with test and
//! confirm, or MCUboot serial recovery written in place) and [`crate::line::LineDriver`]
//! (YMODEM in place). Progress and cancellation are [`crate::progress`]'s, re-exported here.

use std::sync::Arc;

use fieldkit_link::{Link, LinkError};
use serde::Serialize;

use crate::smp::SessionError;

pub use crate::progress::{Cancel, NoProgress, Progress, Stage};

/// Opens (and reopens, after a cable pull or a USB re-enumeration) the link to a device.
pub trait Connector: Send {
    /// The link type.
    type Link: Link;
    /// Opens the link.
    fn connect(&mut self) -> Result<Self::Link, LinkError>;
    /// The serial number in the USB descriptor of the port, when it is a USB port that has
    /// one (a pseudo-terminal has none).
    fn usb_serial(&self) -> Option<String> {
        None
    }
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

    fn usb_serial(&self) -> Option<String> {
        fieldkit_link::usb_serial_number(&self.path)
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
        "uploading {component} failed {attempts} times in a row at byte {offset} of {total}: {last}{}",
        if *.answers_echo {
            " (the device answers echo between attempts, so it is powered and connected: it is refusing or losing the upload requests)"
        } else {
            ""
        }
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
        /// Whether the device answered echo between attempts: the evidence that it is
        /// powered and on this port.
        answers_echo: bool,
    },
    /// The device could not be read (to open the link for a transfer, or to read it back
    /// after one).
    #[error("{} failed: {source}", .stage.label())]
    Identify {
        /// Stage reached.
        stage: Stage,
        /// What went wrong.
        #[source]
        source: Box<crate::identify::IdentifyError>,
    },
    /// A line-family exchange failed (entering the bootloader, the YMODEM transfer, reading
    /// the device back).
    #[error("{} failed: {source}", .stage.label())]
    Line {
        /// Stage reached.
        stage: Stage,
        /// What went wrong.
        #[source]
        source: crate::line::LineError,
    },
}

impl ApplyError {
    /// The stage the update reached.
    pub fn stage(&self) -> Stage {
        match self {
            ApplyError::Session { stage, .. } | ApplyError::Link { stage, .. } => *stage,
            ApplyError::HashMismatch { .. } => Stage::Verifying,
            ApplyError::UploadStalled { .. } => Stage::Uploading,
            ApplyError::Line { stage, .. } | ApplyError::Identify { stage, .. } => *stage,
        }
    }

    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::Session { source, .. } => source.kind(),
            ApplyError::Link { .. } => "link",
            ApplyError::HashMismatch { .. } => "hash_mismatch",
            ApplyError::UploadStalled { .. } => "upload_stalled",
            ApplyError::Line { source, .. } => source.kind(),
            ApplyError::Identify { source, .. } => source.kind(),
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
    /// The new images were written over the running ones (MCUboot serial recovery, a YMODEM
    /// bootloader): read back by their hash or version, then started. There was no test boot
    /// and there is no way back.
    AppliedInPlace,
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
