//! CycloneDX VEX (CycloneDX 1.4-1.6 `vulnerabilities` with `analysis` and `affects`).
//!
//! Mapping onto the common model: `analysis.state` `not_affected` and `false_positive` are not
//! affected, `exploitable` affected, `resolved` and `resolved_with_pedigree` fixed, `in_triage`
//! under investigation. Without an analysis state, each `affects[].versions[].status` says it
//! (`affected`, `unaffected`, `unknown` -> under investigation). CycloneDX's nine
//! justifications map onto CISA's five: `code_not_present` -> vulnerable code not present,
//! `code_not_reachable` -> not in execute path, `requires_configuration`/`_dependency`/
//! `_environment` -> cannot be controlled by adversary, `protected_*` -> inline mitigations;
//! the original word is kept in the detail. `affects[].ref` is resolved through the document's
//! components (`bom-ref` -> purl); a ref that is itself a purl is used as is, and so is the
//! bom-ref of a BOM-Link (`urn:cdx:SERIAL/VERSION#BOM-REF`) into the SBOM the VEX was written
//! for. A version range in a scheme fieldkit cannot order is skipped with the reason: the
//! advisory decides those versions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Document, Format, Justification, Scope, Skipped, State, Statement, Versions};
use crate::component::Hash;
use crate::error::{Result, VulnError};
use crate::limits::Limits;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    bom_format: BomFormat,
    spec_version: SpecVersion,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    components: Vec<BomComponent>,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
}

#[derive(Deserialize)]
enum BomFormat {
    CycloneDX,
}

#[derive(Deserialize)]
enum SpecVersion {
    #[serde(rename = "1.4")]
    V14,
    #[serde(rename = "1.5")]
    V15,
    #[serde(rename = "1.6")]
    V16,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    authors: Vec<Named>,
    #[serde(default)]
    supplier: Option<Named>,
    #[serde(default)]
    manufacturer: Option<Named>,
    #[serde(default)]
    component: Option<BomComponent>,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct BomComponent {
    #[serde(rename = "bom-ref", default)]
    bom_ref: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    hashes: Vec<BomHash>,
    #[serde(default)]
    components: Vec<BomComponent>,
}

#[derive(Deserialize)]
struct BomHash {
    alg: String,
    content: String,
}

#[derive(Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    analysis: Option<Analysis>,
    #[serde(default)]
    affects: Vec<Affects>,
    #[serde(default)]
    updated: Option<DateTime<Utc>>,
    #[serde(default)]
    published: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Reference {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Analysis {
    #[serde(default)]
    state: Option<AnalysisState>,
    #[serde(default)]
    justification: Option<CdxJustification>,
    #[serde(default)]
    response: Vec<Response>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    first_issued: Option<DateTime<Utc>>,
    #[serde(default)]
    last_updated: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum AnalysisState {
    Resolved,
    ResolvedWithPedigree,
    Exploitable,
    InTriage,
    FalsePositive,
    NotAffected,
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "snake_case")]
enum CdxJustification {
    CodeNotPresent,
    CodeNotReachable,
    RequiresConfiguration,
    RequiresDependency,
    RequiresEnvironment,
    ProtectedByCompiler,
    ProtectedAtRuntime,
    ProtectedAtPerimeter,
    ProtectedByMitigatingControl,
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "snake_case")]
enum Response {
    CanNotFix,
    WillNotFix,
    Update,
    Rollback,
    WorkaroundAvailable,
}

#[derive(Deserialize)]
struct Affects {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    versions: Vec<AffectedVersion>,
}

#[derive(Deserialize)]
struct AffectedVersion {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    status: Option<AffectedStatus>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum AffectedStatus {
    Affected,
    Unaffected,
    Unknown,
}

fn justification(j: CdxJustification) -> Justification {
    use CdxJustification::*;
    match j {
        CodeNotPresent => Justification::VulnerableCodeNotPresent,
        CodeNotReachable => Justification::VulnerableCodeNotInExecutePath,
        RequiresConfiguration | RequiresDependency | RequiresEnvironment => {
            Justification::VulnerableCodeCannotBeControlledByAdversary
        }
        ProtectedByCompiler
        | ProtectedAtRuntime
        | ProtectedAtPerimeter
        | ProtectedByMitigatingControl => Justification::InlineMitigationsAlreadyExist,
    }
}

fn words(debug: impl std::fmt::Debug) -> String {
    // `CodeNotReachable` -> `code_not_reachable`, the spelling of the document.
    let s = format!("{debug:?}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn collect<'a>(c: &'a BomComponent, refs: &mut HashMap<&'a str, &'a BomComponent>) {
    if let Some(r) = &c.bom_ref {
        refs.insert(r, c);
    }
    for n in &c.components {
        collect(n, refs);
    }
}

/// The bom-ref a BOM-Link (`urn:cdx:SERIAL/VERSION#BOM-REF`) points at, if `reference` is one.
fn bom_link_ref(reference: &str) -> Option<&str> {
    let (_, fragment) = reference.strip_prefix("urn:cdx:")?.split_once('#')?;
    (!fragment.is_empty()).then_some(fragment)
}

pub(super) fn parse(document: &str, bytes: &[u8], limits: &Limits) -> Result<Document> {
    let bom: Bom = crate::json::parse(document, bytes, limits)?;
    let (BomFormat::CycloneDX, SpecVersion::V14 | SpecVersion::V15 | SpecVersion::V16) =
        (&bom.bom_format, &bom.spec_version);
    let mut refs = HashMap::new();
    if let Some(c) = bom.metadata.as_ref().and_then(|m| m.component.as_ref()) {
        collect(c, &mut refs);
    }
    for c in &bom.components {
        collect(c, &mut refs);
    }
    let meta = bom.metadata.as_ref();
    let author = meta
        .and_then(|m| {
            m.authors
                .iter()
                .find_map(|a| a.name.clone())
                .or_else(|| m.manufacturer.as_ref().and_then(|n| n.name.clone()))
                .or_else(|| m.supplier.as_ref().and_then(|n| n.name.clone()))
        })
        .unwrap_or_else(|| "(no author given)".into());
    let doc_time = meta.and_then(|m| m.timestamp);
    let id = match (&bom.serial_number, bom.version) {
        (Some(s), Some(v)) => format!("{s}/{v}"),
        (Some(s), None) => s.clone(),
        _ => document.to_owned(),
    };
    let mut statements = Vec::new();
    let mut skipped = Vec::new();
    for (i, v) in bom.vulnerabilities.iter().enumerate() {
        let at = format!("vulnerabilities[{i}]");
        let analysis = v.analysis.as_ref();
        let state = analysis.and_then(|a| a.state).map(|s| match s {
            AnalysisState::NotAffected | AnalysisState::FalsePositive => State::NotAffected,
            AnalysisState::Exploitable => State::Affected,
            AnalysisState::Resolved | AnalysisState::ResolvedWithPedigree => State::Fixed,
            AnalysisState::InTriage => State::UnderInvestigation,
        });
        let cdx_just = analysis.and_then(|a| a.justification);
        let mut detail = analysis.and_then(|a| a.detail.clone());
        if let Some(j) = cdx_just {
            let word = words(j);
            detail = Some(match detail {
                Some(d) => format!("{word}: {d}"),
                None => word,
            });
        }
        if matches!(
            analysis.and_then(|a| a.state),
            Some(AnalysisState::FalsePositive)
        ) {
            detail = Some(format!(
                "false_positive{}",
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            ));
        }
        let responses: Vec<String> = analysis
            .map(|a| a.response.iter().map(|r| words(*r)).collect())
            .unwrap_or_default();
        let action = (!responses.is_empty()).then(|| responses.join(", "));
        let timestamp = analysis
            .and_then(|a| a.last_updated.or(a.first_issued))
            .or(v.updated)
            .or(v.published)
            .or(doc_time);
        let aliases: Vec<String> = v
            .references
            .iter()
            .map(|r| r.id.clone())
            .filter(|r| r != &v.id)
            .collect();
        if v.affects.is_empty() {
            skipped.push(Skipped {
                at: at.clone(),
                reason: "no affects: the statement names no product".into(),
            });
        }
        for (j, a) in v.affects.iter().enumerate() {
            let at = format!("{at}.affects[{j}]");
            // A BOM-Link (`urn:cdx:SERIAL/VERSION#BOM-REF`) names a component of another BOM,
            // the SBOM the VEX was written for: its bom-ref is used, which SBOM tools often
            // make the component's purl.
            let reference = bom_link_ref(&a.reference).unwrap_or(&a.reference);
            let (purl, hashes, own_version) = match refs.get(reference) {
                Some(c) => (
                    c.purl.clone(),
                    c.hashes
                        .iter()
                        .filter_map(|h| Hash::new(&h.alg, &h.content))
                        .collect::<Vec<_>>(),
                    c.version.clone(),
                ),
                None if reference.starts_with("pkg:") => {
                    (Some(reference.to_owned()), Vec::new(), None)
                }
                None => {
                    skipped.push(Skipped {
                        at: format!("{at}.ref"),
                        reason: format!(
                            "{:?} is neither a bom-ref of this document nor a purl",
                            a.reference
                        ),
                    });
                    continue;
                }
            };
            let mut base = match purl.as_deref().map(Scope::from_purl) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    return Err(VulnError::refused(
                        document,
                        format!("{at}.ref"),
                        e,
                        "a component with a valid purl",
                    ));
                }
                None if !hashes.is_empty() => Scope {
                    package: None,
                    versions: Versions::Any,
                    hashes: Vec::new(),
                },
                None => {
                    skipped.push(Skipped {
                        at: format!("{at}.ref"),
                        reason: "the component has neither a purl nor hashes".into(),
                    });
                    continue;
                }
            };
            // A component is one build at one version, unless the affects entry lists versions.
            if a.versions.is_empty() {
                base.hashes = hashes;
                if let (Versions::Any, Some(v)) = (&base.versions, own_version) {
                    base.versions = Versions::Exact(v);
                }
            }
            let entries: Vec<(Versions, Option<AffectedStatus>)> = if a.versions.is_empty() {
                vec![(base.versions.clone(), None)]
            } else {
                let mut list = Vec::new();
                for (k, ver) in a.versions.iter().enumerate() {
                    let vat = format!("{at}.versions[{k}]");
                    let versions = match (&ver.version, &ver.range) {
                        (Some(v), None) => Versions::Exact(v.clone()),
                        (None, Some(r)) => match Versions::from_vers(r) {
                            Ok(v) => v,
                            // A range fieldkit cannot order covers nothing here: the advisory
                            // decides for those versions, and the import says so.
                            Err(e) => {
                                skipped.push(Skipped {
                                    at: format!("{vat}.range"),
                                    reason: format!(
                                        "fieldkit cannot evaluate the version range: {e}"
                                    ),
                                });
                                continue;
                            }
                        },
                        _ => {
                            return Err(VulnError::refused(
                                document,
                                vat,
                                "both or neither of version and range",
                                "exactly one of version or range",
                            ));
                        }
                    };
                    list.push((versions, ver.status));
                }
                list
            };
            for (versions, status) in entries {
                let state = match (state, status) {
                    (Some(s), _) => s,
                    (None, Some(AffectedStatus::Affected)) => State::Affected,
                    (None, Some(AffectedStatus::Unaffected)) => State::NotAffected,
                    (None, Some(AffectedStatus::Unknown)) => State::UnderInvestigation,
                    (None, None) => {
                        skipped.push(Skipped {
                            at: at.clone(),
                            reason: "neither analysis.state nor a version status".into(),
                        });
                        continue;
                    }
                };
                let unaffected_version = state == State::NotAffected
                    && matches!(status, Some(AffectedStatus::Unaffected))
                    && cdx_just.is_none();
                let s = Statement {
                    vulnerability: v.id.clone(),
                    aliases: aliases.clone(),
                    product: Scope {
                        versions,
                        ..base.clone()
                    },
                    subcomponents: Vec::new(),
                    state,
                    justification: cdx_just.map(justification).or(
                        // CycloneDX marks fixed-in or never-affected versions `unaffected`; the
                        // version list is the justification (the vulnerable code is not there).
                        unaffected_version.then_some(Justification::VulnerableCodeNotPresent),
                    ),
                    detail: detail.clone(),
                    action: action.clone(),
                    timestamp,
                    author: author.clone(),
                    format: Format::CycloneDx,
                    document: id.clone(),
                };
                s.check(document, &format!("{at}.analysis"))?;
                statements.push(s);
            }
        }
    }
    Ok(Document {
        format: Format::CycloneDx,
        id,
        author,
        timestamp: doc_time,
        statements,
        skipped,
    })
}
