//! One driver per protocol family, behind one trait: what a visit needs from a device is to
//! read it and to apply a step to it, whatever it speaks.
//!
//! Execution model, for every implementation:
//! - A driver owns a [`Connector`] and opens its link on first use; it keeps it for the whole
//!   step and reopens it only when the device drops it (a reset, a cable pull, a USB device
//!   re-enumerating).
//! - [`Driver::identify`] reads the device and changes nothing. It is patient with a device
//!   that is restarting: it waits up to the profile's reset time for a first answer. The
//!   session calls it right before [`Driver::apply`] to re-check the plan's rules on the
//!   device as it is now, and again after the step for the record.
//! - [`Driver::apply`] installs one step's images in the profile's update mode and returns how
//!   the step ended. It evaluates no rule (the plan did), polls the [`Cancel`] flag at its safe
//!   points, and reports through [`Progress`]. An `Err` means the step stopped at the stage
//!   it names; what the device runs then is for the caller to read back.
//!
//! [`for_profile`] picks the implementation from the profile: [`SmpDriver`] for the SMP
//! family (MCUboot swap, or MCUboot serial recovery written in place), [`LineDriver`] for the
//! line family (YMODEM in place).

use std::future::Future;

use fieldkit_profile::{Family, Identity, Profile};

use crate::apply::{ApplyError, Connector, ImageToInstall, StepOutcome};
use crate::identify::{IdentifyError, Typed};
use crate::line::LineDriver;
use crate::progress::{Cancel, Progress};
use crate::smp::SmpDriver;

/// A device of one protocol family, as a visit uses it.
pub trait Driver: Send {
    /// Reads who the device is and what it runs; changes nothing.
    fn identify(&mut self) -> impl Future<Output = Result<Identity, IdentifyError>> + Send;

    /// Installs one step's images and says how the step ended.
    fn apply(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> impl Future<Output = Result<StepOutcome, ApplyError>> + Send;
}

/// The driver of a profile's family.
pub enum AnyDriver<C: Connector> {
    /// MCUmgr SMP with MCUboot.
    Smp(SmpDriver<C>),
    /// Text commands and YMODEM.
    Line(LineDriver<C>),
}

/// The driver for a device of `profile` on `connector`, with the fields the technician typed.
pub fn for_profile<C: Connector>(profile: &Profile, connector: C, typed: Typed) -> AnyDriver<C> {
    match profile.family() {
        Family::Smp => AnyDriver::Smp(SmpDriver::new(connector, profile, typed)),
        Family::Line => AnyDriver::Line(LineDriver::new(connector, profile, typed)),
    }
}

impl<C: Connector> Driver for AnyDriver<C> {
    async fn identify(&mut self) -> Result<Identity, IdentifyError> {
        match self {
            AnyDriver::Smp(d) => d.identify().await,
            AnyDriver::Line(d) => d.identify().await,
        }
    }

    async fn apply(
        &mut self,
        images: &[ImageToInstall],
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<StepOutcome, ApplyError> {
        match self {
            AnyDriver::Smp(d) => d.apply(images, progress, cancel).await,
            AnyDriver::Line(d) => d.apply(images, progress, cancel).await,
        }
    }
}
