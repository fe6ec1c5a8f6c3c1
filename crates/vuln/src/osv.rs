//! OSV advisories: import (one JSON document, or the per-ecosystem `all.zip` layout) and the
//! question "does this advisory affect this component?".
//!
//! The range events, range types and severities are the `osv` crate's schema types. The
//! document around them is read into this module's own struct, because the `osv` crate's
//! `Ecosystem` is a closed list that refuses every ecosystem added to OSV since its release (and
//! a manufacturer's own feed), with a message that does not say which value it met.
//!
//! A manufacturer's firmware has no ecosystem. Its advisories name it by purl (`pkg:generic`
//! with the vendor as namespace) in `affected[].package.purl`, and may list the affected builds
//! by hash in `affected[].database_specific.hashes` (CycloneDX hash objects), which matches an
//! SBOM component by its bytes whatever its name or version says.

use std::cmp::Ordering;
use std::io::{Read, Seek};

use chrono::{DateTime, Utc};
use osv::schema::{
    Event as OsvEvent, Range as OsvRange, RangeType, Severity as OsvSeverity, SeverityType,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::component::{Component, Hash, PackageKey};
use crate::error::{Result, VulnError};
use crate::json;
use crate::limits::Limits;
use crate::version::Scheme;

/// How bad a vulnerability is, in CVSS's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No score or rating was given.
    Unknown,
    /// CVSS 0.0.
    None,
    /// CVSS 0.1-3.9.
    Low,
    /// CVSS 4.0-6.9.
    Medium,
    /// CVSS 7.0-8.9.
    High,
    /// CVSS 9.0-10.0.
    Critical,
}

impl Level {
    /// The level as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unknown => "unknown",
            Level::None => "none",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// A vulnerability's severity: a level, and the CVSS score and vector it came from, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Severity {
    /// The level.
    pub level: Level,
    /// CVSS base score.
    pub score: Option<f64>,
    /// The CVSS vector as written.
    pub vector: Option<String>,
}

/// The type of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RangeKind {
    /// Semantic versions.
    Semver,
    /// The ecosystem's own versions.
    Ecosystem,
    /// Git commits.
    Git,
}

/// One event of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Affected from this version on (`0`: from the beginning).
    Introduced(String),
    /// Not affected from this version on.
    Fixed(String),
    /// Affected up to and including this version.
    LastAffected(String),
    /// Nothing at or above this version is affected by this range.
    Limit(String),
}

impl Event {
    fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

/// One range of an affected package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Its type.
    pub kind: RangeKind,
    /// The repository, for GIT ranges.
    pub repo: Option<String>,
    /// Its events, as written.
    pub events: Vec<Event>,
}

/// One affected package of an advisory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    /// The package, from its purl or from ecosystem and name.
    pub package: Option<PackageKey>,
    /// The OSV ecosystem.
    pub ecosystem: Option<String>,
    /// The package name in its ecosystem.
    pub name: Option<String>,
    /// Version ranges.
    pub ranges: Vec<Range>,
    /// Affected versions, enumerated.
    pub versions: Vec<String>,
    /// Affected builds by hash (manufacturer feeds: `database_specific.hashes`).
    pub hashes: Vec<Hash>,
}

/// An advisory, as imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    /// Its id (`GHSA-...`, `CVE-...`, a manufacturer's own).
    pub id: String,
    /// Other ids of the same vulnerability.
    pub aliases: Vec<String>,
    /// When it last changed.
    pub modified: DateTime<Utc>,
    /// When it was published.
    pub published: Option<DateTime<Utc>>,
    /// When it was withdrawn: a withdrawn advisory affects nothing.
    pub withdrawn: Option<DateTime<Utc>>,
    /// One line.
    pub summary: Option<String>,
    /// Details (CommonMark: render as text, never as HTML).
    pub details: Option<String>,
    /// The severity.
    pub severity: Severity,
    /// The affected packages.
    pub affected: Vec<Affected>,
}

/// Whether an advisory affects a component, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The component is affected.
    Affected {
        /// How it matched: `purl` or `hash`.
        via: MatchedBy,
        /// The rule that held, in words (`SEMVER range: introduced 0, last_affected 1.4.0`).
        because: String,
        /// Versions of the package that fix it, from the advisory's `fixed` events.
        fixed: Vec<String>,
    },
    /// The advisory names the package, but this version cannot be placed: the answer is not
    /// known, and is shown as such rather than as "not affected".
    Undetermined {
        /// Why.
        because: String,
    },
}

/// How a component was matched to an advisory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// By package URL and version.
    Purl,
    /// By the hash of its bytes.
    Hash,
}

// --- The document as OSV writes it -------------------------------------------------------------

#[derive(Deserialize)]
struct OsvDoc {
    id: String,
    modified: DateTime<Utc>,
    #[serde(default)]
    published: Option<DateTime<Utc>>,
    #[serde(default)]
    withdrawn: Option<DateTime<Utc>>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    severity: Option<Vec<OsvSeverity>>,
    #[serde(default)]
    affected: Option<Vec<OsvAffected>>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct OsvAffected {
    #[serde(default)]
    package: Option<OsvPackage>,
    #[serde(default)]
    severity: Option<Vec<OsvSeverity>>,
    #[serde(default)]
    ranges: Option<Vec<OsvRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct OsvPackage {
    #[serde(default)]
    ecosystem: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct HashObject {
    alg: String,
    content: String,
}

/// Ecosystems whose packages have a purl type of their own, so that an advisory without a purl
/// still matches SBOM components by purl.
fn purl_of(ecosystem: &str, name: &str) -> Option<String> {
    let base = ecosystem.split(':').next().unwrap_or("");
    let ty = match base {
        "crates.io" => "cargo",
        "npm" => "npm",
        "PyPI" => "pypi",
        "Go" => "golang",
        "RubyGems" => "gem",
        "NuGet" => "nuget",
        "Hex" => "hex",
        "Pub" => "pub",
        "Packagist" => "composer",
        "Hackage" => "hackage",
        "Maven" => {
            let (group, artifact) = name.split_once(':')?;
            return Some(format!("pkg:maven/{group}/{artifact}"));
        }
        _ => return None,
    };
    Some(format!("pkg:{ty}/{name}"))
}

/// The purl of a source repository on a forge purl has a type for
/// (`https://github.com/Mbed-TLS/mbedtls` -> `pkg:github/Mbed-TLS/mbedtls`): the identity of
/// an entry that names its software only by a GIT range, as OSV's records converted from CVEs
/// do for C libraries and firmware (no ecosystem has them).
fn purl_of_repo(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .or_else(|| url.strip_prefix("git://"))?;
    let (host, path) = rest.split_once('/')?;
    let ty = match host.to_ascii_lowercase().as_str() {
        "github.com" | "www.github.com" => "github",
        "gitlab.com" => "gitlab",
        "bitbucket.org" => "bitbucket",
        _ => return None,
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, name) = path.split_once('/')?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    (plain(owner) && plain(name)).then(|| format!("pkg:{ty}/{owner}/{name}"))
}

fn severity_of(list: &[OsvSeverity], database_specific: Option<&Value>) -> Severity {
    let mut best: Option<Severity> = None;
    for s in list {
        let usable = matches!(s.severity_type, SeverityType::CVSSv3 | SeverityType::CVSSv4);
        let Some(cvss) = usable.then(|| s.score.parse::<cvss::Cvss>().ok()).flatten() else {
            continue;
        };
        let level = match cvss.severity() {
            cvss::Severity::None => Level::None,
            cvss::Severity::Low => Level::Low,
            cvss::Severity::Medium => Level::Medium,
            cvss::Severity::High => Level::High,
            cvss::Severity::Critical => Level::Critical,
        };
        let this = Severity {
            level,
            score: Some(cvss.score()),
            vector: Some(s.score.clone()),
        };
        // Prefer the newest CVSS version given (v4 after v3 in OSV's order of listing).
        best = Some(this);
    }
    if let Some(b) = best {
        return b;
    }
    // GitHub's advisories rate in database_specific.severity: LOW, MODERATE, HIGH, CRITICAL.
    let word = database_specific
        .and_then(|d| d.get("severity"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let level = match word.to_ascii_uppercase().as_str() {
        "LOW" => Level::Low,
        "MODERATE" | "MEDIUM" => Level::Medium,
        "HIGH" => Level::High,
        "CRITICAL" => Level::Critical,
        _ => Level::Unknown,
    };
    Severity {
        level,
        score: None,
        vector: None,
    }
}

/// Parses one OSV JSON document. `document` names it in errors.
pub fn parse_advisory(document: &str, bytes: &[u8], limits: &Limits) -> Result<Advisory> {
    let doc: OsvDoc = json::parse(document, bytes, limits)?;
    json::identifier(document, "id", &doc.id)?;
    let aliases = doc.aliases.unwrap_or_default();
    for (i, a) in aliases.iter().enumerate() {
        json::identifier(document, &format!("aliases[{i}]"), a)?;
    }
    let mut affected = Vec::new();
    let mut severities = doc.severity.unwrap_or_default();
    for (i, a) in doc.affected.unwrap_or_default().into_iter().enumerate() {
        let at = format!("affected[{i}]");
        severities.extend(a.severity.unwrap_or_default());
        let (mut package, mut ecosystem, mut name) = (None, None, None);
        if let Some(p) = a.package {
            if let Some(e) = &p.ecosystem {
                json::identifier(document, &format!("{at}.package.ecosystem"), e)?;
            }
            if let Some(n) = &p.name {
                json::identifier(document, &format!("{at}.package.name"), n)?;
            }
            let purl = p.purl.clone().or_else(|| {
                p.ecosystem
                    .as_deref()
                    .zip(p.name.as_deref())
                    .and_then(|(e, n)| purl_of(e, n))
            });
            if let Some(purl) = purl {
                let (key, _) = PackageKey::from_purl(&purl).map_err(|e| {
                    VulnError::refused(document, format!("{at}.package.purl"), e, "a package URL")
                })?;
                package = Some(key);
            }
            ecosystem = p.ecosystem;
            name = p.name;
        }
        let mut ranges = Vec::new();
        for (j, r) in a.ranges.unwrap_or_default().into_iter().enumerate() {
            ranges.push(range(document, &format!("{at}.ranges[{j}]"), r)?);
        }
        let versions = a.versions.unwrap_or_default();
        for (j, v) in versions.iter().enumerate() {
            json::identifier(document, &format!("{at}.versions[{j}]"), v)?;
        }
        // No purl, but one repository in its GIT ranges (or a GIT "package" named by its URL):
        // the repository is the package.
        if package.is_none() {
            let mut repos = ranges
                .iter()
                .filter(|r| r.kind == RangeKind::Git)
                .filter_map(|r| r.repo.as_deref())
                .chain(
                    name.as_deref()
                        .filter(|_| ecosystem.as_deref() == Some("GIT")),
                );
            let first = repos.next();
            if let Some(repo) = first.filter(|f| repos.all(|r| r == *f))
                && let Some(purl) = purl_of_repo(repo)
            {
                package = PackageKey::from_purl(&purl).ok().map(|(key, _)| key);
            }
        }
        let mut hashes = Vec::new();
        if let Some(list) = a.database_specific.as_ref().and_then(|d| d.get("hashes")) {
            let objects: Vec<HashObject> =
                serde_json::from_value(list.clone()).map_err(|e| VulnError::Malformed {
                    document: document.to_owned(),
                    at: format!("{at}.database_specific.hashes"),
                    message: format!("{e}; required a list of {{\"alg\", \"content\"}} objects"),
                })?;
            for (j, h) in objects.iter().enumerate() {
                hashes.push(Hash::new(&h.alg, &h.content).ok_or_else(|| {
                    VulnError::refused(
                        document,
                        format!("{at}.database_specific.hashes[{j}]"),
                        format!("{} {}", h.alg, h.content),
                        "a CycloneDX hash algorithm (SHA-256, ...) and hex content",
                    )
                })?);
            }
        }
        let has_git = ranges.iter().any(|r| r.kind == RangeKind::Git);
        if package.is_none() && ecosystem.is_none() && !has_git && hashes.is_empty() {
            return Err(VulnError::refused(
                document,
                at,
                "no package, no GIT range and no hashes",
                "a package (purl, or ecosystem and name), a GIT range, or database_specific.hashes",
            ));
        }
        affected.push(Affected {
            package,
            ecosystem,
            name,
            ranges,
            versions,
            hashes,
        });
    }
    Ok(Advisory {
        id: doc.id,
        aliases,
        modified: doc.modified,
        published: doc.published,
        withdrawn: doc.withdrawn,
        summary: doc.summary,
        details: doc.details,
        severity: severity_of(&severities, doc.database_specific.as_ref()),
        affected,
    })
}

fn range(document: &str, at: &str, r: OsvRange) -> Result<Range> {
    let kind = match r.range_type {
        RangeType::Semver => RangeKind::Semver,
        RangeType::Ecosystem => RangeKind::Ecosystem,
        RangeType::Git => RangeKind::Git,
        _ => {
            return Err(VulnError::refused(
                document,
                format!("{at}.type"),
                "UNSPECIFIED",
                "one of SEMVER, ECOSYSTEM, GIT",
            ));
        }
    };
    let events: Vec<Event> = r
        .events
        .into_iter()
        .filter_map(|e| match e {
            OsvEvent::Introduced(v) => Some(Event::Introduced(v)),
            OsvEvent::Fixed(v) => Some(Event::Fixed(v)),
            OsvEvent::LastAffected(v) => Some(Event::LastAffected(v)),
            OsvEvent::Limit(v) => Some(Event::Limit(v)),
            _ => None,
        })
        .collect();
    for (i, e) in events.iter().enumerate() {
        json::identifier(document, &format!("{at}.events[{i}]"), e.version())?;
    }
    if !events.iter().any(|e| matches!(e, Event::Introduced(_))) {
        return Err(VulnError::refused(
            document,
            format!("{at}.events"),
            format!("{} events without an introduced event", events.len()),
            "at least one introduced event (OSV schema)",
        ));
    }
    if kind == RangeKind::Git && r.repo.as_deref().is_none_or(str::is_empty) {
        return Err(VulnError::refused(
            document,
            format!("{at}.repo"),
            "none",
            "the repository URL of a GIT range",
        ));
    }
    Ok(Range {
        kind,
        repo: r.repo,
        events,
    })
}

/// Reads an OSV `all.zip` (one advisory per `*.json` member, as osv.dev exports each
/// ecosystem), calling `each` with every advisory or with the error of its member, in archive
/// order. Members that are not `.json` files are skipped. An error returned here concerns the
/// archive as a whole (not a zip, too many members, too much data, a zip bomb): then stop and
/// keep nothing of it.
pub fn read_archive<R: Read + Seek>(
    document: &str,
    reader: R,
    limits: &Limits,
    mut each: impl FnMut(Result<Advisory>),
) -> Result<usize> {
    let archive_err = |e: zip::result::ZipError| VulnError::Archive {
        document: document.to_owned(),
        message: e.to_string(),
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(archive_err)?;
    if zip.len() > limits.archive_members {
        return Err(VulnError::TooLarge {
            document: document.to_owned(),
            what: format!("the archive's member count ({} members)", zip.len()),
            found: zip.len() as u64,
            limit: limits.archive_members as u64,
        });
    }
    let mut total: u64 = 0;
    let mut count = 0;
    let mut buf = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(archive_err)?;
        let name = member.name().map_err(archive_err)?.into_owned();
        if member.is_dir() || !name.ends_with(".json") {
            continue;
        }
        let label = format!("{document}:{name}");
        let declared = member.size();
        let compressed = member.compressed_size().max(1);
        if declared / compressed > limits.compression_ratio {
            return Err(VulnError::refused(
                document,
                name,
                format!("{declared} bytes compressed into {compressed}"),
                format!(
                    "a compression ratio of at most {} (a zip bomb is refused whole)",
                    limits.compression_ratio
                ),
            ));
        }
        if declared > limits.document {
            each(Err(VulnError::TooLarge {
                document: label,
                what: "the member (as declared)".into(),
                found: declared,
                limit: limits.document,
            }));
            continue;
        }
        // Read one byte past the limit: a member that decompresses to more than it declared is
        // caught here, whatever its header says.
        buf.clear();
        let read = (&mut member)
            .take(limits.document + 1)
            .read_to_end(&mut buf)
            .map_err(|e| VulnError::Archive {
                document: label.clone(),
                message: e.to_string(),
            });
        let n = match read {
            Ok(n) => n as u64,
            Err(e) => {
                each(Err(e));
                continue;
            }
        };
        total += n;
        if total > limits.archive_total {
            return Err(VulnError::TooLarge {
                document: document.to_owned(),
                what: "the archive, decompressed,".into(),
                found: total,
                limit: limits.archive_total,
            });
        }
        if n > limits.document || n != declared {
            each(Err(VulnError::refused(
                &label,
                ".",
                format!("{n} bytes decompressed"),
                format!(
                    "the {declared} bytes the archive declares, at most {}",
                    limits.document
                ),
            )));
            continue;
        }
        each(parse_advisory(&label, &buf, limits));
        count += 1;
    }
    Ok(count)
}

// --- Matching ----------------------------------------------------------------------------------

impl Affected {
    /// The ordering of this entry's ECOSYSTEM ranges.
    fn scheme(&self) -> Option<Scheme> {
        self.ecosystem.as_deref().and_then(Scheme::for_ecosystem)
    }

    /// Versions that fix this entry, from its `fixed` events.
    pub fn fixed_versions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .ranges
            .iter()
            .flat_map(|r| &r.events)
            .filter_map(|e| match e {
                Event::Fixed(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        out.dedup();
        out
    }

    /// Whether `component` is affected by this entry; `None` if the entry does not name it.
    pub fn check(&self, component: &Component) -> Option<Verdict> {
        let by_hash = component.hashes.iter().find(|h| self.hashes.contains(h));
        if let Some(h) = by_hash {
            return Some(Verdict::Affected {
                via: MatchedBy::Hash,
                because: format!("its {} is listed", h.alg),
                fixed: self.fixed_versions(),
            });
        }
        if self.package.is_none() || self.package != component.package {
            return None;
        }
        self.check_version(&component.version)
    }

    /// The version rules of this entry for a version of its package (OSV's evaluation: listed
    /// in `versions`, or inside any range). `None` when not affected.
    pub fn check_version(&self, version: &str) -> Option<Verdict> {
        let affected = |because: String| {
            Some(Verdict::Affected {
                via: MatchedBy::Purl,
                because,
                fixed: self.fixed_versions(),
            })
        };
        let bare = |v: &str| v.strip_prefix(['v', 'V']).unwrap_or(v).to_owned();
        let list_scheme = self.scheme().or_else(|| {
            self.ranges
                .iter()
                .any(|r| r.kind == RangeKind::Semver)
                .then_some(Scheme::Semver)
        });
        // Tags are often written `v3.6.0` or `mbedtls-3.6.0` where an SBOM says `3.6.0`.
        let short = self
            .package
            .as_ref()
            .and_then(|p| p.as_str().rsplit('/').next())
            .unwrap_or("");
        let untagged = |v: &str| match v.get(..short.len() + 1) {
            Some(head)
                // `-` ends `head`, so `short.len()` is a character boundary.
                if !short.is_empty()
                    && head.ends_with('-')
                    && head[..short.len()].eq_ignore_ascii_case(short) =>
            {
                bare(&v[short.len() + 1..])
            }
            _ => bare(v),
        };
        let listed = self.versions.iter().any(|v| {
            v == version
                || bare(v) == bare(version)
                || untagged(v) == bare(version)
                || list_scheme.is_some_and(|s| s.compare(v, version) == Ok(Ordering::Equal))
        });
        if listed {
            return affected(format!("version {version} is listed as affected"));
        }
        let mut undetermined = Vec::new();
        for r in &self.ranges {
            let scheme = match r.kind {
                RangeKind::Semver => Some(Scheme::Semver),
                RangeKind::Ecosystem => self.scheme(),
                RangeKind::Git => None,
            };
            match scheme {
                Some(s) => match in_range(s, &r.events, version) {
                    Ok(true) => return affected(describe(r)),
                    Ok(false) => {}
                    Err(e) => undetermined.push(e),
                },
                None if r.kind == RangeKind::Git => {
                    // Commits have no order without the repository: an exact commit counts.
                    let hit = r.events.iter().any(|e| {
                        matches!(e, Event::Introduced(c) | Event::LastAffected(c) if c == version)
                    });
                    if hit {
                        return affected(format!("commit {version} is named in a GIT range"));
                    }
                    if self.versions.is_empty() {
                        undetermined.push(format!(
                            "a GIT range of {} without a versions list cannot place {version}",
                            r.repo.as_deref().unwrap_or("a repository")
                        ));
                    }
                }
                None => {
                    if self.versions.is_empty() {
                        undetermined.push(format!(
                            "fieldkit knows no version ordering for ecosystem {:?} and the advisory lists no versions",
                            self.ecosystem.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
        }
        if undetermined.is_empty() {
            None
        } else {
            Some(Verdict::Undetermined {
                because: undetermined.join("; "),
            })
        }
    }
}

fn describe(r: &Range) -> String {
    let events: Vec<String> = r
        .events
        .iter()
        .map(|e| match e {
            Event::Introduced(v) => format!("introduced {v}"),
            Event::Fixed(v) => format!("fixed {v}"),
            Event::LastAffected(v) => format!("last_affected {v}"),
            Event::Limit(v) => format!("limit {v}"),
        })
        .collect();
    let kind = match r.kind {
        RangeKind::Semver => "SEMVER",
        RangeKind::Ecosystem => "ECOSYSTEM",
        RangeKind::Git => "GIT",
    };
    format!("{kind} range: {}", events.join(", "))
}

/// OSV's evaluation of one SEMVER or ECOSYSTEM range: events sorted by version (`introduced: 0`
/// first), walked in order; `introduced` opens, `fixed` closes at, `last_affected` closes after;
/// at or above a `limit` nothing is affected.
fn in_range(scheme: Scheme, events: &[Event], version: &str) -> Result<bool, String> {
    let cmp = |a: &str, b: &str| -> Result<Ordering, String> {
        match (a, b) {
            ("0", "0") => Ok(Ordering::Equal),
            ("0", _) => Ok(Ordering::Less),
            (_, "0") => Ok(Ordering::Greater),
            _ => scheme.compare(a, b),
        }
    };
    for e in events {
        if let Event::Limit(l) = e
            && l != "*"
            && cmp(version, l)? != Ordering::Less
        {
            return Ok(false);
        }
    }
    let mut sorted: Vec<&Event> = events
        .iter()
        .filter(|e| !matches!(e, Event::Limit(_)))
        .collect();
    // Validate every version first so a sort never sees an incomparable pair.
    for e in &sorted {
        cmp(e.version(), e.version())?;
    }
    cmp(version, version)?;
    sorted.sort_by(|a, b| cmp(a.version(), b.version()).unwrap_or(Ordering::Equal));
    let mut affected = false;
    for e in sorted {
        match e {
            Event::Introduced(v) => {
                if v == "0" || cmp(version, v)? != Ordering::Less {
                    affected = true;
                }
            }
            Event::Fixed(v) => {
                if cmp(version, v)? != Ordering::Less {
                    affected = false;
                }
            }
            Event::LastAffected(v) => {
                if cmp(version, v)? == Ordering::Greater {
                    affected = false;
                }
            }
            Event::Limit(_) => {}
        }
    }
    Ok(affected)
}

impl Advisory {
    /// All ids of this advisory: its own and its aliases.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// Whether this advisory affects `component`: the first entry that names it decides
    /// (affected beats undetermined). A withdrawn advisory affects nothing.
    pub fn check(&self, component: &Component) -> Option<Verdict> {
        if self.withdrawn.is_some() {
            return None;
        }
        let mut undetermined = None;
        for a in &self.affected {
            match a.check(component) {
                Some(v @ Verdict::Affected { .. }) => return Some(v),
                Some(v) => undetermined = undetermined.or(Some(v)),
                None => {}
            }
        }
        undetermined
    }
}
