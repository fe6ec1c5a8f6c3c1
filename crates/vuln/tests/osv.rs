//! OSV import and matching: the semantics scanners get wrong, one table of cases.

use fieldkit_vuln::{
    Catalog, Component, Inserted, Level, Limits, MatchedBy, Verdict, parse_advisory,
};
use serde_json::{Value, json};

const NETCORE: &str = "pkg:generic/acme-medical/acme-infusion-p7-netcore";
const NETCORE_HASH: &str = "9a3e07cbfde8165d1f2e3d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn advisory(id: &str, affected: Value) -> Value {
    json!({
        "schema_version": "1.6.0",
        "id": id,
        "modified": "2026-10-01T00:00:00Z",
        "published": "2026-09-01T00:00:00Z",
        "summary": format!("{id} summary"),
        "affected": [affected],
    })
}

fn parse(v: &Value) -> fieldkit_vuln::Advisory {
    parse_advisory("test.json", v.to_string().as_bytes(), &Limits::default()).unwrap()
}

fn component(purl: &str, version: &str) -> Component {
    Component::new(purl, version, &[])
}

/// Checks one component against one advisory: `want` is `Some(fragment of the reason)` for
/// affected, `None` for not affected, `Some("?...")` for undetermined.
fn check(affected: Value, c: &Component, want: Option<&str>) {
    let a = parse(&advisory("TEST-1", affected.clone()));
    let got = a.check(c);
    match (got, want) {
        (None, None) => {}
        (Some(Verdict::Affected { because, .. }), Some(w)) if !w.starts_with('?') => {
            assert!(because.contains(w), "{affected} {c:?}: {because}")
        }
        (Some(Verdict::Undetermined { because }), Some(w)) if w.starts_with('?') => {
            assert!(because.contains(&w[1..]), "{affected} {c:?}: {because}")
        }
        (got, want) => panic!("{affected} {c:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn introduced_zero_with_last_affected() {
    let a = json!({
        "package": { "ecosystem": "Acme", "name": "netcore", "purl": NETCORE },
        "ranges": [{ "type": "SEMVER", "events": [{ "introduced": "0" }, { "last_affected": "1.4.0" }] }]
    });
    let why = "SEMVER range: introduced 0, last_affected 1.4.0";
    check(a.clone(), &component(NETCORE, "0.0.1"), Some(why));
    check(a.clone(), &component(NETCORE, "1.4.0"), Some(why));
    check(a.clone(), &component(NETCORE, "1.4.0+7"), Some(why));
    check(a.clone(), &component(NETCORE, "1.4.1"), None);
    check(a.clone(), &component(NETCORE, "1.5.0"), None);
    // The version may come from the purl when the SBOM leaves `version` empty.
    check(a, &component(&format!("{NETCORE}@1.3.9"), ""), Some(why));
}

#[test]
fn ranges_and_lists() {
    let semver = json!({
        "package": { "ecosystem": "Acme", "name": "app", "purl": "pkg:generic/acme-medical/app" },
        "ranges": [{ "type": "SEMVER", "events": [
            { "introduced": "1.0.0" }, { "fixed": "1.2.0" },
            { "introduced": "2.0.0" }, { "fixed": "2.1.3" }
        ]}]
    });
    let c = |v| component("pkg:generic/acme-medical/app", v);
    check(semver.clone(), &c("0.9.0"), None);
    check(semver.clone(), &c("1.1.9"), Some("fixed 1.2.0"));
    check(semver.clone(), &c("1.2.0"), None);
    check(semver.clone(), &c("2.1.2"), Some("introduced 2.0.0"));
    check(semver.clone(), &c("2.1.3"), None);
    check(
        semver.clone(),
        &c("not-a-version"),
        Some("?\"not-a-version\" is not a semver version"),
    );
    // Another vendor's component of the same name is not matched.
    check(semver, &component("pkg:generic/other/app", "1.1.0"), None);

    // ECOSYSTEM ranges in Debian's ordering (epochs, tildes), by purl derived from nothing: the
    // advisory gives the purl.
    let deb = json!({
        "package": { "ecosystem": "Debian:12", "name": "openssl", "purl": "pkg:deb/debian/openssl" },
        "ranges": [{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": "3.0.15-1~deb12u1" }] }]
    });
    check(
        deb.clone(),
        &component("pkg:deb/debian/openssl", "3.0.14-1~deb12u2"),
        Some("ECOSYSTEM"),
    );
    check(
        deb.clone(),
        &component("pkg:deb/debian/openssl", "3.0.15-1~deb12u1"),
        None,
    );
    check(deb, &component("pkg:deb/debian/openssl", "3.0.15-1"), None);

    // crates.io without a purl in the advisory: derived from ecosystem and name.
    let cargo = json!({
        "package": { "ecosystem": "crates.io", "name": "tinycbor-sys" },
        "ranges": [{ "type": "ECOSYSTEM", "events": [{ "introduced": "0.5.0" }, { "fixed": "0.6.1" }] }]
    });
    check(
        cargo,
        &component("pkg:cargo/tinycbor-sys@0.6.0", ""),
        Some("ECOSYSTEM"),
    );

    // An ecosystem without a known ordering: the versions list decides, else undetermined.
    let listed = json!({
        "package": { "ecosystem": "PyPI", "name": "imgtool", "purl": "pkg:pypi/imgtool" },
        "ranges": [{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": "2.1.0" }] }],
        "versions": ["1.9.0", "2.0.0"]
    });
    check(
        listed.clone(),
        &component("pkg:pypi/imgtool", "2.0.0"),
        Some("listed"),
    );
    check(listed, &component("pkg:pypi/imgtool", "2.0.1"), None);
    let unlisted = json!({
        "package": { "ecosystem": "PyPI", "name": "imgtool", "purl": "pkg:pypi/imgtool" },
        "ranges": [{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": "2.1.0" }] }]
    });
    check(
        unlisted,
        &component("pkg:pypi/imgtool", "2.0.1"),
        Some("?no version ordering for ecosystem \"PyPI\""),
    );

    // GIT ranges: tags in the versions list (an SBOM writes `3.6.0` for tag `v3.6.0`), or the
    // exact commit; without a list, undetermined.
    let git = json!({
        "package": { "ecosystem": "GIT", "name": "https://github.com/Mbed-TLS/mbedtls", "purl": "pkg:github/Mbed-TLS/mbedtls" },
        "ranges": [{ "type": "GIT", "repo": "https://github.com/Mbed-TLS/mbedtls", "events": [
            { "introduced": "0" }, { "fixed": "a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e" }
        ]}],
        "versions": ["v3.5.0", "v3.6.0"]
    });
    check(
        git.clone(),
        &component("pkg:github/Mbed-TLS/mbedtls@v3.6.0", "3.6.0"),
        Some("listed"),
    );
    check(
        git.clone(),
        &component("pkg:github/mbed-tls/mbedtls", "3.6.2"),
        None,
    );
    let mut bare = git.clone();
    bare["versions"] = json!([]);
    check(
        bare,
        &component("pkg:github/Mbed-TLS/mbedtls", "3.6.0"),
        Some("?without a versions list"),
    );
}

/// The shape OSV's records converted from CVEs take for C libraries and firmware, which have no
/// ecosystem: no `package`, a GIT range naming the repository, and the affected tags, written
/// as the project tags them (`mbedtls-3.6.0`, `v3.6.0`). The repository is the package
/// (`pkg:github/OWNER/NAME`), so an SBOM's component matches it by purl.
#[test]
fn a_record_without_a_package_matches_by_its_repository() {
    let record = json!({
        "schema_version": "1.6.0",
        "id": "CVE-2024-45159",
        "modified": "2026-10-01T00:00:00Z",
        "published": "2024-09-05T06:15:00Z",
        "details": "Mbed TLS 3.x before 3.6.1 ...",
        "severity": [{ "type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }],
        "affected": [{
            "ranges": [{
                "type": "GIT",
                "repo": "https://github.com/Mbed-TLS/mbedtls.git",
                "events": [{ "introduced": "0" }, { "fixed": "a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e" }],
                "database_specific": { "versions": [{ "introduced": "3.0.0" }, { "fixed": "3.6.1" }] }
            }],
            "versions": ["mbedtls-3.5.0", "mbedtls-3.6.0", "v3.6.0"],
            "database_specific": { "source": "https://storage.googleapis.com/cve-osv-conversion/osv-output/CVE-2024-45159.json" }
        }],
        "references": [{ "type": "ADVISORY", "url": "https://mbed-tls.readthedocs.io/en/latest/security-advisories/" }]
    });
    let a = parse(&record);
    let mbedtls = |v: &str| component(&format!("pkg:github/Mbed-TLS/mbedtls@v{v}"), v);
    for v in ["3.5.0", "3.6.0"] {
        match a.check(&mbedtls(v)) {
            Some(Verdict::Affected { via, because, .. }) => {
                assert_eq!(via, MatchedBy::Purl, "{v}");
                assert!(because.contains("listed"), "{v}: {because}");
            }
            other => panic!("{v}: {other:?}"),
        }
    }
    assert_eq!(a.check(&mbedtls("3.6.2")), None);
    // Another project's 3.6.0 is not this one.
    assert_eq!(
        a.check(&component(
            "pkg:github/zephyrproject-rtos/zephyr@v3.6.0",
            "3.6.0"
        )),
        None
    );
    // Two repositories, or a forge purl has no type for: no identity is guessed, and the record
    // matches by nothing but hashes (as before).
    let mut two = record.clone();
    two["affected"][0]["ranges"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "GIT", "repo": "https://github.com/ARMmbed/mbedtls", "events": [{ "introduced": "0" }] }));
    assert_eq!(parse(&two).check(&mbedtls("3.6.0")), None);
    let mut elsewhere = record;
    elsewhere["affected"][0]["ranges"][0]["repo"] = json!("https://git.example.org/mbedtls.git");
    assert_eq!(parse(&elsewhere).check(&mbedtls("3.6.0")), None);
}

#[test]
fn a_withdrawn_advisory_affects_nothing() {
    let mut v = advisory(
        "ACME-2026-0009",
        json!({ "package": { "purl": NETCORE }, "versions": ["1.4.0"] }),
    );
    let live = parse(&v);
    assert!(live.check(&component(NETCORE, "1.4.0")).is_some());
    v["withdrawn"] = json!("2026-10-15T00:00:00Z");
    v["modified"] = json!("2026-10-15T00:00:00Z");
    let mut catalog = Catalog::new();
    assert_eq!(catalog.insert(live), Inserted::New);
    assert_eq!(catalog.check(&component(NETCORE, "1.4.0")).len(), 1);
    // The withdrawal arrives as an update of the same id and takes the match away.
    assert_eq!(catalog.insert(parse(&v)), Inserted::Updated);
    assert!(catalog.check(&component(NETCORE, "1.4.0")).is_empty());
    assert!(parse(&v).check(&component(NETCORE, "1.4.0")).is_none());
    // An older copy does not bring it back.
    let mut old = v.clone();
    old["modified"] = json!("2026-10-01T00:00:00Z");
    old.as_object_mut().unwrap().remove("withdrawn");
    assert_eq!(catalog.insert(parse(&old)), Inserted::Unchanged);
    assert!(catalog.check(&component(NETCORE, "1.4.0")).is_empty());
}

#[test]
fn aliases_merge_two_ids_into_one_vulnerability() {
    let affected =
        json!({ "package": { "purl": "pkg:github/Mbed-TLS/mbedtls" }, "versions": ["v3.6.0"] });
    let mut ghsa = advisory("GHSA-demo-0000-0001", affected.clone());
    ghsa["aliases"] = json!(["CVE-2024-45159"]);
    ghsa["severity"] =
        json!([{ "type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }]);
    let mut acme = advisory("ACME-2026-0002", affected.clone());
    acme["aliases"] = json!(["CVE-2024-45159"]);
    let other = advisory("GHSA-demo-0000-0002", affected);
    let mut catalog = Catalog::new();
    for a in [&acme, &other, &ghsa] {
        catalog.insert(parse(a));
    }
    let c = component("pkg:github/Mbed-TLS/mbedtls@v3.6.0", "3.6.0");
    let matches = catalog.check(&c);
    assert_eq!(
        matches
            .iter()
            .map(|m| m.vulnerability.as_str())
            .collect::<Vec<_>>(),
        ["CVE-2024-45159", "GHSA-demo-0000-0002"]
    );
    let merged = &matches[0];
    assert_eq!(merged.advisory, "ACME-2026-0002");
    assert_eq!(
        merged.ids,
        ["ACME-2026-0002", "CVE-2024-45159", "GHSA-demo-0000-0001"]
    );
    // The severity is the worst any of its advisories gives.
    assert_eq!(merged.severity.level, Level::Critical);
    assert_eq!(merged.severity.score, Some(9.8));
    assert_eq!(catalog.name_of("ACME-2026-0002"), "CVE-2024-45159");
    assert_eq!(catalog.advisories_of("CVE-2024-45159").len(), 2);
    // Import order does not change the result.
    let mut reversed = Catalog::new();
    for a in [&ghsa, &other, &acme] {
        reversed.insert(parse(a));
    }
    assert_eq!(reversed.check(&c), matches);
}

#[test]
fn an_advisory_that_names_two_groups_joins_them() {
    let affected = json!({ "package": { "purl": "pkg:generic/lwip" }, "versions": ["2.2.0"] });
    let mut a = advisory("ACME-2026-0010", affected.clone());
    a["aliases"] = json!(["GHSA-demo-0000-0010"]);
    let mut b = advisory("ACME-2026-0011", affected.clone());
    b["aliases"] = json!(["CVE-2026-0011"]);
    let mut bridge = advisory("OSV-2026-0012", affected);
    bridge["aliases"] = json!(["GHSA-demo-0000-0010", "CVE-2026-0011"]);
    let all = [
        "ACME-2026-0010",
        "ACME-2026-0011",
        "CVE-2026-0011",
        "GHSA-demo-0000-0010",
        "OSV-2026-0012",
    ];
    for order in [[&a, &b, &bridge], [&bridge, &b, &a], [&b, &bridge, &a]] {
        let mut catalog = Catalog::new();
        for x in order {
            catalog.insert(parse(x));
        }
        for id in all {
            assert_eq!(catalog.ids_of(id), all, "{id}");
            assert_eq!(catalog.name_of(id), "CVE-2026-0011");
        }
        assert_eq!(catalog.ids_of("CVE-1999-0001"), ["CVE-1999-0001"]);
        assert_eq!(
            catalog.vulnerabilities(),
            [("CVE-2026-0011".to_owned(), all.map(String::from).to_vec())]
        );
        assert_eq!(
            catalog
                .check(&component("pkg:generic/lwip@2.2.0", "2.2.0"))
                .len(),
            1
        );
    }
}

#[test]
fn generic_firmware_by_purl_and_by_hash() {
    let mut a = advisory(
        "ACME-2026-0001",
        json!({
            "package": { "ecosystem": "Acme Medical firmware", "name": "acme-infusion-p7-netcore", "purl": NETCORE },
            "ranges": [{ "type": "SEMVER", "events": [{ "introduced": "1.0.0" }, { "fixed": "1.5.0" }] }],
            "database_specific": { "hashes": [{ "alg": "SHA-256", "content": NETCORE_HASH }] }
        }),
    );
    a["database_specific"] = json!({ "severity": "HIGH" });
    let mut catalog = Catalog::new();
    catalog.insert(parse(&a));

    let by_purl = catalog.check(&component(&format!("{NETCORE}@1.4.0"), "1.4.0"));
    assert_eq!(by_purl.len(), 1);
    assert_eq!(by_purl[0].severity.level, Level::High);
    let Verdict::Affected { via, fixed, .. } = &by_purl[0].verdict else {
        panic!("{by_purl:?}")
    };
    assert_eq!(
        (*via, fixed.as_slice()),
        (MatchedBy::Purl, ["1.5.0".to_string()].as_slice())
    );
    assert!(catalog.check(&component(NETCORE, "1.5.0")).is_empty());

    // A build renamed in its SBOM, or with no usable purl at all, is found by its bytes.
    let renamed = Component::new(
        "pkg:generic/acme-medical/p7-radio@9.9.9",
        "9.9.9",
        &[("SHA-256".into(), NETCORE_HASH.to_uppercase())],
    );
    let by_hash = catalog.check(&renamed);
    assert!(
        matches!(
            by_hash[0].verdict,
            Verdict::Affected {
                via: MatchedBy::Hash,
                ..
            }
        ),
        "{by_hash:?}"
    );
    let no_purl = Component::new("not a purl", "x", &[("sha256".into(), NETCORE_HASH.into())]);
    assert_eq!(catalog.check(&no_purl).len(), 1);
    // Another vendor's generic component of the same name does not match.
    assert!(
        catalog
            .check(&component(
                "pkg:generic/other/acme-infusion-p7-netcore@1.4.0",
                "1.4.0"
            ))
            .is_empty()
    );
}

#[test]
fn refusals_name_the_place_and_the_rule() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "id": "X" }), ".: missing field `modified`"),
        (
            json!({ "id": "X", "modified": "yesterday" }),
            "modified: input contains invalid characters",
        ),
        (
            advisory(
                "X",
                json!({ "package": { "purl": NETCORE }, "ranges": [{ "type": "CALVER", "events": [] }] }),
            ),
            "affected[0].ranges[0].type: unknown variant `CALVER`, expected one of",
        ),
        (
            advisory(
                "X",
                json!({ "package": { "purl": NETCORE }, "ranges": [{ "type": "SEMVER", "events": [{ "fixed": "1.0.0" }] }] }),
            ),
            "affected[0].ranges[0].events: found 1 events without an introduced event",
        ),
        (
            advisory(
                "X",
                json!({ "package": { "purl": NETCORE }, "ranges": [{ "type": "SEMVER", "events": [{ "broken": "1.0.0" }] }] }),
            ),
            "affected[0].ranges[0].events[0]: unknown variant `broken`, expected one of `introduced`, `fixed`, `last_affected`, `limit`",
        ),
        (
            advisory("X", json!({ "package": { "purl": "npm:left-pad" } })),
            "affected[0].package.purl: found \"npm:left-pad\" is not a package URL",
        ),
        (
            advisory("X", json!({ "versions": ["1.0"] })),
            "affected[0]: found no package, no GIT range and no hashes",
        ),
        (
            advisory(
                "X",
                json!({ "package": { "purl": NETCORE }, "ranges": [{ "type": "GIT", "events": [{ "introduced": "0" }] }] }),
            ),
            "affected[0].ranges[0].repo: found none",
        ),
        (
            advisory(
                "X",
                json!({ "package": { "purl": NETCORE }, "database_specific": { "hashes": [{ "alg": "CRC32", "content": "abcd" }] } }),
            ),
            "affected[0].database_specific.hashes[0]: found CRC32 abcd",
        ),
        (
            advisory("X\u{1b}[31m", json!({ "package": { "purl": NETCORE } })),
            "id: found \"X\\u{1b}[31m\", required 1 to 1024 characters without control characters",
        ),
    ];
    for (doc, want) in cases {
        let e = parse_advisory("test.json", doc.to_string().as_bytes(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{doc}:\n  got  {e}\n  want {want}");
        assert!(e.starts_with("test.json: "), "{e}");
    }
}
