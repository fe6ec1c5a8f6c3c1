//! VEX: what a manufacturer says about a vulnerability in its product, in one model whatever
//! the format it came in (CycloneDX VEX, OpenVEX, CSAF 2.0 VEX).
//!
//! A [`Statement`] says: for vulnerability V (and its aliases), the product P in the versions
//! S (exact, a `vers:` range, any, or builds by hash), optionally only for its subcomponents C,
//! has state X (not affected, affected, fixed, under investigation), with a justification and
//! an action. A statement scoped by a range carries to every release inside it, so an analysis
//! is made once, not once per release (Dependency-Track's #2183).
//!
//! Each format's enumerations (states, justifications, responses, flags, remediation
//! categories) are typed: a value outside them is refused with the field's path and the allowed
//! values. A `not_affected` statement must say why (a justification or an impact statement),
//! in every format, because it is the one statement that hides an exposure.

mod csaf;
mod cyclonedx;
mod openvex;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::component::{Component, Hash, PackageKey};
use crate::error::{Result, VulnError};
use crate::limits::Limits;
use crate::version::VersRange;

/// The VEX formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CycloneDX 1.4-1.6 with `vulnerabilities`.
    CycloneDx,
    /// OpenVEX.
    OpenVex,
    /// CSAF 2.0.
    Csaf,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::CycloneDx => "CycloneDX VEX",
            Format::OpenVex => "OpenVEX",
            Format::Csaf => "CSAF 2.0",
        })
    }
}

/// The state of a product with respect to a vulnerability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not affected: no action needed.
    NotAffected,
    /// Affected: act.
    Affected,
    /// Fixed in these versions.
    Fixed,
    /// Being investigated.
    UnderInvestigation,
}

impl State {
    /// The state as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotAffected => "not_affected",
            State::Affected => "affected",
            State::Fixed => "fixed",
            State::UnderInvestigation => "under_investigation",
        }
    }
}

/// Why a product is not affected: the five justifications of CISA's minimum VEX elements,
/// which OpenVEX and CSAF use as written and CycloneDX's are mapped onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    /// The vulnerable component is not in the product.
    ComponentNotPresent,
    /// The component is there, its vulnerable code is not.
    VulnerableCodeNotPresent,
    /// The vulnerable code is never executed.
    VulnerableCodeNotInExecutePath,
    /// An attacker cannot control the vulnerable code.
    VulnerableCodeCannotBeControlledByAdversary,
    /// Built-in protections prevent exploitation.
    InlineMitigationsAlreadyExist,
}

/// Which versions of a product a statement covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Versions {
    /// Every version.
    Any,
    /// One version.
    Exact(String),
    /// A `vers:` range.
    Range(VersRange),
}

impl Versions {
    /// The versions a `vers:` specifier names: `vers:all/*` (the specification's one spelling
    /// of "every version", which CSAF VEX documents use) is [`Versions::Any`]; anything else is
    /// a range in a scheme [`VersRange`] can order, or an error saying why not.
    pub fn from_vers(text: &str) -> std::result::Result<Versions, String> {
        if text == "vers:all/*" {
            return Ok(Versions::Any);
        }
        VersRange::parse(text).map(Versions::Range)
    }
}

/// The product (or subcomponent) a statement is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    /// Its identity, when the document gives a purl.
    pub package: Option<PackageKey>,
    /// Which of its versions.
    pub versions: Versions,
    /// Builds by hash (matched whatever the name and version say).
    pub hashes: Vec<Hash>,
}

impl Scope {
    /// A scope from a purl: a purl with a version is that version, without one every version,
    /// and one whose version is a `vers:` range (`pkg:generic/acme/netcore@vers:semver/<1.5.0`)
    /// every version in the range. The hub's exposure query and its VEX decisions use the
    /// same spelling.
    pub fn from_purl(purl: &str) -> std::result::Result<Scope, String> {
        if let Some(at) = purl.find("@vers:") {
            let (base, range) = (&purl[..at], &purl[at + 1..]);
            let (package, version) = PackageKey::from_purl(base)?;
            if version.is_some() {
                return Err(format!(
                    "{:?} gives both a version and a range; required PURL@VERSION or PURL@vers:SCHEME/CONSTRAINTS",
                    purl.chars().take(200).collect::<String>()
                ));
            }
            return Ok(Scope {
                package: Some(package),
                versions: Versions::from_vers(range)?,
                hashes: Vec::new(),
            });
        }
        let (package, version) = PackageKey::from_purl(purl)?;
        Ok(Scope {
            package: Some(package),
            versions: version.map_or(Versions::Any, Versions::Exact),
            hashes: Vec::new(),
        })
    }

    /// The scope as a purl in the spelling [`Scope::from_purl`] reads (hashes are not
    /// included).
    pub fn to_purl(&self) -> Option<String> {
        let p = self.package.as_ref()?;
        Some(match &self.versions {
            Versions::Any => p.as_str().to_owned(),
            Versions::Exact(v) => format!("{p}@{v}"),
            Versions::Range(r) => format!("{p}@{}", r.as_str()),
        })
    }

    /// Whether the scope covers `c`. A version that cannot be placed in a range is not covered:
    /// a statement must never hide an exposure it was not written for.
    pub fn covers(&self, c: &Component) -> bool {
        if c.hashes.iter().any(|h| self.hashes.contains(h)) {
            return true;
        }
        if self.package.is_none() || self.package != c.package {
            return false;
        }
        match &self.versions {
            Versions::Any => true,
            Versions::Exact(v) => {
                v == &c.version
                    || v.strip_prefix(['v', 'V']).unwrap_or(v)
                        == c.version.strip_prefix(['v', 'V']).unwrap_or(&c.version)
            }
            Versions::Range(r) => r.contains(&c.version).unwrap_or(false),
        }
    }

    /// How narrow the scope is: hashes and exact versions beat ranges, ranges beat "any".
    fn specificity(&self) -> u8 {
        match (&self.versions, self.hashes.is_empty()) {
            (_, false) | (Versions::Exact(_), _) => 2,
            (Versions::Range(_), _) => 1,
            (Versions::Any, _) => 0,
        }
    }
}

/// One VEX statement in the common model; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// The vulnerability id as the document gives it.
    pub vulnerability: String,
    /// Other ids the document gives for it.
    pub aliases: Vec<String>,
    /// The product.
    pub product: Scope,
    /// The subcomponents of the product the statement is limited to (empty: the whole
    /// product).
    pub subcomponents: Vec<Scope>,
    /// The state.
    pub state: State,
    /// Why not affected.
    pub justification: Option<Justification>,
    /// The impact statement or detail, in the author's words.
    pub detail: Option<String>,
    /// What to do (remediation, response, action statement).
    pub action: Option<String>,
    /// When the statement was made (or its document issued).
    pub timestamp: Option<DateTime<Utc>>,
    /// Who made it (the document's author or publisher).
    pub author: String,
    /// The format it came in.
    pub format: Format,
    /// The document's id.
    pub document: String,
}

impl Statement {
    /// Whether the statement speaks about vulnerability `ids` (all ids of one vulnerability),
    /// for `component` as installed in the release whose own component is `product`.
    pub fn applies(&self, ids: &[String], product: &Component, component: &Component) -> bool {
        let named = std::iter::once(&self.vulnerability)
            .chain(&self.aliases)
            .any(|v| ids.contains(v));
        if !named {
            return false;
        }
        if self.subcomponents.is_empty() {
            // About the release's firmware, or about the vulnerable component itself.
            self.product.covers(product) || self.product.covers(component)
        } else {
            self.product.covers(product) && self.subcomponents.iter().any(|s| s.covers(component))
        }
    }

    /// Checks the rule every format shares (see the module documentation).
    fn check(&self, document: &str, at: &str) -> Result<()> {
        if self.state == State::NotAffected
            && self.justification.is_none()
            && self.detail.as_deref().is_none_or(|d| d.trim().is_empty())
        {
            return Err(VulnError::refused(
                document,
                at,
                "not_affected without a justification or an impact statement",
                "a justification or an impact statement for every not_affected product",
            ));
        }
        Ok(())
    }
}

/// The statement that decides, among those that apply: the most recent; at equal times the
/// narrowest scope; then the one imported last.
pub fn decide<'a>(
    statements: impl IntoIterator<Item = &'a Statement>,
    ids: &[String],
    product: &Component,
    component: &Component,
) -> Option<&'a Statement> {
    statements
        .into_iter()
        .filter(|s| s.applies(ids, product, component))
        .enumerate()
        .max_by_key(|(i, s)| (s.timestamp, s.product.specificity(), *i))
        .map(|(_, s)| s)
}

/// Something in a document that is not a statement fieldkit can apply, and why: it is reported,
/// never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Where in the document.
    pub at: String,
    /// Why.
    pub reason: String,
}

/// A VEX document, in the common model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Its format.
    pub format: Format,
    /// Its id (serial number, `@id`, tracking id).
    pub id: String,
    /// Its author or publisher.
    pub author: String,
    /// When it was issued.
    pub timestamp: Option<DateTime<Utc>>,
    /// Its statements.
    pub statements: Vec<Statement>,
    /// What it contains that could not be applied.
    pub skipped: Vec<Skipped>,
}

/// Parses a VEX document in any of the three formats, recognised by their own markers
/// (`bomFormat`, `@context`, `document.csaf_version`). `document` names it in errors.
pub fn parse(document: &str, bytes: &[u8], limits: &Limits) -> Result<Document> {
    let probe: serde_json::Value = crate::json::parse(document, bytes, limits)?;
    let doc = if probe.get("bomFormat").is_some() {
        cyclonedx::parse(document, bytes, limits)?
    } else if probe.get("@context").is_some() {
        openvex::parse(document, bytes, limits)?
    } else if probe
        .get("document")
        .and_then(|d| d.get("csaf_version"))
        .is_some()
    {
        csaf::parse(document, bytes, limits)?
    } else {
        return Err(VulnError::refused(
            document,
            ".",
            "a JSON document without bomFormat, @context or document.csaf_version",
            "CycloneDX VEX, OpenVEX or CSAF 2.0",
        ));
    };
    for (i, s) in doc.statements.iter().enumerate() {
        crate::json::identifier(
            document,
            &format!("statement {i} vulnerability"),
            &s.vulnerability,
        )?;
    }
    Ok(doc)
}
