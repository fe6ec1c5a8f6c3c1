//! Post-market answers, per installed device: are we exposed, are we up to date, are we
//! licence compliant — from what the field records show running on each serial.
//!
//! Dependency-Track and its peers track project versions; a manufacturer of medical devices is
//! asked about installations ("which pumps at which hospitals still run the vulnerable network
//! core?"). The hub already holds signed field records of exactly that. This module adds what
//! it needs to answer:
//!
//! - [`trust`]: the hub's own trust root, pinned by its operator (`fieldkit-hub trust pin`)
//!   and rotated only by a root the previous one signs, as a laptop does. Releases,
//!   entitlements and recall lists are imported only if they verify against it.
//! - [`import`]: releases (verified packages, or an SBOM whose digest a laptop recorded when
//!   it installed the package), OSV advisories (JSON or an ecosystem's `all.zip`), VEX in three
//!   formats, entitlements and recall lists. Each file is imported or refused on its own, with
//!   the rule it broke; nothing half-imported.
//! - [`observe`]: what each synced entry shows installed, written in the entry's own append
//!   transaction.
//! - [`analysis`]: releases × advisories × VEX, decided by `fieldkit-vuln` and stored as plain
//!   rows, recomputed whole after every import, so a query never re-derives a match.
//! - [`answers`]: exposure by vulnerability, by component and by device; up to date; licence
//!   policy; the pictures' series. Whether a device may install a fixing release is decided by
//!   the same `fieldkit-trust` functions the planner uses (product, hardware, expiry, recall,
//!   entitlement with the root's security-release policy).
//! - [`vexrecord`]: every VEX record on the hub (an imported document or a manager's
//!   decision) is signed by the hub's key together with who recorded it; a record whose
//!   signature does not verify is left out of every answer and reported.
//! - [`api`]: the routes under `/api/v1/postmarket/`; [`query`]: their parameters, validated
//!   with the rule a bad one breaks.
//!
//! Design choices:
//! - **A device runs releases per component.** A release (package) installs payloads; a device
//!   runs release R's component C when the field records show C at R's version on a device of
//!   R's product (and, where both are known, the same image hash). Its as-installed SBOM is the
//!   union of the SBOMs of the releases it runs.
//! - **Customers** come from the record when it names one, else from the newest entitlement
//!   that names the serial.
//! - **"May install"** is what the hub can know: product, hardware revision, metadata expiry,
//!   recall and entitlement (security releases waived when the root's policy says so). Live
//!   preconditions and the stepping stones a plan may need are for the technician's check on
//!   site, and the answer says so.

pub mod analysis;
pub mod answers;
pub mod api;
pub mod import;
pub mod observe;
pub mod query;
pub mod store;
pub mod trust;
pub mod vexrecord;

pub use store::PostmarketStore;
