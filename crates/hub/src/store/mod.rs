//! Hub storage behind one contract, so that SQLite and PostgreSQL behave identically.
//!
//! A backend stores and reads rows; it never decides. Every rule lives once in Rust:
//! - the sync protocol (what is a fork, a duplicate, a gap, which root is required) in
//!   [`crate::ingest`], running inside a [`LogTx`];
//! - the meaning of a filter (a bare date is the whole day, outcomes are a closed set, limits
//!   and offsets are bounded) in [`crate::rules::EntryQuery`], which a backend only translates
//!   into equalities and ranges;
//! - the integrity badges (receipt, pending, fork, clock) in [`crate::rules::badges`], from plain
//!   facts a backend looks up ([`Store::entry_facts`]);
//! - which entry is a device's latest identity in [`crate::rules::DeviceUpdate`]: the ingest
//!   computes an opaque recency key, and the backend keeps the row with the largest key.
//!
//! # Execution model
//!
//! Every method is `async` and may be called from any task, concurrently: a backend owns its
//! connections (SQLite: one writer and one reader connection, each used on tokio's blocking
//! pool; PostgreSQL: a connection pool) and never blocks the caller's thread.
//!
//! - Reads ([`Store::entries`], [`Store::count`], [`Store::devices`], …) see committed data
//!   only, each call a consistent snapshot of its own.
//! - [`Store::begin_log`] starts the one transaction of an append for one laptop and locks that
//!   laptop's tree state ([`LogState`]) until the [`LogTx`] is committed or rolled back (SQLite:
//!   the one writer, the batch inside a transaction that batches arriving together share and
//!   commit at once; PostgreSQL: `SELECT … FOR UPDATE` on the laptop's row), so two
//!   appends for the same laptop run one after the other and appends for different laptops do
//!   not wait for each other longer than the backend must (PostgreSQL: not at all).
//! - A [`LogTx`] writes nothing visible before [`LogTx::commit`] returns `Ok`, and that `Ok`
//!   means durable. Dropping it without committing rolls back its own batch (a cancelled task
//!   or a panic loses the whole batch, never half of it, and never another acknowledged batch;
//!   on SQLite, a batch dropped after it wrote rows takes the unacknowledged batches of its
//!   group with it, and each of them gets the error). After a
//!   commit error the batch may or may not be stored: the caller answers with an error and the
//!   laptop's retry is decided by the protocol (identical resend).
//! - Writes outside a [`LogTx`] (enrolment, managers, sessions) are single statements, atomic
//!   on their own.

pub mod postgres;
pub mod sqlite;

use std::ops::Range;

use async_trait::async_trait;
use ed25519_dalek::VerifyingKey;
use serde::Serialize;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::rules::{DeviceQuery, EntryQuery};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("hub database: {0}")]
    Db(String),
    /// The database cannot be reached (PostgreSQL down, pool exhausted).
    #[error("hub database unavailable: {0}")]
    Unavailable(String),
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
    /// The URL names a backend this build does not have, or is malformed.
    #[error("database URL {url:?} is not supported: required sqlite:PATH or postgres://…")]
    UnsupportedUrl {
        /// The URL given.
        url: String,
    },
    /// The database was written by a hub with a schema this one does not read.
    #[error("{what} has schema version {found}; this hub reads version {required}")]
    Schema {
        /// The database.
        what: String,
        /// The version found.
        found: i64,
        /// The version this hub writes.
        required: i64,
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

/// A laptop's tree state, read and locked when its [`LogTx`] begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// Entries held.
    pub size: u64,
    /// The leaf hash of entry `size - 1` (zeros when empty).
    pub last_leaf: [u8; 32],
}

/// An entry row to insert: the exact body plus the columns that filters and badges use, all
/// computed in Rust at ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntryRow {
    /// Seq in the laptop's log.
    pub seq: u64,
    /// Exact JSON text.
    pub body: String,
    /// Leaf hash.
    pub leaf: [u8; 32],
    /// Entry time, microseconds since the Unix epoch (UTC).
    pub time_us: i64,
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
    /// Outcome class (`fieldkit_audit::Outcome::as_str`).
    pub outcome: String,
    /// The intent this entry closes.
    pub closes: Option<u64>,
    /// Whether the clocks disagree with the previous entry.
    pub clock_flag: bool,
}

/// A device's identity as an entry shows it, stored if it is newer than the one held.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceUpdate {
    /// Serial.
    pub serial: String,
    /// Model ("" when unknown).
    pub model: String,
    /// Opaque, byte-wise comparable: the backend keeps the row with the largest key.
    pub recency: Vec<u8>,
    /// Entry time, microseconds since the Unix epoch.
    pub time_us: i64,
    /// Site.
    pub site: String,
    /// Technician.
    pub technician: String,
    /// The event that showed this identity.
    pub last_event: String,
    /// The full identity (JSON text).
    pub device: String,
    /// `(component, version)` as read.
    pub firmware: Vec<(String, String)>,
}

/// Everything one accepted batch writes, in one go.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppendRows {
    /// The entries, in seq order, starting at the locked state's size.
    pub entries: Vec<NewEntryRow>,
    /// Index of the first new stored tree hash.
    pub hashes_start: u64,
    /// The new stored tree hashes.
    pub hashes: Vec<[u8; 32]>,
    /// The laptop's signed checkpoint at the new size.
    pub checkpoint: String,
    /// Device identities the batch shows, at most one per serial, sorted by serial.
    pub devices: Vec<DeviceUpdate>,
    /// What the batch's entries show installed, per serial and component, in entry order
    /// ([`crate::postmarket::observe`]).
    pub installs: Vec<crate::postmarket::store::InstallRow>,
}

/// A fork to record: both versions of entry `seq` are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFork {
    /// The seq.
    pub seq: u64,
    /// The hub's copy.
    pub held: String,
    /// What the laptop signed (the entry, or the checkpoint).
    pub sent: String,
}

/// One laptop log's append transaction. See the module's execution model.
#[async_trait]
pub trait LogTx: Send {
    /// The laptop's tree state as locked at the start.
    fn state(&self) -> LogState;
    /// The exact bodies of entries in `range` (all held), in seq order.
    async fn bodies(&mut self, range: Range<u64>) -> Result<Vec<String>, StoreError>;
    /// Stored tree hashes by index, in the order asked; every index must be held.
    async fn read_hashes(&mut self, idx: &[u64]) -> Result<Vec<[u8; 32]>, StoreError>;
    /// The checkpoint note held for `size`.
    async fn checkpoint(&mut self, size: u64) -> Result<Option<String>, StoreError>;
    /// Inserts a batch and advances the laptop's state to its end.
    async fn append(&mut self, rows: AppendRows) -> Result<(), StoreError>;
    /// Records the laptop's checkpoint for `size` if none is held for that size.
    async fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), StoreError>;
    /// Records a fork.
    async fn record_fork(&mut self, fork: &NewFork) -> Result<(), StoreError>;
    /// Commits everything written through this transaction.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
    /// Rolls back (dropping does the same, less politely).
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// An entry as stored, with the facts its badges are decided from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    /// The laptop's row id.
    pub laptop_id: i64,
    /// Laptop name.
    pub laptop: String,
    /// Laptop log origin.
    pub origin: String,
    /// The largest size the laptop's checkpoints held by the hub cover.
    pub receipt_size: u64,
    /// Seq in that log.
    pub seq: u64,
    /// Entry time, microseconds since the Unix epoch.
    pub time_us: i64,
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
    /// The laptop's clocks disagreed at this entry.
    pub clock_flag: bool,
    /// The exact body.
    pub body: String,
}

/// Which of some entries have an outcome that closes them, and which have a fork recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFacts {
    /// `(laptop_id, seq)` of intents that an entry closes.
    pub closed: std::collections::HashSet<(i64, u64)>,
    /// `(laptop_id, seq)` with a fork recorded.
    pub forked: std::collections::HashSet<(i64, u64)>,
}

/// A device's latest identity, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDevice {
    /// Serial.
    pub serial: String,
    /// Model ("" when unknown).
    pub model: String,
    /// Entry time, microseconds since the Unix epoch.
    pub time_us: i64,
    /// Site.
    pub site: String,
    /// Technician.
    pub technician: String,
    /// The event that showed this identity.
    pub last_event: String,
    /// The identity (JSON text).
    pub device: String,
    /// `(component, version)`, as stored (sorted by component).
    pub firmware: Vec<(String, String)>,
}

/// How many devices run one version of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionCount {
    /// Device model.
    pub model: String,
    /// Component.
    pub component: String,
    /// Version.
    pub version: String,
    /// Devices.
    pub devices: u64,
}

/// How an append changes the devices per (model, component, version): a backend removes the
/// firmware rows a newer identity replaces and adds the new ones, then applies the non-zero
/// changes to its counts in key order. A backend whose appends run side by side keeps the
/// counts per laptop (PostgreSQL), so that no two appends wait for each other's count rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountDeltas(std::collections::BTreeMap<(String, String, String), i64>);

impl CountDeltas {
    /// A firmware row `(model, component, version)` was added.
    pub fn add(&mut self, key: (String, String, String)) {
        *self.0.entry(key).or_default() += 1;
    }

    /// A firmware row was removed.
    pub fn remove(&mut self, key: (String, String, String)) {
        *self.0.entry(key).or_default() -= 1;
    }

    /// The keys whose count changes, in key order, with the change.
    pub fn changed(&self) -> impl Iterator<Item = (&(String, String, String), i64)> {
        self.0
            .iter()
            .filter(|(_, d)| **d != 0)
            .map(|(k, d)| (k, *d))
    }

    /// What a newer identity changes in its serial's firmware rows, given the rows held
    /// (`(component, version, model)`), with the count changes recorded here. Only what differs
    /// is written: a newer identity of a device usually repeats every component, and rewriting
    /// them all dirtied a page per serial in the table and its version index on every visit.
    pub fn firmware_change(
        &mut self,
        held: Vec<(String, String, String)>,
        newer: &DeviceUpdate,
    ) -> FirmwareChange {
        let mut held: std::collections::HashMap<String, (String, String)> = held
            .into_iter()
            .map(|(component, version, model)| (component, (version, model)))
            .collect();
        let mut change = FirmwareChange::default();
        for (component, version) in &newer.firmware {
            match held.remove(component) {
                Some((v, m)) if *v == *version && m == newer.model => continue,
                Some((v, m)) => self.remove((m, component.clone(), v)),
                None => {}
            }
            self.add((newer.model.clone(), component.clone(), version.clone()));
            change.write.push((component.clone(), version.clone()));
        }
        for (component, (version, model)) in held {
            self.remove((model, component.clone(), version));
            change.delete.push(component);
        }
        change.delete.sort_unstable();
        change
    }
}

/// What a newer identity changes in one serial's firmware rows ([`CountDeltas::firmware_change`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareChange {
    /// `(component, version)` rows to insert, or to replace the held row of that component.
    pub write: Vec<(String, String)>,
    /// Components whose rows go: the newer identity no longer shows them.
    pub delete: Vec<String>,
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
    /// What the laptop signed.
    pub sent: String,
    /// When (RFC 3339).
    pub detected_at: String,
}

/// A manager account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerRow {
    /// Row id.
    pub id: i64,
    /// Sign-in name.
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
}

/// Storage for the hub. See the module's execution model.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend, for messages ("sqlite" or "postgres").
    fn backend(&self) -> &'static str;
    /// The post-market part of the same store.
    fn postmarket(&self) -> &dyn crate::postmarket::PostmarketStore;
    /// Enrols a laptop's key under a name.
    async fn enroll_laptop(&self, name: &str, key: &VerifyingKey) -> Result<Laptop, StoreError>;
    /// The laptop whose log has this origin.
    async fn laptop_by_origin(&self, origin: &str) -> Result<Option<Laptop>, StoreError>;
    /// All laptops with their sync state, by name.
    async fn laptops(&self) -> Result<Vec<LaptopStatus>, StoreError>;
    /// Adds a manager account with an argon2 PHC hash.
    async fn add_manager(&self, name: &str, password_hash: &str) -> Result<(), StoreError>;
    /// A manager by sign-in name.
    async fn manager(&self, name: &str) -> Result<Option<ManagerRow>, StoreError>;
    /// Stores a session (by the SHA-256 of its token) and drops expired ones.
    async fn create_session(
        &self,
        manager: i64,
        token_hash: &[u8; 32],
        expires: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The manager name of a session live at `now`.
    async fn session(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<String>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// Begins the append transaction of `laptop`, its tree state locked.
    async fn begin_log(&self, laptop: &Laptop) -> Result<Box<dyn LogTx>, StoreError>;
    /// Entries matching a query, newest first: time descending, then laptop id descending,
    /// then seq descending (the order of the backends' indexes, so a page is never sorted).
    async fn entries(&self, q: &EntryQuery) -> Result<Vec<StoredEntry>, StoreError>;
    /// The number of entries matching a query (its limit and offset ignored), counting no
    /// further than `at_most`: the smaller of the two. Counting stops there, so a request's
    /// work is bounded however many entries match.
    async fn count(&self, q: &EntryQuery, at_most: u64) -> Result<u64, StoreError>;
    /// Closers and forks of the given `(laptop_id, seq)` entries.
    async fn entry_facts(&self, keys: &[(i64, u64)]) -> Result<EntryFacts, StoreError>;
    /// Devices' latest identities matching a query, by model then serial (byte order).
    async fn devices(&self, q: &DeviceQuery) -> Result<Vec<StoredDevice>, StoreError>;
    /// The number of devices matching a query (its limit and offset ignored).
    async fn device_count(&self, q: &DeviceQuery) -> Result<u64, StoreError>;
    /// Devices per model, component and version, over the latest identities (by model,
    /// component and version; none with zero devices). Backends keep these counts as the
    /// latest identities change (see [`CountDeltas`]) rather than count on every request.
    async fn version_counts(&self) -> Result<Vec<VersionCount>, StoreError>;
    /// Recorded forks, oldest first.
    async fn forks(&self) -> Result<Vec<ForkRow>, StoreError>;
    /// The latest laptop checkpoint per laptop, for verification bundles: (origin, note).
    async fn latest_checkpoints(&self) -> Result<Vec<(String, String)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(model: &str, firmware: &[(&str, &str)]) -> DeviceUpdate {
        DeviceUpdate {
            serial: "P7-001".into(),
            model: model.into(),
            recency: vec![1],
            time_us: 0,
            site: String::new(),
            technician: String::new(),
            last_event: String::new(),
            device: String::new(),
            firmware: firmware
                .iter()
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn held(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        rows.iter()
            .map(|(c, v, m)| (c.to_string(), v.to_string(), m.to_string()))
            .collect()
    }

    fn key(m: &str, c: &str, v: &str) -> (String, String, String) {
        (m.into(), c.into(), v.into())
    }

    #[test]
    fn a_repeated_identity_writes_nothing_and_counts_nothing() {
        let mut counts = CountDeltas::default();
        let change = counts.firmware_change(
            held(&[("app", "3.1.0", "pump"), ("boot", "2.0.1", "pump")]),
            &device("pump", &[("app", "3.1.0"), ("boot", "2.0.1")]),
        );
        assert_eq!(change, FirmwareChange::default());
        assert_eq!(counts.changed().count(), 0);
    }

    #[test]
    fn only_the_components_that_differ_are_written_and_counted() {
        let mut counts = CountDeltas::default();
        let change = counts.firmware_change(
            held(&[
                ("app", "3.1.0", "pump"),
                ("boot", "2.0.1", "pump"),
                ("net", "1.4.2", "pump"),
            ]),
            &device(
                "pump",
                &[("app", "3.2.0"), ("boot", "2.0.1"), ("radio", "1.0.0")],
            ),
        );
        assert_eq!(
            change,
            FirmwareChange {
                write: vec![
                    ("app".into(), "3.2.0".into()),
                    ("radio".into(), "1.0.0".into())
                ],
                delete: vec!["net".into()],
            }
        );
        let changed: Vec<_> = counts.changed().map(|(k, d)| (k.clone(), d)).collect();
        assert_eq!(
            changed,
            vec![
                (key("pump", "app", "3.1.0"), -1),
                (key("pump", "app", "3.2.0"), 1),
                (key("pump", "net", "1.4.2"), -1),
                (key("pump", "radio", "1.0.0"), 1),
            ]
        );
    }

    #[test]
    fn a_new_model_rewrites_every_component_under_it() {
        let mut counts = CountDeltas::default();
        let change = counts.firmware_change(
            held(&[("app", "3.1.0", "")]),
            &device("pump", &[("app", "3.1.0")]),
        );
        assert_eq!(change.write, vec![("app".into(), "3.1.0".into())]);
        assert!(change.delete.is_empty());
        let changed: Vec<_> = counts.changed().map(|(k, d)| (k.clone(), d)).collect();
        assert_eq!(
            changed,
            vec![
                (key("", "app", "3.1.0"), -1),
                (key("pump", "app", "3.1.0"), 1)
            ]
        );
    }

    #[test]
    fn a_first_identity_writes_every_component() {
        let mut counts = CountDeltas::default();
        let change = counts.firmware_change(Vec::new(), &device("pump", &[("app", "3.1.0")]));
        assert_eq!(change.write, vec![("app".into(), "3.1.0".into())]);
        assert_eq!(counts.changed().count(), 1);
    }
}
