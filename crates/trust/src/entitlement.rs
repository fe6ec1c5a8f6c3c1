//! Entitlements (after Keygen licence files) and their evaluation.
//!
//! The file is an envelope `{alg, kid, enc, sig}`: `enc` is the base64 of the entitlement's
//! JSON, `sig` the base64 ed25519 signature over `"entitlement/" + enc` by a key of the trust
//! root's `entitlement` role. Signing the encoded text rather than parsed JSON means the bytes
//! verified are the bytes decoded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrustError};
use crate::finding::{Decision, Finding};
use crate::keys::KeyId;
use crate::manifest::{Manifest, ReleaseClass};
use crate::recall::RecallList;
use crate::root::TrustRoot;
use crate::rules;
use crate::signed;

/// Domain prefix of entitlement signatures.
pub const ENTITLEMENT_DOMAIN: &str = "entitlement";

/// Devices of one model an entitlement covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGrant {
    /// Model (profile id).
    pub model: String,
    /// Serial numbers; `["*"]` covers every device of the model.
    pub serials: Vec<String>,
}

/// What a customer has paid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    /// Unique id (recall lists revoke by it).
    pub id: String,
    /// Customer name.
    pub customer: String,
    /// Sites.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Devices covered.
    pub devices: Vec<DeviceGrant>,
    /// Feature codes.
    pub features: Vec<String>,
    /// First day of the contract (inclusive).
    pub valid_from: NaiveDate,
    /// Last day of the contract (inclusive).
    pub valid_until: NaiveDate,
    /// Releases dated on or before this day stay installable after the contract ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_through: Option<NaiveDate>,
    /// When it was issued.
    pub issued: DateTime<Utc>,
    /// Generation, raised on each reissue.
    #[serde(default)]
    pub generation: u32,
}

/// The file form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// `ed25519`.
    pub alg: String,
    /// Signing key id.
    pub kid: KeyId,
    /// Base64 of the entitlement JSON.
    pub enc: String,
    /// Base64 signature over `"entitlement/" + enc`.
    pub sig: String,
}

fn refused(
    rule: &str,
    found: impl Into<String>,
    required: impl Into<String>,
    why: &str,
) -> TrustError {
    TrustError::refused(rule, found, required, why)
}

impl Entitlement {
    /// Signs the entitlement into its file form.
    pub fn issue(&self, key: &SigningKey) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let enc = B64.encode(json);
        let s = signed::sign(key, ENTITLEMENT_DOMAIN, enc.as_bytes());
        let env = Envelope {
            alg: "ed25519".into(),
            kid: s.keyid,
            enc,
            sig: s.sig,
        };
        let mut out = serde_json::to_vec_pretty(&env).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads an entitlement file without checking its signature (for `inspect`).
    pub fn inspect(bytes: &[u8]) -> Result<(Envelope, Entitlement)> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| {
            refused(
                rules::ENTITLEMENT,
                e.to_string(),
                "an envelope {alg, kid, enc, sig}",
                "The entitlement file is not well formed.",
            )
        })?;
        let json = B64.decode(&env.enc).map_err(|e| {
            refused(
                rules::ENTITLEMENT,
                e.to_string(),
                "base64 in enc",
                "The entitlement file is not well formed.",
            )
        })?;
        let ent = serde_json::from_slice(&json).map_err(|e| {
            refused(
                rules::ENTITLEMENT,
                e.to_string(),
                "a valid entitlement",
                "The entitlement file is not well formed.",
            )
        })?;
        Ok((env, ent))
    }

    /// Reads an entitlement file and checks it is signed by a key of the root's `entitlement`
    /// role.
    pub fn open(bytes: &[u8], root: &TrustRoot) -> Result<Entitlement> {
        let (env, ent) = Self::inspect(bytes)?;
        if env.alg != "ed25519" {
            return Err(refused(
                rules::ENTITLEMENT_SIGNATURE,
                env.alg,
                "ed25519",
                "The entitlement uses a signature algorithm fieldkit does not accept.",
            ));
        }
        let keys = root.role_keys("entitlement").unwrap_or_default();
        let Some((_, key)) = keys.iter().find(|(id, _)| *id == env.kid) else {
            return Err(refused(
                rules::ENTITLEMENT_SIGNATURE,
                format!("key {}", env.kid),
                "a key of the trust root's entitlement role",
                "The entitlement was not issued by the manufacturer's entitlement key.",
            ));
        };
        if !signed::verify_one(key, ENTITLEMENT_DOMAIN, env.enc.as_bytes(), &env.sig) {
            return Err(refused(
                rules::ENTITLEMENT_SIGNATURE,
                "a signature that does not verify",
                format!("a valid signature by {}", env.kid),
                "The entitlement was altered after it was issued.",
            ));
        }
        Ok(ent)
    }

    /// Where trusted "now" falls in the contract.
    pub fn contract_at(&self, now: DateTime<Utc>) -> ContractState {
        let today = now.date_naive();
        if today < self.valid_from {
            ContractState::NotYetValid
        } else if today > self.valid_until {
            ContractState::Ended
        } else {
            ContractState::InForce
        }
    }

    fn covers(&self, model: &str, serial: &str) -> bool {
        self.devices
            .iter()
            .any(|d| d.model == model && d.serials.iter().any(|s| s == "*" || s == serial))
    }
}

/// Where a day falls in an entitlement's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContractState {
    /// Before `valid_from`.
    NotYetValid,
    /// Within `valid_from..=valid_until`.
    InForce,
    /// After `valid_until` (releases up to `maintenance_through` may still be installable).
    Ended,
}

/// What is being asked: may this device install this package now?
#[derive(Debug, Clone)]
pub struct EntitlementRequest<'a> {
    /// Device model (profile id).
    pub model: &'a str,
    /// Device serial number.
    pub serial: &'a str,
    /// The customer the technician is serving, if the technician said.
    pub customer: Option<&'a str>,
    /// The site of the visit, if the technician said.
    pub site: Option<&'a str>,
    /// The highest generation seen so far of each entitlement id (remembered between runs).
    pub generations: &'a std::collections::BTreeMap<String, u32>,
    /// The package's manifest.
    pub manifest: &'a Manifest,
    /// Trusted "now".
    pub now: DateTime<Utc>,
}

fn evaluate_one(
    e: &Entitlement,
    req: &EntitlementRequest<'_>,
    feature: &str,
    recall: Option<&RecallList>,
    newest: u32,
) -> Vec<Finding> {
    let mut f = Vec::new();
    let revoked = recall.is_some_and(|r| r.entitlements.contains(&e.id));
    f.push(Finding::check(
        !revoked,
        rules::ENTITLEMENT_REVOKED,
        if revoked {
            format!("{} revoked", e.id)
        } else {
            format!("{} not revoked", e.id)
        },
        "not revoked by the recall list",
        "The entitlement must not have been revoked by the manufacturer.",
    ));
    f.push(Finding::check(
        e.generation >= newest,
        rules::ENTITLEMENT_GENERATION,
        format!("{} generation {}", e.id, e.generation),
        format!("generation {newest} or later"),
        "A newer generation of this entitlement replaces this one.",
    ));
    // The visit's customer and site are part of the scope: when the technician has not said
    // which, the rule fails and says so rather than being skipped.
    f.push(match req.customer {
        Some(customer) => Finding::check(
            e.customer == customer,
            rules::ENTITLEMENT_CUSTOMER,
            format!("entitlement for {}", e.customer),
            format!("the customer of this visit, {customer}"),
            "The entitlement must belong to the customer being served.",
        ),
        None => Finding::fail(
            rules::ENTITLEMENT_CUSTOMER,
            "no customer set for this visit",
            format!("the customer of this visit ({} for this entitlement)", e.customer),
            "Say which customer this visit is for (settings) before installing an entitled release.",
        ),
    });
    if !e.sites.is_empty() {
        f.push(match req.site {
            Some(site) => Finding::check(
                e.sites.iter().any(|s| s == site),
                rules::ENTITLEMENT_SITE,
                format!("site {site}"),
                format!("one of {}", e.sites.join(", ")),
                "The entitlement covers only the sites it names.",
            ),
            None => Finding::fail(
                rules::ENTITLEMENT_SITE,
                "no site set for this visit",
                format!("one of {}", e.sites.join(", ")),
                "Say which site this visit is at (settings) before installing a release entitled for named sites.",
            ),
        });
    }
    f.push(Finding::check(
        e.covers(req.model, req.serial),
        rules::ENTITLEMENT_DEVICE,
        format!("{}:{}", req.model, req.serial),
        e.devices
            .iter()
            .map(|d| format!("{}:{}", d.model, d.serials.join(",")))
            .collect::<Vec<_>>()
            .join(" "),
        "The entitlement must cover this device's model and serial number.",
    ));
    f.push(Finding::check(
        e.features.iter().any(|x| x == feature),
        rules::ENTITLEMENT_FEATURE,
        e.features.join(", "),
        feature,
        "The entitlement must include the feature this package needs.",
    ));
    let today = req.now.date_naive();
    let in_contract = e.contract_at(req.now) == ContractState::InForce;
    let maintained = e
        .maintenance_through
        .is_some_and(|m| today >= e.valid_from && req.manifest.release_date <= m);
    f.push(Finding::check(
        in_contract || maintained,
        rules::ENTITLEMENT_WINDOW,
        format!("today {today}, release dated {}", req.manifest.release_date),
        match e.maintenance_through {
            Some(m) => format!(
                "today within {} to {}, or a release dated on or before {m}",
                e.valid_from, e.valid_until
            ),
            None => format!("today within {} to {}", e.valid_from, e.valid_until),
        },
        if in_contract {
            "The service contract is in force."
        } else if maintained {
            "The contract has ended, but this release is covered by the maintenance period."
        } else {
            "The service contract does not cover today, and no maintenance period covers this release."
        },
    ));
    f
}

/// Decides whether a device may install a package under the given entitlements (each already
/// opened with [`Entitlement::open`]), the trust root's policy and the current recall list.
pub fn evaluate(
    entitlements: &[Entitlement],
    req: &EntitlementRequest<'_>,
    root: &TrustRoot,
    recall: Option<&RecallList>,
) -> Decision {
    let refs: Vec<&Entitlement> = entitlements.iter().collect();
    evaluate_refs(&refs, req, root, recall)
}

/// [`evaluate`] over entitlements held elsewhere (the hub picks, out of a fleet's, the few that
/// name a device, without copying their serial lists).
pub fn evaluate_refs(
    entitlements: &[&Entitlement],
    req: &EntitlementRequest<'_>,
    root: &TrustRoot,
    recall: Option<&RecallList>,
) -> Decision {
    let mut d = Decision::default();
    let Some(feature) = req.manifest.entitlement_feature.as_deref() else {
        d.push(Finding::pass(
            rules::ENTITLEMENT,
            "no feature required",
            "none",
            "This package needs no entitlement.",
        ));
        return d;
    };
    if req.manifest.class == ReleaseClass::Security
        && root.policy().security_updates_without_entitlement
    {
        d.push(Finding::pass(
            rules::ENTITLEMENT,
            "security release",
            format!("feature {feature}, waived for security releases"),
            "Security releases install without an entitlement, as the manufacturer's policy requires.",
        ));
        return d;
    }
    // Prefer a fully passing entitlement; otherwise report the one that came closest.
    let newest = |id: &str| {
        entitlements
            .iter()
            .filter(|e| e.id == id)
            .map(|e| e.generation)
            .chain(req.generations.get(id).copied())
            .max()
            .unwrap_or(0)
    };
    let best = entitlements
        .iter()
        .map(|e| evaluate_one(e, req, feature, recall, newest(&e.id)))
        .min_by_key(|f| f.iter().filter(|x| !x.passed).count());
    match best {
        Some(findings) => d.findings = findings,
        None => d.push(Finding::fail(
            rules::ENTITLEMENT,
            "no entitlement",
            format!(
                "an entitlement with feature {feature} for {}:{}",
                req.model, req.serial
            ),
            "This package requires an entitlement and none was provided.",
        )),
    }
    d
}
