//! Entries: what is written, how it is serialised, and the known event types.
//!
//! An entry is stored as the exact JSON bytes that were hashed into the tree; nothing is ever
//! re-serialised before hashing, so the leaf hash does not depend on a JSON library's map order.
//! Parsing those bytes back gives an [`Entry`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Event type names written by fieldkit. The set is open: any `snake_case` name is accepted,
/// and these are the ones the hub and the dashboard know how to read.
pub mod events {
    /// A device's identity was read.
    pub const DEVICE_IDENTIFIED: &str = "device_identified";
    /// A check found an update applicable (details carry the plan).
    pub const CHECK_PASSED: &str = "check_passed";
    /// A check refused an update (details carry every rule, found and required values).
    pub const CHECK_REFUSED: &str = "check_refused";
    /// Intent: an update is about to touch the device. Written before the first byte is sent.
    pub const UPDATE_STARTED: &str = "update_started";
    /// The update was confirmed on the device.
    pub const UPDATE_SUCCEEDED: &str = "update_succeeded";
    /// The update failed; details carry the stage it reached.
    pub const UPDATE_FAILED: &str = "update_failed";
    /// The device reverted to its previous image.
    pub const UPDATE_REVERTED: &str = "update_reverted";
    /// The technician cancelled before confirm.
    pub const UPDATE_CANCELLED: &str = "update_cancelled";
    /// The program stopped (crash, kill, power loss) between the intent and its outcome.
    pub const UPDATE_INTERRUPTED: &str = "update_interrupted";
    /// A sync to the hub completed; details carry the acked size.
    pub const SYNC_SUCCEEDED: &str = "sync_succeeded";
    /// A sync to the hub failed; details carry the reason.
    pub const SYNC_FAILED: &str = "sync_failed";

    /// Every event type fieldkit itself writes.
    pub const KNOWN: &[&str] = &[
        DEVICE_IDENTIFIED,
        CHECK_PASSED,
        CHECK_REFUSED,
        UPDATE_STARTED,
        UPDATE_SUCCEEDED,
        UPDATE_FAILED,
        UPDATE_REVERTED,
        UPDATE_CANCELLED,
        UPDATE_INTERRUPTED,
        SYNC_SUCCEEDED,
        SYNC_FAILED,
    ];
}

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
}

impl Outcome {
    /// Classifies an event type by its suffix, so new `<action>_<outcome>` names classify too.
    pub fn of_event(event: &str) -> Self {
        let suffix = event.rsplit('_').next().unwrap_or("");
        match suffix {
            "started" => Self::Started,
            "succeeded" | "passed" => Self::Succeeded,
            "refused" | "denied" => Self::Refused,
            "failed" => Self::Failed,
            "reverted" => Self::Reverted,
            "cancelled" => Self::Cancelled,
            "interrupted" => Self::Interrupted,
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
        }
    }
}

/// What the caller supplies for a new entry; the log adds seq, times, boot id and chaining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    /// Who did it.
    pub technician: String,
    /// Where (customer site).
    pub site: String,
    /// The device's identity as read: structured. The hub indexes `serial`, `model` (or
    /// `profile`), `hardware_revision` and `firmware` (an object of component -> version, or an
    /// array of `{name|component, version}`); other fields are kept as they are.
    pub device: Value,
    /// The event type, e.g. [`events::UPDATE_STARTED`].
    pub event: String,
    /// Structured details: the plan, the rules, the stage reached. Outcomes of an intent carry
    /// [`INTENT_SEQ_KEY`].
    pub details: Value,
}

/// One entry, as stored and hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
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
    /// Which device (see [`NewEntry::device`]).
    pub device: Value,
    /// The event type.
    pub event: String,
    /// Details.
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

    /// The device serial number, if the identity has one.
    pub fn device_serial(&self) -> Option<&str> {
        device_field(&self.device, &["serial", "serial_number"])
    }

    /// The device model, if the identity has one.
    pub fn device_model(&self) -> Option<&str> {
        device_field(&self.device, &["model", "profile", "product"])
    }
}

/// Reads the first string field of `device` among `names`.
pub fn device_field<'a>(device: &'a Value, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| device.get(*n).and_then(Value::as_str))
}

/// The firmware versions in a device identity: `(component, version)` pairs, from either an
/// object `{"app": "1.2.3"}` or an array `[{"name": "app", "version": "1.2.3"}]` under
/// `firmware` or `components`.
pub fn device_firmware(device: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["firmware", "components"] {
        match device.get(key) {
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let version = v
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| v.get("version").and_then(Value::as_str).map(str::to_owned));
                    if let Some(version) = version {
                        out.push((k.clone(), version));
                    }
                }
            }
            Some(Value::Array(a)) => {
                for c in a {
                    let name = device_field(c, &["name", "component", "image"])
                        .map(str::to_owned)
                        .or_else(|| c.get("image").map(|i| i.to_string()));
                    let version = device_field(c, &["version"]);
                    if let (Some(n), Some(v)) = (name, version) {
                        out.push((n, v.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    out
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
    use serde_json::json;

    #[test]
    fn outcome_classifies_by_suffix() {
        let cases = [
            ("device_identified", Outcome::Info),
            ("check_passed", Outcome::Succeeded),
            ("check_refused", Outcome::Refused),
            ("update_started", Outcome::Started),
            ("update_succeeded", Outcome::Succeeded),
            ("update_failed", Outcome::Failed),
            ("update_reverted", Outcome::Reverted),
            ("update_cancelled", Outcome::Cancelled),
            ("update_interrupted", Outcome::Interrupted),
            ("erase_interrupted", Outcome::Interrupted),
            ("sync_failed", Outcome::Failed),
            ("weird", Outcome::Info),
            ("", Outcome::Info),
        ];
        for (event, want) in cases {
            assert_eq!(Outcome::of_event(event), want, "{event}");
        }
    }

    #[test]
    fn firmware_is_read_from_objects_and_arrays() {
        let cases = [
            (
                json!({"firmware": {"app": "1.2.3", "net": "0.9.0"}}),
                vec![("app", "1.2.3"), ("net", "0.9.0")],
            ),
            (
                json!({"firmware": {"app": {"version": "2.0.0"}}}),
                vec![("app", "2.0.0")],
            ),
            (
                json!({"components": [{"name": "app", "version": "1.0.0"}, {"version": "x"}]}),
                vec![("app", "1.0.0")],
            ),
            (
                json!({"components": [{"image": 1, "version": "3.1.0"}]}),
                vec![("1", "3.1.0")],
            ),
            (json!({"firmware": "garbage"}), vec![]),
            (json!(null), vec![]),
        ];
        for (device, want) in cases {
            let got = device_firmware(&device);
            let want: Vec<(String, String)> = want
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
            assert_eq!(got, want, "{device}");
        }
    }
}
