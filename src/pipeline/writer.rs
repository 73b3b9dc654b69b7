//! The writer thread: group commit, then apply, then acknowledge.
//!
//! Owns: draining the queue into one group, appending it with one write and
//! one fsync, applying it to state under the write lock, acknowledging each
//! batch with its first sequence number, and the failed state after a write
//! error (every later batch is refused until restart), and turning a keyed
//! batch whose key is already applied (logged earlier, or earlier in the
//! same group) into a replay of the first answer instead of a second write.
//! Never: acknowledges a batch before it is on disk and applied.

use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use std::collections::HashMap;

use super::housekeeping::Housekeeping;
use super::{Committed, PipelineError, Prepared};
use crate::contract::{KeyedAnswer, Pseudonym};
use crate::log::Log;
use crate::state::{State, Withdrawal};

pub(super) type AckFn = Box<dyn FnOnce(Result<Committed, PipelineError>) + Send>;

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
    receiver: Receiver<Commit>,
    mut log: Log,
    state: Arc<RwLock<State>>,
    mut housekeeping: Housekeeping,
    keys: KeyWindow,
) {
    let mut failed = false;
    let mut framed = Vec::new();
    loop {
        let first = match housekeeping.schedule_erasures(&mut log, &state, failed) {
            Some(wait) => match receiver.recv_timeout(wait) {
                Ok(commit) => commit,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match receiver.recv() {
                Ok(commit) => commit,
                Err(_) => break,
            },
        };
        let (group, _) = gather(&receiver, first);
        if failed {
            refuse(group);
            continue;
        }
        let not_before_ms = keys.not_before_ms();
        let (group, replays) = split_replays(&state, group, not_before_ms);
        if group.is_empty() {
            // Every batch was a resend of one already durable.
            for (commit, answer) in replays {
                (commit.ack)(Ok(Committed::Replayed(answer)));
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
                failed = true;
                refuse(group);
                refuse(replays.into_iter().map(|(commit, _)| commit).collect());
                continue;
            }
        };
        crate::failpoint::reach("writer.before_apply");
        let applied = apply(&state, &log, &group, first_seq, not_before_ms);
        housekeeping.after_apply(&mut log, &state, &applied.revocations, &applied.erased);
        tracing::trace!(records, micros = started.elapsed().as_micros() as u64, "Group committed.");
        crate::failpoint::reach("writer.before_ack");
        for (commit, first) in group.into_iter().zip(applied.firsts) {
            (commit.ack)(Ok(Committed::Applied { first_seq: first }));
        }
        for (commit, answer) in replays {
            (commit.ack)(Ok(Committed::Replayed(answer)));
        }
        housekeeping.after_ack(&state, records);
    }
    if !failed {
        housekeeping.write_snapshot(&state);
    }
}

/// `first` plus whatever else is queued, up to [`MAX_GROUP_RECORDS`]
/// records; returns the group and its record count.
fn gather(receiver: &Receiver<Commit>, first: Commit) -> (Vec<Commit>, u64) {
    let mut records = first.prepared.records.len() as u64;
    let mut group = vec![first];
    while records < MAX_GROUP_RECORDS {
        match receiver.try_recv() {
            Ok(commit) => {
                records += commit.prepared.records.len() as u64;
                group.push(commit);
            }
            Err(_) => break,
        }
    }
    (group, records)
}

/// Takes out of `group` each keyed batch whose key was applied since
/// `not_before_ms` (in state) or is applied by an earlier batch of this
/// group: those are answered with the first answer, never written again.
/// The writer is the one thread that applies keys, so two concurrent
/// requests with one key cannot both pass this check.
fn split_replays(
    state: &RwLock<State>,
    group: Vec<Commit>,
    not_before_ms: i64,
) -> (Vec<Commit>, Vec<(Commit, KeyedAnswer)>) {
    if group.iter().all(|commit| commit.prepared.key.is_none()) {
        return (group, Vec::new());
    }
    let state = state.read().unwrap_or_else(|p| p.into_inner());
    let mut in_group: HashMap<[u8; 16], KeyedAnswer> = HashMap::new();
    let mut keep = Vec::with_capacity(group.len());
    let mut replays = Vec::new();
    for commit in group {
        if let Some(key) = &commit.prepared.key {
            let first = state.recent_keys.get(&key.digest, not_before_ms).or_else(|| in_group.get(&key.digest));
            if let Some(answer) = first {
                let answer = answer.clone();
                replays.push((commit, answer));
                continue;
            }
            in_group.insert(key.digest, key.answer.clone());
        }
        keep.push(commit);
    }
    (keep, replays)
}

/// Acknowledges every batch of `group` with [`PipelineError::Failed`].
fn refuse(group: Vec<Commit>) {
    for commit in group {
        (commit.ack)(Err(PipelineError::Failed));
    }
}

/// What applying one durable group produced.
struct Applied {
    /// Each batch's first sequence number, in group order.
    firsts: Vec<u64>,
    revocations: Vec<Withdrawal>,
    erased: Vec<Pseudonym>,
}

/// Applies `group`, durable from `first_seq` on, to state under the write
/// lock, and takes the revocations and erasures it caused.
fn apply(state: &RwLock<State>, log: &Log, group: &[Commit], first_seq: u64, not_before_ms: i64) -> Applied {
    let mut seq = first_seq;
    let mut firsts = Vec::with_capacity(group.len());
    let mut state = state.write().unwrap_or_else(|p| p.into_inner());
    for commit in group {
        firsts.push(seq);
        for record in &commit.prepared.records {
            state.apply(seq, record);
            seq += 1;
        }
    }
    state.recent_keys.expire(not_before_ms);
    crate::telemetry::LogAppended {
        log_bytes: log.size_bytes(),
        log_records: log.next_seq(),
        subjects: state.subjects.acting(),
    }
    .emit();
    Applied { firsts, revocations: state.drain_revocations(), erased: state.drain_erased() }
}
