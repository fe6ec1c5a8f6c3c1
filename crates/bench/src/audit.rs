//! Audit-log benchmarks (DESIGN.md §13), each a figure measured side by side in one run:
//!
//! - local append rate with `synchronous=FULL`, against SQLite's own single-row commit rate on
//!   the same disk and settings (the ratio shows what hashing, chaining and the tree cost);
//! - hub ingest of 100 000 entries with every check (signature, seq, chain, tree root), in
//!   entries per second, without HTTP;
//! - an end-to-end sync of 100 000 entries from a laptop log to a hub on loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fieldkit_audit::record::examples;
use fieldkit_audit::{AuditLog, Identity, NewEntry};
use fieldkit_hub::{AppState, SqliteStore, Store};
use fieldkit_sync::SyncClient;
use fieldkit_sync::proto::AppendRequest;
use serde_json::json;

use crate::Rows;

const LOCAL_APPENDS: u64 = 300;
const FLEET_ENTRIES: u64 = 100_000;
const BATCH: u64 = 1000;

/// Measures the figures into `rows`.
pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(std::env::current_dir()?).context("temporary directory")?;

    // 1. Local append rate against SQLite's own single-row commit rate, same disk, same pragmas.
    // fsync timings are noisy: the two are interleaved over three rounds and the best of each
    // is kept.
    let log = AuditLog::open(
        &dir.path().join("audit.db"),
        Identity::generate("fieldkit-laptop"),
    )?;
    let (mut sqlite_rate, mut append_rate) = (0f64, 0f64);
    for round in 0..3u64 {
        let plain = dir.path().join(format!("plain{round}.db"));
        sqlite_rate = sqlite_rate.max(sqlite_commit_rate(&plain, LOCAL_APPENDS)?);
        let t = Instant::now();
        for i in 0..LOCAL_APPENDS {
            log.append(entry(i))?;
        }
        append_rate = append_rate.max(LOCAL_APPENDS as f64 / t.elapsed().as_secs_f64());
    }
    rows.push((
        "audit append, synchronous=FULL".into(),
        format!("{append_rate:.0} entries/s"),
    ));
    rows.push((
        "sqlite single-row commit, synchronous=FULL".into(),
        format!("{sqlite_rate:.0} rows/s"),
    ));
    rows.push((
        "audit append / sqlite commit".into(),
        format!("{:.2}", append_rate / sqlite_rate),
    ));

    // A laptop log of 100 000 entries, built on tmpfs where available: how fast it is written
    // is not what the next two figures measure.
    let scratch = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")?
    } else {
        tempfile::tempdir()?
    };
    let id = Identity::generate("fieldkit-laptop");
    let big = AuditLog::open(&scratch.path().join("big.db"), id.clone())?;
    for i in 0..FLEET_ENTRIES {
        big.append(entry(i))?;
    }

    // 2. Hub ingest with all checks, in process.
    let rt = tokio::runtime::Runtime::new()?;
    let hub = Identity::generate("fieldkit-hub");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("hub.db"))?);
    let laptop = rt.block_on(store.enroll_laptop("bench", &id.public_key()))?;
    let _ = laptop;
    let mut requests = Vec::new();
    for start in (0..FLEET_ENTRIES).step_by(BATCH as usize) {
        let end = (start + BATCH).min(FLEET_ENTRIES);
        requests.push(AppendRequest {
            origin: big.origin().into(),
            old_size: start,
            entries: big
                .records(start..end)?
                .into_iter()
                .map(|r| r.body)
                .collect(),
            checkpoint: big.checkpoint_at(end)?.as_str().into(),
        });
    }
    let t = Instant::now();
    rt.block_on(async {
        for req in requests {
            fieldkit_hub::ingest::append(store.clone(), &hub, req, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        anyhow::Ok(())
    })?;
    let ingest = FLEET_ENTRIES as f64 / t.elapsed().as_secs_f64();
    rows.push((
        "hub ingest, 100 000 entries, all checks".into(),
        format!("{ingest:.0} entries/s"),
    ));

    // 3. End-to-end sync over loopback HTTP into a fresh hub.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("hub2.db"))?);
    rt.block_on(store.enroll_laptop("bench", &id.public_key()))?;
    let secs = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = fieldkit_hub::router(AppState::new(store.clone(), hub.clone()));
        tokio::spawn(async move { axum_serve(listener, app).await });
        let t = Instant::now();
        let report = SyncClient::new(&url, hub.public_key())?.sync(&big).await?;
        anyhow::ensure!(
            report.acked_size == FLEET_ENTRIES,
            "synced {}",
            report.acked_size
        );
        anyhow::Ok(t.elapsed().as_secs_f64())
    })?;
    rows.push((
        "end-to-end sync, 100 000 entries".into(),
        format!("{secs:.1} s ({:.0} entries/s)", FLEET_ENTRIES as f64 / secs),
    ));
    Ok(())
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    let _ = axum::serve(listener, app).await;
}

fn entry(i: u64) -> NewEntry {
    let device = examples::device(
        &format!("SN-{:06}", i % 5000),
        "infusion-pump",
        &[("app", "3.2.0"), ("bootloader", "2.0.1")],
    );
    NewEntry {
        technician: "bench".into(),
        site: format!("site-{}", i % 17),
        event: examples::identified(device),
    }
}

/// SQLite's own rate of single-row commits with the audit log's settings (WAL, FULL).
fn sqlite_commit_rate(path: &Path, n: u64) -> anyhow::Result<f64> {
    let c = rusqlite::Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch("CREATE TABLE t(seq INTEGER PRIMARY KEY, body TEXT NOT NULL) STRICT")?;
    let (device, event, details) = entry(0).event.to_parts();
    let body =
        serde_json::to_string(&json!({"device": device, "event": event, "details": details}))?;
    let t = Instant::now();
    for i in 0..n {
        c.execute(
            "INSERT INTO t(seq, body) VALUES (?1, ?2)",
            rusqlite::params![i, body],
        )?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}
