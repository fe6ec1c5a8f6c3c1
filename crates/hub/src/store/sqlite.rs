//! The SQLite backend: one file, WAL, `synchronous=FULL`, STRICT tables, and the same
//! append-only triggers as the laptop's log on everything that is evidence (entries, tree
//! hashes, checkpoints, forks).
//!
//! One writer connection (appends, enrolment, accounts) and one reader connection (the
//! dashboard's queries; WAL lets it read while the writer writes). Both are used on tokio's
//! blocking pool. An append holds the writer for its whole batch, inside the writer's
//! transaction, which is SQLite's lock on every laptop's tree state at once; the batches of
//! laptops syncing at once commit together ([`writer`]: group commit). A third connection, on a
//! thread of its own, copies the WAL into the database file while the writer goes on appending,
//! so a commit does not wait for a checkpoint.
//!
//! The file is created 0600: it holds manager password hashes and session hashes.

use std::cell::Cell;
use std::ffi::c_int;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::VerifyingKey;
use fieldkit_audit::identity::{LAPTOP_PREFIX, key_name, parse_public_key_pem, public_key_pem};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{
    AppendRows, EntryFacts, ForkRow, Laptop, LaptopStatus, LogState, LogTx, ManagerRow, NewFork,
    Store, StoreError, StoredDevice, StoredEntry, VersionCount,
};
use crate::rules::{DeviceQuery, EntryQuery};

mod postmarket;
mod writer;

use writer::{Writer, WriterGuard, WriterLock};

/// The schema version this hub writes. Version 1 was the pre-release layout (signing key inside
/// the database, times as text); [`SCHEMA`] creates version 2 and [`MIGRATIONS`] take it on.
pub const SCHEMA_VERSION: i64 = 7;

/// A migration: what it does to a database one version below its number.
type Migration = fn(&Connection) -> Result<(), StoreError>;

/// Numbered migrations from version 2, applied in order, each in the transaction that sets
/// `user_version` to its number.
const MIGRATIONS: &[(i64, Migration)] = &[
    (3, migrate_3),
    (4, migrate_4),
    (5, migrate_5),
    (6, migrate_6),
    (7, migrate_7),
];

/// Version 4: every timeline index ends with the page order (time, laptop, seq) so a page is
/// read in index order and never sorted; model and outcome filters get indexes; the indexes of
/// the broad filters (time, model, event, outcome) also carry the other broad columns, so that
/// combining them is decided, and counted, in the index; the version counts of the fleet chart
/// are kept as they change instead of counted on every request.
const MIGRATION_4: &str = "
DROP INDEX entries_time;
DROP INDEX entries_serial;
DROP INDEX entries_technician;
DROP INDEX entries_site;
DROP INDEX entries_event;
CREATE INDEX entries_time ON entries(time_us, laptop_id, seq, device_model, event, outcome);
CREATE INDEX entries_serial ON entries(device_serial, time_us, laptop_id, seq);
CREATE INDEX entries_technician ON entries(technician, time_us, laptop_id, seq);
CREATE INDEX entries_site ON entries(site, time_us, laptop_id, seq);
CREATE INDEX entries_event ON entries(event, time_us, laptop_id, seq, device_model, outcome);
CREATE INDEX entries_model ON entries(device_model, time_us, laptop_id, seq, event, outcome);
CREATE INDEX entries_outcome ON entries(outcome, time_us, laptop_id, seq, device_model, event);
CREATE TABLE firmware_counts(
    model TEXT NOT NULL,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    devices INTEGER NOT NULL,
    PRIMARY KEY(model, component, version)
) STRICT, WITHOUT ROWID;
INSERT INTO firmware_counts(model, component, version, devices)
    SELECT model, component, version, COUNT(*) FROM device_firmware
    GROUP BY model, component, version;
";

/// Entries appended between two `PRAGMA optimize` runs (planner statistics).
const OPTIMIZE_EVERY: u64 = 20_000;

const EVIDENCE: [&str; 4] = ["entries", "tree_hashes", "checkpoints", "forks"];

const SCHEMA: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE laptops(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    origin TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    last_leaf BLOB,
    receipt_size INTEGER NOT NULL DEFAULT 0,
    last_sync TEXT
) STRICT;
CREATE TABLE managers(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE sessions(
    token_hash BLOB PRIMARY KEY,
    manager_id INTEGER NOT NULL REFERENCES managers(id),
    expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE entries(
    laptop_id INTEGER NOT NULL REFERENCES laptops(id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    leaf BLOB NOT NULL,
    time_us INTEGER NOT NULL,
    technician TEXT NOT NULL,
    site TEXT NOT NULL,
    device_serial TEXT,
    device_model TEXT,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    closes INTEGER,
    clock_flag INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY(laptop_id, seq)
) STRICT;
CREATE INDEX entries_time ON entries(time_us);
CREATE INDEX entries_serial ON entries(device_serial, time_us);
CREATE INDEX entries_technician ON entries(technician, time_us);
CREATE INDEX entries_site ON entries(site, time_us);
CREATE INDEX entries_event ON entries(event, time_us);
CREATE INDEX entries_closes ON entries(laptop_id, closes) WHERE closes IS NOT NULL;
CREATE TABLE tree_hashes(
    laptop_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY(laptop_id, idx)
) STRICT;
CREATE TABLE checkpoints(
    laptop_id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY(laptop_id, size)
) STRICT;
CREATE TABLE forks(
    id INTEGER PRIMARY KEY,
    laptop_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    held TEXT NOT NULL,
    sent TEXT NOT NULL,
    detected_at TEXT NOT NULL
) STRICT;
CREATE INDEX forks_seq ON forks(laptop_id, seq);
CREATE TABLE devices(
    serial TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    recency BLOB NOT NULL,
    time_us INTEGER NOT NULL,
    site TEXT NOT NULL,
    technician TEXT NOT NULL,
    last_event TEXT NOT NULL,
    device TEXT NOT NULL
) STRICT;
CREATE INDEX devices_model ON devices(model, serial);
CREATE TABLE device_firmware(
    serial TEXT NOT NULL,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    model TEXT NOT NULL,
    PRIMARY KEY(serial, component)
) STRICT;
CREATE INDEX device_firmware_version ON device_firmware(model, component, version);
";

/// The SQLite store.
pub struct SqliteStore {
    writer: WriterLock,
    /// The reader, and the statistics generation its planner has loaded.
    reader: Arc<Mutex<(Connection, u64)>>,
    path: PathBuf,
    /// Bumped whenever the writer refreshes the planner statistics.
    stats: Arc<AtomicU64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn joined(e: tokio::task::JoinError) -> StoreError {
    StoreError::Db(format!("database worker failed: {e}"))
}

/// Creates the file 0600 if it does not exist, and narrows it to 0600 if it does.
fn private_file(path: &Path) -> Result<(), StoreError> {
    fieldkit_private::touch(path).map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
    // A server's cache, not a library's 2 MiB: the timeline indexes of a large hub are read
    // and written all over with every batch. And fewer, larger checkpoints of the WAL into the
    // database, so a page written by many batches is copied once per checkpoint.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(db)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)
        .map_err(db)?;
    Ok(conn)
}

/// Page cache per connection, in KiB (two connections).
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages after which the writer checkpoints the WAL itself (4 KiB pages: 512 MiB). Only a
/// backstop: the checkpoint thread keeps the WAL well below it.
const WAL_BACKSTOP_PAGES: c_int = 131_072;
/// WAL pages after which a commit wakes the checkpoint thread (128 MiB): fewer, larger
/// checkpoints copy a page written by many batches once.
const CHECKPOINT_PAGES: c_int = 32_768;

thread_local! {
    /// Pages in the WAL after the last commit on this thread, noted by [`wal_committed`].
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// The writer's WAL hook, which SQLite runs on the committing thread after each commit (in
/// place of `wal_autocheckpoint`'s): notes the WAL's size for the committer, and past
/// [`WAL_BACKSTOP_PAGES`] checkpoints on the writer itself. The commit has happened by then, so a
/// failed checkpoint is not the commit's failure: it is left to the next one.
fn wal_committed(wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    if pages > WAL_BACKSTOP_PAGES {
        let _ = wal.checkpoint();
    }
    Ok(())
}

/// Starts the thread that checkpoints the WAL off the writer's path, and returns what wakes it.
///
/// Each wake-up copies the WAL into the database in two passive checkpoints on a connection of
/// its own: the first while the writer goes on appending (most of the work), the second with the
/// writer held, for what was committed meanwhile. The WAL is then all in the database, so the next
/// transaction writes the WAL from its start again: the WAL stays near [`CHECKPOINT_PAGES`] plus
/// the pages committed during one checkpoint, and the writer's own checkpoint at
/// [`WAL_BACKSTOP_PAGES`] bounds it if this thread cannot keep up. A checkpoint only
/// copies committed pages (both files fsynced, `synchronous=FULL`), so it never loses one.
///
/// The writer holds what wakes the thread, and the thread holds the writer weakly: the thread
/// ends when the writer is dropped.
fn start_checkpoints(
    path: &Path,
    writer: std::sync::Weak<tokio::sync::Mutex<Writer>>,
    woken: std::sync::mpsc::Receiver<()>,
) -> Result<(), StoreError> {
    let conn = connect(path)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                let Some(writer) = writer.upgrade() else {
                    break;
                };
                if let Err(e) = checkpoint_wal(&conn, &writer) {
                    tracing::warn!("WAL checkpoint failed (retried at the next wake-up; the writer's backstop bounds the WAL): {e}");
                }
            }
        })
        .map_err(|e| StoreError::Db(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

/// One wake-up of the checkpoint thread (see [`start_checkpoints`]), on its own connection.
fn checkpoint_wal(
    conn: &Connection,
    writer: &tokio::sync::Mutex<Writer>,
) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(db)?;
    let _writer = writer.blocking_lock();
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(db)
}

impl SqliteStore {
    /// The file path of `sqlite:PATH` or `sqlite://PATH`.
    pub fn path_of_url(url: &str) -> Result<PathBuf, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| StoreError::UnsupportedUrl { url: url.into() })?;
        Ok(PathBuf::from(path))
    }

    /// Opens a store from a URL: `sqlite:PATH` or `sqlite://PATH`.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open(&Self::path_of_url(url)?)
    }

    /// Opens (creating if needed, 0600) the hub database at `path`, migrating it to the current
    /// schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        private_file(path)?;
        let conn = connect(path)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION || version == 1 {
            return Err(StoreError::Schema {
                what: path.display().to_string(),
                found: version,
                required: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            migrate(&conn)?;
        }
        // Planner statistics for tables that lack them or grew (cheap: analysis_limit).
        conn.execute_batch("PRAGMA analysis_limit = 10000; PRAGMA optimize = 0x10002;")
            .map_err(db)?;
        let reader = connect(path)?;
        conn.wal_hook(Some(wal_committed));
        // The writer's statement journals (what undoes a statement that fails after writing
        // some of its rows) stay in memory, not in a temporary file. They only ever undo a
        // statement inside a live transaction: recovery after a crash never reads them.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(db)?;
        let stats = Arc::new(AtomicU64::new(0));
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let writer = WriterLock::new(Writer::new(
            conn,
            Arc::new(AtomicU64::new(0)),
            stats.clone(),
            wake,
        ));
        start_checkpoints(path, Arc::downgrade(writer.mutex()), woken)?;
        Ok(Self {
            writer,
            reader: Arc::new(Mutex::new((reader, 0))),
            path: path.into(),
            stats,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Begins a batch for `laptop`: takes the writer, opens the batch (in the open group or a
    /// new one) and reads the laptop's state inside the transaction.
    async fn begin_batch(&self, laptop: &Laptop) -> Result<SqliteTx, StoreError> {
        let conn = self.writer.lock().await;
        let id = laptop.id;
        let (conn, state) = tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            let state = conn.begin_batch().and_then(|()| {
                let (size, leaf): (u64, Option<Vec<u8>>) = conn
                    .conn
                    .query_row(
                        "SELECT size, last_leaf FROM laptops WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(db)?;
                Ok(LogState {
                    size,
                    last_leaf: leaf_of(leaf)?,
                })
            });
            (conn, state)
        })
        .await
        .map_err(joined)?;
        Ok(SqliteTx {
            state: state?,
            conn: Some(conn),
            writer: self.writer.clone(),
            laptop: id,
            added: 0,
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        let stats = self.stats.load(Ordering::Acquire);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = reader.lock().unwrap_or_else(|p| p.into_inner());
            let (conn, loaded) = &mut *guard;
            if *loaded != stats {
                // A connection reads the planner statistics when it opens (reloading them in
                // place would take the write lock): the writer refreshed them, so reopen.
                *conn = connect(&path)?;
                *loaded = stats;
            }
            f(conn)
        })
        .await
        .map_err(joined)?
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.write(f).await
    }
}

fn create(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA).map_err(db)?;
    append_only(conn, &EVIDENCE)?;
    conn.pragma_update(None, "user_version", 2).map_err(db)
}

/// Version 3 adds the post-market tables; nothing held changes.
fn migrate_3(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(postmarket::SCHEMA_3).map_err(db)?;
    append_only(conn, &postmarket::EVIDENCE_3)
}

/// See [`MIGRATION_4`].
fn migrate_4(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATION_4).map_err(db)
}

/// Tables every append writes, keyed by their primary key alone (migration 5).
const CLUSTERED: [&str; 3] = ["tree_hashes", "device_firmware", "installed"];

/// Version 5: the tables an append writes by primary key are stored in that key's order
/// (`WITHOUT ROWID`), so that a row written is one B-tree written, not a row and its key's
/// index. Their indexes and triggers are kept as they are.
fn migrate_5(conn: &Connection) -> Result<(), StoreError> {
    for table in CLUSTERED {
        without_rowid(conn, table)?;
    }
    Ok(())
}

/// Version 6 drops the event index: an event filter also selects by the outcome it implies
/// ([`crate::rules::EntryQuery::outcome_filter`]), which `entries_outcome` serves, and carries the
/// event. Every index ordered by time takes a batch's entries on the same few hundred pages as
/// the batches of the other laptops syncing at once, so each one costs a commit those pages.
fn migrate_6(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("DROP INDEX entries_event").map_err(db)
}

/// Version 7 finds a device's install history through its entries (`entries_serial`, then the
/// history rows of each entry) instead of an index of its own by serial. An observation's serial
/// is its entry's device serial: both are read from the one device record
/// ([`crate::postmarket::observe::installs`]). An index by serial takes every batch's rows on
/// pages all over it, one page written per device per commit; the history by entry takes a
/// batch's rows on the few pages at the end of its laptop's.
fn migrate_7(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "DROP INDEX install_history_serial;
         CREATE INDEX install_history_entry ON install_history(origin, seq);",
    )
    .map_err(db)
}

/// Rebuilds `table` (which has a primary key) as `WITHOUT ROWID`, with the same columns, rows,
/// indexes and triggers.
fn without_rowid(conn: &Connection, table: &str) -> Result<(), StoreError> {
    let sql_of = |kind: &str| -> Result<Vec<String>, StoreError> {
        let mut stmt = conn
            .prepare(
                "SELECT sql FROM sqlite_schema WHERE type = ?1 AND tbl_name = ?2 AND sql IS NOT NULL
                 ORDER BY name",
            )
            .map_err(db)?;
        let rows = stmt.query_map([kind, table], |r| r.get(0)).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    };
    let create = sql_of("table")?
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("table {table} is missing")))?;
    let (indexes, triggers) = (sql_of("index")?, sql_of("trigger")?);
    let rebuilt = format!(
        "{}, WITHOUT ROWID",
        create.replacen(
            &format!("CREATE TABLE {table}("),
            "CREATE TABLE fieldkit_rebuilt(",
            1
        )
    );
    if !rebuilt.starts_with("CREATE TABLE fieldkit_rebuilt(") {
        return Err(StoreError::Corrupt(format!(
            "table {table} is defined as {create:?}"
        )));
    }
    conn.execute_batch(&format!(
        "{rebuilt};
         INSERT INTO fieldkit_rebuilt SELECT * FROM {table};
         DROP TABLE {table};
         ALTER TABLE fieldkit_rebuilt RENAME TO {table};"
    ))
    .map_err(db)?;
    for sql in indexes.iter().chain(&triggers) {
        conn.execute_batch(sql).map_err(db)?;
    }
    Ok(())
}

fn append_only(conn: &Connection, tables: &[&str]) -> Result<(), StoreError> {
    for t in tables {
        for op in ["UPDATE", "DELETE"] {
            conn.execute_batch(&format!(
                "CREATE TRIGGER {t}_no_{lower} BEFORE {op} ON {t} BEGIN \
                 SELECT RAISE(ABORT, 'hub evidence is append-only: {op} on {t} refused'); END;",
                lower = op.to_lowercase()
            ))
            .map_err(db)?;
        }
    }
    Ok(())
}

/// Brings a database to [`SCHEMA_VERSION`]: creates version 2 in an empty one, then applies
/// each migration above its version, one transaction each. Another process doing the same at
/// once waits for the lock and then finds the work done.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let step = |f: &dyn Fn(i64) -> Result<(), StoreError>| -> Result<(), StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db)?;
        match f(version) {
            Ok(()) => conn.execute_batch("COMMIT").map_err(db),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    };
    step(&|version| if version == 0 { create(conn) } else { Ok(()) })?;
    for (number, migration) in MIGRATIONS {
        step(&|version| {
            if version + 1 != *number {
                return Ok(());
            }
            migration(conn)?;
            conn.pragma_update(None, "user_version", number).map_err(db)
        })?;
    }
    Ok(())
}

fn laptop_from_row(
    id: i64,
    name: String,
    origin: String,
    pem: String,
) -> Result<Laptop, StoreError> {
    let key = parse_public_key_pem(&pem).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Laptop {
        id,
        name,
        origin,
        key,
    })
}

fn leaf_of(v: Option<Vec<u8>>) -> Result<[u8; 32], StoreError> {
    match v {
        None => Ok([0; 32]),
        Some(v) => v
            .try_into()
            .map_err(|_| StoreError::Corrupt("a laptop's last leaf is not 32 bytes".into())),
    }
}

/// One batch: the writer, held from `begin_log` to its commit or rollback, with the batch open.
/// Dropping it (a cancelled append) undoes nothing if it wrote nothing, and otherwise rolls back
/// its group ([`writer`]).
struct SqliteTx {
    conn: Option<WriterGuard>,
    writer: WriterLock,
    laptop: i64,
    state: LogState,
    /// Entries this transaction appended.
    added: u64,
}

impl SqliteTx {
    fn take(&mut self) -> Result<WriterGuard, StoreError> {
        self.conn
            .take()
            .ok_or_else(|| StoreError::Db("the transaction was lost by an earlier error".into()))
    }

    async fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.take()?;
        let laptop = self.laptop;
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&conn.conn, laptop);
            (conn, out)
        })
        .await
        .map_err(joined)?;
        self.conn = Some(conn);
        out
    }
}

#[async_trait]
impl LogTx for SqliteTx {
    fn state(&self) -> LogState {
        self.state
    }

    async fn bodies(&mut self, range: Range<u64>) -> Result<Vec<String>, StoreError> {
        self.run(move |c, laptop| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, body FROM entries WHERE laptop_id = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![laptop, range.start, range.end], |r| {
                    Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for (i, row) in rows.enumerate() {
                let (seq, body) = row.map_err(db)?;
                if seq != range.start + i as u64 {
                    return Err(StoreError::Corrupt(format!("entry {} missing", range.start + i as u64)));
                }
                out.push(body);
            }
            if out.len() as u64 != range.end - range.start {
                return Err(StoreError::Corrupt(format!(
                    "entries {}..{} asked, {} held",
                    range.start,
                    range.end,
                    out.len()
                )));
            }
            Ok(out)
        })
        .await
    }

    async fn read_hashes(&mut self, idx: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        let idx = idx.to_vec();
        self.run(move |c, laptop| {
            let mut stmt = c
                .prepare_cached("SELECT hash FROM tree_hashes WHERE laptop_id = ?1 AND idx = ?2")
                .map_err(db)?;
            let mut out = Vec::with_capacity(idx.len());
            for i in idx {
                let h: Option<Vec<u8>> = stmt
                    .query_row(params![laptop, i], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                match h.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
                    Some(h) => out.push(h),
                    None => return Err(StoreError::Corrupt(format!("tree hash {i} missing"))),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn checkpoint(&mut self, size: u64) -> Result<Option<String>, StoreError> {
        self.run(move |c, laptop| {
            c.query_row(
                "SELECT note FROM checkpoints WHERE laptop_id = ?1 AND size = ?2",
                params![laptop, size],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn append(&mut self, rows: AppendRows) -> Result<(), StoreError> {
        let Some(last) = rows.entries.last() else {
            return Ok(());
        };
        let (size, last_leaf) = (last.seq + 1, last.leaf);
        let added = rows.entries.len() as u64;
        self.run(move |c, laptop| {
            let received = now();
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO entries(laptop_id, seq, body, leaf, time_us, technician, site, device_serial,
                       device_model, event, outcome, closes, clock_flag, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(db)?;
            for r in &rows.entries {
                ins.execute(params![
                    laptop,
                    r.seq,
                    r.body,
                    r.leaf.as_slice(),
                    r.time_us,
                    r.technician,
                    r.site,
                    r.device_serial,
                    r.device_model,
                    r.event,
                    r.outcome,
                    r.closes,
                    r.clock_flag,
                    received
                ])
                .map_err(db)?;
            }
            let mut ins = c
                .prepare_cached("INSERT INTO tree_hashes(laptop_id, idx, hash) VALUES (?1, ?2, ?3)")
                .map_err(db)?;
            for (i, h) in rows.hashes.iter().enumerate() {
                ins.execute(params![laptop, rows.hashes_start + i as u64, h.as_slice()])
                    .map_err(db)?;
            }
            c.execute(
                "INSERT OR IGNORE INTO checkpoints(laptop_id, size, note, received_at) VALUES (?1, ?2, ?3, ?4)",
                params![laptop, size, rows.checkpoint, received],
            )
            .map_err(db)?;
            let mut upsert = c
                .prepare_cached(
                    "INSERT INTO devices(serial, model, recency, time_us, site, technician, last_event, device)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(serial) DO UPDATE SET model = excluded.model, recency = excluded.recency,
                       time_us = excluded.time_us, site = excluded.site, technician = excluded.technician,
                       last_event = excluded.last_event, device = excluded.device
                     WHERE excluded.recency > devices.recency",
                )
                .map_err(db)?;
            // A device seen again under the same model: an UPDATE that leaves `devices_model`
            // alone. The upsert sets the model, and SQLite rewrites an index entry whose column
            // is set even to the same value: a random page of the index per device per batch.
            let mut refresh = c
                .prepare_cached(
                    "UPDATE devices SET recency = ?3, time_us = ?4, site = ?5, technician = ?6,
                       last_event = ?7, device = ?8
                     WHERE serial = ?1 AND model = ?2 AND recency < ?3",
                )
                .map_err(db)?;
            let mut held = c
                .prepare_cached(
                    "SELECT component, version, model FROM device_firmware WHERE serial = ?1",
                )
                .map_err(db)?;
            let mut gone = c
                .prepare_cached("DELETE FROM device_firmware WHERE serial = ?1 AND component = ?2")
                .map_err(db)?;
            let mut fw = c
                .prepare_cached(
                    "INSERT INTO device_firmware(serial, component, version, model) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(serial, component) DO UPDATE SET version = excluded.version,
                       model = excluded.model",
                )
                .map_err(db)?;
            let mut counts = super::CountDeltas::default();
            for d in &rows.devices {
                let values = params![
                    d.serial,
                    d.model,
                    d.recency,
                    d.time_us,
                    d.site,
                    d.technician,
                    d.last_event,
                    d.device
                ];
                let changed = match refresh.execute(values).map_err(db)? {
                    0 => upsert.execute(values).map_err(db)?,
                    n => n,
                };
                if changed == 0 {
                    continue;
                }
                let held = held
                    .query_map([&d.serial], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(db)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db)?;
                let change = counts.firmware_change(held, d);
                for component in &change.delete {
                    gone.execute(params![d.serial, component]).map_err(db)?;
                }
                for (component, version) in &change.write {
                    fw.execute(params![d.serial, component, version, d.model])
                        .map_err(db)?;
                }
            }
            let mut count = c
                .prepare_cached(
                    "INSERT INTO firmware_counts(model, component, version, devices) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO UPDATE SET devices = devices + excluded.devices",
                )
                .map_err(db)?;
            for ((model, component, version), delta) in counts.changed() {
                count
                    .execute(params![model, component, version, delta])
                    .map_err(db)?;
            }
            postmarket::append_installs(c, &rows.installs)?;
            c.execute(
                "UPDATE laptops SET size = ?2, last_leaf = ?3, receipt_size = MAX(receipt_size, ?2), last_sync = ?4
                 WHERE id = ?1",
                params![laptop, size, last_leaf.as_slice(), received],
            )
            .map_err(db)?;
            Ok(())
        })
        .await?;
        self.added += added;
        self.state = LogState { size, last_leaf };
        Ok(())
    }

    async fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), StoreError> {
        let note = note.to_owned();
        self.run(move |c, laptop| {
            let at = now();
            c.execute(
                "INSERT OR IGNORE INTO checkpoints(laptop_id, size, note, received_at) VALUES (?1, ?2, ?3, ?4)",
                params![laptop, size, note, at],
            )
            .map_err(db)?;
            c.execute(
                "UPDATE laptops SET receipt_size = MAX(receipt_size, ?2), last_sync = ?3 WHERE id = ?1",
                params![laptop, size, at],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn record_fork(&mut self, fork: &NewFork) -> Result<(), StoreError> {
        let fork = fork.clone();
        self.run(move |c, laptop| {
            c.execute(
                "INSERT INTO forks(laptop_id, seq, held, sent, detected_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![laptop, fork.seq, fork.held, fork.sent, now()],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// Returns once the batch is durable: committed by itself or by its group (see [`writer`]).
    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let conn = self.take()?;
        self.writer.finish(conn, self.added).await
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), StoreError> {
        let conn = self.take()?;
        // Letting go of the writer undoes the batch: nothing if it wrote nothing (a refusal), its
        // whole group if it did (see `writer`).
        tokio::task::spawn_blocking(move || drop(conn))
            .await
            .map_err(joined)
    }
}

/// Builds the WHERE clause of a query: equalities and a time range, nothing else.
fn where_sql(q: &EntryQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut clauses = Vec::new();
    let mut args: Vec<V> = Vec::new();
    let mut push = |sql: &str, v: V| {
        args.push(v);
        clauses.push(format!("{sql} ?{}", args.len()));
    };
    let outcome = q.outcome_filter();
    let texts = [
        ("e.technician =", &q.technician),
        ("e.site =", &q.site),
        ("e.device_serial =", &q.serial),
        ("e.device_model =", &q.model),
        ("e.event =", &q.event),
        ("e.outcome =", &outcome),
        ("l.origin =", &q.origin),
    ];
    for (sql, v) in texts {
        if let Some(v) = v {
            push(sql, V::Text(v.clone()));
        }
    }
    if let Some(from) = q.from_us {
        push("e.time_us >=", V::Integer(from));
    }
    if let Some(to) = q.to_us {
        push("e.time_us <=", V::Integer(to));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, args)
}

fn device_where(q: &DeviceQuery) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    for (col, v) in [("model", &q.model), ("serial", &q.serial)] {
        if let Some(v) = v {
            args.push(v.clone());
            clauses.push(format!("{col} = ?{}", args.len()));
        }
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, args)
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn postmarket(&self) -> &dyn crate::postmarket::PostmarketStore {
        self
    }

    async fn enroll_laptop(&self, name: &str, key: &VerifyingKey) -> Result<Laptop, StoreError> {
        let (name, key) = (name.to_owned(), *key);
        self.write(move |c| {
            let origin = key_name(LAPTOP_PREFIX, &key);
            match c.execute(
                "INSERT INTO laptops(name, origin, public_key, enrolled_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, origin, public_key_pem(&key), now()],
            ) {
                Ok(_) => Ok(Laptop {
                    id: c.last_insert_rowid(),
                    name,
                    origin,
                    key,
                }),
                Err(e) if is_constraint(&e) => Err(StoreError::Exists {
                    what: "laptop (name or key)",
                    name,
                }),
                Err(e) => Err(db(e)),
            }
        })
        .await
    }

    async fn laptop_by_origin(&self, origin: &str) -> Result<Option<Laptop>, StoreError> {
        let origin = origin.to_owned();
        self.read(move |c| {
            let row: Option<(i64, String, String, String)> = c
                .query_row(
                    "SELECT id, name, origin, public_key FROM laptops WHERE origin = ?1",
                    [origin],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(db)?;
            row.map(|(id, n, o, k)| laptop_from_row(id, n, o, k))
                .transpose()
        })
        .await
    }

    async fn laptops(&self) -> Result<Vec<LaptopStatus>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT l.name, l.origin, l.size, l.receipt_size, l.last_sync,
                       (SELECT COUNT(*) FROM forks f WHERE f.laptop_id = l.id)
                     FROM laptops l ORDER BY l.name",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(LaptopStatus {
                        name: r.get(0)?,
                        origin: r.get(1)?,
                        size: r.get(2)?,
                        receipt_size: r.get(3)?,
                        last_sync: r.get(4)?,
                        forks: r.get(5)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn add_manager(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |c| {
            match c.execute(
                "INSERT INTO managers(name, password_hash, created_at) VALUES (?1, ?2, ?3)",
                params![name, hash, now()],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_constraint(&e) => Err(StoreError::Exists {
                    what: "manager",
                    name,
                }),
                Err(e) => Err(db(e)),
            }
        })
        .await
    }

    async fn manager(&self, name: &str) -> Result<Option<ManagerRow>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT id, name, password_hash FROM managers WHERE name = ?1",
                [name],
                |r| {
                    Ok(ManagerRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        password_hash: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn create_session(
        &self,
        manager: i64,
        token_hash: &[u8; 32],
        expires: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let hash = *token_hash;
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE expires_at < ?1", [now])
                .map_err(db)?;
            c.execute(
                "INSERT INTO sessions(token_hash, manager_id, expires_at) VALUES (?1, ?2, ?3)",
                params![hash.as_slice(), manager, expires],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<String>, StoreError> {
        let hash = *token_hash;
        self.read(move |c| {
            c.query_row(
                "SELECT m.name FROM sessions s JOIN managers m ON m.id = s.manager_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![hash.as_slice(), now],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        let hash = *token_hash;
        self.write(move |c| {
            c.execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [hash.as_slice()],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn begin_log(&self, laptop: &Laptop) -> Result<Box<dyn LogTx>, StoreError> {
        Ok(Box::new(self.begin_batch(laptop).await?))
    }

    async fn entries(&self, q: &EntryQuery) -> Result<Vec<StoredEntry>, StoreError> {
        let (wh, args) = where_sql(q);
        let sql = format!(
            "SELECT e.laptop_id, l.name, l.origin, l.receipt_size, e.seq, e.time_us, e.technician,
                    e.site, e.device_serial, e.device_model, e.event, e.outcome, e.clock_flag, e.body
             FROM entries e JOIN laptops l ON l.id = e.laptop_id
             {wh}
             ORDER BY e.time_us DESC, e.laptop_id DESC, e.seq DESC
             LIMIT {} OFFSET {}",
            q.limit, q.offset
        );
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql).map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok(StoredEntry {
                        laptop_id: r.get(0)?,
                        laptop: r.get(1)?,
                        origin: r.get(2)?,
                        receipt_size: r.get(3)?,
                        seq: r.get(4)?,
                        time_us: r.get(5)?,
                        technician: r.get(6)?,
                        site: r.get(7)?,
                        device_serial: r.get(8)?,
                        device_model: r.get(9)?,
                        event: r.get(10)?,
                        outcome: r.get(11)?,
                        clock_flag: r.get(12)?,
                        body: r.get(13)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn count(&self, q: &EntryQuery, at_most: u64) -> Result<u64, StoreError> {
        let (wh, args) = where_sql(q);
        let join = if q.origin.is_some() {
            "JOIN laptops l ON l.id = e.laptop_id"
        } else {
            ""
        };
        let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
        let sql =
            format!("SELECT COUNT(*) FROM (SELECT 1 FROM entries e {join} {wh} LIMIT {at_most})");
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql).map_err(db)?;
            stmt.query_row(params_from_iter(args.iter()), |r| r.get(0))
                .map_err(db)
        })
        .await
    }

    async fn entry_facts(&self, keys: &[(i64, u64)]) -> Result<EntryFacts, StoreError> {
        let keys = keys.to_vec();
        self.read(move |c| {
            let mut facts = EntryFacts::default();
            let mut closer = c
                .prepare_cached(
                    "SELECT 1 FROM entries WHERE laptop_id = ?1 AND closes = ?2 LIMIT 1",
                )
                .map_err(db)?;
            let mut fork = c
                .prepare_cached("SELECT 1 FROM forks WHERE laptop_id = ?1 AND seq = ?2 LIMIT 1")
                .map_err(db)?;
            for (laptop, seq) in keys {
                if closer.exists(params![laptop, seq]).map_err(db)? {
                    facts.closed.insert((laptop, seq));
                }
                if fork.exists(params![laptop, seq]).map_err(db)? {
                    facts.forked.insert((laptop, seq));
                }
            }
            Ok(facts)
        })
        .await
    }

    async fn devices(&self, q: &DeviceQuery) -> Result<Vec<StoredDevice>, StoreError> {
        let (wh, args) = device_where(q);
        let sql = format!(
            // The page's serials are found in the (model, serial) index alone, however deep
            // the offset; only the page's own rows are then read.
            "SELECT d.serial, d.model, d.time_us, d.site, d.technician, d.last_event, d.device
             FROM (SELECT serial FROM devices {wh} ORDER BY model, serial LIMIT {} OFFSET {}) AS p
             JOIN devices d ON d.serial = p.serial
             ORDER BY d.model, d.serial",
            q.limit, q.offset
        );
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql).map_err(db)?;
            let mut fw = c
                .prepare_cached(
                    "SELECT component, version FROM device_firmware WHERE serial = ?1 ORDER BY component",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok(StoredDevice {
                        serial: r.get(0)?,
                        model: r.get(1)?,
                        time_us: r.get(2)?,
                        site: r.get(3)?,
                        technician: r.get(4)?,
                        last_event: r.get(5)?,
                        device: r.get(6)?,
                        firmware: Vec::new(),
                    })
                })
                .map_err(db)?;
            let mut out: Vec<StoredDevice> = rows.collect::<Result<_, _>>().map_err(db)?;
            for d in &mut out {
                d.firmware = fw
                    .query_map([&d.serial], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?;
            }
            Ok(out)
        })
        .await
    }

    async fn device_count(&self, q: &DeviceQuery) -> Result<u64, StoreError> {
        let (wh, args) = device_where(q);
        let sql = format!("SELECT COUNT(*) FROM devices {wh}");
        self.read(move |c| {
            c.query_row(&sql, params_from_iter(args.iter()), |r| r.get(0))
                .map_err(db)
        })
        .await
    }

    async fn version_counts(&self) -> Result<Vec<VersionCount>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT model, component, version, devices FROM firmware_counts
                     WHERE devices > 0 ORDER BY model, component, version",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(VersionCount {
                        model: r.get(0)?,
                        component: r.get(1)?,
                        version: r.get(2)?,
                        devices: r.get(3)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn forks(&self) -> Result<Vec<ForkRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT l.name, l.origin, f.seq, f.held, f.sent, f.detected_at
                     FROM forks f JOIN laptops l ON l.id = f.laptop_id ORDER BY f.id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(ForkRow {
                        laptop: r.get(0)?,
                        origin: r.get(1)?,
                        seq: r.get(2)?,
                        held: r.get(3)?,
                        sent: r.get(4)?,
                        detected_at: r.get(5)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn latest_checkpoints(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT l.origin, c.note FROM laptops l JOIN checkpoints c
                       ON c.laptop_id = l.id AND c.size = l.receipt_size
                     ORDER BY l.origin",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as a version-4 hub left it, with a row in each table migration 5 rebuilds.
    fn version_4(path: &Path) -> Connection {
        let conn = connect(path).unwrap();
        create(&conn).unwrap();
        migrate_3(&conn).unwrap();
        migrate_4(&conn).unwrap();
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            "INSERT INTO tree_hashes(laptop_id, idx, hash) VALUES (1, 0, x'00'), (1, 1, x'01');
             INSERT INTO device_firmware(serial, component, version, model)
               VALUES ('SN-1', 'app', '1.2.3', 'pump');
             INSERT INTO installed(serial, component, product, model, hardware, version, image_hash,
               security_counter, site, customer, technician, event, package, manifest_sha256,
               sbom_sha256, time_us, recency, origin, seq)
               VALUES ('SN-1', 'app', 'acme', 'pump', 'C', '1.2.3', '', NULL, 'ICU', '', 'ana',
                 'device_identified', '', '', '', 7, x'07', 'laptop', 3);",
        )
        .unwrap();
        conn
    }

    /// Commits `n` transactions of a few pages each on the writer.
    fn commit_some(store: &SqliteStore, n: u32) {
        let writer = store.writer.mutex().blocking_lock();
        for i in 0..n {
            writer
                .conn
                .execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                    params![format!("k{i}"), "x".repeat(3000)],
                )
                .unwrap();
        }
    }

    #[test]
    fn the_checkpoint_thread_lets_the_next_commit_write_the_wal_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let store = SqliteStore::open(&path).unwrap();
        let wal = || {
            std::fs::metadata(dir.path().join("hub.db-wal"))
                .unwrap()
                .len()
        };
        commit_some(&store, 300);
        let once = wal();
        commit_some(&store, 300);
        let twice = wal();
        assert!(
            twice > once * 3 / 2,
            "the WAL grew from {once} to {twice} bytes"
        );
        // The hook saw every page of it: a 32-byte header, then frames of a page and 24 bytes.
        let pages = WAL_PAGES.get();
        assert_eq!(u64::try_from(pages).unwrap() * (4096 + 24) + 32, twice);
        checkpoint_wal(&connect(&path).unwrap(), store.writer.mutex()).unwrap();
        commit_some(&store, 300);
        assert_eq!(
            wal(),
            twice,
            "after a checkpoint the WAL is written again from its start"
        );
        assert!(
            WAL_PAGES.get() < pages * 2 / 3,
            "{} WAL pages",
            WAL_PAGES.get()
        );
    }

    /// A store with laptops `a` and `b` enrolled.
    async fn two_laptops(dir: &Path) -> (SqliteStore, Laptop, Laptop) {
        let store = SqliteStore::open(&dir.join("hub.db")).unwrap();
        let key = |n: u8| ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key();
        let a = store.enroll_laptop("a", &key(1)).await.unwrap();
        let b = store.enroll_laptop("b", &key(2)).await.unwrap();
        (store, a, b)
    }

    /// Entries `from..from + n` of a laptop (the store checks nothing of them).
    fn rows(from: u64, n: u64) -> AppendRows {
        let entries = (from..from + n)
            .map(|seq| super::super::NewEntryRow {
                seq,
                body: format!("{{\"seq\":{seq}}}"),
                leaf: [seq as u8; 32],
                time_us: 1_000 + seq as i64,
                technician: "ana".into(),
                site: "ICU".into(),
                device_serial: None,
                device_model: None,
                event: "note".into(),
                outcome: "none".into(),
                closes: None,
                clock_flag: false,
            })
            .collect();
        AppendRows {
            entries,
            hashes_start: from,
            hashes: (from..from + n).map(|i| [i as u8; 32]).collect(),
            checkpoint: format!("checkpoint {}", from + n),
            ..Default::default()
        }
    }

    /// Polls a future once, from the calling task.
    async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
        std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx)))
            .await
    }

    /// Committed sizes of `a` and `b`, and the entries held, through the reader.
    async fn held(store: &SqliteStore) -> (Vec<u64>, u64) {
        let sizes = store
            .laptops()
            .await
            .unwrap()
            .iter()
            .map(|l| l.size)
            .collect();
        let all = store.count(&EntryQuery::default(), u64::MAX).await.unwrap();
        (sizes, all)
    }

    /// `a` holds the writer with a batch written and `b` waits for it; `a` commits and so joins
    /// a group that `b` then holds. Returns `a`'s pending commit and `b`'s batch.
    async fn a_joined_b_holds(
        store: &SqliteStore,
        a: &Laptop,
        b: &Laptop,
    ) -> (
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>,
        SqliteTx,
    ) {
        let mut ta = store.begin_batch(a).await.unwrap();
        let mut begin_b = Box::pin(store.begin_batch(b));
        assert!(
            poll_once(&mut begin_b).await.is_pending(),
            "b waits for the writer"
        );
        ta.append(rows(0, 3)).await.unwrap();
        let mut commit_a: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
            Box::pin(LogTx::commit(Box::new(ta)));
        assert!(poll_once(&mut commit_a).await.is_pending());
        // b gets the writer only once a has released its batch into the group.
        let tb = begin_b.await.unwrap();
        assert_eq!(tb.state.size, 0);
        assert!(
            poll_once(&mut commit_a).await.is_pending(),
            "no receipt for a while its group is not committed"
        );
        assert_eq!(
            held(store).await,
            (vec![0, 0], 0),
            "readers see nothing uncommitted"
        );
        (commit_a, tb)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_batch_in_a_group_undoes_nothing_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, b) = two_laptops(dir.path()).await;
        let (commit_a, mut tb) = a_joined_b_holds(&store, &a, &b).await;
        // Refused after reading, as a 409 or a bad root is: nothing was written.
        tb.bodies(0..0).await.unwrap();
        Box::new(tb).rollback().await.unwrap();
        commit_a.await.unwrap();
        assert_eq!(held(&store).await, (vec![3, 0], 3));
        // Both laptops go on from what is committed, b from nothing.
        let mut tb = store.begin_batch(&b).await.unwrap();
        assert_eq!(tb.state.size, 0);
        tb.append(rows(0, 2)).await.unwrap();
        Box::new(tb).commit().await.unwrap();
        assert_eq!(held(&store).await, (vec![3, 2], 5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_commits_its_members_together_and_each_sees_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, b) = two_laptops(dir.path()).await;
        let mut ta = store.begin_batch(&a).await.unwrap();
        let mut begin_b = Box::pin(store.begin_batch(&b));
        assert!(poll_once(&mut begin_b).await.is_pending());
        let mut begin_a2 = Box::pin(store.begin_batch(&a));
        assert!(poll_once(&mut begin_a2).await.is_pending());
        ta.append(rows(0, 3)).await.unwrap();
        let commit_a = tokio::spawn(LogTx::commit(Box::new(ta)));
        let mut tb = begin_b.await.unwrap();
        tb.append(rows(0, 4)).await.unwrap();
        let commit_b = tokio::spawn(LogTx::commit(Box::new(tb)));
        let mut ta2 = begin_a2.await.unwrap();
        assert_eq!(
            ta2.state.size, 3,
            "a's second batch starts where its first, in the same group, ended"
        );
        assert!(!commit_a.is_finished() && !commit_b.is_finished());
        assert_eq!(held(&store).await, (vec![0, 0], 0));
        ta2.append(rows(3, 1)).await.unwrap();
        // Nobody waits: the last member commits the group, and every receipt follows.
        Box::new(ta2).commit().await.unwrap();
        commit_a.await.unwrap().unwrap();
        commit_b.await.unwrap().unwrap();
        assert_eq!(held(&store).await, (vec![4, 4], 8));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_first_batch_of_a_group_leaves_nothing_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, b) = two_laptops(dir.path()).await;
        let mut ta = store.begin_batch(&a).await.unwrap();
        let mut begin_b = Box::pin(store.begin_batch(&b));
        assert!(poll_once(&mut begin_b).await.is_pending());
        ta.append(rows(0, 3)).await.unwrap();
        Box::new(ta).rollback().await.unwrap();
        let mut tb = begin_b.await.unwrap();
        tb.append(rows(0, 2)).await.unwrap();
        Box::new(tb).commit().await.unwrap();
        assert_eq!(held(&store).await, (vec![0, 2], 2));
        // Nothing is left open on the writer: another connection can write.
        connect(store.path())
            .unwrap()
            .execute_batch("BEGIN IMMEDIATE; COMMIT")
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_dropped_after_writing_rolls_back_its_group_and_every_member_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, b) = two_laptops(dir.path()).await;
        let (commit_a, mut tb) = a_joined_b_holds(&store, &a, &b).await;
        tb.append(rows(0, 2)).await.unwrap();
        // The task holding b's batch is dropped mid-append, after it wrote: its rows cannot be
        // undone alone, so nothing of the group is committed and a is told so.
        let mut append_b = Box::pin(async move { tb.append(rows(2, 2)).await });
        let _ = poll_once(&mut append_b).await;
        drop(append_b);
        let err = commit_a.await.unwrap_err();
        assert!(err.to_string().contains("send it again"), "{err}");
        assert_eq!(held(&store).await, (vec![0, 0], 0));
        // The writer goes on: both laptops send again, from what is committed.
        for laptop in [&a, &b] {
            let mut t = store.begin_batch(laptop).await.unwrap();
            assert_eq!(t.state.size, 0);
            t.append(rows(0, 1)).await.unwrap();
            Box::new(t).commit().await.unwrap();
        }
        assert_eq!(held(&store).await, (vec![1, 1], 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_fails_before_writing_leaves_its_group_to_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, b) = two_laptops(dir.path()).await;
        let (commit_a, mut tb) = a_joined_b_holds(&store, &a, &b).await;
        // Its one statement writes b's row, then fails on a row a holds: SQLite undoes the
        // statement, so the batch changed nothing and a's batch is committed.
        let err = tb
            .run(|c, _| {
                c.execute(
                    "INSERT INTO entries(laptop_id, seq, body, leaf, time_us, technician, site,
                       event, outcome, clock_flag, received_at)
                     VALUES (2, 0, '{}', x'00', 0, '', '', '', '', 0, ''),
                            (1, 0, '{}', x'00', 0, '', '', '', '', 0, '')",
                    [],
                )
                .map_err(db)
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        Box::new(tb).rollback().await.unwrap();
        commit_a.await.unwrap();
        assert_eq!(held(&store).await, (vec![3, 0], 3), "b's row is undone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_group_commit_fails_every_member_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, b) = two_laptops(dir.path()).await;
        let (commit_a, mut tb) = a_joined_b_holds(&store, &a, &b).await;
        tb.append(rows(0, 2)).await.unwrap();
        // A row only the COMMIT refuses: a foreign key checked at the end of the transaction.
        tb.run(|c, _| {
            c.execute_batch(
                "PRAGMA defer_foreign_keys = ON;
                 INSERT INTO entries(laptop_id, seq, body, leaf, time_us, technician, site, event,
                   outcome, clock_flag, received_at)
                 VALUES (999, 0, '{}', x'00', 0, '', '', '', '', 0, '')",
            )
            .map_err(db)
        })
        .await
        .unwrap();
        let b_err = Box::new(tb).commit().await.unwrap_err();
        let a_err = commit_a.await.unwrap_err();
        for e in [&a_err, &b_err] {
            assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
        }
        assert_eq!(held(&store).await, (vec![0, 0], 0));
        let mut ta = store.begin_batch(&a).await.unwrap();
        assert_eq!(ta.state.size, 0);
        ta.append(rows(0, 3)).await.unwrap();
        Box::new(ta).commit().await.unwrap();
        assert_eq!(held(&store).await, (vec![3, 0], 3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_waiting_for_the_writer_commits_the_open_group_first() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, _) = two_laptops(dir.path()).await;
        let mut ta = store.begin_batch(&a).await.unwrap();
        let mut add = Box::pin(store.add_manager("mia", "$argon2id$x"));
        assert!(poll_once(&mut add).await.is_pending());
        ta.append(rows(0, 3)).await.unwrap();
        let (committed, added) = tokio::join!(Box::new(ta).commit(), add);
        committed.unwrap();
        added.unwrap();
        assert_eq!(held(&store).await, (vec![3, 0], 3));
        // Nothing is left open on the writer: another connection can write.
        connect(store.path())
            .unwrap()
            .execute_batch("BEGIN IMMEDIATE; COMMIT")
            .unwrap();
    }

    #[test]
    fn migrations_5_to_7_keep_rows_and_triggers_and_drop_two_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        drop(version_4(&path));
        let store = SqliteStore::open(&path).unwrap();
        let conn = connect(store.path()).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let sql = |kind: &str, name: &str| -> Option<String> {
            conn.query_row(
                "SELECT sql FROM sqlite_schema WHERE type = ?1 AND name = ?2",
                [kind, name],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
        };
        for table in CLUSTERED {
            let create = sql("table", table).unwrap();
            assert!(create.ends_with("STRICT, WITHOUT ROWID"), "{create}");
        }
        assert!(sql("table", "fieldkit_rebuilt").is_none());
        for index in [
            "device_firmware_version",
            "installed_key",
            "entries_outcome",
        ] {
            assert!(sql("index", index).is_some(), "{index} lost");
        }
        assert!(sql("index", "entries_event").is_none());
        assert!(sql("index", "install_history_serial").is_none());
        assert!(sql("index", "install_history_entry").is_some());
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(
            (
                count("tree_hashes"),
                count("device_firmware"),
                count("installed")
            ),
            (2, 1, 1)
        );
        let version: String = conn
            .query_row(
                "SELECT version FROM installed WHERE serial = 'SN-1' AND component = 'app'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, "1.2.3");
        // Evidence stays append-only.
        let err = conn
            .execute("UPDATE tree_hashes SET hash = x'ff' WHERE idx = 0", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = conn.execute("DELETE FROM tree_hashes", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        // Opening again changes nothing.
        drop(store);
        SqliteStore::open(&path).unwrap();
        assert_eq!(count("tree_hashes"), 2);
    }
}
