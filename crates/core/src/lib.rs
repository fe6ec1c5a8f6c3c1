//! Sessions with a device: identify it, check what may be applied, apply it.
//!
//! `core` is where the workflow lives, and nothing else: it knows no Tauri, clap, indicatif or
//! axum. The CLI and the desktop app are thin shells over the same functions here, so a rule
//! is enforced the same way whichever window the technician looks at.
//!
//! A session talks to the device through a [`fieldkit_link::Link`] and speaks the protocol
//! family of the device's profile ([`smp::SmpClient`] for MCUmgr devices, [`line::LineClient`]
//! for legacy text-command devices with a YMODEM bootloader). Every request has a
//! timeout taken from the profile; every failure is a typed [`SessionError`] that says what was
//! asked, what came back (or did not) and what to do next.
//!
//! [`home::Home`] is the technician's data directory: trust root, packages, entitlements, the
//! audit database, keys and extra device profiles. [`trust_store`] reads and keeps the trust
//! material there (the IO around `fieldkit-trust`, which does none). The demo kit lives in
//! `fieldkit-demo`.

pub mod apply;
pub mod home;
pub mod identify;
pub mod line;
pub mod outcome;
pub mod package_store;
pub mod record;
pub mod session;
pub mod smp;
pub mod trust_store;

pub use home::Home;
pub use identify::{IdentifyError, identify, identify_device, probe, probe_profile};
pub use line::{LineClient, LineError, Uploaded, YmodemTiming, ymodem_send, ymodem_upload};
pub use smp::{SessionError, SmpClient};
pub use trust_store::{StoreError, TrustMaterial};

#[cfg(test)]
mod tests;
