//! Imports: releases, advisories, VEX, entitlements and recall lists, each file imported or
//! refused on its own with the rule it broke, and the analysis recomputed once afterwards.
//!
//! Every input is hostile until verified: files are read with a size bound before anything is
//! parsed; packages are verified by `fieldkit-trust` against the hub's root from the same bytes
//! the SBOM is then taken from; advisories and VEX documents go through `fieldkit-vuln`'s
//! bounded readers (documents, archive members, decompressed totals, nesting). What a refusal
//! quotes from a file is cut short, and every answer that shows it later renders it as text.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::Path;

use chrono::{DateTime, Utc};
use fieldkit_audit::Identity;
use fieldkit_trust::{Entitlement, RecallList, TrustRoot};
use fieldkit_vuln::{Advisory, Limits};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::analysis::{self, Summary};
use super::store::{
    AddRelease, AdvisoryRow, ComponentRow, EntitlementRow, PayloadRow, PostmarketStore, ReleaseRow,
    VexRow,
};
use super::trust::{self, PostmarketError};
use super::vexrecord;
use crate::store::StoreError;

/// The largest file an import reads (a package with its payloads, an `all.zip`).
pub const MAX_FILE: u64 = 512 << 20;

/// How one file fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileResult {
    /// The file as named.
    pub file: String,
    /// `imported`, `unchanged` or `refused`.
    pub result: &'static str,
    /// What it was, or why it was refused (the rule, the value found, the value required).
    pub detail: String,
    /// For archives and VEX documents: members or statements that could not be used, each
    /// with its reason. They do not make the file's result `refused`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl FileResult {
    fn refused(file: &str, e: impl std::fmt::Display) -> Self {
        FileResult {
            file: file.to_owned(),
            result: "refused",
            detail: cut(&e.to_string(), 600),
            skipped: Vec::new(),
        }
    }

    fn ok(file: &str, result: &'static str, detail: String) -> Self {
        FileResult {
            file: file.to_owned(),
            result,
            detail,
            skipped: Vec::new(),
        }
    }
}

/// An import's answer: one result per file, and the analysis after it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per file, in the order given.
    pub files: Vec<FileResult>,
    /// The recomputed analysis (absent when nothing changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Summary>,
}

impl Report {
    /// Whether any file was refused.
    pub fn any_refused(&self) -> bool {
        self.files.iter().any(|f| f.result == "refused")
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Reads a file, refusing one larger than `max` before reading more than `max + 1` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, PostmarketError> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| {
        PostmarketError::refused(&name, "file.read", e.to_string(), "a readable file")
    })?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).map_err(|e| {
        PostmarketError::refused(&name, "file.read", e.to_string(), "a readable file")
    })?;
    if bytes.len() as u64 > max {
        return Err(PostmarketError::refused(
            &name,
            "file.size",
            format!("more than {max} bytes"),
            format!("at most {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Who and when an import runs for.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The hub's identity (signs VEX records; its key verifies them).
    pub hub: &'a Identity,
    /// Who is importing (an operator's name, or a signed-in manager).
    pub by: &'a str,
    /// Now.
    pub now: DateTime<Utc>,
}

async fn recompute(
    store: &dyn PostmarketStore,
    cx: Context<'_>,
) -> Result<Summary, PostmarketError> {
    analysis::recompute(store, &cx.hub.public_key(), &cx.hub.key_id()).await
}

// --- releases ------------------------------------------------------------------------------

/// Imports releases: `.fkpkg` packages verified against the hub's root, or CycloneDX SBOMs
/// whose SHA-256 a laptop recorded for a package it installed.
pub async fn releases(
    store: &dyn PostmarketStore,
    cx: Context<'_>,
    files: &[&Path],
) -> Result<Report, PostmarketError> {
    let root = trust::root(store).await?;
    let mut out = Vec::new();
    let mut changed = false;
    for path in files {
        let name = path.display().to_string();
        let r = match read_bounded(path, MAX_FILE) {
            Ok(bytes) => release(store, cx, &root, &name, &bytes).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(res) => {
                changed |= res.result == "imported";
                out.push(res);
            }
            Err(PostmarketError::Store(e)) => return Err(PostmarketError::Store(e)),
            Err(e) => out.push(FileResult::refused(&name, e)),
        }
    }
    let analysis = if changed {
        Some(recompute(store, cx).await?)
    } else {
        None
    };
    Ok(Report {
        files: out,
        analysis,
    })
}

/// Whether bytes start like a fieldkit package (a tar whose first member is the marker).
fn is_package(bytes: &[u8]) -> bool {
    bytes.len() >= 512 && bytes[..512].starts_with(fieldkit_trust::package::MARKER_NAME.as_bytes())
}

async fn release(
    store: &dyn PostmarketStore,
    cx: Context<'_>,
    root: &TrustRoot,
    name: &str,
    bytes: &[u8],
) -> Result<FileResult, PostmarketError> {
    let (row, sbom) = if is_package(bytes) {
        from_package(root, name, bytes, cx.now)?
    } else {
        from_sbom(store, name, bytes, cx.now).await?
    };
    let components = components_of(&row.id, &sbom).map_err(|e| PostmarketError::Trust {
        what: name.to_owned(),
        source: e,
    })?;
    match store.add_release(&row, &sbom, &components).await? {
        AddRelease::Added => Ok(FileResult::ok(
            name,
            "imported",
            format!(
                "release {} ({} component{} in its SBOM, {})",
                row.id,
                components.len(),
                if components.len() == 1 { "" } else { "s" },
                if row.source == "package" {
                    format!("package signed by {}", row.vouched_by)
                } else {
                    format!("SBOM vouched for by field record {}", row.vouched_by)
                }
            ),
        )),
        AddRelease::Held {
            manifest_sha256,
            sbom_sha256,
            source,
        } => {
            let same_sbom = sbom_sha256 == row.sbom_sha256;
            let same_manifest = row.manifest_sha256.is_empty()
                || manifest_sha256.is_empty()
                || manifest_sha256 == row.manifest_sha256;
            if same_sbom && same_manifest {
                Ok(FileResult::ok(
                    name,
                    "unchanged",
                    format!("release {} is already held (from its {source})", row.id),
                ))
            } else {
                Err(PostmarketError::refused(
                    name,
                    "release.conflict",
                    format!(
                        "release {} with manifest sha256 {} and SBOM sha256 {}",
                        row.id, row.manifest_sha256, row.sbom_sha256
                    ),
                    format!(
                        "the release the hub holds under that id: manifest sha256 {manifest_sha256}, SBOM sha256 {sbom_sha256} (two different releases cannot share an id)"
                    ),
                ))
            }
        }
    }
}

/// Verifies a package against the root and takes its manifest and SBOM from the same bytes.
fn from_package(
    root: &TrustRoot,
    name: &str,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(ReleaseRow, Vec<u8>), PostmarketError> {
    let trust = |source| PostmarketError::Trust {
        what: name.to_owned(),
        source,
    };
    // A release already in the field is evidence however old its metadata is: signatures,
    // structure, digests, SBOM and images are verified, the time rules (metadata expiry) are
    // not; whether it may still be installed is decided later, at "now", by the expiry rule.
    let v = fieldkit_trust::package::verify_package_signed(
        Cursor::new(bytes),
        root,
        &Default::default(),
        &mut |_, _| Ok(()),
    )
    .map_err(trust)?;
    let sbom = sbom_member(bytes).map_err(|e| {
        PostmarketError::refused(name, "package.structure", e, "a readable package")
    })?;
    let sbom_sha = hex::encode(Sha256::digest(&sbom));
    if sbom_sha != v.manifest.sbom.sha256 {
        return Err(PostmarketError::refused(
            name,
            "package.digest",
            format!("SBOM sha256 {sbom_sha}"),
            format!("{} as the manifest signs", v.manifest.sbom.sha256),
        ));
    }
    let m = &v.manifest;
    let row = ReleaseRow {
        id: m.id(),
        product: m.product.clone(),
        version: m.version.to_string(),
        class: serde_json::to_value(m.class)
            .ok()
            .and_then(|c| c.as_str().map(str::to_owned))
            .unwrap_or_default(),
        release_date: m.release_date.to_string(),
        manifest_sha256: v.manifest_sha256.clone(),
        sbom_sha256: sbom_sha,
        manifest: serde_json::to_string(m).unwrap_or_default(),
        vouched_by: v
            .signed_by
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(","),
        source: "package".into(),
        imported_us: now.timestamp_micros(),
        payloads: m
            .payloads
            .iter()
            .zip(&v.payloads)
            .map(|(p, vp)| PayloadRow {
                component: p.component.clone(),
                version: super::observe::version_key(&p.version.to_string()),
                image_hash: vp.image_hash.clone().unwrap_or_default(),
            })
            .collect(),
    };
    Ok((row, sbom))
}

/// The exact bytes of the SBOM member of a package already verified (the caller compares
/// their digest with the signed manifest's).
fn sbom_member(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = tar::Archive::new(Cursor::new(bytes));
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if entry.path_bytes().as_ref() != fieldkit_trust::package::SBOM_NAME.as_bytes() {
            continue;
        }
        let mut v = Vec::new();
        entry
            .by_ref()
            .take(fieldkit_trust::Limits::default().sbom)
            .read_to_end(&mut v)
            .map_err(|e| e.to_string())?;
        return Ok(v);
    }
    Err("no SBOM member".into())
}

/// An SBOM on its own is accepted when a field record vouches for it: a laptop recorded its
/// SHA-256 as the SBOM of a package it installed (after verifying that package against its
/// trust root). The release is then known by what that record says: its id, and the version
/// and image hash of each component it installed.
async fn from_sbom(
    store: &dyn PostmarketStore,
    name: &str,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(ReleaseRow, Vec<u8>), PostmarketError> {
    fieldkit_trust::validate_sbom(bytes).map_err(|source| PostmarketError::Trust {
        what: name.to_owned(),
        source,
    })?;
    let sha = hex::encode(Sha256::digest(bytes));
    let seen = store.history_with_sbom(&sha).await?;
    let Some(first) = seen.iter().find(|r| !r.package.is_empty()) else {
        return Err(PostmarketError::refused(
            name,
            "release.unvouched",
            format!("an SBOM with sha256 {sha} that no verified release or field record names"),
            "a fieldkit package verified against the hub's trust root, or the SBOM of a package a laptop recorded installing (sync that laptop first)",
        ));
    };
    let (product, version) = first
        .package
        .split_once('@')
        .map(|(p, v)| (p.to_owned(), v.to_owned()))
        .unwrap_or_else(|| (first.product.clone(), String::new()));
    let mut payloads: BTreeMap<String, PayloadRow> = BTreeMap::new();
    for r in seen.iter().filter(|r| r.package == first.package) {
        payloads.entry(r.component.clone()).or_insert(PayloadRow {
            component: r.component.clone(),
            version: r.version.clone(),
            image_hash: r.image_hash.clone(),
        });
    }
    let row = ReleaseRow {
        id: first.package.clone(),
        product,
        version,
        class: String::new(),
        release_date: String::new(),
        manifest_sha256: first.manifest_sha256.clone(),
        sbom_sha256: sha,
        manifest: String::new(),
        vouched_by: format!("{}#{}", first.origin, first.seq),
        source: "sbom".into(),
        imported_us: now.timestamp_micros(),
        payloads: payloads.into_values().collect(),
    };
    Ok((row, bytes.to_vec()))
}

/// The SBOM's components as rows: index 0 is the SBOM's own `metadata.component` (the
/// release's firmware) when it has one, the rest from 1 in document order.
pub fn components_of(
    release: &str,
    sbom: &[u8],
) -> Result<Vec<ComponentRow>, fieldkit_trust::TrustError> {
    let summary = fieldkit_trust::validate_sbom(sbom)?;
    let has_meta = serde_json::from_slice::<serde_json::Value>(sbom)
        .ok()
        .is_some_and(|v| v.pointer("/metadata/component").is_some());
    let first = if has_meta { 0 } else { 1 };
    Ok(summary
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| ComponentRow {
            release_id: release.to_owned(),
            idx: (i + first) as u32,
            kind: c.kind.clone(),
            name: c.name.clone(),
            version: c.version.clone(),
            purl: c.purl.clone(),
            package_key: fieldkit_vuln::PackageKey::from_purl(&c.purl)
                .map(|(k, _)| k.as_str().to_owned())
                .unwrap_or_default(),
            hashes: serde_json::to_string(&c.hashes).unwrap_or_default(),
            licences: serde_json::to_string(&c.licenses).unwrap_or_default(),
        })
        .collect())
}

// --- advisories ----------------------------------------------------------------------------

/// Imports OSV advisories: JSON documents, or an ecosystem's `all.zip` (each member imported
/// or reported on its own; an archive that is not sound is refused whole). Of two versions of
/// one advisory the later `modified` is kept.
pub async fn advisories(
    store: &dyn PostmarketStore,
    cx: Context<'_>,
    files: &[&Path],
) -> Result<Report, PostmarketError> {
    let limits = Limits::default();
    let mut out = Vec::new();
    let mut batch: BTreeMap<String, (Advisory, String)> = BTreeMap::new();
    let mut per_file: Vec<(usize, Vec<String>)> = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let bytes = match read_bounded(path, MAX_FILE) {
            Ok(b) => b,
            Err(e) => {
                out.push(FileResult::refused(&name, e));
                continue;
            }
        };
        let mut read = Vec::new();
        let mut skipped = Vec::new();
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            let res =
                fieldkit_vuln::read_archive(&name, Cursor::new(&bytes), &limits, |r| match r {
                    Ok(a) => read.push(a),
                    Err(e) => skipped.push(cut(&e.to_string(), 300)),
                });
            if let Err(e) = res {
                out.push(FileResult::refused(&name, e));
                continue;
            }
        } else {
            match fieldkit_vuln::parse_advisory(&name, &bytes, &limits) {
                Ok(a) => read.push(a),
                Err(e) => {
                    out.push(FileResult::refused(&name, e));
                    continue;
                }
            }
        }
        let ids: Vec<String> = read.iter().map(|a| a.id.clone()).collect();
        for a in read {
            let newer = batch
                .get(&a.id)
                .is_none_or(|(held, _)| a.modified > held.modified);
            if newer {
                batch.insert(a.id.clone(), (a, name.clone()));
            }
        }
        out.push(FileResult {
            file: name,
            result: "imported",
            detail: String::new(),
            skipped,
        });
        per_file.push((out.len() - 1, ids));
    }
    // Which of the batch are new or newer than what is held: decided here, not in SQL.
    let ids: Vec<String> = batch.keys().cloned().collect();
    let mut held: BTreeMap<String, i64> = BTreeMap::new();
    for chunk in ids.chunks(5000) {
        held.extend(store.advisory_modified(chunk).await?);
    }
    let mut rows = Vec::new();
    let mut fresh = std::collections::BTreeSet::new();
    for (id, (a, source)) in &batch {
        let m = a.modified.timestamp_micros();
        if held.get(id).is_some_and(|h| *h >= m) {
            continue;
        }
        fresh.insert(id.clone());
        rows.push(AdvisoryRow {
            id: id.clone(),
            modified_us: m,
            withdrawn: a.withdrawn.is_some(),
            body: serde_json::to_string(a)
                .map_err(|e| StoreError::Db(format!("serialising advisory {id}: {e}")))?,
            source: source.clone(),
        });
    }
    for chunk in rows.chunks(2000) {
        store.put_advisories(chunk).await?;
    }
    for (i, ids) in per_file {
        let new = ids.iter().filter(|id| fresh.contains(*id)).count();
        let f = &mut out[i];
        if new == 0 && !ids.is_empty() {
            f.result = "unchanged";
        }
        f.detail = format!(
            "{} advisor{} read, {new} new or updated{}",
            ids.len(),
            if ids.len() == 1 { "y" } else { "ies" },
            if f.skipped.is_empty() {
                String::new()
            } else {
                format!(", {} member(s) refused", f.skipped.len())
            }
        );
    }
    let analysis = if rows.is_empty() {
        None
    } else {
        Some(recompute(store, cx).await?)
    };
    Ok(Report {
        files: out,
        analysis,
    })
}

// --- VEX -----------------------------------------------------------------------------------

/// Imports VEX documents (CycloneDX, OpenVEX, CSAF 2.0), each recorded with who imported it
/// and signed by the hub.
pub async fn vex(
    store: &dyn PostmarketStore,
    cx: Context<'_>,
    files: &[&Path],
) -> Result<Report, PostmarketError> {
    let limits = Limits::default();
    let mut out = Vec::new();
    let mut changed = false;
    for path in files {
        let name = path.display().to_string();
        let bytes = match read_bounded(path, limits.document) {
            Ok(b) => b,
            Err(e) => {
                out.push(FileResult::refused(&name, e));
                continue;
            }
        };
        let doc = match fieldkit_vuln::vex::parse(&name, &bytes, &limits) {
            Ok(d) => d,
            Err(e) => {
                out.push(FileResult::refused(&name, e));
                continue;
            }
        };
        let mut row = VexRow {
            id: 0,
            origin: "import".into(),
            format: serde_json::to_value(doc.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            document_id: cut(&doc.id, 300),
            author: cut(&doc.author, 300),
            recorded_by: cut(cx.by, 120),
            recorded_us: cx.now.timestamp_micros(),
            body: bytes,
            signer: String::new(),
            signature: String::new(),
        };
        vexrecord::sign(cx.hub, &mut row);
        let id = store.add_vex(&row).await?;
        changed = true;
        out.push(FileResult {
            file: name,
            result: "imported",
            detail: format!(
                "{} document {:?} by {:?}: {} statement{}, recorded as VEX record {id} signed by the hub",
                doc.format,
                cut(&doc.id, 120),
                cut(&doc.author, 120),
                doc.statements.len(),
                if doc.statements.len() == 1 { "" } else { "s" }
            ),
            skipped: doc
                .skipped
                .iter()
                .map(|s| cut(&format!("{}: {}", s.at, s.reason), 300))
                .collect(),
        });
    }
    let analysis = if changed {
        Some(recompute(store, cx).await?)
    } else {
        None
    };
    Ok(Report {
        files: out,
        analysis,
    })
}

/// Records a manager's VEX decision as a signed OpenVEX document by that manager.
pub async fn decide(
    store: &dyn PostmarketStore,
    cx: Context<'_>,
    decision: &vexrecord::Decision,
) -> Result<(i64, Summary), PostmarketError> {
    let recorded_us = cx.now.timestamp_micros();
    let doc_id = format!(
        "https://fieldkit.invalid/hub/{}/vex/decision-{recorded_us}",
        cx.hub.key_id()
    );
    let author = cut(cx.by, 120);
    let body = decision.to_openvex(&doc_id, &author, cx.now)?;
    let mut row = VexRow {
        id: 0,
        origin: "decision".into(),
        format: "openvex".into(),
        document_id: doc_id,
        author: author.clone(),
        recorded_by: author,
        recorded_us,
        body,
        signer: String::new(),
        signature: String::new(),
    };
    vexrecord::sign(cx.hub, &mut row);
    let id = store.add_vex(&row).await?;
    Ok((id, recompute(store, cx).await?))
}

// --- entitlements and recall lists -----------------------------------------------------------

/// Imports entitlements verified against the hub's root, and recomputes which customer each
/// serial belongs to.
pub async fn entitlements(
    store: &dyn PostmarketStore,
    files: &[&Path],
) -> Result<Report, PostmarketError> {
    let root = trust::root(store).await?;
    let mut out = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let r = read_bounded(path, 1 << 20).and_then(|bytes| {
            let e = Entitlement::open(&bytes, &root).map_err(|source| PostmarketError::Trust {
                what: name.clone(),
                source,
            })?;
            Ok((bytes, e))
        });
        let (bytes, e) = match r {
            Ok(x) => x,
            Err(err) => {
                out.push(FileResult::refused(&name, err));
                continue;
            }
        };
        let row = EntitlementRow {
            id: e.id.clone(),
            generation: e.generation,
            customer: e.customer.clone(),
            body: bytes,
            opened: serde_json::to_string(&e).unwrap_or_default(),
        };
        let new = store.put_entitlement(&row).await?;
        out.push(FileResult::ok(
            &name,
            if new { "imported" } else { "unchanged" },
            format!(
                "entitlement {} generation {} for {:?}, {} to {}",
                cut(&e.id, 120),
                e.generation,
                cut(&e.customer, 120),
                e.valid_from,
                e.valid_until
            ),
        ));
    }
    let all = trust::newest_generations(&store.entitlements().await?)?;
    store.replace_grants(&trust::grants(&all)).await?;
    Ok(Report {
        files: out,
        analysis: None,
    })
}

/// Imports recall lists verified against the hub's root; a list older than one held is
/// refused (a replay could hide a recall).
pub async fn recalls(
    store: &dyn PostmarketStore,
    files: &[&Path],
) -> Result<Report, PostmarketError> {
    let root = trust::root(store).await?;
    let mut out = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let highest = store.latest_recall().await?.map(|(v, _)| v);
        let r = read_bounded(path, 4 << 20).and_then(|bytes| {
            let l = RecallList::open(&bytes, &root, highest).map_err(|source| {
                PostmarketError::Trust {
                    what: name.clone(),
                    source,
                }
            })?;
            Ok((bytes, l))
        });
        match r {
            Ok((bytes, l)) => {
                let new = store.put_recall(l.version, &bytes).await?;
                out.push(FileResult::ok(
                    &name,
                    if new { "imported" } else { "unchanged" },
                    format!(
                        "recall list version {}: {} release(s) recalled, {} entitlement(s) revoked",
                        l.version,
                        l.packages.len(),
                        l.entitlements.len()
                    ),
                ));
            }
            Err(e) => out.push(FileResult::refused(&name, e)),
        }
    }
    Ok(Report {
        files: out,
        analysis: None,
    })
}
