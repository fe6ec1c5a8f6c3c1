//! The SQLite backend: one file, WAL, `synchronous=FULL`, STRICT tables, and the same
//! append-only triggers as the laptop's log on everything that is evidence (entries, tree
//! hashes, checkpoints, forks).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use fieldkit_audit::Identity;
use fieldkit_audit::identity::{
    HUB_PREFIX, LAPTOP_PREFIX, key_name, parse_public_key_pem, public_key_pem,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use serde_json::Value;

use super::{
    Badges, EntryFilter, EntryRow, ForkRow, InventoryRow, Laptop, LaptopStatus, LogTx, NewRow,
    Store, StoreError, TxBody,
};
use crate::ingest::{IngestError, Ingested};

const SCHEMA_VERSION: i64 = 1;
const EVIDENCE: [&str; 5] = ["entries", "tree_hashes", "checkpoints", "forks", "firmware"];

const SCHEMA: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE laptops(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    origin TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    enrolled_at TEXT NOT NULL
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
    time TEXT NOT NULL,
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
CREATE INDEX entries_time ON entries(time);
CREATE INDEX entries_serial ON entries(device_serial, time);
CREATE INDEX entries_closes ON entries(laptop_id, closes) WHERE closes IS NOT NULL;
CREATE TABLE firmware(
    laptop_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY(laptop_id, seq, component)
) STRICT;
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
";

/// The SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    identity: Identity,
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

impl SqliteStore {
    /// Opens a store from a URL: `sqlite:PATH` or `sqlite://PATH`.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::UnsupportedUrl { url: url.into() })?;
        if path.is_empty() {
            return Err(StoreError::UnsupportedUrl { url: url.into() });
        }
        Self::open(Path::new(path))
    }

    /// Opens (creating if needed) the hub database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Db(format!(
                "{} has schema version {version}; this hub reads up to {SCHEMA_VERSION}",
                path.display()
            )));
        }
        if version == 0 {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .map_err(db)?;
            let version: i64 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(db)?;
            if version == 0 {
                tx.execute_batch(SCHEMA).map_err(db)?;
                for t in EVIDENCE {
                    for op in ["UPDATE", "DELETE"] {
                        tx.execute_batch(&format!(
                            "CREATE TRIGGER {t}_no_{lower} BEFORE {op} ON {t} BEGIN \
                             SELECT RAISE(ABORT, 'hub evidence is append-only: {op} on {t} refused'); END;",
                            lower = op.to_lowercase()
                        ))
                        .map_err(db)?;
                    }
                }
                let hub = Identity::generate(HUB_PREFIX);
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('hub_key', ?1)",
                    [hub.private_key_pem()],
                )
                .map_err(db)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(db)?;
            }
            tx.commit().map_err(db)?;
        }
        let pem: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'hub_key'", [], |r| {
                r.get(0)
            })
            .map_err(db)?;
        let identity = Identity::from_pem(path, &pem, HUB_PREFIX)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.into(),
            identity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // Transactions roll back on drop, so a panic elsewhere cannot leave half a write.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
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

struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    laptop: i64,
}

impl LogTx for Tx<'_> {
    fn size(&self) -> Result<u64, StoreError> {
        let n: Option<u64> = self
            .tx
            .query_row(
                "SELECT MAX(seq) FROM entries WHERE laptop_id = ?1",
                [self.laptop],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(n.map_or(0, |s| s + 1))
    }

    fn body(&self, seq: u64) -> Result<Option<String>, StoreError> {
        self.tx
            .query_row(
                "SELECT body FROM entries WHERE laptop_id = ?1 AND seq = ?2",
                params![self.laptop, seq],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    fn leaf(&self, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let leaf: Option<Vec<u8>> = self
            .tx
            .query_row(
                "SELECT leaf FROM entries WHERE laptop_id = ?1 AND seq = ?2",
                params![self.laptop, seq],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        leaf.map(|l| {
            l.try_into()
                .map_err(|_| StoreError::Corrupt(format!("leaf of entry {seq}")))
        })
        .transpose()
    }

    fn read_hashes(&self, idx: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT hash FROM tree_hashes WHERE laptop_id = ?1 AND idx = ?2")
            .map_err(db)?;
        let mut out = Vec::with_capacity(idx.len());
        for &i in idx {
            let h: Option<Vec<u8>> = stmt
                .query_row(params![self.laptop, i], |r| r.get(0))
                .optional()
                .map_err(db)?;
            match h.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
                Some(h) => out.push(h),
                None => return Err(StoreError::Corrupt(format!("tree hash {i} missing"))),
            }
        }
        Ok(out)
    }

    fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        self.tx
            .query_row(
                "SELECT note FROM checkpoints WHERE laptop_id = ?1 AND size = ?2",
                params![self.laptop, size],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    fn insert_entries(&self, rows: &[NewRow]) -> Result<(), StoreError> {
        let received = now();
        let mut ins = self
            .tx
            .prepare_cached(
                "INSERT INTO entries(laptop_id, seq, body, leaf, time, technician, site, device_serial,
                   device_model, event, outcome, closes, clock_flag, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .map_err(db)?;
        let mut fw = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO firmware(laptop_id, seq, component, version) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db)?;
        for r in rows {
            ins.execute(params![
                self.laptop,
                r.seq,
                r.body,
                r.leaf.as_slice(),
                r.time,
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
            for (c, v) in &r.firmware {
                fw.execute(params![self.laptop, r.seq, c, v]).map_err(db)?;
            }
        }
        Ok(())
    }

    fn insert_hashes(&self, start: u64, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        let mut ins = self
            .tx
            .prepare_cached("INSERT INTO tree_hashes(laptop_id, idx, hash) VALUES (?1, ?2, ?3)")
            .map_err(db)?;
        for (i, h) in hashes.iter().enumerate() {
            ins.execute(params![self.laptop, start + i as u64, h.as_slice()])
                .map_err(db)?;
        }
        Ok(())
    }

    fn insert_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT OR IGNORE INTO checkpoints(laptop_id, size, note, received_at) VALUES (?1, ?2, ?3, ?4)",
                params![self.laptop, size, note, now()],
            )
            .map_err(db)?;
        Ok(())
    }

    fn record_fork(&self, seq: u64, held: &str, sent: &str) -> Result<(), StoreError> {
        tracing::warn!(
            laptop = self.laptop,
            seq,
            "fork recorded: same seq, different bytes"
        );
        self.tx
            .execute(
                "INSERT INTO forks(laptop_id, seq, held, sent, detected_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![self.laptop, seq, held, sent, now()],
            )
            .map_err(db)?;
        Ok(())
    }
}

/// Builds the WHERE clause of a filter.
fn filter_sql(f: &EntryFilter) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut args: Vec<String> = Vec::new();
    let mut eq = |col: &str, v: &Option<String>| {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            args.push(v.to_owned());
            clauses.push(format!("{col} = ?{}", args.len()));
        }
    };
    eq("e.technician", &f.technician);
    eq("e.site", &f.site);
    eq("e.device_serial", &f.serial);
    eq("e.device_model", &f.model);
    eq("e.event", &f.event);
    eq("e.outcome", &f.outcome);
    eq("l.origin", &f.origin);
    if let Some(from) = f.from.as_deref().filter(|v| !v.is_empty()) {
        args.push(from.to_owned());
        clauses.push(format!("e.time >= ?{}", args.len()));
    }
    if let Some(to) = f.to.as_deref().filter(|v| !v.is_empty()) {
        // A bare date means "through the end of that day".
        let to = if to.len() == 10 {
            format!("{to}T23:59:59.999Z")
        } else {
            to.to_owned()
        };
        args.push(to);
        clauses.push(format!("e.time <= ?{}", args.len()));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, args)
}

impl Store for SqliteStore {
    fn hub_identity(&self) -> Result<Identity, StoreError> {
        Ok(self.identity.clone())
    }

    fn enroll_laptop(&self, name: &str, key: &VerifyingKey) -> Result<Laptop, StoreError> {
        let origin = key_name(LAPTOP_PREFIX, key);
        let conn = self.lock();
        let res = conn.execute(
            "INSERT INTO laptops(name, origin, public_key, enrolled_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, origin, public_key_pem(key), now()],
        );
        match res {
            Ok(_) => Ok(Laptop {
                id: conn.last_insert_rowid(),
                name: name.into(),
                origin,
                key: *key,
            }),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                Err(StoreError::Exists {
                    what: "laptop (name or key)",
                    name: name.into(),
                })
            }
            Err(e) => Err(db(e)),
        }
    }

    fn laptop_by_origin(&self, origin: &str) -> Result<Option<Laptop>, StoreError> {
        let conn = self.lock();
        let row: Option<(i64, String, String, String)> = conn
            .query_row(
                "SELECT id, name, origin, public_key FROM laptops WHERE origin = ?1",
                [origin],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db)?;
        row.map(|(id, n, o, k)| laptop_from_row(id, n, o, k))
            .transpose()
    }

    fn laptops(&self) -> Result<Vec<LaptopStatus>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT l.name, l.origin,
                   (SELECT COALESCE(MAX(seq) + 1, 0) FROM entries e WHERE e.laptop_id = l.id),
                   (SELECT COALESCE(MAX(size), 0) FROM checkpoints c WHERE c.laptop_id = l.id),
                   (SELECT MAX(received_at) FROM checkpoints c WHERE c.laptop_id = l.id),
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
    }

    fn add_manager(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        match conn.execute(
            "INSERT INTO managers(name, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![name, password_hash, now()],
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                Err(StoreError::Exists {
                    what: "manager",
                    name: name.into(),
                })
            }
            Err(e) => Err(db(e)),
        }
    }

    fn manager(&self, name: &str) -> Result<Option<(i64, String)>, StoreError> {
        self.lock()
            .query_row(
                "SELECT id, password_hash FROM managers WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)
    }

    fn create_session(
        &self,
        manager: i64,
        token_hash: &[u8; 32],
        expires: i64,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "DELETE FROM sessions WHERE expires_at < ?1",
            [chrono::Utc::now().timestamp()],
        )
        .map_err(db)?;
        conn.execute(
            "INSERT INTO sessions(token_hash, manager_id, expires_at) VALUES (?1, ?2, ?3)",
            params![token_hash.as_slice(), manager, expires],
        )
        .map_err(db)?;
        Ok(())
    }

    fn session(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<String>, StoreError> {
        self.lock()
            .query_row(
                "SELECT m.name FROM sessions s JOIN managers m ON m.id = s.manager_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![token_hash.as_slice(), now],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [token_hash.as_slice()],
            )
            .map_err(db)?;
        Ok(())
    }

    fn with_log(&self, laptop: &Laptop, body: TxBody<'_>) -> Result<Ingested, IngestError> {
        let conn = self.lock();
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = body(&Tx {
            tx: &tx,
            laptop: laptop.id,
        })?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn query(&self, f: &EntryFilter) -> Result<Vec<EntryRow>, StoreError> {
        let (wh, args) = filter_sql(f);
        let limit = f.limit.unwrap_or(200).min(100_000);
        let offset = f.offset.unwrap_or(0);
        let sql = format!(
            "SELECT l.name, l.origin, e.seq, e.time, e.technician, e.site, e.device_serial,
                    e.device_model, e.event, e.outcome, e.body, e.clock_flag,
                    e.seq < (SELECT COALESCE(MAX(size), 0) FROM checkpoints c WHERE c.laptop_id = e.laptop_id),
                    e.event LIKE '%\\_started' ESCAPE '\\' AND NOT EXISTS
                       (SELECT 1 FROM entries o WHERE o.laptop_id = e.laptop_id AND o.closes = e.seq),
                    EXISTS (SELECT 1 FROM forks f WHERE f.laptop_id = e.laptop_id AND f.seq = e.seq)
             FROM entries e JOIN laptops l ON l.id = e.laptop_id
             {wh}
             ORDER BY e.time DESC, e.laptop_id, e.seq DESC
             LIMIT {limit} OFFSET {offset}"
        );
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                let body: String = r.get(10)?;
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                Ok(EntryRow {
                    laptop: r.get(0)?,
                    origin: r.get(1)?,
                    seq: r.get(2)?,
                    time: r.get(3)?,
                    technician: r.get(4)?,
                    site: r.get(5)?,
                    device_serial: r.get(6)?,
                    device_model: r.get(7)?,
                    event: r.get(8)?,
                    outcome: r.get(9)?,
                    device: v.get("device").cloned().unwrap_or(Value::Null),
                    details: v.get("details").cloned().unwrap_or(Value::Null),
                    body,
                    badges: Badges {
                        clock: r.get(11)?,
                        receipt: r.get(12)?,
                        pending: r.get(13)?,
                        fork: r.get(14)?,
                    },
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn count(&self, f: &EntryFilter) -> Result<u64, StoreError> {
        let (wh, args) = filter_sql(f);
        let sql =
            format!("SELECT COUNT(*) FROM entries e JOIN laptops l ON l.id = e.laptop_id {wh}");
        self.lock()
            .query_row(&sql, params_from_iter(args.iter()), |r| r.get(0))
            .map_err(db)
    }

    fn inventory(&self) -> Result<Vec<InventoryRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT device_serial, device_model, time, site, technician, event, body, laptop_id, seq FROM (
                   SELECT e.*, ROW_NUMBER() OVER (
                     PARTITION BY device_serial ORDER BY time DESC, laptop_id, seq DESC) AS rn
                   FROM entries e
                   WHERE device_serial IS NOT NULL
                     AND EXISTS (SELECT 1 FROM firmware f WHERE f.laptop_id = e.laptop_id AND f.seq = e.seq)
                     AND outcome <> 'started')
                 WHERE rn = 1 ORDER BY device_model, device_serial",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                let body: String = r.get(6)?;
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let device = v.get("device").cloned().unwrap_or(Value::Null);
                Ok(InventoryRow {
                    serial: r.get(0)?,
                    model: r.get(1)?,
                    last_seen: r.get(2)?,
                    site: r.get(3)?,
                    technician: r.get(4)?,
                    last_event: r.get(5)?,
                    firmware: fieldkit_audit::entry::device_firmware(&device),
                    device,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn forks(&self) -> Result<Vec<ForkRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
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
    }

    fn latest_checkpoints(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT l.origin, c.note FROM checkpoints c JOIN laptops l ON l.id = c.laptop_id
                 WHERE c.size = (SELECT MAX(size) FROM checkpoints d WHERE d.laptop_id = c.laptop_id)
                 ORDER BY l.origin",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }
}
