//! The writer thread: group commit, then apply, then acknowledge.
//!
//! Owns: draining the queue into one group, appending it durably (the log writes
//! and fsyncs it in steps), applying it to state under the write lock (let go between two
//! records when readers wait), acknowledging each
//! batch with its first sequence number, and the failed state after a write
//! error (every later batch is refused until restart), and turning a keyed
//! batch whose key is already applied (logged earlier, or earlier in the
//! same group) into a replay of the first answer instead of a second write.
//! Never: acknowledges a batch before it is on disk and applied.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use super::housekeeping::Housekeeping;
use super::outputs::Outputs;
use super::{Committed, PipelineError, Prepared};
use crate::contract::{KeyedAnswer, Pseudonym};
use crate::log::Log;
use crate::state::{State, Withdrawal};

pub(super) type AckFn = Box<dyn FnOnce(Result<Committed, PipelineError>) + Send>;

/// What the writer is handed: a batch to commit, or a backup to take
/// between two groups.
pub(super) enum Job {
    Commit(Commit),
    Backup(super::backup::BackupJob),
    /// Cluster mode: write the outputs waiting for the outputs hook (just
    /// set), then answer.
    WriteOutputs(mpsc::Sender<()>),
    /// Cluster mode: cover these partitions from now on.
    Cover(crate::state::Cover),
}

/// One batch handed to the writer, and who to tell when it is done.
pub(super) struct Commit {
    pub(super) prepared: Prepared,
    pub(super) ack: AckFn,
}

/// Largest group committed at once: bounds latency of the first batch in it.
const MAX_GROUP_RECORDS: u64 = 1 << 20;

/// How long an idempotency key is honoured, and the clock that says when.
pub(super) struct KeyWindow {
    pub(super) clock: crate::clock::Clock,
    pub(super) window_ms: i64,
}

impl KeyWindow {
    /// The oldest first-seen time still honoured now.
    pub(super) fn not_before_ms(&self) -> i64 {
        self.clock.now_ms().saturating_sub(self.window_ms)
    }
}

/// Runs until every sender is gone, then writes a final snapshot (unless a
/// write failed).
pub(super) fn writer_loop(
    receiver: Receiver<Job>,
    mut log: Log,
    state: Arc<RwLock<State>>,
    readers_waiting: Arc<AtomicUsize>,
    mut housekeeping: Housekeeping,
    keys: KeyWindow,
    write_failure: Arc<Mutex<Option<String>>>,
) {
    // Why the log failed, once a write failed: every later batch is refused.
    let mut failed: Option<String> = None;
    let mut framed = Vec::new();
    loop {
        housekeeping.settle_cover(&log, &state);
        let first = match housekeeping.schedule_erasures(&mut log, &state, failed.is_some()) {
            Some(wait) => match receiver.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match receiver.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let first = match first {
            Job::Commit(commit) => commit,
            Job::Backup(job) => {
                housekeeping.backup(&mut log, &state, job, failed.is_some());
                continue;
            }
            Job::WriteOutputs(done) => {
                if let Some(outputs) = housekeeping.outputs.as_mut() {
                    outputs.write();
                }
                let _ = done.send(());
                continue;
            }
            Job::Cover(cover) => {
                housekeeping.want_cover(cover);
                continue;
            }
        };
        let mut cover_asked = None;
        let (group, backup) = gather(&receiver, first, &mut cover_asked);
        if let Some(cover) = cover_asked {
            housekeeping.want_cover(cover);
        }
        if let Some(cause) = &failed {
            refuse(group, cause);
            if let Some(job) = backup {
                housekeeping.backup(&mut log, &state, job, true);
            }
            continue;
        }
        let not_before_ms = keys.not_before_ms();
        let (group, replays) = split_replays(&state, group, not_before_ms, keys.window_ms);
        if group.is_empty() {
            // Every batch was a resend of one already durable.
            for (commit, answer) in replays {
                (commit.ack)(Ok(Committed::Replayed(answer)));
            }
            if let Some(job) = backup {
                housekeeping.backup(&mut log, &state, job, failed.is_some());
            }
            continue;
        }
        let records: u64 = group.iter().map(|commit| commit.prepared.records.len() as u64).sum();
        framed.clear();
        for commit in &group {
            framed.extend_from_slice(&commit.prepared.framed);
        }
        let started = Instant::now();
        let first_seq = match log.append_framed(&framed, records) {
            Ok(seq) => seq,
            Err(error) => {
                tracing::error!(%error, "Log append failed; refusing further writes until restart.");
                crate::telemetry::StorageFailed { file: "log" }.emit();
                let cause = error.disk_fault();
                // Known before anyone hears of it: a client that got the
                // 503 finds /healthz failed too.
                *write_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause.clone());
                refuse(group, &cause);
                refuse(replays.into_iter().map(|(commit, _)| commit).collect(), &cause);
                failed = Some(cause);
                if let Some(job) = backup {
                    housekeeping.backup(&mut log, &state, job, true);
                }
                continue;
            }
        };
        crate::failpoint::reach("writer.before_apply");
        let applied =
            apply(&state, &readers_waiting, &log, &group, first_seq, not_before_ms, housekeeping.outputs.as_mut());
        housekeeping.after_apply(&mut log, &state, &applied.revocations, &applied.erased, &applied.minted);
        tracing::trace!(records, micros = started.elapsed().as_micros() as u64, "Group committed.");
        crate::failpoint::reach("writer.before_ack");
        for (commit, first) in group.into_iter().zip(applied.firsts) {
            (commit.ack)(Ok(Committed::Applied { first_seq: first }));
        }
        for (commit, answer) in replays {
            (commit.ack)(Ok(Committed::Replayed(answer)));
        }
        crate::failpoint::reach("writer.after_ack");
        housekeeping.after_ack(&state, records, framed.len() as u64);
        if let Some(job) = backup {
            housekeeping.backup(&mut log, &state, job, failed.is_some());
        }
    }
    housekeeping.at_shutdown(&mut log, &state);
    if failed.is_none() && !housekeeping.outputs_pending() {
        housekeeping.write_snapshot(&state);
    }
}

/// `first` plus whatever else is queued, up to [`MAX_GROUP_RECORDS`]
/// records or a backup, which ends the group and is taken right after it
/// (so the backup holds every batch queued before it asked).
fn gather(
    receiver: &Receiver<Job>,
    first: Commit,
    cover_asked: &mut Option<crate::state::Cover>,
) -> (Vec<Commit>, Option<super::backup::BackupJob>) {
    let mut records = first.prepared.records.len() as u64;
    let mut group = vec![first];
    while records < MAX_GROUP_RECORDS {
        match receiver.try_recv() {
            Ok(Job::Commit(commit)) => {
                records += commit.prepared.records.len() as u64;
                group.push(commit);
            }
            Ok(Job::Backup(job)) => return (group, Some(job)),
            Ok(Job::WriteOutputs(done)) => {
                // Written with this group's, after it.
                let _ = done.send(());
            }
            // Settled before the next group.
            Ok(Job::Cover(cover)) => *cover_asked = Some(cover),
            Err(_) => break,
        }
    }
    (group, None)
}

/// Takes out of `group` each keyed batch whose key was applied since
/// `not_before_ms` (in state) or is applied by an earlier batch of this
/// group: those are answered with the first answer, never written again.
/// The writer is the one thread that applies keys, so two concurrent
/// requests with one key cannot both pass this check.
///
/// Cluster mode: a message of the cluster's log appended under a key
/// applied within `window_ms` of the message's own time (JetStream's, the
/// same on every node) is a resend stored twice; it stays in the group with
/// only its position ([`Prepared::only_its_position`]), so every node drops
/// the same messages and a restart drops them again.
fn split_replays(
    state: &RwLock<State>,
    group: Vec<Commit>,
    not_before_ms: i64,
    window_ms: i64,
) -> (Vec<Commit>, Vec<(Commit, KeyedAnswer)>) {
    if group.iter().all(|commit| commit.prepared.key.is_none() && commit.prepared.resent.is_none()) {
        return (group, Vec::new());
    }
    let state = state.read().unwrap_or_else(|p| p.into_inner());
    let mut in_group: HashMap<[u8; 16], KeyedAnswer> = HashMap::new();
    // Keys logged by the cluster's messages earlier in this group, and when.
    let mut logged: HashMap<[u8; 16], i64> = HashMap::new();
    let mut keep = Vec::with_capacity(group.len());
    let mut replays = Vec::new();
    for mut commit in group {
        if let Some(key) = &commit.prepared.key {
            let first = state.recent_keys.get(&key.digest, not_before_ms).or_else(|| in_group.get(&key.digest));
            if let Some(answer) = first {
                let answer = answer.clone();
                replays.push((commit, answer));
                continue;
            }
            in_group.insert(key.digest, key.answer.clone());
        }
        if let Some((request, at_ms)) = commit.prepared.resent {
            let not_before_ms = at_ms.saturating_sub(window_ms);
            let applied = state.recent_keys.get(&request, not_before_ms).is_some()
                || logged.get(&request).is_some_and(|&logged_ms| logged_ms >= not_before_ms);
            if applied {
                crate::telemetry::ClusterResendDropped.emit();
                commit.prepared = std::mem::take(&mut commit.prepared).only_its_position();
            }
            logged.extend(commit.prepared.keys_logged());
        }
        keep.push(commit);
    }
    (keep, replays)
}

/// Acknowledges every batch of `group` with [`PipelineError::Failed`].
fn refuse(group: Vec<Commit>, cause: &str) {
    for commit in group {
        (commit.ack)(Err(PipelineError::Failed(cause.to_string())));
    }
}

/// What applying one durable group produced.
struct Applied {
    /// Each batch's first sequence number, in group order.
    firsts: Vec<u64>,
    revocations: Vec<Withdrawal>,
    erased: Vec<Pseudonym>,
    minted: Vec<(Pseudonym, [u8; 32])>,
}

/// Longest stretch the writer applies a group under the write lock while
/// readers wait for it; then it lets them in before the next record.
const APPLY_SLICE: Duration = Duration::from_millis(1);

/// Applies `group`, durable from `first_seq` on, to state under the write
/// lock, and takes the revocations and erasures it caused. A group of large
/// batches (address books) takes hundreds of milliseconds to apply: when
/// readers wait, the lock is let go between two records every
/// [`APPLY_SLICE`]. They may see part of the group; every record of it is
/// durable already, and none is acknowledged before all are applied (and
/// the group's withdrawals retracted), so read-your-writes and the
/// disclosure order hold.
fn apply(
    lock: &RwLock<State>,
    readers_waiting: &AtomicUsize,
    log: &Log,
    group: &[Commit],
    first_seq: u64,
    not_before_ms: i64,
    mut outputs: Option<&mut Outputs>,
) -> Applied {
    let mut seq = first_seq;
    let mut firsts = Vec::with_capacity(group.len());
    let mut state = lock.write().unwrap_or_else(|p| p.into_inner());
    let mut slice_started = Instant::now();
    for commit in group {
        firsts.push(seq);
        for record in &commit.prepared.records {
            state.apply(seq, record);
            if let Some(outputs) = outputs.as_mut() {
                outputs.after_record(&mut state, record);
            }
            seq += 1;
            if seq.is_multiple_of(32)
                && readers_waiting.load(Ordering::SeqCst) > 0
                && slice_started.elapsed() >= APPLY_SLICE
            {
                drop(state);
                // The waiting readers take the lock; the writer then waits
                // for them (a waiting writer keeps new readers out).
                let until = Instant::now() + APPLY_SLICE;
                while readers_waiting.load(Ordering::SeqCst) > 0 && Instant::now() < until {
                    std::thread::yield_now();
                }
                state = lock.write().unwrap_or_else(|p| p.into_inner());
                slice_started = Instant::now();
            }
        }
    }
    state.recent_keys.expire(not_before_ms);
    crate::telemetry::LogAppended {
        log_bytes: log.size_bytes(),
        log_records: log.next_seq(),
        subjects: state.subjects.acting(),
    }
    .emit();
    Applied {
        firsts,
        revocations: state.drain_revocations(),
        erased: state.drain_erased(),
        minted: state.drain_minted(),
    }
}
