//! CSAF 2.0 (the VEX profile, and any CSAF 2.0 document with `product_status`).
//!
//! Products come from the product tree: `full_product_names`, products inside `branches`, and
//! `relationships` (a component `default_component_of` a product: the statement is about that
//! product, limited to that component). A product is identified by the purl of its
//! `product_identification_helper` and by its file hashes; a product under a
//! `product_version_range` branch whose name is a `vers:` range covers that range
//! (`vers:all/*` every version), under a `product_version` branch that version. A range
//! fieldkit cannot evaluate (a `vls` range, a `vers:` scheme it cannot order) skips the
//! products under it, with the reason, and the rest of the document is read. `product_status` gives the state
//! (`known_not_affected`; `known_affected`, `first_affected`, `last_affected`; `fixed`,
//! `first_fixed`; `under_investigation`), `flags` the justification, `threats` of category
//! `impact` the impact statement, `remediations` the action. The `csaf` crates were not used:
//! one pulls a JSON-schema validator and a spelling corrector into the build, the other
//! predates the current purl and CVSS crates and refuses document categories CSAF allows.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Document, Format, Justification, Scope, Skipped, State, Statement, Versions};
use crate::component::Hash;
use crate::error::{Result, VulnError};
use crate::limits::Limits;

#[derive(Deserialize)]
struct Csaf {
    document: CsafDocument,
    #[serde(default)]
    product_tree: Option<ProductTree>,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
}

#[derive(Deserialize)]
struct CsafDocument {
    #[allow(dead_code)] // Required by CSAF; any category may carry product_status.
    category: String,
    csaf_version: CsafVersion,
    publisher: Publisher,
    tracking: Tracking,
}

#[derive(Deserialize)]
enum CsafVersion {
    #[serde(rename = "2.0")]
    V20,
}

#[derive(Deserialize)]
struct Publisher {
    #[allow(dead_code)] // Validated as CSAF's enumeration; not otherwise used.
    category: PublisherCategory,
    name: String,
    namespace: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PublisherCategory {
    Coordinator,
    Discoverer,
    Other,
    Translator,
    User,
    Vendor,
}

#[derive(Deserialize)]
struct Tracking {
    id: String,
    current_release_date: DateTime<Utc>,
    #[allow(dead_code)] // Validated as CSAF's enumeration; not otherwise used.
    status: TrackingStatus,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TrackingStatus {
    Draft,
    Final,
    Interim,
}

#[derive(Deserialize, Default)]
struct ProductTree {
    #[serde(default)]
    branches: Vec<Branch>,
    #[serde(default)]
    full_product_names: Vec<FullProductName>,
    #[serde(default)]
    relationships: Vec<Relationship>,
    #[serde(default)]
    product_groups: Vec<ProductGroup>,
}

#[derive(Deserialize)]
struct Branch {
    category: BranchCategory,
    name: String,
    #[serde(default)]
    branches: Vec<Branch>,
    #[serde(default)]
    product: Option<FullProductName>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum BranchCategory {
    Architecture,
    HostName,
    Language,
    Legacy,
    PatchLevel,
    ProductFamily,
    ProductName,
    ProductVersion,
    ProductVersionRange,
    ServicePack,
    Specification,
    Vendor,
}

#[derive(Deserialize)]
struct FullProductName {
    product_id: String,
    #[serde(default)]
    product_identification_helper: Option<Helper>,
}

#[derive(Deserialize, Default)]
struct Helper {
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    hashes: Vec<FileHashes>,
}

#[derive(Deserialize)]
struct FileHashes {
    file_hashes: Vec<FileHash>,
}

#[derive(Deserialize)]
struct FileHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct Relationship {
    #[allow(dead_code)] // Validated as CSAF's enumeration; every category reads the same way.
    category: RelationshipCategory,
    full_product_name: FullProductName,
    product_reference: String,
    relates_to_product_reference: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RelationshipCategory {
    DefaultComponentOf,
    ExternalComponentOf,
    InstalledOn,
    InstalledWith,
    OptionalComponentOf,
}

#[derive(Deserialize)]
struct ProductGroup {
    group_id: String,
    product_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Vulnerability {
    #[serde(default)]
    cve: Option<String>,
    #[serde(default)]
    ids: Vec<VulnId>,
    #[serde(default)]
    product_status: Option<ProductStatus>,
    #[serde(default)]
    flags: Vec<Flag>,
    #[serde(default)]
    threats: Vec<Threat>,
    #[serde(default)]
    remediations: Vec<Remediation>,
}

#[derive(Deserialize)]
struct VulnId {
    text: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProductStatus {
    #[serde(default)]
    first_affected: Vec<String>,
    #[serde(default)]
    first_fixed: Vec<String>,
    #[serde(default)]
    fixed: Vec<String>,
    #[serde(default)]
    known_affected: Vec<String>,
    #[serde(default)]
    known_not_affected: Vec<String>,
    #[serde(default)]
    last_affected: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)] // A recommendation, not a state: read so the field is known.
    recommended: Vec<String>,
    #[serde(default)]
    under_investigation: Vec<String>,
}

#[derive(Deserialize)]
struct Flag {
    label: Justification,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Threat {
    category: ThreatCategory,
    details: String,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ThreatCategory {
    ExploitStatus,
    Impact,
    TargetSet,
}

#[derive(Deserialize)]
struct Remediation {
    category: RemediationCategory,
    details: String,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RemediationCategory {
    Mitigation,
    NoFixPlanned,
    NoneAvailable,
    VendorFix,
    Workaround,
}

/// What the product tree says about one product id.
struct Product {
    scope: Result<Scope, String>,
    /// For a relationship: the component the statement is limited to.
    component: Option<Result<Scope, String>>,
}

fn helper_scope(
    helper: Option<&Helper>,
    versions_from_branch: Option<Versions>,
) -> Result<Scope, String> {
    let helper = helper.ok_or("no product_identification_helper (purl or hashes)")?;
    let hashes: Vec<Hash> = helper
        .hashes
        .iter()
        .flat_map(|f| &f.file_hashes)
        .filter_map(|h| Hash::new(&h.algorithm, &h.value))
        .collect();
    match &helper.purl {
        Some(purl) => {
            let mut s = Scope::from_purl(purl)?;
            if let (Versions::Any, Some(v)) = (&s.versions, versions_from_branch) {
                s.versions = v;
            }
            s.hashes = hashes;
            Ok(s)
        }
        None if !hashes.is_empty() => Ok(Scope {
            package: None,
            versions: Versions::Any,
            hashes,
        }),
        None => Err("its product_identification_helper has neither a purl nor hashes".into()),
    }
}

/// The versions the branches above a product name: none yet, some, or a range fieldkit cannot
/// evaluate (a `vls` range, CSAF's older notation, or a `vers:` scheme without an ordering
/// here), which makes every product below it skipped, with the reason.
type Inherited = Option<std::result::Result<Versions, String>>;

fn walk(branches: &[Branch], at: &str, versions: Inherited, out: &mut HashMap<String, Product>) {
    for (i, b) in branches.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let versions = match b.category {
            BranchCategory::ProductVersion => Some(Ok(Versions::Exact(b.name.clone()))),
            BranchCategory::ProductVersionRange if b.name.starts_with("vers:") => {
                Some(Versions::from_vers(&b.name).map_err(|e| {
                    format!("{here}.name: fieldkit cannot evaluate the version range: {e}")
                }))
            }
            BranchCategory::ProductVersionRange => Some(Err(format!(
                "{here}.name: version range {:?} is not a vers: range",
                b.name
            ))),
            _ => versions.clone(),
        };
        if let Some(p) = &b.product {
            let scope = match &versions {
                Some(Err(reason)) => Err(reason.clone()),
                Some(Ok(v)) => {
                    helper_scope(p.product_identification_helper.as_ref(), Some(v.clone()))
                }
                None => helper_scope(p.product_identification_helper.as_ref(), None),
            };
            out.insert(
                p.product_id.clone(),
                Product {
                    scope,
                    component: None,
                },
            );
        }
        walk(&b.branches, &format!("{here}.branches"), versions, out);
    }
}

pub(super) fn parse(document: &str, bytes: &[u8], limits: &Limits) -> Result<Document> {
    let csaf: Csaf = crate::json::parse(document, bytes, limits)?;
    let CsafVersion::V20 = csaf.document.csaf_version;
    let author = format!(
        "{} ({})",
        csaf.document.publisher.name, csaf.document.publisher.namespace
    );
    let id = format!(
        "{} version {}",
        csaf.document.tracking.id, csaf.document.tracking.version
    );
    let timestamp = Some(csaf.document.tracking.current_release_date);
    let tree = csaf.product_tree.unwrap_or_default();
    let mut products = HashMap::new();
    walk(&tree.branches, "product_tree.branches", None, &mut products);
    for p in &tree.full_product_names {
        products.insert(
            p.product_id.clone(),
            Product {
                scope: helper_scope(p.product_identification_helper.as_ref(), None),
                component: None,
            },
        );
    }
    for r in &tree.relationships {
        let of = |id: &str| {
            products
                .get(id)
                .map(|p| p.scope.clone())
                .unwrap_or_else(|| Err(format!("product id {id:?} is not in the product tree")))
        };
        let p = Product {
            scope: of(&r.relates_to_product_reference),
            component: Some(of(&r.product_reference)),
        };
        products.insert(r.full_product_name.product_id.clone(), p);
    }
    let groups: BTreeMap<&str, &[String]> = tree
        .product_groups
        .iter()
        .map(|g| (g.group_id.as_str(), g.product_ids.as_slice()))
        .collect();
    let members = |products: &[String], group_ids: &[String]| -> Vec<String> {
        let mut out = products.to_vec();
        for g in group_ids {
            out.extend(
                groups
                    .get(g.as_str())
                    .into_iter()
                    .flat_map(|l| l.iter().cloned()),
            );
        }
        out
    };

    let mut statements = Vec::new();
    let mut skipped = Vec::new();
    for (i, v) in csaf.vulnerabilities.iter().enumerate() {
        let at = format!("vulnerabilities[{i}]");
        let mut ids: Vec<String> = v.cve.iter().cloned().collect();
        ids.extend(v.ids.iter().map(|i| i.text.clone()));
        let Some((vulnerability, aliases)) = ids.split_first() else {
            skipped.push(Skipped {
                at,
                reason: "neither cve nor ids: no vulnerability to speak of".into(),
            });
            continue;
        };
        let status = v.product_status.as_ref();
        let Some(status) = status else {
            skipped.push(Skipped {
                at: at.clone(),
                reason: "no product_status".into(),
            });
            continue;
        };
        let mut per_product: Vec<(String, State, &str)> = Vec::new();
        for (list, state, field) in [
            (
                &status.known_not_affected,
                State::NotAffected,
                "known_not_affected",
            ),
            (&status.known_affected, State::Affected, "known_affected"),
            (&status.first_affected, State::Affected, "first_affected"),
            (&status.last_affected, State::Affected, "last_affected"),
            (&status.fixed, State::Fixed, "fixed"),
            (&status.first_fixed, State::Fixed, "first_fixed"),
            (
                &status.under_investigation,
                State::UnderInvestigation,
                "under_investigation",
            ),
        ] {
            per_product.extend(list.iter().map(|p| (p.clone(), state, field)));
        }
        for (pid, state, field) in per_product {
            let pat = format!("{at}.product_status.{field}");
            let Some(product) = products.get(&pid) else {
                return Err(VulnError::refused(
                    document,
                    pat,
                    format!("product id {pid:?}"),
                    "a product id defined in the product tree",
                ));
            };
            let scope = match &product.scope {
                Ok(s) => s.clone(),
                Err(reason) => {
                    skipped.push(Skipped {
                        at: format!("{pat}: {pid}"),
                        reason: reason.clone(),
                    });
                    continue;
                }
            };
            let subcomponents = match &product.component {
                None => Vec::new(),
                Some(Ok(c)) => vec![c.clone()],
                Some(Err(reason)) => {
                    skipped.push(Skipped {
                        at: format!("{pat}: {pid}"),
                        reason: reason.clone(),
                    });
                    continue;
                }
            };
            let justification = v
                .flags
                .iter()
                .find(|f| members(&f.product_ids, &f.group_ids).contains(&pid))
                .map(|f| f.label);
            let detail = v
                .threats
                .iter()
                .find(|t| {
                    t.category == ThreatCategory::Impact
                        && members(&t.product_ids, &t.group_ids).contains(&pid)
                })
                .map(|t| t.details.clone());
            let actions: Vec<String> = v
                .remediations
                .iter()
                .filter(|r| members(&r.product_ids, &r.group_ids).contains(&pid))
                .map(|r| format!("{}: {}", remediation(r.category), r.details))
                .collect();
            let s = Statement {
                vulnerability: vulnerability.clone(),
                aliases: aliases.to_vec(),
                product: scope,
                subcomponents,
                state,
                justification,
                detail,
                action: (!actions.is_empty()).then(|| actions.join("; ")),
                timestamp,
                author: author.clone(),
                format: Format::Csaf,
                document: id.clone(),
            };
            s.check(document, &format!("{at}.flags (product {pid})"))?;
            statements.push(s);
        }
    }
    Ok(Document {
        format: Format::Csaf,
        id,
        author,
        timestamp,
        statements,
        skipped,
    })
}

fn remediation(c: RemediationCategory) -> &'static str {
    match c {
        RemediationCategory::Mitigation => "mitigation",
        RemediationCategory::NoFixPlanned => "no_fix_planned",
        RemediationCategory::NoneAvailable => "none_available",
        RemediationCategory::VendorFix => "vendor_fix",
        RemediationCategory::Workaround => "workaround",
    }
}
