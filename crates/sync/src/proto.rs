//! The sync messages, shared by the client and the hub.
//!
//! One endpoint carries the whole protocol: `POST /api/v1/log/append` with an
//! [`AppendRequest`]. The laptop is authenticated by its checkpoint: a C2SP signed note whose
//! origin names an enrolled laptop and whose signature verifies under that laptop's enrolled
//! key. The entries are authenticated by the checkpoint too, because the hub recomputes the
//! tree root over the entries it holds plus those sent and requires the signed root.
//!
//! | status | body | meaning |
//! |---|---|---|
//! | 200 | [`AppendResponse`] | committed (or already held: `duplicate`), receipt attached |
//! | 400 | [`ErrorBody`] `invalid_batch` / `bad_request` | gapped, reordered, malformed; nothing stored |
//! | 401 | [`ErrorBody`] `unauthenticated` | checkpoint not signed by the enrolled key |
//! | 403 | [`ErrorBody`] `unknown_laptop` | origin not enrolled |
//! | 409 | [`ErrorBody`] `size_mismatch` with `size` | `old_size` is not the hub's size; resend from `size` |
//! | 413 | [`ErrorBody`] `too_large` | the request exceeds [`MAX_REQUEST_BYTES`] or [`MAX_BATCH_ENTRIES`] |
//! | 422 | [`ErrorBody`] `fork` / `foreign_entry` | same seq with different bytes (both kept, alarm raised), or an entry of another log |

use serde::{Deserialize, Serialize};

/// The append endpoint's path.
pub const APPEND_PATH: &str = "/api/v1/log/append";

/// The most entries one request may carry.
pub const MAX_BATCH_ENTRIES: usize = 1000;

/// The largest request body the hub reads.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// Entries after the hub's known size, with a checkpoint of the laptop's tree at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// The laptop log's origin (its note key name).
    pub origin: String,
    /// The size the laptop believes the hub holds; `entries[0]` has seq `old_size`.
    pub old_size: u64,
    /// The entries' exact bytes (the JSON text that was hashed), in seq order. May be empty to
    /// ask for a receipt of a size the hub already holds.
    pub entries: Vec<String>,
    /// The laptop's signed checkpoint at `old_size + entries.len()`.
    pub checkpoint: String,
}

/// The hub's answer to an accepted append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The size the hub now holds for this laptop (more than the receipt covers when an
    /// identical resend arrives after later batches).
    pub size: u64,
    /// The laptop's checkpoint, cosigned by the hub: the receipt.
    pub receipt: String,
    /// The hub's note key name.
    pub hub_name: String,
    /// The hub's public key, SPKI PEM.
    pub hub_key: String,
    /// True when the hub already held these entries (an identical resend).
    pub duplicate: bool,
}

/// Machine-readable error kinds in [`ErrorBody::kind`].
pub mod kind {
    /// The request is not valid JSON of the right shape.
    pub const BAD_REQUEST: &str = "bad_request";
    /// The batch is gapped, reordered, or its root does not match the checkpoint.
    pub const INVALID_BATCH: &str = "invalid_batch";
    /// No valid signature by the enrolled key, or no session.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// The origin is not an enrolled laptop.
    pub const UNKNOWN_LAPTOP: &str = "unknown_laptop";
    /// `old_size` is not the hub's size.
    pub const SIZE_MISMATCH: &str = "size_mismatch";
    /// The request is too large.
    pub const TOO_LARGE: &str = "too_large";
    /// Same seq, different bytes: the laptop's log and the hub's copy have diverged.
    pub const FORK: &str = "fork";
    /// An entry belongs to another laptop's log.
    pub const FOREIGN_ENTRY: &str = "foreign_entry";
    /// Not found.
    pub const NOT_FOUND: &str = "not_found";
    /// The hub failed.
    pub const INTERNAL: &str = "internal";
}

/// Every error the hub returns: `{kind, message}`, plus the hub's size on a size mismatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One of [`kind`].
    pub kind: String,
    /// A sentence saying what failed, the value found and the value required.
    pub message: String,
    /// The hub's size for this laptop (on `size_mismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}
