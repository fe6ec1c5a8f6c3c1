//! The rules, each written once. Device rules hold for the visit; package rules for a package
//! whatever the device runs; state rules for a package given the versions running; byte rules
//! bind a step to the bytes that were checked.

use fieldkit_mcuboot::ImageVersion;
use fieldkit_profile::{FieldValue, Identity, Op, Profile};
use fieldkit_trust::{
    EntitlementRequest, Finding, PackagePrecondition, PreconditionLiteral, RecallList,
    VerifiedPackage, rules as trust_rules,
};

use crate::{Inputs, State, Step};

/// Rule ids this crate adds to those of `fieldkit_trust::rules`.
pub mod ids {
    /// A safety precondition read live from the device.
    pub const PRECONDITION: &str = "safety.precondition";
    /// The bootloader version range of a package.
    pub const BOOTLOADER: &str = "target.bootloader";
    /// A component version range a package requires.
    pub const REQUIRES: &str = "target.requires";
    /// An MCUboot DEPENDENCY TLV of a payload.
    pub const DEPENDENCY: &str = "target.dependency";
    /// The package carries a component the device does not have.
    pub const COMPONENT: &str = "target.component";
    /// No package, or no path of packages, leads to the target.
    pub const PATH: &str = "plan.path";
    /// A safety condition the package itself declares, read live from the device.
    pub const PACKAGE_PRECONDITION: &str = "package.precondition";
    /// The bytes about to be sent (or a package file named again) differ from those checked.
    pub const CHANGED_SINCE_CHECK: &str = "package.changed_since_check";
    /// The device no longer runs the versions the step was planned from.
    pub const DEVICE_CHANGED: &str = "plan.device_changed";
}

use ids::*;

/// Rules about the device, the visit and the trust material, independent of any package.
pub(crate) fn device_rules(inputs: &Inputs<'_>) -> Vec<Finding> {
    let now = inputs.now();
    let mut out = vec![
        inputs.time().check(inputs.system_now),
        inputs.root.check_expiry(now),
        RecallList::check_present(inputs.recall, inputs.root),
    ];
    if let Some(r) = inputs.recall {
        out.push(r.check_expiry(now));
    }
    out.extend(preconditions(inputs.identity, inputs.profile));
    out
}

/// The profile's safety preconditions, evaluated on the identity read live from the device.
pub fn preconditions(identity: &Identity, profile: &Profile) -> Vec<Finding> {
    profile
        .preconditions
        .iter()
        .map(|p| {
            let name = p.field.get_ref();
            let required = format!("{name} {} {}", p.op.symbol(), p.value.get_ref());
            let found = identity.fields.get(name.as_str());
            let passed = found.is_some_and(|r| holds(&r.value, p.op, p.value.get_ref()));
            let found = match found {
                // A value the technician typed is a statement, not a reading: say so.
                Some(r) if r.typed() => format!("{name} = {} (typed by the technician)", r.value),
                Some(r) => format!("{name} = {}", r.value),
                None => format!("{name} not reported by the device"),
            };
            Finding::check(passed, PRECONDITION, found, required, p.explanation.clone())
        })
        .collect()
}

/// The package's own safety conditions, evaluated like the profile's on the identity read live.
fn package_preconditions(identity: &Identity, list: &[PackagePrecondition]) -> Vec<Finding> {
    list.iter()
        .map(|p| {
            let op = [Op::Eq, Op::Ne, Op::Ge, Op::Le, Op::Gt, Op::Lt]
                .into_iter()
                .find(|o| o.symbol() == p.op);
            let want = match &p.value {
                PreconditionLiteral::Bool(b) => FieldValue::Bool(*b),
                PreconditionLiteral::Int(i) => FieldValue::Int(*i),
                PreconditionLiteral::Text(t) => FieldValue::Text(t.clone()),
            };
            let required = format!("{} {} {want}", p.field, p.op);
            let found = identity.fields.get(p.field.as_str());
            let passed = match (found, op) {
                (Some(r), Some(op)) => holds(&r.value, op, &want),
                _ => false,
            };
            let found = match found {
                Some(r) if r.typed() => {
                    format!("{} = {} (typed by the technician)", p.field, r.value)
                }
                Some(r) => format!("{} = {}", p.field, r.value),
                None => format!("{} not reported by the device", p.field),
            };
            Finding::check(
                passed,
                PACKAGE_PRECONDITION,
                found,
                required,
                p.explanation.clone(),
            )
        })
        .collect()
}

fn holds(found: &FieldValue, op: Op, want: &FieldValue) -> bool {
    use std::cmp::Ordering;
    let ord = match (found, want) {
        (FieldValue::Int(a), FieldValue::Int(b)) => a.cmp(b),
        (FieldValue::Bool(a), FieldValue::Bool(b)) => a.cmp(b),
        (FieldValue::Text(a), FieldValue::Text(b)) => a.cmp(b),
        _ => return false,
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Ge => ord != Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Lt => ord == Ordering::Less,
    }
}

/// The security counter the device runs at: what it reports, or else the highest counter of
/// any known package whose image the device reports running. Unknown images count as 0; recall-list minimums cover
/// the rest.
pub(crate) fn installed_security_counter(inputs: &Inputs<'_>) -> u32 {
    let remembered = inputs.remembered.security_counter.unwrap_or(0);
    if let Some(reported) = inputs.identity.int("security_counter") {
        return u32::try_from(reported).unwrap_or(u32::MAX).max(remembered);
    }
    let running: Vec<&str> = inputs
        .identity
        .slots
        .iter()
        .filter(|s| s.active)
        .map(|s| s.hash.as_str())
        .collect();
    inputs
        .packages
        .iter()
        .filter(|p| {
            p.payloads.iter().any(|pl| {
                pl.image_hash
                    .as_deref()
                    .is_some_and(|h| running.contains(&h))
            })
        })
        .map(|p| p.manifest.security_counter)
        .max()
        .unwrap_or(0)
        .max(remembered)
}

/// Rules that hold or fail for a package whatever versions the device runs.
pub(crate) fn package_rules(inputs: &Inputs<'_>, pkg: &VerifiedPackage) -> Vec<Finding> {
    let m = &pkg.manifest;
    let id = inputs.identity;
    let now = inputs.now();
    let mut out = vec![
        m.check_product(inputs.profile.product()),
        m.check_hardware(&id.hardware_revision),
        m.check_expiry(now),
    ];
    if let Some(req) = &m.requires.bootloader {
        let found = id.bootloader_version.clone().unwrap_or_default();
        let ok = semver::Version::parse(&found).is_ok_and(|v| req.matches(&v));
        out.push(Finding::check(
            ok,
            BOOTLOADER,
            match id.fields.get("bootloader_version") {
                _ if found.is_empty() => "not reported".into(),
                Some(r) if r.typed() => format!("{found} (typed by the technician)"),
                _ => found,
            },
            req.to_string(),
            "The device's bootloader must be recent enough to boot this release.",
        ));
    }
    for payload in &m.payloads {
        if inputs.profile.component(&payload.component).is_none() {
            out.push(Finding::fail(
                COMPONENT,
                payload.component.clone(),
                inputs
                    .profile
                    .components
                    .iter()
                    .map(|c| c.name.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                "The package carries firmware for a part this device model does not have.",
            ));
        }
    }
    out.extend(package_preconditions(id, &m.requires.preconditions));
    out.push(m.check_security_counter(installed_security_counter(inputs)));
    match inputs.recall {
        Some(r) => out.push(r.check_package(m)),
        None => out.push(Finding::check(
            !inputs.root.policy().require_recall_list,
            trust_rules::RECALL,
            format!("{} (no recall list loaded)", m.id()),
            "a release not on the recall list",
            "No recall list is loaded, so no release is known to be recalled.",
        )),
    }
    out.extend(entitlement_rules(inputs, pkg));
    out
}

/// The entitlement rules of `pkg` for this device and visit: device, feature, customer, site,
/// contract window, maintenance, generation, revocation (or the security-release waiver).
pub fn entitlement_rules(inputs: &Inputs<'_>, pkg: &VerifiedPackage) -> Vec<Finding> {
    let id = inputs.identity;
    let req = EntitlementRequest {
        model: inputs.profile.product(),
        serial: &id.serial,
        customer: inputs.visit.customer,
        site: inputs.visit.site,
        generations: inputs.remembered.generations,
        manifest: &pkg.manifest,
        now: inputs.now(),
    };
    fieldkit_trust::evaluate(inputs.entitlements, &req, inputs.root, inputs.recall).findings
}

/// The payloads of `pkg` that change something on a device in `state`, and the state after.
pub(crate) fn apply(pkg: &VerifiedPackage, state: &State) -> (Vec<usize>, State) {
    let mut after = state.clone();
    let mut changed = Vec::new();
    for (i, p) in pkg.manifest.payloads.iter().enumerate() {
        if state.get(&p.component) != Some(&p.version) {
            changed.push(i);
            after.insert(p.component.clone(), p.version);
        }
    }
    (changed, after)
}

/// Rules that depend on the versions running: no downgrade, required ranges, MCUboot
/// dependencies (checked against the versions after this package, as the bootloader does).
pub(crate) fn state_rules(
    pkg: &VerifiedPackage,
    state: &State,
    images: &[(String, u32)],
) -> Vec<Finding> {
    let m = &pkg.manifest;
    let mut out = Vec::new();
    let (_, after) = apply(pkg, state);
    for p in &m.payloads {
        let have = state.get(&p.component);
        out.push(Finding::check(
            have.is_none_or(|h| p.version >= *h),
            trust_rules::DOWNGRADE,
            format!("{} {}", p.component, p.version),
            format!(
                "{} {} or later",
                p.component,
                have.map_or("any".into(), ToString::to_string)
            ),
            "Installing an older version than the one running is a rollback and is refused.",
        ));
    }
    for (component, req) in &m.requires.components {
        let have = state.get(component);
        let own = m.payloads.iter().any(|p| &p.component == component);
        if have.is_none() && own {
            // The device runs no firmware for this component (an in-place transfer was cut
            // short and it waits in its bootloader): there is nothing to install over, and
            // restoring it is the point.
            out.push(Finding::pass(
                REQUIRES,
                format!("{component} not installed (the device waits in its bootloader)"),
                format!("{component} {req}, or no {component} at all"),
                format!("The device has no {component} firmware, so this release restores it; the range it normally installs over does not apply."),
            ));
            continue;
        }
        let ok = have.is_some_and(|v| req.matches(&v.without_build_semver()));
        out.push(Finding::check(
            ok,
            REQUIRES,
            format!("{component} {}", have.map_or("not installed".into(), ToString::to_string)),
            format!("{component} {req}"),
            format!("This release can only be installed over {component} {req}; a stepping-stone release may be needed first."),
        ));
    }
    for (payload, verified) in m.payloads.iter().zip(&pkg.payloads) {
        for dep in &verified.dependencies {
            let name = images
                .iter()
                .find(|(_, n)| *n == u32::from(dep.image))
                .map(|(c, _)| c.clone());
            let have = name.as_ref().and_then(|c| after.get(c));
            let ok = have.is_some_and(|v| *v >= dep.min_version);
            let label = name.unwrap_or_else(|| format!("image {}", dep.image));
            out.push(Finding::check(
                ok,
                DEPENDENCY,
                format!("{label} {}", have.map_or("not installed".into(), ToString::to_string)),
                format!("{label} {} or later", dep.min_version),
                format!(
                    "The {} image declares that it only boots with {label} {} or later; the bootloader would refuse it otherwise.",
                    payload.component, dep.min_version
                ),
            ));
        }
    }
    out
}

/// The device connected now is the one that was checked.
pub(crate) fn same_device(planned: &Identity, now: &Identity) -> Finding {
    let id = |i: &Identity| format!("{} serial {}", i.profile, i.serial);
    Finding::check(
        id(planned) == id(now),
        DEVICE_CHANGED,
        id(now),
        id(planned),
        "The device connected now must be the one that was checked; check this one first.",
    )
}

/// The device still runs what the step was planned from: every payload's `from` version.
pub(crate) fn device_unchanged(step: &Step, state: &State) -> Finding {
    let show = |v: Option<&ImageVersion>| v.map_or("none".to_owned(), ToString::to_string);
    let found: Vec<String> = step
        .payloads
        .iter()
        .map(|p| format!("{} {}", p.component, show(state.get(&p.component))))
        .collect();
    let required: Vec<String> = step
        .payloads
        .iter()
        .map(|p| format!("{} {}", p.component, p.from))
        .collect();
    Finding::check(
        found == required,
        DEVICE_CHANGED,
        found.join(", "),
        required.join(", "),
        "The device must still run the versions this step was planned from; it changed since the check, so check it again.",
    )
}

/// The bytes read now are those the check verified: the package file, its manifest, its SBOM
/// and every payload, by SHA-256.
pub(crate) fn bytes_match(
    step: &Step,
    found_file: &str,
    found: Option<&VerifiedPackage>,
) -> Finding {
    let mut found_parts = vec![format!("file sha256 {found_file}")];
    let mut required_parts = vec![format!("file sha256 {}", step.file_sha256)];
    let mut same = found_file == step.file_sha256;
    match found {
        Some(vp) => {
            same &= vp.manifest_sha256 == step.manifest_sha256
                && vp.manifest.sbom.sha256 == step.sbom_sha256;
            if vp.manifest_sha256 != step.manifest_sha256 {
                found_parts.push(format!("manifest sha256 {}", vp.manifest_sha256));
                required_parts.push(format!("manifest sha256 {}", step.manifest_sha256));
            }
            for p in &step.payloads {
                let got = vp
                    .payloads
                    .iter()
                    .find(|v| v.component == p.component)
                    .map(|v| v.sha256.as_str());
                if got != Some(p.sha256.as_str()) {
                    same = false;
                    found_parts.push(format!(
                        "{} sha256 {}",
                        p.component,
                        got.unwrap_or("absent")
                    ));
                    required_parts.push(format!("{} sha256 {}", p.component, p.sha256));
                }
            }
        }
        None => {
            same = false;
            found_parts.push("which no longer verifies".to_owned());
        }
    }
    Finding::check(
        same,
        CHANGED_SINCE_CHECK,
        found_parts.join(", "),
        required_parts.join(", "),
        "The bytes about to be sent must be exactly the bytes the check verified; they changed, so nothing is sent.",
    )
}

/// A package file named again holds the bytes it held when it was checked.
pub(crate) fn file_unchanged(
    path: &str,
    found: Option<&str>,
    required: &str,
    check_seq: u64,
) -> Finding {
    Finding::check(
        found == Some(required),
        CHANGED_SINCE_CHECK,
        format!("{path}: sha256 {}", found.unwrap_or("(unreadable)")),
        format!("sha256 {required}, as checked at audit entry {check_seq}"),
        "The package file changed since it was checked (replaced, truncated, or a stream serving other bytes); nothing is sent. Check it again if the new file is meant.",
    )
}

/// Semver view of an image version for range matching: MCUboot's build number is not part of
/// the release's identity, and semver ranges ignore build metadata.
trait SemverView {
    fn without_build_semver(&self) -> semver::Version;
}

impl SemverView for ImageVersion {
    fn without_build_semver(&self) -> semver::Version {
        semver::Version::new(
            u64::from(self.major),
            u64::from(self.minor),
            u64::from(self.revision),
        )
    }
}
