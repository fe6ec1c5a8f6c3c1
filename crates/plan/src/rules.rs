//! The rules, each written once. Device rules hold for the visit; package rules for a package
//! whatever the device runs; state rules for a package given the versions running.

use fieldkit_mcuboot::ImageVersion;
use fieldkit_profile::{Identity, IdentityField, Op, PreconditionValue, Profile};
use fieldkit_trust::{EntitlementRequest, Finding, VerifiedPackage, rules as trust_rules};

use crate::{Inputs, State};

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
}

use ids::*;

/// Rules about the device and the visit, independent of any package.
pub(crate) fn device_rules(inputs: &Inputs<'_>) -> Vec<Finding> {
    let mut out = vec![inputs.clock.clone()];
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
            let found = IdentityField::from_name(name).and_then(|f| identity.field(f));
            let passed = found
                .as_ref()
                .is_some_and(|v| holds(v, p.op, p.value.get_ref()));
            let found = match found {
                Some(v) => format!("{name} = {v}"),
                None => format!("{name} not reported by the device"),
            };
            Finding::check(passed, PRECONDITION, found, required, p.explanation.clone())
        })
        .collect()
}

fn holds(found: &PreconditionValue, op: Op, want: &PreconditionValue) -> bool {
    use std::cmp::Ordering;
    let ord = match (found, want) {
        (PreconditionValue::Int(a), PreconditionValue::Int(b)) => a.cmp(b),
        (PreconditionValue::Bool(a), PreconditionValue::Bool(b)) => a.cmp(b),
        (PreconditionValue::Text(a), PreconditionValue::Text(b)) => a.cmp(b),
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
fn installed_security_counter(inputs: &Inputs<'_>) -> u32 {
    if let Some(reported) = inputs.identity.security_counter {
        return u32::try_from(reported).unwrap_or(u32::MAX);
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
}

/// Rules that hold or fail for a package whatever versions the device runs.
pub(crate) fn package_rules(inputs: &Inputs<'_>, pkg: &VerifiedPackage) -> Vec<Finding> {
    let m = &pkg.manifest;
    let id = inputs.identity;
    let mut out = vec![
        m.check_product(&id.profile),
        m.check_hardware(&id.hardware_revision),
        m.check_expiry(inputs.now),
    ];
    if let Some(req) = &m.requires.bootloader {
        let found = id.bootloader_version.clone().unwrap_or_default();
        let ok = semver::Version::parse(&found).is_ok_and(|v| req.matches(&v));
        out.push(Finding::check(
            ok,
            BOOTLOADER,
            if found.is_empty() {
                "not reported".into()
            } else {
                found
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
    out.push(m.check_security_counter(installed_security_counter(inputs)));
    match inputs.recall {
        Some(r) => out.push(r.check_package(m)),
        None => out.push(Finding::pass(
            trust_rules::RECALL,
            format!("{} (no recall list loaded)", m.id()),
            "a release not on the recall list",
            "No recall list is loaded, so no release is known to be recalled.",
        )),
    }
    let req = EntitlementRequest {
        model: &id.profile,
        serial: &id.serial,
        customer: inputs.customer,
        manifest: m,
        now: inputs.now,
    };
    out.extend(
        fieldkit_trust::evaluate(inputs.entitlements, &req, inputs.root, inputs.recall).findings,
    );
    out
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
