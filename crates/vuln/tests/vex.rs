//! VEX in three formats onto one model: real-shaped documents (after each specification's
//! examples), ranges that carry across releases, and each format's invalid enumerations.

use fieldkit_vuln::vex::{self, Format, Justification, State, Statement, Versions};
use fieldkit_vuln::{Component, Limits};
use serde_json::Value;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn parse(name: &str) -> vex::Document {
    vex::parse(name, &data(name), &Limits::default()).unwrap()
}

const APP: &str = "pkg:generic/acme-medical/acme-infusion-p7-app";
const MBEDTLS: &str = "pkg:github/Mbed-TLS/mbedtls@v3.6.0";

fn ids() -> Vec<String> {
    vec!["CVE-2024-45159".into(), "GHSA-demo-0000-0001".into()]
}

fn app(version: &str) -> Component {
    Component::new(&format!("{APP}@{version}"), version, &[])
}

fn mbedtls() -> Component {
    Component::new(MBEDTLS, "3.6.0", &[])
}

/// The state the document decides for the mbedtls CVE in app release `version`, if any.
fn state(doc: &vex::Document, version: &str) -> Option<State> {
    vex::decide(&doc.statements, &ids(), &app(version), &mbedtls()).map(|s| s.state)
}

#[test]
fn cyclonedx_vex() {
    let doc = parse("cyclonedx-vex.json");
    assert_eq!(doc.format, Format::CycloneDx);
    assert_eq!(doc.author, "Acme Medical Product Security");
    assert_eq!(doc.statements.len(), 2);
    let s = &doc.statements[0];
    assert_eq!(s.aliases, ["GHSA-demo-0000-0001"]);
    assert_eq!(
        s.justification,
        Some(Justification::VulnerableCodeNotInExecutePath)
    );
    assert!(
        s.detail
            .as_deref()
            .unwrap()
            .starts_with("code_not_reachable: ")
    );
    // A not_affected scoped by a range: the current release, the next ones inside the range,
    // not the release past it.
    assert_eq!(state(&doc, "2.3.1"), Some(State::NotAffected));
    assert_eq!(state(&doc, "2.4.0"), Some(State::NotAffected));
    assert_eq!(state(&doc, "3.0.0"), None);
    let exploitable = &doc.statements[1];
    assert_eq!(
        (exploitable.state, exploitable.action.as_deref()),
        (State::Affected, Some("update"))
    );
    assert_eq!(
        exploitable.product.versions,
        Versions::Exact("v3.6.0".into())
    );
}

#[test]
fn openvex() {
    let doc = parse("openvex.json");
    assert_eq!(doc.format, Format::OpenVex);
    assert_eq!(doc.statements.len(), 2);
    // Exact product version with a subcomponent: only that release, only for mbedtls.
    assert_eq!(state(&doc, "2.3.1"), Some(State::NotAffected));
    assert_eq!(state(&doc, "2.4.0"), None);
    let other = Component::new("pkg:github/intel/tinycbor@v0.6.0", "0.6.0", &[]);
    assert!(vex::decide(&doc.statements, &ids(), &app("2.3.1"), &other).is_none());
    // A firmware statement matched by hash, whatever the SBOM calls the build.
    let hash = "9a3e07cbfde8165d9a3e07cbfde8165d9a3e07cbfde8165d9a3e07cbfde8165d";
    let renamed = Component::new(
        "pkg:generic/acme-medical/radio@1.4.0",
        "1.4.0",
        &[("SHA-256".into(), hash.into())],
    );
    let s = vex::decide(
        &doc.statements,
        &["ACME-2026-0001".into()],
        &renamed,
        &renamed,
    )
    .unwrap();
    assert_eq!(s.state, State::Affected);
    assert_eq!(
        s.action.as_deref(),
        Some("Update the network core to 1.5.0 at the next service visit.")
    );
}

#[test]
fn csaf_vex() {
    let doc = parse("csaf-vex.json");
    assert_eq!(doc.format, Format::Csaf);
    assert_eq!(
        doc.author,
        "Acme Medical ProductCERT (https://psirt.acme-medical.example)"
    );
    assert_eq!(doc.id, "ACME-VEX-2026-0003 version 1");
    // The product without a purl is reported, not silently dropped.
    assert_eq!(doc.skipped.len(), 1, "{:?}", doc.skipped);
    assert!(doc.skipped[0].at.contains("P7-PROTO"));
    // A product_version_range branch carries the statement across releases.
    assert_eq!(state(&doc, "2.3.1"), Some(State::NotAffected));
    assert_eq!(state(&doc, "2.9.9"), Some(State::NotAffected));
    // The relationship: 3.0.0 is affected through its mbedtls, with the vendor fix as action.
    let s = vex::decide(&doc.statements, &ids(), &app("3.0.0"), &mbedtls()).unwrap();
    assert_eq!(s.state, State::Affected);
    assert_eq!(
        s.action.as_deref(),
        Some("vendor_fix: Install release 3.0.1, which carries mbedtls 3.6.2.")
    );
}

#[test]
fn the_latest_statement_decides_then_the_narrowest() {
    let mut statements: Vec<Statement> = parse("cyclonedx-vex.json").statements;
    statements.truncate(1);
    let mut later = parse("openvex.json").statements.remove(0);
    later.state = State::Affected;
    later.justification = None;
    later.subcomponents.clear();
    // Same time: the exact version beats the range.
    later.timestamp = statements[0].timestamp;
    statements.push(later.clone());
    let pick =
        |s: &[Statement], v: &str| vex::decide(s, &ids(), &app(v), &mbedtls()).map(|s| s.state);
    assert_eq!(pick(&statements, "2.3.1"), Some(State::Affected));
    assert_eq!(pick(&statements, "2.4.0"), Some(State::NotAffected));
    // An older exact statement loses to the newer range.
    statements[1].timestamp = statements[0]
        .timestamp
        .map(|t| t - chrono::Duration::days(1));
    assert_eq!(pick(&statements, "2.3.1"), Some(State::NotAffected));
}

/// Replaces the value at a JSON pointer of a data file and parses the result.
fn broken(name: &str, pointer: &str, value: Value) -> String {
    let mut v: Value = serde_json::from_slice(&data(name)).unwrap();
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    vex::parse(name, v.to_string().as_bytes(), &Limits::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn invalid_enums_name_the_field_and_the_allowed_values() {
    let s = |x: &str| Value::String(x.into());
    for (name, pointer, value, want) in [
        (
            "cyclonedx-vex.json",
            "/vulnerabilities/0/analysis/state",
            s("harmless"),
            "vulnerabilities[0].analysis.state: unknown variant `harmless`, expected one of `resolved`, `resolved_with_pedigree`, `exploitable`, `in_triage`, `false_positive`, `not_affected`",
        ),
        (
            "cyclonedx-vex.json",
            "/vulnerabilities/0/analysis/justification",
            s("trust_me"),
            "vulnerabilities[0].analysis.justification: unknown variant `trust_me`, expected one of `code_not_present`, `code_not_reachable`",
        ),
        (
            "cyclonedx-vex.json",
            "/vulnerabilities/1/analysis/response/0",
            s("pray"),
            "vulnerabilities[1].analysis.response[0]: unknown variant `pray`, expected one of `can_not_fix`, `will_not_fix`, `update`, `rollback`, `workaround_available`",
        ),
        (
            "cyclonedx-vex.json",
            "/vulnerabilities/0/affects/0/versions/0/status",
            s("fine"),
            "vulnerabilities[0].affects[0].versions[0].status: unknown variant `fine`, expected one of `affected`, `unaffected`, `unknown`",
        ),
        (
            "cyclonedx-vex.json",
            "/specVersion",
            s("1.2"),
            "specVersion: unknown variant `1.2`, expected one of `1.4`, `1.5`, `1.6`",
        ),
        (
            "openvex.json",
            "/statements/0/status",
            s("fixed_maybe"),
            "statements[0].status: unknown variant `fixed_maybe`, expected one of `not_affected`, `affected`, `fixed`, `under_investigation`",
        ),
        (
            "openvex.json",
            "/statements/0/justification",
            s("because"),
            "statements[0].justification: unknown variant `because`, expected one of `component_not_present`, `vulnerable_code_not_present`, `vulnerable_code_not_in_execute_path`, `vulnerable_code_cannot_be_controlled_by_adversary`, `inline_mitigations_already_exist`",
        ),
        (
            "csaf-vex.json",
            "/vulnerabilities/0/flags/0/label",
            s("not_my_problem"),
            "vulnerabilities[0].flags[0].label: unknown variant `not_my_problem`, expected one of `component_not_present`",
        ),
        (
            "csaf-vex.json",
            "/vulnerabilities/0/remediations/0/category",
            s("hope"),
            "vulnerabilities[0].remediations[0].category: unknown variant `hope`, expected one of `mitigation`, `no_fix_planned`, `none_available`, `vendor_fix`, `workaround`",
        ),
        (
            "csaf-vex.json",
            "/product_tree/branches/0/category",
            s("brand"),
            "product_tree.branches[0].category: unknown variant `brand`, expected one of `architecture`",
        ),
        (
            "csaf-vex.json",
            "/document/tracking/status",
            s("done"),
            "document.tracking.status: unknown variant `done`, expected one of `draft`, `final`, `interim`",
        ),
        (
            "csaf-vex.json",
            "/document/csaf_version",
            s("2.1"),
            "document.csaf_version: unknown variant `2.1`, expected `2.0`",
        ),
        (
            "csaf-vex.json",
            "/vulnerabilities/0/product_status",
            serde_json::json!({ "probably_fine": ["P7-APP-2X"] }),
            "vulnerabilities[0].product_status.probably_fine: unknown field `probably_fine`, expected one of `first_affected`",
        ),
    ] {
        let e = broken(name, pointer, value);
        assert!(
            e.contains(want),
            "{name} {pointer}:\n  got  {e}\n  want {want}"
        );
    }
}

#[test]
fn not_affected_must_say_why() {
    // The impact statement alone is enough...
    let mut v: Value = serde_json::from_slice(&data("openvex.json")).unwrap();
    v["statements"][0]
        .as_object_mut()
        .unwrap()
        .remove("justification");
    assert!(vex::parse("openvex.json", v.to_string().as_bytes(), &Limits::default()).is_ok());
    // ...neither is not.
    let mut v: Value = serde_json::from_slice(&data("openvex.json")).unwrap();
    v["statements"][0]
        .as_object_mut()
        .unwrap()
        .remove("justification");
    v["statements"][0]
        .as_object_mut()
        .unwrap()
        .remove("impact_statement");
    let e = vex::parse("openvex.json", v.to_string().as_bytes(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("statements[0].justification: found not_affected without a justification or an impact statement"), "{e}");

    let mut v: Value = serde_json::from_slice(&data("csaf-vex.json")).unwrap();
    v["vulnerabilities"][0]["flags"] = Value::Array(vec![]);
    let e = vex::parse("csaf.json", v.to_string().as_bytes(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(product P7-APP-2X): found not_affected without a justification"),
        "{e}"
    );
}

#[test]
fn unknown_documents_are_refused() {
    for (doc, want) in [
        (
            "{}",
            "found a JSON document without bomFormat, @context or document.csaf_version",
        ),
        ("[1,2]", "found a JSON document without bomFormat"),
        (
            r#"{"@context":"https://example.com/other","@id":"x","author":"a","statements":[]}"#,
            "@context: found \"https://example.com/other\"",
        ),
        (
            r#"{"bomFormat":"SPDX","specVersion":"1.6"}"#,
            "bomFormat: unknown variant `SPDX`, expected `CycloneDX`",
        ),
    ] {
        let e = vex::parse("x.json", doc.as_bytes(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{doc}: {e}");
    }
}

#[test]
fn a_purl_with_a_vers_range_is_a_range_scope() {
    use fieldkit_vuln::vex::Scope;
    let s = Scope::from_purl(&format!("{APP}@vers:semver/>=2.3.0|<3.0.0")).unwrap();
    assert!(matches!(s.versions, Versions::Range(_)));
    assert!(s.covers(&app("2.3.1")) && s.covers(&app("2.9.0")));
    assert!(!s.covers(&app("3.0.0")) && !s.covers(&app("2.2.9")));
    assert_eq!(
        s.to_purl().unwrap(),
        "pkg:generic/acme-medical/acme-infusion-p7-app@vers:semver/>=2.3.0|<3.0.0"
    );
    let exact = Scope::from_purl(&format!("{APP}@2.3.1")).unwrap();
    assert!(exact.covers(&app("2.3.1")) && !exact.covers(&app("2.3.2")));
    assert!(Scope::from_purl(APP).unwrap().covers(&app("9.9.9")));
    for (bad, says) in [
        (format!("{APP}@vers:cobol/>=1"), "SCHEME one of semver"),
        ("netcore@1.0".to_owned(), "is not a package URL"),
    ] {
        let e = Scope::from_purl(&bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

/// The shapes published VEX documents take that fieldkit's own examples do not: the CSAF VEX
/// profile's examples scope products by `vers:all/*` and by `vers:generic/...`, and CycloneDX's
/// examples point into the SBOM the VEX was written for by BOM-Link
/// (`urn:cdx:SERIAL/VERSION#BOM-REF`). (Checked against the CSAF 2.0 VEX examples, the
/// CycloneDX VEX use cases and vexctl's OpenVEX test data: every document imports; what cannot
/// be placed on a device is skipped with the reason.)
#[test]
fn published_shapes_import_and_say_what_they_cannot_place() {
    let csaf = serde_json::json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "publisher": {"category": "vendor", "name": "Acme Medical ProductCERT", "namespace": "https://psirt.acme-medical.example"},
            "title": "Mbed TLS in the P7 app",
            "tracking": {
                "current_release_date": "2026-11-02T09:00:00.000Z",
                "generator": {"date": "2026-11-02T09:00:00.000Z", "engine": {"name": "Secvisogram", "version": "1.11.0"}},
                "id": "ACME-VEX-2026-0007",
                "initial_release_date": "2026-11-02T09:00:00.000Z",
                "revision_history": [{"date": "2026-11-02T09:00:00.000Z", "number": "1", "summary": "Initial version."}],
                "status": "final",
                "version": "1"
            }
        },
        "product_tree": {"branches": [{
            "category": "vendor", "name": "Acme Medical",
            "branches": [{
                "category": "product_name", "name": "P7 app",
                "branches": [
                    {
                        "category": "product_version_range", "name": "vers:all/*",
                        "product": {
                            "name": "P7 app, every release", "product_id": "P7-APP-ALL",
                            "product_identification_helper": {"purl": APP}
                        }
                    },
                    {
                        "category": "product_version_range", "name": "vers:generic/>=2.9|<=4.1",
                        "product": {
                            "name": "P7 app 2.9 to 4.1", "product_id": "P7-APP-GENERIC",
                            "product_identification_helper": {"purl": APP}
                        }
                    }
                ]
            }]
        }]},
        "vulnerabilities": [{
            "cve": "CVE-2024-45159",
            "product_status": {"known_not_affected": ["P7-APP-ALL"], "known_affected": ["P7-APP-GENERIC"]},
            "flags": [{"label": "vulnerable_code_not_in_execute_path", "product_ids": ["P7-APP-ALL"]}],
            "remediations": [{"category": "vendor_fix", "details": "Install 3.0.1.", "product_ids": ["P7-APP-GENERIC"]}]
        }]
    });
    let doc = vex::parse("csaf.json", csaf.to_string().as_bytes(), &Limits::default()).unwrap();
    // `vers:all/*` is every release; the generic range is not refused with the document.
    assert_eq!(doc.statements.len(), 1, "{:?}", doc.statements);
    assert_eq!(doc.statements[0].product.versions, Versions::Any);
    assert_eq!(state(&doc, "2.3.1"), Some(State::NotAffected));
    assert_eq!(state(&doc, "9.0.0"), Some(State::NotAffected));
    assert_eq!(doc.skipped.len(), 1, "{:?}", doc.skipped);
    assert!(
        doc.skipped[0].reason.contains(
            "product_tree.branches[0].branches[0].branches[1].name: fieldkit cannot evaluate the version range"
        ) && doc.skipped[0].reason.contains("generic"),
        "{:?}",
        doc.skipped
    );

    let cdx = serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "version": 1,
        "metadata": {"timestamp": "2026-11-02T09:00:00Z", "component": {"name": "P7 app", "type": "firmware", "bom-ref": "p7-app", "purl": APP}},
        "vulnerabilities": [{
            "id": "CVE-2024-45159",
            "source": {"name": "NVD", "url": "https://nvd.nist.gov/vuln/detail/CVE-2024-45159"},
            "ratings": [{"source": {"name": "NVD"}, "score": 9.8, "severity": "critical", "method": "CVSSv31", "vector": "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "analysis": {"state": "not_affected", "justification": "code_not_reachable", "response": ["will_not_fix", "update"], "detail": "Never verifies chains with that key usage."},
            "affects": [
                // Into the SBOM, whose bom-ref is the purl (as SBOM tools write it).
                {"ref": format!("urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#{APP}@2.3.1")},
                // Into the SBOM, by a name only that SBOM knows.
                {"ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#acme-product-1"},
                // This document's product, with a range fieldkit cannot order.
                {"ref": "p7-app", "versions": [{"range": "vers:generic/>=2.9|<=4.1", "status": "unaffected"}]}
            ]
        }]
    });
    let doc = vex::parse("cdx.json", cdx.to_string().as_bytes(), &Limits::default()).unwrap();
    assert_eq!(doc.statements.len(), 1, "{:?}", doc.statements);
    assert_eq!(state(&doc, "2.3.1"), Some(State::NotAffected));
    assert_eq!(state(&doc, "2.4.0"), None);
    let reasons: Vec<String> = doc
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.at, s.reason))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("vulnerabilities[0].affects[1].ref: ")
            && reasons[0].contains("neither a bom-ref of this document nor a purl"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("vulnerabilities[0].affects[2].versions[0].range: fieldkit cannot evaluate the version range"),
        "{reasons:?}"
    );
}
