//! Entries: what is written, how it is serialised, and the known event types.
//!
//! An entry is stored as the exact JSON bytes that were hashed into the tree; nothing is ever
//! re-serialised before hashing, so the leaf hash does not depend on a JSON library's map order.
//! Parsing those bytes back gives an [`Entry`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{DeviceRecord, Event, ReadError, Reading};

pub use crate::record::events;

/// The suffix that marks an intent; its outcome is any `<action>_*` entry that names it.
pub const INTENT_SUFFIX: &str = "_started";

/// The key in `details` by which an outcome names the seq of its intent.
pub const INTENT_SEQ_KEY: &str = "intent_seq";

/// What an entry is, for filtering and badges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Informational (identify, sync).
    Info,
    /// An intent: something is about to happen.
    Started,
    /// It worked.
    Succeeded,
    /// A check refused, by rule.
    Refused,
    /// It failed.
    Failed,
    /// The device went back to its old image.
    Reverted,
    /// The technician cancelled.
    Cancelled,
    /// The program stopped before an outcome.
    Interrupted,
    /// The device runs an image other than the one planned.
    WrongImage,
}

impl Outcome {
    /// The outcome class of an event name. Only the names fieldkit writes are known; any
    /// other name is informational (no guessing from suffixes).
    pub fn of_event(event: &str) -> Self {
        use crate::record::events::*;
        match event {
            UPDATE_STARTED => Self::Started,
            CHECK_PASSED | UPDATE_SUCCEEDED | SYNC_SUCCEEDED => Self::Succeeded,
            CHECK_REFUSED | UPDATE_REFUSED => Self::Refused,
            UPDATE_FAILED | SYNC_FAILED => Self::Failed,
            UPDATE_REVERTED => Self::Reverted,
            UPDATE_CANCELLED => Self::Cancelled,
            UPDATE_WRONG_IMAGE => Self::WrongImage,
            UPDATE_INTERRUPTED => Self::Interrupted,
            _ => Self::Info,
        }
    }

    /// The lowercase name used in filters and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Started => "started",
            Self::Succeeded => "succeeded",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Reverted => "reverted",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
            Self::WrongImage => "wrong_image",
        }
    }
}

/// What the caller supplies for a new entry; the log adds seq, times, boot id, schema and
/// chaining, and writes the record's device, event name and details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Who did it.
    pub technician: String,
    /// Where (customer site).
    pub site: String,
    /// What happened: a typed record.
    pub event: Event,
}

/// One entry, as stored and hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The record schema ([`crate::record::SCHEMA`]); entries written before records were
    /// typed have none and read as [`crate::record::LEGACY_SCHEMA`].
    #[serde(default = "legacy_schema")]
    pub schema: u32,
    /// Position in the log, from 0: also the leaf index in the tree.
    pub seq: u64,
    /// The log's origin (the laptop's note key name), so entries cannot be replayed under
    /// another laptop's identity.
    pub origin: String,
    /// Wall-clock time, UTC.
    pub time: DateTime<Utc>,
    /// Monotonic clock in nanoseconds since boot, where the platform has one: with `boot_id`
    /// it shows whether the wall clock was moved between two entries.
    pub mono_ns: Option<u64>,
    /// Identifies the boot session the entry was written in.
    pub boot_id: String,
    /// The writing process, which lets start-up tell a live intent from an interrupted one.
    pub pid: u32,
    /// Who.
    pub technician: String,
    /// Where.
    pub site: String,
    /// Which device: a [`DeviceRecord`], or `null` (read it with [`Entry::device_record`]).
    pub device: Value,
    /// The event type.
    pub event: String,
    /// The record's payload (read it with [`Entry::read`]).
    pub details: Value,
    /// Hex leaf hash of the previous entry (64 zeros for the first).
    pub prev: String,
}

impl Entry {
    /// The outcome class of the event.
    pub fn outcome(&self) -> Outcome {
        Outcome::of_event(&self.event)
    }

    /// The seq of the intent this entry closes, if it is an outcome.
    pub fn intent_seq(&self) -> Option<u64> {
        self.details.get(INTENT_SEQ_KEY).and_then(Value::as_u64)
    }

    /// Whether the entry is an intent (`*_started`).
    pub fn is_intent(&self) -> bool {
        self.event.ends_with(INTENT_SUFFIX)
    }

    /// The entry's record: the one reader of what an entry says, for the CLI, the app and
    /// the hub (see [`crate::record`] for how entries of older schemas read).
    pub fn read(&self) -> Result<Reading, ReadError> {
        Event::from_parts(self.schema, &self.device, &self.event, &self.details)
    }

    /// The device the entry is about, if it names one that can be read.
    pub fn device_record(&self) -> Option<DeviceRecord> {
        match self.read() {
            Ok(r) => r.device().cloned(),
            Err(_) => None,
        }
    }

    /// The device serial number, if the entry names a device.
    pub fn device_serial(&self) -> Option<String> {
        self.device_record().map(|d| d.serial)
    }

    /// The device model name, if the entry names a device.
    pub fn device_model(&self) -> Option<String> {
        self.device_record().map(|d| d.model)
    }
}

fn legacy_schema() -> u32 {
    crate::record::LEGACY_SCHEMA
}

/// An entry with the exact bytes that were hashed and its leaf hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The parsed entry.
    pub entry: Entry,
    /// The exact JSON text that was hashed.
    pub body: String,
    /// `SHA-256(0x00 || body)`.
    pub leaf: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_classifies_known_names_only() {
        let cases = [
            ("device_identified", Outcome::Info),
            ("check_passed", Outcome::Succeeded),
            ("check_refused", Outcome::Refused),
            ("check_up_to_date", Outcome::Info),
            ("update_started", Outcome::Started),
            ("update_succeeded", Outcome::Succeeded),
            ("update_refused", Outcome::Refused),
            ("update_failed", Outcome::Failed),
            ("update_reverted", Outcome::Reverted),
            ("update_cancelled", Outcome::Cancelled),
            ("update_wrong_image", Outcome::WrongImage),
            ("update_interrupted", Outcome::Interrupted),
            ("sync_failed", Outcome::Failed),
            ("erase_interrupted", Outcome::Info),
            ("access_denied", Outcome::Info),
            ("weird", Outcome::Info),
            ("", Outcome::Info),
        ];
        for (event, want) in cases {
            assert_eq!(Outcome::of_event(event), want, "{event}");
        }
    }
}
