//! Recall lists: recalled packages, revoked entitlements, minimum versions per product.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrustError};
use crate::finding::Finding;
use crate::manifest::Manifest;
use crate::root::TrustRoot;
use crate::rules;
use crate::signed;

/// Domain prefix of recall list signatures.
pub const RECALL_DOMAIN: &str = "recall";
/// The value of the `type` field.
pub const RECALL_TYPE: &str = "fieldkit-recall";

/// The lowest acceptable release of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Minimum {
    /// Lowest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<semver::Version>,
    /// Lowest security counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_counter: Option<u32>,
}

/// A recall list (the signed content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallList {
    /// Always [`RECALL_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Version; a lower version than already seen is refused.
    pub version: u64,
    /// When it was issued (a signed time for the trusted-time mark).
    pub issued: DateTime<Utc>,
    /// After this instant the list is stale: nothing is installed until a current one
    /// arrives (an old list could hide a recall: freeze protection).
    pub expires: DateTime<Utc>,
    /// Recalled package ids (`product@version`).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Revoked entitlement ids.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Minimums by product.
    #[serde(default)]
    pub minimums: BTreeMap<String, Minimum>,
}

impl RecallList {
    /// An empty list.
    pub fn new(version: u64, issued: DateTime<Utc>, expires: DateTime<Utc>) -> Self {
        Self {
            kind: RECALL_TYPE.into(),
            version,
            issued,
            expires,
            packages: Vec::new(),
            entitlements: Vec::new(),
            minimums: BTreeMap::new(),
        }
    }

    /// Signs the list into its file form.
    pub fn sign(&self, keys: &[&SigningKey]) -> Vec<u8> {
        signed::seal(self, RECALL_DOMAIN, keys)
    }

    /// Reads a recall list without checking signatures (for `inspect`).
    pub fn inspect(bytes: &[u8]) -> Result<RecallList> {
        let env = signed::open("recall list", bytes)?;
        signed::parse_signed("recall list", env.signed)
    }

    /// Reads a recall list signed by a threshold of the root's `recall` keys, refusing a
    /// version below `highest_seen` (a replayed older list). The same version is accepted
    /// again, so re-reading the current list works.
    pub fn open(bytes: &[u8], root: &TrustRoot, highest_seen: Option<u64>) -> Result<RecallList> {
        let env = signed::open("recall list", bytes)?;
        root.verify_role(
            "recall list",
            "recall",
            RECALL_DOMAIN,
            env.signed.get().as_bytes(),
            &env.signatures,
        )?;
        let list: RecallList = signed::parse_signed("recall list", env.signed)?;
        if list.kind != RECALL_TYPE {
            return Err(TrustError::refused(
                rules::FORMAT,
                list.kind,
                RECALL_TYPE,
                "The file is not a recall list.",
            ));
        }
        if let Some(seen) = highest_seen
            && list.version < seen
        {
            return Err(TrustError::refused(
                rules::RECALL_VERSION,
                list.version.to_string(),
                format!("{seen} or later"),
                "This recall list is older than one already seen; an older list could hide a recall (replay).",
            ));
        }
        Ok(list)
    }

    /// The list is current at `now`.
    pub fn check_expiry(&self, now: DateTime<Utc>) -> Finding {
        Finding::check(
            now < self.expires,
            rules::RECALL_EXPIRY,
            format!(
                "recall list version {} at {}",
                self.version,
                now.to_rfc3339()
            ),
            format!("before {}", self.expires.to_rfc3339()),
            "The recall list must be current: an expired list may miss a recall, so nothing is installed until the manufacturer's current list is imported.",
        )
    }

    /// The recall-list rule of the trust root's policy: a current list, when the policy asks
    /// for one. `list` is the newest list loaded, if any.
    pub fn check_present(list: Option<&RecallList>, root: &TrustRoot) -> Finding {
        match list {
            Some(l) => Finding::pass(
                rules::RECALL_REQUIRED,
                format!("recall list version {}", l.version),
                if root.policy().require_recall_list {
                    "a recall list (the trust root requires one)"
                } else {
                    "none required"
                },
                "A recall list is loaded.",
            ),
            None => Finding::check(
                !root.policy().require_recall_list,
                rules::RECALL_REQUIRED,
                "no recall list",
                if root.policy().require_recall_list {
                    "a current recall list (the trust root requires one)"
                } else {
                    "none required"
                },
                if root.policy().require_recall_list {
                    "The manufacturer requires a current recall list before anything is installed: import the latest one."
                } else {
                    "No recall list is loaded; the manufacturer's policy does not require one, so no release is known to be recalled."
                },
            ),
        }
    }

    /// Whether `manifest` is recalled or below a minimum: one finding.
    pub fn check_package(&self, manifest: &Manifest) -> Finding {
        let id = manifest.id();
        if self.packages.contains(&id) {
            return Finding::fail(
                rules::RECALL,
                format!("{id} recalled"),
                "a release not on the recall list",
                format!(
                    "The manufacturer recalled this release (recall list version {}).",
                    self.version
                ),
            );
        }
        if let Some(min) = self.minimums.get(&manifest.product) {
            if let Some(v) = &min.version
                && manifest.version < *v
            {
                return Finding::fail(
                    rules::RECALL,
                    manifest.version.to_string(),
                    format!("{v} or later"),
                    "The manufacturer no longer allows installing releases below this version.",
                );
            }
            if let Some(c) = min.security_counter
                && manifest.security_counter < c
            {
                return Finding::fail(
                    rules::RECALL,
                    format!("security counter {}", manifest.security_counter),
                    format!("{c} or more"),
                    "The manufacturer no longer allows installing releases below this security counter.",
                );
            }
        }
        Finding::pass(
            rules::RECALL,
            format!("{id} not recalled"),
            format!("not on recall list version {}", self.version),
            "The release is not recalled.",
        )
    }
}
