//! The post-market answers on every backend: what runs where (from synced field records),
//! releases verified against the hub's trust root, advisories, VEX, entitlements and recall
//! lists, and the exposure, up-to-date and licence answers over them.

use fieldkit_hub::postmarket::answers::{self, Context, ContextCache, UpToDateFilter};
use fieldkit_hub::postmarket::api::{ExposureAnswer, answer};
use fieldkit_hub::postmarket::import::{self, Context as Import};
use fieldkit_hub::postmarket::query::ExposureParams;
use fieldkit_hub::postmarket::store::VexRow;
use fieldkit_hub::postmarket::trust::{self, Pinned, PostmarketError};
use fieldkit_hub::postmarket::vexrecord::Decision;
use fieldkit_trust::ReleaseClass;
use serde_json::json;

use crate::support::kit::{self, CRITICAL, HIGH, Kit, PUMP, Rel, device, seen};
use crate::support::{Backend, TestHub, laptop};

fn cx(hub: &TestHub) -> Import<'_> {
    Import {
        hub: &hub.hub,
        by: "rel-eng",
        now: chrono::Utc::now(),
    }
}

/// A hub with the kit's root pinned, the pump's releases imported, and a fleet synced:
/// - P7-001, P7-002 at St. Elsewhere: app 2.0.0, netcore 1.4.0 (affected)
/// - P7-003 at Riverside: app 2.0.0, netcore 1.5.0 (fixed)
/// - P7-004 at Riverside: netcore 1.4.0 on hardware rev B (the fix is for rev C only)
struct Fleet {
    hub: TestHub,
    kit: Kit,
    laptop: crate::support::Laptop,
    /// The image hash of each built release, by `component@version`.
    hashes: std::collections::BTreeMap<String, String>,
    /// The answers' trust material and releases, held between answers as the API holds them:
    /// every import below must reach the next answer through it.
    contexts: ContextCache,
}

async fn fleet(b: Backend) -> Fleet {
    let hub = TestHub::start(b).await;
    let kit = Kit::new();
    let root = kit.write("root.json", &kit.root(1, true));
    let pm = hub.store.postmarket();
    assert_eq!(
        trust::pin(pm, &std::fs::read(&root).unwrap())
            .await
            .unwrap(),
        Pinned::Pinned { version: 1 }
    );
    let rels = [
        Rel {
            age_days: 200,
            ..Rel::new("netcore", "1.4.0")
        },
        Rel {
            class: ReleaseClass::Security,
            hardware: &["C"],
            age_days: 10,
            counter: 2,
            libs: &[(
                "mbedtls",
                "3.6.2",
                "pkg:github/Mbed-TLS/mbedtls@v3.6.2",
                "Apache-2.0",
            )],
            ..Rel::new("netcore", "1.5.0")
        },
        Rel {
            age_days: 5,
            ..Rel::new("netcore", "1.6.0")
        },
        Rel {
            libs: &[
                ("lwip", "2.2.0", "pkg:generic/lwip@2.2.0", "BSD-3-Clause"),
                (
                    "readline",
                    "8.2",
                    "pkg:generic/readline@8.2",
                    "GPL-3.0-only",
                ),
                ("mystery", "1.0", "pkg:generic/mystery@1.0", "NOASSERTION"),
            ],
            age_days: 100,
            ..Rel::new("app", "2.0.0")
        },
    ];
    let built: Vec<_> = rels.iter().map(|r| kit.package(r, None)).collect();
    let hashes = rels
        .iter()
        .zip(&built)
        .map(|(r, b)| {
            (
                format!("{}@{}", r.component, r.version),
                b.image_hash.clone(),
            )
        })
        .collect();
    let files: Vec<_> = built.into_iter().map(|b| b.path).collect();
    let report = import::releases(pm, cx(&hub), &kit::paths(&files))
        .await
        .unwrap();
    assert!(!report.any_refused(), "{report:?}");
    assert!(report.files.iter().all(|f| f.result == "imported"));

    let l = laptop(40);
    hub.enroll(&l, "dana-laptop").await;
    seen(
        &l.log,
        "St. Elsewhere ICU",
        device("P7-001", "2.0.0", "1.4.0", "C"),
    );
    seen(
        &l.log,
        "St. Elsewhere ICU",
        device("P7-002", "2.0.0", "1.4.0", "C"),
    );
    seen(
        &l.log,
        "Riverside Care",
        device("P7-003", "2.0.0", "1.5.0", "C"),
    );
    seen(
        &l.log,
        "Riverside Care",
        device("P7-004", "2.0.0", "1.4.0", "B"),
    );
    hub.client().sync(&l.log).await.unwrap();
    Fleet {
        hub,
        kit,
        laptop: l,
        hashes,
        contexts: ContextCache::default(),
    }
}

async fn advisories(f: &Fleet, docs: &[(&str, serde_json::Value)]) -> import::Report {
    let files: Vec<_> = docs
        .iter()
        .map(|(n, d)| f.kit.write(n, &serde_json::to_vec(d).unwrap()))
        .collect();
    import::advisories(f.hub.store.postmarket(), cx(&f.hub), &kit::paths(&files))
        .await
        .unwrap()
}

async fn exposure(f: &Fleet, params: ExposureParams) -> Option<ExposureAnswer> {
    let pm = f.hub.store.postmarket();
    let c = f.contexts.context(pm, chrono::Utc::now()).await.unwrap();
    answer(pm, &c, params.to_query().unwrap()).await.unwrap()
}

async fn by_id(f: &Fleet, id: &str) -> answers::VulnExposure {
    match exposure(
        f,
        ExposureParams {
            id: Some(id.into()),
            ..Default::default()
        },
    )
    .await
    {
        Some(ExposureAnswer::Vulnerability(v)) => *v,
        other => panic!("{id}: {:?}", other.is_some()),
    }
}

async fn by_device(f: &Fleet, serial: &str) -> answers::DeviceExposure {
    match exposure(
        f,
        ExposureParams {
            device: Some(serial.into()),
            ..Default::default()
        },
    )
    .await
    {
        Some(ExposureAnswer::Device(d)) => *d,
        other => panic!("{serial}: {:?}", other.is_some()),
    }
}

/// The versions a device's history shows for `component`, oldest first.
fn history<'a>(d: &'a answers::DeviceExposure, component: &str) -> Vec<&'a str> {
    d.history
        .iter()
        .filter(|h| h.component == component)
        .map(|h| h.version.as_str())
        .collect()
}

fn component<'a>(d: &'a answers::DeviceExposure, name: &str) -> &'a answers::DeviceComponent {
    d.components.iter().find(|c| c.component == name).unwrap()
}

fn serials(v: &answers::VulnExposure) -> Vec<(&str, bool)> {
    v.rows
        .rows
        .iter()
        .map(|r| (r.serial.as_str(), r.exposed))
        .collect()
}

pub async fn the_trust_root_is_pinned_once_and_rotates_only_as_signed(b: Backend) {
    let hub = TestHub::start(b).await;
    let pm = hub.store.postmarket();
    let kit = Kit::new();
    assert!(matches!(
        trust::root(pm).await.unwrap_err(),
        PostmarketError::NoRoot
    ));
    // Nothing under trust is imported before a root is pinned.
    let pkg = kit.package(&Rel::new("netcore", "1.4.0"), None);
    let e = import::releases(pm, cx(&hub), &[pkg.path.as_path()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("trust pin"), "{e}");

    let v1 = kit.root(1, true);
    assert_eq!(
        trust::pin(pm, &v1).await.unwrap(),
        Pinned::Pinned { version: 1 }
    );
    assert_eq!(
        trust::pin(pm, &v1).await.unwrap(),
        Pinned::Unchanged { version: 1 }
    );
    // A "v2" signed by another key, a skipped version and a garbled file are refused, naming
    // the rule.
    let mut rogue = Kit::new();
    rogue.root_key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    for (bytes, says) in [
        (rogue.root(2, true), "root"),
        (kit.root(3, true), "root.version"),
        (b"{\"signed\": 1}".to_vec(), "trust root"),
    ] {
        let e = trust::pin(pm, &bytes).await.unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    assert_eq!(trust::root(pm).await.unwrap().version(), 1);
    assert_eq!(
        trust::pin(pm, &kit.root(2, false)).await.unwrap(),
        Pinned::Rotated { version: 2 }
    );
    let root = trust::root(pm).await.unwrap();
    assert_eq!(root.version(), 2);
    assert!(!root.policy().security_updates_without_entitlement);
}

pub async fn releases_are_verified_against_the_hubs_root(b: Backend) {
    let f = fleet(b).await;
    let pm = f.hub.store.postmarket();
    let releases = pm.releases().await.unwrap();
    assert_eq!(
        releases.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [
            "acme-infusion-p7@1.4.0",
            "acme-infusion-p7@1.5.0",
            "acme-infusion-p7@1.6.0",
            "acme-infusion-p7@2.0.0"
        ]
    );
    let r = &releases[0];
    assert_eq!(
        (r.source.as_str(), r.payloads[0].component.as_str()),
        ("package", "netcore")
    );
    assert_eq!(r.manifest_sha256.len(), 64);
    // Index 0 is the firmware itself; the libraries follow.
    let comps = pm.release_components(Some(&r.id), None).await.unwrap();
    assert_eq!(comps[0].kind, "firmware");
    assert_eq!(
        comps[0].package_key,
        "pkg:generic/acme-medical/acme-infusion-p7-netcore"
    );
    assert_eq!(comps[1].name, "mbedtls");
    // The SBOM is kept byte for byte as signed.
    use sha2::Digest;
    let sbom = pm.release_sbom(&r.id).await.unwrap().unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&sbom)), r.sbom_sha256);
    let first = f.kit.path(&format!("{PUMP}-netcore-1.4.0.fkpkg"));
    let held = std::fs::read(&first).unwrap();
    // Another build under an id the hub holds (different release date): a conflict.
    let other = f.kit.package(
        &Rel {
            age_days: 1,
            ..Rel::new("netcore", "1.4.0")
        },
        None,
    );
    let conflict = f
        .kit
        .write("conflict.fkpkg", &std::fs::read(&other.path).unwrap());
    let first = f.kit.write("first.fkpkg", &held);

    // Re-importing is "unchanged"; forgeries and junk are refused one by one, with the rule.
    let mut rogue = Kit::new();
    rogue.release_key = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
    let forged = rogue.package(&Rel::new("netcore", "1.7.0"), Some(&rogue.release_key));
    let good = f
        .kit
        .package(&Rel::new("netcore", "1.8.0"), None)
        .path
        .clone();
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n - 1100] ^= 1;
    let tampered = f.kit.write("tampered.fkpkg", &bytes);
    let truncated = f.kit.write("truncated.fkpkg", &bytes[..700]);
    let junk = f
        .kit
        .write("junk.fkpkg", b"\x1b[2J\x1b]0;pwned\x07not a package");
    let unvouched = f.kit.write(
        "lonely.cdx.json",
        &f.kit.sbom(&Rel::new("netcore", "9.9.9"), b"x"),
    );
    let files = [
        first,
        conflict,
        forged.path,
        tampered,
        truncated,
        junk,
        unvouched,
        f.kit.path("missing.fkpkg"),
    ];
    let report = import::releases(pm, cx(&f.hub), &kit::paths(&files))
        .await
        .unwrap();
    let results: Vec<(&str, &str)> = report
        .files
        .iter()
        .map(|f| (f.result, f.detail.as_str()))
        .collect();
    assert_eq!(results[0].0, "unchanged", "{results:?}");
    for (i, says) in [
        (1, "release.conflict"),
        (2, "signature.threshold"),
        (3, "package.structure"),
        (4, "package.structure"),
        (5, "package.sbom"),
        (6, "release.unvouched"),
        (7, "file.read"),
    ] {
        assert_eq!(results[i].0, "refused", "{i}: {results:?}");
        assert!(results[i].1.contains(says), "{i}: {}", results[i].1);
    }
    // What a hostile file says is never echoed raw.
    assert!(!report.files[5].detail.contains('\u{1b}'));
    assert_eq!(pm.releases().await.unwrap().len(), 4);
}

pub async fn an_advisory_lists_exactly_the_devices_that_run_an_affected_release(b: Backend) {
    let f = fleet(b).await;
    let mut adv = f.kit.advisory("ACME-2026-0001", "netcore", "1.5.0", HIGH);
    adv["aliases"] = json!(["CVE-2026-1001"]);
    let r = advisories(&f, &[("acme-1.json", adv)]).await;
    assert_eq!(r.files[0].result, "imported", "{r:?}");
    let a = r.analysis.unwrap();
    assert_eq!((a.advisories, a.vulnerabilities, a.matches), (1, 1, 1));

    // By its own id and by its alias: the same answer, named by the CVE.
    for id in ["ACME-2026-0001", "CVE-2026-1001"] {
        let v = by_id(&f, id).await;
        assert_eq!(v.vulnerability.name, "CVE-2026-1001");
        assert_eq!(v.vulnerability.severity, "high");
        assert_eq!(v.releases.len(), 1);
        assert_eq!(v.releases[0].release, "acme-infusion-p7@1.4.0");
        assert_eq!(v.releases[0].matched_by, "purl");
        assert_eq!((v.devices, v.exposed), (3, 3));
        assert_eq!(
            serials(&v),
            [("P7-001", true), ("P7-002", true), ("P7-004", true)]
        );
        assert_eq!(
            v.by_site
                .iter()
                .map(|s| (s.site.as_str(), s.devices))
                .collect::<Vec<_>>(),
            [("Riverside Care", 1), ("St. Elsewhere ICU", 2)]
        );
    }
    // The fix: 1.5.0, a security release, installable without an entitlement on rev C; on
    // rev B it may not be installed (hardware), and 1.6.0 needs an entitlement nobody has.
    let v = by_id(&f, "CVE-2026-1001").await;
    let fix = &v.rows.rows[0].fix;
    assert_eq!(fix.fixed_in.as_deref(), Some("acme-infusion-p7@1.5.0"));
    let i = fix.installable.as_ref().unwrap();
    assert_eq!(i.release, "acme-infusion-p7@1.5.0");
    assert!(
        i.because
            .contains("Security releases install without an entitlement"),
        "{}",
        i.because
    );
    let b4 = &v.rows.rows[2];
    assert_eq!(b4.serial, "P7-004");
    assert!(b4.fix.installable.is_none());
    let why = b4.fix.why_not.as_ref().unwrap();
    assert_eq!(why.failed[0].rule, "target.hardware");

    // A second laptop reads P7-002 on 1.4.0 but syncs only later; meanwhile the pump is
    // updated and the first laptop syncs: it drops off the list.
    let late = laptop(41);
    f.hub.enroll(&late, "late-laptop").await;
    seen(
        &late.log,
        "St. Elsewhere ICU",
        device("P7-002", "2.0.0", "1.4.0", "C"),
    );
    seen(
        &f.laptop.log,
        "St. Elsewhere ICU",
        device("P7-002", "2.0.0", "1.5.0", "C"),
    );
    f.hub.client().sync(&f.laptop.log).await.unwrap();
    let v = by_id(&f, "CVE-2026-1001").await;
    assert_eq!(serials(&v), [("P7-001", true), ("P7-004", true)]);
    assert_eq!((v.devices, v.exposed), (2, 2));
    // The late sync adds history; it does not roll the device back.
    f.hub.client().sync(&late.log).await.unwrap();
    let v = by_id(&f, "CVE-2026-1001").await;
    assert_eq!(serials(&v), [("P7-001", true), ("P7-004", true)]);
    let d = by_device(&f, "P7-002").await;
    assert_eq!(history(&d, "netcore"), ["1.4.0", "1.5.0"]);
    let netcore = component(&d, "netcore");
    assert_eq!(netcore.version, "1.5.0");
    assert_eq!(netcore.releases, ["acme-infusion-p7@1.5.0"]);

    // The late laptop sees P7-001 on 1.5.0 (an update MCUboot later reverted), then the first
    // laptop sees it back on 1.4.0 and syncs first. When the late laptop syncs, its 1.5.0
    // falls between two 1.4.0 observations: the history must still end on 1.4.0, as the
    // device's components say, not on the late 1.5.0.
    seen(
        &late.log,
        "St. Elsewhere ICU",
        device("P7-001", "2.0.0", "1.5.0", "C"),
    );
    seen(
        &f.laptop.log,
        "St. Elsewhere ICU",
        device("P7-001", "2.0.0", "1.4.0", "C"),
    );
    f.hub.client().sync(&f.laptop.log).await.unwrap();
    f.hub.client().sync(&late.log).await.unwrap();
    let d = by_device(&f, "P7-001").await;
    assert_eq!(history(&d, "netcore"), ["1.4.0", "1.5.0", "1.4.0"]);
    let netcore = component(&d, "netcore");
    assert_eq!(netcore.version, "1.4.0");
    let v = by_id(&f, "CVE-2026-1001").await;
    assert_eq!(serials(&v), [("P7-001", true), ("P7-004", true)]);

    // An unknown id is no answer (the API makes it a 404).
    assert!(
        exposure(
            &f,
            ExposureParams {
                id: Some("CVE-1999-0001".into()),
                ..Default::default()
            }
        )
        .await
        .is_none()
    );
}

pub async fn exposure_by_component_and_by_device(b: Backend) {
    let f = fleet(b).await;
    advisories(
        &f,
        &[
            (
                "a1.json",
                f.kit.advisory("ACME-2026-0001", "netcore", "1.5.0", HIGH),
            ),
            (
                "a2.json",
                json!({
                    "id": "GHSA-demo-mbed-0001",
                    "modified": "2026-11-01T00:00:00Z",
                    "summary": "mbedtls <img src=x onerror=alert(1)> overflow",
                    "severity": [{"type": "CVSS_V3", "score": CRITICAL}],
                    "affected": [{"package": {"purl": "pkg:github/Mbed-TLS/mbedtls"},
                                  "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "3.6.2"}]}]}]
                }),
            ),
        ],
    )
    .await;
    let c = match exposure(
        &f,
        ExposureParams {
            component: Some(
                "pkg:generic/acme-medical/acme-infusion-p7-netcore@vers:semver/<1.5.0".into(),
            ),
            ..Default::default()
        },
    )
    .await
    {
        Some(ExposureAnswer::Component(c)) => *c,
        _ => panic!(),
    };
    assert_eq!(c.releases.len(), 1);
    assert_eq!(c.releases[0].release, "acme-infusion-p7@1.4.0");
    assert_eq!(c.devices, 3);
    let c = match exposure(
        &f,
        ExposureParams {
            component: Some("pkg:github/Mbed-TLS/mbedtls".into()),
            ..Default::default()
        },
    )
    .await
    {
        Some(ExposureAnswer::Component(c)) => *c,
        _ => panic!(),
    };
    // Every netcore release carries mbedtls (1.5.0 the patched one); every pump runs one.
    assert_eq!(c.releases.len(), 3);
    assert_eq!(c.devices, 4);
    assert_eq!(
        c.releases
            .iter()
            .map(|r| r.vulnerabilities.len())
            .collect::<Vec<_>>(),
        [1, 0, 1]
    );

    let d = by_device(&f, "P7-001").await;
    assert_eq!(d.components.len(), 2);
    let netcore = component(&d, "netcore");
    assert_eq!(netcore.releases, ["acme-infusion-p7@1.4.0"]);
    assert_eq!(netcore.sbom.len(), 2);
    let names: Vec<(&str, &str)> = d
        .vulnerabilities
        .iter()
        .map(|v| (v.vulnerability.name.as_str(), v.component.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("GHSA-demo-mbed-0001", "netcore"),
            ("ACME-2026-0001", "netcore")
        ]
    );
    assert_eq!(d.vulnerabilities[0].vulnerability.severity, "critical");
    // Strings from the advisory travel as data.
    assert!(
        d.vulnerabilities[0]
            .vulnerability
            .summary
            .contains("<img src=x")
    );
}

pub async fn vex_statements_clear_exposure_across_releases_and_are_signed(b: Backend) {
    let f = fleet(b).await;
    let pm = f.hub.store.postmarket();
    advisories(
        &f,
        &[(
            "a1.json",
            f.kit.advisory("ACME-2026-0001", "netcore", "1.7.0", HIGH),
        )],
    )
    .await;
    // Affects 1.4.0, 1.5.0 and 1.6.0: all four pumps exposed.
    let v = by_id(&f, "ACME-2026-0001").await;
    assert_eq!((v.devices, v.exposed), (4, 4));
    assert!(v.rows.rows.iter().all(|r| r.fix.fixed_in.is_none()));

    // The manufacturer's OpenVEX: not_affected from 1.5.0 on (a range covering releases to
    // come), imported by an operator, recorded and signed.
    let doc = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://acme.example/vex/2026-0001",
        "author": "Acme Product Security",
        "timestamp": "2026-11-20T00:00:00Z",
        "statements": [{
            "vulnerability": {"name": "ACME-2026-0001"},
            "products": [{"@id": "pkg:generic/acme-medical/acme-infusion-p7-netcore@vers:semver/>=1.5.0|<2.0.0"}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path"
        }]
    });
    let file = f.kit.write("vex.json", &serde_json::to_vec(&doc).unwrap());
    let r = import::vex(pm, cx(&f.hub), &[file.as_path()])
        .await
        .unwrap();
    assert_eq!(r.files[0].result, "imported", "{r:?}");
    let v = by_id(&f, "ACME-2026-0001").await;
    assert_eq!((v.devices, v.exposed), (4, 3));
    let rows: Vec<(&str, bool, &str)> = v
        .rows
        .rows
        .iter()
        .map(|r| (r.serial.as_str(), r.exposed, r.vex_state.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("P7-001", true, ""),
            ("P7-002", true, ""),
            ("P7-003", false, "not_affected"),
            ("P7-004", true, "")
        ]
    );
    // Now 1.5.0 is a fix (not exposed), so the exposed devices have one again.
    assert_eq!(
        v.rows.rows[0].fix.fixed_in.as_deref(),
        Some("acme-infusion-p7@1.5.0")
    );

    // A manager decides on the hub: 1.4.0 is not affected either (inline mitigation). The
    // record names her and is signed by the hub.
    let (id, a) = import::decide(
        pm,
        Import {
            hub: &f.hub.hub,
            by: "maria (service manager)",
            now: chrono::Utc::now(),
        },
        &Decision {
            vulnerability: "ACME-2026-0001".into(),
            product: "pkg:generic/acme-medical/acme-infusion-p7-netcore@1.4.0".into(),
            status: "not_affected".into(),
            justification: Some("inline_mitigations_already_exist".into()),
            impact: Some("The radio driver drops oversized frames before parsing.".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(a.exposed, 0);
    let records = pm.vex_records().await.unwrap();
    let rec = records.iter().find(|r| r.id == id).unwrap();
    assert_eq!(
        (rec.origin.as_str(), rec.author.as_str()),
        ("decision", "maria (service manager)")
    );
    assert!(fieldkit_hub::postmarket::vexrecord::verify(
        &f.hub.hub.public_key(),
        &f.hub.hub.key_id(),
        rec
    ));
    let v = by_id(&f, "ACME-2026-0001").await;
    assert_eq!(v.exposed, 0);
    let shown = v.releases[0].vex.as_ref().unwrap();
    assert_eq!(shown.author, "maria (service manager)");
    assert_eq!(
        shown.justification.as_deref(),
        Some("inline_mitigations_already_exist")
    );

    // Invalid decisions name the field and the allowed values.
    for (d, says) in [
        (
            Decision {
                status: "fine".into(),
                ..decision()
            },
            "one of not_affected, affected",
        ),
        (
            Decision {
                justification: Some("trust me".into()),
                ..decision()
            },
            "one of component_not_present",
        ),
        (
            Decision {
                justification: None,
                ..decision()
            },
            "a justification or an impact statement",
        ),
        (
            Decision {
                product: "netcore 1.4".into(),
                ..decision()
            },
            "product",
        ),
    ] {
        let e = import::decide(pm, cx(&f.hub), &d).await.unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }

    // A record whose signature does not verify (forged in the database) is left out.
    let forged = VexRow {
        id: 0,
        origin: "decision".into(),
        format: "openvex".into(),
        document_id: "forged".into(),
        author: "mallory".into(),
        recorded_by: "mallory".into(),
        recorded_us: 0,
        body: serde_json::to_vec(&json!({
            "@context": "https://openvex.dev/ns/v0.2.0", "@id": "forged", "author": "mallory",
            "timestamp": "2030-01-01T00:00:00Z",
            "statements": [{"vulnerability": {"name": "ACME-2026-0001"},
              "products": [{"@id": "pkg:generic/acme-medical/acme-infusion-p7-netcore"}],
              "status": "affected"}]
        }))
        .unwrap(),
        signer: f.hub.hub.key_id(),
        signature: "00".repeat(64),
    };
    let bad = pm.add_vex(&forged).await.unwrap();
    let s = fieldkit_hub::postmarket::analysis::recompute(
        pm,
        &f.hub.hub.public_key(),
        &f.hub.hub.key_id(),
    )
    .await
    .unwrap();
    assert_eq!(s.vex_unverified, [bad]);
    assert_eq!(by_id(&f, "ACME-2026-0001").await.exposed, 0);
}

fn decision() -> Decision {
    Decision {
        vulnerability: "ACME-2026-0001".into(),
        product: "pkg:generic/acme-medical/acme-infusion-p7-netcore@1.4.0".into(),
        status: "not_affected".into(),
        justification: Some("component_not_present".into()),
        ..Default::default()
    }
}

pub async fn entitlements_recalls_and_the_root_policy_decide_what_may_be_installed(b: Backend) {
    let f = fleet(b).await;
    let pm = f.hub.store.postmarket();
    advisories(
        &f,
        &[(
            "a1.json",
            f.kit.advisory("ACME-2026-0001", "netcore", "1.6.0", HIGH),
        )],
    )
    .await;
    // 1.4.0 and 1.5.0 affected; the fix 1.6.0 is a feature release: it needs an entitlement.
    let v = by_id(&f, "ACME-2026-0001").await;
    let fix = &v.rows.rows[0].fix;
    assert_eq!(fix.fixed_in.as_deref(), Some("acme-infusion-p7@1.6.0"));
    assert!(fix.installable.is_none());
    assert_eq!(
        fix.why_not.as_ref().unwrap().failed[0].rule,
        "entitlement.present"
    );
    // St. Elsewhere's pumps get an entitlement: now they may, and the customer is known.
    let ent = f
        .kit
        .entitlement("ENT-STE-1", "St. Elsewhere Health", &["P7-001", "P7-002"]);
    let mut rogue = Kit::new();
    rogue.entitlement_key = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
    let forged = rogue.entitlement("ENT-FORGED", "Mallory", &["P7-003"]);
    let r = import::entitlements(pm, &[ent.as_path(), forged.as_path()])
        .await
        .unwrap();
    assert_eq!(r.files[0].result, "imported");
    assert_eq!(r.files[1].result, "refused");
    assert!(r.files[1].detail.contains("entitlement.signature"), "{r:?}");
    let v = by_id(&f, "ACME-2026-0001").await;
    let row = &v.rows.rows[0];
    assert_eq!(row.customer, "St. Elsewhere Health");
    assert_eq!(
        row.fix.installable.as_ref().unwrap().release,
        "acme-infusion-p7@1.6.0"
    );
    assert!(
        v.by_site
            .iter()
            .any(|s| s.customer == "St. Elsewhere Health" && s.devices == 2)
    );
    // The manufacturer recalls 1.6.0: the fix is known but may not be installed.
    let recall = f.kit.recall(1, &["acme-infusion-p7@1.6.0"]);
    let old = f.kit.recall(0, &[]);
    let r = import::recalls(pm, &[recall.as_path(), old.as_path()])
        .await
        .unwrap();
    assert_eq!(r.files[0].result, "imported");
    assert_eq!(r.files[1].result, "refused", "an older list is a replay");
    let v = by_id(&f, "ACME-2026-0001").await;
    let fix = &v.rows.rows[0].fix;
    assert!(fix.installable.is_none());
    assert_eq!(
        fix.why_not.as_ref().unwrap().failed[0].rule,
        "recall.package"
    );
}

pub async fn up_to_date_by_product_customer_and_site(b: Backend) {
    let f = fleet(b).await;
    let pm = f.hub.store.postmarket();
    let ent = f
        .kit
        .entitlement("ENT-STE-1", "St. Elsewhere Health", &["P7-001", "P7-002"]);
    import::entitlements(pm, &[ent.as_path()]).await.unwrap();
    let c = Context::load(pm, chrono::Utc::now()).await.unwrap();
    let u = answers::up_to_date(pm, &c, &UpToDateFilter::default(), 100, 0)
        .await
        .unwrap();
    let lines: Vec<(&str, u64, u64, u64)> = u
        .lines
        .iter()
        .map(|l| (l.component.as_str(), l.devices, l.current, l.behind))
        .collect();
    // app 2.0.0 is the newest app; netcore: P7-001/002 (entitled) may go to 1.6.0, P7-003
    // (1.5.0, no entitlement) may install nothing newer, P7-004 (rev B) neither.
    assert_eq!(lines, [("app", 4, 4, 0), ("netcore", 4, 2, 2)]);
    let behind: Vec<(&str, &str, &str)> = u
        .rows
        .rows
        .iter()
        .map(|r| (r.serial.as_str(), r.to.as_str(), r.customer.as_str()))
        .collect();
    assert_eq!(
        behind,
        [
            ("P7-001", "1.6.0", "St. Elsewhere Health"),
            ("P7-002", "1.6.0", "St. Elsewhere Health")
        ]
    );
    let only = answers::up_to_date(
        pm,
        &c,
        &UpToDateFilter {
            site: Some("Riverside Care".into()),
            ..Default::default()
        },
        100,
        0,
    )
    .await
    .unwrap();
    assert_eq!(only.rows.total, 0);
    assert!(only.by_site.iter().all(|s| s.site == "Riverside Care"));
}

pub async fn the_licence_report_flags_and_denies_by_policy(b: Backend) {
    let f = fleet(b).await;
    let pm = f.hub.store.postmarket();
    let c = Context::load(pm, chrono::Utc::now()).await.unwrap();
    let (policy, source) = answers::licence_policy(pm).await.unwrap();
    assert!(source.contains("default"));
    let r = answers::licences(pm, &c, &policy, &source).await.unwrap();
    let app = r
        .releases
        .iter()
        .find(|x| x.release == "acme-infusion-p7@2.0.0")
        .unwrap();
    assert_eq!(app.devices, 4);
    let verdicts: Vec<(&str, &str)> = app
        .findings
        .iter()
        .map(|x| (x.component.as_str(), x.verdict.as_str()))
        .collect();
    // GPL-3.0-only binds the whole image (denied); NOASSERTION and a name that is no SPDX id
    // are flagged for a person to look at.
    assert_eq!(
        verdicts,
        [
            ("acme-infusion-p7-app 2.0.0", "flag"),
            ("readline 8.2", "deny"),
            ("mystery 1.0", "flag")
        ]
    );
    assert_eq!(app.verdict, "deny");
    assert_eq!(r.releases[0].release, "acme-infusion-p7@2.0.0");
    // The hub's own policy, set by its operator, allows it.
    pm.set_setting(
        answers::LICENCE_POLICY,
        "otherwise = \"allow\"\nunknown = \"flag\"\n[licences]\n\"GPL-3.0-only\" = \"allow\"\n",
    )
    .await
    .unwrap();
    let (policy, source) = answers::licence_policy(pm).await.unwrap();
    assert_eq!(source, "hub setting");
    let r = answers::licences(pm, &c, &policy, &source).await.unwrap();
    let app = r
        .releases
        .iter()
        .find(|x| x.release == "acme-infusion-p7@2.0.0")
        .unwrap();
    assert_eq!(app.verdict, "flag");
}

pub async fn advisories_keep_the_newest_version_and_archives_import_member_by_member(b: Backend) {
    let f = fleet(b).await;
    let pm = f.hub.store.postmarket();
    let old = f.kit.advisory("ACME-2026-0009", "netcore", "1.5.0", HIGH);
    let mut withdrawn = old.clone();
    withdrawn["modified"] = json!((f.kit.now - chrono::Duration::days(1)).to_rfc3339());
    withdrawn["withdrawn"] = json!((f.kit.now - chrono::Duration::days(1)).to_rfc3339());
    // An all.zip: the withdrawn version, a broken member, another advisory.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, body) in [
        (
            "ACME-2026-0009.json",
            serde_json::to_vec(&withdrawn).unwrap(),
        ),
        ("broken.json", b"{\"id\": ".to_vec()),
        (
            "ACME-2026-0010.json",
            serde_json::to_vec(&f.kit.advisory("ACME-2026-0010", "app", "2.1.0", CRITICAL))
                .unwrap(),
        ),
    ] {
        zip.start_file(name, opts).unwrap();
        std::io::Write::write_all(&mut zip, &body).unwrap();
    }
    let archive = f.kit.write("all.zip", &zip.finish().unwrap().into_inner());
    let r = advisories(&f, &[("old.json", old.clone())]).await;
    assert_eq!(r.analysis.unwrap().exposed, 1);
    let r = import::advisories(pm, cx(&f.hub), &[archive.as_path()])
        .await
        .unwrap();
    assert_eq!(r.files[0].result, "imported", "{r:?}");
    assert_eq!(r.files[0].skipped.len(), 1);
    assert!(
        r.files[0]
            .detail
            .starts_with("2 advisories read, 2 new or updated")
    );
    // The withdrawn version replaced the old one: it affects nothing now.
    let v = by_id(&f, "ACME-2026-0009").await;
    assert!(v.vulnerability.withdrawn);
    assert!(v.releases.is_empty());
    assert_eq!(by_id(&f, "ACME-2026-0010").await.devices, 4);
    // Importing the old version again changes nothing.
    let r = advisories(&f, &[("old-again.json", old)]).await;
    assert_eq!(r.files[0].result, "unchanged");
    assert!(r.analysis.is_none());
    assert!(by_id(&f, "ACME-2026-0009").await.vulnerability.withdrawn);
    // A file that is not an advisory is refused on its own.
    let r = advisories(&f, &[("x.json", json!({"hello": "world"}))]).await;
    assert_eq!(r.files[0].result, "refused");
}

pub async fn the_series_counts_exposed_devices_by_severity_over_time(b: Backend) {
    let f = fleet(b).await;
    let pm = f.hub.store.postmarket();
    advisories(
        &f,
        &[(
            "a1.json",
            f.kit.advisory("ACME-2026-0001", "netcore", "1.5.0", HIGH),
        )],
    )
    .await;
    seen(
        &f.laptop.log,
        "St. Elsewhere ICU",
        device("P7-002", "2.0.0", "1.5.0", "C"),
    );
    f.hub.client().sync(&f.laptop.log).await.unwrap();
    let c = Context::load(pm, chrono::Utc::now()).await.unwrap();
    let s = answers::series(pm, &c, None, 4).await.unwrap();
    assert_eq!(s.ticks.len(), 4);
    // The records are minutes old: only the last tick sees the devices; it sees the update.
    assert_eq!(s.by_severity["high"], [0, 0, 0, 2]);
    assert_eq!(s.by_vulnerability[0].name, "ACME-2026-0001");
    let one = answers::series(pm, &c, Some("ACME-2026-0001"), 2)
        .await
        .unwrap();
    assert_eq!(one.by_vulnerability[0].devices, [0, 2]);
}

pub async fn the_api_refuses_bad_questions_and_keeps_hostile_text_inert(b: Backend) {
    let f = fleet(b).await;
    let mut adv = f.kit.advisory("ACME-2026-0001", "netcore", "1.5.0", HIGH);
    adv["summary"] = json!("<script>alert(1)</script> =cmd|' /C calc'!A0");
    advisories(&f, &[("a1.json", adv)]).await;
    // A site typed on a laptop as a spreadsheet formula.
    seen(
        &f.laptop.log,
        "=HYPERLINK(\"http://evil.example\",\"ICU\")",
        device("P7-007", "2.0.0", "1.4.0", "C"),
    );
    f.hub.client().sync(&f.laptop.log).await.unwrap();
    f.hub
        .store
        .add_manager(
            "maria",
            &fieldkit_hub::auth::hash_password("s3cret-pass").unwrap(),
        )
        .await
        .unwrap();
    let mut m = super::Browser::new(&f.hub.url);
    for path in [
        "/api/v1/postmarket/status",
        "/api/v1/postmarket/overview",
        "/api/v1/postmarket/exposure?id=ACME-2026-0001",
        "/api/v1/postmarket/exposure.csv?id=ACME-2026-0001",
        "/api/v1/postmarket/uptodate",
        "/api/v1/postmarket/licences",
        "/api/v1/postmarket/series",
    ] {
        assert_eq!(m.get(path).await.0, 401, "{path}");
    }
    assert_eq!(m.sign_in("maria", "s3cret-pass").await.0, 200);
    for (path, says) in [
        (
            "/api/v1/postmarket/exposure?id=%3Cscript%3E",
            "id=\"<script>\" is not accepted: required a vulnerability id",
        ),
        (
            "/api/v1/postmarket/exposure?id=X&device=Y",
            "exactly one of id, component or device",
        ),
        (
            "/api/v1/postmarket/exposure?component=netcore",
            "component=\"netcore\" is not accepted",
        ),
        (
            "/api/v1/postmarket/exposure?id=ACME-2026-0001&limit=1000000",
            "a whole number from 1 to 1000",
        ),
        ("/api/v1/postmarket/exposure?colour=red", "unknown field"),
        ("/api/v1/postmarket/series?weeks=0", "from 1 to 104"),
        (
            "/api/v1/postmarket/uptodate?site=%1b%5b2J",
            "control characters",
        ),
        (
            "/api/v1/postmarket/exposure.csv?device=P7-001",
            "id is required",
        ),
    ] {
        let (status, v) = m.get(path).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{path}: {v}");
    }
    assert_eq!(
        m.get("/api/v1/postmarket/exposure?id=CVE-1999-0001")
            .await
            .0,
        404
    );
    // JSON carries the hostile summary as a string; CSV neutralises the formula.
    let v = m
        .json("/api/v1/postmarket/exposure?id=ACME-2026-0001")
        .await;
    assert_eq!(v["by"], "vulnerability");
    assert!(
        v["vulnerability"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("<script>")
    );
    let (status, csv) = m
        .get("/api/v1/postmarket/exposure.csv?id=ACME-2026-0001")
        .await;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap().to_owned();
    assert!(csv.lines().count() == 5, "{csv}");
    assert!(
        csv.contains("'=HYPERLINK") && !csv.contains(",=HYPERLINK"),
        "a formula stays text: {csv}"
    );
    // A decision: JSON only, from the dashboard's own origin, recorded with the manager.
    let post = |origin: &str, ct: &str, body: String| {
        let mut r = m
            .http
            .post(format!("{}/api/v1/postmarket/vex", f.hub.url))
            .header("origin", origin)
            .header("content-type", ct)
            .body(body);
        if let Some(c) = &m.cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let body = json!({
        "vulnerability": "ACME-2026-0001",
        "product": "pkg:generic/acme-medical/acme-infusion-p7-netcore@1.4.0",
        "status": "not_affected",
        "justification": "component_not_present"
    })
    .to_string();
    let r = post("http://evil.example", "application/json", body.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(&f.hub.url, "text/plain", body.clone()).await.unwrap();
    assert_eq!(r.status(), 415);
    let r = post(
        &f.hub.url,
        "application/json",
        "{\"status\": \"fine\"}".into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = post(&f.hub.url, "application/json", body).await.unwrap();
    assert_eq!(r.status(), 201);
    let v = m
        .json("/api/v1/postmarket/exposure?id=ACME-2026-0001")
        .await;
    assert_eq!(v["exposed"], 0, "{v}");
    assert_eq!(v["releases"][0]["vex"]["author"], "maria");
}
