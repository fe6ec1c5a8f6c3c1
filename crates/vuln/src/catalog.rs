//! The advisories known, merged into vulnerabilities by their aliases, indexed for matching.
//!
//! Two advisories are the same vulnerability when one names the other's id (or a shared id) as
//! an alias: `GHSA-xxxx` with alias `CVE-2024-1`, and a manufacturer's `ACME-2024-7` with
//! alias `CVE-2024-1`, are one vulnerability with three ids. Merging is transitive (a union of
//! every id with its aliases). The vulnerability is named by its CVE id if it has one (the id
//! regulators and customers quote), else by its smallest id, so the name does not depend on the
//! order of import.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::component::{Component, Hash, PackageKey};
use crate::osv::{Advisory, Level, Severity, Verdict};

/// What [`Catalog::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inserted {
    /// A new advisory.
    New,
    /// A newer version of a known advisory replaced it.
    Updated,
    /// The catalog already had this version or a newer one; nothing changed.
    Unchanged,
}

/// A vulnerability that affects a component (or may: see [`Verdict::Undetermined`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The vulnerability's name: its CVE id if it has one, else its smallest id.
    pub vulnerability: String,
    /// Every id of the vulnerability (advisory ids and aliases), sorted.
    pub ids: Vec<String>,
    /// The advisory that matched.
    pub advisory: String,
    /// The most severe rating among the vulnerability's advisories.
    pub severity: Severity,
    /// The matching advisory's summary.
    pub summary: Option<String>,
    /// Why it matched.
    pub verdict: Verdict,
}

/// The advisories, merged and indexed; see the module documentation.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    advisories: Vec<Advisory>,
    by_id: HashMap<String, usize>,
    by_package: HashMap<PackageKey, Vec<usize>>,
    by_hash: HashMap<Hash, Vec<usize>>,
    parent: HashMap<String, String>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Number of advisories (withdrawn ones included).
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// Every advisory, in import order.
    pub fn advisories(&self) -> impl Iterator<Item = &Advisory> {
        self.advisories.iter()
    }

    /// Adds an advisory, or replaces the known one with the same id if this one is newer
    /// (`modified` later). A withdrawn version replaces the live one like any update.
    pub fn insert(&mut self, advisory: Advisory) -> Inserted {
        if let Some(&i) = self.by_id.get(&advisory.id) {
            if advisory.modified <= self.advisories[i].modified {
                return Inserted::Unchanged;
            }
            let aliases_changed = self.advisories[i].aliases != advisory.aliases;
            self.advisories[i] = advisory;
            self.reindex(aliases_changed);
            return Inserted::Updated;
        }
        let i = self.advisories.len();
        self.by_id.insert(advisory.id.clone(), i);
        self.index(i, &advisory);
        self.union_all(&advisory);
        self.advisories.push(advisory);
        Inserted::New
    }

    fn index(&mut self, i: usize, a: &Advisory) {
        for entry in &a.affected {
            if let Some(p) = &entry.package {
                let list = self.by_package.entry(p.clone()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
            for h in &entry.hashes {
                let list = self.by_hash.entry(h.clone()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
    }

    fn reindex(&mut self, groups_too: bool) {
        self.by_package.clear();
        self.by_hash.clear();
        let all = std::mem::take(&mut self.advisories);
        for (i, a) in all.iter().enumerate() {
            self.index(i, a);
        }
        if groups_too {
            self.parent.clear();
            for a in &all {
                self.union_all(a);
            }
        }
        self.advisories = all;
    }

    fn root(&self, id: &str) -> String {
        let mut cur = id;
        while let Some(p) = self.parent.get(cur) {
            if p == cur {
                break;
            }
            cur = p;
        }
        cur.to_owned()
    }

    fn union_all(&mut self, a: &Advisory) {
        let first = self.root(&a.id);
        self.parent
            .entry(first.clone())
            .or_insert_with(|| first.clone());
        for alias in &a.aliases {
            let r = self.root(alias);
            self.parent.entry(r.clone()).or_insert_with(|| r.clone());
            let top = self.root(&a.id);
            if r != top {
                // Keep the smaller root on top, so roots do not depend on import order.
                let (keep, other) = if r < top { (r, top) } else { (top, r) };
                self.parent.insert(other, keep);
            }
        }
        // Compress the paths of this advisory's ids.
        let top = self.root(&a.id);
        for id in a.ids() {
            self.parent.insert(id.to_owned(), top.clone());
        }
    }

    /// Every id merged with `id` (itself included), sorted; just `id` if it is unknown.
    pub fn ids_of(&self, id: &str) -> Vec<String> {
        let root = self.root(id);
        let mut out: BTreeSet<String> = self
            .parent
            .keys()
            .filter(|k| self.root(k) == root)
            .cloned()
            .collect();
        out.insert(id.to_owned());
        out.into_iter().collect()
    }

    /// The name of the vulnerability `id` belongs to (see the module documentation).
    pub fn name_of(&self, id: &str) -> String {
        let ids = self.ids_of(id);
        ids.iter()
            .find(|i| i.starts_with("CVE-"))
            .or_else(|| ids.first())
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    /// The advisories of the vulnerability `id` belongs to (live and withdrawn).
    pub fn advisories_of(&self, id: &str) -> Vec<&Advisory> {
        self.ids_of(id)
            .iter()
            .filter_map(|i| self.by_id.get(i))
            .map(|&i| &self.advisories[i])
            .collect()
    }

    /// The advisory with this id.
    pub fn get(&self, id: &str) -> Option<&Advisory> {
        self.by_id.get(id).map(|&i| &self.advisories[i])
    }

    fn severity_of(&self, id: &str) -> Severity {
        self.advisories_of(id)
            .into_iter()
            .filter(|a| a.withdrawn.is_none())
            .map(|a| a.severity.clone())
            .max_by(|a, b| a.level.cmp(&b.level))
            .unwrap_or(Severity {
                level: Level::Unknown,
                score: None,
                vector: None,
            })
    }

    /// The vulnerabilities that affect `component` (or may), one per vulnerability however
    /// many of its advisories match: an affected verdict beats an undetermined one. Withdrawn
    /// advisories match nothing.
    pub fn check(&self, component: &Component) -> Vec<Match> {
        let mut candidates: BTreeSet<usize> = BTreeSet::new();
        if let Some(p) = &component.package
            && let Some(list) = self.by_package.get(p)
        {
            candidates.extend(list);
        }
        for h in &component.hashes {
            if let Some(list) = self.by_hash.get(h) {
                candidates.extend(list);
            }
        }
        let mut out: Vec<Match> = Vec::new();
        for i in candidates {
            let a = &self.advisories[i];
            let Some(verdict) = a.check(component) else {
                continue;
            };
            let name = self.name_of(&a.id);
            match out.iter_mut().find(|m| m.vulnerability == name) {
                Some(m) => {
                    // Affected beats undetermined; between equals the smallest advisory id,
                    // so the answer does not depend on the order of import.
                    let rank = |v: &Verdict| matches!(v, Verdict::Affected { .. });
                    let better = (rank(&verdict), std::cmp::Reverse(&a.id))
                        > (rank(&m.verdict), std::cmp::Reverse(&m.advisory));
                    if better {
                        m.verdict = verdict;
                        m.advisory = a.id.clone();
                        m.summary = a.summary.clone();
                    }
                }
                None => out.push(Match {
                    ids: self.ids_of(&a.id),
                    severity: self.severity_of(&a.id),
                    vulnerability: name,
                    advisory: a.id.clone(),
                    summary: a.summary.clone(),
                    verdict,
                }),
            }
        }
        out.sort_by(|a, b| a.vulnerability.cmp(&b.vulnerability));
        out
    }
}
