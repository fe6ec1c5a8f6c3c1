//! Hub storage behind one trait, so that PostgreSQL can be added next to SQLite.
//!
//! The protocol logic (what is a fork, what is a duplicate, what root is required) lives once,
//! in [`crate::ingest`], and runs inside a [`LogTx`]: a transaction over one laptop's log that
//! every backend provides. A backend only stores and reads rows; it never decides.

pub mod sqlite;

use ed25519_dalek::VerifyingKey;
use fieldkit_audit::Identity;
use serde::Serialize;
use serde_json::Value;

pub use sqlite::SqliteStore;

use crate::ingest::{IngestError, Ingested};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("hub database: {0}")]
    Db(String),
    /// A name is taken.
    #[error("{what} {name:?} already exists")]
    Exists {
        /// "laptop" or "manager".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Stored data is unreadable.
    #[error("hub database holds unreadable data: {0}")]
    Corrupt(String),
    /// The URL names a backend this build does not have.
    #[error("database URL {url:?} is not supported: required sqlite:PATH")]
    UnsupportedUrl {
        /// The URL given.
        url: String,
    },
}

/// An enrolled laptop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Laptop {
    /// Row id.
    pub id: i64,
    /// Human name given at enrolment.
    pub name: String,
    /// The log origin (note key name) derived from its key.
    pub origin: String,
    /// Its public key.
    #[serde(skip)]
    pub key: VerifyingKey,
}

/// A laptop with its sync state, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaptopStatus {
    /// Human name.
    pub name: String,
    /// Log origin.
    pub origin: String,
    /// Entries held.
    pub size: u64,
    /// Largest size cosigned.
    pub receipt_size: u64,
    /// When it last synced (RFC 3339), if ever.
    pub last_sync: Option<String>,
    /// Forks recorded.
    pub forks: u64,
}

/// An entry row to insert: the exact body plus the columns the dashboard filters on.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    /// Seq in the laptop's log.
    pub seq: u64,
    /// Exact JSON text.
    pub body: String,
    /// Leaf hash.
    pub leaf: [u8; 32],
    /// Entry time (RFC 3339 UTC).
    pub time: String,
    /// Technician.
    pub technician: String,
    /// Site.
    pub site: String,
    /// Device serial, if any.
    pub device_serial: Option<String>,
    /// Device model, if any.
    pub device_model: Option<String>,
    /// Event type.
    pub event: String,
    /// Outcome class.
    pub outcome: String,
    /// The intent this entry closes.
    pub closes: Option<u64>,
    /// Whether the clocks disagree with the previous entry.
    pub clock_flag: bool,
    /// `(component, version)` pairs of the device identity.
    pub firmware: Vec<(String, String)>,
}

/// One laptop log's transaction. Everything written through it commits together.
pub trait LogTx {
    /// Entries held.
    fn size(&self) -> Result<u64, StoreError>;
    /// The exact body of entry `seq`.
    fn body(&self, seq: u64) -> Result<Option<String>, StoreError>;
    /// The leaf hash of entry `seq`.
    fn leaf(&self, seq: u64) -> Result<Option<[u8; 32]>, StoreError>;
    /// Stored tree hashes by index (see `fieldkit_audit::merkle`).
    fn read_hashes(&self, idx: &[u64]) -> Result<Vec<[u8; 32]>, StoreError>;
    /// The checkpoint note held for `size`.
    fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError>;
    /// Inserts entries.
    fn insert_entries(&self, rows: &[NewRow]) -> Result<(), StoreError>;
    /// Inserts stored tree hashes from index `start`.
    fn insert_hashes(&self, start: u64, hashes: &[[u8; 32]]) -> Result<(), StoreError>;
    /// Records the laptop's checkpoint for `size` (kept once).
    fn insert_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError>;
    /// Records a fork: both versions of entry `seq` are kept.
    fn record_fork(&self, seq: u64, held: &str, sent: &str) -> Result<(), StoreError>;
}

/// A closure run inside a [`LogTx`]; `Ok` commits, `Err` rolls back.
pub type TxBody<'a> = &'a mut dyn FnMut(&dyn LogTx) -> Result<Ingested, IngestError>;

/// Filters for the timeline and exports. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default)]
pub struct EntryFilter {
    /// Technician (exact).
    pub technician: Option<String>,
    /// Site (exact).
    pub site: Option<String>,
    /// Device serial (exact).
    pub serial: Option<String>,
    /// Device model (exact).
    pub model: Option<String>,
    /// Event type (exact).
    pub event: Option<String>,
    /// Outcome class.
    pub outcome: Option<String>,
    /// Laptop origin.
    pub origin: Option<String>,
    /// From this date or time (inclusive, RFC 3339 or YYYY-MM-DD).
    pub from: Option<String>,
    /// Up to this date or time (inclusive for a date).
    pub to: Option<String>,
    /// Page size (default 200, at most 100 000 for exports).
    pub limit: Option<u64>,
    /// Rows to skip.
    pub offset: Option<u64>,
}

/// An entry as the dashboard and exports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryRow {
    /// Laptop name.
    pub laptop: String,
    /// Laptop log origin.
    pub origin: String,
    /// Seq in that log.
    pub seq: u64,
    /// Entry time.
    pub time: String,
    /// Technician.
    pub technician: String,
    /// Site.
    pub site: String,
    /// Device serial.
    pub device_serial: Option<String>,
    /// Device model.
    pub device_model: Option<String>,
    /// Event type.
    pub event: String,
    /// Outcome class.
    pub outcome: String,
    /// The full device identity.
    pub device: Value,
    /// The details.
    pub details: Value,
    /// The exact body (for verification bundles).
    #[serde(skip)]
    pub body: String,
    /// Integrity badges.
    pub badges: Badges,
}

/// Integrity badges of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Badges {
    /// Covered by a checkpoint the hub cosigned.
    pub receipt: bool,
    /// An intent whose outcome has not reached the hub.
    pub pending: bool,
    /// A fork was recorded at this seq.
    pub fork: bool,
    /// The laptop's clocks disagreed at this entry.
    pub clock: bool,
}

/// The latest identity seen per device serial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryRow {
    /// Serial.
    pub serial: String,
    /// Model.
    pub model: Option<String>,
    /// When it was last seen.
    pub last_seen: String,
    /// Where.
    pub site: String,
    /// By whom.
    pub technician: String,
    /// The last event about it.
    pub last_event: String,
    /// `(component, version)` as last read.
    pub firmware: Vec<(String, String)>,
    /// The full identity.
    pub device: Value,
}

/// A recorded fork.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForkRow {
    /// Laptop name.
    pub laptop: String,
    /// Laptop origin.
    pub origin: String,
    /// The seq.
    pub seq: u64,
    /// The hub's copy.
    pub held: String,
    /// What the laptop sent (or why it was detected).
    pub sent: String,
    /// When.
    pub detected_at: String,
}

/// Storage for the hub.
pub trait Store: Send + Sync + 'static {
    /// The hub's own signing identity (created on first use).
    fn hub_identity(&self) -> Result<Identity, StoreError>;
    /// Enrols a laptop's key under a name.
    fn enroll_laptop(&self, name: &str, key: &VerifyingKey) -> Result<Laptop, StoreError>;
    /// The laptop whose log has this origin.
    fn laptop_by_origin(&self, origin: &str) -> Result<Option<Laptop>, StoreError>;
    /// All laptops with their sync state.
    fn laptops(&self) -> Result<Vec<LaptopStatus>, StoreError>;
    /// Adds a manager account with an argon2 PHC hash.
    fn add_manager(&self, name: &str, password_hash: &str) -> Result<(), StoreError>;
    /// A manager's id and password hash.
    fn manager(&self, name: &str) -> Result<Option<(i64, String)>, StoreError>;
    /// Stores a session (by the SHA-256 of its token).
    fn create_session(
        &self,
        manager: i64,
        token_hash: &[u8; 32],
        expires: i64,
    ) -> Result<(), StoreError>;
    /// The manager name of a live session.
    fn session(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<String>, StoreError>;
    /// Ends a session.
    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// Runs `body` in one transaction over `laptop`'s log: committed if it returns `Ok`.
    fn with_log(&self, laptop: &Laptop, body: TxBody<'_>) -> Result<Ingested, IngestError>;
    /// Entries matching a filter, newest first.
    fn query(&self, filter: &EntryFilter) -> Result<Vec<EntryRow>, StoreError>;
    /// Number of entries matching a filter.
    fn count(&self, filter: &EntryFilter) -> Result<u64, StoreError>;
    /// The latest identity per device serial.
    fn inventory(&self) -> Result<Vec<InventoryRow>, StoreError>;
    /// Recorded forks.
    fn forks(&self) -> Result<Vec<ForkRow>, StoreError>;
    /// The latest laptop checkpoint per laptop, for verification bundles: (origin, note).
    fn latest_checkpoints(&self) -> Result<Vec<(String, String)>, StoreError>;
}
