//! The append protocol of DESIGN.md §8, written once for every storage backend.
//!
//! Order of checks, cheapest and most hostile first: bounds; the checkpoint parses and its
//! origin names an enrolled laptop (403) whose key signed it (401); the entries parse, carry
//! consecutive seqs from `old_size` (400), belong to this log (422) and chain to each other
//! (400). Then, in one transaction with the laptop's tree state locked:
//!
//! - `old_size` is the hub's size: the first entry must chain to the hub's last, the recomputed
//!   root must be the signed root (400 otherwise), and the rows are committed.
//! - `old_size` is below the hub's size: the entries overlap what the hub holds. The sent
//!   entries, on top of the hub's first `old_size`, must give the signed root (400 otherwise:
//!   nothing is recorded). Only then is a difference in the overlap a fork (422, both versions
//!   kept): the laptop's own key signed a tree that contradicts the one it synced before. Equal
//!   overlaps are an identical resend (the receipt again) or a stale `old_size` (409 with the
//!   hub's size).
//! - `old_size` is above the hub's size: a gap, 409 with the hub's size.
//!
//! Because a fork needs a root the laptop signed over the differing entry, anyone who merely
//! holds a laptop's public checkpoint (every export carries one) cannot plant a fork alarm.
//! Only after the commit is the checkpoint cosigned, so a receipt never covers an entry the hub
//! might lose. Nothing is written before the batch's outcome is decided (the rows, a fork's
//! record, a resend's checkpoint), and whatever is written is committed: a refusal has written
//! nothing, which SQLite's group commit relies on (`store/sqlite/writer.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use fieldkit_audit::merkle::{self, MissingStoredHashes, PendingTree};
use fieldkit_audit::{Entry, Identity, MAX_ENTRY_BYTES, SignedCheckpoint, clock_flag};
use fieldkit_sync::proto::{AppendRequest, AppendResponse, MAX_BATCH_ENTRIES, kind};

use crate::error::ApiError;
use crate::rules;
use crate::store::{AppendRows, LogTx, NewEntryRow, NewFork, Store, StoreError};

impl From<MissingStoredHashes> for ApiError {
    fn from(m: MissingStoredHashes) -> Self {
        StoreError::Corrupt(m.to_string()).into()
    }
}

/// Fault injection for crash tests: where the hub process dies during an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the rows are written, before the transaction commits.
    BeforeCommit,
    /// After the commit, before the receipt is sent.
    AfterCommit,
}

/// A crash or pause injected at the `nth` append (counting from 1) that reaches `point`: a
/// test hook, read from `FIELDKIT_HUB_CRASH` (`before-commit[:N]`, `after-commit[:N]`) or
/// `FIELDKIT_HUB_PAUSE` (the same syntax).
#[derive(Debug)]
pub struct Fault {
    /// Where.
    pub point: CrashPoint,
    /// Which append.
    pub nth: u64,
    /// Kill the process (SIGKILL), or pause for a line on standard input.
    pub kill: bool,
    seen: std::sync::atomic::AtomicU64,
}

impl Fault {
    /// A fault at the `nth` append reaching `point`.
    pub fn new(point: CrashPoint, nth: u64, kill: bool) -> Self {
        Self {
            point,
            nth: nth.max(1),
            kill,
            seen: Default::default(),
        }
    }

    /// Reads the test hooks from the environment.
    pub fn from_env() -> Option<Self> {
        let parse = |v: String, kill: bool| {
            let (point, nth) = v.split_once(':').unwrap_or((v.as_str(), "1"));
            let point = match point {
                "before-commit" => CrashPoint::BeforeCommit,
                "after-commit" => CrashPoint::AfterCommit,
                _ => return None,
            };
            Some(Self::new(point, nth.parse().ok()?, kill))
        };
        if let Ok(v) = std::env::var("FIELDKIT_HUB_CRASH") {
            return parse(v, true);
        }
        parse(std::env::var("FIELDKIT_HUB_PAUSE").ok()?, false)
    }

    async fn hit(&self, point: CrashPoint) {
        use std::sync::atomic::Ordering;
        if point != self.point || self.seen.fetch_add(1, Ordering::SeqCst) + 1 != self.nth {
            return;
        }
        if self.kill {
            // SIGKILL, as the kernel's OOM killer or a power cut would: no destructor runs.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            std::process::abort();
        }
        // The test reads this line, does what it must (kill PostgreSQL), then writes a line.
        println!("paused {point:?}");
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
    }
}

/// What a transaction decided.
enum Decided {
    /// Entries committed (or already held, for an identical resend).
    Committed { duplicate: bool, hub_size: u64 },
    /// `old_size` differs from the hub's size.
    SizeMismatch(u64),
    /// A fork was found and recorded.
    Fork(String),
}

fn invalid(message: String) -> ApiError {
    ApiError::new(400, kind::INVALID_BATCH, message)
}

/// Handles one append request; `hub` cosigns the receipt.
pub async fn append(
    store: Arc<dyn Store>,
    hub: &Identity,
    mut req: AppendRequest,
    fault: Option<&Fault>,
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
                req.old_size.saturating_add(i as u64),
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
    let laptop = store.laptop_by_origin(&req.origin).await?.ok_or_else(|| {
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
    let end = req
        .old_size
        .checked_add(req.entries.len() as u64)
        .ok_or_else(|| invalid(format!("old_size {} is out of range", req.old_size)))?;
    if checkpoint.size() != end {
        return Err(invalid(format!(
            "checkpoint is for size {} but old_size {} plus {} entries is {end}",
            checkpoint.size(),
            req.old_size,
            req.entries.len()
        )));
    }
    // Parsing, hashing and reading every record is the CPU-heavy part of an append: it runs
    // on the blocking pool, and before the transaction, so the laptop's lock (SQLite: the one
    // writer) is held only for the database work. It hands over the rows in the shape the store
    // takes them, so that nothing is rebuilt, nor an entry freed, while the lock is held.
    let bodies = std::mem::take(&mut req.entries);
    let (laptop_id, origin, old_size) = (laptop.id, laptop.origin.clone(), req.old_size);
    let parsed =
        tokio::task::spawn_blocking(move || parse_batch(laptop_id, &origin, old_size, bodies))
            .await
            .map_err(|e| ApiError::internal(format!("parsing the batch: {e}")))??;

    let mut tx = store.begin_log(&laptop).await?;
    let decided = decide(&mut *tx, &req, &checkpoint, parsed).await;
    let decided = match decided {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    if let (
        Some(f),
        Decided::Committed {
            duplicate: false, ..
        },
    ) = (fault, &decided)
    {
        f.hit(CrashPoint::BeforeCommit).await;
    }
    tx.commit().await?;
    match decided {
        Decided::Committed {
            duplicate,
            hub_size,
        } => {
            if let (Some(f), false) = (fault, duplicate) {
                f.hit(CrashPoint::AfterCommit).await;
            }
            let receipt = checkpoint
                .cosign(hub)
                .map_err(|e| ApiError::internal(format!("cosigning: {e}")))?;
            Ok(AppendResponse {
                size: hub_size,
                receipt: receipt.as_str().to_owned(),
                hub_name: hub.name().to_owned(),
                hub_key: hub.public_key_pem(),
                duplicate,
            })
        }
        Decided::SizeMismatch(size) => Err(ApiError::new(
            409,
            kind::SIZE_MISMATCH,
            format!(
                "the request starts at entry {} but the hub holds {size} entries from this laptop",
                req.old_size
            ),
        )
        .with_size(size)),
        Decided::Fork(message) => Err(ApiError::new(422, kind::FORK, message)),
    }
}

/// Stored tree hashes fetched up front: the tree code reads synchronously.
struct Hashes(HashMap<u64, [u8; 32]>);

impl Hashes {
    /// Fetches the hashes that trees of the given sizes are made of.
    async fn fetch(tx: &mut dyn LogTx, sizes: &[u64]) -> Result<Self, ApiError> {
        let mut idx: Vec<u64> = sizes
            .iter()
            .flat_map(|&n| merkle::edge_indexes(n))
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let hashes = tx.read_hashes(&idx).await?;
        Ok(Self(idx.into_iter().zip(hashes).collect()))
    }

    fn read(&self, idx: &[u64]) -> Result<Vec<[u8; 32]>, ApiError> {
        idx.iter()
            .map(|i| {
                self.0.get(i).copied().ok_or_else(|| {
                    MissingStoredHashes {
                        wanted: idx.len(),
                        found: 0,
                    }
                    .into()
                })
            })
            .collect()
    }
}

async fn decide(
    tx: &mut dyn LogTx,
    req: &AppendRequest,
    checkpoint: &SignedCheckpoint,
    parsed: ParsedBatch,
) -> Result<Decided, ApiError> {
    let state = tx.state();
    let size = state.size;
    let end = checkpoint.size();
    if req.old_size > size {
        return Ok(Decided::SizeMismatch(size));
    }
    // The sent entries on top of the hub's first `old_size` must give the signed root, whatever
    // else is decided: a root the laptop signed is the only evidence a fork may rest on.
    let edge_sizes: Vec<u64> = if end <= size {
        vec![req.old_size, end]
    } else {
        vec![req.old_size]
    };
    let hashes = Hashes::fetch(tx, &edge_sizes).await?;
    // The tree reads through a plain closure; it is dropped before the next await.
    let (root, (hashes_start, new_hashes)) = {
        let read = |idx: &[u64]| hashes.read(idx);
        let mut tree = PendingTree::<ApiError>::new(req.old_size, &read);
        for row in &parsed.rows {
            tree.append(row.leaf)?;
        }
        (tree.root()?, tree.new_hashes())
    };
    if root != checkpoint.root() && parsed.rows.is_empty() {
        // No entries, only the laptop's signature over a root the hub's own tree (built from
        // entries whose roots the laptop signed) contradicts.
        return Ok(Decided::Fork(format!(
            "the laptop signed root {} for size {end}, but the entries the hub holds give {}: the laptop's log diverged from what it synced before",
            checkpoint.root_hex(),
            hex::encode(root)
        )));
    }
    if root != checkpoint.root() {
        return Err(invalid(format!(
            "the entries give root {} at size {end} but the checkpoint signs {}",
            hex::encode(root),
            checkpoint.root_hex()
        )));
    }
    if req.old_size < size {
        return overlap(tx, req, checkpoint, &parsed.rows, &hashes, size).await;
    }

    // old_size == size: a new batch on top of what the hub holds.
    let Some(first) = &parsed.first else {
        // An empty batch at the hub's size: a request for the receipt of what it holds.
        tx.insert_checkpoint(end, checkpoint.as_str()).await?;
        return Ok(Decided::Committed {
            duplicate: true,
            hub_size: size,
        });
    };
    if first.prev != hex::encode(state.last_leaf) {
        // The laptop signed this root, but over an entry `size - 1` the hub does not hold: the
        // hub cannot show the difference, so it records nothing and asks for the overlap.
        let what = if size == 0 {
            "the first entry of a log must chain to zeros".to_owned()
        } else {
            format!(
                "the hub's entry {} has leaf hash {}; resend from an entry the hub holds so that a fork can be shown",
                size - 1,
                hex::encode(state.last_leaf)
            )
        };
        return Err(invalid(format!(
            "entry {size} chains to {} but {what}",
            first.prev
        )));
    }
    // The first entry's clock is compared with the hub's last entry; the others' were
    // compared with their predecessor while parsing.
    let held_last: Option<Entry> = match size {
        0 => None,
        n => tx
            .bodies(n - 1..n)
            .await?
            .first()
            .and_then(|b| serde_json::from_str(b).ok()),
    };
    let first_clock = held_last
        .as_ref()
        .and_then(|q| clock_flag(q, first))
        .is_some();
    let ParsedBatch {
        mut rows,
        devices,
        installs,
        ..
    } = parsed;
    if let Some(row) = rows.first_mut() {
        row.clock_flag = first_clock;
    }
    tx.append(AppendRows {
        entries: rows,
        hashes_start,
        hashes: new_hashes,
        checkpoint: checkpoint.as_str().to_owned(),
        devices,
        installs,
    })
    .await?;
    Ok(Decided::Committed {
        duplicate: false,
        hub_size: end,
    })
}

/// `old_size` is below the hub's size, and the sent entries give the signed root.
async fn overlap(
    tx: &mut dyn LogTx,
    req: &AppendRequest,
    checkpoint: &SignedCheckpoint,
    sent: &[NewEntryRow],
    hashes: &Hashes,
    size: u64,
) -> Result<Decided, ApiError> {
    let end = checkpoint.size();
    let overlap_end = end.min(size);
    let held = tx.bodies(req.old_size..overlap_end).await?;
    for (i, (held, sent)) in held.iter().zip(sent).enumerate() {
        if *held != sent.body {
            let seq = req.old_size + i as u64;
            tx.record_fork(&NewFork {
                seq,
                held: held.clone(),
                sent: sent.body.clone(),
            })
            .await?;
            tracing::warn!(
                laptop = req.origin,
                seq,
                "fork recorded: same seq, different bytes, under a root the laptop signed"
            );
            return Ok(Decided::Fork(format!(
                "entry {seq} was sent with different bytes from the copy the hub already holds, under a checkpoint the laptop signed: the laptop's log was changed or restored after it synced; both versions are kept"
            )));
        }
    }
    if end <= size {
        // Every sent entry is held, byte for byte, and the signed root is the hub's root at
        // `end` (it was just recomputed from the hub's hashes and these entries).
        let held_root = {
            let read = |idx: &[u64]| hashes.read(idx);
            PendingTree::<ApiError>::new(end, &read).root()?
        };
        if held_root != checkpoint.root() {
            return Err(ApiError::internal(format!(
                "the hub's tree at size {end} gives root {} but its entries give {}",
                hex::encode(held_root),
                checkpoint.root_hex()
            )));
        }
        tx.insert_checkpoint(end, checkpoint.as_str()).await?;
        return Ok(Decided::Committed {
            duplicate: true,
            hub_size: size,
        });
    }
    Ok(Decided::SizeMismatch(size))
}

/// A batch, each entry checked on its own and against the one before it, ready to store.
struct ParsedBatch {
    /// The first entry, which is chained to, and its clock compared with, the hub's last.
    first: Option<Entry>,
    /// The rows to insert, in seq order (each clock flag set against the entry before it in
    /// the batch; the first's is decided against the hub's last entry).
    rows: Vec<NewEntryRow>,
    /// The newest device identity the batch shows per serial, for the inventory.
    devices: Vec<crate::store::DeviceUpdate>,
    /// What the entries show installed, for the post-market answers.
    installs: Vec<crate::postmarket::store::InstallRow>,
}

fn parse_batch(
    laptop_id: i64,
    origin: &str,
    old_size: u64,
    bodies: Vec<String>,
) -> Result<ParsedBatch, ApiError> {
    let mut first = None;
    let mut prev: Option<(Entry, [u8; 32])> = None;
    let mut rows = Vec::with_capacity(bodies.len());
    let mut devices = Vec::new();
    let mut installs = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let expected = old_size + i as u64;
        let entry: Entry = serde_json::from_str(&body)
            .map_err(|e| invalid(format!("entry {expected} is not a valid entry: {e}")))?;
        if entry.seq != expected {
            return Err(invalid(format!(
                "batch position {i} holds entry {} but entry {expected} is required: the batch is gapped or reordered",
                entry.seq
            )));
        }
        if entry.origin != origin {
            return Err(ApiError::new(
                422,
                kind::FOREIGN_ENTRY,
                format!(
                    "entry {expected} belongs to log {:?}, not to {origin:?}: entries cannot be replayed under another laptop's identity",
                    entry.origin
                ),
            ));
        }
        let leaf = merkle::leaf_hash(body.as_bytes());
        let clock = match &prev {
            Some((prev, prev_leaf)) => {
                if entry.prev != hex::encode(prev_leaf) {
                    return Err(invalid(format!(
                        "entry {expected} chains to {} but entry {}'s leaf hash is {}",
                        entry.prev,
                        expected - 1,
                        hex::encode(prev_leaf)
                    )));
                }
                clock_flag(prev, &entry).is_some()
            }
            None => false,
        };
        // The one reader of the audit record, once per entry: the device as recorded, and
        // what it shows installed.
        let reading = entry.read().ok();
        let device = reading.as_ref().and_then(|r| r.device().cloned());
        devices.extend(rules::device_update(laptop_id, &entry, device.as_ref()));
        installs.extend(crate::postmarket::observe::installs(
            laptop_id,
            &entry,
            reading.as_ref(),
        ));
        rows.push(row(&entry, body, leaf, clock, device));
        if i == 0 {
            first = Some(entry.clone());
        }
        prev = Some((entry, leaf));
    }
    Ok(ParsedBatch {
        first,
        rows,
        devices: rules::newest_per_serial(devices),
        installs,
    })
}

fn row(
    entry: &Entry,
    body: String,
    leaf: [u8; 32],
    clock_flag: bool,
    device: Option<fieldkit_audit::record::DeviceRecord>,
) -> NewEntryRow {
    let (device_serial, device_model) = match device {
        Some(d) => (Some(d.serial), Some(d.model)),
        None => (None, None),
    };
    NewEntryRow {
        seq: entry.seq,
        body,
        leaf,
        time_us: entry.time.timestamp_micros(),
        technician: entry.technician.clone(),
        site: entry.site.clone(),
        device_serial,
        device_model,
        event: entry.event.clone(),
        outcome: entry.outcome().as_str().to_owned(),
        // An outcome closes an intent logged before it. A number that names no earlier entry
        // (a hostile log's: a later seq, or one past any store's integers) closes nothing; the
        // body keeps it as sent.
        closes: entry.intent_seq().filter(|&intent| intent < entry.seq),
        clock_flag,
    }
}
