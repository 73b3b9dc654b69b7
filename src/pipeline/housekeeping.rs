//! What the writer does besides committing: erasure scheduling and log
//! compaction, snapshots, the revocation hook and crypto-shredding.
//!
//! Owns: when to compact for erasures (once the oldest pending erasure is
//! `erasure_compaction` old; with a zero bound, before the deletion, or
//! anything after it, is acknowledged), a compaction's two halves (a thread
//! rewrites a copy of the log and rebuilds state from it while the writer
//! goes on, unless the bound is zero; the writer then copies what it
//! appended meanwhile and swaps log and state), when to
//! snapshot (once `snapshot_every_records` records
//! and twice the last snapshot's bytes of log have been written since it,
//! and at shutdown), handing each group's revocations to the hook and destroying
//! erased people's secrets before the group is acknowledged.
//! Never: runs outside the writer thread (but for the compaction's thread,
//! which writes only the new log and its snapshot, and reads its copy and
//! the live log up to a group the writer committed; and the thread that
//! frees the old state and log after a swap), or acknowledges anything.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::compact::{self, Rewrite};
use super::{CompactionHook, PipelineError, PipelineOptions, RevocationHook, LOG_DIR, STATE_DIR};
use crate::contract::Pseudonym;
use crate::log::Log;
use crate::state::{save_snapshot, save_snapshot_as, Cover, State, Withdrawal, COMPACTED_SNAPSHOT_FILE};
use crate::vault::Vault;

/// How many times the last snapshot's size in log bytes must have been
/// written since it before the next one is taken.
const SNAPSHOT_LOG_RATIO: u64 = 2;

/// Whether a snapshot is due: `records` records and `bytes` bytes of log
/// committed since the last one, whose size was `last_bytes`. At least
/// `every` records, as configured, and at least [`SNAPSHOT_LOG_RATIO`] times
/// the last snapshot's bytes: a snapshot grows with what proviso holds, so
/// with a fixed interval its cost per event would grow with the data too
/// (at 400k subjects one snapshot of ~200 MB every 2M records; at a
/// billion, one the size of the state every 2M records). This way the
/// snapshots cost at most half a byte written per byte of log, at any size,
/// and a restart after a crash replays at most about twice the snapshot's
/// size of log.
fn snapshot_due(records: u64, every: u64, bytes: u64, last_bytes: u64) -> bool {
    records >= every && bytes >= last_bytes.saturating_mul(SNAPSHOT_LOG_RATIO)
}

/// How often the writer looks whether a compaction's thread is done.
const COMPACTION_POLL: Duration = Duration::from_millis(50);

/// How long after a cover failed to settle it is tried again.
const COVER_RETRY: Duration = Duration::from_secs(5);

/// A compaction under way: its thread rewrites the copy of the log the
/// writer took and rebuilds state from the new log.
struct Compacting {
    /// `None` when the copy held no deletion (nothing was written).
    thread: std::thread::JoinHandle<Result<Option<Rebuilt>, PipelineError>>,
    /// The live log's next sequence number as of the writer's last group,
    /// which the thread may copy up to.
    live_end: Arc<AtomicU64>,
    started: Instant,
    /// The writer's time taking the copy of the log (`take_source`).
    copy: Duration,
    /// Erasures pending when the copy was taken.
    pending_at_start: u64,
}

/// What the compaction's thread made: the new log, written up to the end
/// of the copy, and the state it replays to.
struct Rebuilt {
    written: compact::Written,
    state: State,
    /// The snapshot of `state` written beside the live one
    /// (`COMPACTED_SNAPSHOT_FILE`), when that write succeeded.
    snapshot: Option<crate::telemetry::SnapshotWritten>,
    /// Records of the live log the thread copied in after its rewrite.
    copied: u64,
}

/// The compaction's thread copies in what the writer appended during its
/// rewrite in up to this many rounds, each up to the writer's last group
/// (each round copies what the writer appended during the one before),
/// and leaves the writer what it appended during the last.
const CATCH_UP_ROUNDS: usize = 4;

/// A replay of the log for a new cover, on its thread.
struct Covering {
    cover: Cover,
    thread: std::thread::JoinHandle<Result<State, PipelineError>>,
    started: Instant,
}

/// The writer's housekeeping settings, hooks and schedule.
pub(super) struct Housekeeping {
    data_dir: PathBuf,
    state_dir: PathBuf,
    segment_bytes: u64,
    erasure_compaction: Duration,
    snapshot_every: u64,
    clock: crate::clock::Clock,
    vault: Arc<Vault>,
    revocation_hook: Arc<Mutex<Option<RevocationHook>>>,
    on_compacted: Arc<Mutex<Option<CompactionHook>>>,
    pub(super) on_backup: Arc<Mutex<Option<super::BackupHook>>>,
    /// When the writer first saw erasures pending since the last compaction.
    erasure_seen: Option<Instant>,
    /// Records committed since the last snapshot.
    since_snapshot: u64,
    /// Log bytes committed since the last snapshot.
    since_snapshot_bytes: u64,
    /// The size of the last snapshot written.
    last_snapshot_bytes: std::cell::Cell<u64>,
    /// Cluster mode: the partner outputs gathered in log order.
    pub(super) outputs: Option<super::outputs::Outputs>,
    /// The compaction whose thread is running, if any.
    compacting: Option<Compacting>,
    /// Cluster mode: the partitions this node is to cover, as the leases
    /// last said; state is brought to it between groups ([`Housekeeping::settle_cover`]).
    wanted_cover: Option<Cover>,
    /// The thread replaying the log for a new cover, if any.
    covering: Option<Covering>,
    /// After a cover failed to settle: not tried again before then.
    cover_retry_at: Option<Instant>,
    /// Frees what a finished compaction replaced (the old state, the old
    /// log's files) off the writer; joined before the next compaction.
    freeing: Option<std::thread::JoinHandle<()>>,
}

impl Housekeeping {
    pub(super) fn new(
        options: &PipelineOptions,
        vault: Arc<Vault>,
        revocation_hook: Arc<Mutex<Option<RevocationHook>>>,
        on_compacted: Arc<Mutex<Option<CompactionHook>>>,
        on_backup: Arc<Mutex<Option<super::BackupHook>>>,
    ) -> Housekeeping {
        Housekeeping {
            data_dir: options.data_dir.clone(),
            state_dir: options.data_dir.join(STATE_DIR),
            segment_bytes: options.segment_bytes,
            erasure_compaction: options.erasure_compaction,
            snapshot_every: options.snapshot_every_records.max(1),
            clock: options.clock.clone(),
            vault,
            revocation_hook,
            on_compacted,
            on_backup,
            erasure_seen: None,
            since_snapshot: 0,
            since_snapshot_bytes: 0,
            last_snapshot_bytes: std::cell::Cell::new(0),
            outputs: None,
            compacting: None,
            freeing: None,
            wanted_cover: None,
            covering: None,
            cover_retry_at: None,
        }
    }

    /// Whether cluster mode's outputs wait to be written: no snapshot is
    /// taken meanwhile (a start after a crash decides them again from an
    /// earlier one).
    pub(super) fn outputs_pending(&self) -> bool {
        self.outputs.as_ref().is_some_and(super::outputs::Outputs::pending)
    }

    /// Before the writer waits for the next batch: starts a compaction when
    /// the oldest pending erasure is due (and no write has failed), and
    /// finishes one whose thread is done. Returns how long to wait for a
    /// batch before calling again, or `None` to wait without a deadline
    /// (nothing is scheduled).
    pub(super) fn schedule_erasures(&mut self, log: &mut Log, state: &RwLock<State>, failed: bool) -> Option<Duration> {
        if let Some(compacting) = &self.compacting {
            // Every group before this one is committed: the thread may copy
            // up to here.
            compacting.live_end.store(log.next_seq(), Ordering::Release);
            if !compacting.thread.is_finished() || !self.finish_compaction(log, state) {
                return Some(COMPACTION_POLL);
            }
        }
        let pending = self.erasures_pending(state);
        if pending {
            let since = *self.erasure_seen.get_or_insert_with(Instant::now);
            // Not while the cover's thread reads the log (a compaction swaps it).
            if !failed && since.elapsed() >= self.erasure_compaction && self.covering.is_none() {
                self.erasure_seen = None;
                if self.erasure_compaction.is_zero() {
                    // A zero bound (erasures left pending by a crash, or a
                    // compaction that failed): nothing more is acknowledged
                    // before they are compacted.
                    self.compact_here(log, state);
                } else {
                    self.start_compaction(log, state);
                    if self.compacting.is_some() {
                        return Some(COMPACTION_POLL);
                    }
                }
            }
        }
        crate::telemetry::ErasuresPending(self.pending_count(state)).emit();
        if self.covering.is_some() {
            return Some(COMPACTION_POLL);
        }
        if let Some(at) = self.cover_retry_at {
            return Some(at.saturating_duration_since(Instant::now()).max(COMPACTION_POLL));
        }
        if pending && self.erasure_seen.is_some() {
            let wait =
                self.erasure_compaction.saturating_sub(self.erasure_seen.map_or(Duration::ZERO, |s| s.elapsed()));
            Some(wait.max(Duration::from_millis(10)))
        } else {
            None
        }
    }

    /// Cluster mode: the partitions this node is to cover from now on
    /// (the leases' last round).
    pub(super) fn want_cover(&mut self, cover: Cover) {
        self.wanted_cover = Some(cover);
    }

    /// Brings state to the cover wanted, if it differs and no compaction
    /// is under way (its rebuild holds the cover of its start; settled
    /// after it). A thread (`covering`) replays the log as it stands into
    /// a scratch state covering the partitions wanted, while the writer
    /// goes on; once it is done, the writer applies to the scratch state
    /// what it appended meanwhile, checks it stands where the live state
    /// does (same position, same registry), and puts its usage in place
    /// with the new cover under one write lock. A cover wanted anew while
    /// one is replayed is started again once that one is done.
    ///
    /// The replay costs about what a start without a snapshot does, on
    /// the thread, and a second state while it runs; partitions move when
    /// nodes join or leave, not per request.
    pub(super) fn settle_cover(&mut self, log: &Log, state: &RwLock<State>) {
        if self.covering.as_ref().is_some_and(|covering| covering.thread.is_finished()) {
            self.finish_covering(log, state);
        }
        let Some(wanted) = self.wanted_cover.as_ref() else { return };
        // An erasure's compaction due goes first (it swaps the log the
        // thread would read): covers wanted faster than a replay takes
        // must not put it off.
        let erasure_due = self.erasure_seen.is_some_and(|seen| seen.elapsed() >= self.erasure_compaction);
        let retry_later = self.cover_retry_at.is_some_and(|at| Instant::now() < at);
        if state.read().unwrap_or_else(|p| p.into_inner()).cover == *wanted {
            self.cover_retry_at = None;
            return;
        }
        if self.covering.is_some() || self.compacting.is_some() || erasure_due || retry_later {
            return;
        }
        let (log_dir, until, cover) = (self.data_dir.join(LOG_DIR), log.next_seq(), wanted.clone());
        let replaying = cover.clone();
        let spawned = std::thread::Builder::new()
            .name("cover".to_string())
            .spawn(move || compact::cover_of_log_until(&log_dir, until, replaying));
        match spawned {
            Ok(thread) => self.covering = Some(Covering { cover, thread, started: Instant::now() }),
            Err(error) => {
                tracing::error!(%error, "Usage and audiences could not be rebuilt for a new cover (no thread); tried again shortly.");
                self.cover_failed();
            }
        }
    }

    /// A cover could not be settled: the cover wanted stays wanted (the
    /// leases' rounds do not send the same one again), and is tried again
    /// after [`COVER_RETRY`].
    fn cover_failed(&mut self) {
        self.cover_retry_at = Some(Instant::now() + COVER_RETRY);
    }

    /// Waits for the cover's thread, if any, and puts its usage in place
    /// (after the records appended since its replay).
    fn finish_covering(&mut self, log: &Log, state: &RwLock<State>) {
        let Some(Covering { cover, thread, started }) = self.covering.take() else { return };
        let replayed =
            thread.join().unwrap_or_else(|_| Err(PipelineError::Cluster("the cover's thread panicked".into())));
        let writer_started = Instant::now();
        let mut rebuilt = match replayed {
            Ok(rebuilt) => rebuilt,
            Err(error) => {
                tracing::error!(%error, "Usage and audiences could not be rebuilt for a new cover; tried again shortly.");
                self.cover_failed();
                return;
            }
        };
        let replayed_records = rebuilt.next_seq;
        let until = log.next_seq();
        let caught_up = if until > rebuilt.next_seq {
            super::replay::replay_records_until(
                &self.data_dir.join(LOG_DIR),
                rebuilt.next_seq,
                until,
                ("", &|_, _| {}),
                |seq, record| rebuilt.apply(seq, &record),
            )
        } else {
            Ok(())
        };
        if let Err(error) = caught_up {
            tracing::error!(%error, "Usage and audiences rebuilt for a new cover could not catch up; tried again shortly.");
            self.cover_failed();
            return;
        }
        rebuilt.settle_replayed();
        // What the replay held beside the live state (registry, usage,
        // audiences: `State::for_cover`).
        let scratch_heap_bytes = rebuilt.heap_bytes();
        let mut writing = state.write().unwrap_or_else(|p| p.into_inner());
        let last_person = |state: &State| {
            state.subjects.len().checked_sub(1).and_then(|last| state.subjects.get(last as u32)).map(|r| r.pseudonym)
        };
        if rebuilt.next_seq != writing.next_seq
            || rebuilt.subjects.len() != writing.subjects.len()
            || rebuilt.subjects.acting() != writing.subjects.acting()
            || last_person(&rebuilt) != last_person(&writing)
        {
            tracing::error!(
                replayed = rebuilt.next_seq,
                applied = writing.next_seq,
                "The log replayed for a new cover does not match state; tried again shortly."
            );
            drop(writing);
            self.cover_failed();
            return;
        }
        self.cover_retry_at = None;
        let old = std::mem::replace(&mut writing.usage, std::mem::take(&mut rebuilt.usage));
        writing.audiences.swap_members(&mut rebuilt.audiences);
        writing.cover = cover.clone();
        drop(writing);
        // The scratch state's other parts and the old usage go on the
        // thread that frees (not the writer's time).
        self.join_freeing();
        self.freeing =
            std::thread::Builder::new().name("compaction-free".to_string()).spawn(move || drop((old, rebuilt))).ok();
        tracing::info!(
            ?cover,
            records = replayed_records,
            copied_by_writer = until - replayed_records,
            millis = started.elapsed().as_millis() as u64,
            writer_micros = writer_started.elapsed().as_micros() as u64,
            scratch_heap_bytes,
            "Usage and audiences rebuilt for the partitions this node covers."
        );
    }

    /// After a group is applied, before it is acknowledged: hands its
    /// revocations to the hook, destroys the erased people's secrets, and
    /// with a zero bound compacts the deletions away.
    pub(super) fn after_apply(
        &mut self,
        log: &mut Log,
        state: &RwLock<State>,
        revocations: &[Withdrawal],
        erased: &[Pseudonym],
        minted: &[(Pseudonym, [u8; 32])],
    ) {
        // Cluster mode: the secrets the cluster's log minted (before the
        // outputs, which name people by them), then the outputs in log
        // order (the withdrawals among them: `revocations` is empty). A
        // secret minted for someone erased in this group is a later life's
        // (state drops mints made before an erasure): it goes in after the
        // erasure destroys the earlier life's, below.
        let (later_lives, minted): (Vec<_>, Vec<_>) = minted.iter().partition(|(p, _)| erased.contains(p));
        if let Some(outputs) = self.outputs.as_mut() {
            if let Err(error) = self.vault.install(&minted) {
                outputs.vault_failed();
                tracing::error!(%error, "Secrets minted by the cluster could not be stored; stored at the next start.");
            }
            outputs.write();
        }
        if !revocations.is_empty() {
            crate::failpoint::reach("consent.before_retractions");
            let hook = self.revocation_hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(hook) = hook {
                hook(revocations);
            }
        }
        // Crypto-shredding: the erased people's secrets are destroyed before
        // the erasure is acknowledged (after the retractions, which need them).
        if let Err(error) = self.vault.forget(erased) {
            tracing::error!(%error, "Erased people's secrets could not be destroyed on disk; retried at the next start.");
        }
        if let Err(error) = self.vault.install(&later_lives) {
            if let Some(outputs) = self.outputs.as_mut() {
                outputs.vault_failed();
            }
            tracing::error!(%error, "Secrets minted by the cluster could not be stored; stored at the next start.");
        }

        // With a zero bound, a deletion is compacted away before it is
        // acknowledged.
        if self.erasure_compaction.is_zero() && self.erasures_pending(state) {
            self.compact_now(log, state);
        }
        // The gauge counts an erasure before it is acknowledged: a client
        // that waits for it to read 0 must not read the 0 of before.
        if !erased.is_empty() {
            crate::telemetry::ErasuresPending(self.pending_count(state)).emit();
        }
    }

    /// After a group of `records` records (`bytes` bytes of log) is
    /// acknowledged: snapshots once enough has been committed since the
    /// last one ([`snapshot_due`]).
    pub(super) fn after_ack(&mut self, state: &RwLock<State>, records: u64, bytes: u64) {
        self.since_snapshot += records;
        self.since_snapshot_bytes += bytes;
        let due = snapshot_due(
            self.since_snapshot,
            self.snapshot_every,
            self.since_snapshot_bytes,
            self.last_snapshot_bytes.get(),
        );
        if due && !self.outputs_pending() {
            self.since_snapshot = 0;
            self.since_snapshot_bytes = 0;
            self.write_snapshot(state);
        }
    }

    /// Whether erasures wait for compaction.
    pub(super) fn erasures_pending(&self, state: &RwLock<State>) -> bool {
        self.pending_count(state) > 0
    }

    /// How many applied erasures wait for compaction.
    fn pending_count(&self, state: &RwLock<State>) -> u64 {
        state.read().unwrap_or_else(|p| p.into_inner()).housekeeping.erasures_pending
    }

    /// Compacts now (a backup holds no erasure still waiting for it): one
    /// under way is finished first, then one for the erasures since.
    pub(super) fn compact_now(&mut self, log: &mut Log, state: &RwLock<State>) {
        self.compact_here(log, state);
        self.erasure_seen = None;
    }

    /// At the writer's end: a compaction under way is waited for and
    /// finished (its erasures are due), as one the writer ran itself was.
    pub(super) fn at_shutdown(&mut self, log: &mut Log, state: &RwLock<State>) {
        // A cover's replay only reads: left to end with the process (the
        // next start settles the cover again).
        self.covering = None;
        if self.compacting.is_some() && !self.finish_compaction(log, state) {
            // Outputs still wait: the rewrite is dropped, the next start
            // compacts again.
            if let Some(compacting) = self.compacting.take() {
                let _ = compacting.thread.join();
            }
            compact::abandon(&self.data_dir);
        }
        self.join_freeing();
    }

    /// Waits for the last compaction's old state and log to be freed (a
    /// compaction starting removes a leftover old log itself).
    fn join_freeing(&mut self) {
        if let Some(freeing) = self.freeing.take() {
            let _ = freeing.join();
        }
    }

    pub(super) fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    pub(super) fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Compacts on the writer (a zero bound, a backup): one under way is
    /// finished first, then the deletions since its copy are compacted by
    /// the writer itself, as before the thread existed: the log rewritten
    /// under the state's read lock, state rebuilt under its write lock, the
    /// outputs compacted before the lock is let go, so nothing is answered
    /// about the state between a deletion and its compaction.
    fn compact_here(&mut self, log: &mut Log, state: &RwLock<State>) {
        // The cover's thread reads the log this swaps.
        self.finish_covering(log, state);
        if self.compacting.is_some() {
            self.finish_compaction(log, state);
        }
        if self.compacting.is_none() && self.erasures_pending(state) {
            self.compact_inline(log, state);
        }
    }

    fn compact_inline(&mut self, log: &mut Log, state: &RwLock<State>) {
        self.join_freeing();
        if self.outputs_pending() {
            tracing::info!("Log compaction waits for partner outputs to be written.");
            return;
        }
        let started = Instant::now();
        let rewritten = {
            let reading = state.read().unwrap_or_else(|p| p.into_inner());
            let gaps = reading.security_feed_gaps(self.clock.now_ms());
            compact::compact_log(&self.data_dir, self.segment_bytes, gaps.as_slice())
        };
        let mut guard = state.write().unwrap_or_else(|p| p.into_inner());
        let outcome = rewritten.and_then(|report| {
            *log = Log::open(&self.data_dir.join(LOG_DIR), self.segment_bytes)?;
            // The old state is dropped before the rebuild: one state at a
            // time. The rebuild holds the usage of the same people.
            let cover = std::mem::take(&mut *guard).cover;
            *guard = compact::state_of_log(&self.data_dir.join(LOG_DIR), cover)?;
            self.vault.compact()?;
            Ok(report)
        });
        match outcome {
            Ok(report) => {
                self.snapshot_of(&guard);
                self.since_snapshot = 0;
                self.since_snapshot_bytes = 0;
                tracing::info!(
                    erased_subjects = report.erased_subjects,
                    records_before = report.records_before,
                    records_after = report.records_after,
                    millis = started.elapsed().as_millis() as u64,
                    writer_millis = started.elapsed().as_millis() as u64,
                    "Log compacted: erased subjects removed."
                );
                let hook = self.on_compacted.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(hook) = hook {
                    hook();
                }
            }
            Err(error) => {
                crate::telemetry::StorageFailed { file: "compaction" }.emit();
                tracing::error!(%error, "Log compaction failed; erased subjects' events remain in the log.")
            }
        }
    }

    /// Takes a copy of the log as it stands (hard links, and a copy of the
    /// active segment) and starts a thread that rewrites it without the
    /// erased and rebuilds state from the new log, while the writer goes on
    /// committing (queries read the live state meanwhile; the erased are out
    /// of every answer since their deletions were applied). On failure the
    /// live log stays and compaction is retried at the next bound.
    fn start_compaction(&mut self, log: &Log, state: &RwLock<State>) {
        if self.outputs_pending() {
            // Its snapshot would start a replay after outputs not yet on
            // file (cluster mode): compacted once they are.
            tracing::info!("Log compaction waits for partner outputs to be written.");
            return;
        }
        let (gaps, pending_at_start, cover) = {
            let reading = state.read().unwrap_or_else(|p| p.into_inner());
            let gaps = reading.security_feed_gaps(self.clock.now_ms());
            (gaps, reading.housekeeping.erasures_pending, reading.cover.clone())
        };
        self.join_freeing();
        let copying = Instant::now();
        if let Err(error) = compact::take_source(log, &self.data_dir) {
            crate::telemetry::StorageFailed { file: "compaction" }.emit();
            tracing::error!(%error, "Log compaction could not copy the log; erased subjects' events remain in the log.");
            return;
        }
        let (data_dir, segment_bytes) = (self.data_dir.clone(), self.segment_bytes);
        let live_end = Arc::new(AtomicU64::new(log.next_seq()));
        let appended = Arc::clone(&live_end);
        let spawned = std::thread::Builder::new().name("compaction".to_string()).spawn(move || {
            let rewrite = Rewrite::of_source(&data_dir, segment_bytes, gaps.as_slice(), &|_, _| {})?;
            crate::failpoint::reach("compact.rebuild");
            let Rewrite::Written(written) = rewrite else { return Ok(None) };
            let mut state = written.rebuild(&data_dir, cover)?;
            // Its snapshot, here rather than on the writer after the swap
            // (the largest part of the writer's share before): valid for
            // the new log once it is the log, the records copied in later
            // replayed after it. A failure leaves it to the writer.
            let snapshot = match save_snapshot_as(&state, &data_dir.join(STATE_DIR), COMPACTED_SNAPSHOT_FILE) {
                Ok(bytes) => Some(crate::telemetry::SnapshotWritten {
                    bytes,
                    next_seq: state.next_seq,
                    heap_bytes: state.heap_bytes(),
                }),
                Err(error) => {
                    crate::telemetry::StorageFailed { file: "snapshot" }.emit();
                    tracing::warn!(%error, "The compaction's snapshot failed; the writer writes one after the swap.");
                    None
                }
            };
            // Most of what the writer appended meanwhile is copied in here,
            // beside it: the writer copies only what is left.
            let (live, mut written, mut copied) = (data_dir.join(LOG_DIR), written, 0);
            for _ in 0..CATCH_UP_ROUNDS {
                let until = appended.load(Ordering::Acquire);
                if until <= written.copied_until() {
                    break;
                }
                copied += written.catch_up_until(&live, &mut state, until)?;
            }
            Ok(Some(Rebuilt { written, state, snapshot, copied }))
        });
        match spawned {
            Ok(thread) => {
                let copy = copying.elapsed();
                self.compacting = Some(Compacting { thread, live_end, started: Instant::now(), copy, pending_at_start })
            }
            Err(error) => {
                compact::abandon(&self.data_dir);
                tracing::error!(%error, "Log compaction could not start its thread; retried later.");
            }
        }
    }

    /// Waits for the compaction's thread, copies into the new log what the
    /// writer appended since the copy (applying it to the new state), swaps
    /// the new log in, then the new state under the state's write lock (for
    /// a moment: queries wait only for the swap), rewrites the vault and
    /// snapshots. Returns false, leaving the compaction under way, while
    /// cluster mode's outputs wait to be written (its snapshot would start
    /// a replay after them).
    fn finish_compaction(&mut self, log: &mut Log, state: &RwLock<State>) -> bool {
        if self.outputs_pending() {
            return false;
        }
        let Some(compacting) = self.compacting.take() else { return true };
        let joined = compacting.thread.join().unwrap_or_else(|_| {
            Err(PipelineError::Failed("the compaction's thread panicked; the live log is untouched".to_string()))
        });
        let stalled = Instant::now();
        let (mut caught_up, mut by_thread) = (0, 0);
        // The writer's steps: catch-up, swap, state, vault.
        let mut steps = [Duration::ZERO; 4];
        let outcome = joined.and_then(|rebuilt| match rebuilt {
            Some(Rebuilt { mut written, state: mut new_state, snapshot, copied }) => {
                by_thread = copied;
                let step = Instant::now();
                caught_up = written.catch_up(&self.data_dir.join(LOG_DIR), &mut new_state)?;
                steps[0] = step.elapsed();
                let report = written.report;
                drop(written);
                let step = Instant::now();
                compact::swap(&self.data_dir)?;
                steps[1] = step.elapsed();
                let step = Instant::now();
                // Its closed segments were replayed whole into the new state.
                let (mut opened, closed) = Log::open_unverified(&self.data_dir.join(LOG_DIR), self.segment_bytes)?;
                opened.closed_verified(closed.written_here()?);
                *log = opened;
                let old = std::mem::replace(&mut *state.write().unwrap_or_else(|p| p.into_inner()), new_state);
                // Freeing the old state and the old log's blocks takes tens
                // to hundreds of milliseconds: not the writer's to wait for.
                let data_dir = self.data_dir.clone();
                let freeing = std::thread::Builder::new().name("compaction-free".to_string()).spawn(move || {
                    drop(old);
                    if let Err(error) = compact::remove_old(&data_dir) {
                        tracing::warn!(%error, "The old log could not be removed; the next start removes it.");
                    }
                });
                match freeing {
                    Ok(thread) => self.freeing = Some(thread),
                    Err(error) => {
                        tracing::warn!(%error, "No thread to free the old log; removing it here.");
                        if let Err(error) = compact::remove_old(&self.data_dir) {
                            tracing::warn!(%error, "The old log could not be removed; the next start removes it.");
                        }
                    }
                }
                steps[2] = step.elapsed();
                let step = Instant::now();
                // The destroyed secrets leave the vault file with the log.
                self.vault.compact()?;
                steps[3] = step.elapsed();
                Ok(Some((report, snapshot)))
            }
            None => {
                // No deletion in the copy: the erasures counted then are not
                // in the log (those since are the next compaction's).
                let mut writing = state.write().unwrap_or_else(|p| p.into_inner());
                let pending = &mut writing.housekeeping.erasures_pending;
                *pending = pending.saturating_sub(compacting.pending_at_start);
                Ok(None)
            }
        });
        match outcome {
            Ok(Some((report, snapshot))) => {
                let swapped = stalled.elapsed();
                let installed = snapshot.filter(|_| match compact::install_compacted_snapshot(&self.data_dir) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "The compaction's snapshot could not be put in place; writing one.");
                        false
                    }
                });
                let snapshot_by = if installed.is_some() { "compaction" } else { "writer" };
                if let Some(written) = installed {
                    self.last_snapshot_bytes.set(written.bytes);
                    written.emit();
                    // The records copied in after its end are replayed.
                    self.since_snapshot = by_thread + caught_up;
                } else {
                    self.snapshot_of(&state.read().unwrap_or_else(|p| p.into_inner()));
                    self.since_snapshot = 0;
                }
                self.since_snapshot_bytes = 0;
                let snapshotted = stalled.elapsed();
                let hook = self.on_compacted.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(hook) = hook {
                    hook();
                }
                // The writer's share: `swap_millis` (copying in what it
                // appended meanwhile, the swaps, the vault), the snapshot
                // (put in place, or written by `snapshot_by` the writer),
                // then the outputs' compaction (the hook).
                tracing::info!(
                    erased_subjects = report.erased_subjects,
                    records_before = report.records_before,
                    records_after = report.records_after,
                    copied_after_start = by_thread + caught_up,
                    copied_by_writer = caught_up,
                    millis = compacting.started.elapsed().as_millis() as u64,
                    writer_millis = stalled.elapsed().as_millis() as u64,
                    swap_millis = swapped.as_millis() as u64,
                    steps_micros = ?steps.map(|step| step.as_micros() as u64),
                    copy_micros = compacting.copy.as_micros() as u64,
                    snapshot_millis = (snapshotted - swapped).as_millis() as u64,
                    snapshot_by,
                    "Log compacted: erased subjects removed."
                );
            }
            Ok(None) => compact::abandon(&self.data_dir),
            Err(error) => {
                compact::abandon(&self.data_dir);
                crate::telemetry::StorageFailed { file: "compaction" }.emit();
                tracing::error!(%error, "Log compaction failed; erased subjects' events remain in the log.")
            }
        }
        true
    }

    /// Writes a snapshot of state now (a failure only costs replay time).
    pub(super) fn write_snapshot(&self, state: &RwLock<State>) {
        self.snapshot_of(&state.read().unwrap_or_else(|p| p.into_inner()));
    }

    /// Saves `state` as the snapshot and reports it; a failure is counted
    /// and logged, never fatal (state stays rebuildable from the log).
    fn snapshot_of(&self, state: &State) {
        match save_snapshot(state, &self.state_dir) {
            Ok(bytes) => {
                self.last_snapshot_bytes.set(bytes);
                crate::telemetry::SnapshotWritten { bytes, next_seq: state.next_seq, heap_bytes: state.heap_bytes() }
                    .emit()
            }
            Err(error) => {
                crate::telemetry::StorageFailed { file: "snapshot" }.emit();
                tracing::warn!(%error, "Snapshot failed; state stays rebuildable from the log.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::snapshot_due;

    #[test]
    fn the_snapshot_interval_grows_with_the_snapshot() {
        // Small state: the configured record count decides.
        assert!(!snapshot_due(1_999_999, 2_000_000, 300 << 20, 40 << 20));
        assert!(snapshot_due(2_000_000, 2_000_000, 300 << 20, 40 << 20));
        // Large state: two snapshots' worth of log first, however many records.
        assert!(!snapshot_due(2_000_000, 2_000_000, 300 << 20, 200 << 20));
        assert!(snapshot_due(3_500_000, 2_000_000, 400 << 20, 200 << 20));
        // No snapshot yet: only the records count.
        assert!(snapshot_due(2_000_000, 2_000_000, 0, 0));
    }
}
