//! The sync protocol against a real hub on loopback: the happy path, resume, duplicates,
//! concurrency, and every hostile or broken request of DESIGN.md §14 ("Log").

use std::sync::Arc;

use fieldkit_audit::identity::LAPTOP_PREFIX;
use fieldkit_audit::{AuditLog, Identity, NewEntry, events};
use fieldkit_hub::{AppState, SqliteStore, Store, router};
use fieldkit_sync::proto::{APPEND_PATH, AppendRequest, ErrorBody, kind};
use fieldkit_sync::{SyncClient, SyncConfig, SyncError};
use serde_json::json;

struct Hub {
    url: String,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("hub.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(AppState::new(store.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hub {
        url,
        store,
        _dir: dir,
    }
}

struct Laptop {
    dir: tempfile::TempDir,
    log: AuditLog,
}

fn laptop(seed: u8) -> Laptop {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::from_key(
        LAPTOP_PREFIX,
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    );
    let log = AuditLog::open(&dir.path().join("audit.db"), id).unwrap();
    Laptop { dir, log }
}

fn add(log: &AuditLog, n: u64) {
    for i in 0..n {
        log.append(NewEntry {
            technician: "ana".into(),
            site: "St. Mary".into(),
            device: json!({"serial": format!("SN-{}", i % 3), "model": "pump", "firmware": {"app": "1.2.3"}}),
            event: events::DEVICE_IDENTIFIED.into(),
            details: json!({}),
        })
        .unwrap();
    }
}

fn client(url: &str) -> SyncClient {
    let config = SyncConfig {
        max_batch_entries: 7,
        retries: 2,
        initial_backoff: std::time::Duration::from_millis(10),
        ..SyncConfig::default()
    };
    SyncClient::with_config(url, config).unwrap()
}

fn enroll(hub: &Hub, l: &Laptop, name: &str) {
    hub.store
        .enroll_laptop(name, &l.log.identity().public_key())
        .unwrap();
}

fn request(log: &AuditLog, old: u64, end: u64) -> AppendRequest {
    AppendRequest {
        origin: log.origin().into(),
        old_size: old,
        entries: log
            .records(old..end)
            .unwrap()
            .into_iter()
            .map(|r| r.body)
            .collect(),
        checkpoint: log.checkpoint_at(end).unwrap().as_str().into(),
    }
}

/// Posts raw bytes; returns the status and the error body (if any).
async fn post_raw(url: &str, body: Vec<u8>) -> (u16, Option<ErrorBody>) {
    let resp = reqwest::Client::new()
        .post(format!("{url}{APPEND_PATH}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).ok())
}

async fn post(url: &str, req: &AppendRequest) -> (u16, Option<ErrorBody>) {
    post_raw(url, serde_json::to_vec(req).unwrap()).await
}

fn hub_size(hub: &Hub) -> u64 {
    hub.store.laptops().unwrap().iter().map(|l| l.size).sum()
}

#[tokio::test]
async fn sync_uploads_in_bounded_batches_and_stores_the_receipt() {
    let hub = hub().await;
    let l = laptop(1);
    enroll(&hub, &l, "laptop-1");
    add(&l.log, 30);
    let report = client(&hub.url).sync(&l.log).await.unwrap();
    assert_eq!(
        (report.acked_size, report.sent, report.batches),
        (30, 30, 5)
    );
    assert_eq!(l.log.acked_size().unwrap(), 30);
    assert_eq!(hub_size(&hub), 30);
    let receipt = l.log.latest_receipt().unwrap().unwrap();
    let hub_id = hub.store.hub_identity().unwrap();
    receipt
        .checkpoint
        .verify_signer(hub_id.name(), &hub_id.public_key())
        .unwrap();
    receipt
        .checkpoint
        .verify_signer(l.log.origin(), &l.log.identity().public_key())
        .unwrap();
    // The local log still verifies, and now checks the receipts too.
    assert_eq!(l.log.verify().unwrap().receipts, 5);

    // Nothing new: no request needed beyond the receipt already held.
    let again = client(&hub.url).sync(&l.log).await.unwrap();
    assert_eq!((again.sent, again.batches), (0, 0));
    // New entries resume from the acked size.
    add(&l.log, 3);
    let more = client(&hub.url).sync(&l.log).await.unwrap();
    assert_eq!((more.acked_size, more.sent), (33, 3));
    assert_eq!(hub_size(&hub), 33);
}

#[tokio::test]
async fn an_identical_resend_gets_the_stored_receipt_and_stores_nothing_twice() {
    let hub = hub().await;
    let l = laptop(2);
    enroll(&hub, &l, "laptop-2");
    add(&l.log, 5);
    let req = request(&l.log, 0, 5);
    assert_eq!(post(&hub.url, &req).await.0, 200);
    let resp = reqwest::Client::new()
        .post(format!("{}{APPEND_PATH}", hub.url))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: fieldkit_sync::AppendResponse = resp.json().await.unwrap();
    assert!(body.duplicate);
    assert_eq!(body.size, 5);
    assert_eq!(hub_size(&hub), 5);
}

#[tokio::test]
async fn a_stale_old_size_gets_409_with_the_hubs_size_and_the_client_resumes() {
    let hub = hub().await;
    let l = laptop(3);
    enroll(&hub, &l, "laptop-3");
    add(&l.log, 10);
    // The hub got entries 0..6 but the receipt never reached the laptop.
    assert_eq!(post(&hub.url, &request(&l.log, 0, 6)).await.0, 200);
    let (status, body) = post(&hub.url, &request(&l.log, 2, 10)).await;
    assert_eq!(status, 409);
    let body = body.unwrap();
    assert_eq!(
        (body.kind.as_str(), body.size),
        (kind::SIZE_MISMATCH, Some(6))
    );
    assert!(body.message.contains("holds 6"), "{}", body.message);
    let report = client(&hub.url).sync(&l.log).await.unwrap();
    assert_eq!(report.acked_size, 10);
    assert_eq!(hub_size(&hub), 10);
}

#[tokio::test]
async fn concurrent_identical_batches_store_each_entry_once() {
    let hub = hub().await;
    let l = laptop(4);
    enroll(&hub, &l, "laptop-4");
    add(&l.log, 20);
    let req = request(&l.log, 0, 20);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, req) = (hub.url.clone(), req.clone());
        tasks.push(tokio::spawn(async move { post(&url, &req).await.0 }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            200,
            "every copy is answered with the receipt"
        );
    }
    assert_eq!(hub_size(&hub), 20);
    assert_eq!(hub.store.count(&Default::default()).unwrap(), 20);
    // Two clients syncing the same log at once also converge.
    add(&l.log, 30);
    let (c1, c2) = (client(&hub.url), client(&hub.url));
    let (a, b) = tokio::join!(c1.sync(&l.log), c2.sync(&l.log));
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    client(&hub.url).sync(&l.log).await.unwrap();
    assert_eq!(hub.store.count(&Default::default()).unwrap(), 50);
}

/// One hostile or broken batch and the refusal it must get. Nothing may be stored.
async fn check(name: &str, hub: &Hub, req: AppendRequest, status: u16, kind: &str, says: &str) {
    let before = hub.store.count(&Default::default()).unwrap();
    let (got, body) = post(&hub.url, &req).await;
    let body = body.unwrap_or_else(|| panic!("{name}: no error body"));
    assert_eq!(
        (got, body.kind.as_str()),
        (status, kind),
        "{name}: {}",
        body.message
    );
    assert!(
        body.message.contains(says),
        "{name}: {:?} does not say {says:?}",
        body.message
    );
    assert_eq!(
        hub.store.count(&Default::default()).unwrap(),
        before,
        "{name}: stored something"
    );
}

#[tokio::test]
async fn reordered_gapped_and_inconsistent_batches_are_refused() {
    let hub = hub().await;
    let l = laptop(5);
    enroll(&hub, &l, "laptop-5");
    add(&l.log, 6);
    let good = request(&l.log, 0, 6);

    let mut reordered = good.clone();
    reordered.entries.swap(1, 2);
    check(
        "reordered",
        &hub,
        reordered,
        400,
        kind::INVALID_BATCH,
        "gapped or reordered",
    )
    .await;

    let mut gapped = good.clone();
    gapped.entries.remove(3);
    gapped.checkpoint = l.log.checkpoint_at(5).unwrap().as_str().into();
    check(
        "gapped",
        &hub,
        gapped,
        400,
        kind::INVALID_BATCH,
        "gapped or reordered",
    )
    .await;

    let mut short = good.clone();
    short.entries.pop();
    check(
        "size disagrees with checkpoint",
        &hub,
        short,
        400,
        kind::INVALID_BATCH,
        "checkpoint is for size 6",
    )
    .await;

    let mut edited = good.clone();
    edited.entries[5] = edited.entries[5].replace("\"ana\"", "\"bob\"");
    check(
        "edited entry",
        &hub,
        edited,
        400,
        kind::INVALID_BATCH,
        "checkpoint signs",
    )
    .await;

    let mut not_entry = good.clone();
    not_entry.entries[0] = "{\"hello\": 1}".into();
    check(
        "not an entry",
        &hub,
        not_entry,
        400,
        kind::INVALID_BATCH,
        "not a valid entry",
    )
    .await;

    // After all that, the good batch still goes through.
    assert_eq!(post(&hub.url, &good).await.0, 200);
}

#[tokio::test]
async fn unauthenticated_and_foreign_requests_are_refused() {
    let hub = hub().await;
    let a = laptop(6);
    let b = laptop(7);
    enroll(&hub, &a, "laptop-a");
    enroll(&hub, &b, "laptop-b");
    add(&a.log, 4);
    add(&b.log, 4);
    let stranger = laptop(8);
    add(&stranger.log, 2);

    check(
        "not enrolled",
        &hub,
        request(&stranger.log, 0, 2),
        403,
        kind::UNKNOWN_LAPTOP,
        "not enrolled",
    )
    .await;

    // Laptop B signs a checkpoint that claims to be laptop A's log.
    let mut forged = request(&a.log, 0, 4);
    let b_cp = b.log.checkpoint_at(4).unwrap();
    let sig = b_cp.as_str().split("\n\n").nth(1).unwrap();
    let text = forged.checkpoint.split("\n\n").next().unwrap().to_owned();
    forged.checkpoint = format!("{text}\n\n{sig}");
    check(
        "signed by another laptop",
        &hub,
        forged,
        401,
        kind::UNAUTHENTICATED,
        "no signature by",
    )
    .await;

    // A's entries replayed under B's identity (B signs a checkpoint over A's entries).
    let mut replay = request(&a.log, 0, 4);
    replay.origin = b.log.origin().into();
    replay.checkpoint = b.log.checkpoint_at(4).unwrap().as_str().into();
    check(
        "replayed under another identity",
        &hub,
        replay,
        422,
        kind::FOREIGN_ENTRY,
        "another laptop",
    )
    .await;

    // The checkpoint's text altered after signing.
    let mut tampered = request(&a.log, 0, 4);
    tampered.checkpoint = tampered.checkpoint.replacen("\n4\n", "\n3\n", 1);
    check(
        "tampered checkpoint",
        &hub,
        tampered,
        401,
        kind::UNAUTHENTICATED,
        "invalid",
    )
    .await;

    assert_eq!(post(&hub.url, &request(&a.log, 0, 4)).await.0, 200);
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_clear_errors() {
    let hub = hub().await;
    let l = laptop(9);
    enroll(&hub, &l, "laptop-9");
    add(&l.log, 2);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", vec![], 400, kind::BAD_REQUEST),
        ("not json", b"hello".to_vec(), 400, kind::BAD_REQUEST),
        (
            "truncated json",
            serde_json::to_vec(&request(&l.log, 0, 2)).unwrap()[..40].to_vec(),
            400,
            kind::BAD_REQUEST,
        ),
        (
            "wrong shape",
            br#"{"origin": 5}"#.to_vec(),
            400,
            kind::BAD_REQUEST,
        ),
        (
            "unknown field",
            br#"{"origin":"x","old_size":0,"entries":[],"checkpoint":"","extra":1}"#.to_vec(),
            400,
            kind::BAD_REQUEST,
        ),
        (
            "garbage checkpoint",
            br#"{"origin":"x","old_size":0,"entries":[],"checkpoint":"nope"}"#.to_vec(),
            400,
            kind::BAD_REQUEST,
        ),
        (
            "oversized body",
            vec![b' '; 9 * 1024 * 1024],
            413,
            kind::TOO_LARGE,
        ),
    ];
    for (name, body, status, k) in cases {
        let (got, err) = post_raw(&hub.url, body).await;
        let err = err.unwrap_or_else(|| panic!("{name}: no error body"));
        assert_eq!(
            (got, err.kind.as_str()),
            (status, k),
            "{name}: {}",
            err.message
        );
    }
    let mut many = request(&l.log, 0, 2);
    many.entries = vec!["{}".into(); 1001];
    check(
        "too many entries",
        &hub,
        many,
        413,
        kind::TOO_LARGE,
        "at most 1000",
    )
    .await;
    let mut huge = request(&l.log, 0, 2);
    huge.entries[0] = "x".repeat(70_000);
    check(
        "oversized entry",
        &hub,
        huge,
        413,
        kind::TOO_LARGE,
        "at most 65536",
    )
    .await;
    assert_eq!(hub_size(&hub), 0);
}

#[tokio::test]
async fn an_old_copy_restored_after_a_sync_is_detected_as_a_fork() {
    let hub = hub().await;
    let l = laptop(10);
    enroll(&hub, &l, "laptop-10");
    add(&l.log, 5);
    // Keep a copy of the laptop's files before the sync, as a backup would.
    let backup = tempfile::tempdir().unwrap();
    l.log.verify().unwrap();
    let db = l.dir.path().join("audit.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    std::fs::copy(&db, backup.path().join("audit.db")).unwrap();
    add(&l.log, 5);
    client(&hub.url).sync(&l.log).await.unwrap();
    assert_eq!(hub_size(&hub), 10);

    // Restore the old copy: the hub holds more than the laptop has.
    let id = l.log.identity().clone();
    drop(l.log);
    let _ = std::fs::remove_file(l.dir.path().join("audit.db-wal"));
    let _ = std::fs::remove_file(l.dir.path().join("audit.db-shm"));
    std::fs::copy(backup.path().join("audit.db"), &db).unwrap();
    let restored = AuditLog::open(&db, id).unwrap();
    let e = client(&hub.url).sync(&restored).await.unwrap_err();
    assert!(
        matches!(e, SyncError::LocalBehindHub { hub: 10, local: 5 }),
        "{e}"
    );

    // The restored laptop keeps working and writes new, different entries 5..12.
    add(&restored, 7);
    let e = client(&hub.url).sync(&restored).await.unwrap_err();
    assert!(e.is_fork(), "{e}");
    assert!(e.to_string().contains("both"), "{e}");
    let forks = hub.store.forks().unwrap();
    assert_eq!(forks.len(), 1);
    // The first entry that differs is named: the restored laptop's entry 5 is not the one synced.
    assert_eq!(forks[0].seq, 5);
    assert_ne!(forks[0].held, forks[0].sent);
    // Both versions are kept: the hub's entries are untouched, and the dashboard flags the seq.
    assert_eq!(hub_size(&hub), 10);
    let rows = hub.store.query(&Default::default()).unwrap();
    let flagged: Vec<u64> = rows
        .iter()
        .filter(|r| r.badges.fork)
        .map(|r| r.seq)
        .collect();
    assert_eq!(flagged, vec![5]);
}

#[tokio::test]
async fn a_hub_that_is_down_is_retried_with_backoff_then_reported() {
    let l = laptop(11);
    add(&l.log, 1);
    // Nothing listens on this port (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = client(&format!("http://127.0.0.1:{port}"))
        .sync(&l.log)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SyncError::Unreachable { attempts: 3, .. }),
        "{e}"
    );
    assert_eq!(l.log.acked_size().unwrap(), 0);
    let e = SyncClient::new("ftp://example").unwrap_err();
    assert!(matches!(e, SyncError::BadUrl { .. }), "{e}");
}
