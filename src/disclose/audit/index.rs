//! What the audit log keeps to answer without reading it all: the records
//! by purpose, and by handle the offsets of the records naming it.
//!
//! Owns: the pairs of the newest records in memory (`by_subject`), sealed
//! into a run on disk (`runs`) once they are [`SEAL_PAIRS`]; which runs are
//! in use; planning a merge of the newest runs and putting its result in
//! their place (the merge itself runs on a thread of `mod.rs`, off the
//! append path); counts by purpose.
//! Never: reads or writes the audit log, or decides that a record names a
//! handle (a key may be shared: the reader checks each record).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::by_subject::{key_of, BySubject};
use super::runs::{self, Covers, Run};

/// Pairs held in memory before they are sealed into a run: 12 MiB.
pub(super) const SEAL_PAIRS: usize = 1 << 20;

/// The last record indexed: where the next seal's range ends.
struct Last {
    seq: u64,
    hash: String,
    offset: u64,
}

pub(super) struct Index {
    /// Records by purpose, since the log began (runs and memory).
    by_purpose: BTreeMap<String, u64>,
    /// Records by purpose since the last seal.
    unsealed_purposes: BTreeMap<String, u64>,
    /// Pairs of the records since the last seal.
    by_subject: BySubject,
    /// Sealed runs, oldest first, covering the log from byte 0 to
    /// `sealed_end` without a gap.
    runs: Vec<Arc<Run>>,
    /// Where runs are written.
    dir: PathBuf,
    sealed_end: u64,
    last: Option<Last>,
    seal_at: usize,
    /// Pairs at which the next seal is tried (above `seal_at` after a
    /// seal failed: a full disk is not tried again at every record).
    next_seal: usize,
    /// Bumped when the whole index is replaced (a scrub): a merge planned
    /// before is not put in.
    pub generation: u64,
}

/// Where an open goes on indexing the log: after the last run.
pub(super) struct Resume {
    pub offset: u64,
    pub records: u64,
    pub last_hash: String,
}

/// What the index takes of a record.
pub(super) struct Indexed<'a> {
    pub seq: u64,
    pub hash: &'a str,
    pub purpose: &'a str,
    pub subjects: &'a [String],
}

/// A lookup taken under the lock and finished outside it.
pub(super) struct Lookup {
    key: u32,
    runs: Vec<Arc<Run>>,
    unsealed: Vec<u64>,
}

impl Lookup {
    /// Offsets, ascending, of the records naming a handle with the key.
    pub fn offsets(self) -> std::io::Result<Vec<u64>> {
        let mut offsets = Vec::new();
        for run in &self.runs {
            offsets.extend(run.offsets(self.key)?);
        }
        offsets.extend(self.unsealed);
        Ok(offsets)
    }
}

/// A merge to make: the runs at `from` in the index of `generation`.
pub(super) struct MergePlan {
    pub generation: u64,
    pub from: usize,
    pub runs: Vec<Arc<Run>>,
    pub dir: PathBuf,
}

impl Index {
    /// An index over `runs` (from `runs::open_runs`), writing new runs to
    /// `dir` every `seal_at` pairs.
    pub fn new(dir: PathBuf, seal_at: usize, runs: Vec<Arc<Run>>) -> Index {
        let mut by_purpose = BTreeMap::new();
        for run in &runs {
            for (purpose, count) in &run.covers.by_purpose {
                *by_purpose.entry(purpose.clone()).or_insert(0) += count;
            }
        }
        let last = runs.last().map(|run| Last {
            seq: run.covers.last_seq,
            hash: run.covers.last_hash.clone(),
            offset: run.covers.last_offset,
        });
        let sealed_end = runs.last().map_or(0, |run| run.covers.end);
        Index {
            by_purpose,
            unsealed_purposes: BTreeMap::new(),
            by_subject: BySubject::default(),
            runs,
            dir,
            sealed_end,
            last,
            seal_at: seal_at.max(1),
            next_seal: seal_at.max(1),
            generation: 0,
        }
    }

    /// Where the log's records not in a run start (`None`: at its start).
    pub fn resume(&self) -> Option<Resume> {
        self.runs.last().map(|run| Resume {
            offset: run.covers.end,
            records: run.covers.last_seq + 1,
            last_hash: run.covers.last_hash.clone(),
        })
    }

    /// Indexes the record at `offset` (records come in log order): its
    /// sequence and hash, purpose and the handles it names. Returns whether
    /// a run was sealed first.
    pub fn add(&mut self, offset: u64, record: Indexed<'_>) -> bool {
        let sealed = self.by_subject.len() >= self.next_seal && self.seal(offset);
        *self.by_purpose.entry(record.purpose.to_string()).or_default() += 1;
        *self.unsealed_purposes.entry(record.purpose.to_string()).or_default() += 1;
        self.by_subject.add(offset, record.subjects);
        self.last = Some(Last { seq: record.seq, hash: record.hash.to_string(), offset });
        sealed
    }

    /// Writes the pairs in memory as the run covering the log up to `end`
    /// (where the record about to be indexed starts). On failure they stay
    /// in memory and the next try waits for twice as many.
    fn seal(&mut self, end: u64) -> bool {
        let Some(last) = &self.last else { return false };
        let covers = Covers {
            start: self.sealed_end,
            end,
            last_seq: last.seq,
            last_hash: last.hash.clone(),
            last_offset: last.offset,
            by_purpose: self.unsealed_purposes.clone(),
        };
        let pairs = self.by_subject.take_sorted();
        match Run::write(&self.dir, covers, pairs.iter().copied()) {
            Ok(run) => {
                self.runs.push(Arc::new(run));
                self.sealed_end = end;
                self.unsealed_purposes.clear();
                self.next_seal = self.seal_at;
                true
            }
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "Could not seal audit index pairs into a run; they stay in memory.");
                for (key, offset) in pairs {
                    self.by_subject.add_key(offset, key);
                }
                self.next_seal = self.by_subject.len().saturating_mul(2);
                false
            }
        }
    }

    /// The lookup of `subject`'s records: the runs to read and the offsets
    /// in memory.
    pub fn lookup(&self, subject: &str) -> Lookup {
        self.lookup_key(key_of(subject))
    }

    /// The lookup of the records naming any handle with `key`.
    pub fn lookup_key(&self, key: u32) -> Lookup {
        Lookup { key, runs: self.runs.clone(), unsealed: self.by_subject.offsets(key) }
    }

    pub fn counts_by_purpose(&self) -> BTreeMap<String, u64> {
        self.by_purpose.clone()
    }

    /// The merge due now, if any.
    pub fn merge_plan(&self) -> Option<MergePlan> {
        let from = runs::merge_due(&self.runs, self.seal_at)?;
        Some(MergePlan { generation: self.generation, from, runs: self.runs[from..].to_vec(), dir: self.dir.clone() })
    }

    /// Puts a merge's result in place of the runs it merged; `false` (and
    /// the caller deletes the result) when the index changed under it.
    pub fn install(&mut self, plan: &MergePlan, merged: Run) -> bool {
        let same = plan.generation == self.generation
            && self.runs.len() >= plan.from + plan.runs.len()
            && self.runs[plan.from..plan.from + plan.runs.len()].iter().zip(&plan.runs).all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            self.runs.splice(plan.from..plan.from + plan.runs.len(), [Arc::new(merged)]);
        }
        same
    }

    /// Pairs held in memory before a seal.
    pub fn seal_at(&self) -> usize {
        self.seal_at
    }

    /// Runs in use (for tests and the heap figure).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The runs in use, for the check of their files.
    pub fn run_list(&self) -> Vec<Arc<Run>> {
        self.runs.clone()
    }

    /// Pairs held in memory.
    pub fn unsealed_pairs(&self) -> usize {
        self.by_subject.len()
    }

    /// After the directory was renamed (a scrub's new index put in place).
    pub fn moved_to(&mut self, dir: PathBuf) {
        self.dir = dir;
    }
}
