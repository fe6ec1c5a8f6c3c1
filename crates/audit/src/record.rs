//! The audit log's own record types: what an entry says, typed and versioned.
//!
//! An entry is permanent, tamper-evident evidence about a medical device, so its format is a
//! contract of its own: these types belong to the audit log and change only with a new
//! [`SCHEMA`] version, never because a planner or driver renamed a field. The session converts
//! its values into these records; the CLI, the app and the hub read them back through one
//! reader ([`crate::Entry::read`]) with no guessing between synonyms.
//!
//! On disk an entry keeps its envelope (seq, origin, times, technician, site, previous hash)
//! and three fields written from an [`Event`]: `device` (a [`DeviceRecord`], or `null`),
//! `event` (the event's name, e.g. `update_started`) and `details` (the event's payload
//! without the device). Every entry written by this version carries `"schema": 2`.
//!
//! **Entries written before typed records** (no `schema` field; read as schema 1) keep
//! verifying: the hashes cover the stored bytes, which are never rewritten. They are read as
//! follows: the envelope as it is; `device` as a [`DeviceRecord`] (the old device record used
//! the same names for serial, model, profile, hardware revision, bootloader version and the
//! `firmware` map; its `battery_percent` and `therapy_running` become [`DeviceRecord::fields`]);
//! the event name as it is; and `details` kept verbatim as a [`Legacy`] reading, shown as
//! written and never interpreted field by field. An entry with a schema newer than this build
//! knows is reported as such ([`ReadError::NewerSchema`]) and still verifies.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The record schema this build writes.
pub const SCHEMA: u32 = 2;

/// The schema of entries written before records were typed (they carry no `schema` field).
pub const LEGACY_SCHEMA: u32 = 1;

/// Event names: the `event` field of an entry. One name per record kind and outcome.
pub mod events {
    /// A device's identity was read.
    pub const DEVICE_IDENTIFIED: &str = "device_identified";
    /// A check found an update that may be applied.
    pub const CHECK_PASSED: &str = "check_passed";
    /// A check refused an update (every rule, found and required values).
    pub const CHECK_REFUSED: &str = "check_refused";
    /// A check found nothing newer to apply.
    pub const CHECK_UP_TO_DATE: &str = "check_up_to_date";
    /// Intent: an update step is about to touch the device. Written before the first byte.
    pub const UPDATE_STARTED: &str = "update_started";
    /// The step's images run and are confirmed (or already ran).
    pub const UPDATE_SUCCEEDED: &str = "update_succeeded";
    /// A rule refused the step right before its first byte; nothing was sent.
    pub const UPDATE_REFUSED: &str = "update_refused";
    /// The step failed at a stage; the old images are in charge unless the record says so.
    pub const UPDATE_FAILED: &str = "update_failed";
    /// The device went back to its previous images.
    pub const UPDATE_REVERTED: &str = "update_reverted";
    /// The technician cancelled before confirm.
    pub const UPDATE_CANCELLED: &str = "update_cancelled";
    /// After the step the device runs an image other than the one planned.
    pub const UPDATE_WRONG_IMAGE: &str = "update_wrong_image";
    /// The program stopped (crash, kill, power loss) between the intent and its outcome.
    pub const UPDATE_INTERRUPTED: &str = "update_interrupted";
    /// The remembered trust state rose (a newer recall list, a later signed time).
    pub const TRUST_UPDATED: &str = "trust_updated";
    /// A sync to the hub completed.
    pub const SYNC_SUCCEEDED: &str = "sync_succeeded";
    /// A sync to the hub failed.
    pub const SYNC_FAILED: &str = "sync_failed";

    /// Every event name fieldkit writes.
    pub const KNOWN: &[&str] = &[
        DEVICE_IDENTIFIED,
        CHECK_PASSED,
        CHECK_REFUSED,
        CHECK_UP_TO_DATE,
        UPDATE_STARTED,
        UPDATE_SUCCEEDED,
        UPDATE_REFUSED,
        UPDATE_FAILED,
        UPDATE_REVERTED,
        UPDATE_CANCELLED,
        UPDATE_WRONG_IMAGE,
        UPDATE_INTERRUPTED,
        TRUST_UPDATED,
        SYNC_SUCCEEDED,
        SYNC_FAILED,
    ];
}

/// A device as it was read: the fields the log, the hub's inventory and exposure queries use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Device profile id (the model's file in `device-profiles/`).
    #[serde(default)]
    pub profile: String,
    /// Model name as the device reports it.
    #[serde(default)]
    pub model: String,
    /// Serial number as the device reports it.
    pub serial: String,
    /// Hardware revision as the device reports it.
    #[serde(default)]
    pub hardware_revision: String,
    /// Bootloader version, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader_version: Option<String>,
    /// The version of each component that runs and is confirmed (it keeps booting).
    #[serde(default)]
    pub firmware: BTreeMap<String, String>,
    /// Components running an image on test (active, not confirmed): the next reset reverts
    /// them unless confirmed, so they are not counted as installed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub testing: BTreeMap<String, String>,
    /// Every image slot the device reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRecord>,
    /// The bootloader's security counter, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_counter: Option<u64>,
    /// Further identity fields (battery, therapy state, ...), as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// The identity fields the technician typed (off the rating plate, say) rather than the
    /// device reporting them; their values are in the fields above.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub typed: std::collections::BTreeSet<String>,
}

/// One image slot as the device reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Component name, when the profile names the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Image number.
    pub image: u32,
    /// Slot.
    pub slot: u32,
    /// Version as reported.
    pub version: String,
    /// Image hash as reported (hex).
    pub hash: String,
    /// Running now.
    pub active: bool,
    /// Confirmed.
    pub confirmed: bool,
    /// Marked for a test boot.
    pub pending: bool,
}

/// One rule as evaluated: pass or fail, the value found, the value required, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    /// Rule id (`target.hardware`, `package.changed_since_check`, ...).
    pub rule: String,
    /// Whether it held.
    pub passed: bool,
    /// The value found.
    pub found: String,
    /// The value required.
    pub required: String,
    /// The sentence the technician read.
    pub explanation: String,
}

/// The rules of one scope: `device` or a package id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleGroupRecord {
    /// `device`, or a package id.
    pub scope: String,
    /// The rules in evaluation order.
    pub rules: Vec<RuleRecord>,
}

/// A package named by its bytes: what was verified and is bound to the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDigests {
    /// Package id, `product@version`.
    pub id: String,
    /// SHA-256 of the whole package file (the content-addressed store's key).
    pub file_sha256: String,
    /// SHA-256 of `manifest.json` exactly as signed.
    pub manifest_sha256: String,
    /// SHA-256 of the CycloneDX SBOM member.
    pub sbom_sha256: String,
    /// Each payload's digest.
    pub payloads: Vec<PayloadDigest>,
}

/// One payload of a package, by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadDigest {
    /// Component.
    pub component: String,
    /// SHA-256 of the payload bytes.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// The MCUboot image hash the device reports once it holds the image, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_hash: Option<String>,
}

/// What a step changes on one component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Component.
    pub component: String,
    /// Image number.
    pub image: u32,
    /// Version before the step (`none` when nothing runs).
    pub from: String,
    /// Version after the step.
    pub to: String,
}

/// One step of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The package, by digest.
    pub package: PackageDigests,
    /// Why the step is there.
    pub reason: String,
    /// What it changes.
    pub changes: Vec<ChangeRecord>,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    /// The steps may be applied.
    Go,
    /// A rule failed.
    #[default]
    Refused,
    /// Nothing newer applies.
    UpToDate,
}

/// A package file considered by a check, by path and digest: binds what a later update is
/// given to what was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedFile {
    /// The path as given (or the home's copy).
    pub path: String,
    /// SHA-256 of the bytes read, when the file could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A file a check set aside, and the rule it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAsideRecord {
    /// The file.
    pub path: String,
    /// The rule.
    pub rule: RuleRecord,
}

/// The trust state a decision was made with; restoring it from the log makes the state file
/// impossible to roll back by deleting it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustSnapshot {
    /// Trust root version.
    #[serde(default)]
    pub root_version: u64,
    /// The highest recall list version seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_version: Option<u64>,
    /// The trusted-time high-water mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_mark: Option<DateTime<Utc>>,
    /// The highest security counter seen on the device this entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_counter: Option<u32>,
}

/// `device_identified`: a device was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identified {
    /// The device.
    #[serde(skip)]
    pub device: DeviceRecord,
    /// The port it was read on.
    pub port: String,
}

/// `check_*`: a check's decision with every rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// The device as read for the check.
    #[serde(skip)]
    pub device: DeviceRecord,
    /// The verdict.
    pub verdict: CheckVerdict,
    /// One sentence for the technician.
    pub summary: String,
    /// The package the plan leads to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How the plan saw the device's installed versions (e.g. an image on test not counted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basis: Vec<String>,
    /// The steps, each naming its package by digest.
    pub steps: Vec<StepRecord>,
    /// Every rule evaluated.
    pub rules: Vec<RuleGroupRecord>,
    /// Risks the technician must accept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<String>,
    /// The package files considered, by path and digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<CheckedFile>,
    /// Files set aside, with the rule each failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_aside: Vec<SetAsideRecord>,
    /// The trust state the decision was made with.
    pub trust: TrustSnapshot,
}

/// `update_started`: the intent, written before the device is touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateIntent {
    /// The device before the step.
    #[serde(skip)]
    pub device: DeviceRecord,
    /// The check entry whose plan this applies.
    pub check_seq: u64,
    /// Step number, from 1.
    pub step: u32,
    /// Steps in the plan.
    pub steps: u32,
    /// The step: package by digest, reason, changes.
    pub plan_step: StepRecord,
    /// Risks the technician accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks_accepted: Vec<String>,
}

/// Where an update step was when it ended (the stages of DESIGN.md §7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading and checking before the first byte.
    #[default]
    Preparing,
    /// Sending the image.
    Uploading,
    /// Comparing the device's copy with the package's.
    Verifying,
    /// Marking for a test boot.
    MarkingForTest,
    /// Resetting.
    Resetting,
    /// Waiting for the device to come back.
    WaitingForDevice,
    /// Reading back which image runs.
    ReadingBack,
    /// Confirming.
    Confirming,
    /// Putting the old image back in charge.
    Reverting,
    /// Finished.
    Done,
}

/// How an update step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum StepVerdict {
    /// The new images run and are confirmed.
    Applied,
    /// The new images were written over the running ones (no test slot: MCUboot serial
    /// recovery, a YMODEM bootloader), read back by hash or version, and started.
    AppliedInPlace,
    /// The device already ran these images.
    AlreadyInstalled,
    /// A rule refused the step right before its first byte; nothing was sent.
    Refused {
        /// The rules that refused.
        rules: Vec<RuleRecord>,
    },
    /// The step failed at a stage.
    Failed {
        /// The stage reached.
        stage: Stage,
        /// A short machine-readable kind.
        kind: String,
        /// What went wrong.
        message: String,
    },
    /// The device went back to its previous images.
    Reverted {
        /// The stage at which it happened.
        stage: Stage,
        /// Why.
        reason: String,
    },
    /// The technician cancelled; the previous images run.
    Cancelled {
        /// The stage at which it was cancelled.
        stage: Stage,
    },
    /// After the step the device runs an image other than the one planned.
    WrongImage {
        /// Component.
        component: String,
        /// What runs.
        found: String,
        /// What was planned.
        required: String,
    },
}

impl StepVerdict {
    /// The event name an outcome with this verdict is written under.
    pub fn event(&self) -> &'static str {
        match self {
            StepVerdict::Applied | StepVerdict::AppliedInPlace | StepVerdict::AlreadyInstalled => {
                events::UPDATE_SUCCEEDED
            }
            StepVerdict::Refused { .. } => events::UPDATE_REFUSED,
            StepVerdict::Failed { .. } => events::UPDATE_FAILED,
            StepVerdict::Reverted { .. } => events::UPDATE_REVERTED,
            StepVerdict::Cancelled { .. } => events::UPDATE_CANCELLED,
            StepVerdict::WrongImage { .. } => events::UPDATE_WRONG_IMAGE,
        }
    }
}

/// `update_*` outcomes: how a step ended, with the versions before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOutcome {
    /// The device as read after the step (or before, when it could not be read again).
    #[serde(skip)]
    pub device: DeviceRecord,
    /// The intent this closes.
    pub intent_seq: u64,
    /// The package, by digest (SBOM digest included).
    pub package: PackageDigests,
    /// How it ended.
    pub result: StepVerdict,
    /// Component versions before the step.
    pub before: BTreeMap<String, String>,
    /// Component versions after the step, as read back.
    pub after: BTreeMap<String, String>,
    /// Whether `after` was read from the device after the step (false: it could not be).
    pub read_back: bool,
}

/// `update_interrupted`: an intent left without an outcome by a process that stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interrupted {
    /// The device, as the intent recorded it.
    #[serde(skip)]
    pub device: DeviceRecord,
    /// The intent this closes.
    pub intent_seq: u64,
    /// Why there was no outcome.
    pub reason: String,
}

/// `trust_updated`: the remembered trust state rose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustUpdate {
    /// The state after the change.
    pub trust: TrustSnapshot,
    /// What raised it, in words (an imported recall list, an imported package).
    pub cause: String,
}

/// `sync_*`: a sync with a hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// The hub's address.
    pub hub: String,
    /// Entries sent.
    pub sent: u64,
    /// Entries the hub acknowledges.
    pub acked_size: u64,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an entry records: one variant per kind of record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `device_identified`.
    DeviceIdentified(Identified),
    /// `check_passed`, `check_refused` or `check_up_to_date`, by verdict.
    Check(CheckRecord),
    /// `update_started`.
    UpdateStarted(UpdateIntent),
    /// `update_succeeded`, `update_refused`, `update_failed`, `update_reverted`,
    /// `update_cancelled` or `update_wrong_image`, by verdict.
    Update(UpdateOutcome),
    /// `update_interrupted`.
    UpdateInterrupted(Interrupted),
    /// `trust_updated`.
    TrustUpdated(TrustUpdate),
    /// `sync_succeeded` or `sync_failed`.
    Sync(SyncRecord),
}

/// An entry written before records were typed: its details as they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct Legacy {
    /// The event name.
    pub event: String,
    /// The device, read as a [`DeviceRecord`] when it has a serial.
    pub device: Option<DeviceRecord>,
    /// The details, verbatim.
    pub details: Value,
}

/// What [`crate::Entry::read`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reading {
    /// A typed record.
    Typed(Event),
    /// An entry written before records were typed.
    Legacy(Legacy),
}

impl Reading {
    /// The device the entry is about.
    pub fn device(&self) -> Option<&DeviceRecord> {
        match self {
            Reading::Typed(e) => e.device(),
            Reading::Legacy(l) => l.device.as_ref(),
        }
    }
}

/// Why an entry could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Written by a newer fieldkit.
    #[error("entry has record schema {found}; this fieldkit reads up to schema {supported}")]
    NewerSchema {
        /// The schema found.
        found: u32,
        /// The newest known.
        supported: u32,
    },
    /// The event name is not one this schema defines.
    #[error("event {found:?} is not a known event of schema {schema}: required one of {known}")]
    UnknownEvent {
        /// The name found.
        found: String,
        /// The entry's schema.
        schema: u32,
        /// The names known.
        known: String,
    },
    /// The payload does not have the shape its event requires.
    #[error("{event} details are not a valid record: {reason}")]
    BadPayload {
        /// The event.
        event: String,
        /// What the decoder said.
        reason: String,
    },
}

impl Event {
    /// The event name written to the entry.
    pub fn name(&self) -> &'static str {
        match self {
            Event::DeviceIdentified(_) => events::DEVICE_IDENTIFIED,
            Event::Check(c) => match c.verdict {
                CheckVerdict::Go => events::CHECK_PASSED,
                CheckVerdict::Refused => events::CHECK_REFUSED,
                CheckVerdict::UpToDate => events::CHECK_UP_TO_DATE,
            },
            Event::UpdateStarted(_) => events::UPDATE_STARTED,
            Event::Update(u) => u.result.event(),
            Event::UpdateInterrupted(_) => events::UPDATE_INTERRUPTED,
            Event::TrustUpdated(_) => events::TRUST_UPDATED,
            Event::Sync(s) => {
                if s.error.is_some() {
                    events::SYNC_FAILED
                } else {
                    events::SYNC_SUCCEEDED
                }
            }
        }
    }

    /// The device the record is about, if any.
    pub fn device(&self) -> Option<&DeviceRecord> {
        match self {
            Event::DeviceIdentified(r) => Some(&r.device),
            Event::Check(r) => Some(&r.device),
            Event::UpdateStarted(r) => Some(&r.device),
            Event::Update(r) => Some(&r.device),
            Event::UpdateInterrupted(r) => Some(&r.device),
            Event::TrustUpdated(_) | Event::Sync(_) => None,
        }
    }

    /// The seq of the intent this record closes, if it is an outcome.
    pub fn intent_seq(&self) -> Option<u64> {
        match self {
            Event::Update(r) => Some(r.intent_seq),
            Event::UpdateInterrupted(r) => Some(r.intent_seq),
            _ => None,
        }
    }

    /// The trust state the record carries, if any.
    pub fn trust(&self) -> Option<&TrustSnapshot> {
        match self {
            Event::Check(r) => Some(&r.trust),
            Event::TrustUpdated(r) => Some(&r.trust),
            _ => None,
        }
    }

    /// The three stored fields: `device`, `event`, `details`.
    pub fn to_parts(&self) -> (Value, &'static str, Value) {
        let device = self
            .device()
            .map_or(Value::Null, |d| serde_json::to_value(d).unwrap_or_default());
        // Serialising plain structs of strings, numbers and maps cannot fail.
        let details = match self {
            Event::DeviceIdentified(r) => serde_json::to_value(r),
            Event::Check(r) => serde_json::to_value(r),
            Event::UpdateStarted(r) => serde_json::to_value(r),
            Event::Update(r) => serde_json::to_value(r),
            Event::UpdateInterrupted(r) => serde_json::to_value(r),
            Event::TrustUpdated(r) => serde_json::to_value(r),
            Event::Sync(r) => serde_json::to_value(r),
        }
        .unwrap_or_default();
        (device, self.name(), details)
    }

    /// Reads the stored fields of an entry of `schema`.
    pub fn from_parts(
        schema: u32,
        device: &Value,
        event: &str,
        details: &Value,
    ) -> Result<Reading, ReadError> {
        if schema > SCHEMA {
            return Err(ReadError::NewerSchema {
                found: schema,
                supported: SCHEMA,
            });
        }
        if schema < SCHEMA {
            return Ok(Reading::Legacy(Legacy {
                event: event.to_owned(),
                device: legacy_device(device),
                details: details.clone(),
            }));
        }
        let bad = |reason: String| ReadError::BadPayload {
            event: event.to_owned(),
            reason,
        };
        let dev = || -> Result<DeviceRecord, ReadError> {
            serde_json::from_value(device.clone()).map_err(|e| bad(format!("device: {e}")))
        };
        fn payload<T: serde::de::DeserializeOwned>(
            details: &Value,
            bad: impl Fn(String) -> ReadError,
        ) -> Result<T, ReadError> {
            serde_json::from_value(details.clone()).map_err(|e| bad(e.to_string()))
        }
        let event_of = match event {
            events::DEVICE_IDENTIFIED => Event::DeviceIdentified(Identified {
                device: dev()?,
                ..payload(details, bad)?
            }),
            events::CHECK_PASSED | events::CHECK_REFUSED | events::CHECK_UP_TO_DATE => {
                let r: CheckRecord = payload(details, bad)?;
                let r = CheckRecord {
                    device: dev()?,
                    ..r
                };
                if r.verdict_event() != event {
                    return Err(bad(format!(
                        "verdict {:?} written under {event}",
                        r.verdict
                    )));
                }
                Event::Check(r)
            }
            events::UPDATE_STARTED => Event::UpdateStarted(UpdateIntent {
                device: dev()?,
                ..payload(details, bad)?
            }),
            events::UPDATE_SUCCEEDED
            | events::UPDATE_REFUSED
            | events::UPDATE_FAILED
            | events::UPDATE_REVERTED
            | events::UPDATE_CANCELLED
            | events::UPDATE_WRONG_IMAGE => {
                let r: UpdateOutcome = payload(details, bad)?;
                if r.result.event() != event {
                    return Err(bad(format!("{:?} written under {event}", r.result)));
                }
                Event::Update(UpdateOutcome {
                    device: dev()?,
                    ..r
                })
            }
            events::UPDATE_INTERRUPTED => Event::UpdateInterrupted(Interrupted {
                device: dev()?,
                ..payload(details, bad)?
            }),
            events::TRUST_UPDATED => Event::TrustUpdated(payload(details, bad)?),
            events::SYNC_SUCCEEDED | events::SYNC_FAILED => {
                let r: SyncRecord = payload(details, bad)?;
                if (event == events::SYNC_FAILED) != r.error.is_some() {
                    return Err(bad(format!("sync record does not match {event}")));
                }
                Event::Sync(r)
            }
            other => {
                return Err(ReadError::UnknownEvent {
                    found: other.to_owned(),
                    schema,
                    known: events::KNOWN.join(", "),
                });
            }
        };
        Ok(Reading::Typed(event_of))
    }

    /// One line for a person: what happened, in words. Strings from devices and files are as
    /// recorded; make them inert for the output they go to.
    pub fn summary(&self) -> String {
        match self {
            Event::DeviceIdentified(r) => format!(
                "identified {} {} on {}",
                r.device.model, r.device.serial, r.port
            ),
            Event::Check(r) => format!("check: {}", r.summary),
            Event::UpdateStarted(r) => format!(
                "step {} of {}: {} ({})",
                r.step,
                r.steps,
                r.plan_step.package.id,
                changes(&r.plan_step.changes)
            ),
            Event::Update(r) => {
                let how = match &r.result {
                    StepVerdict::Applied => "applied".to_owned(),
                    StepVerdict::AppliedInPlace => "applied in place".to_owned(),
                    StepVerdict::AlreadyInstalled => "already installed".to_owned(),
                    StepVerdict::Refused { rules } => format!(
                        "refused before the first byte by {}",
                        rules
                            .iter()
                            .map(|r| r.rule.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    StepVerdict::Failed { stage, message, .. } => {
                        format!("failed while {}: {message}", stage.name())
                    }
                    StepVerdict::Reverted { reason, .. } => format!("reverted: {reason}"),
                    StepVerdict::Cancelled { stage } => {
                        format!("cancelled while {}", stage.name())
                    }
                    StepVerdict::WrongImage {
                        component,
                        found,
                        required,
                    } => format!("wrong image: {component} runs {found}, planned {required}"),
                };
                format!("{}: {how}", r.package.id)
            }
            Event::UpdateInterrupted(r) => format!("update interrupted: {}", r.reason),
            Event::TrustUpdated(r) => format!("trust state raised: {}", r.cause),
            Event::Sync(r) => match &r.error {
                None => format!(
                    "synced {} entries to {}; acknowledged {}",
                    r.sent, r.hub, r.acked_size
                ),
                Some(e) => format!("sync with {} failed: {e}", r.hub),
            },
        }
    }
}

impl CheckRecord {
    fn verdict_event(&self) -> &'static str {
        Event::Check(CheckRecord {
            verdict: self.verdict,
            ..CheckRecord::default()
        })
        .name()
    }
}

impl Stage {
    /// The stage's name in records and exports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Preparing => "preparing",
            Stage::Uploading => "uploading",
            Stage::Verifying => "verifying",
            Stage::MarkingForTest => "marking_for_test",
            Stage::Resetting => "resetting",
            Stage::WaitingForDevice => "waiting_for_device",
            Stage::ReadingBack => "reading_back",
            Stage::Confirming => "confirming",
            Stage::Reverting => "reverting",
            Stage::Done => "done",
        }
    }
}

fn changes(c: &[ChangeRecord]) -> String {
    c.iter()
        .map(|c| format!("{} {} -> {}", c.component, c.from, c.to))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The device record of a schema-1 entry: the same names, except that the old record kept
/// `battery_percent` and `therapy_running` at the top level.
fn legacy_device(device: &Value) -> Option<DeviceRecord> {
    let mut record: DeviceRecord = serde_json::from_value(device.clone()).ok()?;
    for key in ["battery_percent", "therapy_running"] {
        match device.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                record.fields.insert(key.to_owned(), s.clone());
            }
            Some(v) => {
                record.fields.insert(key.to_owned(), v.to_string());
            }
        }
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn device() -> DeviceRecord {
        DeviceRecord {
            profile: "pump".into(),
            model: "Pump".into(),
            serial: "SN-1".into(),
            hardware_revision: "C".into(),
            firmware: [("app".to_owned(), "1.0.0".to_owned())].into(),
            ..DeviceRecord::default()
        }
    }

    fn round_trip(e: Event) {
        let (device, name, details) = e.to_parts();
        let back = Event::from_parts(SCHEMA, &device, name, &details).unwrap();
        assert_eq!(back, Reading::Typed(e), "{name}");
    }

    #[test]
    fn every_event_reads_back_as_written() {
        let digests = PackageDigests {
            id: "pump@1.1.0".into(),
            file_sha256: "aa".into(),
            manifest_sha256: "bb".into(),
            sbom_sha256: "cc".into(),
            payloads: vec![PayloadDigest {
                component: "app".into(),
                sha256: "dd".into(),
                size: 10,
                image_hash: Some("ee".into()),
            }],
        };
        round_trip(Event::DeviceIdentified(Identified {
            device: device(),
            port: "/dev/ttyACM0".into(),
        }));
        for verdict in [
            CheckVerdict::Go,
            CheckVerdict::Refused,
            CheckVerdict::UpToDate,
        ] {
            round_trip(Event::Check(CheckRecord {
                device: device(),
                verdict,
                summary: "s".into(),
                ..CheckRecord::default()
            }));
        }
        round_trip(Event::UpdateStarted(UpdateIntent {
            device: device(),
            check_seq: 3,
            step: 1,
            steps: 2,
            ..UpdateIntent::default()
        }));
        for result in [
            StepVerdict::Applied,
            StepVerdict::AppliedInPlace,
            StepVerdict::AlreadyInstalled,
            StepVerdict::Refused { rules: vec![] },
            StepVerdict::Failed {
                stage: Stage::Uploading,
                kind: "link".into(),
                message: "m".into(),
            },
            StepVerdict::Reverted {
                stage: Stage::ReadingBack,
                reason: "r".into(),
            },
            StepVerdict::Cancelled {
                stage: Stage::Verifying,
            },
            StepVerdict::WrongImage {
                component: "app".into(),
                found: "1".into(),
                required: "2".into(),
            },
        ] {
            round_trip(Event::Update(UpdateOutcome {
                device: device(),
                intent_seq: 4,
                package: digests.clone(),
                result,
                before: BTreeMap::new(),
                after: BTreeMap::new(),
                read_back: true,
            }));
        }
        round_trip(Event::UpdateInterrupted(Interrupted {
            device: device(),
            intent_seq: 4,
            reason: "killed".into(),
        }));
        round_trip(Event::TrustUpdated(TrustUpdate::default()));
        round_trip(Event::Sync(SyncRecord {
            hub: "h".into(),
            ..SyncRecord::default()
        }));
        round_trip(Event::Sync(SyncRecord {
            error: Some("e".into()),
            ..SyncRecord::default()
        }));
    }

    #[test]
    fn a_record_under_the_wrong_name_or_shape_is_refused() {
        let (device, _, details) = Event::Check(CheckRecord {
            device: device(),
            verdict: CheckVerdict::Refused,
            ..CheckRecord::default()
        })
        .to_parts();
        let cases = [
            (events::CHECK_PASSED, details.clone(), "written under"),
            (events::UPDATE_STARTED, details.clone(), "details are not"),
            ("update_exploded", details.clone(), "not a known event"),
            (events::CHECK_REFUSED, json!([1, 2]), "details are not"),
        ];
        for (event, details, want) in cases {
            let e = Event::from_parts(SCHEMA, &device, event, &details).unwrap_err();
            assert!(e.to_string().contains(want), "{event}: {e}");
        }
        let e = Event::from_parts(SCHEMA + 1, &device, events::CHECK_REFUSED, &details);
        assert!(matches!(e, Err(ReadError::NewerSchema { found: 3, .. })));
    }

    #[test]
    fn legacy_entries_keep_their_details_verbatim() {
        let device = json!({"serial": "P7-1", "model": "InfuSafe P7", "profile": "p7",
            "hardware_revision": "C", "bootloader_version": null,
            "firmware": {"app": "2.3.1"}, "battery_percent": 87, "therapy_running": false});
        let details = json!({"plan": {"verdict": "go"}});
        let Reading::Legacy(l) =
            Event::from_parts(LEGACY_SCHEMA, &device, "check_passed", &details).unwrap()
        else {
            panic!("legacy")
        };
        assert_eq!(l.details, details);
        let d = l.device.unwrap();
        assert_eq!(d.serial, "P7-1");
        assert_eq!(d.firmware["app"], "2.3.1");
        assert_eq!(d.fields["battery_percent"], "87");
        assert_eq!(d.fields["therapy_running"], "false");
    }
}

/// Small, valid records for tests, benchmarks and tools that need entries without a device
/// session behind them.
pub mod examples {
    use super::*;

    /// A device with `serial`, `model` and the given component versions.
    pub fn device(serial: &str, model: &str, firmware: &[(&str, &str)]) -> DeviceRecord {
        DeviceRecord {
            profile: model.to_owned(),
            model: model.to_owned(),
            serial: serial.to_owned(),
            hardware_revision: "A".to_owned(),
            firmware: firmware
                .iter()
                .map(|(c, v)| ((*c).to_owned(), (*v).to_owned()))
                .collect(),
            ..DeviceRecord::default()
        }
    }

    /// `device_identified`.
    pub fn identified(device: DeviceRecord) -> Event {
        Event::DeviceIdentified(Identified {
            device,
            port: "/dev/ttyACM0".to_owned(),
        })
    }

    /// A check with `verdict`; a refused one fails `rule` with `found` and `required`.
    pub fn check(device: DeviceRecord, verdict: CheckVerdict, rule: (&str, &str, &str)) -> Event {
        let (rule, found, required) = rule;
        Event::Check(CheckRecord {
            device,
            verdict,
            summary: format!("{verdict:?}"),
            rules: vec![RuleGroupRecord {
                scope: "device".to_owned(),
                rules: vec![RuleRecord {
                    rule: rule.to_owned(),
                    passed: verdict != CheckVerdict::Refused,
                    found: found.to_owned(),
                    required: required.to_owned(),
                    explanation: String::new(),
                }],
            }],
            ..CheckRecord::default()
        })
    }

    /// The package `id` by made-up digests.
    pub fn package(id: &str) -> PackageDigests {
        PackageDigests {
            id: id.to_owned(),
            file_sha256: "0".repeat(64),
            manifest_sha256: "1".repeat(64),
            sbom_sha256: "2".repeat(64),
            payloads: Vec::new(),
        }
    }

    /// `update_started` for `package`.
    pub fn intent(device: DeviceRecord, package: &str) -> Event {
        Event::UpdateStarted(UpdateIntent {
            device,
            check_seq: 0,
            step: 1,
            steps: 1,
            plan_step: StepRecord {
                package: self::package(package),
                reason: "the newest release for this device".to_owned(),
                changes: Vec::new(),
            },
            risks_accepted: Vec::new(),
        })
    }

    /// An outcome of the intent at `intent_seq`, with the device as it is after.
    pub fn outcome(
        intent_seq: u64,
        device: DeviceRecord,
        package: &str,
        result: StepVerdict,
    ) -> Event {
        Event::Update(UpdateOutcome {
            after: device.firmware.clone(),
            device,
            intent_seq,
            package: self::package(package),
            result,
            before: BTreeMap::new(),
            read_back: true,
        })
    }
}
