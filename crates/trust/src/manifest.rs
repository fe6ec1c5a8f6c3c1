//! The package manifest (DESIGN.md §5) and the target rules that read it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use fieldkit_mcuboot::ImageVersion;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrustError};
use crate::finding::Finding;
use crate::package::Limits;
use crate::rules;

/// The manifest format this crate reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// What kind of release a package is; security releases may bypass entitlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseClass {
    /// Fixes a vulnerability.
    Security,
    /// Adds features.
    Feature,
    /// Bug fixes and upkeep.
    Maintenance,
}

/// How a payload is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// An MCUboot image (SMP devices); its header version and signature are checked.
    Mcuboot,
    /// Opaque bytes (line/YMODEM devices); only size and hash are checked.
    Raw,
}

/// Size and SHA-256 of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MemberDigest {
    /// Bytes.
    #[serde(default)]
    pub size: u64,
    /// Hex SHA-256.
    #[serde(default)]
    pub sha256: String,
}

/// One firmware payload of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Component name, as in the device profile (`app`, `netcore`).
    pub component: String,
    /// MCUboot image number.
    #[serde(default)]
    pub image: u32,
    /// Version; must equal the MCUboot header's for `mcuboot` payloads.
    pub version: ImageVersion,
    /// Layout.
    pub format: PayloadFormat,
    /// Member file name, stored as `payloads/<file>`; letters, digits, `.`, `_`, `-`.
    pub file: String,
    /// Trust-root role whose keys verify the MCUboot signature (the profile's `image_key`).
    #[serde(default = "default_image_key")]
    pub image_key: String,
    /// Bytes (filled by the builder).
    #[serde(default)]
    pub size: u64,
    /// Hex SHA-256 of the member (filled by the builder).
    #[serde(default)]
    pub sha256: String,
    /// Hex MCUboot image hash, what the device reports for the slot (filled by the builder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_hash: Option<String>,
}

fn default_image_key() -> String {
    "release".into()
}

/// What the device must be for the package to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Hardware revisions the package supports; empty means any.
    #[serde(default)]
    pub hardware_revisions: Vec<String>,
    /// Bootloader version range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<semver::VersionReq>,
    /// Installed version range of each named component (the payload's own component: the
    /// versions it may be installed over; others: inter-component dependencies).
    #[serde(default)]
    pub components: BTreeMap<String, semver::VersionReq>,
    /// Safety conditions this release needs on top of the device profile's (e.g. a larger
    /// battery reserve for a long flash), read live from the device like the profile's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preconditions: Vec<PackagePrecondition>,
}

/// A safety condition a package declares: an identity field compared with a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagePrecondition {
    /// The identity field (`battery_percent`, `therapy_running`, ...).
    pub field: String,
    /// The comparison: `==`, `!=`, `>=`, `<=`, `>` or `<`.
    pub op: String,
    /// The value compared with: a boolean, an integer or a string.
    pub value: PreconditionLiteral,
    /// Why it matters, in words a technician understands.
    pub explanation: String,
}

/// The value of a [`PackagePrecondition`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PreconditionLiteral {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
}

/// The comparisons a precondition may use.
pub const PRECONDITION_OPS: [&str; 6] = ["==", "!=", ">=", "<=", ">", "<"];

/// The signed description of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Product: the device profile id.
    pub product: String,
    /// Package version.
    pub version: semver::Version,
    /// Signed release date (the maintenance fallback of entitlements compares it).
    pub release_date: NaiveDate,
    /// Release class.
    pub class: ReleaseClass,
    /// Security counter of the release (rollback protection).
    pub security_counter: u32,
    /// The metadata is not trusted after this instant (freeze protection).
    pub expires: DateTime<Utc>,
    /// Entitlement feature code needed to install, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement_feature: Option<String>,
    /// Target requirements.
    #[serde(default)]
    pub requires: Requirements,
    /// The SBOM member's digest (filled by the builder).
    #[serde(default)]
    pub sbom: MemberDigest,
    /// Payloads, in member order.
    pub payloads: Vec<Payload>,
}

fn invalid(found: impl Into<String>, required: impl Into<String>) -> TrustError {
    TrustError::refused(
        rules::MANIFEST_FORMAT,
        found,
        required,
        "The package manifest is not valid.",
    )
}

/// Whether `name` is acceptable as a payload file name: no path, no traversal.
pub fn valid_file_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Manifest {
    /// The package id recall lists name: `product@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.product, self.version)
    }

    /// Checks everything about the manifest that does not need the other members.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        if self.format != MANIFEST_FORMAT {
            return Err(invalid(
                format!("format {}", self.format),
                format!("format {MANIFEST_FORMAT}"),
            ));
        }
        if self.product.is_empty() {
            return Err(invalid("an empty product", "a profile id"));
        }
        if self.payloads.is_empty() || self.payloads.len() > limits.payloads {
            return Err(invalid(
                format!("{} payloads", self.payloads.len()),
                format!("1 to {} payloads", limits.payloads),
            ));
        }
        if self.sbom.size > limits.sbom || !is_sha256_hex(&self.sbom.sha256) {
            return Err(invalid(
                format!(
                    "sbom {} bytes, sha256 {:?}",
                    self.sbom.size, self.sbom.sha256
                ),
                format!("at most {} bytes and a lowercase hex SHA-256", limits.sbom),
            ));
        }
        for p in &self.requires.preconditions {
            if !PRECONDITION_OPS.contains(&p.op.as_str()) || p.field.is_empty() {
                return Err(invalid(
                    format!("precondition {:?} {:?}", p.field, p.op),
                    format!(
                        "an identity field and one of {}",
                        PRECONDITION_OPS.join(" ")
                    ),
                ));
            }
        }
        let mut files = BTreeSet::new();
        let mut components = BTreeSet::new();
        for p in &self.payloads {
            if !valid_file_name(&p.file) {
                return Err(invalid(
                    format!("payload file {:?}", p.file),
                    "1-64 letters, digits, '.', '_' or '-', not '.' or '..'",
                ));
            }
            if !files.insert(&p.file) || !components.insert(&p.component) {
                return Err(invalid(
                    format!("payload {} / {} listed twice", p.component, p.file),
                    "each component and file once",
                ));
            }
            if p.size > limits.payload || !is_sha256_hex(&p.sha256) {
                return Err(invalid(
                    format!("payload {} {} bytes, sha256 {:?}", p.file, p.size, p.sha256),
                    format!(
                        "at most {} bytes and a lowercase hex SHA-256",
                        limits.payload
                    ),
                ));
            }
            if p.image_hash.as_deref().is_some_and(|h| !is_sha256_hex(h)) {
                return Err(invalid(
                    format!("image_hash {:?}", p.image_hash),
                    "lowercase hex SHA-256",
                ));
            }
        }
        Ok(())
    }

    /// The metadata has not expired at `now`.
    pub fn check_expiry(&self, now: DateTime<Utc>) -> Finding {
        Finding::check(
            now < self.expires,
            rules::MANIFEST_EXPIRY,
            now.to_rfc3339(),
            format!("before {}", self.expires.to_rfc3339()),
            "The package's signed metadata must not have expired; an expired package may hide a newer fix (freeze attack).",
        )
    }

    /// The package is for `product`.
    pub fn check_product(&self, product: &str) -> Finding {
        Finding::check(
            self.product == product,
            rules::PRODUCT,
            product,
            self.product.clone(),
            "The package must be built for this device model.",
        )
    }

    /// The package supports hardware revision `revision`.
    pub fn check_hardware(&self, revision: &str) -> Finding {
        let list = &self.requires.hardware_revisions;
        Finding::check(
            list.is_empty() || list.iter().any(|r| r == revision),
            rules::HARDWARE,
            revision,
            if list.is_empty() {
                "any".to_owned()
            } else {
                list.join(" or ")
            },
            "The package must support the device's hardware revision.",
        )
    }

    /// The package does not lower the installed version.
    pub fn check_not_older(&self, installed: &semver::Version) -> Finding {
        Finding::check(
            self.version >= *installed,
            rules::DOWNGRADE,
            self.version.to_string(),
            format!("{installed} or later"),
            "Installing an older version than the one running is a rollback and is refused.",
        )
    }

    /// The package does not lower the device's security counter.
    pub fn check_security_counter(&self, installed: u32) -> Finding {
        Finding::check(
            self.security_counter >= installed,
            rules::SECURITY_COUNTER,
            self.security_counter.to_string(),
            format!("{installed} or more"),
            "A package with a lower security counter than the device's would reintroduce fixed vulnerabilities.",
        )
    }
}
