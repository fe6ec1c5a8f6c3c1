//! The planner: may this device take these updates, in which order, and why or why not.
//!
//! `plan` takes what a session read from the device ([`Identity`]), its [`Profile`], the
//! verified packages, the opened entitlements, the recall list, the trust root and trusted time,
//! and returns a [`Plan`]: ordered steps, or a refusal. Either way every rule evaluated is in
//! the result as a [`Finding`] (rule, pass/fail, found, required, a sentence a technician
//! understands). The CLI's `check`, the app's check screen and the audit entry all show this
//! same value, so a rule is written once.
//!
//! The planner does no IO and reads no clock: "now" is a parameter. It works on component
//! versions only, as a state: `{app: 2.3.1, netcore: 1.4.0}`. A package is an edge from a state
//! to the state with its payloads installed, usable where its requirements (version ranges of
//! components, MCUboot dependency TLVs) hold. The target is the newest package whose own rules
//! pass (or the one the technician named); the steps are the shortest path of usable packages
//! that makes the target's requirements hold. That is how a required stepping stone comes
//! first, and the network core before the application that depends on it.

mod rules;
mod search;

pub use rules::{ids, preconditions};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fieldkit_mcuboot::ImageVersion;
use fieldkit_profile::{Family, Identity, Profile};
use fieldkit_trust::{Entitlement, Finding, RecallList, TrustRoot, VerifiedPackage};
use serde::Serialize;

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
    /// The clock check of trusted time (`TrustedTime::check`).
    pub clock: &'a Finding,
    /// Trusted "now".
    pub now: DateTime<Utc>,
    /// The customer being served, if the technician said.
    pub customer: Option<&'a str>,
    /// Packages the technician named (indexes into `packages`); the newest of them is the
    /// target. Empty: the newest applicable package is.
    pub named: &'a [usize],
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
    /// Version running now (before any step).
    pub from: String,
    /// Version after the step.
    pub to: String,
    /// Member file name in the package.
    pub file: String,
    /// MCUboot image hash the device will report.
    pub image_hash: Option<String>,
    /// Bytes.
    pub size: u64,
}

/// One package to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Package id (`product@version`).
    pub package: String,
    /// Index into the inputs' packages.
    #[serde(skip)]
    pub index: usize,
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
    /// Steps in order (empty unless the verdict is `Go`).
    pub steps: Vec<Step>,
    /// Every rule evaluated, grouped: the device and visit first, then each package's, in
    /// step order (or the refused target's).
    pub rules: Vec<RuleGroup>,
    /// Risks the technician must accept explicitly before applying (e.g. no way back).
    pub risks: Vec<String>,
}

/// The rules evaluated for one scope.
#[derive(Debug, Clone, Serialize)]
pub struct RuleGroup {
    /// `device`, or a package id (`product@version`).
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

/// The versions running on the device now: the active slot of each component's image.
pub fn installed(identity: &Identity, profile: &Profile) -> State {
    profile
        .components
        .iter()
        .filter_map(|c| {
            let slot = identity.active_slot(*c.image.get_ref())?;
            Some((c.name.get_ref().clone(), slot.version.parse().ok()?))
        })
        .collect()
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
    if inputs.profile.family() == Family::Line {
        risks.push(
            "This device has no test slot: the new firmware replaces the old one in place and cannot be reverted automatically. If the transfer fails, the device stays in its bootloader until the update is repeated."
                .to_owned(),
        );
    }
    let start = installed(inputs.identity, inputs.profile);
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
    let (verdict, summary, steps) = if verdict == Verdict::Go && !device_ok {
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
        steps,
        rules: groups,
        risks,
    }
}

#[cfg(test)]
mod tests;
