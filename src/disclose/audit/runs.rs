//! The audit index's sealed runs: the (key, offset) pairs of the older part
//! of the audit log, in sorted, immutable files under `audit/index/`.
//!
//! Owns: writing a run (the pairs of a contiguous byte range of the log,
//! sorted, with a header saying which range, which record ends it and how
//! many records of each purpose it covers), finding a key's offsets in a
//! run (a key every [`FENCE`] pairs is held in memory, so a lookup is one
//! read of at most a block), merging the newest runs of one size into one
//! (so there are a few runs a size, and each pair is rewritten a few times
//! over the log's life), and choosing, at open, the runs that cover the log
//! from its first byte without a gap.
//! Never: decides what a record names (the caller gives the pairs), holds
//! a handle (only its 32-bit key), or reads the audit log itself.
//!
//! Why: the audit log keeps every disclosure for good. Held in memory, its
//! index grows with all of history (12 bytes a (record, handle) pair: a
//! year of daily suggestions for 200,000 people is about 36 GB), and
//! opening the log meant reading all of it. With runs, memory holds the
//! pairs of the records since the last seal and the fences, and an open
//! reads only the records after the last run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A key is held in memory for every this many pairs of a run.
pub(super) const FENCE: usize = 2048;
/// The newest runs are merged once this many of one size follow each other.
pub(super) const MERGE_FAN_IN: usize = 4;
/// First bytes of every run file (`PVAIDX01` runs, without the hash at the
/// end, are dropped at open and their records indexed again).
const MAGIC: &[u8; 8] = b"PVAIDX02";
/// The end of every run file: pair count and fence count (u64 each), then
/// the BLAKE3 hash of every byte before it.
const TRAILER: u64 = 16 + 32;
/// Bytes of one pair on file: key (u32) and offset (u64), little-endian.
const PAIR_BYTES: usize = 12;

/// What a run covers, stored at the head of its file (JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Covers {
    /// The log's bytes `[start, end)`: whole records.
    pub start: u64,
    pub end: u64,
    /// The sequence and hash of the last record in that range, and where it
    /// starts: an open checks the log still holds that record there.
    pub last_seq: u64,
    pub last_hash: String,
    pub last_offset: u64,
    /// Records of each purpose in the range.
    pub by_purpose: BTreeMap<String, u64>,
}

/// One sealed run, open for reading.
pub(super) struct Run {
    pub covers: Covers,
    /// The file's name in its directory (which a scrub may rename).
    name: String,
    file: File,
    /// Where the pairs start in the file.
    body: u64,
    count: u64,
    /// The key of pair `i * FENCE`, for every `i`.
    fences: Vec<u32>,
}

fn io_at(name: &str) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |error| std::io::Error::new(error.kind(), format!("audit index run {name}: {error}"))
}

fn run_name(covers: &Covers) -> String {
    format!("run-{:016x}-{:016x}.idx", covers.start, covers.end)
}

impl Run {
    /// Writes `pairs` (sorted by key, then offset) as the run covering
    /// `covers` in `dir`: aside, fsynced, renamed into place.
    pub fn write(dir: &Path, covers: Covers, pairs: impl Iterator<Item = (u32, u64)>) -> std::io::Result<Run> {
        let name = run_name(&covers);
        let path = dir.join(&name);
        let tmp = path.with_extension("idx.tmp");
        let header = serde_json::to_vec(&covers).map_err(std::io::Error::other)?;
        let file = crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&tmp)?;
        let mut out = Hashing { out: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new() };
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u32).to_le_bytes())?;
        out.write_all(&header)?;
        let mut fences = Vec::new();
        let mut count = 0u64;
        for (key, offset) in pairs {
            if count.is_multiple_of(FENCE as u64) {
                fences.push(key);
            }
            out.write_all(&key.to_le_bytes())?;
            out.write_all(&offset.to_le_bytes())?;
            count += 1;
        }
        for fence in &fences {
            out.write_all(&fence.to_le_bytes())?;
        }
        out.write_all(&count.to_le_bytes())?;
        out.write_all(&(fences.len() as u64).to_le_bytes())?;
        let hash = out.hasher.finalize();
        out.out.write_all(hash.as_bytes())?;
        let file = out.out.into_inner().map_err(|error| error.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()?;
        let body = (MAGIC.len() + 4 + header.len()) as u64;
        Ok(Run { covers, file: File::open(&path)?, name, body, count, fences })
    }

    /// Opens a run file, checking its head and lengths, and reads its
    /// fences (not its pairs: an open costs the fences, a 2,048th of the
    /// pairs).
    fn open(path: &Path) -> std::io::Result<Run> {
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let file = File::open(path)?;
        let length = file.metadata()?.len();
        let mut head = [0u8; 12];
        file.read_exact_at(&mut head, 0)?;
        if &head[..8] != MAGIC {
            return Err(invalid("not an audit index run"));
        }
        let header_len = u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]));
        let body = 12 + header_len;
        let mut trailer = [0u8; 16];
        if length < body + TRAILER {
            return Err(invalid("a run cut short"));
        }
        file.read_exact_at(&mut trailer, length - TRAILER)?;
        let count = u64::from_le_bytes(trailer[..8].try_into().unwrap_or_default());
        let fence_count = u64::from_le_bytes(trailer[8..].try_into().unwrap_or_default());
        let expected = count
            .checked_mul(PAIR_BYTES as u64)
            .and_then(|pairs| fence_count.checked_mul(4).and_then(|fences| pairs.checked_add(fences)))
            .and_then(|bytes| bytes.checked_add(body + TRAILER));
        if expected != Some(length) || fence_count != count.div_ceil(FENCE as u64) {
            return Err(invalid("a run's lengths do not add up"));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact_at(&mut header, 12)?;
        let covers: Covers = serde_json::from_slice(&header).map_err(|_| invalid("a run's head is not readable"))?;
        let mut bytes = vec![0u8; fence_count as usize * 4];
        file.read_exact_at(&mut bytes, body + count * PAIR_BYTES as u64)?;
        let fences = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        Ok(Run { covers, name, file, body, count, fences })
    }

    /// Whether the file still hashes to the hash it ends with: a run
    /// altered on disk (bit rot, or a hand) would hide records from a
    /// lookup, and an erasure's scrub in place finds records by lookup.
    pub fn intact(&self) -> std::io::Result<bool> {
        let length = self.file.metadata()?.len();
        let hashed = length.saturating_sub(32);
        let mut reader = BufReader::with_capacity(1 << 20, &self.file).take(hashed);
        let mut hasher = blake3::Hasher::new();
        std::io::copy(&mut reader, &mut hasher)?;
        let mut stored = [0u8; 32];
        self.file.read_exact_at(&mut stored, hashed)?;
        Ok(hasher.finalize().as_bytes() == &stored)
    }

    /// Offsets, ascending, of the pairs with `key`.
    pub fn offsets(&self, key: u32) -> std::io::Result<Vec<u64>> {
        // Blocks before `from` end below the key (the next block starts at
        // or below it); blocks from `to` on start above it.
        let from = self.fences.partition_point(|&fence| fence < key).saturating_sub(1);
        let to = self.fences.partition_point(|&fence| fence <= key);
        if to <= from {
            return Ok(Vec::new());
        }
        let first = (from * FENCE) as u64;
        let last = ((to * FENCE) as u64).min(self.count);
        let mut bytes = vec![0u8; ((last - first) as usize) * PAIR_BYTES];
        self.file.read_exact_at(&mut bytes, self.body + first * PAIR_BYTES as u64).map_err(io_at(&self.name))?;
        Ok(bytes.chunks_exact(PAIR_BYTES).map(decode).filter(|&(k, _)| k == key).map(|(_, offset)| offset).collect())
    }

    /// Every pair, in order, read from the file.
    fn pairs(&self) -> std::io::Result<impl Iterator<Item = std::io::Result<(u32, u64)>> + '_> {
        let mut reader = BufReader::with_capacity(1 << 20, &self.file);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(self.body))?;
        let mut left = self.count;
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut pair = [0u8; PAIR_BYTES];
            Some(reader.read_exact(&mut pair).map(|()| decode(&pair)))
        }))
    }

    /// The file's name in its directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This run's size class: the pairs it holds over `seal`, in powers of
    /// [`MERGE_FAN_IN`].
    fn tier(&self, seal: usize) -> u32 {
        let mut tier = 0;
        let mut size = self.count / seal.max(1) as u64;
        while size >= MERGE_FAN_IN as u64 {
            size /= MERGE_FAN_IN as u64;
            tier += 1;
        }
        tier
    }
}

/// A writer that hashes what it writes.
struct Hashing<W: Write> {
    out: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.out.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn decode(pair: &[u8]) -> (u32, u64) {
    let mut key = [0u8; 4];
    let mut offset = [0u8; 8];
    key.copy_from_slice(&pair[..4]);
    offset.copy_from_slice(&pair[4..PAIR_BYTES]);
    (u32::from_le_bytes(key), u64::from_le_bytes(offset))
}

/// The runs of `dir` that cover the log from byte 0 without a gap or an
/// overlap, oldest first; files not chosen (left by a merge a crash cut
/// off, or unreadable) are deleted. `still_holds` checks, for the chosen
/// last run, that the log still has that record at that place; when it
/// says no (the log was replaced or cut), every run is dropped and the
/// caller indexes the log from its start.
pub(super) fn open_runs(dir: &Path, still_holds: impl Fn(&Covers) -> bool) -> std::io::Result<Vec<Arc<Run>>> {
    crate::log::fsmode::create_private_dir(dir)?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if !(name.starts_with("run-") && name.ends_with(".idx")) {
            // A run a crash left half written.
            std::fs::remove_file(&path)?;
            continue;
        }
        match Run::open(&path) {
            Ok(run) => found.push(run),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "Dropped an unreadable audit index run; its records are indexed again.");
                std::fs::remove_file(&path)?;
            }
        }
    }
    // From byte 0, the run starting where the last one ended that reaches
    // furthest (a merge's result over the runs it merged, if a crash left
    // both).
    found.sort_by(|a, b| a.covers.start.cmp(&b.covers.start).then(b.covers.end.cmp(&a.covers.end)));
    let mut chosen: Vec<Run> = Vec::new();
    let mut dropped = Vec::new();
    let mut at = 0;
    for run in found {
        if run.covers.start == at && run.covers.end > at {
            at = run.covers.end;
            chosen.push(run);
        } else {
            dropped.push(run);
        }
    }
    if chosen.last().is_some_and(|last| !still_holds(&last.covers)) {
        tracing::warn!(dir = %dir.display(), "The audit log no longer matches its index runs; indexing it again.");
        dropped.append(&mut chosen);
    }
    for run in dropped {
        std::fs::remove_file(dir.join(&run.name))?;
    }
    Ok(chosen.into_iter().map(Arc::new).collect())
}

/// The first run of the newest [`MERGE_FAN_IN`] consecutive runs of one
/// size class, if any: merging them makes one run of the next class. Runs
/// sealed one at a time keep the classes falling from oldest to newest (a
/// counter in base [`MERGE_FAN_IN`]), so at most `MERGE_FAN_IN - 1` runs of
/// a class are left; a backlog (runs sealed while a merge could not run)
/// is worked off from its newest end.
pub(super) fn merge_due(runs: &[Arc<Run>], seal: usize) -> Option<usize> {
    let tiers: Vec<u32> = runs.iter().map(|run| run.tier(seal)).collect();
    (0..=tiers.len().checked_sub(MERGE_FAN_IN)?)
        .rev()
        .find(|&from| tiers[from..from + MERGE_FAN_IN].iter().all(|&tier| tier == tiers[from]))
}

/// Merges `runs` (consecutive, oldest first) into one run file in `dir`
/// covering all their bytes. The files merged are left for the caller to
/// delete once the new run is in use.
pub(super) fn merge(dir: &Path, runs: &[Arc<Run>]) -> std::io::Result<Run> {
    let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
        return Err(std::io::Error::other("no runs to merge"));
    };
    let mut by_purpose = BTreeMap::new();
    for run in runs {
        for (purpose, count) in &run.covers.by_purpose {
            *by_purpose.entry(purpose.clone()).or_insert(0) += count;
        }
    }
    let covers = Covers { start: first.covers.start, by_purpose, ..last.covers.clone() };
    // An altered run merged would hand its missing pairs on under a hash
    // that holds: the check after an open finds it first, where it is.
    for run in runs {
        if !run.intact()? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} was altered on disk: not merged", run.name),
            ));
        }
    }
    let mut sources = runs.iter().map(|run| run.pairs()).collect::<std::io::Result<Vec<_>>>()?;
    let mut heads: Vec<Option<(u32, u64)>> = Vec::with_capacity(sources.len());
    for source in sources.iter_mut() {
        heads.push(source.next().transpose()?);
    }
    let mut failed = None;
    let merged = std::iter::from_fn(|| {
        let (smallest, pair) =
            heads.iter().enumerate().filter_map(|(i, head)| head.map(|pair| (i, pair))).min_by_key(|&(_, p)| p)?;
        match sources[smallest].next().transpose() {
            Ok(next) => heads[smallest] = next,
            Err(error) => {
                failed = Some(error);
                return None;
            }
        }
        Some(pair)
    });
    let run = Run::write(dir, covers, merged)?;
    match failed {
        Some(error) => {
            let _ = std::fs::remove_file(dir.join(&run.name));
            Err(error)
        }
        None => Ok(run),
    }
}

/// Deletes the files in `dir` of runs no longer in use (their open
/// handles still read until dropped).
pub(super) fn delete(dir: &Path, runs: &[Arc<Run>]) -> std::io::Result<()> {
    for run in runs {
        match std::fs::remove_file(dir.join(&run.name)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}
