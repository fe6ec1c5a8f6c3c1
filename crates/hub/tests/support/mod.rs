//! Shared test harness: a hub over either backend, served on loopback; laptops with real logs;
//! raw requests.

#![allow(dead_code, unreachable_pub)]

pub mod kit;
pub use fieldkit_testpg as pg;

use std::sync::Arc;

use fieldkit_audit::identity::{HUB_PREFIX, LAPTOP_PREFIX};
use fieldkit_audit::record::examples;
use fieldkit_audit::{AuditLog, Identity, NewEntry};
use fieldkit_hub::serve::{Listener, ServeOptions};
use fieldkit_hub::{AppState, SqliteStore, Store, open_store};
use fieldkit_sync::proto::{APPEND_PATH, AppendRequest, ErrorBody};
use fieldkit_sync::{SyncClient, SyncConfig};

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database of its own on the shared PostgreSQL server.
    Postgres,
}

/// A hub on loopback over a fresh database.
pub struct TestHub {
    pub url: String,
    pub store: Arc<dyn Store>,
    pub hub: Identity,
    pub state: AppState,
    pub db_url: String,
    pub dir: tempfile::TempDir,
}

/// A database URL of the backend, fresh.
pub async fn database(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite:{}", dir.join("hub.db").display()),
        Backend::Postgres => pg::database().await,
    }
}

/// A hub identity with a fixed key, so tests can name it.
pub fn hub_identity(seed: u8) -> Identity {
    Identity::from_key(
        HUB_PREFIX,
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    )
}

impl TestHub {
    /// A hub over `backend`, serving `state` (its store replaced) on loopback.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |s| s).await
    }

    /// The same, with the state adjusted first (clock, fault).
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(AppState) -> AppState) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_url = database(backend, dir.path()).await;
        let store = open_store(&db_url).await.unwrap();
        let hub = hub_identity(200);
        let state = adjust(AppState::new(store.clone(), hub.clone()));
        let listener = Listener::bind("127.0.0.1:0", &ServeOptions::default()).unwrap();
        let url = listener.url();
        let served = state.clone();
        tokio::spawn(async move {
            listener
                .serve(served, std::future::pending())
                .await
                .unwrap()
        });
        Self {
            url,
            store,
            hub,
            state,
            db_url,
            dir,
        }
    }

    /// Entries the hub holds, over every laptop.
    pub async fn size(&self) -> u64 {
        self.store
            .laptops()
            .await
            .unwrap()
            .iter()
            .map(|l| l.size)
            .sum()
    }

    /// Entries matching nothing in particular: every entry row.
    pub async fn count(&self) -> u64 {
        self.store
            .count(&Default::default(), u64::MAX)
            .await
            .unwrap()
    }

    /// Enrols a laptop.
    pub async fn enroll(&self, l: &Laptop, name: &str) {
        self.store
            .enroll_laptop(name, &l.log.identity().public_key())
            .await
            .unwrap();
    }

    /// A sync client that pinned this hub's key.
    pub fn client(&self) -> SyncClient {
        client(&self.url, &self.hub)
    }
}

/// A SQLite store in `dir` (for tests that need the concrete type).
pub fn sqlite_store(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.join("hub.db")).unwrap())
}

/// A laptop with its own log and fixed key.
pub struct Laptop {
    pub dir: tempfile::TempDir,
    pub log: AuditLog,
}

pub fn laptop(seed: u8) -> Laptop {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::from_key(
        LAPTOP_PREFIX,
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    );
    let log = AuditLog::open(&dir.path().join("audit.db"), id).unwrap();
    Laptop { dir, log }
}

/// Appends `n` identify entries over three serials.
pub fn add(log: &AuditLog, n: u64) {
    for i in 0..n {
        log.append(NewEntry {
            technician: "ana".into(),
            site: "St. Mary".into(),
            event: examples::identified(examples::device(
                &format!("SN-{}", i % 3),
                "pump",
                &[("app", "1.2.3")],
            )),
        })
        .unwrap();
    }
}

/// A client with small batches and quick retries, pinned to `hub`.
pub fn client(url: &str, hub: &Identity) -> SyncClient {
    let config = SyncConfig {
        max_batch_entries: 7,
        retries: 2,
        initial_backoff: std::time::Duration::from_millis(10),
        ..SyncConfig::default()
    };
    SyncClient::with_config(url, hub.public_key(), config).unwrap()
}

/// The append request for entries `old..end` of `log`.
pub fn request(log: &AuditLog, old: u64, end: u64) -> AppendRequest {
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

/// Posts raw bytes to the append endpoint; returns the status and the error body (if any).
pub async fn post_raw(url: &str, body: Vec<u8>) -> (u16, Option<ErrorBody>) {
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

/// Posts an append request.
pub async fn post(url: &str, req: &AppendRequest) -> (u16, Option<ErrorBody>) {
    post_raw(url, serde_json::to_vec(req).unwrap()).await
}
