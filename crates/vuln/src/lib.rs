//! Post-market answers for fieldkit: which vulnerabilities affect an installed component, and
//! what the manufacturer says about them. Bytes in, values out: no IO, no database.
//!
//! The hub knows which release runs on which device and each release's SBOM. This crate brings
//! the rest, as values the hub stores and queries:
//! - [`osv`]: advisories in the OSV format, one JSON document or an `all.zip` of a whole
//!   ecosystem, including a manufacturer's own firmware feed; and OSV's rule for "is this
//!   version affected" (SEMVER, ECOSYSTEM and GIT ranges, `versions` lists, `withdrawn`).
//! - [`catalog`]: the advisories merged into vulnerabilities by their aliases, indexed by
//!   package and by hash, answering "which vulnerabilities affect this component".
//! - [`vex`]: VEX documents in CycloneDX, OpenVEX and CSAF 2.0, read into one model of
//!   statements (vulnerability x product and version range -> state, justification, action),
//!   and the rule for which statement decides.
//!
//! Design choices:
//! - **Components are matched by purl or by hash.** A purl's identity is its type, namespace and
//!   name as the `packageurl` crate normalises them, so `pkg:generic/acme-medical/netcore`
//!   (firmware without an ecosystem, the vendor as namespace) matches like any library. A hash
//!   listed by an advisory or a VEX statement matches the build whatever its name says.
//! - **Unknown is not "not affected".** A version that cannot be placed in a range (an
//!   ecosystem whose ordering fieldkit does not know, a GIT range without a versions list) is
//!   [`osv::Verdict::Undetermined`], shown as such; a VEX range that cannot place a version does
//!   not cover it.
//! - **Hostile input is bounded** ([`Limits`]): document size, archive members, decompressed
//!   total and compression ratio, and JSON nesting (serde_json's recursion limit). Errors name
//!   the document and the JSON path of the value, and list the allowed values of an enum.
//! - Maintained crates do the standard parts: `osv` (range and severity types), `packageurl`,
//!   `vers-rs` (version orderings and `vers:` ranges), `cvss` (scores), `zip`. Written here:
//!   OSV's range evaluation (no crate implements it), the alias merge, and the three VEX
//!   readers (the `openvex` crate predates OpenVEX 0.2.0; the CSAF crates are either very
//!   heavy or dated; `cyclonedx-bom` carries the whole BOM model and XML for eight fields).

pub mod catalog;
mod component;
mod error;
mod json;
mod limits;
pub mod osv;
mod version;
pub mod vex;

pub use catalog::{Catalog, Inserted, Match};
pub use component::{Component, Hash, PackageKey};
pub use error::{Result, VulnError};
pub use limits::Limits;
pub use osv::{Advisory, Level, MatchedBy, Verdict, parse_advisory, read_archive};
pub use version::{Scheme, VersRange};
