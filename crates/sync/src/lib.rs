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
//! - The laptop pins the hub's key ([`pin`]) and refuses receipts cosigned by any other, so a
//!   rogue hub or someone in the middle cannot make the laptop count entries as acknowledged.
//! - Every body the client reads is bounded; a hostile answer is an error, never a memory spike.
//! - Batches are bounded in entries and bytes; retries back off exponentially up to a cap, and
//!   only transport failures, 5xx and 429 are retried.

pub mod client;
pub mod pin;
pub mod proto;

pub use client::{SyncClient, SyncConfig, SyncError, SyncReport, check_hub_url, fetch_hub_info};
pub use proto::{AppendRequest, AppendResponse, ErrorBody, HubInfo};
