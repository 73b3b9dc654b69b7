//! Log compaction for erasure: rewrite the log without erased subjects.
//!
//! Owns: finding every `delete_account` in the log, writing a new log in
//! which each deleted subject's records up to its deletion are gone and
//! every reference to it in other people's records (message recipient,
//! address-book entry, report or block target) is scrubbed, catching the new
//! log up with records appended to the live one meanwhile (the server's
//! writer goes on while a copy of its log is rewritten: see
//! `housekeeping.rs`), swapping the new log in atomically, and finishing or
//! undoing a swap a crash interrupted.
//! Never: keeps a byte of an erased pseudonym in the new log, or loses a
//! record of anyone else.

use std::collections::HashMap;
use std::path::Path;

use super::{PipelineError, LOG_DIR, STATE_DIR};
use crate::contract::{encode_control, encode_event, Control, ControlBody, EventBody, Pseudonym, Recipient, Record};
use crate::log::{frame_with, Log, LogError};
use crate::state::{Cover, State, COMPACTED_SNAPSHOT_FILE};

/// Where the new log is written before the swap.
const NEW_DIR: &str = "log.new";
/// Where the old log goes during the swap.
const OLD_DIR: &str = "log.old";
/// Where the old log goes once the swap is done, to be removed ([`remove_old`]:
/// on a thread of its own for the server's writer). Left over, it is removed
/// at the next start; unlike [`OLD_DIR`] it says nothing about the snapshot.
const REMOVING_DIR: &str = "log.removing";
/// The log as it stood when the server's writer began a compaction: its
/// closed segments hard-linked, its active one copied up to its last record.
/// Read by the compaction's thread while the writer appends to the live log.
const SOURCE_DIR: &str = "log.compact-source";
/// A file in the data dir saying that the outputs of a compaction (the
/// vault, the feeds, the audit log) are still to be rewritten without the
/// erased people: made before the log swap, removed once they are (see
/// `disclose::compact_outputs`), and acted on at the next start when a
/// crash came between the two.
pub const OUTPUTS_OWED: &str = "compaction.outputs-owed";
/// What a compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub erased_subjects: u64,
    pub records_before: u64,
    pub records_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::DataDir { path: path.display().to_string(), source }
}

/// Finishes or undoes a swap interrupted by a crash, and removes what an
/// interrupted rewrite left. Safe to call always.
pub fn recover_interrupted(data_dir: &Path) -> Result<(), PipelineError> {
    let (log, new, old) = (data_dir.join(LOG_DIR), data_dir.join(NEW_DIR), data_dir.join(OLD_DIR));
    if new.exists() || old.exists() {
        // A compaction was under way: the snapshot may number the records
        // of the old log and hold the erased (a proviso before this one
        // removed it only after the swap); state is rebuilt from the log.
        remove_snapshot(data_dir)?;
    }
    if !log.exists() && new.exists() {
        // Crashed between the two renames: the new log is complete.
        std::fs::rename(&new, &log).map_err(io(&new))?;
    }
    for leftover in [new, old, data_dir.join(SOURCE_DIR), data_dir.join(REMOVING_DIR)] {
        if leftover.exists() {
            std::fs::remove_dir_all(&leftover).map_err(io(&leftover))?;
        }
    }
    // A compaction's snapshot not yet put in place: whether its log was
    // swapped in or not, state is rebuilt from the log (or the snapshot).
    remove_compacted_snapshot(data_dir)
}

/// Removes the snapshot a compaction wrote of its new log
/// ([`COMPACTED_SNAPSHOT_FILE`]) and its temporary file, if there.
fn remove_compacted_snapshot(data_dir: &Path) -> Result<(), PipelineError> {
    let written = data_dir.join(STATE_DIR).join(COMPACTED_SNAPSHOT_FILE);
    for leftover in [written.with_extension("tmp"), written] {
        if leftover.exists() {
            std::fs::remove_file(&leftover).map_err(io(&leftover))?;
        }
    }
    Ok(())
}

/// After [`swap`]: the snapshot the compaction's thread wrote of the new
/// log (up to the end of the copy it rewrote) becomes the snapshot. The
/// records the writer copied in after it are replayed at a start, as after
/// any snapshot.
pub(super) fn install_compacted_snapshot(data_dir: &Path) -> Result<(), PipelineError> {
    let state_dir = data_dir.join(STATE_DIR);
    let written = state_dir.join(COMPACTED_SNAPSHOT_FILE);
    let snapshot = state_dir.join(crate::state::SNAPSHOT_FILE);
    std::fs::rename(&written, &snapshot).map_err(io(&written))?;
    sync_dir(&state_dir)
}

/// Rewrites the log in `data_dir` without erased subjects and removes the
/// snapshot (state must be rebuilt from the new log). `preamble` (the
/// security feed gaps of the state being compacted) is written first, and
/// replaces any gaps record of an earlier compaction. The caller holds the
/// data dir exclusively (`proviso compact` with the lock).
pub fn compact_log(data_dir: &Path, segment_bytes: u64, preamble: &[Control]) -> Result<CompactReport, PipelineError> {
    compact_log_reporting(data_dir, segment_bytes, preamble, &|_, _| {})
}

/// [`compact_log`], reporting its two passes over the log as the steps
/// `"finding the erased"` and `"writing the new log"`.
pub fn compact_log_reporting(
    data_dir: &Path,
    segment_bytes: u64,
    preamble: &[Control],
    progress: super::replay::Progress<'_>,
) -> Result<CompactReport, PipelineError> {
    recover_interrupted(data_dir)?;
    let rewrite = Rewrite::write(&data_dir.join(LOG_DIR), data_dir, segment_bytes, preamble, progress)?;
    match rewrite {
        Rewrite::Nothing(report) => Ok(report),
        Rewrite::Written(written) => {
            let report = written.report;
            drop(written);
            crate::failpoint::reach("compact.rebuild");
            swap(data_dir)?;
            remove_old(data_dir)?;
            Ok(report)
        }
    }
}

/// The server's writer, about to compact: takes the log as it stands into
/// [`SOURCE_DIR`] for [`Rewrite::of_source`] to read on another thread
/// while the writer goes on appending. Costs a copy of the active segment.
pub(super) fn take_source(log: &Log, data_dir: &Path) -> Result<(), PipelineError> {
    recover_interrupted(data_dir)?;
    let source = data_dir.join(SOURCE_DIR);
    if let Err(error) = log.copy_to_unsynced(&source) {
        let _ = std::fs::remove_dir_all(&source);
        return Err(error.into());
    }
    Ok(())
}

/// Removes what an abandoned or failed rewrite left (the new log and the
/// source); the live log is untouched.
pub(super) fn abandon(data_dir: &Path) {
    for leftover in [data_dir.join(NEW_DIR), data_dir.join(SOURCE_DIR)] {
        let _ = std::fs::remove_dir_all(leftover);
    }
    let _ = remove_compacted_snapshot(data_dir);
}

/// Who a compaction erases: the last deletion of each deleted person, and
/// where each came back (a new life, not erased).
#[derive(Default)]
struct Eraser {
    deleted_at: HashMap<Pseudonym, u64>,
    /// The first event of a person's own after their last deletion.
    reborn_at: HashMap<Pseudonym, u64>,
}

impl Eraser {
    /// Pass 1: notes a record of the log being compacted.
    fn note(&mut self, seq: u64, record: &Record) {
        if let Record::Event(event) = record {
            if event.body == EventBody::DeleteAccount {
                self.deleted_at.insert(event.subject, seq);
                self.reborn_at.remove(&event.subject);
            } else if self.deleted_at.contains_key(&event.subject) {
                self.reborn_at.entry(event.subject).or_insert(seq);
            }
        }
    }

    /// Notes a record appended after the source was taken. A deletion there
    /// is the next compaction's (this one has written that person's earlier
    /// records already): the person counts as back, so nothing of theirs
    /// after it is dropped now.
    fn note_later(&mut self, seq: u64, record: &Record) {
        if let Record::Event(event) = record {
            if self.deleted_at.contains_key(&event.subject) {
                self.reborn_at.entry(event.subject).or_insert(seq);
            }
        }
    }

    fn erased(&self, pseudonym: &Pseudonym, seq: u64) -> bool {
        self.deleted_at.get(pseudonym).is_some_and(|&at| seq <= at)
    }

    /// Cluster mode's records about a person may land after their deletion
    /// (decided or minted by another node just before it): until the person
    /// comes back, they belong to the erased life too.
    fn erased_life(&self, pseudonym: &Pseudonym, seq: u64) -> bool {
        self.erased(pseudonym, seq)
            || (self.deleted_at.contains_key(pseudonym) && self.reborn_at.get(pseudonym).is_none_or(|&back| seq < back))
    }

    fn scrub(&self, pseudonym: &mut Pseudonym, seq: u64) {
        if self.erased(pseudonym, seq) {
            *pseudonym = Pseudonym::ERASED;
        }
    }

    /// The record as the new log holds it, or `None` when it goes.
    fn keep(&self, seq: u64, record: Record) -> Option<Record> {
        match record {
            Record::Event(mut event) => {
                if self.erased(&event.subject, seq) {
                    return None;
                }
                match &mut event.body {
                    EventBody::Message { to: Recipient::Subject(to), .. } => self.scrub(to, seq),
                    EventBody::Report { target, .. } | EventBody::Block { target } => self.scrub(target, seq),
                    EventBody::Contacts { contacts } => contacts.retain(|c| !self.erased(c, seq)),
                    _ => {}
                }
                Some(Record::Event(event))
            }
            Record::Control(control) => match &control.body {
                ControlBody::Decision { subject, .. } if self.erased(subject, seq) => None,
                // With the pseudonym key a nonce derives the destroyed secret.
                ControlBody::SecretMinted { subject, .. } if self.erased_life(subject, seq) => None,
                // Its outputs are written (and scrubbed with the audit log
                // and feeds); the record would keep the pseudonym.
                ControlBody::Disclosed(disclosed) if disclosed.people.iter().any(|p| self.erased_life(p, seq)) => None,
                ControlBody::SecurityFeedGaps { .. } => None,
                _ => Some(Record::Control(control)),
            },
        }
    }
}

/// Frames records for a log and appends them a megabyte at a time.
struct Batcher {
    framed: Vec<u8>,
    pending: u64,
    error: Option<LogError>,
}

impl Batcher {
    fn new() -> Batcher {
        Batcher { framed: Vec::with_capacity(1 << 20), pending: 0, error: None }
    }

    fn push(&mut self, record: &Record) {
        match record {
            Record::Event(event) => frame_with(&mut self.framed, |out| encode_event(event, out)),
            Record::Control(control) => frame_with(&mut self.framed, |out| encode_control(control, out)),
        }
        self.pending += 1;
    }

    /// Appends what is framed once a megabyte is (`all`: whatever is);
    /// returns the first sequence number appended, if any.
    fn flush(&mut self, log: &mut Log, report: &mut CompactReport, all: bool) -> Option<u64> {
        if self.pending == 0 || (!all && self.framed.len() < 1 << 20) {
            return None;
        }
        let first = match log.append_framed(&self.framed, self.pending) {
            Ok(first) => Some(first),
            Err(error) => {
                self.error.get_or_insert(error);
                None
            }
        };
        report.bytes_after += self.framed.len() as u64;
        report.records_after += self.pending;
        self.framed.clear();
        self.pending = 0;
        first
    }

    fn finish(mut self, log: &mut Log, report: &mut CompactReport) -> Result<(), PipelineError> {
        self.flush(log, report, true);
        match self.error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// A rewrite of a log without its erased people.
pub(super) enum Rewrite {
    /// The log holds no deletion: nothing was written.
    Nothing(CompactReport),
    Written(Written),
}

/// A new log written in [`NEW_DIR`], not yet swapped in.
pub(super) struct Written {
    pub(super) report: CompactReport,
    eraser: Eraser,
    /// The sequence number after the last record of the log it was made
    /// from: the live log's records from here on are still to be copied.
    source_end: u64,
    new_log: Log,
}

impl Rewrite {
    /// Rewrites the source the writer took ([`take_source`]).
    pub(super) fn of_source(
        data_dir: &Path,
        segment_bytes: u64,
        preamble: &[Control],
        progress: super::replay::Progress<'_>,
    ) -> Result<Rewrite, PipelineError> {
        let source = data_dir.join(SOURCE_DIR);
        let rewrite = Rewrite::write(&source, data_dir, segment_bytes, preamble, progress);
        if let Err(error) = std::fs::remove_dir_all(&source) {
            tracing::warn!(%error, source = %source.display(), "Could not remove the compaction's copy of the log; the next start does.");
        }
        rewrite
    }

    /// Reads the log in `source` twice: first who was deleted, then every
    /// record into a new log in [`NEW_DIR`] without them. On failure the
    /// new log is removed (on a full disk it holds space the live log needs).
    fn write(
        source: &Path,
        data_dir: &Path,
        segment_bytes: u64,
        preamble: &[Control],
        progress: super::replay::Progress<'_>,
    ) -> Result<Rewrite, PipelineError> {
        let mut report = CompactReport::default();
        let mut eraser = Eraser::default();
        report.bytes_before = Log::open(source, segment_bytes)?.size_bytes();
        let mut source_end = 0;
        super::replay::replay_records_reporting(source, 0, ("finding the erased", progress), |seq, record| {
            report.records_before += 1;
            source_end = seq + 1;
            eraser.note(seq, &record);
        })?;
        if eraser.deleted_at.is_empty() {
            report.records_after = report.records_before;
            report.bytes_after = report.bytes_before;
            return Ok(Rewrite::Nothing(report));
        }
        report.erased_subjects = eraser.deleted_at.len() as u64;
        let new_dir = data_dir.join(NEW_DIR);
        if new_dir.exists() {
            std::fs::remove_dir_all(&new_dir).map_err(io(&new_dir))?;
        }
        let mut write_new_log = || -> Result<Log, PipelineError> {
            let mut new_log = Log::open(&new_dir, segment_bytes)?;
            let mut batcher = Batcher::new();
            for control in preamble {
                batcher.push(&Record::Control(control.clone()));
            }
            super::replay::replay_records_reporting(source, 0, ("writing the new log", progress), |seq, record| {
                if let Some(kept) = eraser.keep(seq, record) {
                    batcher.push(&kept);
                    batcher.flush(&mut new_log, &mut report, false);
                }
            })?;
            batcher.finish(&mut new_log, &mut report)?;
            Ok(new_log)
        };
        match write_new_log() {
            Ok(new_log) => Ok(Rewrite::Written(Written { report, eraser, source_end, new_log })),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&new_dir);
                Err(error)
            }
        }
    }
}

impl Written {
    /// State from the new log as written so far, holding the usage of the
    /// people `cover` covers.
    pub(super) fn rebuild(&self, data_dir: &Path, cover: Cover) -> Result<State, PipelineError> {
        state_of_log(&data_dir.join(NEW_DIR), cover)
    }

    /// Copies into the new log, compacted, the live log's records from the
    /// end of the source on (appended while the source was rewritten), and
    /// hands each kept one to `apply` with its sequence number in the new
    /// log. Runs on the thread that appends to the live log.
    pub(super) fn catch_up(&mut self, live: &Path, state: &mut State) -> Result<u64, PipelineError> {
        self.catch_up_until(live, state, u64::MAX)
    }

    /// [`Written::catch_up`] of the live log's records before `until`
    /// only, a sequence number the live log's writer has committed: the
    /// compaction's thread copies most of what was appended during its
    /// rewrite this way, while the writer goes on appending.
    pub(super) fn catch_up_until(&mut self, live: &Path, state: &mut State, until: u64) -> Result<u64, PipelineError> {
        let mut batcher = Batcher::new();
        let mut kept_records: Vec<Record> = Vec::new();
        let mut copied = 0;
        let mut end = self.source_end;
        let (eraser, new_log, report) = (&mut self.eraser, &mut self.new_log, &mut self.report);
        let mut apply_flushed = |first: Option<u64>, kept: &mut Vec<Record>| {
            if let Some(first) = first {
                for (seq, record) in (first..).zip(kept.drain(..)) {
                    state.apply(seq, &record);
                }
            }
        };
        let quiet: super::replay::Progress<'_> = &|_, _| {};
        super::replay::replay_records_until(live, self.source_end, until, ("", quiet), |seq, record| {
            report.records_before += 1;
            copied += 1;
            end = seq + 1;
            eraser.note_later(seq, &record);
            if let Some(kept) = eraser.keep(seq, record) {
                batcher.push(&kept);
                kept_records.push(kept);
                let first = batcher.flush(new_log, report, false);
                apply_flushed(first, &mut kept_records);
            }
        })?;
        let first = batcher.flush(new_log, report, true);
        apply_flushed(first, &mut kept_records);
        batcher.finish(new_log, report)?;
        self.source_end = end;
        Ok(copied)
    }

    /// The live log's sequence number from which records are still to be
    /// copied in.
    pub(super) fn copied_until(&self) -> u64 {
        self.source_end
    }
}

/// The registry, usage and audience memberships of a new `cover` from the
/// records before `until` ([`State::for_cover`]: the rest of the state is
/// not replayed).
pub(super) fn cover_of_log_until(log_dir: &Path, until: u64, cover: Cover) -> Result<State, PipelineError> {
    replayed(log_dir, until, State::for_cover(cover))
}

/// `state` with the records of `log_dir` before `until` applied.
fn replayed(log_dir: &Path, until: u64, mut state: State) -> Result<State, PipelineError> {
    super::replay::replay_records_until(log_dir, 0, until, ("", &|_, _| {}), |seq, record| state.apply(seq, &record))?;
    state.settle_replayed();
    Ok(state)
}

/// State from the whole log in `log_dir` alone (no snapshot, no outputs),
/// holding the usage of the people `cover` covers.
pub(super) fn state_of_log(log_dir: &Path, cover: Cover) -> Result<State, PipelineError> {
    replayed(log_dir, u64::MAX, State::covering(cover))
}

/// Swaps the new log in: drops the snapshot and marks the outputs owed
/// first, then renames, then moves the old log to [`REMOVING_DIR`] for
/// [`remove_old`].
pub(super) fn swap(data_dir: &Path) -> Result<(), PipelineError> {
    let log_dir = data_dir.join(LOG_DIR);
    // Before the swap: drop the snapshot (it holds the erased pseudonyms and
    // numbers the old log's records; were it kept, a crash after the swap
    // would load it over the new log), and mark the outputs owed, so a crash
    // from here on leaves the next start to finish the vault, feeds and
    // audit log (the erasures are gone from the new log: nothing else would).
    remove_snapshot(data_dir)?;
    let owed = data_dir.join(OUTPUTS_OWED);
    crate::log::fsmode::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&owed)
        .and_then(|file| file.sync_all())
        .map_err(io(&owed))?;
    sync_dir(data_dir)?;
    // Swap: log -> log.old, log.new -> log, then drop the old log.
    let (new_dir, old_dir) = (data_dir.join(NEW_DIR), data_dir.join(OLD_DIR));
    crate::failpoint::reach("compact.before_swap");
    std::fs::rename(&log_dir, &old_dir).map_err(io(&log_dir))?;
    crate::failpoint::reach("compact.mid_swap");
    std::fs::rename(&new_dir, &log_dir).map_err(io(&new_dir))?;
    sync_dir(data_dir)?;
    crate::failpoint::reach("compact.after_swap");
    std::fs::rename(&old_dir, data_dir.join(REMOVING_DIR)).map_err(io(&old_dir))?;
    sync_dir(data_dir)
}

/// Removes the old log a [`swap`] left (freeing a log's blocks takes a
/// while: the server's writer has this done on another thread).
pub(super) fn remove_old(data_dir: &Path) -> Result<(), PipelineError> {
    let removing = data_dir.join(REMOVING_DIR);
    if removing.exists() {
        std::fs::remove_dir_all(&removing).map_err(io(&removing))?;
        sync_dir(data_dir)?;
    }
    Ok(())
}

/// Removes the snapshot, durably (state is then rebuilt from the log).
fn remove_snapshot(data_dir: &Path) -> Result<(), PipelineError> {
    let state_dir = data_dir.join(STATE_DIR);
    let snapshot = state_dir.join(crate::state::SNAPSHOT_FILE);
    if snapshot.exists() {
        std::fs::remove_file(&snapshot).map_err(io(&snapshot))?;
        sync_dir(&state_dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), PipelineError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{decode_record, Event, MessageKind, Region};
    use crate::state::State;

    fn who(k: u32) -> Pseudonym {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&blake3::hash(&k.to_le_bytes()).as_bytes()[..16]);
        Pseudonym::from_stored(bytes)
    }

    /// One random event of one of `people` people, deletions among them.
    fn random_record(rng: &mut fastrand::Rng, people: u32, ts_ms: i64) -> Record {
        let other = |rng: &mut fastrand::Rng| who(rng.u32(..people));
        let body = match rng.u8(..10) {
            0 | 1 => EventBody::Session { device: format!("d{}", rng.u8(..3)) },
            2..=4 => {
                EventBody::Message { to: Recipient::Subject(other(rng)), kind: MessageKind::Text, link_domain: None }
            }
            5 => EventBody::Contacts { contacts: (0..rng.usize(..5)).map(|_| other(rng)).collect() },
            6 => EventBody::Block { target: other(rng) },
            7 => EventBody::Report { target: other(rng), reason: "spam".to_string() },
            _ if rng.u8(..4) == 0 => EventBody::DeleteAccount,
            _ => EventBody::Session { device: "d0".to_string() },
        };
        Record::Event(Event { ts_ms, subject: who(rng.u32(..people)), region: Region(*b"IN"), body })
    }

    /// What state says about each of `people` (a snapshot's bytes follow
    /// the order of randomly seeded hash maps, so two equal states need
    /// not encode alike): its counters, each person's registry entry,
    /// book, blocks, active days, in-degree and abuse status.
    fn fingerprint(state: &State, people: u32) -> Vec<String> {
        let mut out = vec![format!(
            "seq {} events {} erasures {} subjects {} actions {}",
            state.next_seq,
            state.events_applied,
            state.housekeeping.erasures_pending,
            state.subjects.len(),
            state.abuse.actions().len()
        )];
        let pseudonym = |subject: u32| state.subjects.get(subject).map(|record| record.pseudonym);
        for k in 0..people {
            let Some(subject) = state.subjects.lookup(&who(k)) else {
                out.push(format!("{k}: unknown"));
                continue;
            };
            let record = state.subjects.get(subject).map(|r| (r.region, r.first_seen_ms));
            let book: Vec<_> = state.graph.book(subject).iter().map(pseudonym).collect();
            let blocks: Vec<u32> = (0..people)
                .filter(|&j| state.subjects.lookup(&who(j)).is_some_and(|o| state.graph.blocked_either_way(subject, o)))
                .collect();
            out.push(format!(
                "{k}: {record:?} book {book:?} blocks {blocks:?} days {:?} in {} status {:?}",
                state.usage.active_days_of(subject),
                state.graph.in_degree(subject),
                state.abuse.status(subject),
            ));
        }
        out
    }

    fn append(log: &mut Log, records: &[Record]) {
        let mut framed = Vec::new();
        for record in records {
            match record {
                Record::Event(event) => frame_with(&mut framed, |out| encode_event(event, out)),
                Record::Control(control) => frame_with(&mut framed, |out| encode_control(control, out)),
            }
        }
        if !records.is_empty() {
            log.append_framed(&framed, records.len() as u64).expect("append");
        }
    }

    fn records_of(log_dir: &Path) -> Vec<Record> {
        let mut out = Vec::new();
        crate::log::replay(log_dir, 0, |_, payload| {
            out.push(decode_record(payload).expect("decode"));
            Ok(())
        })
        .expect("replay");
        out
    }

    /// The server's compaction rewrites a copy of the log while the writer
    /// appends more (deletions among them, of people erased in the copy and
    /// of others), then copies those in. Its state equals a rebuild of the
    /// new log, and one more compaction leaves exactly what one compaction
    /// of the whole log leaves: nothing of the copy's erased, and every
    /// later deletion still there for the next compaction to take.
    #[test]
    fn a_rewrite_caught_up_with_later_records_is_a_compaction_of_the_whole_log() {
        for seed in 0..32 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let temp = tempfile::tempdir().expect("tempdir");
            let (data, whole) = (temp.path().join("data"), temp.path().join("whole"));
            let people = 3 + rng.u32(..10);
            let total = 40 + rng.usize(..400);
            let mut records: Vec<Record> =
                (0..total).map(|n| random_record(&mut rng, people, 1_767_225_600_000 + n as i64)).collect();
            let split = 1 + rng.usize(..total - 1);
            // The copy holds a deletion, so there is something to rewrite.
            let deleted = who(0);
            records.insert(
                split - 1,
                Record::Event(Event {
                    ts_ms: 1_767_225_600_000,
                    subject: deleted,
                    region: Region(*b"IN"),
                    body: EventBody::DeleteAccount,
                }),
            );
            let (before, after) = records.split_at(split);

            let segment_bytes = 512 + rng.u64(..4096);
            let mut live = Log::open(&data.join(LOG_DIR), segment_bytes).expect("log");
            append(&mut live, before);
            take_source(&live, &data).expect("source");
            // Group ends of the live log after the copy: the thread copies
            // up to one of them, the writer the rest.
            let mut ends = vec![live.next_seq()];
            for chunk in after.chunks(1 + rng.usize(..20)) {
                append(&mut live, chunk);
                ends.push(live.next_seq());
            }
            let until = ends[rng.usize(..ends.len())];
            let Rewrite::Written(mut written) =
                Rewrite::of_source(&data, segment_bytes, &[], &|_, _| {}).expect("rewrite")
            else {
                panic!("seed {seed}: the copy holds a deletion");
            };
            assert!(!data.join(SOURCE_DIR).exists(), "the copy is removed once read");
            let mut state = written.rebuild(&data, Cover::All).expect("rebuild");
            // What the compaction's thread writes as the new log's snapshot.
            let snapshot = crate::state::encode_snapshot(&state).expect("snapshot");
            let by_thread = written.catch_up_until(&data.join(LOG_DIR), &mut state, until).expect("thread");
            assert_eq!(written.copied_until(), until, "seed {seed}");
            let copied = by_thread + written.catch_up(&data.join(LOG_DIR), &mut state).expect("catch up");
            assert_eq!(copied, after.len() as u64, "seed {seed}");
            assert_eq!(written.copied_until(), live.next_seq(), "seed {seed}");
            drop((written, live));
            swap(&data).expect("swap");
            remove_old(&data).expect("remove the old log");
            let rebuilt = state_of_log(&data.join(LOG_DIR), Cover::All).expect("state");
            assert_eq!(
                fingerprint(&state, people),
                fingerprint(&rebuilt, people),
                "seed {seed}: the caught-up state is not the new log's"
            );
            // A start from the thread's snapshot replays what was copied in
            // after it, and gets the same state.
            let mut resumed = crate::state::decode_snapshot(&snapshot).expect("decode");
            let from = resumed.next_seq;
            super::super::replay::replay_records(&data.join(LOG_DIR), from, |seq, record| resumed.apply(seq, &record))
                .expect("replay");
            resumed.settle_replayed();
            assert_eq!(
                fingerprint(&resumed, people),
                fingerprint(&state, people),
                "seed {seed}: the thread's snapshot and a replay of the records copied after it"
            );

            let mut reference = Log::open(&whole.join(LOG_DIR), segment_bytes).expect("log");
            append(&mut reference, &records);
            drop(reference);
            compact_log(&whole, segment_bytes, &[]).expect("compact whole");
            compact_log(&data, segment_bytes, &[]).expect("compact again");
            assert_eq!(records_of(&data.join(LOG_DIR)), records_of(&whole.join(LOG_DIR)), "seed {seed}");
        }
    }
}
