//! Stable rule identifiers, the `rule` of every [`crate::Finding`] this crate produces.
//!
//! One place for each name, so the planner, the CLI, the app and the audit log can match on
//! them without repeating strings.

/// Reading the input failed.
pub const IO: &str = "io";
/// A key file is not an ed25519 PKCS#8 or SPKI PEM.
pub const KEY_FORMAT: &str = "key.format";
/// A signed document is not well-formed JSON of the expected shape.
pub const FORMAT: &str = "format";
/// A trust root is malformed (roles, thresholds, key ids).
pub const ROOT_FORMAT: &str = "root.format";
/// Not enough valid signatures by a role's keys.
pub const SIGNATURE_THRESHOLD: &str = "signature.threshold";
/// A new trust root's version is not exactly the old one plus one.
pub const ROOT_VERSION: &str = "root.version";
/// The trust root has expired.
pub const ROOT_EXPIRY: &str = "root.expiry";
/// A package's tar structure is wrong (member order, names, headers, padding, trailing data).
pub const PACKAGE_STRUCTURE: &str = "package.structure";
/// A file named as a package is not one (wrong kind of file, size or first bytes).
pub const NOT_A_PACKAGE: &str = "package.not_a_package";
/// A package member is larger than allowed.
pub const PACKAGE_SIZE: &str = "package.size";
/// A package member's bytes do not match the manifest's hash or size.
pub const PACKAGE_DIGEST: &str = "package.digest";
/// The manifest is not valid for this format.
pub const MANIFEST_FORMAT: &str = "manifest.format";
/// The manifest's metadata has expired.
pub const MANIFEST_EXPIRY: &str = "manifest.expiry";
/// The SBOM is not a valid CycloneDX 1.5/1.6 JSON document.
pub const SBOM: &str = "package.sbom";
/// A component of the SBOM has a licence the release licence policy denies.
pub const LICENCE: &str = "package.licence";
/// A payload's MCUboot image is malformed or does not verify.
pub const PAYLOAD_IMAGE: &str = "payload.image";
/// A payload's version differs from its MCUboot header's.
pub const PAYLOAD_VERSION: &str = "payload.version";
/// The package is for another product.
pub const PRODUCT: &str = "target.product";
/// The package is for another hardware revision.
pub const HARDWARE: &str = "target.hardware";
/// The package would lower the installed version.
pub const DOWNGRADE: &str = "target.downgrade";
/// The package would lower the security counter.
pub const SECURITY_COUNTER: &str = "target.security_counter";
/// The package is recalled or below a recall list's minimum.
pub const RECALL: &str = "recall.package";
/// A recall list is older than one already seen.
pub const RECALL_VERSION: &str = "recall.version";
/// The recall list has expired: a freeze, nothing is installed until a current list arrives.
pub const RECALL_EXPIRY: &str = "recall.expiry";
/// The trust root's policy requires a current recall list and none is loaded.
pub const RECALL_REQUIRED: &str = "recall.required";
/// An entitlement is missing, malformed or signed by the wrong key.
pub const ENTITLEMENT: &str = "entitlement.present";
/// The entitlement envelope's signature or key is wrong.
pub const ENTITLEMENT_SIGNATURE: &str = "entitlement.signature";
/// The entitlement does not cover this device.
pub const ENTITLEMENT_DEVICE: &str = "entitlement.device";
/// The entitlement belongs to another customer.
pub const ENTITLEMENT_CUSTOMER: &str = "entitlement.customer";
/// The entitlement is not for the site of this visit (or the visit has no site).
pub const ENTITLEMENT_SITE: &str = "entitlement.site";
/// A newer generation of the entitlement replaces this one.
pub const ENTITLEMENT_GENERATION: &str = "entitlement.generation";
/// The entitlement lacks the package's feature.
pub const ENTITLEMENT_FEATURE: &str = "entitlement.feature";
/// The contract window (or maintenance fallback) does not cover the update.
pub const ENTITLEMENT_WINDOW: &str = "entitlement.window";
/// The entitlement is revoked by a recall list.
pub const ENTITLEMENT_REVOKED: &str = "entitlement.revoked";
/// The system clock is behind the trusted high-water mark by more than allowed.
pub const CLOCK: &str = "time.clock";
