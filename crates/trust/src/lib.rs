//! Trust decisions for fieldkit: keys, the trust root, signed packages with their SBOM,
//! entitlements, recall lists and trusted time. Bytes in, values out.
//!
//! At a customer site, offline, the laptop must decide with certainty whether an update is
//! genuine, current, meant for this device and paid for. This crate makes each of those
//! decisions, and every one of them explains itself: a refusal is a [`TrustError`] carrying a
//! [`Finding`] (rule, found, required, a sentence for a technician), and an evaluation is a
//! [`Decision`], a list of findings. The planner, the CLI, the app and the audit log reuse
//! these types rather than rephrasing reasons.
//!
//! Design choices:
//! - **No IO.** Nothing here opens a file, reads a clock or draws randomness: callers pass
//!   bytes (or a `Read` for packages), "now", and an RNG. Hence everything is testable with
//!   fixed inputs and fuzzable.
//! - **Signatures over exact bytes, with a domain.** Every signature is ed25519 over
//!   `DOMAIN "/" BYTES` (see [`signed`]); the bytes are those in the file, never re-serialised
//!   JSON, so there is no canonicalisation to get wrong, and the domain stops a signature on
//!   one kind of document from being replayed as another.
//! - **Roles with thresholds** after TUF: `root`, `release`, `entitlement`, `recall`, plus any
//!   further role a device profile names as a component's `image_key` (whose keys verify the
//!   MCUboot image signatures). Rotation needs a threshold of the old and of the new root keys.
//! - **Packages are verified as they stream** ([`package`]): a strict tar reader that accepts
//!   only what the builder writes, metadata first, payloads hashed in one pass in a 64 KiB
//!   buffer. Any changed or appended byte is refused.
//! - **Time is a parameter**: [`TrustedTime`] turns the system clock and the high-water mark of
//!   signed times into a "now", or refuses when the clock was set back.
//!
//! Architecture invariant: `trust` does no IO and knows nothing of devices, links or the CLI;
//! MCUboot format knowledge lives in `fieldkit-mcuboot`.

mod entitlement;
mod error;
mod finding;
pub mod keys;
mod licences;
mod manifest;
pub mod package;
mod recall;
mod root;
pub mod rules;
mod sbom;
pub mod signed;
mod time;

pub use entitlement::{
    ContractState, DeviceGrant, ENTITLEMENT_DOMAIN, Entitlement, EntitlementRequest, Envelope,
    evaluate, evaluate_refs,
};
pub use error::{Result, TrustError};
pub use finding::{Decision, Finding};
pub use keys::KeyId;
pub use licences::{ComponentLicence, check_licences};
pub use manifest::{
    MANIFEST_FORMAT, Manifest, MemberDigest, PRECONDITION_OPS, PackagePrecondition, Payload,
    PayloadFormat, PreconditionLiteral, ReleaseClass, Requirements, valid_file_name,
};
pub use package::{
    BuiltRelease, Limits, VerifiedPackage, VerifiedPayload, build_package, build_release,
    inspect_package, looks_like_package, not_a_package, verify_package, verify_package_signed,
    verify_package_with,
};
pub use recall::{Minimum, RECALL_DOMAIN, RECALL_TYPE, RecallList};
pub use root::{Policy, REQUIRED_ROLES, ROOT_DOMAIN, ROOT_TYPE, Role, RootMetadata, TrustRoot};
pub use sbom::{SbomComponent, SbomHash, SbomSummary, validate_sbom};
pub use time::{MAX_CLOCK_LAG, TrustedTime};
