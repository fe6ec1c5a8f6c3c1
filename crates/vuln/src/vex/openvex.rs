//! OpenVEX (v0.2.0, and the v0.0.x shape where vulnerabilities and products are plain strings).
//!
//! Statuses and justifications are OpenVEX's own, which are the common model's. A product is
//! identified by its `@id` or `identifiers.purl` (a purl with a version is that version, without
//! one every version) and by `hashes`. The `openvex` crate models only the v0.0.x shape, so the
//! v0.2.0 documents of the specification do not parse with it; hence this module's own types.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Document, Format, Justification, Scope, Skipped, State, Statement, Versions};
use crate::component::Hash;
use crate::error::{Result, VulnError};
use crate::limits::Limits;

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "@context")]
    context: String,
    #[serde(rename = "@id")]
    id: String,
    author: String,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    last_updated: Option<DateTime<Utc>>,
    statements: Vec<OvStatement>,
}

#[derive(Deserialize)]
struct OvStatement {
    vulnerability: Vulnerability,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    last_updated: Option<DateTime<Utc>>,
    #[serde(default)]
    products: Vec<Product>,
    #[serde(default)]
    subcomponents: Vec<Product>,
    status: Status,
    #[serde(default)]
    status_notes: Option<String>,
    #[serde(default)]
    justification: Option<Justification>,
    #[serde(default)]
    impact_statement: Option<String>,
    #[serde(default)]
    action_statement: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Vulnerability {
    Name(String),
    Object {
        #[serde(rename = "@id", default)]
        id: Option<String>,
        name: String,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Status {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Product {
    Id(String),
    Object(ProductObject),
}

#[derive(Deserialize)]
struct ProductObject {
    #[serde(rename = "@id", default)]
    id: Option<String>,
    #[serde(default)]
    identifiers: BTreeMap<String, String>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(default)]
    subcomponents: Vec<Product>,
}

/// A product's scope, or why it has none fieldkit can use.
fn scope(p: &Product) -> std::result::Result<Scope, String> {
    let (purl, hashes) = match p {
        Product::Id(id) => (Some(id.clone()), BTreeMap::new()),
        Product::Object(o) => (
            o.identifiers
                .get("purl")
                .cloned()
                .or_else(|| o.id.clone().filter(|i| i.starts_with("pkg:"))),
            o.hashes.clone(),
        ),
    };
    let hashes: Vec<Hash> = hashes.iter().filter_map(|(a, c)| Hash::new(a, c)).collect();
    match purl {
        Some(purl) if purl.starts_with("pkg:") => {
            let mut s = Scope::from_purl(&purl)?;
            s.hashes = hashes;
            Ok(s)
        }
        _ if !hashes.is_empty() => Ok(Scope {
            package: None,
            versions: Versions::Any,
            hashes,
        }),
        Some(other) => Err(format!("{other:?} is not a purl and no hashes are given")),
        None => Err("no purl and no hashes".into()),
    }
}

pub(super) fn parse(document: &str, bytes: &[u8], limits: &Limits) -> Result<Document> {
    let doc: Doc = crate::json::parse(document, bytes, limits)?;
    if !doc.context.starts_with("https://openvex.dev/ns") {
        return Err(VulnError::refused(
            document,
            "@context",
            format!("{:?}", doc.context),
            "https://openvex.dev/ns/v0.2.0 (or another OpenVEX version)",
        ));
    }
    let doc_time = doc.last_updated.or(doc.timestamp);
    let mut statements = Vec::new();
    let mut skipped = Vec::new();
    for (i, st) in doc.statements.iter().enumerate() {
        let at = format!("statements[{i}]");
        let (vulnerability, aliases) = match &st.vulnerability {
            Vulnerability::Name(n) => (n.clone(), Vec::new()),
            Vulnerability::Object { id, name, aliases } => {
                let mut a = aliases.clone();
                a.extend(id.clone().filter(|i| i != name));
                (name.clone(), a)
            }
        };
        let state = match st.status {
            Status::NotAffected => State::NotAffected,
            Status::Affected => State::Affected,
            Status::Fixed => State::Fixed,
            Status::UnderInvestigation => State::UnderInvestigation,
        };
        let mut subs = Vec::new();
        for (j, p) in st.subcomponents.iter().enumerate() {
            match scope(p) {
                Ok(s) => subs.push(s),
                Err(reason) => skipped.push(Skipped {
                    at: format!("{at}.subcomponents[{j}]"),
                    reason,
                }),
            }
        }
        if st.products.is_empty() {
            skipped.push(Skipped {
                at: at.clone(),
                reason: "no products".into(),
            });
        }
        for (j, p) in st.products.iter().enumerate() {
            let product = match scope(p) {
                Ok(s) => s,
                Err(reason) => {
                    skipped.push(Skipped {
                        at: format!("{at}.products[{j}]"),
                        reason,
                    });
                    continue;
                }
            };
            let mut subcomponents = subs.clone();
            if let Product::Object(o) = p {
                for (k, sp) in o.subcomponents.iter().enumerate() {
                    match scope(sp) {
                        Ok(s) => subcomponents.push(s),
                        Err(reason) => skipped.push(Skipped {
                            at: format!("{at}.products[{j}].subcomponents[{k}]"),
                            reason,
                        }),
                    }
                }
            }
            let s = Statement {
                vulnerability: vulnerability.clone(),
                aliases: aliases.clone(),
                product,
                subcomponents,
                state,
                justification: st.justification,
                detail: st
                    .impact_statement
                    .clone()
                    .or_else(|| st.status_notes.clone()),
                action: st.action_statement.clone(),
                timestamp: st.last_updated.or(st.timestamp).or(doc_time),
                author: doc.author.clone(),
                format: Format::OpenVex,
                document: doc.id.clone(),
            };
            s.check(document, &format!("{at}.justification"))?;
            statements.push(s);
        }
    }
    Ok(Document {
        format: Format::OpenVex,
        id: doc.id,
        author: doc.author,
        timestamp: doc_time,
        statements,
        skipped,
    })
}
