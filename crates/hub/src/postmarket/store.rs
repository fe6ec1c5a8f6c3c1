//! The post-market part of the storage contract: what the hub holds to answer "what runs where,
//! and are we exposed", as plain rows.
//!
//! Like [`crate::store::Store`], a backend stores and reads; it never decides. Which advisory
//! version wins, which release a device runs, which VEX statement applies, which customer a
//! serial belongs to, whether a device may install a release: all of that is decided in Rust
//! (`fieldkit-vuln`, `fieldkit-trust` and [`super::analysis`] / [`super::answers`]), and a
//! backend receives the outcome as values: rows to replace, equalities to select by.
//!
//! # Execution model
//!
//! The same as [`crate::store::Store`]'s: every method is `async`, callable from any task
//! concurrently, each read a consistent snapshot of committed data, each write atomic on its own
//! (a `replace_*` method swaps a whole derived table in one transaction, so a reader sees the
//! old analysis or the new one, never half of each). What a laptop's entries show installed is
//! written by the laptop's append transaction ([`crate::store::LogTx::append`] with
//! [`crate::store::AppendRows::installs`]), never separately.
//!
//! Tables (both backends, one migration each):
//! - evidence the hub was given, kept as given: `trust_roots`, `releases` (+ `release_sboms`),
//!   `advisories`, `vex_records`, `entitlements`, `recall_lists`;
//! - what the field records show: `installed` (newest per serial and component, by the same
//!   opaque recency key as the inventory) and `install_history` (every observation);
//! - derived, replaced whole by Rust: `release_payloads`, `release_components` (from the
//!   releases), `vulnerabilities`, `vuln_ids`, `matches` (from advisories, releases and VEX),
//!   `device_grants` (from entitlements).

use async_trait::async_trait;
use serde::Serialize;

use crate::store::StoreError;

/// A release the hub knows: a verified package's manifest and SBOM, or an SBOM vouched for by
/// the digest a laptop recorded when it installed the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRow {
    /// `product@version`.
    pub id: String,
    /// Product (device profile id).
    pub product: String,
    /// Package version.
    pub version: String,
    /// `security`, `feature` or `maintenance`; empty when only the SBOM is known.
    pub class: String,
    /// Signed release date (`YYYY-MM-DD`); empty when only the SBOM is known.
    pub release_date: String,
    /// SHA-256 of `manifest.json` as signed; empty when only the SBOM is known.
    pub manifest_sha256: String,
    /// SHA-256 of the SBOM member.
    pub sbom_sha256: String,
    /// The verified manifest as JSON; empty when only the SBOM is known.
    pub manifest: String,
    /// Key ids whose signatures verified (package), or the laptop origin and entry that
    /// vouched for the SBOM (`origin#seq`).
    pub vouched_by: String,
    /// `package` or `sbom`.
    pub source: String,
    /// When it was imported, microseconds since the epoch.
    pub imported_us: i64,
    /// What it installs.
    pub payloads: Vec<PayloadRow>,
}

/// One component a release installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadRow {
    /// Component (as the device profile names it).
    pub component: String,
    /// Version it installs.
    pub version: String,
    /// The MCUboot image hash a device reports once it runs it (hex), if known.
    pub image_hash: String,
}

/// One component of a release's SBOM (the firmware itself and everything inside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentRow {
    /// The release.
    pub release_id: String,
    /// Position in the SBOM (flattened).
    pub idx: u32,
    /// CycloneDX type.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Package URL as the SBOM gives it.
    pub purl: String,
    /// The purl's identity (`fieldkit_vuln::PackageKey`), empty if it did not parse.
    pub package_key: String,
    /// Hashes, JSON `[{"alg","content"}]`.
    pub hashes: String,
    /// Licences, JSON array of strings.
    pub licences: String,
}

/// How [`PostmarketStore::add_release`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddRelease {
    /// Stored.
    Added,
    /// A release with this id is already held, with these digests (the caller decides whether
    /// that is the same release or a conflict).
    Held {
        /// Its manifest digest.
        manifest_sha256: String,
        /// Its SBOM digest.
        sbom_sha256: String,
        /// Its source.
        source: String,
    },
}

/// An advisory to store: its id, its `modified` time and its canonical JSON
/// (`fieldkit_vuln::Advisory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryRow {
    /// Id.
    pub id: String,
    /// `modified`, microseconds since the epoch.
    pub modified_us: i64,
    /// Withdrawn.
    pub withdrawn: bool,
    /// The advisory as `fieldkit_vuln::Advisory` JSON.
    pub body: String,
    /// The file (and archive member) it came from.
    pub source: String,
}

/// A VEX record: a document imported, or a decision a manager made on the hub, signed by the
/// hub's key with who recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexRow {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// `import` or `decision`.
    pub origin: String,
    /// `cyclonedx`, `openvex` or `csaf`.
    pub format: String,
    /// The document's own id.
    pub document_id: String,
    /// The document's author (for a decision, the manager).
    pub author: String,
    /// Who put it on the hub (an operator's name, or the signed-in manager).
    pub recorded_by: String,
    /// When, microseconds since the epoch.
    pub recorded_us: i64,
    /// The document's exact bytes.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// The hub key id that signed the record.
    pub signer: String,
    /// The hub's signature over the record (hex; see `super::vexrecord`).
    pub signature: String,
}

/// An entitlement as verified at import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRow {
    /// Entitlement id.
    pub id: String,
    /// Generation.
    pub generation: u32,
    /// Customer.
    pub customer: String,
    /// The envelope's exact bytes.
    pub body: Vec<u8>,
    /// The opened `fieldkit_trust::Entitlement` as JSON.
    pub opened: String,
}

/// A vulnerability as analysed: one per group of merged advisories.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VulnRow {
    /// Its name (CVE id if it has one).
    pub name: String,
    /// All its ids, JSON array.
    pub ids: String,
    /// `critical`, `high`, `medium`, `low`, `none` or `unknown`.
    pub severity: String,
    /// CVSS base score, if rated.
    pub score: Option<f64>,
    /// One line.
    pub summary: String,
    /// Earliest publication among its advisories, microseconds (0 if none says).
    pub published_us: i64,
    /// Every advisory withdrawn.
    pub withdrawn: bool,
}

/// A release component a vulnerability affects (or may), with the VEX statement that decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchRow {
    /// The vulnerability's name.
    pub vulnerability: String,
    /// The release.
    pub release_id: String,
    /// The component's index in the release's SBOM.
    pub component_idx: u32,
    /// `name version`.
    pub component: String,
    /// Its purl.
    pub purl: String,
    /// The advisory that matched.
    pub advisory: String,
    /// `affected` or `undetermined`.
    pub verdict: String,
    /// `purl` or `hash` (empty when undetermined).
    pub via: String,
    /// The rule that held, in words.
    pub because: String,
    /// Versions of the package that fix it, JSON array.
    pub fixed: String,
    /// The deciding VEX state, empty if no statement applies.
    pub vex_state: String,
    /// The deciding statement as `fieldkit_vuln::vex::Statement` JSON, empty if none.
    pub vex: String,
    /// Whether this match exposes the devices that run it (affected or undetermined, and no
    /// statement says `not_affected` or `fixed`).
    pub exposed: bool,
}

/// Which customer a serial belongs to and which entitlements name it, from the entitlements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// Serial.
    pub serial: String,
    /// Customer of the newest entitlement that names the serial.
    pub customer: String,
    /// Ids of the entitlements that name it, sorted, comma-separated.
    pub grants: String,
}

/// What one entry shows installed on one component of a device. Computed in Rust at ingest
/// ([`super::observe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRow {
    /// Serial.
    pub serial: String,
    /// Component.
    pub component: String,
    /// Product (device profile id).
    pub product: String,
    /// Model as the device reports it.
    pub model: String,
    /// Hardware revision.
    pub hardware: String,
    /// Version that runs (and is confirmed).
    pub version: String,
    /// Its image hash as the device reports it (hex), if it does.
    pub image_hash: String,
    /// The bootloader's security counter, if reported.
    pub security_counter: Option<u64>,
    /// Site.
    pub site: String,
    /// Customer, when the record names one.
    pub customer: String,
    /// Technician.
    pub technician: String,
    /// The event.
    pub event: String,
    /// The package this entry installed it from (`product@version`), if it says.
    pub package: String,
    /// That package's manifest digest, if it says.
    pub manifest_sha256: String,
    /// That package's SBOM digest, if it says.
    pub sbom_sha256: String,
    /// Entry time, microseconds.
    pub time_us: i64,
    /// Opaque, byte-wise comparable: the newest per serial and component is kept.
    pub recency: Vec<u8>,
    /// Laptop origin.
    pub origin: String,
    /// Seq in that laptop's log.
    pub seq: u64,
}

/// Installed rows of one release payload: `product = ? AND component = ? AND version = ?`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstallKey {
    /// Product.
    pub product: String,
    /// Component.
    pub component: String,
    /// Version.
    pub version: String,
}

/// Selects installed rows by equalities only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstalledQuery {
    /// Keys, any of which (empty: no restriction).
    pub keys: Vec<InstallKey>,
    /// `serial = ?`.
    pub serial: Option<String>,
    /// `site = ?`.
    pub site: Option<String>,
    /// Rows to return (0: all).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// An installed row with the serial's grants, as the answers read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// Serial.
    pub serial: String,
    /// Component.
    pub component: String,
    /// Product.
    pub product: String,
    /// Model.
    pub model: String,
    /// Hardware revision.
    pub hardware: String,
    /// Version.
    pub version: String,
    /// Image hash (hex) or empty.
    pub image_hash: String,
    /// Security counter, if reported.
    pub security_counter: Option<u64>,
    /// Site.
    pub site: String,
    /// Customer named by the record, or empty.
    pub customer: String,
    /// Customer from the entitlements naming the serial, or empty.
    pub granted_customer: String,
    /// Entitlement ids naming the serial, comma-separated.
    pub grants: String,
    /// The package the record says it came from, or empty.
    pub package: String,
    /// Its SBOM digest, or empty.
    pub sbom_sha256: String,
    /// Last seen, microseconds.
    pub time_us: i64,
    /// The event that showed it.
    pub event: String,
    /// The technician.
    pub technician: String,
}

/// Installed rows counted by everything an answer groups or decides by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledGroup {
    /// Product.
    pub product: String,
    /// Component.
    pub component: String,
    /// Version.
    pub version: String,
    /// Image hash, or empty.
    pub image_hash: String,
    /// Hardware revision.
    pub hardware: String,
    /// Site.
    pub site: String,
    /// Customer named by the record.
    pub customer: String,
    /// Customer from the entitlements.
    pub granted_customer: String,
    /// Entitlement ids naming the serials.
    pub grants: String,
    /// Rows in the group.
    pub count: u64,
    /// One serial of the group (the smallest), to evaluate the group's rules with: every
    /// serial of a group is named by the same entitlements.
    pub sample_serial: String,
    /// The security counter the group's devices report, if any.
    pub security_counter: Option<u64>,
}

/// Where one installed row among some keys is, and whether its key is one of the exposed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSite {
    /// Serial.
    pub serial: String,
    /// Site.
    pub site: String,
    /// Customer named by the record, or empty.
    pub customer: String,
    /// Whether the row's key is among the exposed keys.
    pub exposed: bool,
}

/// One observation of the history, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    /// Serial.
    pub serial: String,
    /// Component.
    pub component: String,
    /// Product.
    pub product: String,
    /// Version.
    pub version: String,
    /// Image hash, or empty.
    pub image_hash: String,
    /// Site.
    pub site: String,
    /// Event.
    pub event: String,
    /// The package it says it came from.
    pub package: String,
    /// Entry time, microseconds.
    pub time_us: i64,
    /// Laptop origin.
    pub origin: String,
    /// Seq.
    pub seq: u64,
}

/// Everything derived from advisories, releases and VEX, replaced in one go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Vulnerabilities.
    pub vulnerabilities: Vec<VulnRow>,
    /// `(id, vulnerability name)` for every id and alias.
    pub ids: Vec<(String, String)>,
    /// Matches.
    pub matches: Vec<MatchRow>,
}

/// How many trust roots, releases, entitlements and recall lists the store holds: those tables
/// are append-only, so an import of any of them changes the stamp, and a held copy of them
/// (`super::answers::ContextCache`) is current while the stamp is unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaterialStamp {
    /// Trust roots.
    pub trust_roots: u64,
    /// Releases.
    pub releases: u64,
    /// Entitlements (all generations).
    pub entitlements: u64,
    /// Recall lists.
    pub recall_lists: u64,
}

/// The post-market storage; see the module documentation.
#[async_trait]
pub trait PostmarketStore: Send + Sync {
    /// Every trust root pinned or rotated to, by version, as the exact bytes given.
    async fn trust_roots(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Stores a trust root (the caller verified it); [`StoreError::Exists`] if the version is
    /// held.
    async fn add_trust_root(&self, version: u64, body: &[u8]) -> Result<(), StoreError>;

    /// Stores a release with its SBOM and its components, unless one with its id is held.
    async fn add_release(
        &self,
        release: &ReleaseRow,
        sbom: &[u8],
        components: &[ComponentRow],
    ) -> Result<AddRelease, StoreError>;
    /// The counts that change whenever the trust material or the releases do, in one read.
    async fn material_stamp(&self) -> Result<MaterialStamp, StoreError>;
    /// Every release with its payloads, by id.
    async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError>;
    /// Release components: of one release, or with one package key, or all.
    async fn release_components(
        &self,
        release: Option<&str>,
        package_key: Option<&str>,
    ) -> Result<Vec<ComponentRow>, StoreError>;
    /// A release's SBOM, as imported.
    async fn release_sbom(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The `modified` time of those of `ids` that are held.
    async fn advisory_modified(&self, ids: &[String]) -> Result<Vec<(String, i64)>, StoreError>;
    /// Inserts or replaces advisories (the caller decided which are newer).
    async fn put_advisories(&self, rows: &[AdvisoryRow]) -> Result<(), StoreError>;
    /// Every advisory body, by id.
    async fn advisories(&self) -> Result<Vec<String>, StoreError>;

    /// Stores a VEX record; returns its id.
    async fn add_vex(&self, row: &VexRow) -> Result<i64, StoreError>;
    /// Every VEX record, oldest first.
    async fn vex_records(&self) -> Result<Vec<VexRow>, StoreError>;

    /// Stores an entitlement generation; false if that id and generation were held.
    async fn put_entitlement(&self, row: &EntitlementRow) -> Result<bool, StoreError>;
    /// Every entitlement (all generations).
    async fn entitlements(&self) -> Result<Vec<EntitlementRow>, StoreError>;
    /// Replaces the serials' grants.
    async fn replace_grants(&self, rows: &[GrantRow]) -> Result<(), StoreError>;

    /// Stores a recall list (the caller verified it); false if the version was held.
    async fn put_recall(&self, version: u64, body: &[u8]) -> Result<bool, StoreError>;
    /// The recall list with the highest version.
    async fn latest_recall(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// Replaces the analysis.
    async fn replace_analysis(&self, analysis: &Analysis) -> Result<(), StoreError>;
    /// The vulnerability with this id or alias.
    async fn vulnerability(&self, id: &str) -> Result<Option<VulnRow>, StoreError>;
    /// Every vulnerability, by name.
    async fn vulnerabilities(&self) -> Result<Vec<VulnRow>, StoreError>;
    /// The vulnerabilities with these names (as [`MatchRow::vulnerability`] gives them), by
    /// name, in one read; names the hub does not hold are left out.
    async fn vulnerabilities_named(&self, names: &[String]) -> Result<Vec<VulnRow>, StoreError>;
    /// Matches of one vulnerability, or of some releases, or all; by vulnerability, release,
    /// component index.
    async fn matches(
        &self,
        vulnerability: Option<&str>,
        releases: &[String],
    ) -> Result<Vec<MatchRow>, StoreError>;

    /// Installed rows (with grants) by a query, ordered by serial then component.
    async fn installed(&self, q: &InstalledQuery) -> Result<Vec<Installed>, StoreError>;
    /// Installed rows counted by group, over `keys` (empty: all).
    async fn installed_groups(
        &self,
        keys: &[InstallKey],
    ) -> Result<Vec<InstalledGroup>, StoreError>;
    /// The installed rows of `keys` (none when empty), each with whether its key is among
    /// `exposed`: what the answers count devices by, site and customer with.
    async fn device_sites(
        &self,
        keys: &[InstallKey],
        exposed: &[InstallKey],
    ) -> Result<Vec<DeviceSite>, StoreError>;
    /// The observations of one serial, or of `(product, component)` pairs; by time.
    async fn history(
        &self,
        serial: Option<&str>,
        pairs: &[(String, String)],
    ) -> Result<Vec<HistoryRow>, StoreError>;
    /// Observations that name an SBOM digest (the entries that vouch for it).
    async fn history_with_sbom(&self, sbom_sha256: &str) -> Result<Vec<InstallRow>, StoreError>;

    /// A setting of the post-market answers (`licence_policy`), if set.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets a setting.
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
}
