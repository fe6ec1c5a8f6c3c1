//! The append protocol of DESIGN.md §8, written once for every storage backend.
//!
//! Order of checks, cheapest and most hostile first: bounds; the checkpoint parses and its
//! origin names an enrolled laptop (403) whose key signed it (401); the entries parse, carry
//! consecutive seqs from `old_size` (400), belong to this log (422) and chain to each other
//! (400). Then, in one transaction: if `old_size` is not the hub's size, overlapping entries
//! are compared byte for byte (a difference is a fork: 422, both versions kept) and an
//! identical resend gets its receipt again, anything else a 409 with the hub's size; otherwise
//! the first entry must chain to the hub's last (else a fork), the recomputed root must be the
//! signed root (400), and the rows are committed. Only after the commit is the checkpoint
//! cosigned, so a receipt never covers an entry the hub might lose.

use fieldkit_audit::merkle::{self, MissingStoredHashes, PendingTree};
use fieldkit_audit::{Entry, MAX_ENTRY_BYTES, SignedCheckpoint, clock_flag, entry};
use fieldkit_sync::proto::{AppendRequest, AppendResponse, MAX_BATCH_ENTRIES, kind};

use crate::error::ApiError;
use crate::store::{Laptop, LogTx, NewRow, Store, StoreError};

/// What a transaction decided.
#[derive(Debug)]
pub enum Ingested {
    /// Entries committed (or already held, for an identical resend).
    Committed {
        /// The laptop's checkpoint to cosign.
        checkpoint: SignedCheckpoint,
        /// Whether nothing new was stored.
        duplicate: bool,
        /// Entries the hub holds for this laptop after the transaction.
        hub_size: u64,
    },
    /// `old_size` differs from the hub's size.
    SizeMismatch(u64),
    /// A fork was found and recorded.
    Fork(String),
}

/// Errors inside the transaction are API errors (a refusal rolls back).
pub type IngestError = ApiError;

impl From<MissingStoredHashes> for ApiError {
    fn from(m: MissingStoredHashes) -> Self {
        StoreError::Corrupt(m.to_string()).into()
    }
}

/// Fault injection for crash tests: where the hub process aborts during an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After validation, before the transaction commits.
    BeforeCommit,
    /// After the commit, before the receipt is sent.
    AfterCommit,
}

impl CrashPoint {
    /// Reads `FIELDKIT_HUB_CRASH` (`before-commit` | `after-commit`): a test hook only.
    pub fn from_env() -> Option<Self> {
        match std::env::var("FIELDKIT_HUB_CRASH").ok()?.as_str() {
            "before-commit" => Some(Self::BeforeCommit),
            "after-commit" => Some(Self::AfterCommit),
            _ => None,
        }
    }
}

/// Handles one append request.
pub fn append(
    store: &dyn Store,
    req: AppendRequest,
    crash: Option<CrashPoint>,
) -> Result<AppendResponse, ApiError> {
    if req.entries.len() > MAX_BATCH_ENTRIES {
        return Err(ApiError::new(
            413,
            kind::TOO_LARGE,
            format!(
                "batch has {} entries; at most {MAX_BATCH_ENTRIES} are accepted",
                req.entries.len()
            ),
        ));
    }
    if let Some((i, e)) = req
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.len() > MAX_ENTRY_BYTES)
    {
        return Err(ApiError::new(
            413,
            kind::TOO_LARGE,
            format!(
                "entry {} is {} bytes; at most {MAX_ENTRY_BYTES} are accepted",
                req.old_size + i as u64,
                e.len()
            ),
        ));
    }
    let checkpoint = SignedCheckpoint::parse(&req.checkpoint)
        .map_err(|e| ApiError::new(400, kind::BAD_REQUEST, format!("checkpoint: {e}")))?;
    if checkpoint.origin() != req.origin {
        return Err(ApiError::new(
            400,
            kind::BAD_REQUEST,
            format!(
                "checkpoint origin is {:?} but the request is for {:?}",
                checkpoint.origin(),
                req.origin
            ),
        ));
    }
    let laptop = store.laptop_by_origin(&req.origin)?.ok_or_else(|| {
        ApiError::new(
            403,
            kind::UNKNOWN_LAPTOP,
            format!(
                "laptop {:?} is not enrolled on this hub (fieldkit-hub enroll-laptop)",
                req.origin
            ),
        )
    })?;
    checkpoint
        .verify_signer(&laptop.origin, &laptop.key)
        .map_err(|e| {
            ApiError::new(
                401,
                kind::UNAUTHENTICATED,
                format!("{e}: the request is not from laptop {:?}", laptop.name),
            )
        })?;
    let end = req.old_size + req.entries.len() as u64;
    if checkpoint.size() != end {
        return Err(ApiError::new(
            400,
            kind::INVALID_BATCH,
            format!(
                "checkpoint is for size {} but old_size {} plus {} entries is {end}",
                checkpoint.size(),
                req.old_size,
                req.entries.len()
            ),
        ));
    }
    let parsed = parse_batch(&laptop, &req)?;

    let mut body = |tx: &dyn LogTx| -> Result<Ingested, ApiError> {
        let size = tx.size()?;
        if req.old_size != size {
            return mismatch(tx, &req, &checkpoint, size);
        }
        let prev_leaf = match size {
            0 => [0u8; 32],
            n => tx
                .leaf(n - 1)?
                .ok_or_else(|| StoreError::Corrupt(format!("entry {} missing", n - 1)))?,
        };
        if let Some((first, _, _)) = parsed.first()
            && first.prev != hex::encode(prev_leaf)
        {
            if size == 0 {
                return Err(ApiError::new(
                    400,
                    kind::INVALID_BATCH,
                    format!(
                        "entry 0 chains to {} but the first entry of a log must chain to zeros",
                        first.prev
                    ),
                ));
            }
            let held = tx.body(size - 1)?.unwrap_or_default();
            let sent = format!(
                "(entry {size} as sent chains to a previous entry with leaf hash {})",
                first.prev
            );
            tx.record_fork(size - 1, &held, &sent)?;
            return Ok(Ingested::Fork(format!(
                "entry {size} chains to {} but the hub's entry {} has leaf hash {}: the laptop's log diverged from what it synced before (restored copy?); both versions are kept",
                first.prev,
                size - 1,
                hex::encode(prev_leaf)
            )));
        }
        let read = |idx: &[u64]| tx.read_hashes(idx).map_err(ApiError::from);
        let mut tree = PendingTree::<ApiError>::new(size, &read);
        for (_, _, leaf) in &parsed {
            tree.append(*leaf)?;
        }
        let root = tree.root()?;
        if root != checkpoint.root() {
            return Err(ApiError::new(
                400,
                kind::INVALID_BATCH,
                format!(
                    "the entries give root {} at size {end} but the checkpoint signs {}",
                    hex::encode(root),
                    checkpoint.root_hex()
                ),
            ));
        }
        let mut prev: Option<Entry> = match size {
            0 => None,
            n => tx.body(n - 1)?.and_then(|b| serde_json::from_str(&b).ok()),
        };
        let mut rows = Vec::with_capacity(parsed.len());
        for (entry, body, leaf) in &parsed {
            let clock = prev.as_ref().and_then(|p| clock_flag(p, entry)).is_some();
            rows.push(row(entry, body, *leaf, clock));
            prev = Some(entry.clone());
        }
        tx.insert_entries(&rows)?;
        let (start, hashes) = tree.new_hashes();
        tx.insert_hashes(start, &hashes)?;
        tx.insert_checkpoint(end, checkpoint.as_str())?;
        if crash == Some(CrashPoint::BeforeCommit) {
            std::process::abort();
        }
        Ok(Ingested::Committed {
            checkpoint: checkpoint.clone(),
            duplicate: false,
            hub_size: end,
        })
    };
    let outcome = store.with_log(&laptop, &mut body)?;
    match outcome {
        Ingested::Committed {
            checkpoint,
            duplicate,
            hub_size,
        } => {
            if crash == Some(CrashPoint::AfterCommit) {
                std::process::abort();
            }
            let hub = store.hub_identity()?;
            let receipt = checkpoint
                .cosign(&hub)
                .map_err(|e| ApiError::internal(format!("cosigning: {e}")))?;
            Ok(AppendResponse {
                size: hub_size,
                receipt: receipt.as_str().to_owned(),
                hub_name: hub.name().to_owned(),
                hub_key: hub.public_key_pem(),
                duplicate,
            })
        }
        Ingested::SizeMismatch(size) => Err(ApiError::new(
            409,
            kind::SIZE_MISMATCH,
            format!(
                "the request starts at entry {} but the hub holds {size} entries from this laptop",
                req.old_size
            ),
        )
        .with_size(size)),
        Ingested::Fork(message) => Err(ApiError::new(422, kind::FORK, message)),
    }
}

/// `old_size` is not the hub's size: a fork, an identical resend, or a plain mismatch.
fn mismatch(
    tx: &dyn LogTx,
    req: &AppendRequest,
    checkpoint: &SignedCheckpoint,
    size: u64,
) -> Result<Ingested, ApiError> {
    for (i, sent) in req.entries.iter().enumerate() {
        let seq = req.old_size + i as u64;
        if seq >= size {
            break;
        }
        let held = tx.body(seq)?.unwrap_or_default();
        if &held != sent {
            tx.record_fork(seq, &held, sent)?;
            return Ok(Ingested::Fork(format!(
                "entry {seq} was sent with different bytes from the copy the hub already holds: the laptop's log was changed or restored after it synced; both versions are kept"
            )));
        }
    }
    let end = checkpoint.size();
    if end <= size {
        let same = match tx.checkpoint(end)? {
            Some(note) => {
                SignedCheckpoint::parse(&note).is_ok_and(|held| held.same_tree(checkpoint))
            }
            None => {
                let read = |idx: &[u64]| tx.read_hashes(idx).map_err(ApiError::from);
                PendingTree::<ApiError>::new(end, &read).root()? == checkpoint.root()
            }
        };
        if same {
            tx.insert_checkpoint(end, checkpoint.as_str())?;
            return Ok(Ingested::Committed {
                checkpoint: checkpoint.clone(),
                duplicate: true,
                hub_size: size,
            });
        }
        if req.entries.is_empty() || end == req.old_size {
            return Ok(Ingested::Fork(format!(
                "the laptop signed root {} for size {end}, but the entries the hub holds give another root: the laptop's log diverged; both are kept",
                checkpoint.root_hex()
            )));
        }
    }
    Ok(Ingested::SizeMismatch(size))
}

type Parsed = (Entry, String, [u8; 32]);

fn parse_batch(laptop: &Laptop, req: &AppendRequest) -> Result<Vec<Parsed>, ApiError> {
    let mut out: Vec<Parsed> = Vec::with_capacity(req.entries.len());
    for (i, body) in req.entries.iter().enumerate() {
        let expected = req.old_size + i as u64;
        let entry: Entry = serde_json::from_str(body).map_err(|e| {
            ApiError::new(
                400,
                kind::INVALID_BATCH,
                format!("entry {expected} is not a valid entry: {e}"),
            )
        })?;
        if entry.seq != expected {
            return Err(ApiError::new(
                400,
                kind::INVALID_BATCH,
                format!(
                    "batch position {i} holds entry {} but entry {expected} is required: the batch is gapped or reordered",
                    entry.seq
                ),
            ));
        }
        if entry.origin != laptop.origin {
            return Err(ApiError::new(
                422,
                kind::FOREIGN_ENTRY,
                format!(
                    "entry {expected} belongs to log {:?}, not to {:?}: entries cannot be replayed under another laptop's identity",
                    entry.origin, laptop.origin
                ),
            ));
        }
        let leaf = merkle::leaf_hash(body.as_bytes());
        if let Some((_, _, prev_leaf)) = out.last()
            && entry.prev != hex::encode(prev_leaf)
        {
            return Err(ApiError::new(
                400,
                kind::INVALID_BATCH,
                format!(
                    "entry {expected} chains to {} but entry {}'s leaf hash is {}",
                    entry.prev,
                    expected - 1,
                    hex::encode(prev_leaf)
                ),
            ));
        }
        out.push((entry, body.clone(), leaf));
    }
    Ok(out)
}

fn row(entry: &Entry, body: &str, leaf: [u8; 32], clock_flag: bool) -> NewRow {
    NewRow {
        seq: entry.seq,
        body: body.to_owned(),
        leaf,
        time: entry
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        technician: entry.technician.clone(),
        site: entry.site.clone(),
        device_serial: entry.device_serial().map(str::to_owned),
        device_model: entry.device_model().map(str::to_owned),
        event: entry.event.clone(),
        outcome: entry.outcome().as_str().to_owned(),
        closes: entry.intent_seq(),
        clock_flag,
        firmware: entry::device_firmware(&entry.device),
    }
}
