//! The PostgreSQL backend: tokio-postgres over a deadpool-postgres pool.
//!
//! Why these crates: tokio-postgres is the reference asynchronous driver of the rust-postgres
//! project (maintained for a decade, used by deadpool, diesel-async and many others), speaks
//! the extended protocol with pipelining, binds Rust arrays (key lists and upserts travel as
//! `UNNEST` arrays) and writes binary `COPY`, so a whole batch is written by a handful of
//! statements; deadpool-postgres is a small pool with statement caching
//! and recycling checks. sqlx would bring its own SQLite driver next to the rusqlite the laptop
//! and the SQLite backend use (two `libsqlite3-sys` cannot link into one binary), compile-time
//! query macros we would not use, and more code to audit for the same queries.
//!
//! Schema: the same tables as SQLite, with `COLLATE "C"` on every text column that is sorted
//! (byte order, as SQLite's `BINARY`), and the same append-only rule for evidence tables as
//! `BEFORE UPDATE OR DELETE` and `BEFORE TRUNCATE` triggers. Migrations are numbered, applied
//! in order in one transaction each, under an advisory lock so two hubs starting at once do not
//! race.
//!
//! An append locks the laptop's row (`SELECT … FOR UPDATE`) for its transaction: appends for one
//! laptop are serialised, appends for different laptops run side by side. A transaction that is
//! dropped without commit discards its connection instead of returning it to the pool, so the
//! server rolls it back and no half-done transaction is ever reused.

use std::collections::HashMap;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use ed25519_dalek::VerifyingKey;
use fieldkit_audit::identity::{LAPTOP_PREFIX, key_name, parse_public_key_pem, public_key_pem};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

use super::{
    AppendRows, EntryFacts, ForkRow, Laptop, LaptopStatus, LogState, LogTx, ManagerRow, NewFork,
    Store, StoreError, StoredDevice, StoredEntry, VersionCount,
};
use crate::rules::{DeviceQuery, EntryQuery};

mod postmarket;

/// Numbered migrations; a database records the ones applied in `schema_migrations`. Migration
/// 2 adds the post-market tables ([`crate::postmarket::store`]); 3 the fleet-scale indexes; 4
/// keeps the fleet chart's counts per laptop; 5 trades the entries' foreign key for a refusal to
/// delete laptops; 6 leaves room on the pages of the tables an append updates in place and
/// stores each append's tree hashes as one row; 7 drops the event index.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, SCHEMA_1),
    (2, postmarket::SCHEMA_2),
    (3, SCHEMA_3),
    (4, SCHEMA_4),
    (5, SCHEMA_5),
    (6, SCHEMA_6),
    (7, SCHEMA_7),
];

const SCHEMA_1: &str = r#"
CREATE TABLE laptops(
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    origin TEXT COLLATE "C" NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    size BIGINT NOT NULL DEFAULT 0,
    last_leaf BYTEA,
    receipt_size BIGINT NOT NULL DEFAULT 0,
    last_sync TEXT
);
CREATE TABLE managers(
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sessions(
    token_hash BYTEA PRIMARY KEY,
    manager_id BIGINT NOT NULL REFERENCES managers(id),
    expires_at BIGINT NOT NULL
);
CREATE TABLE entries(
    laptop_id BIGINT NOT NULL REFERENCES laptops(id),
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    leaf BYTEA NOT NULL,
    time_us BIGINT NOT NULL,
    technician TEXT COLLATE "C" NOT NULL,
    site TEXT COLLATE "C" NOT NULL,
    device_serial TEXT COLLATE "C",
    device_model TEXT COLLATE "C",
    event TEXT COLLATE "C" NOT NULL,
    outcome TEXT COLLATE "C" NOT NULL,
    closes BIGINT,
    clock_flag BOOLEAN NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY(laptop_id, seq)
);
CREATE INDEX entries_time ON entries(time_us);
CREATE INDEX entries_serial ON entries(device_serial, time_us);
CREATE INDEX entries_technician ON entries(technician, time_us);
CREATE INDEX entries_site ON entries(site, time_us);
CREATE INDEX entries_event ON entries(event, time_us);
CREATE INDEX entries_closes ON entries(laptop_id, closes) WHERE closes IS NOT NULL;
CREATE TABLE tree_hashes(
    laptop_id BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY(laptop_id, idx)
);
CREATE TABLE checkpoints(
    laptop_id BIGINT NOT NULL,
    size BIGINT NOT NULL,
    note TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY(laptop_id, size)
);
CREATE TABLE forks(
    id BIGSERIAL PRIMARY KEY,
    laptop_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    held TEXT NOT NULL,
    sent TEXT NOT NULL,
    detected_at TEXT NOT NULL
);
CREATE INDEX forks_seq ON forks(laptop_id, seq);
CREATE TABLE devices(
    serial TEXT COLLATE "C" PRIMARY KEY,
    model TEXT COLLATE "C" NOT NULL,
    recency BYTEA NOT NULL,
    time_us BIGINT NOT NULL,
    site TEXT NOT NULL,
    technician TEXT NOT NULL,
    last_event TEXT NOT NULL,
    device TEXT NOT NULL
);
CREATE INDEX devices_model ON devices(model, serial);
CREATE TABLE device_firmware(
    serial TEXT COLLATE "C" NOT NULL,
    component TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    model TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY(serial, component)
);
CREATE INDEX device_firmware_version ON device_firmware(model, component, version);
CREATE FUNCTION fieldkit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hub evidence is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER tree_hashes_append_only BEFORE UPDATE OR DELETE ON tree_hashes
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER tree_hashes_no_truncate BEFORE TRUNCATE ON tree_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER forks_append_only BEFORE UPDATE OR DELETE ON forks
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER forks_no_truncate BEFORE TRUNCATE ON forks
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
"#;

/// Every timeline index ends with the page order (time, laptop, seq), so a page is read in
/// index order and never sorted; model and outcome filters get indexes; the indexes of the
/// broad filters (time, model, event, outcome) also carry the other broad columns, so that
/// combining them is decided, and counted, in the index; the version counts of the fleet chart
/// are kept as they change instead of counted on every request.
const SCHEMA_3: &str = r#"
DROP INDEX entries_time, entries_serial, entries_technician, entries_site, entries_event;
CREATE INDEX entries_time ON entries(time_us, laptop_id, seq, device_model, event, outcome);
CREATE INDEX entries_serial ON entries(device_serial, time_us, laptop_id, seq);
CREATE INDEX entries_technician ON entries(technician, time_us, laptop_id, seq);
CREATE INDEX entries_site ON entries(site, time_us, laptop_id, seq);
CREATE INDEX entries_event ON entries(event, time_us, laptop_id, seq, device_model, outcome);
CREATE INDEX entries_model ON entries(device_model, time_us, laptop_id, seq, event, outcome);
CREATE INDEX entries_outcome ON entries(outcome, time_us, laptop_id, seq, device_model, event);
CREATE TABLE firmware_counts(
    model TEXT COLLATE "C" NOT NULL,
    component TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    devices BIGINT NOT NULL,
    PRIMARY KEY(model, component, version)
);
INSERT INTO firmware_counts(model, component, version, devices)
    SELECT model, component, version, COUNT(*) FROM device_firmware
    GROUP BY model, component, version;
"#;

/// The fleet chart's counts are kept per laptop as well: an append changes only its own
/// laptop's count rows, whose lock it holds anyway. With one row per (model, component,
/// version) every concurrent append waited for the others' commits on the same few rows. A
/// count is the sum over laptops; one laptop's share may be negative (a device it moved to
/// another version was counted by another laptop), the sum never is.
const SCHEMA_4: &str = r#"
ALTER TABLE firmware_counts ADD COLUMN laptop_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE firmware_counts ALTER COLUMN laptop_id DROP DEFAULT;
ALTER TABLE firmware_counts DROP CONSTRAINT firmware_counts_pkey;
ALTER TABLE firmware_counts ADD PRIMARY KEY(model, component, version, laptop_id);
"#;

/// The foreign key entries → laptops checked every appended row against a laptop row the
/// appending transaction has already locked `FOR UPDATE` and takes its `laptop_id` from: a
/// per-row lookup and row lock that could never fail. What it guarded, an entry outliving its
/// laptop, is kept by refusing to delete or truncate laptops at all (the hub never does; a
/// laptop's evidence is append-only like its entries).
const SCHEMA_5: &str = r#"
ALTER TABLE entries DROP CONSTRAINT entries_laptop_id_fkey;
CREATE TRIGGER laptops_no_delete BEFORE DELETE ON laptops
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER laptops_no_truncate BEFORE TRUNCATE ON laptops
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
"#;

/// Two changes to what an append writes, for its cost.
///
/// An append rewrites the rows of the devices it sees again (`devices`, `installed`), mostly
/// in columns no index holds (time, site, recency, the record). PostgreSQL writes such an
/// update to the same page without touching any index (a "HOT" update) only if the page has
/// room; packed full, as by default, most of them moved to another page and added an entry to
/// every index. Pages written from now on keep 30% free; pages already written keep their fill
/// until the table is rewritten (`VACUUM FULL`).
///
/// A laptop's stored tree hashes are numbered from 0 and each append adds the next run of them
/// (about two per entry): a row and a primary-key entry per hash became a row per append, its
/// hashes end to end (`start` is the number of the first). The hashes are random, so they are
/// stored uncompressed (`EXTERNAL`), which also lets a reader fetch one hash of a long run
/// without reading the others. The hashes held move over as runs of one.
const SCHEMA_6: &str = r#"
ALTER TABLE devices SET (fillfactor = 70);
ALTER TABLE installed SET (fillfactor = 70);
CREATE TABLE tree_hash_runs(
    laptop_id BIGINT NOT NULL,
    start BIGINT NOT NULL,
    hashes BYTEA NOT NULL,
    PRIMARY KEY(laptop_id, start)
);
ALTER TABLE tree_hash_runs ALTER COLUMN hashes SET STORAGE EXTERNAL;
INSERT INTO tree_hash_runs(laptop_id, start, hashes) SELECT laptop_id, idx, hash FROM tree_hashes;
DROP TABLE tree_hashes;
CREATE TRIGGER tree_hash_runs_append_only BEFORE UPDATE OR DELETE ON tree_hash_runs
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER tree_hash_runs_no_truncate BEFORE TRUNCATE ON tree_hash_runs
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
"#;

/// An event filter also selects by the outcome that event implies
/// ([`crate::rules::EntryQuery::outcome_filter`]), which `entries_outcome` serves and whose rows
/// carry the event: the event index is one B-tree insert per entry that no query needs.
const SCHEMA_7: &str = r#"
DROP INDEX entries_event;
"#;

/// An arbitrary constant: the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x6669_656c_646b_6974;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    what: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.what)
            .finish_non_exhaustive()
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.code().is_none() && e.as_db_error().is_none() {
        StoreError::Unavailable(e.to_string())
    } else {
        // The server's own words: "ERROR: …" with its detail.
        match e.as_db_error() {
            Some(d) => StoreError::Db(format!("{}: {}", d.severity(), d.message())),
            None => StoreError::Db(e.to_string()),
        }
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Integers leave Rust as u64 and live in PostgreSQL as BIGINT.
fn int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Db(format!("{v} does not fit a BIGINT")))
}

fn uint(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i).map_err(pg)
}

fn leaf_of(v: Option<Vec<u8>>) -> Result<[u8; 32], StoreError> {
    match v {
        None => Ok([0; 32]),
        Some(v) => v
            .try_into()
            .map_err(|_| StoreError::Corrupt("a laptop's last leaf is not 32 bytes".into())),
    }
}

impl PostgresStore {
    /// Connects to `postgres://…` (or `postgresql://…`), creates a pool of `max_connections`
    /// and applies the migrations this database has not had.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl { url: redact(url) })?;
        let what = format!(
            "postgres database {:?} on {:?}",
            config.get_dbname().unwrap_or("(default)"),
            config.get_hosts()
        );
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A server restart closes every connection; verify each before reuse.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = Self { pool, what };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations(version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
            .await
            .or_else(|e| {
                // Two hubs creating the table at once: one wins, the other finds it.
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    Ok(())
                } else {
                    Err(pg(e))
                }
            })?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg)?;
        let res = self.apply_migrations(&client).await;
        let unlock = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        res?;
        unlock.map_err(pg)?;
        Ok(())
    }

    async fn apply_migrations(&self, client: &Object) -> Result<(), StoreError> {
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(pg)?;
        let have: i64 = get(&row, 0)?;
        let newest = MIGRATIONS.last().map_or(0, |m| m.0);
        if have > newest {
            return Err(StoreError::Schema {
                what: self.what.clone(),
                found: have,
                required: newest,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
            client.batch_execute("BEGIN").await.map_err(pg)?;
            let applied = async {
                client.batch_execute(sql).await?;
                client
                    .execute(
                        "INSERT INTO schema_migrations(version, applied_at) VALUES ($1, $2)",
                        &[version, &now()],
                    )
                    .await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            if let Err(e) = applied {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(pg(e));
            }
        }
        Ok(())
    }
}

/// A URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

struct PgTx {
    client: Option<Object>,
    laptop: i64,
    state: LogState,
}

impl PgTx {
    fn client(&self) -> Result<&Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Db("the transaction has ended".into()))
    }

    /// Ends the transaction by closing its connection: the server rolls back.
    fn discard(&mut self) {
        if let Some(c) = self.client.take() {
            drop(Object::take(c));
        }
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        self.discard();
    }
}

#[async_trait]
impl LogTx for PgTx {
    fn state(&self) -> LogState {
        self.state
    }

    async fn bodies(&mut self, range: Range<u64>) -> Result<Vec<String>, StoreError> {
        let c = self.client()?;
        let stmt = c
            .prepare_cached(
                "SELECT seq, body FROM entries WHERE laptop_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
            )
            .await
            .map_err(pg)?;
        let rows = c
            .query(&stmt, &[&self.laptop, &int(range.start)?, &int(range.end)?])
            .await
            .map_err(pg)?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            let seq: i64 = get(r, 0)?;
            if uint(seq)? != range.start + i as u64 {
                return Err(StoreError::Corrupt(format!(
                    "entry {} missing",
                    range.start + i as u64
                )));
            }
            out.push(get(r, 1)?);
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
    }

    async fn read_hashes(&mut self, idx: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        if idx.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.client()?;
        let wanted: Vec<i64> = idx.iter().map(|&i| int(i)).collect::<Result<_, _>>()?;
        // Each hash from the run that holds it: the run starting at or before it.
        let stmt = c
            .prepare_cached(
                "SELECT k.idx, substring(r.hashes FROM ((k.idx - r.start) * 32 + 1)::integer FOR 32)
                 FROM UNNEST($2::bigint[]) AS k(idx)
                 CROSS JOIN LATERAL (SELECT start, hashes FROM tree_hash_runs
                   WHERE laptop_id = $1 AND start <= k.idx ORDER BY start DESC LIMIT 1) AS r",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&self.laptop, &wanted]).await.map_err(pg)?;
        let mut by: HashMap<i64, Vec<u8>> = HashMap::with_capacity(rows.len());
        for r in &rows {
            by.insert(get(r, 0)?, get(r, 1)?);
        }
        wanted
            .iter()
            .map(|i| {
                by.get(i)
                    .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("tree hash {i} missing")))
            })
            .collect()
    }

    async fn checkpoint(&mut self, size: u64) -> Result<Option<String>, StoreError> {
        let c = self.client()?;
        let row = c
            .query_opt(
                "SELECT note FROM checkpoints WHERE laptop_id = $1 AND size = $2",
                &[&self.laptop, &int(size)?],
            )
            .await
            .map_err(pg)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn append(&mut self, rows: AppendRows) -> Result<(), StoreError> {
        let Some(last) = rows.entries.last() else {
            return Ok(());
        };
        let (size, last_leaf) = (last.seq + 1, last.leaf);
        let laptop = self.laptop;
        let c = self.client()?;
        let received = now();
        let mut e = Vec::with_capacity(rows.entries.len());
        for r in &rows.entries {
            e.push((
                r,
                int(r.seq)?,
                r.closes.map(int).transpose()?,
                r.leaf.as_slice(),
            ));
        }
        copy_rows(
            c,
            "entries(laptop_id, seq, body, leaf, time_us, technician, site, device_serial, \
             device_model, event, outcome, closes, clock_flag, received_at)",
            &[
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::BYTEA,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::BOOL,
                Type::TEXT,
            ],
            e.iter()
                .map(|(r, seq, closes, leaf)| -> Vec<&(dyn ToSql + Sync)> {
                    vec![
                        &laptop,
                        seq,
                        &r.body,
                        leaf,
                        &r.time_us,
                        &r.technician,
                        &r.site,
                        &r.device_serial,
                        &r.device_model,
                        &r.event,
                        &r.outcome,
                        closes,
                        &r.clock_flag,
                        &received,
                    ]
                }),
        )
        .await?;

        if !rows.hashes.is_empty() {
            let run: Vec<u8> = rows.hashes.concat();
            let stmt = c
                .prepare_cached(
                    "INSERT INTO tree_hash_runs(laptop_id, start, hashes) VALUES ($1, $2, $3)",
                )
                .await
                .map_err(pg)?;
            c.execute(&stmt, &[&laptop, &int(rows.hashes_start)?, &run])
                .await
                .map_err(pg)?;
        }
        c.execute(
            "INSERT INTO checkpoints(laptop_id, size, note, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&laptop, &int(size)?, &rows.checkpoint, &received],
        )
        .await
        .map_err(pg)?;

        if !rows.devices.is_empty() {
            let d = &rows.devices;
            let serials: Vec<&str> = d.iter().map(|d| d.serial.as_str()).collect();
            let models: Vec<&str> = d.iter().map(|d| d.model.as_str()).collect();
            let recency: Vec<&[u8]> = d.iter().map(|d| d.recency.as_slice()).collect();
            let times: Vec<i64> = d.iter().map(|d| d.time_us).collect();
            let sites: Vec<&str> = d.iter().map(|d| d.site.as_str()).collect();
            let techs: Vec<&str> = d.iter().map(|d| d.technician.as_str()).collect();
            let events: Vec<&str> = d.iter().map(|d| d.last_event.as_str()).collect();
            let devices: Vec<&str> = d.iter().map(|d| d.device.as_str()).collect();
            let stmt = c
                .prepare_cached(
                    "INSERT INTO devices(serial, model, recency, time_us, site, technician, last_event, device)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::text[],
                       $6::text[], $7::text[], $8::text[])
                     ON CONFLICT(serial) DO UPDATE SET model = excluded.model, recency = excluded.recency,
                       time_us = excluded.time_us, site = excluded.site, technician = excluded.technician,
                       last_event = excluded.last_event, device = excluded.device
                     WHERE excluded.recency > devices.recency
                     RETURNING serial",
                )
                .await
                .map_err(pg)?;
            let changed = c
                .query(
                    &stmt,
                    &[
                        &serials, &models, &recency, &times, &sites, &techs, &events, &devices,
                    ],
                )
                .await
                .map_err(pg)?;
            let changed: std::collections::HashSet<String> = changed
                .iter()
                .map(|r| get::<String>(r, 0))
                .collect::<Result<_, _>>()?;
            if !changed.is_empty() {
                let mut counts = super::CountDeltas::default();
                let serials: Vec<&str> = changed.iter().map(String::as_str).collect();
                // The firmware held for the changed serials. Each serial is looked up in the
                // primary key on its own (the fence keeps the planner from turning the lookups
                // into a join that reads the whole table while it has no statistics yet). No
                // other append writes these rows meanwhile: the devices upsert above holds each
                // changed serial's row lock until commit.
                let stmt = c
                    .prepare_cached(
                        "SELECT s.serial, f.component, f.version, f.model
                         FROM UNNEST($1::text[]) AS s(serial)
                         CROSS JOIN LATERAL (SELECT component, version, model FROM device_firmware d
                           WHERE d.serial = s.serial OFFSET 0) AS f",
                    )
                    .await
                    .map_err(pg)?;
                let mut held: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
                for r in c.query(&stmt, &[&serials]).await.map_err(pg)? {
                    held.entry(get(&r, 0)?).or_default().push((
                        get(&r, 1)?,
                        get(&r, 2)?,
                        get(&r, 3)?,
                    ));
                }
                // Only what differs is written (the rule: `CountDeltas::firmware_change`).
                let (mut s, mut comp, mut ver, mut model) = (vec![], vec![], vec![], vec![]);
                let (mut gs, mut gc) = (vec![], vec![]);
                for d in d.iter().filter(|d| changed.contains(&d.serial)) {
                    let change =
                        counts.firmware_change(held.remove(&d.serial).unwrap_or_default(), d);
                    for (c, v) in change.write {
                        s.push(d.serial.as_str());
                        comp.push(c);
                        ver.push(v);
                        model.push(d.model.as_str());
                    }
                    for c in change.delete {
                        gs.push(d.serial.as_str());
                        gc.push(c);
                    }
                }
                if !gs.is_empty() {
                    // Components the newer identity no longer shows.
                    let stmt = c
                        .prepare_cached(
                            "DELETE FROM device_firmware
                             WHERE (serial, component) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
                        )
                        .await
                        .map_err(pg)?;
                    c.execute(&stmt, &[&gs, &gc]).await.map_err(pg)?;
                }
                if !s.is_empty() {
                    let stmt = c
                        .prepare_cached(
                            "INSERT INTO device_firmware(serial, component, version, model)
                             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
                             ON CONFLICT(serial, component)
                             DO UPDATE SET version = excluded.version, model = excluded.model",
                        )
                        .await
                        .map_err(pg)?;
                    c.execute(&stmt, &[&s, &comp, &ver, &model])
                        .await
                        .map_err(pg)?;
                }
                // The laptop's own count rows (migration 4), in key order.
                let (mut m, mut comp, mut ver, mut delta) = (vec![], vec![], vec![], vec![]);
                for ((model, component, version), d) in counts.changed() {
                    m.push(model.as_str());
                    comp.push(component.as_str());
                    ver.push(version.as_str());
                    delta.push(d);
                }
                if !m.is_empty() {
                    let stmt = c
                        .prepare_cached(
                            "INSERT INTO firmware_counts AS f(model, component, version, devices, laptop_id)
                             SELECT u.*, $5::bigint
                             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u
                             ON CONFLICT(model, component, version, laptop_id)
                             DO UPDATE SET devices = f.devices + excluded.devices",
                        )
                        .await
                        .map_err(pg)?;
                    c.execute(&stmt, &[&m, &comp, &ver, &delta, &laptop])
                        .await
                        .map_err(pg)?;
                }
            }
        }
        postmarket::append_installs(c, &rows.installs).await?;
        c.execute(
            "UPDATE laptops SET size = $2, last_leaf = $3, receipt_size = GREATEST(receipt_size, $2),
               last_sync = $4 WHERE id = $1",
            &[&laptop, &int(size)?, &last_leaf.as_slice(), &received],
        )
        .await
        .map_err(pg)?;
        self.state = LogState { size, last_leaf };
        Ok(())
    }

    async fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), StoreError> {
        let c = self.client()?;
        let at = now();
        c.execute(
            "INSERT INTO checkpoints(laptop_id, size, note, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&self.laptop, &int(size)?, &note, &at],
        )
        .await
        .map_err(pg)?;
        c.execute(
            "UPDATE laptops SET receipt_size = GREATEST(receipt_size, $2), last_sync = $3 WHERE id = $1",
            &[&self.laptop, &int(size)?, &at],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn record_fork(&mut self, fork: &NewFork) -> Result<(), StoreError> {
        let c = self.client()?;
        c.execute(
            "INSERT INTO forks(laptop_id, seq, held, sent, detected_at) VALUES ($1, $2, $3, $4, $5)",
            &[&self.laptop, &int(fork.seq)?, &fork.held, &fork.sent, &now()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let res = self.client()?.batch_execute("COMMIT").await;
        match res {
            // Back to the pool, clean.
            Ok(()) => {
                self.client.take();
                Ok(())
            }
            Err(e) => Err(pg(e)),
        }
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), StoreError> {
        let res = self.client()?.batch_execute("ROLLBACK").await;
        match res {
            Ok(()) => {
                self.client.take();
                Ok(())
            }
            Err(e) => Err(pg(e)),
        }
    }
}

/// Builds the WHERE clause of a query: equalities and a time range, nothing else.
fn where_sql(q: &EntryQuery) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut clauses = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
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
            args.push(Box::new(v.clone()));
            clauses.push(format!("{sql} ${}", args.len()));
        }
    }
    if let Some(from) = q.from_us {
        args.push(Box::new(from));
        clauses.push(format!("e.time_us >= ${}", args.len()));
    }
    if let Some(to) = q.to_us {
        args.push(Box::new(to));
        clauses.push(format!("e.time_us <= ${}", args.len()));
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
            clauses.push(format!("{col} = ${}", args.len()));
        }
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, args)
}

fn refs(args: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect()
}

/// Writes `rows` with `COPY … FROM STDIN (FORMAT binary)` (`copy` names the table and its
/// columns, `types` their types in order). The server inserts a COPY's rows page by page, one
/// WAL record per page, where an `INSERT … SELECT FROM UNNEST` unpacks every array, keeps the
/// rows in a tuple store and logs each row on its own; triggers and constraints apply alike.
pub(super) async fn copy_rows<'a>(
    c: &Object,
    copy: &str,
    types: &[Type],
    rows: impl Iterator<Item = Vec<&'a (dyn ToSql + Sync)>>,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(&format!("COPY {copy} FROM STDIN (FORMAT binary)"))
        .await
        .map_err(pg)?;
    let sink = c.copy_in(&stmt).await.map_err(pg)?;
    let writer = BinaryCopyInWriter::new(sink, types);
    let mut writer = std::pin::pin!(writer);
    for row in rows {
        writer.as_mut().write(&row).await.map_err(pg)?;
    }
    writer.finish().await.map_err(pg)?;
    Ok(())
}

fn exists(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn laptop_row(r: &Row) -> Result<Laptop, StoreError> {
    let pem: String = get(r, 3)?;
    Ok(Laptop {
        id: get(r, 0)?,
        name: get(r, 1)?,
        origin: get(r, 2)?,
        key: parse_public_key_pem(&pem).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn postmarket(&self) -> &dyn crate::postmarket::PostmarketStore {
        self
    }

    async fn enroll_laptop(&self, name: &str, key: &VerifyingKey) -> Result<Laptop, StoreError> {
        let origin = key_name(LAPTOP_PREFIX, key);
        let c = self.client().await?;
        match c
            .query_one(
                "INSERT INTO laptops(name, origin, public_key, enrolled_at) VALUES ($1, $2, $3, $4)
                 RETURNING id",
                &[&name, &origin, &public_key_pem(key), &now()],
            )
            .await
        {
            Ok(r) => Ok(Laptop {
                id: get(&r, 0)?,
                name: name.into(),
                origin,
                key: *key,
            }),
            Err(e) if exists(&e) => Err(StoreError::Exists {
                what: "laptop (name or key)",
                name: name.into(),
            }),
            Err(e) => Err(pg(e)),
        }
    }

    async fn laptop_by_origin(&self, origin: &str) -> Result<Option<Laptop>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT id, name, origin, public_key FROM laptops WHERE origin = $1")
            .await
            .map_err(pg)?;
        let row = c.query_opt(&stmt, &[&origin]).await.map_err(pg)?;
        row.map(|r| laptop_row(&r)).transpose()
    }

    async fn laptops(&self) -> Result<Vec<LaptopStatus>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT l.name, l.origin, l.size, l.receipt_size, l.last_sync,
                   (SELECT COUNT(*) FROM forks f WHERE f.laptop_id = l.id)
                 FROM laptops l ORDER BY l.name",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(LaptopStatus {
                    name: get(r, 0)?,
                    origin: get(r, 1)?,
                    size: uint(get(r, 2)?)?,
                    receipt_size: uint(get(r, 3)?)?,
                    last_sync: get(r, 4)?,
                    forks: uint(get(r, 5)?)?,
                })
            })
            .collect()
    }

    async fn add_manager(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        match c
            .execute(
                "INSERT INTO managers(name, password_hash, created_at) VALUES ($1, $2, $3)",
                &[&name, &password_hash, &now()],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if exists(&e) => Err(StoreError::Exists {
                what: "manager",
                name: name.into(),
            }),
            Err(e) => Err(pg(e)),
        }
    }

    async fn manager(&self, name: &str) -> Result<Option<ManagerRow>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT id, name, password_hash FROM managers WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(pg)?;
        row.map(|r| {
            Ok(ManagerRow {
                id: get(&r, 0)?,
                name: get(&r, 1)?,
                password_hash: get(&r, 2)?,
            })
        })
        .transpose()
    }

    async fn create_session(
        &self,
        manager: i64,
        token_hash: &[u8; 32],
        expires: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now])
            .await
            .map_err(pg)?;
        c.execute(
            "INSERT INTO sessions(token_hash, manager_id, expires_at) VALUES ($1, $2, $3)",
            &[&token_hash.as_slice(), &manager, &expires],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn session(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT m.name FROM sessions s JOIN managers m ON m.id = s.manager_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[&token_hash.as_slice(), &now],
            )
            .await
            .map_err(pg)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&token_hash.as_slice()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn begin_log(&self, laptop: &Laptop) -> Result<Box<dyn LogTx>, StoreError> {
        let client = self.client().await?;
        let mut tx = PgTx {
            client: Some(client),
            laptop: laptop.id,
            state: LogState {
                size: 0,
                last_leaf: [0; 32],
            },
        };
        let c = tx.client()?;
        c.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(pg)?;
        let stmt = c
            .prepare_cached("SELECT size, last_leaf FROM laptops WHERE id = $1 FOR UPDATE")
            .await
            .map_err(pg)?;
        let row = c.query_one(&stmt, &[&laptop.id]).await.map_err(pg)?;
        tx.state = LogState {
            size: uint(get(&row, 0)?)?,
            last_leaf: leaf_of(get(&row, 1)?)?,
        };
        Ok(Box::new(tx))
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
        let c = self.client().await?;
        // A statement of its own, prepared, run once and closed: its one run is planned with
        // the values. A cached one gets a generic plan after five runs, blind to how selective
        // a value is (a rare outcome, a busy model in a short range), and the timeline's best
        // index depends on it: at 500k entries the slowest timeline request took 36 ms with
        // generic plans, 19 ms without.
        let rows = c.query(sql.as_str(), &refs(&args)).await.map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(StoredEntry {
                    laptop_id: get(r, 0)?,
                    laptop: get(r, 1)?,
                    origin: get(r, 2)?,
                    receipt_size: uint(get(r, 3)?)?,
                    seq: uint(get(r, 4)?)?,
                    time_us: get(r, 5)?,
                    technician: get(r, 6)?,
                    site: get(r, 7)?,
                    device_serial: get(r, 8)?,
                    device_model: get(r, 9)?,
                    event: get(r, 10)?,
                    outcome: get(r, 11)?,
                    clock_flag: get(r, 12)?,
                    body: get(r, 13)?,
                })
            })
            .collect()
    }

    async fn count(&self, q: &EntryQuery, at_most: u64) -> Result<u64, StoreError> {
        let (wh, args) = where_sql(q);
        let join = if q.origin.is_some() {
            "JOIN laptops l ON l.id = e.laptop_id"
        } else {
            ""
        };
        let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM entries e {join} {wh} LIMIT {at_most}) AS m"
        );
        let c = self.client().await?;
        // Planned with the values, as the page is (a statement run once).
        let row = c.query_one(sql.as_str(), &refs(&args)).await.map_err(pg)?;
        uint(get(&row, 0)?)
    }

    async fn entry_facts(&self, keys: &[(i64, u64)]) -> Result<EntryFacts, StoreError> {
        let mut facts = EntryFacts::default();
        if keys.is_empty() {
            return Ok(facts);
        }
        let laptops: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let seqs: Vec<i64> = keys.iter().map(|k| int(k.1)).collect::<Result<_, _>>()?;
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT DISTINCT e.laptop_id, e.closes FROM entries e
                 JOIN UNNEST($1::bigint[], $2::bigint[]) AS k(laptop_id, seq)
                   ON e.laptop_id = k.laptop_id AND e.closes = k.seq",
            )
            .await
            .map_err(pg)?;
        for r in c.query(&stmt, &[&laptops, &seqs]).await.map_err(pg)? {
            facts.closed.insert((get(&r, 0)?, uint(get(&r, 1)?)?));
        }
        let stmt = c
            .prepare_cached(
                "SELECT DISTINCT f.laptop_id, f.seq FROM forks f
                 JOIN UNNEST($1::bigint[], $2::bigint[]) AS k(laptop_id, seq)
                   ON f.laptop_id = k.laptop_id AND f.seq = k.seq",
            )
            .await
            .map_err(pg)?;
        for r in c.query(&stmt, &[&laptops, &seqs]).await.map_err(pg)? {
            facts.forked.insert((get(&r, 0)?, uint(get(&r, 1)?)?));
        }
        Ok(facts)
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
        let c = self.client().await?;
        let stmt = c.prepare_cached(&sql).await.map_err(pg)?;
        let params: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let rows = c.query(&stmt, &params).await.map_err(pg)?;
        let mut out: Vec<StoredDevice> = rows
            .iter()
            .map(|r| {
                Ok(StoredDevice {
                    serial: get(r, 0)?,
                    model: get(r, 1)?,
                    time_us: get(r, 2)?,
                    site: get(r, 3)?,
                    technician: get(r, 4)?,
                    last_event: get(r, 5)?,
                    device: get(r, 6)?,
                    firmware: Vec::new(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        if out.is_empty() {
            return Ok(out);
        }
        let serials: Vec<&str> = out.iter().map(|d| d.serial.as_str()).collect();
        let stmt = c
            .prepare_cached(
                "SELECT serial, component, version FROM device_firmware WHERE serial = ANY($1)
                 ORDER BY serial, component",
            )
            .await
            .map_err(pg)?;
        let mut fw: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in c.query(&stmt, &[&serials]).await.map_err(pg)? {
            fw.entry(get(&r, 0)?)
                .or_default()
                .push((get(&r, 1)?, get(&r, 2)?));
        }
        for d in &mut out {
            d.firmware = fw.remove(&d.serial).unwrap_or_default();
        }
        Ok(out)
    }

    async fn device_count(&self, q: &DeviceQuery) -> Result<u64, StoreError> {
        let (wh, args) = device_where(q);
        let c = self.client().await?;
        let params: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let row = c
            .query_one(&format!("SELECT COUNT(*) FROM devices {wh}"), &params)
            .await
            .map_err(pg)?;
        uint(get(&row, 0)?)
    }

    async fn version_counts(&self) -> Result<Vec<VersionCount>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT model, component, version, SUM(devices)::bigint FROM firmware_counts
                 GROUP BY model, component, version HAVING SUM(devices) > 0
                 ORDER BY model, component, version",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(VersionCount {
                    model: get(r, 0)?,
                    component: get(r, 1)?,
                    version: get(r, 2)?,
                    devices: uint(get(r, 3)?)?,
                })
            })
            .collect()
    }

    async fn forks(&self) -> Result<Vec<ForkRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT l.name, l.origin, f.seq, f.held, f.sent, f.detected_at
                 FROM forks f JOIN laptops l ON l.id = f.laptop_id ORDER BY f.id",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(ForkRow {
                    laptop: get(r, 0)?,
                    origin: get(r, 1)?,
                    seq: uint(get(r, 2)?)?,
                    held: get(r, 3)?,
                    sent: get(r, 4)?,
                    detected_at: get(r, 5)?,
                })
            })
            .collect()
    }

    async fn latest_checkpoints(&self) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT l.origin, c.note FROM laptops l JOIN checkpoints c
                   ON c.laptop_id = l.id AND c.size = l.receipt_size
                 ORDER BY l.origin",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of migration 5 holds one row per tree hash; migration 6 moves them into runs
    /// (of one), and an append then adds its hashes as one run after them: both read back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migration_6_keeps_the_tree_hashes_held() {
        let url = fieldkit_testpg::database().await;
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        for (_, sql) in &MIGRATIONS[..5] {
            client.batch_execute(sql).await.unwrap();
        }
        let held: Vec<[u8; 32]> = (0..3u8).map(|i| [i + 1; 32]).collect();
        client
            .batch_execute(
                "CREATE TABLE schema_migrations(version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL);
                 INSERT INTO schema_migrations SELECT n, 'then' FROM generate_series(1, 5) AS n;
                 INSERT INTO laptops(name, origin, public_key, enrolled_at, size)
                   VALUES ('l', 'o', 'k', 'then', 2)",
            )
            .await
            .unwrap();
        for (i, h) in held.iter().enumerate() {
            client
                .execute(
                    "INSERT INTO tree_hashes(laptop_id, idx, hash) VALUES (1, $1, $2)",
                    &[&(i as i64), &h.as_slice()],
                )
                .await
                .unwrap();
        }
        let store = PostgresStore::connect(&url, 2).await.unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let laptop = Laptop {
            id: 1,
            name: "l".into(),
            origin: "o".into(),
            key,
        };
        let mut tx = store.begin_log(&laptop).await.unwrap();
        assert_eq!(
            tx.read_hashes(&[2, 0, 1]).await.unwrap(),
            [held[2], held[0], held[1]]
        );
        let new: Vec<[u8; 32]> = (0..3u8).map(|i| [i + 10; 32]).collect();
        tx.append(AppendRows {
            entries: vec![super::super::NewEntryRow {
                seq: 2,
                body: "{}".into(),
                leaf: [9; 32],
                time_us: 0,
                technician: "t".into(),
                site: "s".into(),
                device_serial: None,
                device_model: None,
                event: "e".into(),
                outcome: "info".into(),
                closes: None,
                clock_flag: false,
            }],
            hashes_start: 3,
            hashes: new.clone(),
            checkpoint: "note".into(),
            devices: Vec::new(),
            installs: Vec::new(),
        })
        .await
        .unwrap();
        assert_eq!(
            tx.read_hashes(&[5, 3, 2, 4]).await.unwrap(),
            [new[2], new[0], held[2], new[1]]
        );
        let err = tx.read_hashes(&[6]).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m == "tree hash 6 missing"),
            "{err}"
        );
        tx.commit().await.unwrap();
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        for (url, want) in [
            (
                "postgres://hub:secret@db.example/fleet",
                "postgres://hub:***@db.example/fleet",
            ),
            ("postgres://db.example/fleet", "postgres://db.example/fleet"),
            ("postgres://hub@db/fleet", "postgres://hub@db/fleet"),
        ] {
            assert_eq!(super::redact(url), want);
        }
    }
}
