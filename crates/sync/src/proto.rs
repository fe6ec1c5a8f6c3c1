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

/// Where a hub says who it is: [`HubInfo`], no sign-in needed.
pub const HUB_INFO_PATH: &str = "/api/v1/hub";

/// The largest hub answer the client reads (a receipt and a key are a few hundred bytes).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How the hub is reached, as it sees itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// HTTPS (rustls).
    Tls,
    /// Plain HTTP on a loopback address: nothing leaves the machine.
    LoopbackHttp,
    /// Plain HTTP on a network address, allowed with `--insecure-http`: passwords, cookies and
    /// audit entries travel unencrypted.
    InsecureHttp,
}

/// The hub's identity, for the technician to confirm before the laptop pins its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubInfo {
    /// The hub's note key name (`fieldkit-hub/<key id prefix>`).
    pub name: String,
    /// The hub's key id: hex SHA-256 of its raw public key.
    pub key_id: String,
    /// The hub's public key, SPKI PEM.
    pub public_key: String,
    /// How the hub is served.
    pub transport: Transport,
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
    /// Too many failed sign-ins: back off (429, with `Retry-After`).
    pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
    /// The hub is busy (503): try again shortly.
    pub const BUSY: &str = "busy";
    /// A state-changing request from another origin (login CSRF).
    pub const CROSS_ORIGIN: &str = "cross_origin";
    /// The request's content type is not the one required.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The database cannot be reached (503): the laptop retries.
    pub const UNAVAILABLE: &str = "unavailable";
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
