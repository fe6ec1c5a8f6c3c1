//! The manufacturer's first trust root, pinned into this build.
//!
//! An installed app must not trust whatever root it finds, nor make one up: it starts from the
//! root its manufacturer built into it (`cargo xtask dist --trust-root FILE`, through
//! `FIELDKIT_TRUST_ROOT` and `build.rs`), or from one the technician imported explicitly. Later
//! roots arrive by rotation, each signed by the one before. A build made without a root (a
//! developer's) pins nothing, and then only an imported root, or the DEMO in a home of its own,
//! lets anything be checked.

/// What `build.rs` embedded: the root's bytes, or nothing.
const PINNED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pinned-root.json"));

/// The pinned root's bytes (a signed `root.json`), if this build has one.
pub fn pinned_root() -> Option<&'static [u8]> {
    (!PINNED.is_empty()).then_some(PINNED)
}
