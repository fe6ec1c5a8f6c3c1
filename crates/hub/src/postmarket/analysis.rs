//! Releases × advisories × VEX: which release components each vulnerability affects, and what
//! the manufacturer says about it, decided by `fieldkit-vuln` and stored as plain rows.
//!
//! The analysis is recomputed whole after every import (advisories, releases, VEX), inside one
//! replacing transaction, so queries read decided rows and never match versions in SQL. It is
//! cheap because it runs over releases, not devices: a fleet of 100 000 devices may run a few
//! hundred releases of 200 components each, matched through the catalog's index by package and
//! by hash.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::VerifyingKey;
use fieldkit_vuln::osv::Level;
use fieldkit_vuln::vex::{self, Statement};
use fieldkit_vuln::{Advisory, Catalog, Component, Limits, Verdict};
use serde::Serialize;

use super::store::{Analysis, ComponentRow, MatchRow, PostmarketStore, VulnRow};
use super::trust::PostmarketError;
use super::vexrecord;
use crate::store::StoreError;

/// What a recomputation found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Advisories held.
    pub advisories: usize,
    /// Vulnerabilities they merge into.
    pub vulnerabilities: usize,
    /// Releases held.
    pub releases: usize,
    /// Release components affected (or possibly affected), per vulnerability.
    pub matches: usize,
    /// Of those, the ones no VEX statement clears.
    pub exposed: usize,
    /// VEX statements in force.
    pub vex_statements: usize,
    /// VEX records left out because the hub's signature over them does not verify.
    pub vex_unverified: Vec<i64>,
}

/// An SBOM component as the matcher sees it.
pub fn component(row: &ComponentRow) -> Component {
    #[derive(serde::Deserialize)]
    struct H {
        alg: String,
        content: String,
    }
    let hashes: Vec<H> = serde_json::from_str(&row.hashes).unwrap_or_default();
    let pairs: Vec<(String, String)> = hashes.into_iter().map(|h| (h.alg, h.content)).collect();
    Component::new(&row.purl, &row.version, &pairs)
}

/// The severity level as a word.
pub fn level_word(l: Level) -> &'static str {
    l.as_str()
}

/// VEX statements in force, indexed by every vulnerability id they name.
#[derive(Debug, Default)]
pub struct Statements {
    all: Vec<Statement>,
    by_id: HashMap<String, Vec<usize>>,
}

impl Statements {
    /// Indexes statements.
    pub fn new(all: Vec<Statement>) -> Self {
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in all.iter().enumerate() {
            for id in std::iter::once(&s.vulnerability).chain(&s.aliases) {
                let list = by_id.entry(id.clone()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        Statements { all, by_id }
    }

    /// The statement that decides for a vulnerability with `ids`, `component` in the release
    /// whose own component is `product` (see [`vex::decide`]).
    pub fn decide(
        &self,
        ids: &[String],
        product: &Component,
        component: &Component,
    ) -> Option<&Statement> {
        let mut idx: Vec<usize> = ids
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .flatten()
            .copied()
            .collect();
        idx.sort_unstable();
        idx.dedup();
        vex::decide(idx.iter().map(|&i| &self.all[i]), ids, product, component)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// The VEX statements of every record whose hub signature verifies; the ids of those that do
/// not.
pub async fn statements(
    store: &dyn PostmarketStore,
    hub_key: &VerifyingKey,
    key_id: &str,
) -> Result<(Statements, Vec<i64>), PostmarketError> {
    let mut out = Vec::new();
    let mut unverified = Vec::new();
    for r in store.vex_records().await? {
        if !vexrecord::verify(hub_key, key_id, &r) {
            tracing::warn!(
                record = r.id,
                "VEX record does not verify under the hub key"
            );
            unverified.push(r.id);
            continue;
        }
        // Documents were refused at import if they did not parse; one that no longer does was
        // changed after it was signed, which the signature would have shown.
        match vex::parse(&r.document_id, &r.body, &Limits::default()) {
            Ok(doc) => out.extend(doc.statements),
            Err(e) => {
                tracing::warn!(record = r.id, "VEX record no longer reads: {e}");
                unverified.push(r.id);
            }
        }
    }
    Ok((Statements::new(out), unverified))
}

/// The catalog of every advisory held.
pub async fn catalog(store: &dyn PostmarketStore) -> Result<Catalog, PostmarketError> {
    let mut catalog = Catalog::new();
    for body in store.advisories().await? {
        let a: Advisory = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("stored advisory: {e}")))?;
        catalog.insert(a);
    }
    Ok(catalog)
}

/// Recomputes the analysis from everything held and replaces it.
pub async fn recompute(
    store: &dyn PostmarketStore,
    hub_key: &VerifyingKey,
    key_id: &str,
) -> Result<Summary, PostmarketError> {
    let catalog = catalog(store).await?;
    let (statements, unverified) = statements(store, hub_key, key_id).await?;
    let releases = store.releases().await?;
    let components = store.release_components(None, None).await?;
    let analysis = analyse(&catalog, &statements, &components);
    let summary = Summary {
        advisories: catalog.len(),
        vulnerabilities: analysis.vulnerabilities.len(),
        releases: releases.len(),
        matches: analysis.matches.len(),
        exposed: analysis.matches.iter().filter(|m| m.exposed).count(),
        vex_statements: statements.len(),
        vex_unverified: unverified,
    };
    store.replace_analysis(&analysis).await?;
    Ok(summary)
}

/// The analysis of release components (in release, index order) against a catalog and VEX
/// statements. Index 0 of a release is its own firmware component (the SBOM's
/// `metadata.component`), which VEX statements about "the product" are matched against.
pub fn analyse(
    catalog: &Catalog,
    statements: &Statements,
    components: &[ComponentRow],
) -> Analysis {
    let mut matches = Vec::new();
    let mut by_release: BTreeMap<&str, Vec<&ComponentRow>> = BTreeMap::new();
    for c in components {
        by_release.entry(&c.release_id).or_default().push(c);
    }
    for (release, rows) in by_release {
        let product = rows
            .iter()
            .find(|r| r.idx == 0)
            .map(|r| component(r))
            .unwrap_or_else(|| Component::new("", "", &[]));
        for row in rows {
            let c = component(row);
            for m in catalog.check(&c) {
                let decided = statements.decide(&m.ids, &product, &c);
                let (verdict, via, because, fixed) = match &m.verdict {
                    Verdict::Affected {
                        via,
                        because,
                        fixed,
                    } => (
                        "affected",
                        match via {
                            fieldkit_vuln::MatchedBy::Purl => "purl",
                            fieldkit_vuln::MatchedBy::Hash => "hash",
                        },
                        because.clone(),
                        fixed.clone(),
                    ),
                    Verdict::Undetermined { because } => {
                        ("undetermined", "", because.clone(), Vec::new())
                    }
                };
                matches.push(MatchRow {
                    vulnerability: m.vulnerability.clone(),
                    release_id: release.to_owned(),
                    component_idx: row.idx,
                    component: format!("{} {}", row.name, row.version),
                    purl: row.purl.clone(),
                    advisory: m.advisory.clone(),
                    verdict: verdict.into(),
                    via: via.into(),
                    because,
                    fixed: serde_json::to_string(&fixed).unwrap_or_default(),
                    vex_state: decided
                        .map(|s| s.state.as_str().to_owned())
                        .unwrap_or_default(),
                    vex: decided
                        .map(|s| serde_json::to_string(s).unwrap_or_default())
                        .unwrap_or_default(),
                    exposed: !decided.is_some_and(|s| vexrecord::clears(s.state)),
                });
            }
        }
    }
    let mut vulnerabilities = Vec::new();
    let mut ids = Vec::new();
    for (name, all) in catalog.vulnerabilities() {
        let advisories = catalog.advisories_of(&name);
        let live: Vec<&&Advisory> = advisories
            .iter()
            .filter(|a| a.withdrawn.is_none())
            .collect();
        let severity = catalog.severity(&name);
        let summary = live
            .iter()
            .chain(advisories.iter().collect::<Vec<_>>().iter())
            .find_map(|a| a.summary.clone())
            .unwrap_or_default();
        let published = advisories
            .iter()
            .filter_map(|a| a.published.or(Some(a.modified)))
            .min()
            .map_or(0, |t| t.timestamp_micros());
        for id in &all {
            ids.push((id.clone(), name.clone()));
        }
        vulnerabilities.push(VulnRow {
            ids: serde_json::to_string(&all).unwrap_or_default(),
            severity: level_word(severity.level).into(),
            score: severity.score,
            summary,
            published_us: published,
            withdrawn: live.is_empty(),
            name,
        });
    }
    Analysis {
        vulnerabilities,
        ids,
        matches,
    }
}
