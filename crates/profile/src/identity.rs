//! The identity of a device, as read from it (or, field by field, as typed by the technician).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{FieldSource, FieldValue};

/// Everything a session learned about a device: who it is, what runs on it, and the live
/// values the safety preconditions test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Id of the profile the device was read with.
    pub profile: String,
    /// Model name: as reported by the device, or the profile's when it reports none.
    pub model: String,
    /// Serial number (also in `fields`, with where it came from).
    pub serial: String,
    /// Hardware revision (also in `fields`).
    pub hardware_revision: String,
    /// Bootloader name (e.g. "MCUboot"), when the device says.
    pub bootloader: Option<String>,
    /// Bootloader version, when the profile declares the field (also in `fields`).
    pub bootloader_version: Option<String>,
    /// Every image slot the device reports.
    pub slots: Vec<SlotState>,
    /// Every identity field the profile declares that has a value, by name.
    #[serde(default)]
    pub fields: BTreeMap<String, Reading>,
    /// The device's SMP buffer size and count, when advertised.
    pub buffers: Option<(u32, u32)>,
}

/// One identity field's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// The value.
    pub value: FieldValue,
    /// The field's name for people, from the profile.
    pub label: String,
    /// Where the value came from. `typed` means the technician typed it: it was not read
    /// from the device, and the record says so.
    pub source: FieldSource,
}

impl Reading {
    /// Whether the technician typed the value rather than the device reporting it.
    pub fn typed(&self) -> bool {
        self.source == FieldSource::Typed
    }
}

/// One image slot as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotState {
    /// MCUboot image number.
    pub image: u32,
    /// Slot within the image (0 primary, 1 secondary).
    pub slot: u32,
    /// Component name from the profile, when the image number is known.
    pub component: Option<String>,
    /// Version as reported (`1.2.3` or `1.2.3.45`).
    pub version: String,
    /// Hex SHA-256 of the image, as reported.
    pub hash: String,
    /// Whether the bootloader considers the image bootable.
    pub bootable: bool,
    /// Marked to be tested on next boot.
    pub pending: bool,
    /// Confirmed: will keep booting.
    pub confirmed: bool,
    /// Running now.
    pub active: bool,
    /// Pending permanently (confirmed before boot).
    pub permanent: bool,
}

impl Identity {
    /// The running version of an image, if any slot of it is active.
    pub fn active_slot(&self, image: u32) -> Option<&SlotState> {
        self.slots.iter().find(|s| s.image == image && s.active)
    }

    /// The value of an identity field, for preconditions and rules.
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields.get(name).map(|r| &r.value)
    }

    /// An integer field's value.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.field(name)? {
            FieldValue::Int(n) => Some(*n),
            _ => None,
        }
    }
}
