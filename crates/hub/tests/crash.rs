//! Crashes in the middle of a batch, many times over, on both backends: the hub process
//! SIGKILLed before and after its commit, and the PostgreSQL server SIGKILLed (every process of
//! it) while a batch's transaction is open. After each crash: nothing the laptop counts as
//! acknowledged is missing from the hub, nothing is stored twice; at the end the hub holds the
//! laptop's whole log and its tree root is the one a SQLite hub that never crashed computes.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use fieldkit_audit::AuditLog;
use fieldkit_sync::{SyncClient, SyncConfig, SyncError};
use support::{Backend, add, hub_identity, laptop};

const HUB: &str = env!("CARGO_BIN_EXE_fieldkit-hub");
const CYCLES: u64 = 20;

struct HubProc {
    child: Child,
    url: String,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fieldkit-hub serve` with a test hook (`FIELDKIT_HUB_CRASH` or `FIELDKIT_HUB_PAUSE`).
fn serve(db: &str, key: &std::path::Path, hook: Option<(&str, String)>) -> HubProc {
    let mut cmd = Command::new(HUB);
    cmd.args(["serve", "--db", db, "--listen", "127.0.0.1:0", "--hub-key"])
        .arg(key)
        .env_remove("FIELDKIT_HUB_CRASH")
        .env_remove("FIELDKIT_HUB_PAUSE")
        .env("RUST_LOG", "fieldkit_hub=warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some((k, v)) = hook {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    HubProc {
        child,
        url,
        stdin,
        stdout,
    }
}

fn client(url: &str, retries: u32) -> SyncClient {
    let config = SyncConfig {
        max_batch_entries: 10,
        retries,
        initial_backoff: std::time::Duration::from_millis(20),
        ..SyncConfig::default()
    };
    SyncClient::with_config(url, hub_identity(220).public_key(), config).unwrap()
}

/// The hub's copy of the laptop's log, checked: every entry once, in order, and the root.
async fn held(db: &str, log: &AuditLog) -> (u64, [u8; 32]) {
    let store = fieldkit_hub::open_store(db).await.unwrap();
    let laptops = store.laptops().await.unwrap();
    let size = laptops[0].size;
    let q = fieldkit_hub::rules::EntryQuery {
        limit: 100_000,
        ..Default::default()
    };
    let rows = store.entries(&q).await.unwrap();
    assert_eq!(rows.len() as u64, size, "one row per entry, none twice");
    assert_eq!(store.count(&q, u64::MAX).await.unwrap(), size);
    let mut rows: Vec<_> = rows.into_iter().map(|r| (r.seq, r.body)).collect();
    rows.sort();
    let local = log.records(..size).unwrap();
    let mut leaves = Vec::new();
    for (i, (seq, body)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as u64, "seqs are 0..{size} without a gap");
        assert_eq!(
            *body, local[i].body,
            "entry {seq} is the laptop's exact bytes"
        );
        leaves.push(fieldkit_audit::merkle::leaf_hash(body.as_bytes()));
    }
    (size, fieldkit_audit::merkle::root_from_leaves(&leaves))
}

/// Syncs `log` to a SQLite hub that never crashes; its root is the reference.
async fn reference_root(log: &AuditLog) -> [u8; 32] {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("ref.db").display());
    let key = dir.path().join("hub-key.pem");
    std::fs::write(&key, hub_identity(220).private_key_pem()).unwrap();
    set_private(&key);
    let store = fieldkit_hub::open_store(&db).await.unwrap();
    store
        .enroll_laptop("laptop", &log.identity().public_key())
        .await
        .unwrap();
    let hub = serve(&db, &key, None);
    // The laptop already holds receipts (from the crashed hub): send the batches directly.
    let size = log.size().unwrap();
    for start in (0..size).step_by(1000) {
        let end = (start + 1000).min(size);
        let (status, err) = support::post(&hub.url, &support::request(log, start, end)).await;
        assert_eq!(status, 200, "{err:?}");
    }
    let (held_size, root) = held(&db, log).await;
    assert_eq!(held_size, size);
    root
}

fn set_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

async fn hub_killed_mid_batch(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = support::database(backend, dir.path()).await;
    let key = dir.path().join("hub-key.pem");
    std::fs::write(&key, hub_identity(220).private_key_pem()).unwrap();
    set_private(&key);
    let l = laptop(70);
    fieldkit_hub::open_store(&db)
        .await
        .unwrap()
        .enroll_laptop("laptop", &l.log.identity().public_key())
        .await
        .unwrap();
    for cycle in 0..CYCLES {
        add(&l.log, 27);
        let point = if cycle % 2 == 0 {
            "before-commit"
        } else {
            "after-commit"
        };
        // The first, second or third batch of this sync (each sync sends at least three).
        let nth = 1 + cycle % 3;
        let hub = serve(
            &db,
            &key,
            Some(("FIELDKIT_HUB_CRASH", format!("{point}:{nth}"))),
        );
        let e = client(&hub.url, 1).sync(&l.log).await.unwrap_err();
        assert!(
            matches!(e, SyncError::Unreachable { .. }),
            "{backend:?} cycle {cycle}: {e}"
        );
        drop(hub);
        let (size, _) = held(&db, &l.log).await;
        let acked = l.log.acked_size().unwrap();
        assert!(
            acked <= size,
            "{backend:?} cycle {cycle}: the laptop counts {acked} acknowledged, the hub holds {size}"
        );
    }
    let hub = serve(&db, &key, None);
    let report = client(&hub.url, 2).sync(&l.log).await.unwrap();
    let total = l.log.size().unwrap();
    assert_eq!(report.acked_size, total);
    let (size, root) = held(&db, &l.log).await;
    assert_eq!(size, total);
    assert_eq!(root, l.log.root_at(total).unwrap());
    assert_eq!(
        root,
        reference_root(&l.log).await,
        "{backend:?}: the same root as a SQLite hub that never crashed"
    );
    l.log.verify().unwrap();
}

/// What the hub holds of `log` (one of several laptops), checked: every entry once, in order,
/// the laptop's exact bytes. Returns the size.
async fn held_of(db: &str, log: &AuditLog) -> u64 {
    let store = fieldkit_hub::open_store(db).await.unwrap();
    let q = fieldkit_hub::rules::EntryQuery {
        origin: Some(log.origin().into()),
        limit: 100_000,
        ..Default::default()
    };
    let mut rows: Vec<_> = store
        .entries(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.body))
        .collect();
    rows.sort();
    let size = rows.len() as u64;
    let local = log.records(..size).unwrap();
    for (i, (seq, body)) in rows.iter().enumerate() {
        assert_eq!(
            *seq, i as u64,
            "seqs are 0..{size} without a gap or a repeat"
        );
        assert_eq!(
            *body, local[i].body,
            "entry {seq} is the laptop's exact bytes"
        );
    }
    let status = store.laptops().await.unwrap();
    let status = status.iter().find(|s| s.origin == log.origin()).unwrap();
    assert_eq!(status.size, size, "the laptop's size is its rows");
    size
}

/// Several laptops syncing at once, so that their batches share transactions where a backend
/// groups them (SQLite), and the hub SIGKILLed before or after one of those commits: a batch
/// waiting for its group's commit must not have been acknowledged.
async fn hub_killed_while_laptops_sync_at_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = support::database(backend, dir.path()).await;
    let key = dir.path().join("hub-key.pem");
    std::fs::write(&key, hub_identity(220).private_key_pem()).unwrap();
    set_private(&key);
    let store = fieldkit_hub::open_store(&db).await.unwrap();
    let mut logs = Vec::new();
    for seed in 72..80u8 {
        let l = laptop(seed);
        store
            .enroll_laptop(&format!("laptop-{seed}"), &l.log.identity().public_key())
            .await
            .unwrap();
        // The laptop's directory must outlive its log.
        logs.push((std::sync::Arc::new(l.log), l.dir));
    }
    drop(store);
    for cycle in 0..CYCLES {
        let point = if cycle % 2 == 0 {
            "before-commit"
        } else {
            "after-commit"
        };
        let nth = 2 + cycle % 5;
        let hub = serve(
            &db,
            &key,
            Some(("FIELDKIT_HUB_CRASH", format!("{point}:{nth}"))),
        );
        let mut syncs = Vec::new();
        for (log, _) in &logs {
            add(log, 47);
            let (c, log) = (client(&hub.url, 1), log.clone());
            syncs.push(tokio::spawn(async move { c.sync(&log).await }));
        }
        for s in syncs {
            if let Err(e) = s.await.unwrap() {
                assert!(
                    matches!(e, SyncError::Unreachable { .. }),
                    "{backend:?} cycle {cycle}: {e}"
                );
            }
        }
        drop(hub);
        for (log, _) in &logs {
            let size = held_of(&db, log).await;
            let acked = log.acked_size().unwrap();
            assert!(
                acked <= size,
                "{backend:?} cycle {cycle}: the laptop counts {acked} acknowledged, the hub holds {size}"
            );
        }
    }
    let hub = serve(&db, &key, None);
    for (log, _) in &logs {
        let report = client(&hub.url, 2).sync(log).await.unwrap();
        let total = log.size().unwrap();
        assert_eq!(report.acked_size, total);
        assert_eq!(held_of(&db, log).await, total);
        log.verify().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_sigkilled_while_laptops_sync_at_once_20_times_loses_nothing_on_sqlite() {
    hub_killed_while_laptops_sync_at_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_sigkilled_mid_batch_20_times_loses_nothing_on_sqlite() {
    hub_killed_mid_batch(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_sigkilled_mid_batch_20_times_loses_nothing_on_postgres() {
    hub_killed_mid_batch(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkilled_mid_batch_20_times_loses_nothing() {
    // A server of its own: it is killed again and again.
    let mut pg = support::pg::Pg::start();
    let db = pg.base().create().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hub-key.pem");
    std::fs::write(&key, hub_identity(220).private_key_pem()).unwrap();
    set_private(&key);
    let l = laptop(71);
    fieldkit_hub::open_store(&db)
        .await
        .unwrap()
        .enroll_laptop("laptop", &l.log.identity().public_key())
        .await
        .unwrap();
    let log = std::sync::Arc::new(l.log);
    for cycle in 0..CYCLES {
        add(&log, 23);
        let nth = 1 + cycle % 2;
        let mut hub = serve(
            &db,
            &key,
            Some(("FIELDKIT_HUB_PAUSE", format!("before-commit:{nth}"))),
        );
        let c = client(&hub.url, 6);
        let synced = {
            let log = log.clone();
            tokio::spawn(async move { c.sync(&log).await })
        };
        // The hub stops with the batch's rows written and its transaction open.
        let mut line = String::new();
        hub.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "paused BeforeCommit", "cycle {cycle}");
        pg.kill();
        pg.spawn_server();
        writeln!(hub.stdin).unwrap();
        // The commit fails (503), the laptop retries, the hub reconnects.
        let report = synced.await.unwrap().unwrap();
        assert_eq!(report.acked_size, log.size().unwrap(), "cycle {cycle}");
        assert!(
            report.retries >= 1,
            "cycle {cycle}: the failed commit was retried"
        );
        let (size, _) = held(&db, &log).await;
        assert_eq!(size, log.size().unwrap(), "cycle {cycle}");
    }
    let total = log.size().unwrap();
    let (_, root) = held(&db, &log).await;
    assert_eq!(root, log.root_at(total).unwrap());
    assert_eq!(root, reference_root(&log).await);
    log.verify().unwrap();
}
