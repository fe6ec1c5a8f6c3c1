//! The `fieldkit-hub` binary as a real process: enrol, add a manager, serve, sync, export, and
//! the hub killed in the middle of a batch (before and after its commit, and by SIGKILL).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fieldkit_audit::record::examples;
use fieldkit_audit::{AuditLog, NewEntry};
use fieldkit_sync::{SyncClient, SyncConfig, SyncError};
use serde_json::Value;

const HUB: &str = env!("CARGO_BIN_EXE_fieldkit-hub");

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &str, crash: Option<&str>) -> Served {
    let mut cmd = Command::new(HUB);
    cmd.args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    match crash {
        Some(c) => cmd.env("FIELDKIT_HUB_CRASH", c),
        None => cmd.env_remove("FIELDKIT_HUB_CRASH"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    Served { child, url }
}

fn run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(HUB)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn setup(dir: &Path, entries: u64) -> (String, AuditLog) {
    let db = format!("sqlite:{}", dir.join("hub.db").display());
    let home: PathBuf = dir.join("home");
    let log = AuditLog::open_in_home(&home).unwrap();
    for i in 0..entries {
        log.append(NewEntry {
            technician: "ana".into(),
            site: "St. Mary".into(),
            event: examples::identified(examples::device(
                &format!("SN-{i}"),
                "pump",
                &[("app", "1.2.3")],
            )),
        })
        .unwrap();
    }
    let key = dir.join("laptop.pub.pem");
    std::fs::write(&key, log.identity().public_key_pem()).unwrap();
    let (ok, out, err) = run(
        &[
            "enroll-laptop",
            "--db",
            &db,
            "--name",
            "laptop-1",
            "--key",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains(log.origin()), "{out}");
    (db, log)
}

/// The hub's public key, as `fieldkit-hub key` prints it for laptops to pin.
fn hub_key(db: &str) -> ed25519_dalek::VerifyingKey {
    let (ok, out, err) = run(&["key", "--db", db], None);
    assert!(ok, "{err}");
    let pem = out[out.find("-----BEGIN").unwrap()..].trim_end().to_owned() + "\n";
    fieldkit_audit::identity::parse_public_key_pem(&pem).unwrap()
}

fn client(url: &str, db: &str) -> SyncClient {
    let config = SyncConfig {
        max_batch_entries: 50,
        retries: 1,
        initial_backoff: std::time::Duration::from_millis(10),
        ..SyncConfig::default()
    };
    SyncClient::with_config(url, hub_key(db), config).unwrap()
}

fn exported(db: &str) -> Vec<Value> {
    let (ok, out, err) = run(&["export", "--db", db, "--format", "json"], None);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_binary_enrols_serves_syncs_and_exports_exactly_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = setup(dir.path(), 120);
    let (ok, _, err) = run(
        &["add-manager", "--db", &db, "--name", "maria"],
        Some("short\n"),
    );
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, out, err) = run(
        &["add-manager", "--db", &db, "--name", "maria"],
        Some("s3cret-pass\n"),
    );
    assert!(ok && out.contains("added manager maria"), "{err}");
    let (ok, _, err) = run(
        &["add-manager", "--db", &db, "--name", "maria"],
        Some("s3cret-pass\n"),
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(
        &[
            "enroll-laptop",
            "--db",
            &db,
            "--name",
            "x",
            "--key",
            "/nonexistent.pem",
        ],
        None,
    );
    assert!(!ok && err.contains("cannot read"), "{err}");
    let (ok, _, err) = run(
        &["export", "--db", "postgres://x", "--format", "json"],
        None,
    );
    assert!(!ok && err.contains("give --hub-key FILE"), "{err}");
    // The hub's key lives beside the database, 0600, not inside it.
    use std::os::unix::fs::PermissionsExt;
    for f in ["hub.db", "hub-key.pem"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let held: String = rusqlite::Connection::open(dir.path().join("hub.db"))
        .unwrap()
        .query_row("SELECT group_concat(key) FROM meta", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .unwrap()
        .unwrap_or_default();
    assert!(!held.contains("key"), "no key inside the database: {held}");

    let hub = serve(&db, None);
    let report = client(&hub.url, &db).sync(&log).await.unwrap();
    assert_eq!(report.acked_size, 120);
    let rows = exported(&db);
    let local = log.records(..).unwrap();
    assert_eq!(rows.len(), local.len());
    for (row, rec) in rows.iter().zip(&local) {
        assert_eq!(
            row["body"],
            rec.body.as_str(),
            "exactly the bytes the laptop hashed"
        );
        assert_eq!(row["seq"], rec.entry.seq);
    }
    let (ok, csv, _) = run(&["export", "--db", &db, "--format", "csv"], None);
    assert!(ok);
    assert_eq!(csv.lines().count(), 121);
}

/// The hub dies mid-batch (before or after its commit); a new hub process on the same
/// database and a retried sync finish the job with every entry stored exactly once.
#[tokio::test]
async fn a_hub_killed_mid_batch_loses_nothing_and_stores_nothing_twice() {
    for crash in ["before-commit", "after-commit"] {
        let dir = tempfile::tempdir().unwrap();
        let (db, log) = setup(dir.path(), 130);
        {
            let hub = serve(&db, Some(crash));
            let e = client(&hub.url, &db).sync(&log).await.unwrap_err();
            assert!(matches!(e, SyncError::Unreachable { .. }), "{crash}: {e}");
        }
        assert_eq!(
            log.acked_size().unwrap(),
            0,
            "{crash}: no receipt without a commit answer"
        );
        let hub = serve(&db, None);
        let report = client(&hub.url, &db).sync(&log).await.unwrap();
        assert_eq!(report.acked_size, 130, "{crash}");
        let rows = exported(&db);
        assert_eq!(rows.len(), 130, "{crash}");
        let mut seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        seqs.dedup();
        assert_eq!(seqs, (0..130).collect::<Vec<_>>(), "{crash}");
        log.verify().unwrap();
    }
}

#[tokio::test]
async fn a_hub_killed_with_sigkill_during_a_long_sync_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = setup(dir.path(), 600);
    let mut hub = serve(&db, None);
    let url = hub.url.clone();
    let sync = {
        let c = client(&url, &db);
        async move { c.sync(&log).await.map(|r| (r, log)) }
    };
    let task = tokio::spawn(sync);
    // Kill the hub as soon as it has acknowledged something: the sync is mid-way.
    let db_path = dir.path().join("hub.db");
    loop {
        let held: u64 = rusqlite::Connection::open(&db_path)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0)))
            .unwrap_or(0);
        if held > 0 || task.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    let (log, first) = match task.await.unwrap() {
        Ok((r, log)) => (log, Some(r)),
        Err(e) => {
            assert!(matches!(e, SyncError::Unreachable { .. }), "{e}");
            (
                AuditLog::open_in_home(&dir.path().join("home")).unwrap(),
                None,
            )
        }
    };
    let hub = serve(&db, None);
    let report = client(&hub.url, &db).sync(&log).await.unwrap();
    assert_eq!(report.acked_size, 600, "{first:?}");
    assert_eq!(exported(&db).len(), 600);
}
