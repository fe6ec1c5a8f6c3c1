//! Device profiles: what a device model is, how to recognise it, how to talk to it, and what
//! its identity looks like once read.
//!
//! A new device model is a TOML file in `device-profiles/`, not new code. Everything the rest of
//! fieldkit needs to know about a model lives here: USB identifiers for discovery, the serial
//! line settings, the protocol family ("smp" for MCUmgr/MCUboot devices, "line" for legacy
//! text-command bootloaders with YMODEM), how each identity field is read, the firmware
//! components and the keys that sign them, the safety preconditions that must hold before an
//! update, the timeouts, and the defaults the simulator plays.
//!
//! What the real device can do is declared in `[device]` (update mode, slots, buffer size to
//! assume, flash write alignment, reset behaviour), never inferred from the protocol family
//! or read from `[simulator]`, which only the simulator and the demo kit read. Identity
//! fields are declared in `[identity.<name>]` with a type and a source (the vendor group, OS
//! or bootloader info, the USB serial number, a line query, or the technician's typing), so a
//! new field is a few lines of TOML and no code. The shipped profiles are every file of
//! `device-profiles/`, collected by `build.rs`.
//!
//! Loading validates everything at once and every error names the file, the line and the field,
//! so that a profile author fixes a file in one pass. The crate does no IO beyond what the
//! caller hands in: [`Profile::parse`] takes the text and a name for messages; the directory
//! helper in [`ProfileSet`] is a thin convenience over it.
//!
//! [`Identity`] is the value a session reads from a device. It lives here, next to the schema
//! that says how it is read, so that the planner can reason about it without knowing how the
//! bytes were obtained.

mod identity;
mod schema;
mod validate;

pub use identity::{Identity, Reading, SlotState};
pub use schema::{
    Component, DeviceCaps, Family, FieldSource, FieldSpec, FieldType, FieldValue, FlowControl,
    LineProtocol, LineQuery, LineSettings, Op, Parity, Precondition, Profile, ResetBehaviour,
    ResetCommand, SimMode, SimulatorDefaults, SmpSettings, Timeouts, UpdateMode, Usb, VendorGroup,
};
pub use validate::{ProfileError, ProfileSet};

#[cfg(test)]
mod tests;
