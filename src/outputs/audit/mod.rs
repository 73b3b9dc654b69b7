//! The disclosure audit log: every time a subject's data leaves proviso to a
//! partner, one hash-chained record says who got it, for what purpose, when
//! and about whom (as subject ids, never numbers).
//!
//! Owns: `audit/disclosures.log` in the data dir (NDJSON, one record per
//! line, each carrying the hash of the previous one), appending durably
//! before the response leaves, reading a subject's disclosures back, and
//! `verify`, which names the first altered, removed or reordered record.
//! Never: rewrites or deletes a past record.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Sub-directory of the data dir holding the audit log.
pub const AUDIT_DIR: &str = "audit";
/// The audit log file.
pub const AUDIT_FILE: &str = "disclosures.log";
/// `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// Subject ids involved.
    pub subjects: Vec<String>,
    /// Hash of the previous record (hex).
    pub prev: String,
    /// BLAKE3 of `prev` and this record's fields (hex).
    pub hash: String,
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
            &self.subjects.join(","),
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

struct Tail {
    file: File,
    next_seq: u64,
    last_hash: String,
}

/// The open audit log. Appends are serialized by a mutex.
pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<Tail>,
    /// Disclosure records by purpose, since the log began.
    by_purpose: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl AuditLog {
    /// Opens (or creates) the log in `data_dir`, verifying the chain so
    /// appends continue it.
    pub fn open(data_dir: &Path) -> Result<AuditLog, AuditError> {
        let dir = data_dir.join(AUDIT_DIR);
        let path = dir.join(AUDIT_FILE);
        let io = |source| AuditError::Io { path: path.display().to_string(), source };
        crate::log::fsmode::create_private_dir(&dir).map_err(io)?;
        let (next_seq, last_hash) = match verify(&path)? {
            Verified { records, last_hash, first_bad: None } => (records, last_hash),
            Verified { first_bad: Some(problem), .. } => {
                return Err(AuditError::Broken { path: path.display().to_string(), problem })
            }
        };
        let mut by_purpose = std::collections::BTreeMap::new();
        if next_seq > 0 {
            let file = File::open(&path).map_err(io)?;
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if let Ok(record) = serde_json::from_str::<AuditRecord>(&line) {
                    *by_purpose.entry(record.purpose).or_default() += 1;
                }
            }
        }
        let file = crate::log::fsmode::private_file().create(true).append(true).open(&path).map_err(io)?;
        Ok(AuditLog { path, tail: Mutex::new(Tail { file, next_seq, last_hash }), by_purpose: Mutex::new(by_purpose) })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        let mut record = AuditRecord {
            seq: tail.next_seq,
            at_ms,
            recipient: recipient.to_string(),
            purpose: purpose.to_string(),
            kind: kind.to_string(),
            subjects,
            prev: tail.last_hash.clone(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let mut line = serde_json::to_vec(&record).map_err(|e| self.io(std::io::Error::other(e)))?;
        line.push(b'\n');
        tail.file.write_all(&line).map_err(|e| self.io(e))?;
        tail.file.sync_data().map_err(|e| self.io(e))?;
        tail.next_seq += 1;
        tail.last_hash = record.hash;
        *self.by_purpose.lock().unwrap_or_else(|p| p.into_inner()).entry(record.purpose).or_default() += 1;
        Ok(record.seq)
    }

    /// Disclosure records by purpose, since the log began.
    pub fn counts_by_purpose(&self) -> std::collections::BTreeMap<String, u64> {
        self.by_purpose.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io { path: self.path.display().to_string(), source }
    }

    /// Every record naming `subject`, oldest first.
    pub fn records_about(&self, subject: &str) -> Result<Vec<AuditRecord>, AuditError> {
        let _tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let file = File::open(&self.path).map_err(|e| self.io(e))?;
        let mut found = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| self.io(e))?;
            if !line.contains(subject) {
                continue;
            }
            if let Ok(record) = serde_json::from_str::<AuditRecord>(&line) {
                if record.subjects.iter().any(|s| s == subject) {
                    found.push(record);
                }
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
}

/// Checks the chain: each record's `seq` follows the previous one, its
/// `prev` is the previous record's hash and its `hash` matches its fields.
/// A missing file is an empty, valid log.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    let mut verified = Verified { records: 0, last_hash: GENESIS.to_string(), first_bad: None };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(verified),
        Err(source) => return Err(AuditError::Io { path: path.display().to_string(), source }),
    };
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| AuditError::Io { path: path.display().to_string(), source })?;
        let number = index + 1;
        let expected = verified.records;
        let problem = match serde_json::from_str::<AuditRecord>(&line) {
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
                verified.records += 1;
                verified.last_hash = record.hash;
                None
            }
        };
        if problem.is_some() {
            verified.first_bad = problem;
            break;
        }
    }
    Ok(verified)
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
}
