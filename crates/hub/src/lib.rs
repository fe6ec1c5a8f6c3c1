//! fieldkit-hub: where technicians' audit logs arrive, and where service managers read them.
//!
//! The hub is deliberately small: an axum router ([`api`]) over a storage trait ([`store`]),
//! with the sync protocol's decisions written once in [`ingest`] so that every backend
//! (SQLite today, PostgreSQL when one machine is outgrown) behaves identically.
//!
//! Design choices:
//! - **The hub is a second witness, not the source of truth.** It stores each laptop's entries
//!   as the exact bytes the laptop hashed, recomputes the laptop's RFC 6962 tree, and cosigns
//!   the laptop's own checkpoint only after the rows are committed. A receipt therefore proves
//!   the hub held those entries, and the laptop can prove what it sent.
//! - **Nothing is overwritten.** Evidence tables are append-only (triggers), and a fork (the
//!   same seq arriving with different bytes) is recorded with both versions and surfaced on the
//!   dashboard rather than resolved.
//! - **Two kinds of callers, two kinds of authentication.** Laptops sign checkpoints with their
//!   enrolled Ed25519 key; managers sign in with argon2-hashed passwords and get an `HttpOnly`
//!   session cookie.
//! - **The dashboard is static HTML, CSS and plain JavaScript** compiled into the binary
//!   (`include_str!`), with no build step and no third-party scripts.

pub mod api;
pub mod auth;
pub mod error;
pub mod export;
pub mod ingest;
pub mod store;

pub use api::{AppState, router};
pub use error::ApiError;
pub use store::{SqliteStore, Store, StoreError};

/// Opens the store named by a database URL (`sqlite:PATH`).
pub fn open_store(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Err(StoreError::UnsupportedUrl { url: url.into() });
    }
    Ok(std::sync::Arc::new(SqliteStore::open_url(url)?))
}
