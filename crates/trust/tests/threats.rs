//! Every threat of DESIGN.md §14 under "Packages" and "Entitlements", each refused with its
//! reason; a mutation test over a whole package; OpenSSL-made keys in every role; rotation.

use std::process::Command;

use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::SigningKey;
use fieldkit_mcuboot::{SignOptions, sign};
use fieldkit_trust::package::{self, Limits};
use fieldkit_trust::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

const NOW: &str = "2025-06-01T12:00:00Z";

/// Root keys 1, release 2 and 3 (threshold 1), entitlement 4, recall 5, image key 6.
struct Kit {
    root: TrustRoot,
}

fn root_meta(release_threshold: u32, expires: &str) -> RootMetadata {
    let mut m = RootMetadata::new(1, t(expires));
    m.set_role("root", &[key(1).verifying_key()], 1);
    m.set_role(
        "release",
        &[key(2).verifying_key(), key(3).verifying_key()],
        release_threshold,
    );
    m.set_role("entitlement", &[key(4).verifying_key()], 1);
    m.set_role("recall", &[key(5).verifying_key()], 1);
    m.set_role("pump-image", &[key(6).verifying_key()], 1);
    m
}

fn kit() -> Kit {
    let root =
        TrustRoot::load_pinned(&root_meta(1, "2030-01-01T00:00:00Z").sign(&[&key(1)])).unwrap();
    Kit { root }
}

const SBOM: &str = r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
"components":[{"type":"firmware","name":"pump-app","version":"2.1.0",
"purl":"pkg:generic/acme/pump-app@2.1.0","licenses":[{"license":{"id":"Apache-2.0"}}]}]}"#;

fn manifest(version: &str) -> Manifest {
    Manifest {
        format: 1,
        product: "acme-infusion-p7".into(),
        version: version.parse().unwrap(),
        release_date: d("2025-05-01"),
        class: ReleaseClass::Feature,
        security_counter: 3,
        expires: t("2026-01-01T00:00:00Z"),
        entitlement_feature: Some("pump-fw".into()),
        requires: Requirements {
            hardware_revisions: vec!["B".into(), "C".into()],
            ..Default::default()
        },
        sbom: MemberDigest::default(),
        payloads: vec![Payload {
            component: "app".into(),
            image: 0,
            version: version.parse().unwrap(),
            format: PayloadFormat::Mcuboot,
            file: "app.bin".into(),
            image_key: "pump-image".into(),
            size: 0,
            sha256: String::new(),
            image_hash: None,
        }],
    }
}

fn image(version: &str, image_key: &SigningKey, size: usize) -> Vec<u8> {
    let opts = SignOptions {
        key: Some(image_key),
        security_counter: Some(3),
        header_size: 0x20,
        ..SignOptions::new(version.parse().unwrap())
    };
    sign(&vec![0x5a; size], &opts).unwrap()
}

fn package_with(m: &Manifest, img: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let mut out = Vec::new();
    build_package(m, SBOM.as_bytes(), &[img], keys, &mut out).unwrap();
    out
}

fn good_package() -> Vec<u8> {
    package_with(
        &manifest("2.1.0"),
        &image("2.1.0", &key(6), 100),
        &[&key(2)],
    )
}

fn verify(kit: &Kit, bytes: &[u8]) -> Result<VerifiedPackage> {
    verify_package(bytes, &kit.root, t(NOW))
}

/// Expects `bytes` to be refused by rule `rule`.
fn refused(kit: &Kit, bytes: &[u8], rule: &str) {
    match verify(kit, bytes) {
        Ok(_) => panic!("accepted; expected refusal by {rule}"),
        Err(e) => assert_eq!(e.rule(), rule, "{e}"),
    }
}

/// A tar with the canonical headers fieldkit writes but arbitrary members, for hostile cases
/// that must get past the header check.
fn raw_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        // Written raw: `set_path` refuses the traversing names these tests need.
        let field = &mut h.as_ustar_mut().unwrap().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The members of a good package, to reassemble in hostile ways.
/// Package members as (name, data), in archive order.
type Members = Vec<(String, Vec<u8>)>;

fn members(pkg: &[u8]) -> Members {
    let mut a = tar::Archive::new(pkg);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (name, v)
        })
        .collect()
}

fn reassemble(m: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = m.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    raw_tar(&refs)
}

#[test]
fn good_package_verifies() {
    let kit = kit();
    let v = verify(&kit, &good_package()).unwrap();
    assert_eq!(v.manifest.id(), "acme-infusion-p7@2.1.0");
    assert_eq!(v.signed_by, vec![KeyId::of(&key(2).verifying_key())]);
    assert_eq!(v.payloads[0].security_counter, Some(3));
    assert_eq!(
        v.payloads[0].image_signed_by,
        Some(KeyId::of(&key(6).verifying_key()))
    );
    assert!(v.findings.iter().all(|f| f.passed));
    assert_eq!(reassemble(&members(&good_package())), good_package());
}

#[test]
fn arbitrary_packages_are_refused() {
    let kit = kit();
    let m = manifest("2.1.0");
    let img = image("2.1.0", &key(6), 100);
    // Unsigned.
    refused(
        &kit,
        &package_with(&m, &img, &[]),
        rules::SIGNATURE_THRESHOLD,
    );
    // Signed by a key outside the release role (the root key, even).
    refused(
        &kit,
        &package_with(&m, &img, &[&key(1)]),
        rules::SIGNATURE_THRESHOLD,
    );
    refused(
        &kit,
        &package_with(&m, &img, &[&key(9)]),
        rules::SIGNATURE_THRESHOLD,
    );
    // Below threshold: the release role needs 2, one signs (twice).
    let strict =
        TrustRoot::load_pinned(&root_meta(2, "2030-01-01T00:00:00Z").sign(&[&key(1)])).unwrap();
    let strict = Kit { root: strict };
    refused(
        &strict,
        &package_with(&m, &img, &[&key(2), &key(2)]),
        rules::SIGNATURE_THRESHOLD,
    );
    verify(&strict, &package_with(&m, &img, &[&key(2), &key(3)])).unwrap();
    // Image signed by a key that is not the component's image key.
    refused(
        &kit,
        &package_with(&m, &image("2.1.0", &key(2), 100), &[&key(2)]),
        rules::PAYLOAD_IMAGE,
    );
}

#[test]
fn every_byte_flipped_truncated_or_appended_is_refused() {
    let kit = kit();
    let pkg = good_package();
    verify(&kit, &pkg).unwrap();
    // One bit per byte, cycling through the bit positions, on every core: each flip after the
    // manifest costs a signature check, which is slow in debug builds.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for part in 0..threads {
            let (kit, pkg) = (&kit, &pkg);
            s.spawn(move || {
                for i in (part..pkg.len()).step_by(threads) {
                    let mut bad = pkg.clone();
                    bad[i] ^= 1 << (i % 8);
                    assert!(
                        verify(kit, &bad).is_err(),
                        "flipping bit {} of byte {i} was accepted",
                        i % 8
                    );
                }
            });
        }
    });
    for len in (0..pkg.len()).step_by(7).chain([pkg.len() - 1]) {
        assert!(
            verify(&kit, &pkg[..len]).is_err(),
            "truncation to {len} accepted"
        );
    }
    for extra in [&[0u8][..], &[0; 512], &[0; 1024], b"x", &[0xff; 10]] {
        let mut bad = pkg.clone();
        bad.extend_from_slice(extra);
        let e = verify(&kit, &bad).unwrap_err();
        assert_eq!(e.rule(), rules::PACKAGE_STRUCTURE, "{e}");
    }
}

#[test]
fn rollback_is_refused() {
    let kit = kit();
    let v = verify(&kit, &good_package()).unwrap();
    let m = &v.manifest;
    assert!(m.check_not_older(&"2.0.0".parse().unwrap()).passed);
    assert!(m.check_not_older(&"2.1.0".parse().unwrap()).passed);
    let f = m.check_not_older(&"2.2.0".parse().unwrap());
    assert_eq!((f.rule.as_str(), f.passed), (rules::DOWNGRADE, false));
    assert_eq!(f.required, "2.2.0 or later");
    let f = m.check_security_counter(4);
    assert_eq!(
        (f.rule.as_str(), f.passed, f.found.as_str()),
        (rules::SECURITY_COUNTER, false, "3")
    );
    assert!(m.check_security_counter(3).passed);
}

#[test]
fn expired_metadata_is_refused() {
    let kit = kit();
    let mut m = manifest("2.1.0");
    m.expires = t("2025-06-01T11:59:59Z");
    refused(
        &kit,
        &package_with(&m, &image("2.1.0", &key(6), 10), &[&key(2)]),
        rules::MANIFEST_EXPIRY,
    );
    let old_root =
        TrustRoot::load_pinned(&root_meta(1, "2025-01-01T00:00:00Z").sign(&[&key(1)])).unwrap();
    refused(&Kit { root: old_root }, &good_package(), rules::ROOT_EXPIRY);
}

#[test]
fn mix_and_match_is_refused() {
    let kit = kit();
    let a = members(&good_package());
    // Another genuine package's payload under this package's signed manifest.
    let other = members(&package_with(
        &manifest("2.1.0"),
        &image("2.1.0", &key(6), 101),
        &[&key(2)],
    ));
    let mut mixed = a.clone();
    mixed[4] = other[4].clone();
    refused(&kit, &reassemble(&mixed), rules::PACKAGE_DIGEST);
    // Another package's SBOM.
    let mut mixed = a.clone();
    mixed[3].1 = SBOM.replace("2.1.0", "9.9.9").into_bytes();
    refused(&kit, &reassemble(&mixed), rules::PACKAGE_DIGEST);
    // Another package's signatures.
    let newer = members(&package_with(
        &manifest("2.2.0"),
        &image("2.2.0", &key(6), 100),
        &[&key(2)],
    ));
    let mut mixed = a.clone();
    mixed[2] = newer[2].clone();
    refused(&kit, &reassemble(&mixed), rules::SIGNATURE_THRESHOLD);
    // A signed manifest that claims another version than the image inside: the builder refuses,
    // and a hand-made package is refused by the verifier.
    let img = image("2.0.0", &key(6), 100);
    let mut out = Vec::new();
    let e = build_package(
        &manifest("2.1.0"),
        SBOM.as_bytes(),
        &[&img],
        &[&key(2)],
        &mut out,
    )
    .unwrap_err();
    assert_eq!(e.rule(), rules::PAYLOAD_VERSION);
    let mut liar = members(&good_package());
    let mut m: Manifest = serde_json::from_slice(&liar[1].1).unwrap();
    m.payloads[0].size = img.len() as u64;
    m.payloads[0].sha256 = hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        &img,
    )));
    m.payloads[0].image_hash = None;
    liar[1].1 = serde_json::to_vec(&m).unwrap();
    liar[2].1 = serde_json::to_vec(&package::ManifestSignatures {
        signatures: vec![signed::sign(&key(2), package::MANIFEST_DOMAIN, &liar[1].1)],
    })
    .unwrap();
    liar[4].1 = img;
    refused(&kit, &reassemble(&liar), rules::PAYLOAD_VERSION);
}

#[test]
fn endless_data_is_refused_before_reading() {
    let kit = kit();
    let a = members(&good_package());
    let limits = Limits {
        manifest: 100,
        ..Limits::default()
    };
    let e = verify_package_with(
        &good_package()[..],
        &kit.root,
        t(NOW),
        &limits,
        &mut |_, _| Ok(()),
    )
    .unwrap_err();
    assert_eq!(e.rule(), rules::PACKAGE_SIZE, "{e}");
    // A header declaring 8 GiB of SBOM, followed by nothing: refused from the header alone.
    let mut h = tar::Header::new_ustar();
    h.set_path("sbom.cdx.json").unwrap();
    h.set_size(8 << 30);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let head = reassemble(&a[..3]);
    let mut bytes = head[..head.len() - 1024].to_vec();
    bytes.extend_from_slice(h.as_bytes());
    let e = verify(&kit, &bytes).unwrap_err();
    assert_eq!(e.rule(), rules::PACKAGE_SIZE, "{e}");
    // A payload member longer than the manifest says.
    let mut long = a.clone();
    long[4].1.extend_from_slice(&[0; 4096]);
    refused(&kit, &reassemble(&long), rules::PACKAGE_DIGEST);
    // A never-ending stream of zeros after a good package.
    let good = good_package();
    let endless = std::io::Read::chain(&good[..], std::io::Read::take(std::io::repeat(0), 1 << 20));
    let e = verify_package(endless, &kit.root, t(NOW)).unwrap_err();
    assert_eq!(e.rule(), rules::PACKAGE_STRUCTURE);
}

#[test]
fn hostile_member_layouts_are_refused() {
    let kit = kit();
    let a = members(&good_package());
    let cases: Vec<(&str, Members)> = vec![
        ("traversal", {
            let mut m = a.clone();
            m[4].0 = "payloads/../../etc/passwd".into();
            m
        }),
        ("absolute", {
            let mut m = a.clone();
            m[4].0 = "/payloads/app.bin".into();
            m
        }),
        ("duplicate manifest", {
            let mut m = a.clone();
            m.insert(2, a[1].clone());
            m
        }),
        ("duplicate payload", {
            let mut m = a.clone();
            m.push(a[4].clone());
            m
        }),
        ("unknown member", {
            let mut m = a.clone();
            m.insert(3, ("notes.txt".into(), b"hi".to_vec()));
            m
        }),
        ("out of order", {
            let mut m = a.clone();
            m.swap(1, 2);
            m
        }),
        ("payload before sbom", {
            let mut m = a.clone();
            m.swap(3, 4);
            m
        }),
        ("missing marker", a[1..].to_vec()),
        ("wrong marker", {
            let mut m = a.clone();
            m[0].1 = b"fieldkit-package/2\n".to_vec();
            m
        }),
        ("missing payload", a[..4].to_vec()),
    ];
    for (name, m) in cases {
        let want = if name == "missing marker" {
            rules::NOT_A_PACKAGE
        } else {
            rules::PACKAGE_STRUCTURE
        };
        match verify(&kit, &reassemble(&m)) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => {
                assert_eq!(e.rule(), want, "{name}: {e}");
                // Names that are not valid file names are described, never quoted.
                assert!(!e.to_string().contains("passwd"), "{name}: {e}");
            }
        }
    }
    // A signed manifest naming a traversing file is refused as a manifest.
    let mut m = manifest("2.1.0");
    m.payloads[0].file = "../app.bin".into();
    let e = build_package(
        &m,
        SBOM.as_bytes(),
        &[&image("2.1.0", &key(6), 10)],
        &[&key(2)],
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(e.rule(), rules::MANIFEST_FORMAT);
    // GNU long-name extension headers are not fieldkit's headers: such a file does not even
    // start like a package.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, "x".repeat(300), &b"hi"[..]).unwrap();
    refused(&kit, &b.into_inner().unwrap(), rules::NOT_A_PACKAGE);
}

#[test]
fn wrong_product_hardware_and_recalled_are_refused() {
    let kit = kit();
    let v = verify(&kit, &good_package()).unwrap();
    let m = &v.manifest;
    assert!(m.check_product("acme-infusion-p7").passed);
    let f = m.check_product("vitalis-monitor-m3");
    assert_eq!((f.rule.as_str(), f.passed), (rules::PRODUCT, false));
    assert!(m.check_hardware("C").passed);
    let f = m.check_hardware("A");
    assert_eq!(
        (f.rule.as_str(), f.passed, f.required.as_str()),
        (rules::HARDWARE, false, "B or C")
    );

    let mut list = RecallList::new(2, t("2025-05-20T00:00:00Z"), t("2030-01-01T00:00:00Z"));
    assert!(list.check_package(m).passed);
    list.packages.push("acme-infusion-p7@2.1.0".into());
    let f = list.check_package(m);
    assert_eq!((f.rule.as_str(), f.passed), (rules::RECALL, false));
    let mut list = RecallList::new(3, t("2025-05-20T00:00:00Z"), t("2030-01-01T00:00:00Z"));
    list.minimums.insert(
        "acme-infusion-p7".into(),
        Minimum {
            version: Some("2.2.0".parse().unwrap()),
            security_counter: None,
        },
    );
    assert!(!list.check_package(m).passed);
    let mut list = RecallList::new(3, t("2025-05-20T00:00:00Z"), t("2030-01-01T00:00:00Z"));
    list.minimums.insert(
        "acme-infusion-p7".into(),
        Minimum {
            version: None,
            security_counter: Some(4),
        },
    );
    assert!(!list.check_package(m).passed);
}

fn entitlement() -> Entitlement {
    Entitlement {
        id: "ent-1".into(),
        customer: "St. Elsewhere".into(),
        sites: vec!["ward 4".into()],
        devices: vec![DeviceGrant {
            model: "acme-infusion-p7".into(),
            serials: vec!["P7-0001".into()],
        }],
        features: vec!["pump-fw".into()],
        valid_from: d("2025-01-01"),
        valid_until: d("2025-12-31"),
        maintenance_through: None,
        issued: t("2025-01-01T00:00:00Z"),
        generation: 1,
    }
}

struct Ask<'a> {
    serial: &'a str,
    customer: Option<&'a str>,
    site: Option<&'a str>,
    now: &'a str,
    manifest: Manifest,
}

fn ask() -> Ask<'static> {
    Ask {
        serial: "P7-0001",
        customer: Some("St. Elsewhere"),
        site: Some("ward 4"),
        now: NOW,
        manifest: manifest("2.1.0"),
    }
}

/// Evaluates `ent` for `ask` and expects `rule` to be the first failure (or allowed if None).
fn check_ent(ent: &Entitlement, ask: Ask<'_>, recall: Option<&RecallList>, rule: Option<&str>) {
    let kit = kit();
    let file = ent.issue(&key(4));
    let opened = Entitlement::open(&file, &kit.root).unwrap();
    let req = EntitlementRequest {
        model: "acme-infusion-p7",
        serial: ask.serial,
        customer: ask.customer,
        site: ask.site,
        generations: &Default::default(),
        manifest: &ask.manifest,
        now: t(ask.now),
    };
    let d = evaluate(&[opened], &req, &kit.root, recall);
    match rule {
        None => assert!(d.allowed(), "{:?}", d.first_failure()),
        Some(rule) => {
            let f = d
                .first_failure()
                .unwrap_or_else(|| panic!("allowed; expected {rule}"));
            assert_eq!(f.rule, rule, "{f}");
        }
    }
}

#[test]
fn entitlement_threats() {
    let e = entitlement();
    check_ent(&e, ask(), None, None);
    // Expired contract.
    check_ent(
        &e,
        Ask {
            now: "2026-01-01T00:00:00Z",
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_WINDOW),
    );
    check_ent(
        &e,
        Ask {
            now: "2024-12-31T23:00:00Z",
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_WINDOW),
    );
    // Maintenance fallback: an old release stays installable, a newer one does not.
    let maint = Entitlement {
        maintenance_through: Some(d("2025-06-30")),
        ..entitlement()
    };
    check_ent(
        &maint,
        Ask {
            now: "2027-01-01T00:00:00Z",
            ..ask()
        },
        None,
        None,
    );
    let mut newer = manifest("2.2.0");
    newer.release_date = d("2025-07-01");
    check_ent(
        &maint,
        Ask {
            now: "2027-01-01T00:00:00Z",
            manifest: newer,
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_WINDOW),
    );
    // Other customer, other device, missing feature.
    check_ent(
        &e,
        Ask {
            customer: Some("Mercy General"),
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_CUSTOMER),
    );
    // The visit's customer and site are part of the scope: unset is a finding, not a skip.
    check_ent(
        &entitlement(),
        Ask {
            customer: None,
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_CUSTOMER),
    );
    check_ent(
        &entitlement(),
        Ask {
            site: Some("ward 9"),
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_SITE),
    );
    check_ent(
        &entitlement(),
        Ask {
            site: None,
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_SITE),
    );
    check_ent(
        &e,
        Ask {
            serial: "P7-0002",
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_DEVICE),
    );
    let mut other_feature = manifest("2.1.0");
    other_feature.entitlement_feature = Some("pump-pro".into());
    check_ent(
        &e,
        Ask {
            manifest: other_feature,
            ..ask()
        },
        None,
        Some(rules::ENTITLEMENT_FEATURE),
    );
    // Model wildcard.
    let any = Entitlement {
        devices: vec![DeviceGrant {
            model: "acme-infusion-p7".into(),
            serials: vec!["*".into()],
        }],
        ..entitlement()
    };
    check_ent(
        &any,
        Ask {
            serial: "P7-0999",
            ..ask()
        },
        None,
        None,
    );
    // Revoked.
    let mut list = RecallList::new(1, t("2025-05-01T00:00:00Z"), t("2030-01-01T00:00:00Z"));
    list.entitlements.push("ent-1".into());
    check_ent(&e, ask(), Some(&list), Some(rules::ENTITLEMENT_REVOKED));
    // Security releases are exempt by default policy, even for another device.
    let mut sec = manifest("2.1.1");
    sec.class = ReleaseClass::Security;
    check_ent(
        &e,
        Ask {
            serial: "P7-0002",
            manifest: sec,
            ..ask()
        },
        None,
        None,
    );
}

#[test]
fn a_newer_generation_replaces_the_older() {
    let kit = kit();
    let old = entitlement();
    let newer = Entitlement {
        generation: 2,
        features: vec!["other".into()],
        ..entitlement()
    };
    let m = manifest("2.1.0");
    let mut req = EntitlementRequest {
        model: "acme-infusion-p7",
        serial: "P7-0001",
        customer: Some("St. Elsewhere"),
        site: Some("ward 4"),
        generations: &Default::default(),
        manifest: &m,
        now: t(NOW),
    };
    // Alone, generation 1 entitles.
    assert!(evaluate(std::slice::from_ref(&old), &req, &kit.root, None).allowed());
    // Beside generation 2 (which dropped the feature), it no longer does.
    let d = evaluate(&[old.clone(), newer], &req, &kit.root, None);
    assert!(!d.allowed());
    // Nor once generation 2 was seen, even if its file is gone.
    let seen = [("ent-1".to_owned(), 2)].into();
    req.generations = &seen;
    let d = evaluate(&[old], &req, &kit.root, None);
    assert_eq!(
        d.first_failure().unwrap().rule,
        rules::ENTITLEMENT_GENERATION
    );
}

#[test]
fn security_exemption_follows_policy() {
    let mut meta = root_meta(1, "2030-01-01T00:00:00Z");
    meta.policy.security_updates_without_entitlement = false;
    let root = TrustRoot::load_pinned(&meta.sign(&[&key(1)])).unwrap();
    let mut sec = manifest("2.1.1");
    sec.class = ReleaseClass::Security;
    let req = EntitlementRequest {
        model: "acme-infusion-p7",
        serial: "P7-0001",
        customer: None,
        site: None,
        generations: &Default::default(),
        manifest: &sec,
        now: t(NOW),
    };
    let d = evaluate(&[], &req, &root, None);
    assert_eq!(d.first_failure().unwrap().rule, rules::ENTITLEMENT);
}

#[test]
fn forged_entitlements_are_refused() {
    let kit = kit();
    // Wrong key: signed by the release key.
    let e = Entitlement::open(&entitlement().issue(&key(2)), &kit.root).unwrap_err();
    assert_eq!(e.rule(), rules::ENTITLEMENT_SIGNATURE);
    // Tampered: the serial list edited after issue.
    let file = entitlement().issue(&key(4));
    let mut env: Envelope = serde_json::from_slice(&file).unwrap();
    let other = Entitlement {
        devices: vec![DeviceGrant {
            model: "acme-infusion-p7".into(),
            serials: vec!["*".into()],
        }],
        ..entitlement()
    };
    let forged: Envelope = serde_json::from_slice(&other.issue(&key(9))).unwrap();
    env.enc = forged.enc;
    let e = Entitlement::open(&serde_json::to_vec(&env).unwrap(), &kit.root).unwrap_err();
    assert_eq!(e.rule(), rules::ENTITLEMENT_SIGNATURE);
    // Garbage.
    let e = Entitlement::open(b"{}", &kit.root).unwrap_err();
    assert_eq!(e.rule(), rules::ENTITLEMENT);
    // Inspect shows it without trusting it.
    assert_eq!(Entitlement::inspect(&file).unwrap().1, entitlement());
}

#[test]
fn replayed_older_recall_list_is_refused() {
    let kit = kit();
    let v3 =
        RecallList::new(3, t("2025-05-01T00:00:00Z"), t("2030-01-01T00:00:00Z")).sign(&[&key(5)]);
    let v2 =
        RecallList::new(2, t("2025-04-01T00:00:00Z"), t("2030-01-01T00:00:00Z")).sign(&[&key(5)]);
    assert_eq!(
        RecallList::open(&v3, &kit.root, Some(3)).unwrap().version,
        3
    );
    let e = RecallList::open(&v2, &kit.root, Some(3)).unwrap_err();
    assert_eq!(e.rule(), rules::RECALL_VERSION);
    assert_eq!(e.finding().found, "2");
    // Signed by a non-recall key.
    let e = RecallList::open(
        &RecallList::new(4, t(NOW), t("2030-01-01T00:00:00Z")).sign(&[&key(2)]),
        &kit.root,
        None,
    )
    .unwrap_err();
    assert_eq!(e.rule(), rules::SIGNATURE_THRESHOLD);
}

#[test]
fn clock_set_back_fails_closed() {
    let mut tt = TrustedTime::default();
    tt.observe(t("2025-06-01T00:00:00Z"));
    let e = tt.now(t("2025-05-30T00:00:00Z")).unwrap_err();
    assert_eq!(e.rule(), rules::CLOCK);
    // An entitlement expired yesterday cannot be revived by setting the clock back.
    assert_eq!(
        tt.now(t("2025-05-31T01:00:00Z")).unwrap(),
        t("2025-06-01T00:00:00Z")
    );
}

#[test]
fn root_rotation() {
    let kit = kit();
    let mut next = root_meta(1, "2031-01-01T00:00:00Z");
    next.version = 2;
    next.set_role("root", &[key(7).verifying_key()], 1);
    let both = next.sign(&[&key(1), &key(7)]);
    let r2 = kit.root.rotate(&both).unwrap();
    assert_eq!(r2.version(), 2);
    // Only the old key, only the new key: refused.
    assert_eq!(
        kit.root.rotate(&next.sign(&[&key(1)])).unwrap_err().rule(),
        rules::SIGNATURE_THRESHOLD
    );
    assert_eq!(
        kit.root.rotate(&next.sign(&[&key(7)])).unwrap_err().rule(),
        rules::SIGNATURE_THRESHOLD
    );
    // Skipping a version, or replaying the same one.
    next.version = 3;
    assert_eq!(
        kit.root
            .rotate(&next.sign(&[&key(1), &key(7)]))
            .unwrap_err()
            .rule(),
        rules::ROOT_VERSION
    );
    assert_eq!(r2.rotate(&both).unwrap_err().rule(), rules::ROOT_VERSION);
    // Malformed roots.
    let mut bad = root_meta(1, "2030-01-01T00:00:00Z");
    bad.roles.remove("recall");
    assert_eq!(
        TrustRoot::load_pinned(&bad.sign(&[&key(1)]))
            .unwrap_err()
            .rule(),
        rules::ROOT_FORMAT
    );
    let mut bad = root_meta(1, "2030-01-01T00:00:00Z");
    bad.roles.get_mut("release").unwrap().threshold = 3;
    assert_eq!(
        TrustRoot::load_pinned(&bad.sign(&[&key(1)]))
            .unwrap_err()
            .rule(),
        rules::ROOT_FORMAT
    );
}

fn openssl_key(dir: &std::path::Path, name: &str) -> (SigningKey, String) {
    let path = dir.join(format!("{name}.pem"));
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); it is required for interop tests"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pub_out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(pub_out.status.success());
    let private = keys::private_key_from_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let public_pem = String::from_utf8(pub_out.stdout).unwrap();
    // OpenSSL's public key and ours are the same key, and we write the PEM OpenSSL writes.
    assert_eq!(
        keys::public_key_from_pem(&public_pem).unwrap(),
        private.verifying_key()
    );
    assert_eq!(
        keys::public_key_to_pem(&private.verifying_key()).trim(),
        public_pem.trim()
    );
    (private, public_pem)
}

#[test]
fn openssl_keys_work_in_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["root", "release", "entitlement", "recall", "image"];
    let k: Vec<(SigningKey, String)> = names.iter().map(|n| openssl_key(dir.path(), n)).collect();
    let pubs: Vec<_> = k
        .iter()
        .map(|(_, p)| keys::public_key_from_pem(p).unwrap())
        .collect();
    let mut meta = RootMetadata::new(1, t("2030-01-01T00:00:00Z"));
    for (i, role) in ["root", "release", "entitlement", "recall", "pump-image"]
        .iter()
        .enumerate()
    {
        meta.set_role(role, &[pubs[i]], 1);
    }
    let root = TrustRoot::load_pinned(&meta.sign(&[&k[0].0])).unwrap();
    let pkg = package_with(&manifest("2.1.0"), &image("2.1.0", &k[4].0, 50), &[&k[1].0]);
    verify_package(&pkg[..], &root, t(NOW)).unwrap();
    Entitlement::open(&entitlement().issue(&k[2].0), &root).unwrap();
    RecallList::open(
        &RecallList::new(1, t(NOW), t("2030-01-01T00:00:00Z")).sign(&[&k[3].0]),
        &root,
        None,
    )
    .unwrap();
    // We write private keys exactly as OpenSSL does, and OpenSSL reads ours.
    let openssl_pem = std::fs::read_to_string(dir.path().join("root.pem")).unwrap();
    assert_eq!(keys::private_key_to_pem(&k[0].0).trim(), openssl_pem.trim());
    let ours = dir.path().join("ours.pem");
    std::fs::write(&ours, keys::private_key_to_pem(&key(1))).unwrap();
    let out = Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(&ours)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
