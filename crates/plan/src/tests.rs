//! The planner on a simulated pump: one fixture, one `check` helper, many tiny cases.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use fieldkit_mcuboot::{Dependency, ImageVersion};
use fieldkit_profile::{FieldSource, FieldValue, Identity, ProfileSet, Reading, SlotState};
use fieldkit_trust::{
    DeviceGrant, Entitlement, Finding, Manifest, Payload, PayloadFormat, RecallList, ReleaseClass,
    Requirements, RootMetadata, SbomSummary, TrustRoot, TrustedTime, VerifiedPackage,
    VerifiedPayload,
};

use crate::{Inputs, Plan, Remembered, Verdict, Visit, plan, recheck};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn pump() -> Identity {
    let slot = |image, version: &str, component: &str| SlotState {
        image,
        slot: 0,
        component: Some(component.into()),
        version: version.into(),
        hash: format!("{image:064}"),
        bootable: true,
        pending: false,
        confirmed: true,
        active: true,
        permanent: false,
    };
    Identity {
        profile: "acme-infusion-p7".into(),
        model: "InfuSafe P7".into(),
        serial: "P7-004217".into(),
        hardware_revision: "C".into(),
        bootloader: Some("MCUboot".into()),
        bootloader_version: Some("2.1.0".into()),
        slots: vec![slot(0, "2.3.1", "app"), slot(1, "1.4.0", "netcore")],
        fields: [
            ("battery_percent", FieldValue::Int(87)),
            ("therapy_running", FieldValue::Bool(false)),
            ("security_counter", FieldValue::Int(1)),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), read(value)))
        .collect(),
        buffers: Some((2048, 4)),
    }
}

fn read(value: FieldValue) -> Reading {
    Reading {
        value,
        label: String::new(),
        source: FieldSource::Vendor,
    }
}

/// A package description: `version` of the package, then payloads `component=version`, then
/// options.
struct Pkg {
    version: &'static str,
    payloads: &'static [(&'static str, &'static str)],
    requires: &'static [(&'static str, &'static str)],
    deps: &'static [(u8, &'static str)],
    hardware: &'static [&'static str],
    class: ReleaseClass,
    feature: Option<&'static str>,
    expires: DateTime<Utc>,
    counter: u32,
}

impl Default for Pkg {
    fn default() -> Self {
        Pkg {
            version: "0.0.0",
            payloads: &[],
            requires: &[],
            deps: &[],
            hardware: &[],
            class: ReleaseClass::Maintenance,
            feature: None,
            expires: Utc.with_ymd_and_hms(2027, 6, 1, 0, 0, 0).unwrap(),
            counter: 1,
        }
    }
}

fn image_of(component: &str) -> u32 {
    u32::from(component == "netcore")
}

fn build(p: &Pkg) -> VerifiedPackage {
    let payloads: Vec<Payload> = p
        .payloads
        .iter()
        .map(|(c, v)| Payload {
            component: (*c).into(),
            image: image_of(c),
            version: v.parse().unwrap(),
            format: PayloadFormat::Mcuboot,
            file: format!("{c}.bin"),
            image_key: "release".into(),
            size: 1000,
            sha256: "0".repeat(64),
            image_hash: Some(format!("{:064}", 99)),
        })
        .collect();
    let manifest = Manifest {
        format: 1,
        product: "acme-infusion-p7".into(),
        version: p.version.parse().unwrap(),
        release_date: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
        class: p.class,
        security_counter: p.counter,
        expires: p.expires,
        entitlement_feature: p.feature.map(Into::into),
        requires: Requirements {
            hardware_revisions: p.hardware.iter().map(|s| (*s).into()).collect(),
            bootloader: None,
            components: p
                .requires
                .iter()
                .map(|(c, r)| ((*c).into(), r.parse().unwrap()))
                .collect(),
            preconditions: Vec::new(),
        },
        sbom: Default::default(),
        payloads: payloads.clone(),
    };
    let verified = payloads
        .iter()
        .map(|pl| VerifiedPayload {
            component: pl.component.clone(),
            sha256: pl.sha256.clone(),
            image_hash: pl.image_hash.clone(),
            security_counter: None,
            dependencies: if pl.component == "app" {
                p.deps
                    .iter()
                    .map(|(i, v)| Dependency {
                        image: *i,
                        min_version: v.parse::<ImageVersion>().unwrap(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            image_signed_by: None,
        })
        .collect();
    VerifiedPackage {
        file_sha256: format!("{:064}", p.version.replace('.', "")),
        manifest_sha256: "1".repeat(64),
        manifest,
        signed_by: Vec::new(),
        sbom: SbomSummary {
            spec_version: "1.5".into(),
            components: Vec::new(),
        },
        payloads: verified,
        findings: Vec::new(),
        total_size: 0,
    }
}

fn root(require_recall_list: bool) -> TrustRoot {
    let key = fieldkit_trust::keys::generate(&mut rand::rngs::OsRng);
    let mut meta = RootMetadata::new(1, Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
    meta.policy.require_recall_list = require_recall_list;
    for role in ["root", "release", "entitlement", "recall"] {
        meta.set_role(role, &[key.verifying_key()], 1);
    }
    TrustRoot::load_pinned(&meta.sign(&[&key])).unwrap()
}

fn entitlement(features: &[&str]) -> Entitlement {
    Entitlement {
        id: "ENT-1".into(),
        customer: "St. Elsewhere".into(),
        sites: vec!["ward 4".into()],
        devices: vec![DeviceGrant {
            model: "acme-infusion-p7".into(),
            serials: vec!["P7-004217".into()],
        }],
        features: features.iter().map(|s| (*s).into()).collect(),
        valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        valid_until: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        maintenance_through: None,
        issued: now(),
        generation: 1,
    }
}

struct Case {
    identity: Identity,
    packages: Vec<Pkg>,
    named: Vec<usize>,
    named_refusals: Vec<Finding>,
    entitlements: Vec<Entitlement>,
    recall: Option<RecallList>,
    root: TrustRoot,
    time_mark: Option<DateTime<Utc>>,
    customer: Option<&'static str>,
    site: Option<&'static str>,
    remembered_counter: Option<u32>,
}

fn case(packages: Vec<Pkg>) -> Case {
    Case {
        identity: pump(),
        packages,
        named: Vec::new(),
        named_refusals: Vec::new(),
        entitlements: vec![entitlement(&["pump-fw"])],
        recall: None,
        root: root(false),
        time_mark: None,
        customer: Some("St. Elsewhere"),
        site: Some("ward 4"),
        remembered_counter: None,
    }
}

fn run(c: &Case) -> Plan {
    let profiles = ProfileSet::builtin();
    let profile = profiles.get(&c.identity.profile).unwrap();
    let packages: Vec<VerifiedPackage> = c.packages.iter().map(build).collect();
    plan(&inputs(c, profile, &packages))
}

fn inputs<'a>(
    c: &'a Case,
    profile: &'a fieldkit_profile::Profile,
    packages: &'a [VerifiedPackage],
) -> Inputs<'a> {
    static NO_GENERATIONS: std::sync::LazyLock<std::collections::BTreeMap<String, u32>> =
        std::sync::LazyLock::new(Default::default);
    Inputs {
        identity: &c.identity,
        profile,
        packages,
        entitlements: &c.entitlements,
        recall: c.recall.as_ref(),
        root: &c.root,
        system_now: now(),
        remembered: Remembered {
            time_mark: c.time_mark,
            security_counter: c.remembered_counter,
            generations: &NO_GENERATIONS,
        },
        visit: Visit {
            customer: c.customer,
            site: c.site,
        },
        named: &c.named,
        named_refusals: &c.named_refusals,
    }
}

/// Renders the verdict, the steps and the first failed rule on one line each.
#[track_caller]
fn check(c: Case, expect: &[&str]) {
    let p = run(&c);
    let mut lines = vec![format!("{:?}", p.verdict)];
    for s in &p.steps {
        let payloads: Vec<String> = s
            .payloads
            .iter()
            .map(|x| format!("{} {}->{}", x.component, x.from, x.to))
            .collect();
        lines.push(format!("step {}: {}", s.package, payloads.join(", ")));
    }
    if let Some(f) = p.first_failure() {
        lines.push(format!(
            "{} found {} required {}",
            f.rule, f.found, f.required
        ));
    }
    assert_eq!(lines, expect, "\nsummary: {}", p.summary);
}

fn app(version: &'static str, app_version: &'static str) -> Pkg {
    Pkg {
        version,
        payloads: Box::leak(Box::new([("app", app_version)])),
        ..Pkg::default()
    }
}

#[test]
fn the_newest_release_in_one_step() {
    check(
        case(vec![app("2.4.0", "2.4.0"), app("2.3.1", "2.3.1")]),
        &["Go", "step acme-infusion-p7@2.4.0: app 2.3.1->2.4.0"],
    );
}

#[test]
fn a_stepping_stone_comes_first() {
    let big = Pkg {
        requires: &[("app", ">=2.4.0")],
        ..app("3.0.0", "3.0.0")
    };
    check(
        case(vec![big, app("2.4.0", "2.4.0")]),
        &[
            "Go",
            "step acme-infusion-p7@2.4.0: app 2.3.1->2.4.0",
            "step acme-infusion-p7@3.0.0: app 2.4.0->3.0.0",
        ],
    );
    // Without the stepping stone the target is refused with the requirement that failed.
    let big = Pkg {
        requires: &[("app", ">=2.4.0")],
        ..app("3.0.0", "3.0.0")
    };
    check(
        case(vec![big]),
        &[
            "Refused",
            "target.requires found app 2.3.1 required app >=2.4.0",
        ],
    );
}

#[test]
fn the_network_core_goes_before_the_app_that_depends_on_it() {
    let app25 = Pkg {
        deps: &[(1, "1.5.0")],
        ..app("2.5.0", "2.5.0")
    };
    let net = Pkg {
        version: "2.4.5",
        payloads: &[("netcore", "1.5.0")],
        ..Pkg::default()
    };
    check(
        case(vec![app25, net]),
        &[
            "Go",
            "step acme-infusion-p7@2.4.5: netcore 1.4.0->1.5.0",
            "step acme-infusion-p7@2.5.0: app 2.3.1->2.5.0",
        ],
    );
    // Both in one package: one step, network core first.
    let both = Pkg {
        version: "2.5.0",
        payloads: &[("app", "2.5.0"), ("netcore", "1.5.0")],
        deps: &[(1, "1.5.0")],
        ..Pkg::default()
    };
    check(
        case(vec![both]),
        &[
            "Go",
            "step acme-infusion-p7@2.5.0: netcore 1.4.0->1.5.0, app 2.3.1->2.5.0",
        ],
    );
}

#[test]
fn each_rule_refuses_with_found_and_required() {
    let named = |pkg: Pkg| Case {
        named: vec![0],
        ..case(vec![pkg])
    };
    check(
        named(Pkg {
            hardware: &["D"],
            ..app("2.4.0", "2.4.0")
        }),
        &["Refused", "target.hardware found C required D"],
    );
    check(
        named(app("2.2.0", "2.2.0")),
        &[
            "Refused",
            "target.downgrade found app 2.2.0 required app 2.3.1 or later",
        ],
    );
    check(
        named(Pkg {
            expires: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            ..app("2.4.0", "2.4.0")
        }),
        &[
            "Refused",
            "manifest.expiry found 2026-11-22T12:00:00+00:00 required before 2026-01-01T00:00:00+00:00",
        ],
    );
    check(
        named(Pkg {
            feature: Some("pump-plus"),
            class: ReleaseClass::Feature,
            ..app("2.4.0", "2.4.0")
        }),
        &[
            "Refused",
            "entitlement.feature found pump-fw required pump-plus",
        ],
    );
    let mut recalled = named(app("2.4.0", "2.4.0"));
    let mut list = RecallList::new(3, now(), now() + chrono::Duration::days(30));
    list.packages.push("acme-infusion-p7@2.4.0".into());
    recalled.recall = Some(list);
    check(
        recalled,
        &[
            "Refused",
            "recall.package found acme-infusion-p7@2.4.0 recalled required a release not on the recall list",
        ],
    );
    let mut other = named(app("2.4.0", "2.4.0"));
    other.identity.profile = "vitalis-monitor-m3".into();
    check(
        other,
        &[
            "Refused",
            "target.product found vitalis-monitor-m3 required acme-infusion-p7",
        ],
    );
}

#[test]
fn a_security_release_needs_no_entitlement() {
    let mut c = case(vec![Pkg {
        feature: Some("pump-plus"),
        class: ReleaseClass::Security,
        ..app("2.3.2", "2.3.2")
    }]);
    c.entitlements.clear();
    check(c, &["Go", "step acme-infusion-p7@2.3.2: app 2.3.1->2.3.2"]);
}

#[test]
fn the_device_must_be_safe_to_update() {
    let mut low = case(vec![app("2.4.0", "2.4.0")]);
    low.identity
        .fields
        .insert("battery_percent".into(), read(FieldValue::Int(12)));
    check(
        low,
        &[
            "Refused",
            "safety.precondition found battery_percent = 12 required battery_percent >= 40",
        ],
    );
    let mut busy = case(vec![app("2.4.0", "2.4.0")]);
    busy.identity
        .fields
        .insert("therapy_running".into(), read(FieldValue::Bool(true)));
    check(
        busy,
        &[
            "Refused",
            "safety.precondition found therapy_running = true required therapy_running == false",
        ],
    );
    let mut silent = case(vec![app("2.4.0", "2.4.0")]);
    silent.identity.fields.remove("battery_percent");
    check(
        silent,
        &[
            "Refused",
            "safety.precondition found battery_percent not reported by the device required battery_percent >= 40",
        ],
    );
}

#[test]
fn a_clock_set_back_refuses() {
    let mut c = case(vec![app("2.4.0", "2.4.0")]);
    let mut t = TrustedTime::new(None);
    t.observe(now() + chrono::Duration::days(30));
    c.time_mark = t.mark();
    let p = run(&c);
    assert_eq!(p.verdict, Verdict::Refused);
    assert_eq!(p.first_failure().unwrap().rule, "time.clock");
}

#[test]
fn nothing_newer_is_up_to_date_and_nothing_at_all_is_refused() {
    check(case(vec![app("2.3.1", "2.3.1")]), &["UpToDate"]);
    check(
        case(vec![]),
        &[
            "Refused",
            "plan.path found no package for this device required a package for acme-infusion-p7",
        ],
    );
}

#[test]
fn every_rule_evaluated_is_reported() {
    let p = run(&case(vec![app("2.4.0", "2.4.0")]));
    let rules: Vec<&str> = p.findings().map(|f| f.rule.as_str()).collect();
    for want in [
        "time.clock",
        "safety.precondition",
        "target.product",
        "target.hardware",
        "manifest.expiry",
        "target.security_counter",
        "recall.package",
        "target.downgrade",
    ] {
        assert!(rules.contains(&want), "missing {want} in {rules:?}");
    }
    assert!(p.findings().all(|f| f.passed && !f.explanation.is_empty()));
}

#[test]
fn a_lower_security_counter_is_refused() {
    let mut c = case(vec![Pkg {
        counter: 1,
        ..app("2.4.0", "2.4.0")
    }]);
    c.identity
        .fields
        .insert("security_counter".into(), read(FieldValue::Int(4)));
    check(
        c,
        &[
            "Refused",
            "target.security_counter found 1 required 4 or more",
        ],
    );
}

#[test]
fn a_device_without_firmware_can_be_restored() {
    let mut c = case(vec![Pkg {
        requires: &[("app", ">=2.3.0")],
        ..app("2.4.0", "2.4.0")
    }]);
    c.identity.slots.retain(|s| s.image != 0);
    check(c, &["Go", "step acme-infusion-p7@2.4.0: app none->2.4.0"]);
}

#[test]
fn the_visit_must_say_whose_it_is_and_where() {
    let feature = || Pkg {
        feature: Some("pump-fw"),
        class: ReleaseClass::Feature,
        ..app("2.4.0", "2.4.0")
    };
    let mut c = case(vec![feature()]);
    c.customer = None;
    check(
        c,
        &[
            "Refused",
            "entitlement.customer found no customer set for this visit required the customer of this visit (St. Elsewhere for this entitlement)",
        ],
    );
    let mut c = case(vec![feature()]);
    c.site = Some("ward 9");
    check(
        c,
        &[
            "Refused",
            "entitlement.site found site ward 9 required one of ward 4",
        ],
    );
    let mut c = case(vec![feature()]);
    c.customer = Some("Mercy General");
    check(
        c,
        &[
            "Refused",
            "entitlement.customer found entitlement for St. Elsewhere required the customer of this visit, Mercy General",
        ],
    );
}

#[test]
fn recall_lists_expire_and_the_root_may_require_one() {
    let mut c = case(vec![app("2.4.0", "2.4.0")]);
    c.recall = Some(RecallList::new(
        2,
        now(),
        now() - chrono::Duration::hours(1),
    ));
    let p = run(&c);
    assert_eq!(p.verdict, Verdict::Refused);
    assert_eq!(p.first_failure().unwrap().rule, "recall.expiry");
    let mut c = case(vec![app("2.4.0", "2.4.0")]);
    c.root = root(true);
    check(
        c,
        &[
            "Refused",
            "recall.required found no recall list required a current recall list (the trust root requires one)",
        ],
    );
}

#[test]
fn a_package_precondition_is_a_rule_of_its_own() {
    let mut c = case(vec![app("2.4.0", "2.4.0")]);
    c.identity
        .fields
        .insert("battery_percent".into(), read(FieldValue::Int(55)));
    let profiles = ProfileSet::builtin();
    let profile = profiles.get("acme-infusion-p7").unwrap();
    let mut pkgs: Vec<VerifiedPackage> = c.packages.iter().map(build).collect();
    pkgs[0].manifest.requires.preconditions = vec![fieldkit_trust::PackagePrecondition {
        field: "battery_percent".into(),
        op: ">=".into(),
        value: fieldkit_trust::PreconditionLiteral::Int(60),
        explanation: "A long flash needs a larger reserve.".into(),
    }];
    let p = plan(&inputs(&c, profile, &pkgs));
    let f = p.first_failure().unwrap();
    assert_eq!(
        (f.rule.as_str(), f.found.as_str(), f.required.as_str()),
        (
            "package.precondition",
            "battery_percent = 55",
            "battery_percent >= 60"
        )
    );
}

#[test]
fn a_step_is_checked_again_on_the_device_as_it_is_now() {
    let c = case(vec![app("2.4.0", "2.4.0")]);
    let profiles = ProfileSet::builtin();
    let profile = profiles.get("acme-infusion-p7").unwrap();
    let pkgs: Vec<VerifiedPackage> = c.packages.iter().map(build).collect();
    let p = plan(&inputs(&c, profile, &pkgs));
    assert_eq!(p.verdict, Verdict::Go);
    let step = &p.steps[0];
    // Unchanged: every rule still passes.
    assert!(
        recheck(&inputs(&c, profile, &pkgs), step, &c.identity)
            .changed()
            .is_empty()
    );
    // The battery drained, and someone installed another app meanwhile.
    let mut now = Case {
        identity: pump(),
        ..case(vec![])
    };
    now.identity
        .fields
        .insert("battery_percent".into(), read(FieldValue::Int(20)));
    now.identity.slots[0].version = "2.3.2".into();
    let changed: Vec<(String, String)> = recheck(&inputs(&now, profile, &pkgs), step, &c.identity)
        .changed()
        .into_iter()
        .map(|f| (f.rule, f.found))
        .collect();
    assert_eq!(
        changed,
        [
            (
                "safety.precondition".to_owned(),
                "battery_percent = 20".to_owned()
            ),
            ("plan.device_changed".to_owned(), "app 2.3.2".to_owned()),
        ]
    );
}

#[test]
fn an_image_on_test_is_not_installed() {
    let mut c = case(vec![
        Pkg {
            version: "2.4.5",
            payloads: &[("netcore", "1.5.0")],
            ..Pkg::default()
        },
        Pkg {
            deps: &[(1, "1.5.0")],
            ..app("2.5.0", "2.5.0")
        },
    ]);
    // Killed after the network core's test boot, before its confirm: 1.5.0 runs on test,
    // 1.4.0 waits confirmed in the other slot.
    let old = c.identity.slots[1].clone();
    c.identity.slots[1].version = "1.5.0".into();
    c.identity.slots[1].confirmed = false;
    c.identity.slots.push(SlotState {
        slot: 1,
        active: false,
        ..old
    });
    let p = run(&c);
    assert_eq!(
        p.steps
            .iter()
            .map(|s| s.package.as_str())
            .collect::<Vec<_>>(),
        ["acme-infusion-p7@2.4.5", "acme-infusion-p7@2.5.0"]
    );
    assert_eq!(p.steps[0].payloads[0].from, "1.4.0");
    assert_eq!(
        p.basis,
        [
            "netcore runs 1.5.0 on test (not confirmed): the next reset reverts it, so the plan counts netcore at its confirmed version 1.4.0"
        ]
    );
}

#[test]
fn a_named_package_that_cannot_be_used_is_the_answer() {
    let mut c = case(vec![app("2.4.0", "2.4.0")]);
    c.named_refusals = vec![crate::file_changed_since_check(
        "/media/stick/p7.fkpkg",
        Some("bb"),
        "aa",
        7,
    )];
    check(
        c,
        &[
            "Refused",
            "package.changed_since_check found /media/stick/p7.fkpkg: sha256 bb required sha256 aa, as checked at audit entry 7",
        ],
    );
}

#[test]
fn the_bytes_sent_must_be_the_bytes_checked() {
    let c = case(vec![app("2.4.0", "2.4.0")]);
    let profiles = ProfileSet::builtin();
    let profile = profiles.get("acme-infusion-p7").unwrap();
    let pkgs: Vec<VerifiedPackage> = c.packages.iter().map(build).collect();
    let p = plan(&inputs(&c, profile, &pkgs));
    let step = &p.steps[0];
    assert!(crate::changed_since_check(step, &step.file_sha256, Some(&pkgs[0])).passed);
    let f = crate::changed_since_check(step, &"f".repeat(64), None);
    assert!(!f.passed);
    assert_eq!(
        f.found,
        format!("file sha256 {}, which no longer verifies", "f".repeat(64))
    );
    assert_eq!(f.required, format!("file sha256 {}", step.file_sha256));
}

#[test]
fn a_remembered_security_counter_outlives_the_files_that_taught_it() {
    // The device does not report its counter and no package it runs is at hand, but a check
    // of this device once recorded counter 3: a release with counter 2 is a rollback.
    let mut c = case(vec![Pkg {
        counter: 2,
        ..app("2.4.0", "2.4.0")
    }]);
    c.identity.fields.remove("security_counter");
    c.remembered_counter = Some(3);
    check(
        c,
        &[
            "Refused",
            "target.security_counter found 2 required 3 or more",
        ],
    );
}

#[test]
fn the_no_test_slot_risk_follows_the_update_mode() {
    let profiles = ProfileSet::builtin();
    let mut risks = Vec::new();
    for id in [
        "acme-infusion-p7",
        "vitalis-monitor-m3-recovery",
        "labcore-analyzer-l2",
    ] {
        let profile = profiles.get(id).unwrap();
        let mut c = case(vec![]);
        c.identity.profile = id.into();
        let p = plan(&inputs(&c, profile, &[]));
        risks.push((id, p.risks.len()));
    }
    assert_eq!(
        risks,
        [
            ("acme-infusion-p7", 0),
            ("vitalis-monitor-m3-recovery", 1),
            ("labcore-analyzer-l2", 1)
        ]
    );
}
