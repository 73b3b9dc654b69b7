//! The writer thread: group commit, then apply, then acknowledge.
//!
//! Owns: draining the queue into one group, appending it with one write and
//! one fsync, applying it to state under the write lock, acknowledging each
//! batch with its first sequence number, and the failed state after a write
//! error (every later batch is refused until restart).
//! Never: acknowledges a batch before it is on disk and applied.

use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::housekeeping::Housekeeping;
use super::{PipelineError, Prepared};
use crate::contract::Pseudonym;
use crate::log::Log;
use crate::state::{State, Withdrawal};

pub(super) type AckFn = Box<dyn FnOnce(Result<u64, PipelineError>) + Send>;

/// One batch handed to the writer, and who to tell when it is done.
pub(super) struct Commit {
    pub(super) prepared: Prepared,
    pub(super) ack: AckFn,
}

/// Largest group committed at once: bounds latency of the first batch in it.
const MAX_GROUP_RECORDS: u64 = 1 << 20;

/// Runs until every sender is gone, then writes a final snapshot (unless a
/// write failed).
pub(super) fn writer_loop(
    receiver: Receiver<Commit>,
    mut log: Log,
    state: Arc<RwLock<State>>,
    mut housekeeping: Housekeeping,
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
        let (group, records) = gather(&receiver, first);
        if failed {
            refuse(group);
            continue;
        }
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
                continue;
            }
        };
        let applied = apply(&state, &log, &group, first_seq);
        housekeeping.after_apply(&mut log, &state, &applied.revocations, &applied.erased);
        tracing::trace!(records, micros = started.elapsed().as_micros() as u64, "Group committed.");
        for (commit, first) in group.into_iter().zip(applied.firsts) {
            (commit.ack)(Ok(first));
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
fn apply(state: &RwLock<State>, log: &Log, group: &[Commit], first_seq: u64) -> Applied {
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
    crate::telemetry::LogAppended {
        log_bytes: log.size_bytes(),
        log_records: log.next_seq(),
        subjects: state.subjects.acting(),
    }
    .emit();
    Applied { firsts, revocations: state.drain_revocations(), erased: state.drain_erased() }
}
