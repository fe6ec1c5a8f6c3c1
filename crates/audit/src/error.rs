//! One error type per operation, each saying what failed, the value found and the value
//! required.

use std::path::PathBuf;

use crate::checkpoint::CheckpointError;
use crate::identity::IdentityError;
use crate::merkle::MissingStoredHashes;

/// A SQLite failure, with the file it happened on.
#[derive(Debug, thiserror::Error)]
#[error("audit database {path}: {source}")]
pub struct DbError {
    /// The database file.
    pub path: PathBuf,
    /// What SQLite said.
    #[source]
    pub source: rusqlite::Error,
}

impl DbError {
    /// Whether SQLite found the file damaged (truncated, overwritten, not a database).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self.source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    }
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The laptop key could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The directory could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is damaged: truncated, overwritten, or not a SQLite database.
    #[error(
        "audit database {path} is damaged ({source}); keep the file for investigation and restore a copy"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// SQLite failed otherwise.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The log belongs to another laptop key.
    #[error("audit database {path} belongs to log {found}, but this laptop's key is {required}")]
    NotThisLaptop {
        /// The database file.
        path: PathBuf,
        /// The origin stored in the log.
        found: String,
        /// This laptop's origin.
        required: String,
    },
    /// The log was written by a newer fieldkit.
    #[error(
        "audit database {path} has schema version {found}; this fieldkit reads up to {supported}"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Writing the `*_interrupted` entries for dangling intents failed.
    #[error("recording interrupted intents: {0}")]
    Interrupted(#[source] Box<AppendError>),
}

/// Why an entry could not be appended. Nothing was written when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// SQLite failed; the transaction was rolled back.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The event type is not a `snake_case` name.
    #[error("event type {found:?} is not valid: required 1 to 64 characters of a-z, 0-9 and _")]
    BadEvent {
        /// The name given.
        found: String,
    },
    /// The serialised entry is too large to sync.
    #[error("entry is {found} bytes serialised; at most {max} are allowed")]
    TooLarge {
        /// Its size.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// The tree's stored hashes are missing rows.
    #[error("audit tree is damaged: {0}")]
    Tree(MissingStoredHashes),
    /// Reading the log before writing failed.
    #[error(transparent)]
    Read(#[from] Box<QueryError>),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// SQLite failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored entry is not valid JSON of the entry shape.
    #[error("entry {seq} is unreadable: {reason}")]
    BadEntry {
        /// The seq of the row.
        seq: u64,
        /// What the parser said.
        reason: String,
    },
    /// The tree's stored hashes are missing rows.
    #[error("audit tree is damaged: {0}")]
    Tree(MissingStoredHashes),
    /// A size beyond the log was asked for.
    #[error("the log has {size} entries; size {requested} does not exist yet")]
    BeyondEnd {
        /// Requested size.
        requested: u64,
        /// Current size.
        size: u64,
    },
    /// Signing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Why a hub receipt was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// SQLite failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Reading the local tree failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The receipt's signatures do not check out.
    #[error("receipt: {0}")]
    Signature(#[from] CheckpointError),
    /// The receipt is for another log.
    #[error("receipt is for log {found}; this log is {required}")]
    WrongOrigin {
        /// Origin in the receipt.
        found: String,
        /// This log's origin.
        required: String,
    },
    /// The receipt covers entries this log does not have.
    #[error("receipt covers {found} entries; this log has only {size}")]
    BeyondEnd {
        /// Size in the receipt.
        found: u64,
        /// Local size.
        size: u64,
    },
    /// The receipt's root is not this log's root at that size.
    #[error("receipt root for size {size} is {found}; this log's root at that size is {required}")]
    RootMismatch {
        /// The size.
        size: u64,
        /// Root in the receipt (hex).
        found: String,
        /// Local root (hex).
        required: String,
    },
}

/// What is wrong with an entry, found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    /// A seq is missing: a row was deleted.
    #[error("entry {missing} is missing (the next entry present is {next}): a row was deleted")]
    Missing {
        /// The seq that should be there.
        missing: u64,
        /// The next seq present.
        next: u64,
    },
    /// The stored bytes are not an entry.
    #[error("entry {seq} is not a readable entry: {reason}")]
    Unreadable {
        /// The row.
        seq: u64,
        /// What the parser said.
        reason: String,
    },
    /// The seq inside the entry is not its row's seq: rows were reordered or copied.
    #[error("entry {seq} says it is entry {found}: entries were reordered or copied")]
    SeqMismatch {
        /// The row.
        seq: u64,
        /// The seq written inside.
        found: u64,
    },
    /// The entry's `prev` is not the previous entry's leaf hash.
    #[error("entry {seq} chains to {found} but entry {}'s leaf hash is {required}: an earlier entry was edited, removed or reordered", seq.saturating_sub(1))]
    ChainBroken {
        /// The row.
        seq: u64,
        /// The `prev` written inside.
        found: String,
        /// The previous leaf hash.
        required: String,
    },
    /// The stored leaf hash does not match the bytes: the row was edited.
    #[error(
        "entry {seq} was edited: its bytes hash to {found} but {required} was recorded when it was written"
    )]
    Edited {
        /// The row.
        seq: u64,
        /// Hash of the bytes now.
        found: String,
        /// Hash recorded at write time.
        required: String,
    },
    /// The entry belongs to another log.
    #[error("entry {seq} belongs to log {found}, not {required}")]
    WrongOrigin {
        /// The row.
        seq: u64,
        /// The origin inside the entry.
        found: String,
        /// This log's origin.
        required: String,
    },
    /// An index column disagrees with the entry's bytes.
    #[error(
        "entry {seq}'s {column} column says {found:?} but the entry says {required:?}: the row was edited"
    )]
    ColumnMismatch {
        /// The row.
        seq: u64,
        /// Which column.
        column: &'static str,
        /// Value in the column.
        found: String,
        /// Value in the entry.
        required: String,
    },
}

/// Why `verify` failed: the first problem found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// SQLite failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// SQLite's own integrity check failed: the file is damaged or truncated.
    #[error("audit database {path} is damaged: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the integrity check said.
        reason: String,
    },
    /// An entry is bad; this is the first one.
    #[error("{0}")]
    Entry(EntryProblem),
    /// The stored tree hashes are not those of the entries.
    #[error(
        "stored tree hash {index} is {found} but the entries give {required}: the tree table was edited"
    )]
    TreeMismatch {
        /// Stored hash index.
        index: u64,
        /// Stored value (hex, or "missing").
        found: String,
        /// Recomputed value (hex, or "absent").
        required: String,
    },
    /// A checkpoint or receipt covers more entries than exist: entries were removed from the
    /// end, or an older copy of the file was restored.
    #[error(
        "a {kind} signed for {signed} entries exists, but the log has only {size}: entries were removed from the end or an old copy was restored"
    )]
    Truncated {
        /// "checkpoint" or "receipt".
        kind: &'static str,
        /// Size it covers.
        signed: u64,
        /// Entries present.
        size: u64,
    },
    /// A checkpoint or receipt's root differs from the recomputed root at its size.
    #[error(
        "the {kind} for size {size} has root {found}, but the entries give {required}: entries before {size} were changed after it was signed"
    )]
    RootMismatch {
        /// "checkpoint" or "receipt".
        kind: &'static str,
        /// Its size.
        size: u64,
        /// Its root (hex).
        found: String,
        /// Recomputed root (hex).
        required: String,
    },
    /// A stored checkpoint or receipt is not validly signed by this laptop.
    #[error("the {kind} for size {size}: {source}")]
    BadSignature {
        /// "checkpoint" or "receipt".
        kind: &'static str,
        /// Its size.
        size: u64,
        /// What failed.
        source: CheckpointError,
    },
    /// A trigger protecting the tables is gone: someone opened the file to change it.
    #[error("trigger {name} is missing: the append-only protection was removed")]
    TriggerMissing {
        /// The trigger's name.
        name: String,
    },
}
