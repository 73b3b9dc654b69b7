//! The disclosure audit log: every time a subject's data leaves proviso to a
//! partner, one hash-chained record says who got it, for what purpose, when
//! and about whom (as subject ids, never numbers).
//!
//! Owns: `audit/disclosures.log` in the data dir (NDJSON, one record per
//! line, each carrying the hash of the previous one), appending durably
//! before the response leaves, the index of record offsets by handle
//! (`index.rs`: sealed runs on disk, the newest pairs in memory) for
//! reading a subject's disclosures back without the append lock, an
//! erasure's scrub (in place through the index and `journal.rs`, or of the
//! whole log), `verify`, which names the first altered, removed or
//! reordered record, and the chain's [`Head`], which an operator keeps
//! elsewhere to prove later that the log still extends it.
//! Never: deletes a past record or changes a byte of one other than an
//! erased person's handle (replaced by its digest, which the hash commits
//! to either way); scans the whole log under the append lock.

mod by_subject;
mod index;
mod journal;
mod runs;

use index::Resume;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Sub-directory of the data dir holding the audit log.
pub const AUDIT_DIR: &str = "audit";
/// The audit log file.
pub const AUDIT_FILE: &str = "disclosures.log";
/// `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One disclosure for [`AuditLog::append_history`]: what
/// [`AuditLog::append`] takes.
pub struct HistoryRecord {
    pub at_ms: i64,
    pub recipient: String,
    pub purpose: String,
    pub kind: String,
    pub subjects: Vec<String>,
}

/// One disclosure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    /// Wall-clock time, epoch milliseconds.
    pub at_ms: i64,
    /// Who received it, e.g. `partner:friendnet`.
    pub recipient: String,
    pub purpose: String,
    /// What was disclosed: `security_feed`, `suggestions`, `audience_members`.
    pub kind: String,
    /// `r_` handles of the people involved; in a version-2 record, the
    /// handle of a person erased since is replaced by its digest (`d_`),
    /// which the hash commits to either way.
    pub subjects: Vec<String>,
    /// Hash of the previous record (hex).
    pub prev: String,
    /// BLAKE3 of `prev` and this record's fields (hex).
    pub hash: String,
    /// Record version: absent (1) in records written before erasure could
    /// scrub handles; 2: the hash covers each subject's digest, not the
    /// handle itself, so a handle can be removed without breaking the chain.
    #[serde(default = "version_1", skip_serializing_if = "is_version_1")]
    pub v: u8,
}

fn version_1() -> u8 {
    1
}

fn is_version_1(v: &u8) -> bool {
    *v == 1
}

/// Whether a scrub replaces `subject` in a version-2 record: a handle (not
/// already a digest) that `keep` refuses.
fn scrubs(subject: &str, keep: &dyn Fn(&str) -> bool) -> bool {
    !subject.starts_with("d_") && !keep(subject)
}

/// The digest a version-2 record's hash commits to for one subject: the
/// handle's `d_` form, or the entry itself when already scrubbed.
pub fn subject_digest(subject: &str) -> String {
    if subject.starts_with("d_") {
        return subject.to_string();
    }
    let hash = blake3::derive_key("proviso 2026 audit subject digest v1", subject.as_bytes());
    crate::contract::prefixed_hex("d_", &hash[..16])
}

impl Resume {
    /// The chain's start: no record read yet.
    fn genesis() -> Resume {
        Resume { offset: 0, records: 0, last_hash: GENESIS.to_string() }
    }
}

impl AuditRecord {
    /// How many of the record's handles a scrub with `keep` replaces.
    fn handles_owed(&self, keep: &dyn Fn(&str) -> bool) -> usize {
        if self.v < 2 {
            return 0;
        }
        self.subjects.iter().filter(|s| scrubs(s, keep)).count()
    }

    /// Replaces each handle a scrub with `keep` owes by its digest (in a
    /// version-2 record: its hash commits to the digest either way);
    /// returns how many.
    fn scrub_handles(&mut self, keep: &dyn Fn(&str) -> bool) -> usize {
        if self.v < 2 {
            return 0;
        }
        let mut replaced = 0;
        for subject in self.subjects.iter_mut().filter(|s| scrubs(s, keep)) {
            *subject = subject_digest(subject);
            replaced += 1;
        }
        replaced
    }

    /// What the index takes of the record.
    fn indexed(&self) -> index::Indexed<'_> {
        index::Indexed { seq: self.seq, hash: &self.hash, purpose: &self.purpose, subjects: &self.subjects }
    }

    fn compute_hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for field in [
            self.prev.as_str(),
            &self.seq.to_string(),
            &self.at_ms.to_string(),
            &self.recipient,
            &self.purpose,
            &self.kind,
            &if self.v >= 2 {
                self.subjects.iter().map(|s| subject_digest(s)).collect::<Vec<_>>().join(",")
            } else {
                self.subjects.join(",")
            },
        ] {
            hasher.update(&(field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("audit log {path}: {problem}")]
    Broken { path: String, problem: String },
}

/// The head of the chain: how many records it holds and the last one's
/// hash. Written `COUNT:HASH` (`proviso audit head`), so an operator can keep
/// it where the data dir's writers cannot and later check that the log still
/// extends it ([`verify_extends`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub records: u64,
    /// Hash of record `records - 1` (hex), or the genesis hash when empty.
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.records, self.hash)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a head is COUNT:HASH as printed by `proviso audit head` (a record count, a colon, 64 hex digits)")]
pub struct HeadParseError;

impl std::str::FromStr for Head {
    type Err = HeadParseError;

    fn from_str(text: &str) -> Result<Head, HeadParseError> {
        let (count, hash) = text.trim().split_once(':').ok_or(HeadParseError)?;
        let records = count.parse::<u64>().map_err(|_| HeadParseError)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HeadParseError);
        }
        Ok(Head { records, hash: hash.to_ascii_lowercase() })
    }
}

struct Tail {
    file: File,
    next_seq: u64,
    last_hash: String,
    /// Length of the file: where the next record starts.
    end: u64,
    /// Set when a failed append could not be cut back off the file: every
    /// later append is refused (it would continue a broken line) until
    /// restart, whose open cuts the torn line.
    broken: Option<String>,
    /// Set when the check of the records before the index's last run (run
    /// after start-up, off its path) found one altered: no more
    /// disclosures are recorded on a broken chain.
    damaged: Option<String>,
}

/// The open audit log. Appends are serialized by the `tail` mutex; reads
/// (a subject's records, counts) go through the in-memory index and never
/// take it, so a report on a long log cannot hold up a disclosure.
pub struct AuditLog {
    path: PathBuf,
    tail: Arc<Mutex<Tail>>,
    /// Updated after each append, under the append lock (lock order:
    /// merging, then tail, then index); readers hold it only to copy what
    /// they need.
    index: Arc<Mutex<index::Index>>,
    /// Held by the thread merging index runs, by a scrub (the whole-log one
    /// replaces the index whole; the one in place rewrites handles), by a
    /// backup's copy of the log and by a second read of a record the check
    /// after an open found altered: none of them reads a handle half
    /// rewritten.
    merging: Arc<Mutex<()>>,
    /// Set when the check after an open found an index run altered on
    /// disk: lookups may miss records, so a subject's records are found by
    /// reading the log and an erasure's scrub goes over the whole log, until
    /// a restart indexes the run's records again.
    suspect: Arc<AtomicBool>,
}

/// The directory of the index's runs, in the audit dir.
const INDEX_DIR: &str = "index";
/// A scrub's new index, made beside the one in use.
const NEW_INDEX_DIR: &str = "index.new";
/// Written into the new index once it is complete.
const COMPLETE: &str = "complete";

impl AuditLog {
    /// Opens (or creates) the log in `data_dir`: the index's runs cover
    /// the log up to their end, and only the records after it are read,
    /// checked against the chain and indexed (so an open costs the records
    /// since the last run, not the whole history). The records the runs
    /// cover are checked against the chain too, on a thread after the open:
    /// if one was altered, every later append is refused.
    pub fn open(data_dir: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open_sealing_every(data_dir, index::SEAL_PAIRS)
    }

    /// [`AuditLog::open`], sealing a run every `pairs` (record, handle)
    /// pairs: tests use small runs.
    #[doc(hidden)]
    pub fn open_sealing_every(data_dir: &Path, pairs: usize) -> Result<AuditLog, AuditError> {
        let dir = data_dir.join(AUDIT_DIR);
        let path = dir.join(AUDIT_FILE);
        let io = |source| AuditError::Io { path: path.display().to_string(), source };
        crate::log::fsmode::create_private_dir(&dir).map_err(io)?;
        let patched = journal::settle(&dir, &path).map_err(io)?;
        if patched > 0 {
            tracing::info!(patched, "Finished a scrub in place a crash interrupted.");
        }
        settle_index_dirs(&dir).map_err(io)?;
        let index_dir = dir.join(INDEX_DIR);
        let runs = runs::open_runs(&index_dir, |covers| log_holds(&path, covers)).map_err(io)?;
        let mut index = index::Index::new(index_dir, pairs, runs);
        let resume = index.resume().unwrap_or_else(Resume::genesis);
        let checked_by_open = resume.offset;
        let walked = walk_from(&path, &resume, None, None, &mut |offset, record| {
            index.add(offset, record.indexed());
        })?;
        let (next_seq, last_hash, end) = match walked {
            Walked { verified: Verified { records, last_hash, first_bad: None, .. }, end, .. } => (records, last_hash, end),
            Walked { verified: Verified { first_bad: Some(problem), records, .. }, .. } => {
                return Err(AuditError::Broken {
                    path: path.display().to_string(),
                    problem: format!(
                        "{problem}; the {records} records before it are intact. proviso will not start on a broken \
                         disclosure record: `proviso audit verify` names it, and docs/reliability.md#faults-from-the-disk \
                         says what to do"
                    ),
                })
            }
        };
        let file = crate::log::fsmode::private_file().create(true).append(true).open(&path).map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        if length > end {
            // A last line a crash cut short: its disclosure was never made
            // (the answer follows the fsync).
            tracing::warn!(path = %path.display(), cut = length - end, "Cut a torn last audit record.");
            file.set_len(end).and_then(|()| file.sync_all()).map_err(io)?;
        } else if walked.unterminated {
            // A whole last record whose newline was not written: kept (a
            // record of a disclosure that may not have been made is harmless).
            (&file).write_all(b"\n").and_then(|()| file.sync_all()).map_err(io)?;
        }
        let end = file.metadata().map_err(io)?.len();
        let tail = Tail { file, next_seq, last_hash, end, broken: None, damaged: None };
        let log = AuditLog {
            path,
            tail: Arc::new(Mutex::new(tail)),
            index: Arc::new(Mutex::new(index)),
            merging: Arc::new(Mutex::new(())),
            suspect: Arc::new(AtomicBool::new(false)),
        };
        if checked_by_open > 0 {
            log.check_sealed_records_in_background(checked_by_open);
        }
        log.merge_in_background();
        Ok(log)
    }

    /// Checks the chain over the records before `end` (those the open took
    /// from the index's runs) on a thread: a record altered there refuses
    /// every later append, as an open that found it would have.
    fn check_sealed_records_in_background(&self, end: u64) {
        let (path, tail, merging) = (self.path.clone(), Arc::clone(&self.tail), Arc::clone(&self.merging));
        let (runs, suspect) =
            (self.index.lock().unwrap_or_else(|p| p.into_inner()).run_list(), Arc::clone(&self.suspect));
        let index_dir = self.audit_dir().join(INDEX_DIR);
        let spawned = std::thread::Builder::new().name("audit-check".into()).spawn(move || {
            check_runs(&runs, &index_dir, &suspect);
            // Only the sealed range: the open checked the records after it.
            let check = || {
                let checked = walk_range(&path, &Resume::genesis(), Some(end), &mut |_, _| {});
                match checked {
                    Ok(Walked { verified: Verified { first_bad: Some(problem), .. }, .. }) => Some(problem),
                    Ok(_) => None,
                    Err(error) => Some(error.to_string()),
                }
            };
            if check().is_none() {
                return;
            }
            // A scrub in place may have been rewriting a handle as it was
            // read: what counts is a second read with no scrub running.
            let problem = {
                let _merging = merging.lock().unwrap_or_else(|p| p.into_inner());
                check()
            };
            let Some(problem) = problem else { return };
            tracing::error!(path = %path.display(), %problem, "The audit log's chain is broken; no more disclosures are recorded until it is restored (docs/reliability.md#faults-from-the-disk).");
            tail.lock().unwrap_or_else(|p| p.into_inner()).damaged = Some(problem);
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "Could not start the audit chain check.");
        }
    }

    /// Whether the check after the open found an index run altered.
    pub fn index_suspect(&self) -> bool {
        self.suspect.load(Ordering::SeqCst)
    }

    /// Merges index runs on a thread while a merge is due (one thread at a
    /// time; a seal that finds one running leaves it to that thread's next
    /// round, or the next seal).
    fn merge_in_background(&self) {
        if self.index.lock().unwrap_or_else(|p| p.into_inner()).merge_plan().is_none() {
            return;
        }
        let (index, merging) = (Arc::clone(&self.index), Arc::clone(&self.merging));
        let spawned = std::thread::Builder::new().name("audit-merge".into()).spawn(move || {
            let _merging = merging.lock().unwrap_or_else(|p| p.into_inner());
            merge_while_due(&index);
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "Could not start an audit index merge.");
        }
    }

    /// Makes every merge of index runs due now, on this thread (tests: a
    /// merge thread may not have started yet).
    #[doc(hidden)]
    pub fn wait_for_merges(&self) {
        let _merging = self.merging.lock().unwrap_or_else(|p| p.into_inner());
        merge_while_due(&self.index);
    }

    /// Index runs in use, and (record, handle) pairs held in memory.
    pub fn index_shape(&self) -> (usize, usize) {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        (index.runs(), index.unsealed_pairs())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records the log holds.
    pub fn records(&self) -> u64 {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).next_seq
    }

    /// Appends one disclosure durably (fdatasync) and returns its sequence.
    pub fn append(
        &self,
        at_ms: i64,
        recipient: &str,
        purpose: &str,
        kind: &str,
        subjects: Vec<String>,
    ) -> Result<u64, AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(problem) = &tail.damaged {
            return Err(AuditError::Broken { path: self.path.display().to_string(), problem: problem.clone() });
        }
        if let Some(cause) = &tail.broken {
            return Err(self.io(std::io::Error::other(format!(
                "an earlier append failed and could not be cut off the file ({cause}); restart proviso"
            ))));
        }
        let (record, line) = self.next_line(&tail, at_ms, recipient, purpose, kind, subjects)?;
        let written = crate::failpoint::write_all("audit.write", &mut tail.file, &line)
            .and_then(|()| crate::failpoint::check("audit.fsync"))
            .and_then(|()| tail.file.sync_data());
        if let Err(error) = written {
            crate::telemetry::StorageFailed { file: "audit" }.emit();
            // A full disk may have taken part of the line: cut it, or the
            // next record would continue it and break the chain.
            if let Err(cut) = tail.file.set_len(tail.end).and_then(|()| tail.file.sync_all()) {
                tracing::error!(path = %self.path.display(), %cut, "Could not cut a failed audit append; appends refused until restart.");
                tail.broken = Some(cut.to_string());
            }
            return Err(self.io(error));
        }
        let offset = tail.end;
        tail.end += line.len() as u64;
        tail.next_seq += 1;
        let sealed = self.index.lock().unwrap_or_else(|p| p.into_inner()).add(offset, record.indexed());
        tail.last_hash = record.hash;
        drop(tail);
        if sealed {
            self.merge_in_background();
        }
        Ok(record.seq)
    }

    /// The record that continues the chain after `tail`, and its line.
    fn next_line(
        &self,
        tail: &Tail,
        at_ms: i64,
        recipient: &str,
        purpose: &str,
        kind: &str,
        subjects: Vec<String>,
    ) -> Result<(AuditRecord, Vec<u8>), AuditError> {
        let mut record = AuditRecord {
            seq: tail.next_seq,
            at_ms,
            recipient: recipient.to_string(),
            purpose: purpose.to_string(),
            kind: kind.to_string(),
            subjects,
            prev: tail.last_hash.clone(),
            hash: String::new(),
            v: 2,
        };
        record.hash = record.compute_hash();
        let mut line = serde_json::to_vec(&record).map_err(|e| self.io(std::io::Error::other(e)))?;
        line.push(b'\n');
        Ok((record, line))
    }

    /// Appends many disclosures with one fsync at the end, for building a
    /// long history to measure (`proviso bench audit-history`): not for
    /// disclosures a partner is answered about, which [`AuditLog::append`]
    /// makes durable one by one. `report` gets the count written so far.
    pub fn append_history(
        &self,
        disclosures: impl Iterator<Item = HistoryRecord>,
        report: &dyn Fn(u64),
    ) -> Result<u64, AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let file = tail.file.try_clone().map_err(|e| self.io(e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut sealed = false;
        let mut written = 0;
        let mut result = Ok(());
        for disclosure in disclosures {
            let HistoryRecord { at_ms, recipient, purpose, kind, subjects } = disclosure;
            let (record, line) = self.next_line(&tail, at_ms, &recipient, &purpose, &kind, subjects)?;
            if let Err(error) = out.write_all(&line) {
                result = Err(error);
                break;
            }
            sealed |= index.add(tail.end, record.indexed());
            tail.end += line.len() as u64;
            tail.next_seq += 1;
            tail.last_hash = record.hash;
            written += 1;
            if written % 4096 == 0 {
                report(written);
            }
        }
        let synced = result
            .and_then(|()| out.into_inner().map_err(|error| error.into_error()))
            .and_then(|file| file.sync_data());
        if let Err(error) = synced {
            // Part of the history may be on file and part not: no append
            // may continue a chain that is not the file's.
            tail.broken = Some(error.to_string());
            return Err(self.io(error));
        }
        report(written);
        drop((index, tail));
        if sealed {
            self.merge_in_background();
        }
        Ok(written)
    }

    /// Replaces, in every version-2 record, each handle `keep` refuses (the
    /// people erased since) by its digest: the records and their chain stay
    /// (same hashes, so a kept head still verifies), no byte of the handle
    /// does. Version-1 records keep their handles, which erasure has made
    /// untraceable (their secret is destroyed). Returns the handles replaced.
    ///
    /// Two passes over the log, one record in memory at a time: the first
    /// (read only) finds whether any handle is owed, and the second writes
    /// every record aside as it reads it, then fsyncs and renames it over.
    /// Both read the records on file when the scrub began without the
    /// append lock; the records appended meanwhile are written aside under
    /// it, just before the rename, so an append waits for those, not for
    /// the whole log. The log keeps every disclosure for good, so holding
    /// it whole in memory (as this did before) would make an erasure's
    /// memory grow with all of history, and holding the append lock
    /// throughout would stop every disclosure for as long as the log takes
    /// to rewrite (bench/README.md, "The audit log at a year's scale").
    pub fn scrub(&self, keep: impl Fn(&str) -> bool) -> Result<usize, AuditError> {
        // One scrub or merge at a time: a merge would write runs into the
        // index this replaces.
        let _merging = self.merging.lock().unwrap_or_else(|p| p.into_inner());
        self.settle_journal()?;
        // The records on file now are read and written aside without the
        // append lock (appends go on meanwhile); those appended since are
        // added under it at the end, so a disclosure waits for those, not
        // for the whole log.
        let upto = {
            let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            Resume { offset: tail.end, records: tail.next_seq, last_hash: tail.last_hash.clone() }
        };
        let mut scrubbed = 0;
        let walked = walk_range(&self.path, &Resume::genesis(), Some(upto.offset), &mut |_, record| {
            scrubbed += record.handles_owed(&keep);
        })?;
        if let Some(problem) = walked.verified.first_bad {
            return Err(AuditError::Broken { path: self.path.display().to_string(), problem });
        }
        if scrubbed == 0 {
            return Ok(0);
        }
        let tmp = self.path.with_extension("log.tmp");
        let tmp_io = |source| AuditError::Io { path: tmp.display().to_string(), source };
        let file =
            crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&tmp).map_err(tmp_io)?;
        let mut out = std::io::BufWriter::new(file);
        let audit_dir = self.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let new_dir = audit_dir.join(NEW_INDEX_DIR);
        let new_io = |source| AuditError::Io { path: new_dir.display().to_string(), source };
        remove_dir_if_there(&new_dir)
            .and_then(|()| crate::log::fsmode::create_private_dir(&new_dir))
            .map_err(new_io)?;
        let (seal_at, generation) = {
            let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            (index.seal_at(), index.generation)
        };
        let mut index = index::Index::new(new_dir.clone(), seal_at, Vec::new());
        index.generation = generation + 1;
        let mut end = 0u64;
        let mut failed = None;
        let rewalked = walk_range(&self.path, &Resume::genesis(), Some(upto.offset), &mut |_, record| {
            rewrite_scrubbed(record, &keep, &mut out, &mut index, &mut end, &mut failed)
        })?;
        if let Some(problem) = rewalked.verified.first_bad {
            return Err(AuditError::Broken { path: self.path.display().to_string(), problem });
        }
        // The bulk reaches the disk before the lock is taken: under it, the
        // fsync covers only the records appended meanwhile.
        if failed.is_none() {
            failed = out.flush().and_then(|()| out.get_ref().sync_data()).err();
        }
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let since = walk_range(&self.path, &upto, Some(tail.end), &mut |_, record| {
            rewrite_scrubbed(record, &keep, &mut out, &mut index, &mut end, &mut failed)
        })?;
        if let Some(problem) = since.verified.first_bad {
            return Err(AuditError::Broken { path: self.path.display().to_string(), problem });
        }
        if let Some(error) = failed {
            return Err(tmp_io(error));
        }
        let file = out.into_inner().map_err(|error| tmp_io(error.into_error()))?;
        file.sync_all().map_err(tmp_io)?;
        // The new index is complete before the log it indexes is put in
        // place: an open finding the mark puts the new index in too, and
        // either index serves either log (their records keep their offsets).
        crate::log::fsmode::private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(new_dir.join(COMPLETE))
            .and_then(|mark| mark.sync_all())
            .and_then(|()| File::open(&new_dir))
            .and_then(|dir| dir.sync_all())
            .map_err(new_io)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        settle_index_dirs(&audit_dir).map_err(|e| self.io(e))?;
        index.moved_to(audit_dir.join(INDEX_DIR));
        tail.file = crate::log::fsmode::private_file().append(true).open(&self.path).map_err(|e| self.io(e))?;
        tail.end = end;
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(scrubbed)
    }

    /// The scrub of an erasure when the vault listed the erased handles'
    /// index keys (`keys`, 4 bytes each): only the records the index says
    /// may name a handle with one of them are read, and in each, every such
    /// handle `keep` refuses is replaced by its digest in place. A digest
    /// is as long as a handle, so every record keeps its length and offset,
    /// and the hash commits to the digest either way, so the chain holds.
    /// The new bytes go to a journal (fsynced) before the first byte of the
    /// log changes; an open after a crash writes them again. Returns the
    /// handles replaced. The same bytes as [`AuditLog::scrub`] when every
    /// handle `keep` refuses has its key in `keys`.
    ///
    /// Costs the records naming those keys, not the log: the erasure bound
    /// holds however long the history grows. The runs of the index keep
    /// the pairs of the replaced handles' keys (32 bits of a hash of a
    /// handle nobody can derive any more) until a full scrub rewrites them.
    pub fn scrub_keys(&self, keys: &[[u8; 4]], keep: impl Fn(&str) -> bool) -> Result<usize, AuditError> {
        let _merging = self.merging.lock().unwrap_or_else(|p| p.into_inner());
        self.settle_journal()?;
        if self.index_suspect() {
            return Err(AuditError::Broken {
                path: self.path.display().to_string(),
                problem: "an index run was altered on disk, so a lookup may miss records; the log is scrubbed whole \
                          until a restart indexes them again"
                    .to_string(),
            });
        }
        let wanted: HashSet<u32> = keys.iter().map(|key| u32::from_le_bytes(*key)).collect();
        // The records on file now, without the append lock; then, under it,
        // any appended meanwhile (a disclosure decided before the erasure
        // and written after), as the whole-log scrub does.
        let upto = self.tail.lock().unwrap_or_else(|p| p.into_inner()).end;
        let mut scrubbed = self.scrub_in_place(&wanted, &keep, |offset| offset < upto)?;
        let _tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        scrubbed += self.scrub_in_place(&wanted, &keep, |offset| offset >= upto)?;
        Ok(scrubbed)
    }

    /// One round of [`AuditLog::scrub_keys`]: the records at the offsets
    /// `within` takes, of those the index holds for `wanted`.
    fn scrub_in_place(
        &self,
        wanted: &HashSet<u32>,
        keep: &dyn Fn(&str) -> bool,
        within: impl Fn(u64) -> bool,
    ) -> Result<usize, AuditError> {
        let (patches, scrubbed) = self.plan_in_place(wanted, keep, within)?;
        self.patch(&patches)?;
        Ok(scrubbed)
    }

    /// The new bytes of the records [`AuditLog::scrub_in_place`] rewrites,
    /// and the handles they replace.
    fn plan_in_place(
        &self,
        wanted: &HashSet<u32>,
        keep: &dyn Fn(&str) -> bool,
        within: impl Fn(u64) -> bool,
    ) -> Result<(Vec<journal::Patch>, usize), AuditError> {
        let lookups: Vec<index::Lookup> = {
            let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            wanted.iter().map(|key| index.lookup_key(*key)).collect()
        };
        let mut offsets = Vec::new();
        for lookup in lookups {
            offsets.extend(lookup.offsets().map_err(|e| self.io(e))?.into_iter().filter(|offset| within(*offset)));
        }
        offsets.sort_unstable();
        offsets.dedup();
        let mut reader = BufReader::new(File::open(&self.path).map_err(|e| self.io(e))?);
        let mut patches = Vec::new();
        let mut scrubbed = 0;
        let mut line = Vec::new();
        for offset in offsets {
            let broken = |problem: &str| AuditError::Broken {
                path: self.path.display().to_string(),
                problem: format!("the record at byte {offset} {problem}"),
            };
            reader.seek(SeekFrom::Start(offset)).map_err(|e| self.io(e))?;
            line.clear();
            reader.read_until(b'\n', &mut line).map_err(|e| self.io(e))?;
            let text = line.strip_suffix(b"\n").ok_or_else(|| broken("is not a whole line"))?;
            let mut record: AuditRecord = serde_json::from_slice(text).map_err(|_| broken("is not an audit record"))?;
            if record.hash != record.compute_hash() {
                return Err(broken("does not match its hash"));
            }
            let changed = record.scrub_handles(&|s| !wanted.contains(&by_subject::key_of(s)) || keep(s));
            if changed == 0 {
                continue;
            }
            let new = serde_json::to_vec(&record).map_err(|e| self.io(std::io::Error::other(e)))?;
            if new.len() != text.len() || record.hash != record.compute_hash() {
                return Err(broken("would change length or hash when scrubbed"));
            }
            // Only the bytes that change: the first to the last that differ.
            let first = new.iter().zip(text).position(|(a, b)| a != b).unwrap_or(0);
            let last = new.iter().zip(text).rposition(|(a, b)| a != b).unwrap_or(first);
            patches.push(journal::Patch {
                offset: offset + first as u64,
                old: text[first..=last].to_vec(),
                bytes: new[first..=last].to_vec(),
            });
            scrubbed += changed;
        }
        Ok((patches, scrubbed))
    }

    /// Writes `patches` into the log through the journal.
    fn patch(&self, patches: &[journal::Patch]) -> Result<(), AuditError> {
        if patches.is_empty() {
            return Ok(());
        }
        let dir = self.audit_dir();
        journal::write(&dir, patches)
            .and_then(|()| journal::apply(&self.path, patches))
            .and_then(|()| journal::remove(&dir))
            .map_err(|e| self.io(e))
    }

    /// Finishes a scrub in place whose journal an earlier call left (its
    /// write or removal failed).
    fn settle_journal(&self) -> Result<(), AuditError> {
        journal::settle(&self.audit_dir(), &self.path).map(drop).map_err(|e| self.io(e))
    }

    fn audit_dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// Copies the records appended so far into `dest_data_dir` (a backup)
    /// and returns how many. The file is opened and its length read under
    /// the append lock, so the copy ends at a whole record; appends go on
    /// meanwhile, and a scrub renaming a new file over reads nothing from
    /// the handle already open.
    pub fn copy_to(&self, dest_data_dir: &Path) -> Result<u64, AuditError> {
        // No scrub in place meanwhile: the copy would hold a handle half
        // rewritten.
        let _merging = self.merging.lock().unwrap_or_else(|p| p.into_inner());
        let (file, end, records) = {
            let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            (File::open(&self.path).map_err(|e| self.io(e))?, tail.end, tail.next_seq)
        };
        let dir = dest_data_dir.join(AUDIT_DIR);
        let target = dir.join(AUDIT_FILE);
        let io = |source| AuditError::Io { path: target.display().to_string(), source };
        crate::log::fsmode::create_private_dir(&dir).map_err(io)?;
        crate::log::copy_prefix_from(file, &target, end).map_err(io)?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(records)
    }

    /// Disclosure records by purpose, since the log began.
    pub fn counts_by_purpose(&self) -> BTreeMap<String, u64> {
        self.index.lock().unwrap_or_else(|p| p.into_inner()).counts_by_purpose()
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io { path: self.path.display().to_string(), source }
    }

    /// Every record naming `subject`, oldest first: read at the offsets the
    /// index holds, without the append lock (an offset is indexed only once
    /// its record is fully written, and a record keeps its place and
    /// length; a scrub in place changes only the hex digits and the `r` of
    /// an erased handle, so a record read meanwhile still parses, and at
    /// most that handle reads as neither the old nor the new one).
    pub fn records_about(&self, subject: &str) -> Result<Vec<AuditRecord>, AuditError> {
        if self.index_suspect() {
            // An index run was altered: the log itself says.
            let mut found = Vec::new();
            walk(&self.path, None, &mut |_, record| {
                if record.subjects.iter().any(|s| s == subject) {
                    found.push(record.clone());
                }
            })?;
            return Ok(found);
        }
        let lookup = self.index.lock().unwrap_or_else(|p| p.into_inner()).lookup(subject);
        let offsets = lookup.offsets().map_err(|e| self.io(e))?;
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let mut reader = BufReader::new(File::open(&self.path).map_err(|e| self.io(e))?);
        let mut found = Vec::with_capacity(offsets.len());
        let mut line = String::new();
        for offset in offsets {
            reader.seek(SeekFrom::Start(offset)).map_err(|e| self.io(e))?;
            line.clear();
            reader.read_line(&mut line).map_err(|e| self.io(e))?;
            let record = serde_json::from_str::<AuditRecord>(&line).map_err(|_| AuditError::Broken {
                path: self.path.display().to_string(),
                problem: format!("no audit record at byte {offset}: the file changed while proviso had it open"),
            })?;
            if record.subjects.iter().any(|s| s == subject) {
                found.push(record);
            }
        }
        Ok(found)
    }
}

/// Writes `record` to a scrub's new log `out` (its handles `keep` refuses
/// replaced by their digests) and indexes it at `end`, which it advances;
/// after a failed write, `failed` holds the error and nothing more is done.
fn rewrite_scrubbed(
    record: &AuditRecord,
    keep: &dyn Fn(&str) -> bool,
    out: &mut impl Write,
    index: &mut index::Index,
    end: &mut u64,
    failed: &mut Option<std::io::Error>,
) {
    if failed.is_some() {
        return;
    }
    let mut record = record.clone();
    record.scrub_handles(keep);
    let written = serde_json::to_vec(&record)
        .map_err(std::io::Error::other)
        .and_then(|line| out.write_all(&line).and_then(|()| out.write_all(b"\n")).map(|()| line.len() + 1));
    match written {
        Ok(length) => {
            index.add(*end, record.indexed());
            *end += length as u64;
        }
        Err(error) => *failed = Some(error),
    }
}

/// Checks each run's file against the hash it ends with; an altered one is
/// deleted (the next open indexes its records again) and sets `suspect`.
fn check_runs(runs: &[Arc<runs::Run>], index_dir: &Path, suspect: &AtomicBool) {
    for run in runs {
        match run.intact() {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(run = run.name(), "An audit index run was altered on disk; subjects' records are read from the log and erasures scrub it whole until a restart indexes them again.");
                suspect.store(true, Ordering::SeqCst);
                if let Err(error) = std::fs::remove_file(index_dir.join(run.name())) {
                    tracing::warn!(%error, run = run.name(), "Could not delete the altered audit index run.");
                }
            }
            Err(error) => tracing::warn!(%error, run = run.name(), "Could not read an audit index run to check it."),
        }
    }
}

/// Merges index runs while a merge is due; the caller holds the merging
/// lock. Each merge is planned under the index lock and made without it.
fn merge_while_due(index: &Mutex<index::Index>) {
    loop {
        let plan = index.lock().unwrap_or_else(|p| p.into_inner()).merge_plan();
        let Some(plan) = plan else { return };
        let merged = match runs::merge(&plan.dir, &plan.runs) {
            Ok(merged) => merged,
            Err(error) => {
                tracing::warn!(%error, "Could not merge audit index runs; tried again at the next seal.");
                return;
            }
        };
        let name = merged.name().to_string();
        let installed = index.lock().unwrap_or_else(|p| p.into_inner()).install(&plan, merged);
        let deleted =
            if installed { runs::delete(&plan.dir, &plan.runs) } else { std::fs::remove_file(plan.dir.join(name)) };
        if let Err(error) = deleted {
            tracing::warn!(%error, "Could not delete merged audit index runs; the next open does.");
        }
    }
}

/// Puts a scrub's complete new index in place of the one in use, or drops
/// one a crash left incomplete; drops an old index a crash left aside.
fn settle_index_dirs(audit_dir: &Path) -> std::io::Result<()> {
    let (current, new, old) =
        (audit_dir.join(INDEX_DIR), audit_dir.join(NEW_INDEX_DIR), audit_dir.join(format!("{INDEX_DIR}.old")));
    if new.join(COMPLETE).exists() {
        remove_dir_if_there(&old)?;
        if current.exists() {
            std::fs::rename(&current, &old)?;
        }
        std::fs::rename(&new, &current)?;
        std::fs::remove_file(current.join(COMPLETE))?;
    } else {
        remove_dir_if_there(&new)?;
    }
    remove_dir_if_there(&old)?;
    File::open(audit_dir)?.sync_all()
}

fn remove_dir_if_there(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Whether the log at `path` still holds the record a run says ends its
/// range, at its place, ending where the range ends.
fn log_holds(path: &Path, covers: &runs::Covers) -> bool {
    let Ok(file) = File::open(path) else { return false };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let read = reader.seek(SeekFrom::Start(covers.last_offset)).and_then(|_| reader.read_until(b'\n', &mut line));
    let Ok(read) = read else { return false };
    covers.last_offset + read as u64 == covers.end
        && serde_json::from_slice::<AuditRecord>(&line).is_ok_and(|record| {
            record.seq == covers.last_seq && record.hash == covers.last_hash && record.hash == record.compute_hash()
        })
}

/// Whether the audit dir of `data_dir` holds the journal of a scrub in
/// place: one is under way (a server is running it) or a crash cut one
/// short (the next open finishes it). Until then a record may read as
/// altered where a handle is half rewritten.
pub fn scrub_under_way(data_dir: &Path) -> bool {
    data_dir.join(AUDIT_DIR).join(journal::JOURNAL_FILE).exists()
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records read before the first bad one (all of them if none is bad).
    pub records: u64,
    pub last_hash: String,
    /// The first bad record, described.
    pub first_bad: Option<String>,
    /// Bytes of a last line without its newline after the valid records: an
    /// append a crash interrupted (never fsynced, so the disclosure it
    /// records was never made). Not part of the chain; the next start of
    /// proviso cuts it off the file.
    pub torn_bytes: u64,
}

impl Verified {
    /// The head of the valid part of the chain.
    pub fn head(&self) -> Head {
        Head { records: self.records, hash: self.last_hash.clone() }
    }
}

/// Checks the chain: each record's `seq` follows the previous one, its
/// `prev` is the previous record's hash and its `hash` matches its fields.
/// A missing file is an empty, valid log.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    Ok(walk(path, None, &mut |_, _| {})?.verified)
}

/// [`verify`], and whether the log extends `head`: the record at the head's
/// count still has the head's hash. The second value is `Err(problem)` when
/// the chain is intact but does not extend the head (rewritten, or cut short
/// of it); a broken chain is reported in `first_bad` alone.
pub fn verify_extends(path: &Path, head: &Head) -> Result<(Verified, Result<(), String>), AuditError> {
    let walked = walk(path, Some(head.records), &mut |_, _| {})?;
    let verified = walked.verified;
    let extends = match walked.hash_at_head {
        _ if verified.first_bad.is_some() => Ok(()),
        Some(hash) if hash == head.hash => Ok(()),
        Some(_) if head.records == 0 => Err(format!("the head {head} is not a head: an empty chain's hash is {GENESIS}")),
        Some(hash) => Err(format!(
            "the log does not extend the head {head}: record {} has hash {hash} (the log was rewritten since the head was taken)",
            head.records.wrapping_sub(1)
        )),
        None => Err(format!(
            "the log does not extend the head {head}: it holds {} records, fewer than the head's {} (records were removed from its end)",
            verified.records, head.records
        )),
    };
    Ok((verified, extends))
}

struct Walked {
    verified: Verified,
    /// Byte length of the valid records.
    end: u64,
    /// The chain's hash after the first `at` records, when asked and reached.
    hash_at_head: Option<String>,
    /// The last record is whole but its newline is missing.
    unterminated: bool,
}

/// Reads the chain from the start, calling `visit(offset, record)` for each
/// valid record, up to the first bad one.
fn walk(path: &Path, at: Option<u64>, visit: &mut dyn FnMut(u64, &AuditRecord)) -> Result<Walked, AuditError> {
    let start = Resume::genesis();
    walk_from(path, &start, at, None, visit)
}

/// [`walk_from`] up to byte `until` (a record's end), for a scrub.
fn walk_range(
    path: &Path,
    start: &Resume,
    until: Option<u64>,
    visit: &mut dyn FnMut(u64, &AuditRecord),
) -> Result<Walked, AuditError> {
    walk_from(path, start, None, until, visit)
}

/// [`walk`] from a record's start, `start.records` records into the chain
/// after the record whose hash is `start.last_hash`, up to byte `until`
/// (`None`: the file's end).
fn walk_from(
    path: &Path,
    start: &Resume,
    at: Option<u64>,
    until: Option<u64>,
    visit: &mut dyn FnMut(u64, &AuditRecord),
) -> Result<Walked, AuditError> {
    let mut verified =
        Verified { records: start.records, last_hash: start.last_hash.clone(), first_bad: None, torn_bytes: 0 };
    let mut walked_end = start.offset;
    let mut hash_at_head = (at == Some(start.records)).then(|| start.last_hash.clone());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Walked { verified, end: 0, hash_at_head, unterminated: false })
        }
        Err(source) => return Err(AuditError::Io { path: path.display().to_string(), source }),
    };
    let mut file = file;
    file.seek(SeekFrom::Start(start.offset))
        .map_err(|source| AuditError::Io { path: path.display().to_string(), source })?;
    let limit = until.map_or(u64::MAX, |until| until.saturating_sub(start.offset));
    let mut reader = BufReader::new(std::io::Read::take(file, limit));
    let mut line = Vec::new();
    let mut unterminated = false;
    for number in start.records + 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| AuditError::Io { path: path.display().to_string(), source })?;
        if read == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n");
        let parsed = serde_json::from_slice::<AuditRecord>(text.unwrap_or(&line));
        if text.is_none() {
            // The last line, without its newline: a torn append unless it
            // is a whole record that continues the chain.
            let whole = parsed.as_ref().is_ok_and(|record| {
                record.seq == verified.records
                    && record.prev == verified.last_hash
                    && record.hash == record.compute_hash()
            });
            if !whole {
                verified.torn_bytes = read as u64;
                break;
            }
            unterminated = true;
        }
        let expected = verified.records;
        let start = walked_end;
        let problem = match parsed {
            Err(_) => Some(format!("line {number}: not an audit record")),
            Ok(record) if record.seq != expected => Some(format!(
                "line {number}: record {} where record {expected} was expected (a record was removed, inserted or reordered)",
                record.seq
            )),
            Ok(record) if record.prev != verified.last_hash => {
                Some(format!("line {number}: record {} does not follow record {} (chain broken)", record.seq, expected.wrapping_sub(1)))
            }
            Ok(record) if record.hash != record.compute_hash() => {
                Some(format!("line {number}: record {} was altered (its hash does not match its fields)", record.seq))
            }
            Ok(record) => {
                visit(walked_end, &record);
                walked_end += read as u64;
                verified.records += 1;
                verified.last_hash = record.hash;
                if at == Some(verified.records) {
                    hash_at_head = Some(verified.last_hash.clone());
                }
                None
            }
        };
        if let Some(problem) = problem {
            verified.first_bad = Some(format!("{problem} (at byte {start})"));
            break;
        }
    }
    Ok(Walked { verified, end: walked_end, hash_at_head, unterminated })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(records: usize) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(dir.path()).expect("open");
        for k in 0..records {
            log.append(1_000 + k as i64, "partner:net", "product", "suggestions", vec![format!("s_{k:032x}")])
                .expect("append");
        }
        (dir, log)
    }

    fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(path).expect("read").lines().map(str::to_string).collect();
        edit(&mut lines);
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
    }

    /// An untouched log verifies, and reopening continues the chain.
    #[test]
    fn chain_verifies_and_continues_after_reopen() {
        let (dir, log) = log_with(5);
        drop(log);
        let log = AuditLog::open(dir.path()).expect("reopen");
        assert_eq!(log.append(9, "partner:net", "ads", "audience_members", vec![]).expect("append"), 5);
        let verified = verify(log.path()).expect("verify");
        assert_eq!((verified.records, verified.first_bad), (6, None));
        assert_eq!(log.records_about(&format!("s_{:032x}", 3)).expect("read").len(), 1);
    }

    /// A torn last record (a crash mid-append, `audit.write=torn`) is not
    /// part of the chain: verify passes and names it, the next open cuts it,
    /// and appends continue the chain on a line of their own. Before, the
    /// open refused the log ("not an audit record") and proviso did not start.
    #[test]
    fn a_torn_last_record_is_cut_and_the_chain_continues() {
        let (dir, log) = log_with(3);
        let path = log.path().to_path_buf();
        drop(log);
        let whole = std::fs::read(&path).expect("read");
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open file");
        file.write_all(br#"{"seq":3,"at_ms":5,"recipient":"partner:n"#).expect("torn write");
        drop(file);
        let verified = verify(&path).expect("verify");
        assert_eq!((verified.records, verified.first_bad.as_deref(), verified.torn_bytes), (3, None, 41));
        let log = AuditLog::open(dir.path()).expect("a torn tail is not a broken chain");
        assert_eq!(std::fs::read(&path).expect("read"), whole, "the torn bytes are cut");
        assert_eq!(log.append(9, "partner:net", "ads", "audience_members", vec![]).expect("append"), 3);
        drop(log);
        let verified = verify(&path).expect("verify");
        assert_eq!((verified.records, verified.first_bad, verified.torn_bytes), (4, None, 0));
    }

    /// A head prints as COUNT:HASH and parses back; the empty head is
    /// extended by every valid log; malformed heads are refused.
    #[test]
    fn head_round_trips_and_the_empty_head_is_always_extended() {
        let (_dir, log) = log_with(3);
        let verified = verify(log.path()).expect("verify");
        let head = verified.head();
        assert_eq!(head.to_string().parse::<Head>(), Ok(head.clone()));
        assert_eq!(verify_extends(log.path(), &head).expect("verify").1, Ok(()));
        let empty: Head = format!("0:{GENESIS}").parse().expect("empty head");
        assert_eq!(verify_extends(log.path(), &empty).expect("verify").1, Ok(()));
        for bad in ["", "3", "x:abc", &format!("3:{}", &head.hash[1..]), &format!("-1:{}", head.hash)] {
            assert_eq!(bad.parse::<Head>(), Err(HeadParseError), "{bad:?}");
        }
    }

    /// Every record naming `subject`, found by reading the whole file.
    fn scanned(path: &Path, subject: &str) -> Vec<AuditRecord> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(|line| serde_json::from_str::<AuditRecord>(line).expect("record"))
            .filter(|record| record.subjects.iter().any(|s| s == subject))
            .collect()
    }

    /// The per-subject index answers exactly what a scan of the file finds,
    /// for records from before the open (indexed at open) and after it
    /// (indexed on append), and for subjects never disclosed.
    #[test]
    fn records_about_matches_a_scan_before_and_after_reopen() {
        let subject = |k: usize| format!("r_{k:032x}");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(dir.path()).expect("open");
        let append = |log: &AuditLog, k: usize| {
            let subjects = (0..k % 7).map(|j| subject((k + j * 3) % 20)).collect();
            log.append(k as i64, "partner:net", "product", "suggestions", subjects).expect("append");
        };
        for k in 0..300 {
            append(&log, k);
        }
        drop(log);
        let log = AuditLog::open(dir.path()).expect("reopen");
        for k in 300..400 {
            append(&log, k);
        }
        let mut total = 0;
        for k in 0..25 {
            let expected = scanned(log.path(), &subject(k));
            assert_eq!(log.records_about(&subject(k)).expect("records"), expected, "subject {k}");
            total += expected.len();
        }
        assert!(total > 300, "the test must cover many records, got {total}");
        // A substring of a handle is not the handle.
        assert!(log.records_about("r_0000").expect("records").is_empty());
    }

    /// Reading a subject's records never waits for the append lock, so a
    /// report read (however long the log) cannot stall disclosures: here the
    /// read completes while another holder keeps the append lock.
    #[test]
    fn records_about_does_not_take_the_append_lock() {
        let (_dir, log) = log_with(50);
        let log = std::sync::Arc::new(log);
        let tail = log.tail.lock().unwrap_or_else(|p| p.into_inner());
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            let _ = sender.send(reader.records_about(&format!("s_{:032x}", 7)).map(|r| r.len()).ok());
        });
        // Generous: the read takes milliseconds; with the lock it never ends.
        let found = receiver.recv_timeout(std::time::Duration::from_secs(30));
        drop(tail);
        assert_eq!(found, Ok(Some(1)), "records_about waited for the append lock");
    }

    /// Altering, removing or reordering a record is caught at that record.
    #[test]
    fn tampering_is_caught_and_named() {
        for (name, edit, expected) in [
            (
                "altered",
                Box::new(|lines: &mut Vec<String>| lines[2] = lines[2].replace("product", "ads"))
                    as Box<dyn Fn(&mut Vec<String>)>,
                "record 2 was altered",
            ),
            ("removed", Box::new(|lines: &mut Vec<String>| drop(lines.remove(1))), "record 2 where record 1"),
            ("reordered", Box::new(|lines: &mut Vec<String>| lines.swap(3, 4)), "record 4 where record 3"),
        ] {
            let (_dir, log) = log_with(6);
            rewrite(log.path(), |lines| edit(lines));
            let verified = verify(log.path()).expect("verify");
            let problem = verified.first_bad.unwrap_or_else(|| panic!("{name} not caught"));
            assert!(problem.contains(expected), "{name}: {problem}");
        }
        // Recomputing the hash of an altered record breaks the next link.
        let (_dir, log) = log_with(4);
        rewrite(log.path(), |lines| {
            let mut record: AuditRecord = serde_json::from_str(&lines[1]).expect("record");
            record.subjects = vec!["s_forged".into()];
            record.hash = record.compute_hash();
            lines[1] = serde_json::to_string(&record).expect("json");
        });
        let problem = verify(log.path()).expect("verify").first_bad.expect("caught");
        assert!(problem.contains("record 2 does not follow record 1"), "{problem}");
    }

    /// Regression: a crash mid-append left a torn last line, and the next
    /// open refused to start ("not an audit record"). A torn last line is
    /// cut (its disclosure was never made); a whole last record missing only
    /// its newline is kept; appends continue the chain either way.
    #[test]
    fn a_torn_last_line_is_cut_and_a_whole_one_kept() {
        let (dir, log) = log_with(3);
        let path = log.path().to_path_buf();
        drop(log);
        let whole = std::fs::read(&path).expect("read");
        let mut torn = whole.clone();
        torn.extend_from_slice(br#"{"seq":3,"at_ms":1003,"recipient":"partner:n"#);
        std::fs::write(&path, &torn).expect("tear");
        let log = AuditLog::open(dir.path()).expect("a torn tail is not damage");
        assert_eq!(std::fs::read(&path).expect("read"), whole, "the torn bytes are cut");
        log.append(2_000, "partner:net", "product", "suggestions", vec!["s_x".into()]).expect("append");
        drop(log);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("drop the last newline");
        let log = AuditLog::open(dir.path()).expect("a whole record without its newline is kept");
        log.append(2_001, "partner:net", "product", "suggestions", vec!["s_y".into()]).expect("append");
        assert_eq!(
            verify(&path).expect("verify"),
            Verified { records: 5, last_hash: verify(&path).expect("v").last_hash, first_bad: None, torn_bytes: 0 }
        );
    }

    /// A damaged record before the tail stops the open, naming the file,
    /// the line and the byte, and the command that explains it.
    #[test]
    fn a_damaged_record_stops_the_open_naming_line_and_byte() {
        let (dir, log) = log_with(4);
        let path = log.path().to_path_buf();
        drop(log);
        let mut bytes = std::fs::read(&path).expect("read");
        let second = bytes.iter().position(|&b| b == b'\n').expect("lines") + 1;
        bytes[second + 30] ^= 0x01;
        std::fs::write(&path, &bytes).expect("damage");
        let error = AuditLog::open(dir.path()).err().expect("refused").to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("line 2") && error.contains(&format!("at byte {second})")), "{error}");
        assert!(error.contains("proviso audit verify"), "{error}");
    }

    /// Scrubbing replaces the handles of people no longer kept by their
    /// digests: same length, same hashes, the chain and its head still
    /// verify, and the kept handles are still found.
    #[test]
    fn scrub_removes_handles_and_keeps_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(dir.path()).expect("open");
        let (gone, kept) = (format!("r_{:032x}", 1), format!("r_{:032x}", 2));
        log.append(1, "partner:net", "product", "suggestions", vec![gone.clone(), kept.clone()]).expect("append");
        log.append(2, "partner:net", "ads", "audience_members", vec![gone.clone()]).expect("append");
        let head = verify(log.path()).expect("verify").head();
        let size = std::fs::metadata(log.path()).expect("meta").len();
        assert_eq!(log.scrub(|handle| handle == kept).expect("scrub"), 2);
        let text = std::fs::read_to_string(log.path()).expect("read");
        assert!(!text.contains(&gone) && text.contains(&kept), "{text}");
        assert_eq!(std::fs::metadata(log.path()).expect("meta").len(), size, "offsets unchanged");
        let (verified, extends) = verify_extends(log.path(), &head).expect("verify");
        assert_eq!((verified.first_bad, extends), (None, Ok(())));
        assert_eq!(log.records_about(&kept).expect("read").len(), 1);
        assert!(log.records_about(&gone).expect("read").is_empty());
        log.append(3, "partner:net", "product", "suggestions", vec![kept.clone()]).expect("append after");
        drop(log);
        let log = AuditLog::open(dir.path()).expect("reopen");
        assert_eq!(log.records_about(&kept).expect("read").len(), 2);
        assert_eq!(log.scrub(|handle| handle == kept).expect("again"), 0, "nothing left to scrub");
    }

    /// The scrub as it was before it streamed: every record read into
    /// memory, scrubbed, and the whole file's bytes built at once.
    fn scrubbed_in_memory(path: &Path, keep: &dyn Fn(&str) -> bool) -> (usize, Vec<u8>) {
        let mut records = Vec::new();
        walk(path, None, &mut |_, record| records.push(record.clone())).expect("walk");
        let mut scrubbed = 0;
        for record in records.iter_mut().filter(|record| record.v >= 2) {
            for subject in record.subjects.iter_mut() {
                if !subject.starts_with("d_") && !keep(subject) {
                    *subject = subject_digest(subject);
                    scrubbed += 1;
                }
            }
        }
        let mut bytes = Vec::new();
        for record in &records {
            bytes.extend_from_slice(&serde_json::to_vec(record).expect("json"));
            bytes.push(b'\n');
        }
        (scrubbed, bytes)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The streaming scrub writes the bytes the in-memory one wrote,
        /// counts the same handles, leaves the file as it was when nothing
        /// is owed, and its index finds every kept handle's records.
        #[test]
        fn the_streaming_scrub_writes_what_the_in_memory_one_wrote(
            records in proptest::collection::vec(proptest::collection::vec(0u8..10, 1..6), 1..40),
            kept in proptest::collection::vec(proptest::bool::ANY, 10),
            rounds in 1usize..3,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = AuditLog::open(dir.path()).expect("open");
            let handle = |k: u8| format!("r_{:032x}", u32::from(k) * 7919);
            for (k, named) in records.iter().enumerate() {
                let subjects = named.iter().map(|&h| handle(h)).collect();
                log.append(k as i64, "partner:net", "product", "suggestions", subjects).expect("append");
            }
            let keep = |subject: &str| (0u8..10).any(|h| kept[usize::from(h)] && handle(h) == subject);
            for _ in 0..rounds {
                let before = std::fs::read(log.path()).expect("read");
                let (expected_count, expected) = scrubbed_in_memory(log.path(), &keep);
                let count = log.scrub(keep).expect("scrub");
                let after = std::fs::read(log.path()).expect("read");
                proptest::prop_assert_eq!(count, expected_count);
                if count == 0 {
                    proptest::prop_assert_eq!(&after, &before);
                } else {
                    proptest::prop_assert_eq!(&after, &expected);
                }
                for h in 0u8..10 {
                    let naming = records.iter().filter(|named| named.contains(&h)).count();
                    let found = log.records_about(&handle(h)).expect("read").len();
                    proptest::prop_assert_eq!(found, if kept[usize::from(h)] { naming } else { 0 });
                }
            }
            proptest::prop_assert_eq!(verify(log.path()).expect("verify").first_bad, None);
            log.append(99, "partner:net", "ads", "audience_members", vec![handle(0)]).expect("append after");
            proptest::prop_assert_eq!(verify(log.path()).expect("verify").records, records.len() as u64 + 1);
        }
    }

    /// The index key the vault lists for an erased handle.
    fn listed_key(handle: &str) -> [u8; 4] {
        crate::contract::hash_prefix(handle)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The scrub in place, given the keys of the erased handles, leaves
        /// the bytes the whole-log scrub leaves, over records in sealed
        /// runs and in memory, and counts the same handles; the chain and
        /// every kept handle's records stay.
        #[test]
        fn the_scrub_in_place_writes_what_the_whole_log_scrub_writes(
            records in proptest::collection::vec(proptest::collection::vec(0u8..12, 1..6), 1..60),
            erased in proptest::collection::vec(proptest::bool::ANY, 12),
            seal_every in 1usize..9,
            rounds in 1usize..3,
        ) {
            let (whole, in_place) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
            let logs = [whole.path(), in_place.path()].map(|dir| AuditLog::open_sealing_every(dir, seal_every).expect("open"));
            let handle = |k: u8| format!("r_{:032x}", u32::from(k) * 7919);
            for (k, named) in records.iter().enumerate() {
                for log in &logs {
                    let subjects = named.iter().map(|&h| handle(h)).collect();
                    log.append(k as i64, "partner:net", "product", "suggestions", subjects).expect("append");
                }
            }
            let keep = |subject: &str| (0u8..12).any(|h| !erased[usize::from(h)] && handle(h) == subject);
            let keys: Vec<[u8; 4]> = (0u8..12).filter(|h| erased[usize::from(*h)]).map(|h| listed_key(&handle(h))).collect();
            for _ in 0..rounds {
                let expected = logs[0].scrub(keep).expect("whole");
                proptest::prop_assert_eq!(logs[1].scrub_keys(&keys, keep).expect("in place"), expected);
                proptest::prop_assert_eq!(
                    std::fs::read(logs[1].path()).expect("read"),
                    std::fs::read(logs[0].path()).expect("read")
                );
            }
            proptest::prop_assert_eq!(verify(logs[1].path()).expect("verify").first_bad, None);
            for h in 0u8..12 {
                let naming = records.iter().filter(|named| named.contains(&h)).count();
                let found = logs[1].records_about(&handle(h)).expect("read").len();
                proptest::prop_assert_eq!(found, if erased[usize::from(h)] { 0 } else { naming });
            }
            logs[1].append(99, "partner:net", "ads", "audience_members", vec![handle(0)]).expect("append after");
            proptest::prop_assert_eq!(verify(logs[1].path()).expect("verify").records, records.len() as u64 + 1);
        }
    }

    /// A crash after the journal of a scrub in place was written and half
    /// its bytes went to the log: the next open writes the rest, and the
    /// log is the one the scrub would have left.
    #[test]
    fn an_open_finishes_a_scrub_in_place_a_crash_cut_short() {
        let (dir, reference) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let handle = |k: u64| format!("r_{:032x}", k * 104_729);
        let gone = [handle(3), handle(8)];
        let keep = |subject: &str| !gone.iter().any(|g| g == subject);
        for path in [dir.path(), reference.path()] {
            let log = AuditLog::open_sealing_every(path, 16).expect("open");
            for k in 0..200u64 {
                log.append(k as i64, "partner:net", "product", "suggestions", vec![handle(k % 11), handle(k % 7)])
                    .expect("append");
            }
            // A merge thread of this instance must not delete runs while
            // the next open of the dir reads them (CI saw that: NotFound).
            log.wait_for_merges();
        }
        let keys: Vec<[u8; 4]> = gone.iter().map(|g| listed_key(g)).collect();
        AuditLog::open(reference.path()).expect("open").scrub_keys(&keys, keep).expect("scrub");
        let log = AuditLog::open(dir.path()).expect("open");
        let wanted: HashSet<u32> = keys.iter().map(|key| u32::from_le_bytes(*key)).collect();
        let (patches, scrubbed) = log.plan_in_place(&wanted, &keep, |_| true).expect("plan");
        assert!(patches.len() > 20 && scrubbed > 20, "{} patches", patches.len());
        journal::write(&log.audit_dir(), &patches).expect("journal");
        journal::apply(log.path(), &patches[..patches.len() / 2]).expect("half");
        let text = std::fs::read_to_string(log.path()).expect("read");
        assert!(gone.iter().any(|g| text.contains(g.as_str())), "half is left to do");
        drop(log);
        let log = AuditLog::open(dir.path()).expect("reopen");
        assert_eq!(
            std::fs::read(log.path()).expect("read"),
            std::fs::read(reference.path().join(AUDIT_DIR).join(AUDIT_FILE)).expect("read")
        );
        assert!(!log.audit_dir().join(journal::JOURNAL_FILE).exists());
        assert_eq!(verify(log.path()).expect("verify").first_bad, None);
        assert!(log.records_about(&gone[0]).expect("read").is_empty());
        assert_eq!(log.scrub_keys(&keys, keep).expect("again"), 0, "nothing left");
    }

    /// A run altered on disk (one byte of its pairs): the check after the
    /// open finds it; until a restart, a subject's records come from the
    /// log and a scrub in place refuses (the compaction then scrubs the
    /// whole log); the next open indexes the run's records again.
    #[test]
    fn an_index_run_altered_on_disk_is_found_and_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = |k: u64| format!("r_{:032x}", k * 7919);
        let log = AuditLog::open_sealing_every(dir.path(), 16).expect("open");
        for k in 0..120u64 {
            log.append(k as i64, "partner:net", "product", "suggestions", vec![handle(k % 5), handle(k % 3 + 10)])
                .expect("append");
        }
        log.wait_for_merges();
        let expected = log.records_about(&handle(2)).expect("read");
        assert_eq!(expected.len(), 24);
        drop(log);
        let index_dir = dir.path().join(AUDIT_DIR).join(INDEX_DIR);
        let mut run_files: Vec<PathBuf> = std::fs::read_dir(&index_dir)
            .expect("runs")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "idx"))
            .collect();
        run_files.sort();
        let mut bytes = std::fs::read(&run_files[0]).expect("read run");
        let body = 12 + u32::from_le_bytes(bytes[8..12].try_into().expect("len")) as usize;
        bytes[body + 1] ^= 0x40;
        std::fs::write(&run_files[0], &bytes).expect("alter");
        let log = AuditLog::open_sealing_every(dir.path(), 16).expect("open");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !log.index_suspect() {
            assert!(std::time::Instant::now() < deadline, "the altered run was not found");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(log.records_about(&handle(2)).expect("read"), expected, "read from the log");
        let keys = [listed_key(&handle(2))];
        assert!(matches!(log.scrub_keys(&keys, |_| false), Err(AuditError::Broken { .. })));
        assert!(!run_files[0].exists(), "the altered run is deleted");
        drop(log);
        let log = AuditLog::open_sealing_every(dir.path(), 16).expect("reopen");
        assert!(!log.index_suspect());
        assert_eq!(log.records_about(&handle(2)).expect("read"), expected, "indexed again");
        assert_eq!(log.scrub_keys(&keys, |h| h != handle(2)).expect("scrub"), 24);
    }

    /// A power cut inside one handle's rewrite: the record reads as
    /// altered (`verify` fails, and says a scrub is under way) until the
    /// next open writes the journal again.
    #[test]
    fn a_handle_torn_by_a_crash_mid_rewrite_is_mended_by_the_next_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = format!("r_{:032x}", 5);
        let log = AuditLog::open(dir.path()).expect("open");
        for k in 0..4 {
            log.append(k, "partner:net", "ads", "audience_members", vec![gone.clone(), format!("r_{:032x}", 9)])
                .expect("append");
        }
        let wanted = HashSet::from([u32::from_le_bytes(listed_key(&gone))]);
        let keep = |subject: &str| subject != gone;
        let (patches, _) = log.plan_in_place(&wanted, &keep, |_| true).expect("plan");
        assert_eq!(patches.len(), 4);
        journal::write(&log.audit_dir(), &patches).expect("journal");
        let torn = journal::Patch {
            offset: patches[2].offset,
            old: patches[2].old[..10].to_vec(),
            bytes: patches[2].bytes[..10].to_vec(),
        };
        journal::apply(log.path(), &[torn]).expect("torn");
        drop(log);
        assert!(verify(&dir.path().join(AUDIT_DIR).join(AUDIT_FILE)).expect("verify").first_bad.is_some());
        assert!(scrub_under_way(dir.path()));
        let log = AuditLog::open(dir.path()).expect("reopen");
        assert!(!scrub_under_way(dir.path()));
        let verified = verify(log.path()).expect("verify");
        assert_eq!((verified.first_bad, verified.records), (None, 4));
        assert!(!std::fs::read_to_string(log.path()).expect("read").contains(&gone));
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// A disclosure naming these handles, for purpose `ads` when true.
        Append(Vec<u8>, bool),
        Reopen,
        /// Scrub every handle but these.
        Scrub(Vec<u8>),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (proptest::collection::vec(0u8..12, 0..5), any::<bool>()).prop_map(|(h, ads)| Step::Append(h, ads)),
            1 => Just(Step::Reopen),
            1 => proptest::collection::vec(0u8..12, 0..12).prop_map(Step::Scrub),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]
        /// With runs sealed every few pairs (so runs are sealed, merged,
        /// reopened and replaced by scrubs many times), every handle's
        /// records and the counts by purpose are what a model of the log
        /// says, after every step.
        #[test]
        fn the_index_answers_as_the_log_across_seals_merges_reopens_and_scrubs(
            steps in proptest::collection::vec(step(), 1..60),
            seal in 1usize..9,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let handle = |k: u8| format!("r_{:032x}", u32::from(k) * 104_729);
            let mut log = AuditLog::open_sealing_every(dir.path(), seal).expect("open");
            // The model: each record's handles as the log now holds them.
            let mut model: Vec<(Vec<String>, bool)> = Vec::new();
            for step in steps {
                match step {
                    Step::Append(named, ads) => {
                        let subjects: Vec<String> = named.iter().map(|&h| handle(h)).collect();
                        let purpose = if ads { "ads" } else { "product" };
                        log.append(model.len() as i64, "partner:net", purpose, "suggestions", subjects.clone()).expect("append");
                        model.push((subjects, ads));
                    }
                    Step::Reopen => {
                        log.wait_for_merges();
                        drop(log);
                        log = AuditLog::open_sealing_every(dir.path(), seal).expect("reopen");
                    }
                    Step::Scrub(kept) => {
                        let keep: Vec<String> = kept.iter().map(|&h| handle(h)).collect();
                        log.scrub(|s| keep.iter().any(|k| k == s)).expect("scrub");
                        for (subjects, _) in model.iter_mut() {
                            for subject in subjects.iter_mut() {
                                if !subject.starts_with("d_") && !keep.contains(subject) {
                                    *subject = subject_digest(subject);
                                }
                            }
                        }
                    }
                }
                log.wait_for_merges();
                for h in 0u8..12 {
                    let want: Vec<u64> = model.iter().enumerate()
                        .filter(|(_, (subjects, _))| subjects.contains(&handle(h)))
                        .map(|(seq, _)| seq as u64).collect();
                    let got: Vec<u64> = log.records_about(&handle(h)).expect("read").iter().map(|r| r.seq).collect();
                    proptest::prop_assert_eq!(got, want, "handle {}", h);
                }
                let ads = model.iter().filter(|(_, ads)| *ads).count() as u64;
                let mut counts = BTreeMap::new();
                if ads > 0 { counts.insert("ads".to_string(), ads); }
                if model.len() as u64 > ads { counts.insert("product".to_string(), model.len() as u64 - ads); }
                proptest::prop_assert_eq!(log.counts_by_purpose(), counts);
            }
            proptest::prop_assert_eq!(verify(log.path()).expect("verify").first_bad, None);
        }
    }

    /// A log whose index is in runs: memory holds fewer pairs than a seal,
    /// the runs stay few (merged by size), and an open reads only the
    /// records after the last run (an altered record the runs cover does
    /// not stop it) while the check after it refuses every later append.
    #[test]
    fn an_open_reads_only_the_records_after_the_runs_and_the_check_behind_it_refuses_a_broken_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open_sealing_every(dir.path(), 64).expect("open");
        let history = (0..6_000u64).map(|k| HistoryRecord {
            at_ms: k as i64,
            recipient: "partner:net".into(),
            purpose: "product".into(),
            kind: "suggestions".into(),
            subjects: (0..4).map(|j| format!("r_{:032x}", (k * 4 + j) % 5_000)).collect(),
        });
        assert_eq!(log.append_history(history, &|_| {}).expect("history"), 6_000);
        log.wait_for_merges();
        let (runs, unsealed) = log.index_shape();
        assert!(unsealed < 64 + 4, "{unsealed} pairs in memory");
        // 24,000 pairs in runs of 64: 375 seals; by size, at most three runs
        // of each size class (64, 256, ..., 16,384 pairs) are left.
        assert!((2..=3 * 6).contains(&runs), "{runs} runs");
        let named = format!("r_{:032x}", 7);
        let expected: Vec<u64> = (0..6_000u64).filter(|k| (0..4).any(|j| (k * 4 + j) % 5_000 == 7)).collect();
        let got: Vec<u64> = log.records_about(&named).expect("read").iter().map(|r| r.seq).collect();
        assert_eq!(got, expected);
        let path = log.path().to_path_buf();
        drop(log);
        // Alter the second record (in the first run).
        let mut bytes = std::fs::read(&path).expect("read");
        let second = bytes.iter().position(|&b| b == b'\n').expect("lines") + 1;
        bytes[second + 40] ^= 0x01;
        std::fs::write(&path, &bytes).expect("damage");
        let log = AuditLog::open_sealing_every(dir.path(), 64).expect("the open does not read the runs' records");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let refused = loop {
            match log.append(9, "partner:net", "product", "suggestions", vec![named.clone()]) {
                Err(error) => break error.to_string(),
                Ok(_) => {
                    assert!(std::time::Instant::now() < deadline, "the check never refused an append");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        };
        assert!(refused.contains("line 2") && refused.contains("altered"), "{refused}");
    }

    /// Whatever a crash leaves in the index's directories (a run written
    /// half, a file that is not a run, a run over a log since replaced, a
    /// scrub's new index complete or not), an open answers as the log says.
    #[test]
    fn an_open_mends_what_a_crash_left_in_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let subject = format!("r_{:032x}", 3);
        let log = AuditLog::open_sealing_every(dir.path(), 8).expect("open");
        for k in 0..40 {
            log.append(k, "partner:net", "product", "suggestions", vec![subject.clone(), format!("r_{k:032x}")])
                .expect("append");
        }
        log.wait_for_merges();
        assert!(log.index_shape().0 > 0, "runs were sealed");
        let path = log.path().to_path_buf();
        drop(log);
        let audit = dir.path().join(AUDIT_DIR);
        let index_dir = audit.join(INDEX_DIR);
        std::fs::write(index_dir.join("run-0000000000000000-00000000000000ff.idx.tmp"), b"half").expect("tmp");
        std::fs::write(index_dir.join("run-0000000000000000-0000000000000001.idx"), b"PVAIDX01junk").expect("junk");
        std::fs::create_dir_all(audit.join(NEW_INDEX_DIR)).expect("new");
        let reopened = |expected: usize| {
            let log = AuditLog::open_sealing_every(dir.path(), 8).expect("open");
            assert_eq!(log.records_about(&subject).expect("read").len(), expected);
            assert_eq!(log.counts_by_purpose().get("product"), Some(&(expected as u64)));
            log.wait_for_merges();
            drop(log);
        };
        reopened(40);
        assert!(!audit.join(NEW_INDEX_DIR).exists(), "an incomplete new index is dropped");
        let names: Vec<String> = std::fs::read_dir(&index_dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|name| name.ends_with(".idx") && !name.contains("ff.idx")), "{names:?}");
        // The log replaced by a shorter one: its runs no longer match.
        let whole = std::fs::read(&path).expect("read");
        let cut = whole.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(9).expect("ten lines").0 + 1;
        std::fs::write(&path, &whole[..cut]).expect("cut");
        reopened(10);
        // A scrub's complete new index (made here by copying the index of
        // the same log) is put in place.
        std::fs::write(&path, &whole).expect("restore");
        reopened(40);
        std::fs::create_dir_all(audit.join(NEW_INDEX_DIR)).expect("new");
        for entry in std::fs::read_dir(&index_dir).expect("dir") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), audit.join(NEW_INDEX_DIR).join(entry.file_name())).expect("copy");
        }
        std::fs::write(audit.join(NEW_INDEX_DIR).join(COMPLETE), b"").expect("mark");
        reopened(40);
        assert!(!audit.join(NEW_INDEX_DIR).exists() && !index_dir.join(COMPLETE).exists());
    }

    /// Appends go on while a scrub reads and rewrites the log: none waits
    /// for the whole scrub, none is lost, the chain holds, and the records
    /// appended meanwhile are in the new log and its index.
    #[test]
    fn appends_go_on_during_a_scrub_and_none_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open_sealing_every(dir.path(), 256).expect("open");
        let gone = |k: u64| format!("r_{:032x}", k % 500 + 1_000_000);
        let kept = format!("r_{:032x}", 7);
        let history = (0..4_000u64).map(|k| HistoryRecord {
            at_ms: k as i64,
            recipient: "partner:net".into(),
            purpose: "product".into(),
            kind: "suggestions".into(),
            subjects: vec![gone(k), kept.clone()],
        });
        log.append_history(history, &|_| {}).expect("history");
        let done = std::sync::atomic::AtomicBool::new(false);
        let appended = std::thread::scope(|scope| {
            let scrubbing = scope.spawn(|| {
                let scrubbed = log.scrub(|s| s == kept).expect("scrub");
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                scrubbed
            });
            let mut appended = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || appended < 3 {
                log.append(10_000 + appended as i64, "partner:net", "ads", "audience_members", vec![kept.clone()])
                    .expect("append during the scrub");
                appended += 1;
            }
            assert_eq!(scrubbing.join().expect("scrub thread"), 4_000);
            appended
        });
        log.wait_for_merges();
        let about = log.records_about(&kept).expect("read");
        assert_eq!(about.len() as u64, 4_000 + appended);
        assert_eq!(about.iter().map(|r| r.seq).collect::<Vec<_>>(), (0..4_000 + appended).collect::<Vec<_>>());
        assert!(log.records_about(&gone(3)).expect("read").is_empty());
        let text = std::fs::read_to_string(log.path()).expect("read");
        assert!(!text.contains(&gone(3)), "an erased handle is left");
        let verified = verify(log.path()).expect("verify");
        assert_eq!((verified.first_bad, verified.records), (None, 4_000 + appended));
        assert_eq!(log.counts_by_purpose().get("ads"), Some(&appended));
        log.wait_for_merges();
        drop(log);
        let log = AuditLog::open_sealing_every(dir.path(), 256).expect("reopen");
        assert_eq!(log.records_about(&kept).expect("read").len() as u64, 4_000 + appended);
    }
}
