//! The storage conformance suite: every behaviour of the hub that depends on its storage, as
//! one async function per behaviour, run against every backend by `conformance!` (see
//! `conformance_sqlite.rs` and `conformance_postgres.rs`). Everything goes through the real
//! HTTP API on loopback, as laptops and managers use it.

#![allow(dead_code, unreachable_pub)]

use fieldkit_audit::record::{CheckVerdict, StepVerdict, examples};
use fieldkit_audit::{AuditLog, NewEntry, events};
use fieldkit_hub::auth;
use fieldkit_sync::proto::{APPEND_PATH, AppendRequest, kind};
use fieldkit_sync::{AppendResponse, SyncError};
use serde_json::{Value, json};

use crate::support::kit::Historic;
use crate::support::{Backend, Laptop, TestHub, add, laptop, post, post_raw, request};

mod postmarket;
pub use postmarket::*;

/// Instantiates every conformance test for one backend.
#[macro_export]
macro_rules! conformance {
    ($backend:expr) => {
        $crate::conformance!(@tests $backend;
            sync_uploads_in_bounded_batches_and_stores_the_receipt,
            an_identical_resend_gets_the_stored_receipt_and_stores_nothing_twice,
            a_stale_or_gapped_old_size_gets_409_with_the_hubs_size_and_the_client_resumes,
            concurrent_identical_batches_store_each_entry_once,
            laptops_syncing_at_once_do_not_wait_for_or_disturb_each_other,
            batches_sent_at_once_are_each_decided_alone,
            reordered_gapped_and_inconsistent_batches_are_refused,
            unauthenticated_and_foreign_requests_are_refused,
            an_old_copy_restored_after_a_sync_is_detected_as_a_fork,
            a_fork_forged_from_a_public_checkpoint_is_refused_and_recorded_nowhere,
            manager_accounts_and_sessions,
            an_outcome_naming_no_earlier_intent_is_held_and_closes_nothing,
            timeline_filters_select_exactly_the_matching_entries_with_badges,
            inventory_holds_the_latest_identity_per_serial_and_the_version_counts,
            exports_are_csv_and_a_verifiable_json_bundle,
            the_trust_root_is_pinned_once_and_rotates_only_as_signed,
            releases_are_verified_against_the_hubs_root,
            an_advisory_lists_exactly_the_devices_that_run_an_affected_release,
            exposure_by_component_and_by_device,
            vex_statements_clear_exposure_across_releases_and_are_signed,
            entitlements_recalls_and_the_root_policy_decide_what_may_be_installed,
            up_to_date_by_product_customer_and_site,
            the_licence_report_flags_and_denies_by_policy,
            advisories_keep_the_newest_version_and_archives_import_member_by_member,
            the_series_counts_exposed_devices_by_severity_over_time,
            the_api_refuses_bad_questions_and_keeps_hostile_text_inert,
        );
    };
    (@tests $backend:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                conformance::$name($backend).await
            }
        )*
    };
}

pub async fn sync_uploads_in_bounded_batches_and_stores_the_receipt(b: Backend) {
    let hub = TestHub::start(b).await;
    let l = laptop(1);
    hub.enroll(&l, "laptop-1").await;
    add(&l.log, 30);
    let report = hub.client().sync(&l.log).await.unwrap();
    assert_eq!(
        (report.acked_size, report.sent, report.batches),
        (30, 30, 5)
    );
    assert_eq!(l.log.acked_size().unwrap(), 30);
    assert_eq!(hub.size().await, 30);
    let receipt = l.log.latest_receipt().unwrap().unwrap();
    receipt
        .checkpoint
        .verify_signer(hub.hub.name(), &hub.hub.public_key())
        .unwrap();
    receipt
        .checkpoint
        .verify_signer(l.log.origin(), &l.log.identity().public_key())
        .unwrap();
    assert_eq!(l.log.verify().unwrap().receipts, 5);

    let again = hub.client().sync(&l.log).await.unwrap();
    assert_eq!((again.sent, again.batches), (0, 0));
    add(&l.log, 3);
    let more = hub.client().sync(&l.log).await.unwrap();
    assert_eq!((more.acked_size, more.sent), (33, 3));
    assert_eq!(hub.size().await, 33);
    let laptops = hub.store.laptops().await.unwrap();
    assert_eq!(
        (laptops[0].size, laptops[0].receipt_size, laptops[0].forks),
        (33, 33, 0)
    );
    assert!(laptops[0].last_sync.is_some());
}

pub async fn an_identical_resend_gets_the_stored_receipt_and_stores_nothing_twice(b: Backend) {
    let hub = TestHub::start(b).await;
    let l = laptop(2);
    hub.enroll(&l, "laptop-2").await;
    add(&l.log, 5);
    let req = request(&l.log, 0, 5);
    assert_eq!(post(&hub.url, &req).await.0, 200);
    for _ in 0..2 {
        let resp = reqwest::Client::new()
            .post(format!("{}{APPEND_PATH}", hub.url))
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: AppendResponse = resp.json().await.unwrap();
        assert!(body.duplicate);
        assert_eq!(body.size, 5);
    }
    // A resend of an earlier part, after more was stored, is a duplicate too.
    add(&l.log, 3);
    assert_eq!(post(&hub.url, &request(&l.log, 5, 8)).await.0, 200);
    let (status, _) = post(&hub.url, &request(&l.log, 2, 5)).await;
    assert_eq!(status, 200);
    assert_eq!(hub.size().await, 8);
    assert_eq!(hub.count().await, 8);
}

pub async fn a_stale_or_gapped_old_size_gets_409_with_the_hubs_size_and_the_client_resumes(
    b: Backend,
) {
    let hub = TestHub::start(b).await;
    let l = laptop(3);
    hub.enroll(&l, "laptop-3").await;
    add(&l.log, 10);
    // The hub got entries 0..6 but the receipt never reached the laptop.
    assert_eq!(post(&hub.url, &request(&l.log, 0, 6)).await.0, 200);
    for (old, end) in [(2, 10), (8, 10)] {
        let (status, body) = post(&hub.url, &request(&l.log, old, end)).await;
        assert_eq!(status, 409, "{old}..{end}");
        let body = body.unwrap();
        assert_eq!(
            (body.kind.as_str(), body.size),
            (kind::SIZE_MISMATCH, Some(6))
        );
        assert!(body.message.contains("holds 6"), "{}", body.message);
    }
    let report = hub.client().sync(&l.log).await.unwrap();
    assert_eq!(report.acked_size, 10);
    assert_eq!(hub.size().await, 10);
    assert_eq!(hub.count().await, 10);
}

pub async fn concurrent_identical_batches_store_each_entry_once(b: Backend) {
    let hub = TestHub::start(b).await;
    let l = laptop(4);
    hub.enroll(&l, "laptop-4").await;
    add(&l.log, 20);
    let req = request(&l.log, 0, 20);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, req) = (hub.url.clone(), req.clone());
        tasks.push(tokio::spawn(async move { post(&url, &req).await.0 }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200, "every copy gets the receipt");
    }
    assert_eq!(hub.size().await, 20);
    assert_eq!(hub.count().await, 20);
    // Two clients syncing the same log at once also converge.
    add(&l.log, 30);
    let (c1, c2) = (hub.client(), hub.client());
    let (a, b2) = tokio::join!(c1.sync(&l.log), c2.sync(&l.log));
    assert!(a.is_ok() || b2.is_ok(), "{a:?} {b2:?}");
    hub.client().sync(&l.log).await.unwrap();
    assert_eq!(hub.count().await, 50);
}

pub async fn laptops_syncing_at_once_do_not_wait_for_or_disturb_each_other(b: Backend) {
    let hub = TestHub::start(b).await;
    let mut tasks = Vec::new();
    for seed in 40..44u8 {
        let l = laptop(seed);
        hub.enroll(&l, &format!("laptop-{seed}")).await;
        add(&l.log, 25);
        let c = hub.client();
        tasks.push(tokio::spawn(async move {
            let report = c.sync(&l.log).await;
            (l, report)
        }));
    }
    let mut laptops = Vec::new();
    for t in tasks {
        let (l, report) = t.await.unwrap();
        assert_eq!(report.unwrap().acked_size, 25);
        laptops.push(l);
    }
    assert_eq!(hub.count().await, 100);
    for l in &laptops {
        let q = fieldkit_hub::rules::EntryFilter {
            origin: Some(l.log.origin().into()),
            ..Default::default()
        }
        .to_query(200, 1000)
        .unwrap();
        assert_eq!(hub.store.count(&q, u64::MAX).await.unwrap(), 25);
        // Counting stops where it is told to.
        assert_eq!(hub.store.count(&q, 26).await.unwrap(), 25);
        assert_eq!(hub.store.count(&q, 25).await.unwrap(), 25);
        assert_eq!(hub.store.count(&q, 10).await.unwrap(), 10);
        assert_eq!(hub.store.count(&q, 0).await.unwrap(), 0);
    }
}

/// Batches of many laptops at once, some refused inside the transaction (a gap, a stale
/// `old_size`, entries that do not give the root the laptop signed), some identical resends,
/// some new: each gets its own answer, a refusal stores nothing and undoes no other batch, and
/// every acknowledged batch is held. (SQLite commits batches that arrive together in one
/// transaction, and relies on a refusal having written nothing.)
pub async fn batches_sent_at_once_are_each_decided_alone(b: Backend) {
    let hub = TestHub::start(b).await;
    let mut laptops = Vec::new();
    for seed in 50..59u8 {
        let l = laptop(seed);
        hub.enroll(&l, &format!("laptop-{seed}")).await;
        add(&l.log, 40);
        assert_eq!(post(&hub.url, &request(&l.log, 0, 10)).await.0, 200);
        laptops.push(l);
    }
    for round in 0..2u64 {
        let mut tasks = Vec::new();
        for (i, l) in laptops.iter().enumerate() {
            let held = 10 + 10 * round;
            // New entries, a gap, a stale start, a changed entry; and an identical resend.
            let (old, end, want) = match i % 4 {
                0 => (held, held + 10, 200),
                1 => (held + 5, held + 10, 409),
                2 => (held - 5, held + 10, 409),
                _ => (held, held + 10, 400),
            };
            let mut req = request(&l.log, old, end);
            if want == 400 {
                // The last entry altered after the laptop signed: it still parses and chains,
                // and only the root, recomputed inside the transaction, gives it away.
                let last = req.entries.last_mut().unwrap();
                *last = last.replacen("\"technician\":\"", "\"technician\":\"X", 1);
            }
            let resend = request(&l.log, 0, 10);
            let url = hub.url.clone();
            tasks.push(tokio::spawn(async move {
                let (status, body) = post(&url, &req).await;
                let (again, _) = post(&url, &resend).await;
                (i, status, body, want, again)
            }));
        }
        for t in tasks {
            let (i, status, body, want, again) = t.await.unwrap();
            assert_eq!(status, want, "laptop {i}, round {round}: {body:?}");
            match want {
                409 => assert_eq!(body.unwrap().size, Some(10 + 10 * round), "laptop {i}"),
                400 => assert!(body.unwrap().message.contains("the checkpoint signs")),
                _ => {}
            }
            assert_eq!(
                again, 200,
                "laptop {i}: the identical resend gets its receipt"
            );
        }
        // Only the odd ones out sync what they missed, so each round starts from one size.
        for (i, l) in laptops.iter().enumerate() {
            if i % 4 != 0 {
                let (from, to) = (10 + 10 * round, 20 + 10 * round);
                assert_eq!(post(&hub.url, &request(&l.log, from, to)).await.0, 200);
            }
        }
    }
    let statuses = hub.store.laptops().await.unwrap();
    assert!(statuses.iter().all(|s| s.size == 30), "{statuses:?}");
    assert_eq!(hub.count().await, 30 * laptops.len() as u64);
    for l in &laptops {
        let report = hub.client().sync(&l.log).await.unwrap();
        assert_eq!(report.acked_size, 40);
    }
    assert_eq!(hub.count().await, 40 * laptops.len() as u64);
    assert!(hub.store.forks().await.unwrap().is_empty());
}

/// One hostile or broken batch and the refusal it must get. Nothing may be stored.
async fn check(name: &str, hub: &TestHub, req: AppendRequest, status: u16, kind: &str, says: &str) {
    let before = hub.count().await;
    let forks = hub.store.forks().await.unwrap().len();
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
    assert_eq!(hub.count().await, before, "{name}: stored something");
    if kind != fieldkit_sync::proto::kind::FORK {
        assert_eq!(
            hub.store.forks().await.unwrap().len(),
            forks,
            "{name}: recorded a fork"
        );
    }
}

pub async fn reordered_gapped_and_inconsistent_batches_are_refused(b: Backend) {
    let hub = TestHub::start(b).await;
    let l = laptop(5);
    hub.enroll(&l, "laptop-5").await;
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

    let mut overflow = good.clone();
    overflow.old_size = u64::MAX - 2;
    check(
        "overflowing old_size",
        &hub,
        overflow,
        400,
        kind::INVALID_BATCH,
        "",
    )
    .await;

    assert_eq!(post(&hub.url, &good).await.0, 200);
    // The next batch must chain to the hub's last entry.
    add(&l.log, 2);
    let mut unchained = request(&l.log, 6, 8);
    let other = laptop(5);
    add(&other.log, 8);
    unchained.entries = request(&other.log, 6, 8).entries;
    unchained.checkpoint = other.log.checkpoint_at(8).unwrap().as_str().into();
    check(
        "does not chain to the hub's last entry",
        &hub,
        unchained,
        400,
        kind::INVALID_BATCH,
        "the entries give root",
    )
    .await;
    assert_eq!(hub.count().await, 6);
}

pub async fn unauthenticated_and_foreign_requests_are_refused(b: Backend) {
    let hub = TestHub::start(b).await;
    let a = laptop(6);
    let bb = laptop(7);
    hub.enroll(&a, "laptop-a").await;
    hub.enroll(&bb, "laptop-b").await;
    add(&a.log, 4);
    add(&bb.log, 4);
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
    let b_cp = bb.log.checkpoint_at(4).unwrap();
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

    // A's entries replayed under B's identity.
    let mut replay = request(&a.log, 0, 4);
    replay.origin = bb.log.origin().into();
    replay.checkpoint = bb.log.checkpoint_at(4).unwrap().as_str().into();
    check(
        "replayed under another identity",
        &hub,
        replay,
        422,
        kind::FOREIGN_ENTRY,
        "another laptop",
    )
    .await;

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
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", vec![], 400, kind::BAD_REQUEST),
        ("not json", b"hello".to_vec(), 400, kind::BAD_REQUEST),
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
    assert_eq!(hub.count().await, 4);
}

fn backup(l: &Laptop) -> tempfile::TempDir {
    let backup = tempfile::tempdir().unwrap();
    l.log.verify().unwrap();
    let db = l.dir.path().join("audit.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    std::fs::copy(&db, backup.path().join("audit.db")).unwrap();
    backup
}

fn restore(l: Laptop, backup: &tempfile::TempDir) -> (tempfile::TempDir, AuditLog) {
    let id = l.log.identity().clone();
    let db = l.dir.path().join("audit.db");
    drop(l.log);
    let _ = std::fs::remove_file(l.dir.path().join("audit.db-wal"));
    let _ = std::fs::remove_file(l.dir.path().join("audit.db-shm"));
    std::fs::copy(backup.path().join("audit.db"), &db).unwrap();
    let log = AuditLog::open(&db, id).unwrap();
    (l.dir, log)
}

pub async fn an_old_copy_restored_after_a_sync_is_detected_as_a_fork(b: Backend) {
    let hub = TestHub::start(b).await;
    let l = laptop(10);
    hub.enroll(&l, "laptop-10").await;
    add(&l.log, 5);
    let saved = backup(&l);
    add(&l.log, 5);
    hub.client().sync(&l.log).await.unwrap();
    assert_eq!(hub.size().await, 10);

    let (_dir, restored) = restore(l, &saved);
    let e = hub.client().sync(&restored).await.unwrap_err();
    assert!(
        matches!(e, SyncError::LocalBehindHub { hub: 10, local: 5 }),
        "{e}"
    );

    // The restored laptop writes new, different entries 5..12 and signs them.
    add(&restored, 7);
    let e = hub.client().sync(&restored).await.unwrap_err();
    assert!(e.is_fork(), "{e}");
    assert!(e.to_string().contains("both versions are kept"), "{e}");
    let forks = hub.store.forks().await.unwrap();
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0].seq, 5);
    assert_ne!(forks[0].held, forks[0].sent);
    assert_eq!(hub.size().await, 10);
    let q = fieldkit_hub::rules::EntryQuery::default();
    let rows = fieldkit_hub::api::timeline(&*hub.store, &q).await.unwrap();
    let flagged: Vec<u64> = rows
        .iter()
        .filter(|r| r.badges.fork)
        .map(|r| r.seq)
        .collect();
    assert_eq!(flagged, vec![5]);
    assert_eq!(hub.store.laptops().await.unwrap()[0].forks, 1);
}

pub async fn a_fork_forged_from_a_public_checkpoint_is_refused_and_recorded_nowhere(b: Backend) {
    let hub = TestHub::start(b).await;
    let l = laptop(11);
    hub.enroll(&l, "laptop-11").await;
    add(&l.log, 6);
    hub.client().sync(&l.log).await.unwrap();
    // An attacker holds the laptop's public checkpoint (every sync and every export carries
    // one) and sends other bytes for entries the hub holds, under it.
    let public = l.log.checkpoint_at(6).unwrap();
    for old in [0, 3, 5] {
        let mut forged = request(&l.log, old, 6);
        forged.checkpoint = public.as_str().into();
        let i = forged.entries.len() - 1;
        forged.entries[i] = forged.entries[i].replace("St. Mary", "PLANTED ALARM");
        check(
            &format!("forged overlap from {old}"),
            &hub,
            forged,
            400,
            kind::INVALID_BATCH,
            "but the checkpoint signs",
        )
        .await;
    }
    // Also with extra invented entries past the hub's size under the same public checkpoint.
    let mut longer = request(&l.log, 4, 6);
    longer.entries[1] = longer.entries[1].replace("ana", "mallory");
    longer.checkpoint = public.as_str().into();
    check(
        "forged with a stolen checkpoint",
        &hub,
        longer,
        400,
        kind::INVALID_BATCH,
        "checkpoint signs",
    )
    .await;
    assert!(hub.store.forks().await.unwrap().is_empty());
    assert_eq!(hub.store.laptops().await.unwrap()[0].forks, 0);
    // The laptop's next sync is undisturbed.
    add(&l.log, 2);
    assert_eq!(hub.client().sync(&l.log).await.unwrap().acked_size, 8);
}

/// A manager's HTTP session.
struct Browser {
    url: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    fn new(url: &str) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::new(),
            cookie: None,
        }
    }

    async fn sign_in(&mut self, name: &str, password: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/session", self.url))
            .header("content-type", "application/json")
            .header("origin", &self.url)
            .body(json!({"name": name, "password": password}).to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if let Some(c) = resp.headers().get("set-cookie") {
            let c = c.to_str().unwrap();
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"),
                "{c}"
            );
            self.cookie = Some(c.split(';').next().unwrap().to_owned());
        }
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn json(&self, path: &str) -> Value {
        let (status, v) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    async fn sign_out(&self) {
        let mut r = self
            .http
            .delete(format!("{}/api/v1/session", self.url))
            .header("origin", &self.url);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        assert_eq!(r.send().await.unwrap().status(), 200);
    }
}

pub async fn manager_accounts_and_sessions(b: Backend) {
    let hub = TestHub::start(b).await;
    let hash = auth::hash_password("s3cret-pass").unwrap();
    hub.store.add_manager("maria", &hash).await.unwrap();
    let e = hub.store.add_manager("maria", &hash).await.unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let mut m = Browser::new(&hub.url);
    for path in [
        "/api/v1/entries",
        "/api/v1/inventory",
        "/api/v1/laptops",
        "/api/v1/forks",
        "/api/v1/export?format=csv",
        "/api/v1/session",
    ] {
        let (status, v) = m.get(path).await;
        assert_eq!(
            (status, v["kind"].as_str()),
            (401, Some("unauthenticated")),
            "{path}"
        );
    }
    let (status, v) = m.sign_in("maria", "wrong-password").await;
    assert_eq!(
        (status, v["message"].as_str()),
        (401, Some("unknown manager or wrong password"))
    );
    let (status, v2) = m.sign_in("nobody", "s3cret-pass").await;
    assert_eq!(status, 401);
    assert_eq!(v, v2, "unknown names get the same answer");
    let (status, me) = m.sign_in("maria", "s3cret-pass").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "maria");
    assert_eq!(me["hub"], hub.hub.name());
    assert_eq!(m.json("/api/v1/session").await["name"], "maria");
    // A second session lives beside the first.
    let mut other = Browser::new(&hub.url);
    assert_eq!(other.sign_in("maria", "s3cret-pass").await.0, 200);
    m.sign_out().await;
    assert_eq!(m.get("/api/v1/entries").await.0, 401);
    assert_eq!(other.get("/api/v1/entries").await.0, 200);
    // An expired session is not one.
    let (token, h) = auth::new_token();
    let row = hub.store.manager("maria").await.unwrap().unwrap();
    let now = chrono::Utc::now().timestamp();
    hub.store
        .create_session(row.id, &h, now - 1, now)
        .await
        .unwrap();
    assert_eq!(hub.store.session(&h, now).await.unwrap(), None);
    let mut stale = Browser::new(&hub.url);
    stale.cookie = Some(format!("{}={token}", auth::SESSION_COOKIE));
    assert_eq!(stale.get("/api/v1/laptops").await.0, 401);
}

fn entry(tech: &str, site: &str, serial: &str, event: &str, app: &str) -> NewEntry {
    let device = examples::device(serial, "infusion-pump", &[("app", app), ("net", "0.9.1")]);
    let event = match event {
        events::DEVICE_IDENTIFIED => examples::identified(device),
        events::UPDATE_STARTED => examples::intent(device, "infusion-pump@1.3.0"),
        // The outcome names its intent (entry 1).
        events::UPDATE_SUCCEEDED => {
            examples::outcome(1, device, "infusion-pump@1.3.0", StepVerdict::Applied)
        }
        events::CHECK_REFUSED => {
            examples::check(device, CheckVerdict::Refused, ("r", "found", "required"))
        }
        other => panic!("no example for {other}"),
    };
    NewEntry {
        technician: tech.into(),
        site: site.into(),
        event,
    }
}

/// An outcome whose intent number names no earlier entry (past any store's integers, or a later
/// entry) is held as sent and closes nothing. Such a number, which only a hostile log sends (the
/// laptop's own log cannot hold one past `i64::MAX`), once failed its batch halfway through the
/// write.
pub async fn an_outcome_naming_no_earlier_intent_is_held_and_closes_nothing(b: Backend) {
    let (hub, m, _) = fleet(b).await;
    let mut hostile = Historic::new(62);
    hub.store
        .enroll_laptop("laptop-62", &hostile.identity.public_key())
        .await
        .unwrap();
    let device = examples::device("SN-4", "infusion-pump", &[("app", "1.3.0")]);
    let now = chrono::Utc::now();
    for intent in [u64::MAX, i64::MAX as u64 + 1, 3] {
        let outcome = examples::outcome(
            intent,
            device.clone(),
            "infusion-pump@1.3.0",
            StepVerdict::Applied,
        );
        hostile.push(now, "ICU", outcome);
    }
    hostile.push(
        now,
        "ICU",
        examples::intent(device.clone(), "infusion-pump@1.3.0"),
    );
    hostile.sync(&hub.url).await;
    let v = m.json("/api/v1/entries?serial=SN-4").await;
    assert_eq!(v["total"], 4);
    assert_eq!(v["entries"][0]["seq"], 3);
    assert_eq!(
        v["entries"][0]["badges"]["pending"], true,
        "entry 2 came before the intent: it closes nothing"
    );
}

/// A hub holding six entries of one laptop and a signed-in manager.
async fn fleet(b: Backend) -> (TestHub, Browser, Laptop) {
    let hub = TestHub::start(b).await;
    hub.store
        .add_manager("maria", &auth::hash_password("s3cret-pass").unwrap())
        .await
        .unwrap();
    let l = laptop(30);
    hub.enroll(&l, "laptop-1").await;
    for e in [
        entry("ana", "St. Mary", "SN-1", "device_identified", "1.2.3"),
        entry("ana", "St. Mary", "SN-1", "update_started", "1.2.3"),
        entry("ana", "St. Mary", "SN-1", "update_succeeded", "1.3.0"),
        entry("bo", "Central", "SN-2", "device_identified", "1.2.3"),
        entry("bo", "Central", "SN-2", "check_refused", "1.2.3"),
        entry("bo", "Central", "SN-3", "update_started", "1.2.3"),
    ] {
        l.log.append(e).unwrap();
    }
    hub.client().sync(&l.log).await.unwrap();
    let mut m = Browser::new(&hub.url);
    assert_eq!(m.sign_in("maria", "s3cret-pass").await.0, 200);
    (hub, m, l)
}

pub async fn timeline_filters_select_exactly_the_matching_entries_with_badges(b: Backend) {
    let (_hub, m, _l) = fleet(b).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let cases: &[(&str, u64)] = &[
        ("", 6),
        ("technician=ana", 3),
        ("site=Central", 3),
        ("serial=SN-1", 3),
        ("model=infusion-pump", 6),
        ("model=other", 0),
        ("event=update_started", 2),
        ("outcome=succeeded", 1),
        ("outcome=refused", 1),
        ("outcome=started", 2),
        ("technician=bo&outcome=started", 1),
        ("from=2000-01-01&to=2999-12-31", 6),
        ("to=2000-01-01", 0),
        ("limit=2", 6),
        ("offset=100000000", 6),
    ];
    for (q, want) in cases {
        let v = m.json(&format!("/api/v1/entries?{q}")).await;
        assert_eq!(v["total"], *want, "{q}");
    }
    // A bare date means the whole day, whatever the hour now.
    let v = m
        .json(&format!("/api/v1/entries?from={today}&to={today}"))
        .await;
    assert_eq!(v["total"], 6);
    let v = m.json("/api/v1/entries?limit=2").await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    assert_eq!(v["entries"][0]["seq"], 5, "newest first");
    let v = m.json("/api/v1/entries?limit=2&offset=2").await;
    assert_eq!(v["entries"][0]["seq"], 3);
    let v = m.json("/api/v1/entries?serial=SN-3").await;
    assert_eq!(
        v["entries"][0]["badges"],
        json!({"receipt": true, "pending": true, "fork": false, "clock": false})
    );
    let v = m
        .json("/api/v1/entries?serial=SN-1&event=update_started")
        .await;
    assert_eq!(
        v["entries"][0]["badges"]["pending"], false,
        "closed by update_succeeded"
    );
    // Broken rules are 400s that name the rule, never database errors.
    for (q, says) in [
        (
            "offset=18446744073709551615",
            "offset=\"18446744073709551615\" is not accepted: required a whole number from 0 to 100000000",
        ),
        ("limit=0", "required a whole number from 1 to 1000"),
        ("from=yesterday", "required a date YYYY-MM-DD"),
        ("outcome=exploded", "required one of info"),
        ("technican=ana", "unknown field `technican`"),
    ] {
        let (status, v) = m.get(&format!("/api/v1/entries?{q}")).await;
        assert_eq!(
            (status, v["kind"].as_str()),
            (400, Some("bad_request")),
            "{q}: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains(says), "{q}: {v}");
    }
}

pub async fn inventory_holds_the_latest_identity_per_serial_and_the_version_counts(b: Backend) {
    let (hub, m, l) = fleet(b).await;
    let v = m.json("/api/v1/inventory").await;
    let devices = v["devices"].as_array().unwrap();
    let by_serial = |s: &str| devices.iter().find(|d| d["serial"] == s).unwrap().clone();
    assert_eq!(devices.len(), 2, "SN-3 has only an intent: {devices:?}");
    assert_eq!(v["total"], 2);
    assert_eq!(
        by_serial("SN-1")["firmware"],
        json!([["app", "1.3.0"], ["net", "0.9.1"]])
    );
    assert_eq!(by_serial("SN-1")["last_event"], "update_succeeded");
    assert_eq!(by_serial("SN-2")["last_event"], "check_refused");
    assert_eq!(
        v["versions"],
        json!([
            {"model": "infusion-pump", "component": "app", "version": "1.2.3", "devices": 1},
            {"model": "infusion-pump", "component": "app", "version": "1.3.0", "devices": 1},
            {"model": "infusion-pump", "component": "net", "version": "0.9.1", "devices": 2},
        ])
    );
    // A second laptop reads SN-2 later with new firmware: it becomes the latest identity.
    let l2 = laptop(31);
    hub.enroll(&l2, "laptop-2").await;
    l2.log
        .append(entry(
            "chen",
            "Riverside",
            "SN-2",
            "device_identified",
            "2.0.0",
        ))
        .unwrap();
    hub.client().sync(&l2.log).await.unwrap();
    // An older-looking identity of the first laptop (an intent) changes nothing.
    l.log
        .append(entry("ana", "St. Mary", "SN-2", "update_started", "9.9.9"))
        .unwrap();
    hub.client().sync(&l.log).await.unwrap();
    let v = m.json("/api/v1/inventory?serial=SN-2").await;
    assert_eq!(v["devices"][0]["technician"], "chen");
    assert_eq!(v["devices"][0]["firmware"][0], json!(["app", "2.0.0"]));
    // The chart counts SN-2 once, at its new version: the laptop that moved it is not the one
    // that counted it before (PostgreSQL keeps each laptop's share of the counts).
    let v = m.json("/api/v1/inventory").await;
    assert_eq!(
        v["versions"],
        json!([
            {"model": "infusion-pump", "component": "app", "version": "1.3.0", "devices": 1},
            {"model": "infusion-pump", "component": "app", "version": "2.0.0", "devices": 1},
            {"model": "infusion-pump", "component": "net", "version": "0.9.1", "devices": 2},
        ])
    );
    let v = m.json("/api/v1/inventory?limit=1").await;
    assert_eq!(
        (v["total"].as_u64(), v["devices"].as_array().unwrap().len()),
        (Some(2), 1)
    );
    assert_eq!(v["devices"][0]["serial"], "SN-1", "by model, then serial");
    let (status, v) = m.get("/api/v1/inventory?offset=-3").await;
    assert_eq!(status, 400, "{v}");
    let laptops = m.json("/api/v1/laptops").await;
    assert_eq!(laptops[0]["size"], 7);
    assert_eq!(laptops[0]["receipt_size"], 7);
}

pub async fn exports_are_csv_and_a_verifiable_json_bundle(b: Backend) {
    let (hub, m, _l) = fleet(b).await;
    let (status, csv) = m.get("/api/v1/export?format=csv&technician=ana").await;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap().to_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    // The columns of the one export module the laptop uses too, then the hub's own.
    assert!(
        lines[0].starts_with("origin,seq,time,schema,technician,site,device_serial,device_model,event,outcome,summary,device,details,leaf,laptop,receipt,pending,fork,clock_flag"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(",2,ana,St. Mary,SN-1,infusion-pump,device_identified,info,identified infusion-pump SN-1 on"),
        "{}",
        lines[1]
    );
    let v = m.json("/api/v1/export?format=json").await;
    assert_eq!(v["format"], "fieldkit-hub-export/2");
    assert_eq!(v["hub"], hub.hub.name());
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let leaves: Vec<[u8; 32]> = entries
        .iter()
        .map(|e| {
            let leaf = fieldkit_audit::merkle::leaf_hash(e["body"].as_str().unwrap().as_bytes());
            assert_eq!(hex::encode(leaf), e["leaf"]);
            leaf
        })
        .collect();
    let cp = fieldkit_audit::SignedCheckpoint::parse(v["checkpoints"][0]["note"].as_str().unwrap())
        .unwrap();
    assert_eq!(cp.root(), fieldkit_audit::merkle::root_from_leaves(&leaves));
    let (status, _) = m.get("/api/v1/export?format=xml").await;
    assert_eq!(status, 400);
    let (status, v) = m.get("/api/v1/export?format=csv&limit=100001").await;
    assert_eq!(status, 400, "{v}");
}
