//! The hub's trust root, and the trust material imported under it.
//!
//! The hub is given its trust root the way a laptop is: its operator pins the manufacturer's
//! first root explicitly (`fieldkit-hub trust pin --db URL ROOT.json`, after comparing its key
//! ids with the manufacturer's), and from then on a new root is accepted only as a rotation the
//! current one signs (version + 1, a threshold of the old and of the new root keys). Every root
//! is kept as the exact bytes given, and the chain is re-verified from the pinned first root
//! whenever the hub loads it, so a row edited in the database breaks the chain rather than
//! swapping keys silently. Answers hold what was loaded until an import changes the material
//! (`answers::ContextCache`): the chain is verified again at every import and every start, so
//! an edit made behind the tables' triggers is found then, not at the next answer. Releases,
//! entitlements and recall lists are verified against the current root at import;
//! entitlements and the recall list are re-read from their verified form when the material is
//! loaded.

use std::collections::BTreeMap;

use fieldkit_trust::{Entitlement, KeyId, RecallList, TrustError, TrustRoot};
use serde::Serialize;

use super::store::{EntitlementRow, GrantRow, PostmarketStore};
use crate::store::StoreError;

/// Why a post-market operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostmarketError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No trust root is pinned yet.
    #[error(
        "this hub has no trust root: pin the manufacturer's with `fieldkit-hub trust pin --db URL ROOT.json` (required before releases, entitlements or recall lists are imported)"
    )]
    NoRoot,
    /// A trust rule refused the input.
    #[error("{what}: {source}")]
    Trust {
        /// What was being verified.
        what: String,
        /// The refusal.
        source: TrustError,
    },
    /// The stored trust roots no longer form a chain.
    #[error("the hub's stored trust root version {version} does not verify: {source}")]
    BrokenChain {
        /// The version.
        version: u64,
        /// Why.
        source: TrustError,
    },
    /// An input broke a rule of the hub's own.
    #[error("{what}: {rule}: found {found}, required {required}")]
    Refused {
        /// What was refused.
        what: String,
        /// The rule.
        rule: &'static str,
        /// The value found.
        found: String,
        /// The value required.
        required: String,
    },
    /// An advisory, VEX or SBOM document was refused.
    #[error(transparent)]
    Vuln(#[from] fieldkit_vuln::VulnError),
}

impl PostmarketError {
    /// A refusal by one of the hub's post-market rules.
    pub fn refused(
        what: impl Into<String>,
        rule: &'static str,
        found: impl Into<String>,
        required: impl Into<String>,
    ) -> Self {
        PostmarketError::Refused {
            what: what.into(),
            rule,
            found: found.into(),
            required: required.into(),
        }
    }
}

/// The current trust root: the pinned first one, rotated through every later one held.
pub async fn root(store: &dyn PostmarketStore) -> Result<TrustRoot, PostmarketError> {
    let roots = store.trust_roots().await?;
    let mut chain = roots.iter();
    let Some((v, first)) = chain.next() else {
        return Err(PostmarketError::NoRoot);
    };
    let mut root =
        TrustRoot::load_pinned(first).map_err(|source| PostmarketError::BrokenChain {
            version: *v,
            source,
        })?;
    for (v, bytes) in chain {
        root = root
            .rotate(bytes)
            .map_err(|source| PostmarketError::BrokenChain {
                version: *v,
                source,
            })?;
    }
    Ok(root)
}

/// What pinning did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Pinned {
    /// The first root was pinned.
    Pinned {
        /// Its version.
        version: u64,
    },
    /// A rotation to this version was accepted.
    Rotated {
        /// The new version.
        version: u64,
    },
    /// The root given is the current one.
    Unchanged {
        /// Its version.
        version: u64,
    },
}

/// Pins `bytes` as the hub's first trust root, or accepts them as the next rotation.
pub async fn pin(store: &dyn PostmarketStore, bytes: &[u8]) -> Result<Pinned, PostmarketError> {
    let what = |source| PostmarketError::Trust {
        what: "trust root".into(),
        source,
    };
    match root(store).await {
        Err(PostmarketError::NoRoot) => {
            let first = TrustRoot::load_pinned(bytes).map_err(what)?;
            store.add_trust_root(first.version(), bytes).await?;
            Ok(Pinned::Pinned {
                version: first.version(),
            })
        }
        Err(e) => Err(e),
        Ok(current) if current.as_bytes() == bytes => Ok(Pinned::Unchanged {
            version: current.version(),
        }),
        Ok(current) => {
            let next = current.rotate(bytes).map_err(what)?;
            store.add_trust_root(next.version(), bytes).await?;
            Ok(Pinned::Rotated {
                version: next.version(),
            })
        }
    }
}

/// A root as the operator sees it before and after pinning: its version, expiry, policy and
/// each role's key ids, to compare with what the manufacturer published.
#[derive(Debug, Clone, Serialize)]
pub struct RootSummary {
    /// Version.
    pub version: u64,
    /// Expiry (RFC 3339).
    pub expires: String,
    /// Security releases install without an entitlement.
    pub security_updates_without_entitlement: bool,
    /// Role -> (threshold, key ids).
    pub roles: BTreeMap<String, (u32, Vec<KeyId>)>,
}

impl RootSummary {
    /// The summary of a root.
    pub fn of(root: &TrustRoot) -> Self {
        let meta = root.metadata();
        RootSummary {
            version: root.version(),
            expires: meta.expires.to_rfc3339(),
            security_updates_without_entitlement: root
                .policy()
                .security_updates_without_entitlement,
            roles: meta
                .roles
                .iter()
                .map(|(name, r)| (name.clone(), (r.threshold, r.keyids.clone())))
                .collect(),
        }
    }
}

/// The trust material the answers decide with.
#[derive(Debug, Clone)]
pub struct Material {
    /// The current root.
    pub root: TrustRoot,
    /// The newest recall list, if one was imported.
    pub recall: Option<RecallList>,
    /// The newest generation of every entitlement.
    pub entitlements: Vec<Entitlement>,
    /// The highest generation of each entitlement id.
    pub generations: BTreeMap<String, u32>,
}

/// Loads the current root, the newest recall list and the newest generation of each
/// entitlement (as verified at import).
pub async fn material(store: &dyn PostmarketStore) -> Result<Material, PostmarketError> {
    let root = root(store).await?;
    let recall = match store.latest_recall().await? {
        Some((_, bytes)) => Some(RecallList::open(&bytes, &root, None).map_err(|source| {
            PostmarketError::Trust {
                what: "the hub's recall list".into(),
                source,
            }
        })?),
        None => None,
    };
    let entitlements = newest_generations(&store.entitlements().await?)?;
    let generations = entitlements
        .iter()
        .map(|e| (e.id.clone(), e.generation))
        .collect();
    Ok(Material {
        root,
        recall,
        entitlements,
        generations,
    })
}

/// The newest generation of every entitlement id.
pub fn newest_generations(rows: &[EntitlementRow]) -> Result<Vec<Entitlement>, PostmarketError> {
    let mut by: BTreeMap<&str, &EntitlementRow> = BTreeMap::new();
    for r in rows {
        match by.get(r.id.as_str()) {
            Some(held) if held.generation >= r.generation => {}
            _ => {
                by.insert(&r.id, r);
            }
        }
    }
    by.into_values()
        .map(|r| {
            serde_json::from_str(&r.opened).map_err(|e| {
                PostmarketError::Store(StoreError::Corrupt(format!(
                    "entitlement {} generation {}: {e}",
                    r.id, r.generation
                )))
            })
        })
        .collect()
}

/// Which customer each serial belongs to and which entitlements name it: from the newest
/// generation of every entitlement, the newest issued naming a serial giving its customer.
/// Wildcard grants (`*`) name no serial.
pub fn grants(entitlements: &[Entitlement]) -> Vec<GrantRow> {
    let mut by: BTreeMap<&str, (chrono::DateTime<chrono::Utc>, &str, Vec<&str>)> = BTreeMap::new();
    for e in entitlements {
        for d in &e.devices {
            for s in d.serials.iter().filter(|s| *s != "*") {
                let entry =
                    by.entry(s.as_str())
                        .or_insert((e.issued, e.customer.as_str(), Vec::new()));
                if e.issued > entry.0 {
                    entry.0 = e.issued;
                    entry.1 = &e.customer;
                }
                if !entry.2.contains(&e.id.as_str()) {
                    entry.2.push(&e.id);
                }
            }
        }
    }
    by.into_iter()
        .map(|(serial, (_, customer, mut ids))| {
            ids.sort_unstable();
            GrantRow {
                serial: serial.to_owned(),
                customer: customer.to_owned(),
                grants: ids.join(","),
            }
        })
        .collect()
}
