//! Licence policy as data: is this component's licence allowed, to be flagged, or denied?
//!
//! A manufacturer's release engineer writes the policy as a TOML file ([`Policy::parse`]):
//! verdicts by SPDX licence id, by category, and a verdict for everything else. The same policy
//! gates `fieldkit package build` (a release whose SBOM has a denied component is refused) and
//! answers "are we compliant?" on the hub. Bytes in, values out: no IO.
//!
//! Design choices:
//! - **SPDX expressions are parsed by the `spdx` crate**, strictly (the SPDX list's ids,
//!   `LicenseRef-`, `AND`/`OR`/`WITH`). An expression is judged as its licensee can use it: `OR`
//!   takes the best alternative, `AND` the worst part; several licences on one component all
//!   apply (the worst counts). With three verdicts this is two boolean evaluations of the
//!   expression: "every needed part allowed?" and "no needed part denied?".
//! - **Unknown is never silently allowed.** A free-text licence name, an expression that does
//!   not parse, `NOASSERTION` and a component with no licence at all are flagged at least; the
//!   policy's `unknown` may raise that to deny, never lower it.
//! - **An explicit id beats its categories; among categories the most severe wins**, so adding a
//!   licence to a stricter category can never loosen the policy.
//! - Categories are data: a `[category.NAME]` lists its licences, or, for the built-in names
//!   `copyleft`, `osi-approved`, `fsf-libre`, `deprecated` and `licence-ref`, takes its members
//!   from the SPDX licence list's own flags.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use spdx::{Expression, LicenseItem, LicenseReq, ParseMode};

/// The policy fieldkit ships for releases (`policies/release-default.toml`).
pub const RELEASE_DEFAULT: &str = include_str!("../policies/release-default.toml");

/// Categories whose members come from the SPDX licence list rather than from the policy file.
pub const BUILT_IN_CATEGORIES: [&str; 5] = [
    "copyleft",
    "osi-approved",
    "fsf-libre",
    "deprecated",
    "licence-ref",
];

/// What the policy says about a licence or a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// May be shipped.
    Allow,
    /// May be shipped, but a person must look at it.
    Flag,
    /// Must not be shipped.
    Deny,
}

impl Verdict {
    /// The verdict as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Flag => "flag",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is not TOML of the policy's shape (the message names the field, and for an
    /// enum the allowed values).
    #[error("licence policy: {0}")]
    Format(String),
    /// A licence id in the policy is not on the SPDX list and not a `LicenseRef-`.
    #[error(
        "licence policy: {at} names {found:?}, required an SPDX licence id (as on the SPDX licence list {list_version}) or a LicenseRef-"
    )]
    UnknownLicence {
        /// Where in the policy.
        at: String,
        /// The id found.
        found: String,
        /// The SPDX licence list version the `spdx` crate carries.
        list_version: &'static str,
    },
    /// A category without a `licences` list that is not a built-in category.
    #[error(
        "licence policy: category {found:?} has no licences list, required a list or one of the built-in categories {allowed}"
    )]
    EmptyCategory {
        /// The category.
        found: String,
        /// The built-in category names.
        allowed: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    otherwise: Verdict,
    #[serde(default = "flag")]
    unknown: Verdict,
    #[serde(default)]
    licences: BTreeMap<String, Verdict>,
    #[serde(default)]
    category: BTreeMap<String, CategoryFile>,
}

fn flag() -> Verdict {
    Verdict::Flag
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    verdict: Verdict,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    licences: Option<Vec<String>>,
}

/// One category of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    /// Its name.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why, in words, if the policy says.
    pub reason: Option<String>,
    /// Its members (canonical SPDX ids or `LicenseRef-`s); `None` for a built-in category.
    pub licences: Option<Vec<String>>,
}

/// A licence policy; see the crate documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Verdict for a licence no entry and no category names.
    pub otherwise: Verdict,
    /// Verdict for unknown, unparsable, `NOASSERTION` and absent licences (at least `flag`).
    pub unknown: Verdict,
    /// Verdicts by licence (canonical SPDX id, `id WITH exception`, or `LicenseRef-`).
    pub licences: BTreeMap<String, Verdict>,
    /// The categories.
    pub categories: Vec<Category>,
}

/// How the policy judged one licence term (or one licence string that is not SPDX).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermVerdict {
    /// The term as written (an SPDX licence requirement, or the whole text when it is not SPDX).
    pub licence: String,
    /// The verdict for this term.
    pub verdict: Verdict,
    /// The rule that decided: `licence ID`, `category NAME`, `otherwise`, `unknown licence`,
    /// `unparsable expression`, `NOASSERTION` or `no licence declared`.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
}

/// How the policy judged one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The component's verdict (see the crate documentation for how terms combine).
    pub verdict: Verdict,
    /// Every term that was judged, in order.
    pub terms: Vec<TermVerdict>,
}

impl Evaluation {
    /// The terms that carry the component's verdict (the denied ones of a denied component,
    /// the flagged ones of a flagged one); empty when allowed.
    pub fn deciding(&self) -> impl Iterator<Item = &TermVerdict> {
        let v = self.verdict;
        self.terms
            .iter()
            .filter(move |t| v != Verdict::Allow && t.verdict == v)
    }
}

/// A strict SPDX parse that also accepts the deprecated ids that SBOM tools still write (such
/// as `GPL-2.0`): they name a licence precisely, so refusing them would only hide it.
const PARSE: ParseMode = ParseMode {
    allow_deprecated: true,
    ..ParseMode::STRICT
};

/// The canonical text of a licence term: `ID`, `ID+`, `ID WITH EXC`, `LicenseRef-X`.
fn term_text(req: &LicenseReq) -> String {
    req.to_string()
}

fn canonical_licence(text: &str) -> Option<String> {
    let e = Expression::parse_mode(text, PARSE).ok()?;
    let mut reqs = e.requirements();
    let first = reqs.next()?;
    reqs.next().is_none().then(|| term_text(&first.req))
}

impl Policy {
    /// Parses a policy file (TOML; see `policies/release-default.toml`).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            PolicyError::Format(e.to_string().lines().collect::<Vec<_>>().join(" "))
        })?;
        let unknown_licence = |at: String, found: &str| PolicyError::UnknownLicence {
            at,
            found: found.to_owned(),
            list_version: spdx::license_version(),
        };
        let mut licences = BTreeMap::new();
        for (id, verdict) in file.licences {
            let canon =
                canonical_licence(&id).ok_or_else(|| unknown_licence("[licences]".into(), &id))?;
            licences.insert(canon, verdict);
        }
        let mut categories = Vec::new();
        for (name, c) in file.category {
            let members = match c.licences {
                Some(list) => Some(
                    list.iter()
                        .map(|id| {
                            canonical_licence(id)
                                .ok_or_else(|| unknown_licence(format!("[category.{name}]"), id))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None if BUILT_IN_CATEGORIES.contains(&name.as_str()) => None,
                None => {
                    return Err(PolicyError::EmptyCategory {
                        found: name,
                        allowed: BUILT_IN_CATEGORIES.join(", "),
                    });
                }
            };
            categories.push(Category {
                name,
                verdict: c.verdict,
                reason: c.reason,
                licences: members,
            });
        }
        Ok(Policy {
            otherwise: file.otherwise,
            unknown: file.unknown.max(Verdict::Flag),
            licences,
            categories,
        })
    }

    /// The policy fieldkit ships for releases.
    pub fn release_default() -> Policy {
        // The file is part of the crate and tested; a broken one is a build defect.
        Policy::parse(RELEASE_DEFAULT).unwrap_or(Policy {
            otherwise: Verdict::Flag,
            unknown: Verdict::Flag,
            licences: BTreeMap::new(),
            categories: Vec::new(),
        })
    }

    fn in_category(c: &Category, req: &LicenseReq, text: &str) -> bool {
        match &c.licences {
            Some(list) => list.iter().any(|l| {
                l == text
                    || req.license.id().is_some_and(|id| l == id.name) && req.addition.is_none()
            }),
            None => match (&req.license, c.name.as_str()) {
                (LicenseItem::Other(_), "licence-ref") => true,
                (LicenseItem::Spdx { id, .. }, "copyleft") => id.is_copyleft(),
                (LicenseItem::Spdx { id, .. }, "osi-approved") => id.is_osi_approved(),
                (LicenseItem::Spdx { id, .. }, "fsf-libre") => id.is_fsf_free_libre(),
                (LicenseItem::Spdx { id, .. }, "deprecated") => id.is_deprecated(),
                _ => false,
            },
        }
    }

    /// The verdict for one SPDX licence requirement.
    pub fn judge(&self, req: &LicenseReq) -> TermVerdict {
        let text = term_text(req);
        let by_id = self.licences.get(&text).or_else(|| {
            // `ID WITH EXC` falls back to the plain id only if no entry names the pair.
            req.addition
                .is_none()
                .then(|| req.license.id().and_then(|id| self.licences.get(id.name)))
                .flatten()
        });
        if let Some(&verdict) = by_id {
            return TermVerdict {
                licence: text.clone(),
                verdict,
                rule: format!("licence {text}"),
                reason: format!("the policy names {text}"),
            };
        }
        let worst = self
            .categories
            .iter()
            .filter(|c| Self::in_category(c, req, &text))
            .max_by_key(|c| c.verdict);
        match worst {
            Some(c) => TermVerdict {
                licence: text,
                verdict: c.verdict,
                rule: format!("category {}", c.name),
                reason: c
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("the policy's category {}", c.name)),
            },
            None => TermVerdict {
                licence: text,
                verdict: self.otherwise,
                rule: "otherwise".into(),
                reason: "no entry or category of the policy names it".into(),
            },
        }
    }

    fn unknown(&self, licence: &str, rule: &str, reason: String) -> TermVerdict {
        TermVerdict {
            licence: licence.to_owned(),
            verdict: self.unknown,
            rule: rule.into(),
            reason,
        }
    }

    /// Judges a component by its licences as the SBOM lists them (SPDX ids, expressions or
    /// free-text names; all of them apply).
    pub fn evaluate(&self, licences: &[String]) -> Evaluation {
        let mut terms = Vec::new();
        let mut verdict = Verdict::Allow;
        if licences.is_empty() {
            let t = self.unknown(
                "",
                "no licence declared",
                "the SBOM declares no licence for this component".into(),
            );
            return Evaluation {
                verdict: t.verdict,
                terms: vec![t],
            };
        }
        for text in licences {
            let trimmed = text.trim();
            if trimmed.eq_ignore_ascii_case("NOASSERTION") {
                let t = self.unknown(
                    text,
                    "NOASSERTION",
                    "the SBOM's author did not determine the licence".into(),
                );
                verdict = verdict.max(t.verdict);
                terms.push(t);
                continue;
            }
            let expr = match Expression::parse_mode(trimmed, PARSE) {
                Ok(e) => e,
                Err(e) => {
                    // Text with operators or parentheses was meant as an expression; anything
                    // else is a licence name (or an id) that SPDX does not know.
                    let operators = ["AND", "OR", "WITH"];
                    let expression = trimmed.contains(['(', ')'])
                        || trimmed.split_whitespace().any(|w| operators.contains(&w));
                    let t = if expression {
                        self.unknown(
                            text,
                            "unparsable expression",
                            format!("not a valid SPDX expression: {}", e.reason),
                        )
                    } else {
                        self.unknown(
                            text,
                            "unknown licence",
                            format!(
                                "not a licence of the SPDX licence list {}",
                                spdx::license_version()
                            ),
                        )
                    };
                    verdict = verdict.max(t.verdict);
                    terms.push(t);
                    continue;
                }
            };
            let judged: Vec<TermVerdict> =
                expr.requirements().map(|r| self.judge(&r.req)).collect();
            let find = |req: &LicenseReq| {
                let text = term_text(req);
                judged
                    .iter()
                    .find(|t| t.licence == text)
                    .map_or(Verdict::Deny, |t| t.verdict)
            };
            let this = if expr.evaluate(|r| find(r) == Verdict::Allow) {
                Verdict::Allow
            } else if expr.evaluate(|r| find(r) != Verdict::Deny) {
                Verdict::Flag
            } else {
                Verdict::Deny
            };
            verdict = verdict.max(this);
            for t in judged {
                if !terms.contains(&t) {
                    terms.push(t);
                }
            }
        }
        Evaluation { verdict, terms }
    }
}

#[cfg(test)]
mod tests;
