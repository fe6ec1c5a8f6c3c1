//! Sessions with a device: identify it, check what may be applied, apply it.
//!
//! `core` is where the workflow lives, and nothing else: it knows no Tauri, clap, indicatif or
//! axum. The CLI and the desktop app are thin shells over the same functions here, so a rule
//! is enforced the same way whichever window the technician looks at.
//!
//! Core is arranged by protocol family. A session reaches a device through one
//! [`driver::Driver`] per family: [`smp::SmpDriver`] for MCUmgr devices (MCUboot swap with test
//! and confirm, or MCUboot serial recovery written in place) and [`line::LineDriver`] for
//! legacy text-command devices with a YMODEM bootloader. All of them read identity fields as
//! the profile declares them ([`identify`]) and report through one vocabulary of stages,
//! progress and cancellation ([`progress`]). Every request has a timeout taken from the
//! profile; every failure is a typed error that says what was asked, what came back (or did
//! not) and what to do next, in words that fit the evidence.
//!
//! [`home::Home`] is the technician's data directory: trust root, packages, entitlements, the
//! audit database, keys and extra device profiles. [`trust_store`] reads and keeps the trust
//! material there (the IO around `fieldkit-trust`, which does none), starting from the root
//! [`pinned`] into the build when there is one. The demo kit lives in `fieldkit-demo`, in a home
//! of its own ([`Home::demo_home`]).

pub mod apply;
pub mod driver;
pub mod home;
pub mod identify;
pub mod line;
pub mod outcome;
pub mod package_store;
pub mod pinned;
pub mod progress;
pub mod record;
pub mod session;
pub mod smp;
pub mod trust_store;

pub use driver::{AnyDriver, Driver, for_profile};
pub use home::Home;
pub use identify::{IdentifyError, Typed, identify_device, probe};
pub use line::{
    LineClient, LineDriver, LineError, Uploaded, YmodemTiming, ymodem_send, ymodem_upload,
};
pub use smp::{SessionError, SmpClient, SmpDriver};
pub use trust_store::{StoreError, TrustMaterial};

#[cfg(test)]
mod tests;
