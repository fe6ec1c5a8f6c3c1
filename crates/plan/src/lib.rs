//! The planner: may this device take these updates, in which order, and why or why not.
//!
//! `plan` takes what a session read from the device ([`Identity`]), its [`Profile`], the
//! verified packages, the opened entitlements, the recall list, the trust root and trusted time,
//! and returns a [`Plan`]: ordered steps, or a refusal. Either way every rule evaluated is in
//! the result as a [`Finding`] (rule, pass/fail, found, required, a sentence a technician
//! understands). The CLI's `check`, the app's check screen and the audit entry all show this
//! same value, so a rule is written once.
//!
//! **One rule path.** Every rule and rule id of a check lives here (or in `fieldkit-trust`,
//! whose rule functions only the planner calls): device, visit and trust-material rules, each
//! package's rules, the rules that depend on the versions running, named-package refusals,
//! and the rule that binds an update to the bytes that were checked
//! ([`changed_since_check`]). The session calls [`plan`] to check, and [`recheck`] right
//! before each step's first byte, on the device as just re-read and the trust material as
//! loaded then: the same functions decide both times, and a rule whose verdict changed
//! refuses the step and names itself.
//!
//! **Bound to bytes.** Each [`Step`] names its package by the SHA-256 of the package file, of
//! its manifest, of its SBOM and of every payload, exactly as verified during the check.
//!
//! **The device as it is.** An image that runs on test (active, not confirmed) is not counted
//! as installed: the next reset reverts it. The plan starts from the confirmed version and
//! says so in [`Plan::basis`]; applying the step that installs that very image again finds it
//! running and confirms it.
//!
//! The planner does no IO and reads no clock: the system time and the trusted-time mark are
//! parameters, and trusted "now" is computed here. It works on component
//! versions only, as a state: `{app: 2.3.1, netcore: 1.4.0}`. A package is an edge from a state
//! to the state with its payloads installed, usable where its requirements (version ranges of
//! components, MCUboot dependency TLVs) hold. The target is the newest package whose own rules
//! pass (or the one the technician named); the steps are the shortest path of usable packages
//! that makes the target's requirements hold. That is how a required stepping stone comes
//! first, and the network core before the application that depends on it.

mod rules;
mod search;

pub use rules::{entitlement_rules, ids, preconditions};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fieldkit_mcuboot::ImageVersion;
use fieldkit_profile::{Identity, Profile};
use fieldkit_trust::{Entitlement, Finding, RecallList, TrustRoot, TrustedTime, VerifiedPackage};
use serde::Serialize;

/// Who the visit is for, as the technician said.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visit<'a> {
    /// The customer being served.
    pub customer: Option<&'a str>,
    /// The site of the visit.
    pub site: Option<&'a str>,
}

/// What trust decisions remember between runs (restored from the audit log when the state
/// file is missing or behind it).
#[derive(Debug, Clone, Copy)]
pub struct Remembered<'a> {
    /// The trusted-time high-water mark.
    pub time_mark: Option<DateTime<Utc>>,
    /// The highest security counter seen on this device.
    pub security_counter: Option<u32>,
    /// The highest generation seen of each entitlement id.
    pub generations: &'a BTreeMap<String, u32>,
}

/// Everything the planner decides from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The device, as read just now.
    pub identity: &'a Identity,
    /// Its profile.
    pub profile: &'a Profile,
    /// Verified packages available (imported ones and any named on the command line).
    pub packages: &'a [VerifiedPackage],
    /// Entitlements, each already opened against the trust root.
    pub entitlements: &'a [Entitlement],
    /// The newest recall list seen, if any.
    pub recall: Option<&'a RecallList>,
    /// The trust root (policy).
    pub root: &'a TrustRoot,
    /// The system clock.
    pub system_now: DateTime<Utc>,
    /// What is remembered between runs.
    pub remembered: Remembered<'a>,
    /// The visit.
    pub visit: Visit<'a>,
    /// Packages the technician named (indexes into `packages`); the newest of them is the
    /// target. Empty: the newest applicable package is.
    pub named: &'a [usize],
    /// Named package files that cannot be used, each with the rule it failed: any makes the
    /// plan a refusal.
    pub named_refusals: &'a [Finding],
}

impl Inputs<'_> {
    fn time(&self) -> TrustedTime {
        TrustedTime::new(self.remembered.time_mark)
    }

    /// Trusted "now": the later of the system clock and the high-water mark.
    pub fn now(&self) -> DateTime<Utc> {
        self.remembered
            .time_mark
            .map_or(self.system_now, |m| m.max(self.system_now))
    }
}

/// Whether the update can go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The steps can be applied.
    Go,
    /// A rule failed: nothing may be applied.
    Refused,
    /// Nothing newer applies: the device is up to date.
    UpToDate,
}

/// One payload of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepPayload {
    /// Component name.
    pub component: String,
    /// MCUboot image number.
    pub image: u32,
    /// Version installed now (before any step); `none` when nothing is.
    pub from: String,
    /// Version after the step.
    pub to: String,
    /// Member file name in the package.
    pub file: String,
    /// SHA-256 of the payload bytes, as verified.
    pub sha256: String,
    /// MCUboot image hash the device will report.
    pub image_hash: Option<String>,
    /// Bytes.
    pub size: u64,
}

/// One package to apply, named by its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Package id (`product@version`).
    pub package: String,
    /// Index into the inputs' packages.
    #[serde(skip)]
    pub index: usize,
    /// SHA-256 of the package file, as verified.
    pub file_sha256: String,
    /// SHA-256 of its manifest, as signed.
    pub manifest_sha256: String,
    /// SHA-256 of its SBOM.
    pub sbom_sha256: String,
    /// Why this step is there: the target, or what it is a stepping stone for.
    pub reason: String,
    /// Payloads it installs, in the order to install them (dependencies first).
    pub payloads: Vec<StepPayload>,
}

/// The planner's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The verdict.
    pub verdict: Verdict,
    /// One sentence for the technician.
    pub summary: String,
    /// The package the plan leads to.
    pub target: Option<String>,
    /// How the installed versions were read from the device, when that needs saying (an
    /// image on test is not counted as installed).
    pub basis: Vec<String>,
    /// Steps in order (empty unless the verdict is `Go`).
    pub steps: Vec<Step>,
    /// Every rule evaluated, grouped: the device and visit first, then each package's, in
    /// step order (or the refused target's).
    pub rules: Vec<RuleGroup>,
    /// Risks the technician must accept explicitly before applying (e.g. no way back).
    pub risks: Vec<String>,
    /// The security counter the device runs at, as the plan reckoned it: reported by the device,
    /// or the highest counter of a known package whose image runs, and never below what was
    /// remembered. Recorded, so that it is remembered from then on.
    pub security_counter: u32,
}

/// The rules evaluated for one scope.
#[derive(Debug, Clone, Serialize)]
pub struct RuleGroup {
    /// `device`, `named package`, or a package id (`product@version`).
    pub scope: String,
    /// The rules, in evaluation order.
    pub findings: Vec<Finding>,
}

impl Plan {
    /// Every rule evaluated, in order.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.rules.iter().flat_map(|g| &g.findings)
    }

    /// The first failed rule, if any.
    pub fn first_failure(&self) -> Option<&Finding> {
        self.findings().find(|f| !f.passed)
    }
}

/// The component versions a device runs, by component name.
pub type State = BTreeMap<String, ImageVersion>;

/// The versions installed on the device: for each component, the image that runs and is
/// confirmed. An image on test (active, not confirmed) is not installed: the next reset
/// reverts it, so the component counts at its confirmed version, and a note says so.
/// Devices updated in place have no test slot: what runs is installed.
pub fn installed(identity: &Identity, profile: &Profile) -> (State, Vec<String>) {
    let in_place = profile.device.update.in_place();
    let mut notes = Vec::new();
    let mut state = State::new();
    for c in &profile.components {
        let image = *c.image.get_ref();
        let name = c.name.get_ref();
        let Some(active) = identity.active_slot(image) else {
            continue;
        };
        let slot = if in_place || active.confirmed {
            Some(active)
        } else {
            let confirmed = identity
                .slots
                .iter()
                .find(|s| s.image == image && !s.active && s.confirmed);
            notes.push(format!(
                "{name} runs {} on test (not confirmed): the next reset reverts it, so the plan counts {name} {}",
                active.version,
                confirmed.map_or("as not installed".to_owned(), |s| format!("at its confirmed version {}", s.version)),
            ));
            confirmed
        };
        if let Some(v) = slot.and_then(|s| s.version.parse().ok()) {
            state.insert(name.clone(), v);
        }
    }
    (state, notes)
}

/// Plans the update of one device.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let device = rules::device_rules(inputs);
    let device_ok = device.iter().all(|f| f.passed);
    let mut groups = vec![RuleGroup {
        scope: "device".into(),
        findings: device,
    }];
    let mut risks = Vec::new();
    if !inputs.profile.device.update.has_test_slot() {
        risks.push(
            "This device has no test slot: the new firmware replaces the old one in place and cannot be reverted automatically. If the transfer fails, the device stays in its bootloader until the update is repeated."
                .to_owned(),
        );
    }
    let (start, basis) = installed(inputs.identity, inputs.profile);
    if !inputs.named_refusals.is_empty() {
        // A package the technician named cannot be used: that is the answer, whatever else
        // is available.
        let first = inputs.named_refusals[0].explanation.clone();
        groups.push(RuleGroup {
            scope: "named package".into(),
            findings: inputs.named_refusals.to_vec(),
        });
        return Plan {
            verdict: Verdict::Refused,
            summary: format!("The package you named cannot be used: {first}"),
            target: None,
            basis,
            steps: Vec::new(),
            rules: groups,
            risks,
            security_counter: rules::installed_security_counter(inputs),
        };
    }
    let outcome = search::solve(inputs, &start);
    let (verdict, summary, target, steps) = match outcome {
        search::Outcome::UpToDate { newest } => (Verdict::UpToDate, newest, None, Vec::new()),
        search::Outcome::Refused {
            target,
            target_findings,
            summary,
        } => {
            groups.extend(target_findings);
            (Verdict::Refused, summary, target, Vec::new())
        }
        search::Outcome::Path {
            target,
            steps,
            step_findings,
        } => {
            groups.extend(step_findings);
            let summary = format!(
                "{} can be updated to {target} in {} step{}.",
                inputs.identity.serial,
                steps.len(),
                if steps.len() == 1 { "" } else { "s" }
            );
            (Verdict::Go, summary, Some(target), steps)
        }
    };
    let (verdict, summary, steps) = if verdict != Verdict::Refused && !device_ok {
        let first = groups[0]
            .findings
            .iter()
            .find(|f| !f.passed)
            .expect("a device rule failed");
        (
            Verdict::Refused,
            format!("Not now: {}", first.explanation),
            Vec::new(),
        )
    } else {
        (verdict, summary, steps)
    };
    Plan {
        verdict,
        summary,
        target,
        basis,
        steps,
        rules: groups,
        risks,
        security_counter: rules::installed_security_counter(inputs),
    }
}

/// The rules of one step evaluated again, right before its first byte.
#[derive(Debug, Clone, Serialize)]
pub struct Recheck {
    /// Every rule evaluated now, in order.
    pub findings: Vec<Finding>,
}

impl Recheck {
    /// The rules that fail now (each passed when the plan was made): their verdict changed.
    pub fn changed(&self) -> Vec<Finding> {
        self.findings
            .iter()
            .filter(|f| !f.passed)
            .cloned()
            .collect()
    }
}

/// Evaluates `step` again with the same rule functions as [`plan`]: the device rules on the
/// device as just re-read, the package's rules with the trust material as loaded now, and the
/// rules that depend on the versions running, which must still be those the step starts from
/// on the same device (rule [`ids::DEVICE_CHANGED`]). `inputs.packages[step.index]` is the
/// step's package as verified again from the bytes about to be sent; `planned_for` the device
/// as the check read it.
pub fn recheck(inputs: &Inputs<'_>, step: &Step, planned_for: &Identity) -> Recheck {
    let pkg = &inputs.packages[step.index];
    let mut findings = vec![rules::same_device(planned_for, inputs.identity)];
    findings.extend(rules::device_rules(inputs));
    findings.extend(rules::package_rules(inputs, pkg));
    let (state, _) = installed(inputs.identity, inputs.profile);
    findings.push(rules::device_unchanged(step, &state));
    let images: Vec<(String, u32)> = inputs
        .profile
        .components
        .iter()
        .map(|c| (c.name.get_ref().clone(), *c.image.get_ref()))
        .collect();
    findings.extend(rules::state_rules(pkg, &state, &images));
    Recheck { findings }
}

/// The rule that binds an update to the bytes that were checked: `found` is what was read now
/// (the package file's SHA-256, and the package as verified from it when it still verifies),
/// `step` what the check verified.
pub fn changed_since_check(
    step: &Step,
    found_file_sha256: &str,
    found: Option<&VerifiedPackage>,
) -> Finding {
    rules::bytes_match(step, found_file_sha256, found)
}

/// The same rule for a package file named again after a check: `path` held `required` when it
/// was checked (at audit entry `check_seq`) and holds `found` now.
pub fn file_changed_since_check(
    path: &str,
    found: Option<&str>,
    required: &str,
    check_seq: u64,
) -> Finding {
    rules::file_unchanged(path, found, required, check_seq)
}

#[cfg(test)]
mod tests;
