//! The SQLite writer connection and its group commit: several laptops' batches in one
//! transaction, made durable by one `COMMIT`.
//!
//! SQLite has one writer, and a commit costs about as much as writing a batch: the WAL frames of
//! every page the batch touched, their checksums, an fsync, and the page cache's clean-up. Most of
//! those pages are the same for every batch (the tail of the time index, the hot spots of the
//! event, model and outcome indexes, the version counts). When laptops sync at once, committing
//! their batches together writes each shared page once instead of once per batch.
//!
//! The rules, all here:
//! - A batch begins by taking the writer, and opens the group transaction (`BEGIN IMMEDIATE`)
//!   if none is open. It reads its laptop's state inside the transaction, after every batch
//!   released into the group before it, so each batch is decided exactly as if it ran alone
//!   after them.
//! - A batch has no savepoint of its own: a savepoint copies every page the batch touches into
//!   the writer's sub-journal before changing it, about a fifth of the writer's time (1M entries
//!   from 200 laptops, side by side: 17,150 entries/s with savepoints, 22,230 without). It needs
//!   none, because the append protocol writes only once a batch's outcome is decided
//!   ([`crate::ingest`]): a refused batch has changed nothing.
//! - Whoever lets go of the writer with a batch still open (a refusal, an error, a cancelled
//!   task dropping its transaction) therefore undoes nothing if the batch changed no row, and the
//!   group goes on. A batch that changed rows and did not finish (a database error mid-write, a
//!   panic) cannot be undone alone: the whole group is rolled back, and every member gets the
//!   error; nothing in it was acknowledged, and their laptops send the batches again. A group
//!   left with no released batch is rolled back whole, so the writer is never left idle inside a
//!   transaction.
//! - A batch that succeeds is released into the group. If nobody else waits for the
//!   writer, or the group holds [`MAX_GROUP`] batches, it commits the group at once: a lone
//!   laptop never waits for company. Otherwise it hands the writer to the next waiter and waits
//!   for the group's outcome; a task of its own queues for the writer, and the first of the
//!   group's members to get the writer back while the group is still open commits it. The
//!   writer is a fair (FIFO) lock, so a group grows by at most the batches that were already
//!   waiting, and a steady stream cannot delay a receipt without limit.
//! - No batch is acknowledged before the `COMMIT` has returned (fsynced, `synchronous=FULL`):
//!   members learn the group's outcome only from the one that committed it, and if the `COMMIT`
//!   fails every member gets the error.
//! - Any other use of the writer (enrolment, accounts, post-market imports) first commits an open
//!   group, so it runs outside any batch's transaction and is durable when it returns.
//!
//! Readers use a connection of their own and see committed rows only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rusqlite::Connection;
use tokio::sync::{OwnedMutexGuard, watch};

use super::{CHECKPOINT_PAGES, OPTIMIZE_EVERY, WAL_PAGES, db, joined};
use crate::store::StoreError;

/// At most this many batches commit together, whoever is still waiting.
pub(super) const MAX_GROUP: usize = 8;

/// How a group's `COMMIT` went, as its members learn it (`None` while it is open).
type Outcome = Option<Result<(), String>>;

/// The group transaction open on the writer.
struct Group {
    /// Batches released into it, each waiting for its commit.
    members: usize,
    /// Entries they appended.
    added: u64,
    /// Tells the members how the group ended.
    outcome: watch::Sender<Outcome>,
}

/// The writer connection, the group open on it, and what a commit sets off.
pub(super) struct Writer {
    pub(super) conn: Connection,
    group: Option<Group>,
    /// The batch open, if any: the connection's count of changed rows when it began, by which
    /// letting go of it tells whether it wrote.
    batch: Option<u64>,
    /// Entries appended since the planner statistics were last refreshed.
    appended: Arc<AtomicU64>,
    /// Bumped whenever the writer refreshes the planner statistics.
    stats: Arc<AtomicU64>,
    /// Wakes the checkpoint thread.
    checkpoints: std::sync::mpsc::SyncSender<()>,
}

/// How a batch that succeeded ended.
pub(super) enum Finished {
    /// It committed the group, with this result.
    Committed(Result<(), StoreError>),
    /// It joined the open group, which another member commits.
    Joined(watch::Receiver<Outcome>),
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        appended: Arc<AtomicU64>,
        stats: Arc<AtomicU64>,
        checkpoints: std::sync::mpsc::SyncSender<()>,
    ) -> Self {
        Self {
            conn,
            group: None,
            batch: None,
            appended,
            stats,
            checkpoints,
        }
    }

    /// Opens a batch, in the open group or in a new one.
    pub(super) fn begin_batch(&mut self) -> Result<(), StoreError> {
        debug_assert_eq!(self.batch, None, "one batch at a time holds the writer");
        if self.group.is_none() {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
            self.group = Some(Group {
                members: 0,
                added: 0,
                outcome: watch::channel(None).0,
            });
        }
        self.batch = Some(self.conn.total_changes());
        Ok(())
    }

    /// Releases the batch into the group, then commits the group if `alone` (nobody waits for
    /// the writer) or it is full; otherwise the batch joins it.
    pub(super) fn finish_batch(&mut self, added: u64, alone: bool) -> Result<Finished, StoreError> {
        let group = match (&mut self.group, self.batch.take()) {
            (Some(group), Some(_)) => group,
            _ => return Err(StoreError::Db("no batch is open on the writer".into())),
        };
        group.members += 1;
        group.added += added;
        if alone || group.members >= MAX_GROUP {
            return Ok(Finished::Committed(
                self.close_group().map_err(StoreError::Db),
            ));
        }
        Ok(Finished::Joined(group.outcome.subscribe()))
    }

    /// Ends the open group, if any, and tells its members how: `COMMIT` (or a rollback, if no
    /// batch is in it). After a commit, keeps the WAL and the planner statistics in step; a
    /// failure there loses nothing and is not the commit's.
    pub(super) fn close_group(&mut self) -> Result<(), String> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        let result = if group.members == 0 {
            self.conn
                .execute_batch("ROLLBACK")
                .map_err(|e| e.to_string())
        } else {
            self.conn.execute_batch("COMMIT").map_err(|e| {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                format!("committing {} batches: {e}", group.members)
            })
        };
        group.outcome.send_replace(Some(result.clone()));
        if result.is_ok() && group.members > 0 {
            self.after_commit(group.added);
        }
        result
    }

    fn after_commit(&mut self, added: u64) {
        if WAL_PAGES.get() >= CHECKPOINT_PAGES {
            // Full: a checkpoint is already due; gone: the writer's backstop bounds the WAL.
            let _ = self.checkpoints.try_send(());
        }
        let before = self.appended.fetch_add(added, Ordering::Relaxed);
        if before / OPTIMIZE_EVERY != (before + added) / OPTIMIZE_EVERY
            && self.conn.execute_batch("PRAGMA optimize = 0x10002").is_ok()
        {
            self.stats.fetch_add(1, Ordering::Release);
        }
    }

    /// What letting go of the writer does, however it happens: an open batch that wrote rolls
    /// back its whole group (one that wrote nothing leaves it be), and a group that holds no
    /// released batch is rolled back. A group with members stays open for them.
    fn release(&mut self) {
        if let Some(began) = self.batch.take()
            && self.conn.total_changes() != began
            && !self.conn.is_autocommit()
            && let Some(group) = self.group.take()
        {
            // The batch's rows cannot be undone alone: undo the whole group rather than
            // commit a batch that failed. Its members get the error and their laptops resend.
            tracing::warn!(
                members = group.members,
                "a batch failed after writing: its group of laptops' batches was rolled back"
            );
            let _ = self.conn.execute_batch("ROLLBACK");
            group.outcome.send_replace(Some(Err(
                "another batch in the same commit failed after writing, so the commit was rolled back: nothing of this batch is stored, send it again"
                    .into(),
            )));
        }
        match &self.group {
            Some(group) if group.members == 0 || self.conn.is_autocommit() => {
                if self.conn.is_autocommit() {
                    // SQLite ended the transaction itself (an I/O error): nothing is committed.
                    group.outcome.send_replace(Some(Err(
                        "the database ended the transaction before its commit".into(),
                    )));
                    self.group = None;
                } else {
                    let _ = self.close_group();
                }
            }
            Some(_) => {}
            None => {
                if !self.conn.is_autocommit() {
                    // A writer left inside a transaction of its own (a panic mid-import).
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
            }
        }
    }
}

/// The writer, behind a fair lock, and how many wait for it to begin something.
#[derive(Clone)]
pub(super) struct WriterLock {
    lock: Arc<tokio::sync::Mutex<Writer>>,
    waiting: Arc<AtomicUsize>,
}

/// The writer, held by one task. Letting go of it applies [`Writer`]'s release rule.
pub(super) struct WriterGuard(OwnedMutexGuard<Writer>);

impl std::ops::Deref for WriterGuard {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.0
    }
}

impl std::ops::DerefMut for WriterGuard {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.0
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Counts a task as waiting for the writer until it has it (or is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WriterLock {
    pub(super) fn new(writer: Writer) -> Self {
        Self {
            lock: Arc::new(tokio::sync::Mutex::new(writer)),
            waiting: Arc::default(),
        }
    }

    /// The lock, for the checkpoint thread (which only holds it, see `checkpoint_wal`).
    pub(super) fn mutex(&self) -> &Arc<tokio::sync::Mutex<Writer>> {
        &self.lock
    }

    /// Takes the writer to begin a batch or a write of its own; counted as waiting meanwhile.
    pub(super) async fn lock(&self) -> WriterGuard {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        WriterGuard(self.lock.clone().lock_owned().await)
    }

    /// Whether nobody waits to begin something on the writer.
    pub(super) fn idle(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
    }

    /// Ends a successful batch held in `guard` (see [`Writer::finish_batch`]); a member of a
    /// group returns once the group has committed, with its outcome.
    pub(super) async fn finish(&self, guard: WriterGuard, added: u64) -> Result<(), StoreError> {
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let finished = tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let finished = guard.finish_batch(added, this.idle())?;
            if let Finished::Joined(outcome) = &finished {
                // Queued from here, so that the group is committed even if this task is
                // cancelled while it waits.
                runtime.spawn(this.clone().commit_when_free(outcome.clone()));
            }
            drop(guard);
            Ok::<_, StoreError>(finished)
        })
        .await
        .map_err(joined)??;
        match finished {
            Finished::Committed(result) => result,
            Finished::Joined(mut outcome) => match outcome.wait_for(Option::is_some).await {
                Ok(result) => result.clone().unwrap_or(Ok(())).map_err(StoreError::Db),
                Err(_) => Err(StoreError::Db(
                    "the hub's database closed before the batch was committed".into(),
                )),
            },
        }
    }

    /// Waits for the writer and commits the group `outcome` belongs to, unless it has ended.
    async fn commit_when_free(self, outcome: watch::Receiver<Outcome>) {
        let guard = WriterGuard(self.lock.clone().lock_owned().await);
        if outcome.borrow().is_some() {
            return;
        }
        // Still open, so it is the group open on the writer.
        let _ = tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let _ = guard.close_group();
        })
        .await;
    }

    /// Runs `f` on the writer outside any batch: an open group is committed first.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let guard = self.lock().await;
        tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let _ = guard.close_group();
            f(&guard.conn)
        })
        .await
        .map_err(joined)?
    }
}
