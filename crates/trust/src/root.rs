//! The trust root: keys, roles with thresholds, policy, and rotation (after TUF `root.json`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrustError};
use crate::finding::Finding;
use crate::keys::{KeyId, PublicKeyEntry};
use crate::rules;
use crate::signed::{self, Signature};

/// The domain prefix of root signatures.
pub const ROOT_DOMAIN: &str = "root";
/// The value of the `type` field.
pub const ROOT_TYPE: &str = "fieldkit-root";

/// The roles every trust root must define.
pub const REQUIRED_ROLES: [&str; 4] = ["root", "release", "entitlement", "recall"];

/// A role: the keys that may sign for it and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Ids of the role's keys (each listed in [`RootMetadata::keys`]).
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
}

/// Policy switches of the manufacturer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Security releases install without an entitlement (the default: regulators expect
    /// patches to reach every device).
    #[serde(default = "yes")]
    pub security_updates_without_entitlement: bool,
    /// Nothing is installed without a current recall list.
    #[serde(default)]
    pub require_recall_list: bool,
}

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            security_updates_without_entitlement: true,
            require_recall_list: false,
        }
    }
}

/// The signed content of a trust root.
///
/// Besides the four required roles, a root may define more: any role can be named by a device
/// profile component's `image_key` to say whose keys verify that component's MCUboot image
/// signatures (the default is `release`). Such a role's threshold is not used for images,
/// because MCUboot accepts an image signed by any one of its built-in keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootMetadata {
    /// Always [`ROOT_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Version, starting at 1; each rotation adds exactly 1.
    pub version: u64,
    /// After this instant the root is expired and nothing it vouches for is trusted.
    pub expires: DateTime<Utc>,
    /// All keys, by id.
    pub keys: BTreeMap<KeyId, PublicKeyEntry>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
    /// Policy.
    #[serde(default)]
    pub policy: Policy,
}

impl RootMetadata {
    /// An empty root of `version` expiring at `expires`; add roles with [`RootMetadata::set_role`].
    pub fn new(version: u64, expires: DateTime<Utc>) -> Self {
        Self {
            kind: ROOT_TYPE.into(),
            version,
            expires,
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            policy: Policy::default(),
        }
    }

    /// Sets role `name` to `keys` with `threshold`, adding the keys to the key list.
    pub fn set_role(&mut self, name: &str, keys: &[VerifyingKey], threshold: u32) {
        let keyids = keys
            .iter()
            .map(|k| {
                let id = KeyId::of(k);
                self.keys.insert(id.clone(), PublicKeyEntry::new(k));
                id
            })
            .collect();
        self.roles
            .insert(name.to_owned(), Role { keyids, threshold });
    }

    /// Signs the metadata with `keys` into a root file.
    pub fn sign(&self, keys: &[&SigningKey]) -> Vec<u8> {
        signed::seal(self, ROOT_DOMAIN, keys)
    }
}

/// A verified trust root.
#[derive(Debug, Clone)]
pub struct TrustRoot {
    meta: RootMetadata,
    keys: BTreeMap<KeyId, VerifyingKey>,
    bytes: Vec<u8>,
}

fn root_format(found: impl Into<String>, required: impl Into<String>) -> TrustError {
    TrustError::refused(
        rules::ROOT_FORMAT,
        found,
        required,
        "The trust root is malformed, so no key in it can be trusted.",
    )
}

impl TrustRoot {
    /// Reads and checks a root file's structure, without checking signatures.
    fn parse(bytes: &[u8]) -> Result<(TrustRoot, Vec<Signature>, String)> {
        let env = signed::open("trust root", bytes)?;
        let meta: RootMetadata = signed::parse_signed("trust root", env.signed)?;
        if meta.kind != ROOT_TYPE {
            return Err(root_format(meta.kind, ROOT_TYPE));
        }
        if meta.version == 0 {
            return Err(root_format("version 0", "version 1 or later"));
        }
        let mut keys = BTreeMap::new();
        for (id, entry) in &meta.keys {
            let key = entry.key()?;
            let actual = KeyId::of(&key);
            if &actual != id {
                return Err(root_format(
                    format!("key listed as {id}"),
                    format!("its id {actual} (hex SHA-256 of the public key)"),
                ));
            }
            keys.insert(id.clone(), key);
        }
        for required in REQUIRED_ROLES {
            if !meta.roles.contains_key(required) {
                return Err(root_format(
                    format!("roles {:?}", meta.roles.keys().collect::<Vec<_>>()),
                    format!("a {required} role"),
                ));
            }
        }
        for (name, role) in &meta.roles {
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_name {
                return Err(root_format(
                    format!("role {name:?}"),
                    "a role name of a-z, 0-9 and -",
                ));
            }
            if role.threshold == 0 || role.threshold as usize > role.keyids.len() {
                return Err(root_format(
                    format!(
                        "{name} threshold {} with {} key(s)",
                        role.threshold,
                        role.keyids.len()
                    ),
                    "a threshold from 1 to the number of keys",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for id in &role.keyids {
                if !keys.contains_key(id) || !seen.insert(id) {
                    return Err(root_format(
                        format!("{name} key {id}"),
                        "each key listed once and present in keys",
                    ));
                }
            }
        }
        let raw = env.signed.get().to_owned();
        Ok((
            TrustRoot {
                meta,
                keys,
                bytes: bytes.to_vec(),
            },
            env.signatures,
            raw,
        ))
    }

    /// Loads a pinned first root: it must be signed by a threshold of its own root keys.
    pub fn load_pinned(bytes: &[u8]) -> Result<TrustRoot> {
        let (root, sigs, raw) = Self::parse(bytes)?;
        root.verify_role("trust root", "root", ROOT_DOMAIN, raw.as_bytes(), &sigs)?;
        Ok(root)
    }

    /// Accepts `new` as the successor of this root: version exactly one more, signed by a
    /// threshold of this root's root keys and by a threshold of its own.
    pub fn rotate(&self, new: &[u8]) -> Result<TrustRoot> {
        let (next, sigs, raw) = Self::parse(new)?;
        let required = self.meta.version + 1;
        if next.meta.version != required {
            return Err(TrustError::refused(
                rules::ROOT_VERSION,
                next.meta.version.to_string(),
                required.to_string(),
                "A new trust root must have exactly the next version number; anything else is a replay or a skipped rotation.",
            ));
        }
        self.verify_role("new trust root", "root", ROOT_DOMAIN, raw.as_bytes(), &sigs)?;
        next.verify_role("new trust root", "root", ROOT_DOMAIN, raw.as_bytes(), &sigs)?;
        Ok(next)
    }

    /// The signed metadata.
    pub fn metadata(&self) -> &RootMetadata {
        &self.meta
    }

    /// The file this root was read from.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.meta.version
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.meta.policy
    }

    /// The keys of role `name` with their ids, or `None` if the root has no such role.
    pub fn role_keys(&self, name: &str) -> Option<Vec<(KeyId, VerifyingKey)>> {
        let role = self.meta.roles.get(name)?;
        Some(
            role.keyids
                .iter()
                .filter_map(|id| self.keys.get(id).map(|k| (id.clone(), *k)))
                .collect(),
        )
    }

    /// Requires a threshold of role `role`'s keys to have signed `bytes` in `domain`.
    pub fn verify_role(
        &self,
        what: &str,
        role: &str,
        domain: &str,
        bytes: &[u8],
        sigs: &[Signature],
    ) -> Result<Vec<KeyId>> {
        let Some(r) = self.meta.roles.get(role) else {
            return Err(root_format(
                format!("no {role} role"),
                format!("a {role} role"),
            ));
        };
        let keys = self.role_keys(role).unwrap_or_default();
        signed::verify_threshold(what, role, domain, bytes, sigs, &keys, r.threshold)
    }

    /// Whether the root is still valid at `now`.
    pub fn check_expiry(&self, now: DateTime<Utc>) -> Finding {
        Finding::check(
            now < self.meta.expires,
            rules::ROOT_EXPIRY,
            now.to_rfc3339(),
            format!("before {}", self.meta.expires.to_rfc3339()),
            "The trust root must not have expired; an expired root means this laptop missed a key rotation.",
        )
    }
}
