//! fieldkit-audit: the laptop's tamper-evident, append-only audit log.
//!
//! Every action a technician takes on a device is written here before it is shown, and an
//! intent (`update_started`) is written before the device is touched. The log must survive a
//! crash at any instant, and any later change to it must be detectable, by the laptop itself
//! (`verify`) and by the hub it syncs to.
//!
//! Design choices:
//!
//! - **SQLite** (rusqlite, bundled) in WAL mode with `synchronous=FULL`: an append that returned
//!   has been fsynced; a kill at any instant leaves either the whole entry or none of it.
//!   Tables are `STRICT`, and triggers refuse `UPDATE` and `DELETE`: the log is append-only at
//!   the storage layer, not by convention.
//! - **Exact bytes are hashed.** Each entry is stored as the JSON text that went into its leaf
//!   hash, so verification never depends on re-serialising JSON the same way twice.
//! - **Two independent chains of evidence.** Each entry names the previous entry's leaf hash
//!   (a simple chain that pinpoints the first bad entry), and the entries form an RFC 6962
//!   Merkle tree ([`merkle`], built on the `tlog_tiles` port of Go's `sumdb/tlog`) whose root is
//!   signed in C2SP checkpoints ([`checkpoint`]), so a hub can check consistency between
//!   batches and cosign what it holds.
//! - **The laptop's own key** ([`identity`]): Ed25519, PKCS#8 PEM, generated on first use. Its
//!   note key name is the log's origin and is written into every entry, so entries cannot be
//!   replayed under another laptop's identity.
//! - **Typed, versioned records** ([`record`]): an entry says what happened through fieldkit's
//!   own types (device record, check record with every rule, update intent, update outcome
//!   with versions and package digests, trust state, sync), never through another crate's
//!   serialised internals. Every entry carries its schema; [`Entry::read`] is the one reader,
//!   and [`export`] the one CSV/JSON export, for the CLI, the app and the hub.
//! - **Intents**: at [`AuditLog::open`], an intent left by a process that no longer runs gets an
//!   `<action>_interrupted` entry, so a crash mid-update is visible in the record.
//!
//! This crate and the hub are the only places that touch a database.

pub mod checkpoint;
pub mod entry;
pub mod error;
pub mod export;
pub mod identity;
mod log;
pub mod merkle;
pub mod record;

pub use checkpoint::{CheckpointError, SignedCheckpoint};
pub use entry::{Entry, NewEntry, Outcome, Record};
pub use error::{
    AppendError, DbError, EntryProblem, OpenError, QueryError, ReceiptError, VerifyError,
};
pub use identity::{Identity, IdentityError, LaptopIdentity};
pub use log::{
    AuditLog, ClockFlag, DB_FILE, KEY_FILE, MAX_ENTRY_BYTES, Receipt, VerifyReport, clock_flag,
};
pub use record::{Event, ReadError, Reading, events};
