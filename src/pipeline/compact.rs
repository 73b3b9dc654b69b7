//! Log compaction for erasure: rewrite the log without erased subjects.
//!
//! Owns: finding every `delete_account` in the log, writing a new log in
//! which each deleted subject's records up to its deletion are gone and
//! every reference to it in other people's records (message recipient,
//! address-book entry, report or block target) is scrubbed, swapping the new
//! log in atomically, and finishing or undoing a swap a crash interrupted.
//! Never: keeps a byte of an erased pseudonym in the new log, or loses a
//! record of anyone else.

use std::collections::HashMap;
use std::path::Path;

use super::{PipelineError, LOG_DIR, STATE_DIR};
use crate::contract::{encode_control, encode_event, Control, ControlBody, EventBody, Pseudonym, Recipient, Record};
use crate::log::{frame_with, Log, LogError};

/// Where the new log is written before the swap.
const NEW_DIR: &str = "log.new";
/// Where the old log goes during the swap.
const OLD_DIR: &str = "log.old";
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

/// Finishes or undoes a swap interrupted by a crash. Safe to call always.
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
    for leftover in [new, old] {
        if leftover.exists() {
            std::fs::remove_dir_all(&leftover).map_err(io(&leftover))?;
        }
    }
    Ok(())
}

/// Rewrites the log in `data_dir` without erased subjects and removes the
/// snapshot (state must be rebuilt from the new log). `preamble` (the
/// security feed gaps of the state being compacted) is written first, and
/// replaces any gaps record of an earlier compaction. The caller holds the
/// data dir exclusively (the writer thread, or `proviso compact` with the lock).
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
    let log_dir = data_dir.join(LOG_DIR);
    let mut report = CompactReport::default();
    // Pass 1: the last deletion of each subject.
    let mut deleted_at: HashMap<Pseudonym, u64> = HashMap::new();
    // The first event of a person's own after their last deletion: a new life.
    let mut reborn_at: HashMap<Pseudonym, u64> = HashMap::new();
    report.bytes_before = Log::open(&log_dir, segment_bytes)?.size_bytes();
    super::replay::replay_records_reporting(&log_dir, 0, ("finding the erased", progress), |seq, record| {
        report.records_before += 1;
        if let Record::Event(event) = record {
            if event.body == EventBody::DeleteAccount {
                deleted_at.insert(event.subject, seq);
                reborn_at.remove(&event.subject);
            } else if deleted_at.contains_key(&event.subject) {
                reborn_at.entry(event.subject).or_insert(seq);
            }
        }
    })?;
    if deleted_at.is_empty() {
        report.records_after = report.records_before;
        report.bytes_after = report.bytes_before;
        return Ok(report);
    }
    report.erased_subjects = deleted_at.len() as u64;
    let erased = |pseudonym: &Pseudonym, seq: u64| deleted_at.get(pseudonym).is_some_and(|&at| seq <= at);
    // Cluster mode's records about a person may land after their deletion
    // (decided or minted by another node just before it): until the person
    // comes back, they belong to the erased life too.
    let erased_life = |pseudonym: &Pseudonym, seq: u64| {
        erased(pseudonym, seq)
            || (deleted_at.contains_key(pseudonym) && reborn_at.get(pseudonym).is_none_or(|&back| seq < back))
    };
    let scrub = |pseudonym: &mut Pseudonym, seq: u64| {
        if erased(pseudonym, seq) {
            *pseudonym = Pseudonym::ERASED;
        }
    };

    // Pass 2: write the new log.
    let new_dir = data_dir.join(NEW_DIR);
    if new_dir.exists() {
        std::fs::remove_dir_all(&new_dir).map_err(io(&new_dir))?;
    }
    // On a full disk the partial new log holds space the live log needs:
    // a failed pass removes it (the live log is untouched until the swap).
    let mut write_new_log = || -> Result<(), PipelineError> {
        let mut new_log = Log::open(&new_dir, segment_bytes)?;
        let mut framed = Vec::with_capacity(1 << 20);
        let mut pending = 0u64;
        for control in preamble {
            frame_with(&mut framed, |out| encode_control(control, out));
            pending += 1;
        }
        let mut write_error: Option<LogError> = None;
        super::replay::replay_records_reporting(&log_dir, 0, ("writing the new log", progress), |seq, record| {
            let kept = match record {
                Record::Event(mut event) => {
                    if erased(&event.subject, seq) {
                        None
                    } else {
                        match &mut event.body {
                            EventBody::Message { to: Recipient::Subject(to), .. } => scrub(to, seq),
                            EventBody::Report { target, .. } | EventBody::Block { target } => scrub(target, seq),
                            EventBody::Contacts { contacts } => contacts.retain(|c| !erased(c, seq)),
                            _ => {}
                        }
                        Some(Record::Event(event))
                    }
                }
                Record::Control(control) => match &control.body {
                    ControlBody::Decision { subject, .. } if erased(subject, seq) => None,
                    // With the pseudonym key a nonce derives the destroyed secret.
                    ControlBody::SecretMinted { subject, .. } if erased_life(subject, seq) => None,
                    // Its outputs are written (and scrubbed with the audit
                    // log and feeds); the record would keep the pseudonym.
                    ControlBody::Disclosed(disclosed)
                        if disclosed.people.iter().any(|person| erased_life(person, seq)) =>
                    {
                        None
                    }
                    ControlBody::SecurityFeedGaps { .. } => None,
                    _ => Some(Record::Control(control)),
                },
            };
            match kept {
                Some(Record::Event(event)) => frame_with(&mut framed, |out| encode_event(&event, out)),
                Some(Record::Control(control)) => frame_with(&mut framed, |out| encode_control(&control, out)),
                None => return,
            }
            pending += 1;
            if framed.len() >= 1 << 20 {
                if let Err(error) = new_log.append_framed(&framed, pending) {
                    write_error.get_or_insert(error);
                }
                report.bytes_after += framed.len() as u64;
                report.records_after += pending;
                framed.clear();
                pending = 0;
            }
        })?;
        if pending > 0 {
            new_log.append_framed(&framed, pending)?;
            report.bytes_after += framed.len() as u64;
            report.records_after += pending;
        }
        if let Some(error) = write_error {
            return Err(error.into());
        }
        Ok(())
    };
    if let Err(error) = write_new_log() {
        let _ = std::fs::remove_dir_all(&new_dir);
        return Err(error);
    }

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
    let old_dir = data_dir.join(OLD_DIR);
    crate::failpoint::reach("compact.before_swap");
    std::fs::rename(&log_dir, &old_dir).map_err(io(&log_dir))?;
    crate::failpoint::reach("compact.mid_swap");
    std::fs::rename(&new_dir, &log_dir).map_err(io(&new_dir))?;
    sync_dir(data_dir)?;
    crate::failpoint::reach("compact.after_swap");
    std::fs::remove_dir_all(&old_dir).map_err(io(&old_dir))?;
    sync_dir(data_dir)?;
    Ok(report)
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
