//! How an update went, decided once.
//!
//! The CLI, the app and the audit log each used to look at a step's result and decide for
//! themselves whether the update completed, what to call it and when cancelling was still
//! safe. Now [`UpdateResult`] carries the decision: a verdict per step (applied, refused,
//! failed at a stage, reverted, cancelled, wrong image, not attempted), whether the whole
//! update completed, and a sentence for each; [`Stage::cancel_safe`] says whether cancelling
//! still leaves the old firmware in charge. Front ends render these values and decide nothing.

use std::collections::BTreeMap;

use fieldkit_profile::Identity;
use fieldkit_trust::Finding;
use serde::Serialize;

use crate::apply::Stage;

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum StepVerdict {
    /// The new images run and are confirmed.
    Applied,
    /// The new images were written over the running ones (no test slot), read back by hash
    /// or version, and started.
    AppliedInPlace,
    /// The device already ran (and had confirmed) these images.
    AlreadyInstalled,
    /// A rule refused the step right before its first byte; nothing was sent.
    Refused {
        /// The rules whose verdict changed since the check.
        rules: Vec<Finding>,
    },
    /// The step failed at a stage; the old images are in charge (MCUboot reverts a test
    /// image that was never confirmed; an in-place device waits in its bootloader).
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
    /// After the step the device runs an image other than the one planned (neither the new
    /// one nor the one it ran before).
    WrongImage {
        /// Component.
        component: String,
        /// What runs.
        found: String,
        /// What was planned.
        required: String,
    },
    /// An earlier step did not complete, so this one was not started.
    NotAttempted,
}

impl StepVerdict {
    /// Whether the step leaves its images installed.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            StepVerdict::Applied | StepVerdict::AppliedInPlace | StepVerdict::AlreadyInstalled
        )
    }

    /// The verdict in words, for people.
    pub fn describe(&self) -> String {
        match self {
            StepVerdict::Applied => "applied; the new firmware runs and is confirmed".into(),
            StepVerdict::AppliedInPlace => {
                "applied in place; the new firmware was written over the old one, read back and started (no test boot)".into()
            }
            StepVerdict::AlreadyInstalled => "already installed".into(),
            StepVerdict::Refused { rules } => format!(
                "REFUSED before the first byte: {}",
                rules
                    .iter()
                    .map(|f| format!(
                        "rule {} (found {}, required {})",
                        f.rule, f.found, f.required
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            StepVerdict::Failed { stage, message, .. } => format!(
                "FAILED while {}: {message}; the previous firmware stays in charge",
                stage.label()
            ),
            StepVerdict::Reverted { reason, .. } => format!("REVERTED: {reason}"),
            StepVerdict::Cancelled { stage } => format!(
                "CANCELLED while {}; the previous firmware runs",
                stage.label()
            ),
            StepVerdict::WrongImage {
                component,
                found,
                required,
            } => format!(
                "WRONG IMAGE: {component} runs {found}, the plan installs {required}; check the device"
            ),
            StepVerdict::NotAttempted => "not attempted: an earlier step did not complete".into(),
        }
    }
}

/// One step of an update and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Package id.
    pub package: String,
    /// How it ended.
    pub verdict: StepVerdict,
    /// [`StepVerdict::describe`].
    pub description: String,
    /// Installed versions before the step, by component.
    pub before: BTreeMap<String, String>,
    /// Installed versions after it, as read back (empty when not read).
    pub after: BTreeMap<String, String>,
    /// The audit entry of its outcome (none when not attempted).
    pub audit_seq: Option<u64>,
}

/// An update, decided.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateResult {
    /// Whether every step left its images installed.
    pub completed: bool,
    /// One sentence for the technician.
    pub summary: String,
    /// Every step of the plan, in order.
    pub steps: Vec<StepResult>,
    /// The device as read after the last step attempted.
    pub identity: Identity,
    /// Set when a step written in place from a bootloader mode (MCUboot serial recovery)
    /// restarted the device into its application before the plan's last step: the profile to
    /// check the device again with for the remaining steps, which then get a test boot.
    pub continue_as: Option<String>,
}

impl UpdateResult {
    /// Decides the whole from its steps.
    pub(crate) fn new(steps: Vec<StepResult>, identity: Identity) -> UpdateResult {
        let completed = steps.iter().all(|s| s.verdict.succeeded());
        let summary = match steps.iter().find(|s| !s.verdict.succeeded()) {
            None => format!(
                "Update complete: {} step{} applied; {} runs {}.",
                steps.len(),
                if steps.len() == 1 { "" } else { "s" },
                identity.serial,
                steps.last().map_or("as before", |s| s.package.as_str())
            ),
            Some(s) => format!("{}: {}", s.package, s.verdict.describe()),
        };
        UpdateResult {
            completed,
            summary,
            steps,
            identity,
            continue_as: None,
        }
    }

    /// The first step that did not succeed.
    pub fn first_problem(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| !s.verdict.succeeded())
    }
}

impl Stage {
    /// Whether cancelling at this stage still leaves the previous firmware in charge: until
    /// the device is asked to confirm, an unconfirmed image is reverted by the bootloader.
    pub fn cancel_safe(self) -> bool {
        !matches!(self, Stage::Confirming | Stage::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_is_safe_until_the_device_confirms() {
        let cases = [
            (Stage::Preparing, true),
            (Stage::Uploading, true),
            (Stage::Verifying, true),
            (Stage::MarkingForTest, true),
            (Stage::Resetting, true),
            (Stage::WaitingForDevice, true),
            (Stage::ReadingBack, true),
            (Stage::Reverting, true),
            (Stage::Confirming, false),
            (Stage::Done, false),
        ];
        for (stage, safe) in cases {
            assert_eq!(stage.cancel_safe(), safe, "{stage:?}");
        }
    }
}
