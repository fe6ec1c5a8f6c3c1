//! fieldkit-hub: where technicians' audit logs arrive, and where service managers read them.
//!
//! The hub is deliberately small: an axum router ([`api`]) over a storage contract ([`store`])
//! with two backends, SQLite for one machine and PostgreSQL for a fleet. The sync protocol's
//! decisions are written once in [`ingest`], and the hub's other rules (what a filter means,
//! which badges an entry earns, which entry is a device's latest identity) once in [`rules`],
//! so every backend behaves identically and one conformance suite holds them to it.
//!
//! Design choices:
//! - **The hub is a second witness, not the source of truth.** It stores each laptop's entries
//!   as the exact bytes the laptop hashed, recomputes the laptop's RFC 6962 tree, and cosigns
//!   the laptop's own checkpoint only after the rows are committed. A receipt therefore proves
//!   the hub held those entries, and the laptop can prove what it sent.
//! - **Nothing is overwritten.** Evidence tables are append-only (triggers), and a fork (the
//!   same seq arriving with different bytes under a root the laptop signed) is recorded with
//!   both versions and surfaced on the dashboard rather than resolved.
//! - **Two kinds of callers, two kinds of authentication.** Laptops sign checkpoints with their
//!   enrolled Ed25519 key; managers sign in with argon2-hashed passwords behind a guard
//!   ([`auth`]) and get an `HttpOnly`, `SameSite=Strict`, `Secure` session cookie.
//! - **Its own key, its own file.** The hub's signing key lives in a 0600 PEM file beside the
//!   database ([`keyfile`]), never inside it; laptops pin it.
//! - **TLS built in** ([`serve`], rustls); plain HTTP only on loopback unless the operator
//!   accepts the risk by name.
//! - **The dashboard is static HTML, CSS and plain JavaScript** compiled into the binary
//!   (`include_str!`), with no build step and no third-party scripts.

pub mod api;
pub mod auth;
pub mod error;
pub mod export;
pub mod ingest;
pub mod keyfile;
pub mod postmarket;
pub mod rules;
pub mod serve;
pub mod store;

use std::sync::Arc;

pub use api::{AppState, router};
pub use error::ApiError;
pub use store::{PostgresStore, SqliteStore, Store, StoreError};

/// Connections a PostgreSQL hub keeps open at most.
pub const PG_POOL_SIZE: usize = 16;

/// Opens the store named by a database URL: `sqlite:PATH`, or `postgres://…` /
/// `postgresql://…` (connecting and migrating).
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(url, PG_POOL_SIZE).await?));
    }
    let url = url.to_owned();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open_url(&url))
        .await
        .map_err(|e| StoreError::Db(e.to_string()))??;
    Ok(Arc::new(store))
}
