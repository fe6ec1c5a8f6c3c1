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
    /// Every id (advisory ids and aliases) -> its group in `groups`.
    group_of: HashMap<String, usize>,
    /// The ids of each vulnerability (a group merged into another is left empty).
    groups: Vec<BTreeSet<String>>,
}

/// The name of a vulnerability with these ids: its CVE id if it has one, else its smallest id.
fn name_in(ids: &BTreeSet<String>) -> String {
    ids.iter()
        .find(|i| i.starts_with("CVE-"))
        .or_else(|| ids.first())
        .cloned()
        .unwrap_or_default()
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
            self.group_of.clear();
            self.groups.clear();
            for a in &all {
                self.union_all(a);
            }
        }
        self.advisories = all;
    }

    /// Puts the advisory's id and aliases in one group, merging the groups they were in (the
    /// smaller groups move into the largest, so each id moves O(log n) times in all).
    fn union_all(&mut self, a: &Advisory) {
        let mut found: Vec<usize> = a
            .ids()
            .filter_map(|id| self.group_of.get(id).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        let target = match found.iter().max_by_key(|&&g| self.groups[g].len()) {
            Some(&g) => g,
            None => {
                self.groups.push(BTreeSet::new());
                self.groups.len() - 1
            }
        };
        for g in found.into_iter().filter(|&g| g != target) {
            let moved = std::mem::take(&mut self.groups[g]);
            for id in &moved {
                self.group_of.insert(id.clone(), target);
            }
            self.groups[target].extend(moved);
        }
        for id in a.ids() {
            if self.groups[target].insert(id.to_owned()) {
                self.group_of.insert(id.to_owned(), target);
            }
        }
    }

    /// Every id merged with `id` (itself included), sorted; just `id` if it is unknown.
    pub fn ids_of(&self, id: &str) -> Vec<String> {
        match self.group_of.get(id) {
            Some(&g) => self.groups[g].iter().cloned().collect(),
            None => vec![id.to_owned()],
        }
    }

    /// Every vulnerability: its name and all its ids, by name.
    pub fn vulnerabilities(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = self
            .groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| (name_in(g), g.iter().cloned().collect()))
            .collect();
        out.sort();
        out
    }

    /// The name of the vulnerability `id` belongs to (see the module documentation).
    pub fn name_of(&self, id: &str) -> String {
        match self.group_of.get(id) {
            Some(&g) => name_in(&self.groups[g]),
            None => id.to_owned(),
        }
    }

    /// The advisories of the vulnerability `id` belongs to (live and withdrawn).
    pub fn advisories_of(&self, id: &str) -> Vec<&Advisory> {
        let one = [id.to_owned()];
        let ids: Box<dyn Iterator<Item = &String>> = match self.group_of.get(id) {
            Some(&g) => Box::new(self.groups[g].iter()),
            None => Box::new(one.iter()),
        };
        ids.filter_map(|i| self.by_id.get(i))
            .map(|&i| &self.advisories[i])
            .collect()
    }

    /// The most severe rating among the live advisories of the vulnerability `id` belongs to.
    pub fn severity(&self, id: &str) -> Severity {
        self.severity_of(id)
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
