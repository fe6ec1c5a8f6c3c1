//! Sessions with a device: identify it, check what may be applied, apply it.
//!
//! `core` is where the workflow lives, and nothing else: it knows no Tauri, clap, indicatif or
//! axum. The CLI and the desktop app are thin shells over the same functions here, so a rule
//! is enforced the same way whichever window the technician looks at.
//!
//! A session talks to the device through a [`fieldkit_link::Link`] and speaks the protocol
//! family of the device's profile ([`smp::SmpClient`] for MCUmgr devices). Every request has a
//! timeout taken from the profile; every failure is a typed [`SessionError`] that says what was
//! asked, what came back (or did not) and what to do next.
//!
//! [`home::Home`] is the technician's data directory: trust root, packages, entitlements, the
//! audit database, keys and extra device profiles.

pub mod home;
pub mod identify;
pub mod smp;

pub use home::Home;
pub use identify::{IdentifyError, identify, probe_profile};
pub use smp::{SessionError, SmpClient};

#[cfg(test)]
mod tests;
