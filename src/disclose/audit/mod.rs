//! The disclosure audit log: every time a subject's data leaves proviso to a
//! partner, one hash-chained record says who got it, for what purpose, when
//! and about whom (as subject ids, never numbers).
//!
//! Owns: `audit/disclosures.log` in the data dir (NDJSON, one record per
//! line, each carrying the hash of the previous one), appending durably
//! before the response leaves, an in-memory index of record offsets by
//! subject (built at open, updated on append) for reading a subject's
//! disclosures back without the append lock, `verify`, which names the first
//! altered, removed or reordered record, and the chain's [`Head`], which an
//! operator keeps elsewhere to prove later that the log still extends it.
//! Never: rewrites or deletes a past record; scans the log under the append
//! lock.

mod by_subject;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
fn scrubs(subject: &str, keep: &impl Fn(&str) -> bool) -> bool {
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

impl AuditRecord {
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
}

/// What is read without the append lock.
#[derive(Default)]
struct Index {
    /// Disclosure records by purpose, since the log began.
    by_purpose: BTreeMap<String, u64>,
    /// Byte offsets of the records naming each handle, by a short hash of
    /// it: the index holds no handle, and a collision only costs reading a
    /// record that is then skipped.
    by_subject: by_subject::BySubject,
}

impl Index {
    fn add(&mut self, offset: u64, record: &AuditRecord) {
        *self.by_purpose.entry(record.purpose.clone()).or_default() += 1;
        self.by_subject.add(offset, &record.subjects);
    }
}

/// The open audit log. Appends are serialized by the `tail` mutex; reads
/// (a subject's records, counts) go through the in-memory index and never
/// take it, so a report on a long log cannot hold up a disclosure.
pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<Tail>,
    /// Updated after each append, under the append lock (lock order: tail,
    /// then index); readers hold it only to copy what they need.
    index: Mutex<Index>,
}

impl AuditLog {
    /// Opens (or creates) the log in `data_dir`, verifying the chain so
    /// appends continue it and indexing every record by subject, in one read.
    pub fn open(data_dir: &Path) -> Result<AuditLog, AuditError> {
        let dir = data_dir.join(AUDIT_DIR);
        let path = dir.join(AUDIT_FILE);
        let io = |source| AuditError::Io { path: path.display().to_string(), source };
        crate::log::fsmode::create_private_dir(&dir).map_err(io)?;
        let mut index = Index::default();
        let walked = walk(&path, None, &mut |offset, record| index.add(offset, record))?;
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
        let tail = Tail { file, next_seq, last_hash, end, broken: None };
        Ok(AuditLog { path, tail: Mutex::new(tail), index: Mutex::new(index) })
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
        self.index.lock().unwrap_or_else(|p| p.into_inner()).add(offset, &record);
        tail.last_hash = record.hash;
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
        let mut written = 0;
        let mut result = Ok(());
        for disclosure in disclosures {
            let HistoryRecord { at_ms, recipient, purpose, kind, subjects } = disclosure;
            let (record, line) = self.next_line(&tail, at_ms, &recipient, &purpose, &kind, subjects)?;
            if let Err(error) = out.write_all(&line) {
                result = Err(error);
                break;
            }
            index.add(tail.end, &record);
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
    /// Appends wait meanwhile. The log keeps every disclosure for good, so
    /// holding it whole in memory (as this did before) would make an
    /// erasure's memory grow with all of history (bench/README.md, "An
    /// erasure's scrub of the audit log").
    pub fn scrub(&self, keep: impl Fn(&str) -> bool) -> Result<usize, AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let owed = |record: &AuditRecord| record.v >= 2 && record.subjects.iter().any(|s| scrubs(s, &keep));
        let mut scrubbed = 0;
        let walked = walk(&self.path, None, &mut |_, record| {
            if owed(record) {
                scrubbed += record.subjects.iter().filter(|s| scrubs(s, &keep)).count();
            }
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
        let mut index = Index::default();
        let mut end = 0u64;
        let mut failed = None;
        let rewalked = walk(&self.path, None, &mut |_, record| {
            if failed.is_some() {
                return;
            }
            let mut record = record.clone();
            if owed(&record) {
                for subject in record.subjects.iter_mut().filter(|s| scrubs(s, &keep)) {
                    *subject = subject_digest(subject);
                }
            }
            let written = serde_json::to_vec(&record)
                .map_err(std::io::Error::other)
                .and_then(|line| out.write_all(&line).and_then(|()| out.write_all(b"\n")).map(|()| line.len() + 1));
            match written {
                Ok(length) => {
                    index.add(end, &record);
                    end += length as u64;
                }
                Err(error) => failed = Some(error),
            }
        })?;
        if let Some(problem) = rewalked.verified.first_bad {
            return Err(AuditError::Broken { path: self.path.display().to_string(), problem });
        }
        if let Some(error) = failed {
            return Err(tmp_io(error));
        }
        let file = out.into_inner().map_err(|error| tmp_io(error.into_error()))?;
        file.sync_all().map_err(tmp_io)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| self.io(e))?;
        }
        tail.file = crate::log::fsmode::private_file().append(true).open(&self.path).map_err(|e| self.io(e))?;
        tail.end = end;
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(scrubbed)
    }

    /// Copies the records appended so far into `dest_data_dir` (a backup)
    /// and returns how many. The file is opened and its length read under
    /// the append lock, so the copy ends at a whole record; appends go on
    /// meanwhile, and a scrub renaming a new file over reads nothing from
    /// the handle already open.
    pub fn copy_to(&self, dest_data_dir: &Path) -> Result<u64, AuditError> {
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
        self.index.lock().unwrap_or_else(|p| p.into_inner()).by_purpose.clone()
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io { path: self.path.display().to_string(), source }
    }

    /// Every record naming `subject`, oldest first: read at the offsets the
    /// index holds, without the append lock (records before the end are
    /// never rewritten, and an offset is indexed only once its record is
    /// fully written).
    pub fn records_about(&self, subject: &str) -> Result<Vec<AuditRecord>, AuditError> {
        let offsets = self.index.lock().unwrap_or_else(|p| p.into_inner()).by_subject.offsets(subject);
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
    let mut verified = Verified { records: 0, last_hash: GENESIS.to_string(), first_bad: None, torn_bytes: 0 };
    let mut walked_end = 0u64;
    let mut hash_at_head = (at == Some(0)).then(|| GENESIS.to_string());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Walked { verified, end: 0, hash_at_head, unterminated: false })
        }
        Err(source) => return Err(AuditError::Io { path: path.display().to_string(), source }),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut unterminated = false;
    for number in 1u64.. {
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
}
