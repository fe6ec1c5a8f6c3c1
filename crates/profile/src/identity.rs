//! The identity of a device, as read from it.

use serde::{Deserialize, Serialize};

use crate::schema::{IdentityField, PreconditionValue};

/// Everything a session learned about a device: who it is, what runs on it, and the live
/// values the safety preconditions test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Id of the profile the device was read with.
    pub profile: String,
    /// Model name as reported by the device.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Hardware revision.
    pub hardware_revision: String,
    /// Bootloader name (e.g. "MCUboot").
    pub bootloader: Option<String>,
    /// Bootloader version.
    pub bootloader_version: Option<String>,
    /// Every image slot the device reports.
    pub slots: Vec<SlotState>,
    /// Battery charge, percent, when the device reports it.
    pub battery_percent: Option<i64>,
    /// Whether therapy is running, when the device reports it.
    pub therapy_running: Option<bool>,
    /// The bootloader's hardware security counter, when the device reports it.
    #[serde(default)]
    pub security_counter: Option<i64>,
    /// The device's SMP buffer size and count, when advertised.
    pub buffers: Option<(u32, u32)>,
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

    /// The value of an identity field, for preconditions and messages.
    pub fn field(&self, field: IdentityField) -> Option<PreconditionValue> {
        match field {
            IdentityField::Model => Some(PreconditionValue::Text(self.model.clone())),
            IdentityField::Serial => Some(PreconditionValue::Text(self.serial.clone())),
            IdentityField::HardwareRevision => {
                Some(PreconditionValue::Text(self.hardware_revision.clone()))
            }
            IdentityField::BootloaderVersion => {
                self.bootloader_version.clone().map(PreconditionValue::Text)
            }
            IdentityField::BatteryPercent => self.battery_percent.map(PreconditionValue::Int),
            IdentityField::TherapyRunning => self.therapy_running.map(PreconditionValue::Bool),
            IdentityField::SecurityCounter => self.security_counter.map(PreconditionValue::Int),
        }
    }
}
