//! From the session's values to the audit log's own record types.
//!
//! The audit record is a format of its own (`fieldkit_audit::record`); the planner's and the
//! drivers' types may change without changing it. These conversions are the one place where
//! the two meet.

use std::collections::BTreeMap;

use fieldkit_audit::record::{
    self as rec, ChangeRecord, DeviceRecord, ImageRecord, PackageDigests, PayloadDigest,
    RuleGroupRecord, RuleRecord, StepRecord,
};
use fieldkit_plan::{Plan, Step, Verdict};
use fieldkit_profile::Identity;
use fieldkit_trust::Finding;

use crate::apply::Stage;
use crate::outcome::StepVerdict;

/// The device as the log records it. Versions an image runs on test go to `testing`, not
/// `firmware`: they are not installed until confirmed.
pub fn device_record(identity: &Identity) -> DeviceRecord {
    let mut firmware = BTreeMap::new();
    let mut testing = BTreeMap::new();
    for s in identity.slots.iter().filter(|s| s.active) {
        let name = s
            .component
            .clone()
            .unwrap_or_else(|| format!("image{}", s.image));
        if s.confirmed {
            firmware.insert(name, s.version.clone());
        } else {
            // The confirmed image waits in the other slot; it is what the device reverts to.
            if let Some(c) = identity
                .slots
                .iter()
                .find(|o| o.image == s.image && !o.active && o.confirmed)
            {
                firmware.insert(name.clone(), c.version.clone());
            }
            testing.insert(name, s.version.clone());
        }
    }
    // Every declared field beyond those the record has places for, as text; which of them
    // the technician typed rather than the device reporting them is said apart.
    let named = [
        "model",
        "serial",
        "hardware_revision",
        "bootloader_version",
        "security_counter",
    ];
    let fields = identity
        .fields
        .iter()
        .filter(|(name, _)| !named.contains(&name.as_str()))
        .map(|(name, r)| (name.clone(), r.value.to_string()))
        .collect();
    let typed = identity
        .fields
        .iter()
        .filter(|(_, r)| r.typed())
        .map(|(name, _)| name.clone())
        .collect();
    DeviceRecord {
        profile: identity.profile.clone(),
        model: identity.model.clone(),
        serial: identity.serial.clone(),
        hardware_revision: identity.hardware_revision.clone(),
        bootloader_version: identity.bootloader_version.clone(),
        firmware,
        testing,
        images: identity
            .slots
            .iter()
            .map(|s| ImageRecord {
                component: s.component.clone(),
                image: s.image,
                slot: s.slot,
                version: s.version.clone(),
                hash: s.hash.clone(),
                active: s.active,
                confirmed: s.confirmed,
                pending: s.pending,
            })
            .collect(),
        security_counter: identity
            .int("security_counter")
            .and_then(|c| u64::try_from(c).ok()),
        fields,
        typed,
    }
}

/// The versions a device record says are installed (confirmed), by component.
pub fn versions(identity: &Identity) -> BTreeMap<String, String> {
    device_record(identity).firmware
}

/// A rule as the log records it.
pub fn rule(f: &Finding) -> RuleRecord {
    RuleRecord {
        rule: f.rule.clone(),
        passed: f.passed,
        found: f.found.clone(),
        required: f.required.clone(),
        explanation: f.explanation.clone(),
    }
}

/// A step's package, by the digests the plan bound it to.
pub fn digests(step: &Step) -> PackageDigests {
    PackageDigests {
        id: step.package.clone(),
        file_sha256: step.file_sha256.clone(),
        manifest_sha256: step.manifest_sha256.clone(),
        sbom_sha256: step.sbom_sha256.clone(),
        payloads: step
            .payloads
            .iter()
            .map(|p| PayloadDigest {
                component: p.component.clone(),
                sha256: p.sha256.clone(),
                size: p.size,
                image_hash: p.image_hash.clone(),
            })
            .collect(),
    }
}

/// A step as the log records it.
pub fn step_record(step: &Step) -> StepRecord {
    StepRecord {
        package: digests(step),
        reason: step.reason.clone(),
        changes: step
            .payloads
            .iter()
            .map(|p| ChangeRecord {
                component: p.component.clone(),
                image: p.image,
                from: p.from.clone(),
                to: p.to.clone(),
            })
            .collect(),
    }
}

/// The plan's verdict as the log records it.
pub fn check_verdict(plan: &Plan) -> rec::CheckVerdict {
    match plan.verdict {
        Verdict::Go => rec::CheckVerdict::Go,
        Verdict::Refused => rec::CheckVerdict::Refused,
        Verdict::UpToDate => rec::CheckVerdict::UpToDate,
    }
}

/// Every rule group of a plan.
pub fn rule_groups(plan: &Plan) -> Vec<RuleGroupRecord> {
    plan.rules
        .iter()
        .map(|g| RuleGroupRecord {
            scope: g.scope.clone(),
            rules: g.findings.iter().map(rule).collect(),
        })
        .collect()
}

/// A stage as the log records it.
pub fn stage(s: Stage) -> rec::Stage {
    match s {
        Stage::Preparing => rec::Stage::Preparing,
        Stage::Uploading => rec::Stage::Uploading,
        Stage::Verifying => rec::Stage::Verifying,
        Stage::MarkingForTest => rec::Stage::MarkingForTest,
        Stage::Resetting => rec::Stage::Resetting,
        Stage::WaitingForDevice => rec::Stage::WaitingForDevice,
        Stage::ReadingBack => rec::Stage::ReadingBack,
        Stage::Confirming => rec::Stage::Confirming,
        Stage::Reverting => rec::Stage::Reverting,
        Stage::Done => rec::Stage::Done,
    }
}

/// A step's verdict as the log records it; `None` for a step that was never attempted (it
/// has no intent and no outcome entry).
pub fn step_verdict(v: &StepVerdict) -> Option<rec::StepVerdict> {
    Some(match v {
        StepVerdict::Applied => rec::StepVerdict::Applied,
        StepVerdict::AppliedInPlace => rec::StepVerdict::AppliedInPlace,
        StepVerdict::AlreadyInstalled => rec::StepVerdict::AlreadyInstalled,
        StepVerdict::Refused { rules } => rec::StepVerdict::Refused {
            rules: rules.iter().map(rule).collect(),
        },
        StepVerdict::Failed {
            stage: s,
            kind,
            message,
        } => rec::StepVerdict::Failed {
            stage: stage(*s),
            kind: kind.clone(),
            message: message.clone(),
        },
        StepVerdict::Reverted { stage: s, reason } => rec::StepVerdict::Reverted {
            stage: stage(*s),
            reason: reason.clone(),
        },
        StepVerdict::Cancelled { stage: s } => rec::StepVerdict::Cancelled { stage: stage(*s) },
        StepVerdict::WrongImage {
            component,
            found,
            required,
        } => rec::StepVerdict::WrongImage {
            component: component.clone(),
            found: found.clone(),
            required: required.clone(),
        },
        StepVerdict::NotAttempted => return None,
    })
}
