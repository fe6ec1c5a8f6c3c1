//! The SQLite-backed log.
//!
//! Schema (version 1), all tables `STRICT`, every table guarded by triggers refusing `UPDATE`
//! and `DELETE`:
//!
//! - `meta(key, value)`: the log's origin, written once.
//! - `entries(seq, body, leaf, event, closes)`: `body` is the exact JSON that was hashed;
//!   `leaf` its RFC 6962 leaf hash; `event` and `closes` (the intent an outcome closes) are
//!   indexes over the body that `verify` checks against it.
//! - `tree_hashes(idx, hash)`: the stored hashes of [`crate::merkle`].
//! - `checkpoints(size, note)`: every checkpoint this laptop signed.
//! - `receipts(hub, size, note, stored_at)`: hub receipts; the largest size per hub is the
//!   acked size, so the receipt and the acked size are one row, written in one transaction.
//!
//! Appends run in a `BEGIN IMMEDIATE` transaction (so two processes appending at once are
//! serialised by SQLite's lock, never interleaved) and the database runs in WAL mode with
//! `synchronous=FULL`, so a returned append has been fsynced.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use crate::checkpoint::SignedCheckpoint;
use crate::entry::{Entry, INTENT_SUFFIX, NewEntry, Record};
use crate::error::{
    AppendError, DbError, EntryProblem, OpenError, QueryError, ReceiptError, VerifyError,
};
use crate::identity::Identity;
use crate::merkle::{self, MissingStoredHashes, PendingTree};
use crate::record::{DeviceRecord, Interrupted};

/// The largest serialised entry: the hub refuses larger ones, so the log does too.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// The audit database's file name inside the fieldkit home directory.
pub const DB_FILE: &str = "audit.db";
/// The laptop key's path inside the fieldkit home directory.
pub const KEY_FILE: &str = "keys/laptop.pem";

const SCHEMA_VERSION: i64 = 1;
const ZERO_HASH_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Wall-clock and monotonic deltas further apart than this within one boot flag a clock change.
const CLOCK_TOLERANCE_SECS: i64 = 300;

const TABLES: [&str; 5] = ["meta", "entries", "tree_hashes", "checkpoints", "receipts"];

const SCHEMA: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE entries(
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    leaf BLOB NOT NULL,
    event TEXT NOT NULL,
    closes INTEGER
) STRICT;
CREATE INDEX entries_closes ON entries(closes) WHERE closes IS NOT NULL;
CREATE INDEX entries_intents ON entries(event) WHERE event LIKE '%\\_started' ESCAPE '\\';
CREATE TABLE tree_hashes(idx INTEGER PRIMARY KEY, hash BLOB NOT NULL) STRICT;
CREATE TABLE checkpoints(size INTEGER PRIMARY KEY, note TEXT NOT NULL) STRICT;
CREATE TABLE receipts(
    hub TEXT NOT NULL,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY(hub, size)
) STRICT;
";

/// The tamper-evident local audit log.
///
/// Methods take `&self`; the connection sits behind a mutex, so a log can be shared between
/// threads (and held across `.await` by the sync client).
pub struct AuditLog {
    conn: Mutex<Connection>,
    path: PathBuf,
    identity: Identity,
    boot_id: String,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("origin", &self.identity.name())
            .finish_non_exhaustive()
    }
}

/// What `verify` found when everything checks out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub size: u64,
    /// Recomputed root (hex).
    pub root: String,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// Hub receipts whose signature and root were checked.
    pub receipts: u64,
    /// The largest size acknowledged by a hub.
    pub acked_size: u64,
    /// Intents with no outcome yet (an update in progress in another process).
    pub pending_intents: u64,
    /// Entries whose wall clock moved differently from the monotonic clock within one boot.
    pub clock_flags: Vec<ClockFlag>,
}

/// An entry whose wall-clock time disagrees with the monotonic clock since the entry before it
/// in the same boot: the system clock was changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClockFlag {
    /// The entry.
    pub seq: u64,
    /// Wall-clock seconds since the previous entry.
    pub wall_delta_secs: i64,
    /// Monotonic seconds since the previous entry.
    pub mono_delta_secs: i64,
}

/// A hub receipt held locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The hub's note key name.
    pub hub: String,
    /// Entries acknowledged.
    pub size: u64,
    /// The checkpoint cosigned by the hub.
    pub checkpoint: SignedCheckpoint,
    /// When it was stored (RFC 3339).
    pub stored_at: String,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path`, owned by `identity`.
    ///
    /// Intents left without an outcome by a process that no longer runs get an
    /// `<action>_interrupted` entry before this returns.
    pub fn open(path: &Path, identity: Identity) -> Result<Self, OpenError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fieldkit_private::create_dir_all(dir).map_err(|source| OpenError::Io {
                path: dir.into(),
                source,
            })?;
        }
        let open_err = |source: rusqlite::Error| {
            let e = DbError {
                path: path.into(),
                source,
            };
            if e.is_corruption() {
                OpenError::Corrupt {
                    path: e.path,
                    source: e.source,
                }
            } else {
                OpenError::Db(e)
            }
        };
        // The database is private (0600); SQLite gives its -wal and -shm files the same mode.
        fieldkit_private::touch(path).map_err(|source| OpenError::Io {
            path: path.into(),
            source,
        })?;
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;

        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::NewerSchema {
                path: path.into(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .map_err(open_err)?;
            // Another process may have created the schema while we waited for the lock.
            let version: i64 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(open_err)?;
            if version == 0 {
                tx.execute_batch(SCHEMA).map_err(open_err)?;
                tx.execute_batch(&triggers_sql()).map_err(open_err)?;
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('origin', ?1)",
                    [identity.name()],
                )
                .map_err(open_err)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(open_err)?;
            }
            tx.commit().map_err(open_err)?;
        }
        let origin: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'origin'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(open_err)?;
        if origin.as_deref() != Some(identity.name()) {
            return Err(OpenError::NotThisLaptop {
                path: path.into(),
                found: origin.unwrap_or_else(|| "(none)".into()),
                required: identity.name().into(),
            });
        }
        let log = Self {
            conn: Mutex::new(conn),
            path: path.into(),
            identity,
            boot_id: boot_id(),
        };
        log.close_interrupted_intents()
            .map_err(|e| OpenError::Interrupted(Box::new(e)))?;
        Ok(log)
    }

    /// Opens the log in a fieldkit home directory: `<home>/audit.db`, keyed by
    /// `<home>/keys/laptop.pem` (generated on first use).
    pub fn open_in_home(home: &Path) -> Result<Self, OpenError> {
        let identity = Identity::laptop(&home.join(KEY_FILE))?;
        Self::open(&home.join(DB_FILE), identity)
    }

    /// The laptop identity that owns this log.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The log's origin (the laptop's note key name).
    pub fn origin(&self) -> &str {
        self.identity.name()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an entry. When this returns `Ok`, the entry is on disk (fsynced).
    pub fn append(&self, new: NewEntry) -> Result<Entry, AppendError> {
        let (device, event, details) = new.event.to_parts();
        self.append_parts(new.technician, new.site, device, event.to_owned(), details)
    }

    /// Appends an entry from its stored fields (the typed record already turned into them).
    fn append_parts(
        &self,
        technician: String,
        site: String,
        device: Value,
        event: String,
        details: Value,
    ) -> Result<Entry, AppendError> {
        validate_event(&event)?;
        let conn = self.lock();
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let last: Option<(u64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, leaf FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let (seq, prev) = match last {
            Some((s, leaf)) => (s + 1, hex::encode(leaf)),
            None => (0, ZERO_HASH_HEX.to_owned()),
        };
        let entry = Entry {
            schema: crate::record::SCHEMA,
            seq,
            origin: self.identity.name().to_owned(),
            time: chrono::Utc::now(),
            mono_ns: monotonic_ns(),
            boot_id: self.boot_id.clone(),
            pid: std::process::id(),
            technician,
            site,
            device,
            event,
            details,
            prev,
        };
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        let body = serde_json::to_string(&entry).unwrap_or_default();
        if body.len() > MAX_ENTRY_BYTES {
            return Err(AppendError::TooLarge {
                found: body.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        let leaf = merkle::leaf_hash(body.as_bytes());
        let read = |idx: &[u64]| read_tree_hashes(&tx, idx);
        let mut tree = PendingTree::<TreeReadError>::new(seq, &read);
        tree.append(leaf).map_err(|e| match e {
            TreeReadError::Db(e) => self.db(e).into(),
            TreeReadError::Missing(m) => AppendError::Tree(m),
        })?;
        let (start, hashes) = tree.new_hashes();
        tx.execute(
            "INSERT INTO entries(seq, body, leaf, event, closes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq, body, leaf.as_slice(), entry.event, entry.intent_seq()],
        )
        .map_err(|e| self.db(e))?;
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO tree_hashes(idx, hash) VALUES (?1, ?2)")
                .map_err(|e| self.db(e))?;
            for (i, h) in hashes.iter().enumerate() {
                ins.execute(params![start + i as u64, h.as_slice()])
                    .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))?;
        Ok(entry)
    }

    /// The number of entries.
    pub fn size(&self) -> Result<u64, QueryError> {
        let conn = self.lock();
        let n: Option<u64> = conn
            .query_row("SELECT MAX(seq) FROM entries", [], |r| r.get(0))
            .map_err(|e| self.db(e))?;
        Ok(n.map_or(0, |s| s + 1))
    }

    /// The entry at `seq`, if it exists.
    pub fn get(&self, seq: u64) -> Result<Option<Entry>, QueryError> {
        Ok(self
            .records(seq..seq.saturating_add(1))?
            .pop()
            .map(|r| r.entry))
    }

    /// The entries in `range` (by seq), in order.
    pub fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, QueryError> {
        Ok(self.records(range)?.into_iter().map(|r| r.entry).collect())
    }

    /// The entries in `range` with their exact bytes and leaf hashes (what sync sends).
    pub fn records(&self, range: impl RangeBounds<u64>) -> Result<Vec<Record>, QueryError> {
        let (lo, hi) = bounds(range);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, body, leaf FROM entries WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![lo, hi.min(i64::MAX as u64)], |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body, leaf) = row.map_err(|e| self.db(e))?;
            let entry: Entry = serde_json::from_str(&body).map_err(|e| QueryError::BadEntry {
                seq,
                reason: e.to_string(),
            })?;
            let leaf: [u8; 32] = leaf.try_into().map_err(|l: Vec<u8>| QueryError::BadEntry {
                seq,
                reason: format!("leaf hash is {} bytes, not 32", l.len()),
            })?;
            out.push(Record { entry, body, leaf });
        }
        Ok(out)
    }

    /// The root hash at `size` entries.
    pub fn root_at(&self, size: u64) -> Result<[u8; 32], QueryError> {
        let conn = self.lock();
        self.root_at_locked(&conn, size)
    }

    fn root_at_locked(&self, conn: &Connection, size: u64) -> Result<[u8; 32], QueryError> {
        let n: Option<u64> = conn
            .query_row("SELECT MAX(seq) FROM entries", [], |r| r.get(0))
            .map_err(|e| self.db(e))?;
        let current = n.map_or(0, |s| s + 1);
        if size > current {
            return Err(QueryError::BeyondEnd {
                requested: size,
                size: current,
            });
        }
        let read = |idx: &[u64]| read_tree_hashes(conn, idx);
        let tree = PendingTree::<TreeReadError>::new(size, &read);
        tree.root().map_err(|e| match e {
            TreeReadError::Db(e) => self.db(e).into(),
            TreeReadError::Missing(m) => QueryError::Tree(m),
        })
    }

    /// Signs and records a checkpoint of the whole log.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, QueryError> {
        let size = self.size()?;
        self.checkpoint_at(size)
    }

    /// Signs and records a checkpoint of the first `size` entries (sync sends one per batch).
    pub fn checkpoint_at(&self, size: u64) -> Result<SignedCheckpoint, QueryError> {
        let conn = self.lock();
        let root = self.root_at_locked(&conn, size)?;
        let cp = SignedCheckpoint::sign(&self.identity, size, root)?;
        // Ed25519 signatures are deterministic: signing the same tree again gives the same note.
        conn.execute(
            "INSERT OR IGNORE INTO checkpoints(size, note) VALUES (?1, ?2)",
            params![size, cp.as_str()],
        )
        .map_err(|e| self.db(e))?;
        Ok(cp)
    }

    /// The newest entry whose event is one of `events`, of the device with serial `serial`
    /// when given (read from the stored device record).
    pub fn latest(
        &self,
        events: &[&str],
        serial: Option<&str>,
    ) -> Result<Option<Entry>, QueryError> {
        if events.is_empty() {
            return Ok(None);
        }
        let marks = vec!["?"; events.len()].join(", ");
        let by_serial = if serial.is_some() {
            format!(
                " AND json_extract(body, '$.device.serial') = ?{}",
                events.len() + 1
            )
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT seq, body FROM entries WHERE event IN ({marks}){by_serial} ORDER BY seq DESC LIMIT 1"
        );
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.db(e))?;
        let mut params: Vec<&dyn rusqlite::ToSql> =
            events.iter().map(|e| e as &dyn rusqlite::ToSql).collect();
        if let Some(s) = &serial {
            params.push(s);
        }
        let row: Option<(u64, String)> = stmt
            .query_row(params.as_slice(), |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.db(e))?;
        row.map(|(seq, body)| {
            serde_json::from_str(&body).map_err(|e| QueryError::BadEntry {
                seq,
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Intents (`*_started`) with no outcome yet.
    pub fn pending_intents(&self) -> Result<Vec<Entry>, QueryError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT e.seq, e.body FROM entries e
                 WHERE e.event LIKE '%\\_started' ESCAPE '\\'
                   AND NOT EXISTS (SELECT 1 FROM entries o WHERE o.closes = e.seq)
                 ORDER BY e.seq",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = row.map_err(|e| self.db(e))?;
            out.push(
                serde_json::from_str(&body).map_err(|e| QueryError::BadEntry {
                    seq,
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    fn close_interrupted_intents(&self) -> Result<(), AppendError> {
        let pending = self.pending_intents().map_err(Box::new)?;
        for intent in pending {
            let ours = intent.boot_id == self.boot_id && intent.pid == std::process::id();
            let alive = intent.boot_id == self.boot_id && process_alive(intent.pid);
            if ours || alive {
                continue;
            }
            let action = intent
                .event
                .strip_suffix(INTENT_SUFFIX)
                .unwrap_or(&intent.event);
            let reason = if intent.boot_id == self.boot_id {
                format!("process {} stopped before writing an outcome", intent.pid)
            } else {
                "the computer restarted before an outcome was written".to_owned()
            };
            let event = format!("{action}_interrupted");
            // The device is the intent's, copied as it was recorded.
            let details = Interrupted {
                device: DeviceRecord::default(),
                intent_seq: intent.seq,
                reason,
            };
            self.append_parts(
                intent.technician.clone(),
                intent.site.clone(),
                intent.device.clone(),
                event,
                serde_json::to_value(&details).unwrap_or_default(),
            )?;
        }
        Ok(())
    }

    /// Stores a hub receipt after checking that it is this log's checkpoint, signed by this
    /// laptop and by the hub key given, and that its root is this log's root at that size.
    /// The receipt row is the acked size: both are written in one transaction.
    pub fn store_receipt(
        &self,
        receipt: &SignedCheckpoint,
        hub_name: &str,
        hub_key: &VerifyingKey,
    ) -> Result<Receipt, ReceiptError> {
        if receipt.origin() != self.identity.name() {
            return Err(ReceiptError::WrongOrigin {
                found: receipt.origin().into(),
                required: self.identity.name().into(),
            });
        }
        receipt.verify_signer(self.identity.name(), &self.identity.public_key())?;
        receipt.verify_signer(hub_name, hub_key)?;
        let conn = self.lock();
        let size = self.size_locked(&conn)?;
        if receipt.size() > size {
            return Err(ReceiptError::BeyondEnd {
                found: receipt.size(),
                size,
            });
        }
        let root = self.root_at_locked(&conn, receipt.size())?;
        if root != receipt.root() {
            return Err(ReceiptError::RootMismatch {
                size: receipt.size(),
                found: receipt.root_hex(),
                required: hex::encode(root),
            });
        }
        let stored_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        conn.execute(
            "INSERT OR IGNORE INTO receipts(hub, size, note, stored_at) VALUES (?1, ?2, ?3, ?4)",
            params![hub_name, receipt.size(), receipt.as_str(), stored_at],
        )
        .map_err(|e| self.db(e))?;
        Ok(Receipt {
            hub: hub_name.into(),
            size: receipt.size(),
            checkpoint: receipt.clone(),
            stored_at,
        })
    }

    /// The latest receipt from any hub (the largest acked size).
    pub fn latest_receipt(&self) -> Result<Option<Receipt>, QueryError> {
        let conn = self.lock();
        let row: Option<(String, u64, String, String)> = conn
            .query_row(
                "SELECT hub, size, note, stored_at FROM receipts ORDER BY size DESC, stored_at DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        row.map(|(hub, size, note, stored_at)| {
            Ok(Receipt {
                hub,
                size,
                checkpoint: SignedCheckpoint::parse(&note)?,
                stored_at,
            })
        })
        .transpose()
    }

    /// The number of entries a hub has acknowledged (0 if never synced).
    pub fn acked_size(&self) -> Result<u64, QueryError> {
        Ok(self.latest_receipt()?.map_or(0, |r| r.size))
    }

    /// Recomputes everything from the stored bytes: each entry's seq, origin, chaining and
    /// leaf hash, the tree's stored hashes, and every checkpoint and receipt's root and
    /// signature. Returns the first problem found.
    pub fn verify(&self) -> Result<VerifyReport, VerifyError> {
        let conn = self.lock();
        let corrupt = |e: rusqlite::Error| {
            let e = DbError {
                path: self.path.clone(),
                source: e,
            };
            if e.is_corruption() {
                VerifyError::Corrupt {
                    path: e.path,
                    reason: e.source.to_string(),
                }
            } else {
                VerifyError::Db(e)
            }
        };
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(VerifyError::Corrupt {
                path: self.path.clone(),
                reason: check,
            });
        }

        let mut leaves: Vec<[u8; 32]> = Vec::new();
        let mut clock_flags = Vec::new();
        let mut last: Option<Entry> = None;
        let mut prev_leaf_hex = ZERO_HASH_HEX.to_owned();
        {
            let mut stmt = conn
                .prepare("SELECT seq, body, leaf, event, closes FROM entries ORDER BY seq")
                .map_err(corrupt)?;
            let mut rows = stmt.query([]).map_err(corrupt)?;
            while let Some(row) = rows.next().map_err(corrupt)? {
                let expected = leaves.len() as u64;
                let seq: u64 = row.get(0).map_err(corrupt)?;
                let bad = |p| Err(VerifyError::Entry(p));
                if seq != expected {
                    return bad(EntryProblem::Missing {
                        missing: expected,
                        next: seq,
                    });
                }
                // Read loosely: a row edited to another type must be reported, not crash.
                let body: String = match row.get_ref(1).map_err(corrupt)? {
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                };
                let stored_leaf: Vec<u8> = row.get(2).unwrap_or_default();
                let event_col: String = row.get(3).unwrap_or_default();
                let closes_col: Option<u64> = row.get(4).unwrap_or(None);
                let leaf = merkle::leaf_hash(body.as_bytes());
                if stored_leaf != leaf {
                    return bad(EntryProblem::Edited {
                        seq,
                        found: hex::encode(leaf),
                        required: hex::encode(&stored_leaf),
                    });
                }
                let entry: Entry = match serde_json::from_str(&body) {
                    Ok(e) => e,
                    Err(e) => {
                        return bad(EntryProblem::Unreadable {
                            seq,
                            reason: e.to_string(),
                        });
                    }
                };
                if entry.seq != seq {
                    return bad(EntryProblem::SeqMismatch {
                        seq,
                        found: entry.seq,
                    });
                }
                if entry.origin != self.identity.name() {
                    return bad(EntryProblem::WrongOrigin {
                        seq,
                        found: entry.origin,
                        required: self.identity.name().into(),
                    });
                }
                if entry.prev != prev_leaf_hex {
                    return bad(EntryProblem::ChainBroken {
                        seq,
                        found: entry.prev,
                        required: prev_leaf_hex,
                    });
                }
                if event_col != entry.event {
                    return bad(EntryProblem::ColumnMismatch {
                        seq,
                        column: "event",
                        found: event_col,
                        required: entry.event,
                    });
                }
                if closes_col != entry.intent_seq() {
                    return bad(EntryProblem::ColumnMismatch {
                        seq,
                        column: "closes",
                        found: format!("{closes_col:?}"),
                        required: format!("{:?}", entry.intent_seq()),
                    });
                }
                if let Some(flag) = last.as_ref().and_then(|p| clock_flag(p, &entry)) {
                    clock_flags.push(flag);
                }
                prev_leaf_hex = hex::encode(leaf);
                leaves.push(leaf);
                last = Some(entry);
            }
        }
        let size = leaves.len() as u64;

        // The stored tree hashes must be exactly those the entries produce.
        let none = |_: &[u64]| -> Result<Vec<[u8; 32]>, MissingStoredHashes> {
            Err(MissingStoredHashes {
                wanted: 1,
                found: 0,
            })
        };
        let mut tree = PendingTree::new(0, &none);
        for l in &leaves {
            // Appending to an all-in-memory tree never reads the store.
            let _ = tree.append(*l);
        }
        let (_, recomputed) = tree.new_hashes();
        {
            let mut stmt = conn
                .prepare("SELECT idx, hash FROM tree_hashes ORDER BY idx")
                .map_err(corrupt)?;
            let mut rows = stmt.query([]).map_err(corrupt)?;
            let mut i = 0u64;
            while let Some(row) = rows.next().map_err(corrupt)? {
                let idx: u64 = row.get(0).map_err(corrupt)?;
                let hash: Vec<u8> = row.get(1).unwrap_or_default();
                let want = recomputed.get(i as usize);
                if idx != i || want.map(|w| w.as_slice()) != Some(hash.as_slice()) {
                    return Err(VerifyError::TreeMismatch {
                        index: i,
                        found: if idx == i {
                            hex::encode(&hash)
                        } else {
                            "missing".into()
                        },
                        required: want.map_or("absent".into(), hex::encode),
                    });
                }
                i += 1;
            }
            if i != recomputed.len() as u64 {
                return Err(VerifyError::TreeMismatch {
                    index: i,
                    found: "missing".into(),
                    required: hex::encode(recomputed[i as usize]),
                });
            }
        }
        let root_at = |n: u64| merkle::root_from_leaves(&leaves[..n as usize]);

        let mut checked = [0u64; 2];
        let mut acked_size = 0;
        for (k, (kind, sql)) in [
            (
                "checkpoint",
                "SELECT size, note FROM checkpoints ORDER BY size",
            ),
            ("receipt", "SELECT size, note FROM receipts ORDER BY size"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut stmt = conn.prepare(sql).map_err(corrupt)?;
            let mut rows = stmt.query([]).map_err(corrupt)?;
            while let Some(row) = rows.next().map_err(corrupt)? {
                let signed: u64 = row.get(0).map_err(corrupt)?;
                let note: String = row.get(1).unwrap_or_default();
                if signed > size {
                    return Err(VerifyError::Truncated { kind, signed, size });
                }
                let cp =
                    SignedCheckpoint::parse(&note).map_err(|source| VerifyError::BadSignature {
                        kind,
                        size: signed,
                        source,
                    })?;
                cp.verify_signer(self.identity.name(), &self.identity.public_key())
                    .map_err(|source| VerifyError::BadSignature {
                        kind,
                        size: signed,
                        source,
                    })?;
                let want = root_at(cp.size());
                if cp.size() != signed || cp.root() != want {
                    return Err(VerifyError::RootMismatch {
                        kind,
                        size: signed,
                        found: cp.root_hex(),
                        required: hex::encode(want),
                    });
                }
                checked[k] += 1;
                if k == 1 {
                    acked_size = acked_size.max(signed);
                }
            }
        }

        for t in TABLES {
            for op in ["update", "delete"] {
                let name = format!("{t}_no_{op}");
                let present: bool = conn
                    .query_row(
                        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1)",
                        [&name],
                        |r| r.get(0),
                    )
                    .map_err(corrupt)?;
                if !present {
                    return Err(VerifyError::TriggerMissing { name });
                }
            }
        }
        drop(conn);
        let pending_intents = self.pending_intents().map(|p| p.len() as u64).unwrap_or(0);

        Ok(VerifyReport {
            size,
            root: hex::encode(root_at(size)),
            checkpoints: checked[0],
            receipts: checked[1],
            acked_size,
            pending_intents,
            clock_flags,
        })
    }

    fn size_locked(&self, conn: &Connection) -> Result<u64, QueryError> {
        let n: Option<u64> = conn
            .query_row("SELECT MAX(seq) FROM entries", [], |r| r.get(0))
            .map_err(|e| self.db(e))?;
        Ok(n.map_or(0, |s| s + 1))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db(&self, source: rusqlite::Error) -> DbError {
        DbError {
            path: self.path.clone(),
            source,
        }
    }
}

enum TreeReadError {
    Db(rusqlite::Error),
    Missing(MissingStoredHashes),
}

impl From<MissingStoredHashes> for TreeReadError {
    fn from(m: MissingStoredHashes) -> Self {
        Self::Missing(m)
    }
}

fn read_tree_hashes(conn: &Connection, idx: &[u64]) -> Result<Vec<[u8; 32]>, TreeReadError> {
    let mut stmt = conn
        .prepare_cached("SELECT hash FROM tree_hashes WHERE idx = ?1")
        .map_err(TreeReadError::Db)?;
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let h: Option<Vec<u8>> = stmt
            .query_row([i], |r| r.get(0))
            .optional()
            .map_err(TreeReadError::Db)?;
        match h.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
            Some(h) => out.push(h),
            None => {
                return Err(MissingStoredHashes {
                    wanted: idx.len(),
                    found: out.len(),
                }
                .into());
            }
        }
    }
    Ok(out)
}

fn triggers_sql() -> String {
    let mut sql = String::new();
    for t in TABLES {
        for op in ["UPDATE", "DELETE"] {
            sql.push_str(&format!(
                "CREATE TRIGGER {t}_no_{lower} BEFORE {op} ON {t} BEGIN \
                 SELECT RAISE(ABORT, 'the audit log is append-only: {op} on {t} refused'); END;\n",
                lower = op.to_lowercase()
            ));
        }
    }
    sql
}

fn validate_event(event: &str) -> Result<(), AppendError> {
    let ok = !event.is_empty()
        && event.len() <= 64
        && event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppendError::BadEvent {
            found: event.into(),
        })
    }
}

fn bounds(range: impl RangeBounds<u64>) -> (u64, u64) {
    let lo = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (lo, hi)
}

/// Compares two consecutive entries' clocks: within one boot, the wall clock must advance with
/// the monotonic clock (within five minutes), and across boots it must not go backwards by more
/// than that. Used by `verify` here and by the hub at ingest.
pub fn clock_flag(prev: &Entry, next: &Entry) -> Option<ClockFlag> {
    let wall = (next.time - prev.time).num_seconds();
    if prev.boot_id != next.boot_id || prev.boot_id == "unknown" {
        return (wall < -CLOCK_TOLERANCE_SECS).then_some(ClockFlag {
            seq: next.seq,
            wall_delta_secs: wall,
            mono_delta_secs: 0,
        });
    }
    let (Some(a), Some(b)) = (prev.mono_ns, next.mono_ns) else {
        return None;
    };
    let mono = (b as i128 - a as i128) / 1_000_000_000;
    if (wall as i128 - mono).abs() > CLOCK_TOLERANCE_SECS as i128 {
        Some(ClockFlag {
            seq: next.seq,
            wall_delta_secs: wall,
            mono_delta_secs: mono as i64,
        })
    } else {
        None
    }
}

/// Identifies the current boot, so that entries can be compared by monotonic time.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(unix)]
fn monotonic_ns() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

#[cfg(not(unix))]
fn monotonic_ns() -> Option<u64> {
    None
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // The process exists but belongs to someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    // Without a portable liveness check, an intent left by another process is treated as
    // interrupted: the app is the only writer that holds intents open on these platforms.
    false
}
