//! fieldkit-sync: how a laptop's audit log reaches the hub.
//!
//! The messages ([`proto`]) are defined once here and used by both sides, so the client and
//! the hub cannot drift apart. The protocol is DESIGN.md §8: the laptop posts the entries after
//! the hub's known size plus a signed checkpoint; the hub checks the enrolled key, the sizes,
//! the chain and the root, commits, and then cosigns the checkpoint as the receipt. The client
//! ([`client`]) stores that receipt with the acked size in one transaction of the local log, so
//! a sync interrupted anywhere resumes without losing or duplicating an entry.
//!
//! Design choices:
//! - Entries travel as the exact JSON text that was hashed, never re-serialised.
//! - The checkpoint is the authentication: no bearer tokens for laptops, nothing to steal from a
//!   request; a replayed request is an identical resend and gets the stored receipt.
//! - Batches are bounded in entries and bytes; retries back off exponentially up to a cap, and
//!   only transport failures, 5xx and 429 are retried.

pub mod client;
pub mod proto;

pub use client::{SyncClient, SyncConfig, SyncError, SyncReport};
pub use proto::{AppendRequest, AppendResponse, ErrorBody};
