//! The redo journal of a scrub in place: the byte ranges of the log it is
//! about to overwrite and their new bytes, fsynced before the first byte of
//! the log changes, so a crash half way through leaves either the old log
//! (no whole journal: nothing was written) or a journal the next open
//! applies again.
//!
//! Owns: `audit/scrub.journal`: a magic, the entries (offset, length, the
//! bytes there before and after), and a BLAKE3 hash of all of it.
//! Never: changes a byte of the log before its journal is on disk, or
//! applies a journal that is torn, names bytes past the log's end, or does
//! not fit the log (a byte there that is neither its old nor its new one:
//! the log was replaced since, e.g. restored from a backup). The journal
//! holds the erased handles' old bytes for as long as the scrub runs, as
//! the log itself did until then; it is removed once the log is fsynced.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The journal file, in the audit dir.
pub const JOURNAL_FILE: &str = "scrub.journal";
const MAGIC: &[u8; 8] = b"PVSCRUB1";

/// New bytes for the log at `offset`, and the bytes they replace (as
/// long).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub offset: u64,
    pub old: Vec<u8>,
    pub bytes: Vec<u8>,
}

impl Patch {
    /// Where the patch ends in the log; `None` past `u64`.
    fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.bytes.len() as u64)
    }
}

fn path_in(audit_dir: &Path) -> PathBuf {
    audit_dir.join(JOURNAL_FILE)
}

fn encode(patches: &[Patch]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + patches.iter().map(|p| 12 + 2 * p.bytes.len()).sum::<usize>() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(patches.len() as u64).to_le_bytes());
    for patch in patches {
        out.extend_from_slice(&patch.offset.to_le_bytes());
        out.extend_from_slice(&(patch.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&patch.old);
        out.extend_from_slice(&patch.bytes);
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

/// The patches of a whole journal; `None` for a torn or foreign one.
fn decode(bytes: &[u8]) -> Option<Vec<Patch>> {
    let (body, hash) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != hash || !body.starts_with(MAGIC) {
        return None;
    }
    let mut rest = &body[MAGIC.len()..];
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let count = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let mut patches = Vec::new();
    for _ in 0..count {
        let offset = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let length = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let old = take(length)?.to_vec();
        patches.push(Patch { offset, old, bytes: take(length)?.to_vec() });
    }
    rest.is_empty().then_some(patches)
}

/// Writes the journal of `patches` and fsyncs it and the dir.
pub fn write(audit_dir: &Path, patches: &[Patch]) -> std::io::Result<()> {
    let path = path_in(audit_dir);
    let mut file = crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&path)?;
    file.write_all(&encode(patches))?;
    file.sync_all()?;
    std::fs::File::open(audit_dir)?.sync_all()
}

/// Overwrites the log at `log_path` with `patches` and fsyncs it.
pub fn apply(log_path: &Path, patches: &[Patch]) -> std::io::Result<()> {
    let file = crate::log::fsmode::private_file().write(true).open(log_path)?;
    let length = file.metadata()?.len();
    if let Some(past) = patches.iter().find(|p| p.end().is_none_or(|end| end > length)) {
        return Err(std::io::Error::other(format!(
            "a scrub's patch at byte {} runs past the log's end ({length} bytes)",
            past.offset
        )));
    }
    for (k, patch) in patches.iter().enumerate() {
        if k == patches.len() / 2 {
            // Half the log's patches written, the rest not: the journal
            // is what finishes them.
            crate::failpoint::reach("audit.scrub_in_place");
        }
        file.write_all_at(&patch.bytes, patch.offset)?;
    }
    file.sync_data()
}

/// Removes the journal once its patches are on disk.
pub fn remove(audit_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path_in(audit_dir)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => std::fs::File::open(audit_dir)?.sync_all(),
    }
}

/// At open, before the log is read: applies a whole journal a crash left
/// (its patches may be half written, a patch itself torn) and removes it;
/// a torn one is removed (the log was not touched yet), and so is one that
/// does not fit the log (logged: the log was replaced since). Returns the
/// patches applied.
pub fn settle(audit_dir: &Path, log_path: &Path) -> std::io::Result<usize> {
    let bytes = match std::fs::read(path_in(audit_dir)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let applied = match decode(&bytes) {
        Some(patches) if fits(log_path, &patches)? => {
            apply(log_path, &patches)?;
            patches.len()
        }
        Some(_) => {
            tracing::warn!(log = %log_path.display(), "Dropped the journal of an erasure's scrub in place: the audit log is not the one it was written for (replaced since?). The next compaction scrubs the log whole.");
            0
        }
        None => 0,
    };
    remove(audit_dir)?;
    Ok(applied)
}

/// Whether every byte each patch covers is, in the log, its old or its new
/// byte (a crash may have torn a patch anywhere).
fn fits(log_path: &Path, patches: &[Patch]) -> std::io::Result<bool> {
    let file = match std::fs::File::open(log_path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    let length = file.metadata()?.len();
    let mut there = Vec::new();
    for patch in patches {
        if patch.end().is_none_or(|end| end > length) || patch.old.len() != patch.bytes.len() {
            return Ok(false);
        }
        there.resize(patch.bytes.len(), 0);
        file.read_exact_at(&mut there, patch.offset)?;
        if !there.iter().zip(&patch.old).zip(&patch.bytes).all(|((now, old), new)| now == old || now == new) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(offset: u64, old: &[u8], new: &[u8]) -> Patch {
        Patch { offset, old: old.to_vec(), bytes: new.to_vec() }
    }

    #[test]
    fn a_whole_journal_is_applied_again_and_a_torn_one_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        std::fs::write(&log, b"aaaa bbbb cccc\n").expect("log");
        let patches = vec![patch(0, b"aa", b"xx"), patch(10, b"cccc", b"yyyy")];
        let encoded = encode(&patches);
        assert_eq!(decode(&encoded), Some(patches.clone()));
        for cut in 0..encoded.len() {
            assert_eq!(decode(&encoded[..cut]), None, "a journal cut at {cut} is torn");
        }
        // A torn journal: the log stays as it was.
        std::fs::write(path_in(dir.path()), &encoded[..encoded.len() - 1]).expect("torn");
        assert_eq!(settle(dir.path(), &log).expect("settle"), 0);
        assert_eq!(std::fs::read(&log).expect("read"), b"aaaa bbbb cccc\n");
        assert!(!path_in(dir.path()).exists());
        // A whole journal with its first patch written and the second torn
        // half way: both end up written.
        write(dir.path(), &patches).expect("write");
        apply(&log, &[patches[0].clone(), patch(10, b"cc", b"yy")]).expect("half");
        assert_eq!(settle(dir.path(), &log).expect("settle"), 2);
        assert_eq!(std::fs::read(&log).expect("read"), b"xxaa bbbb yyyy\n");
        assert!(!path_in(dir.path()).exists());
        // A patch past the log's end (or past u64) is refused, and nothing
        // is written.
        for past in [patch(14, b"\nq", b"zz"), patch(u64::MAX - 1, b"qq", b"zz")] {
            assert!(apply(&log, std::slice::from_ref(&past)).is_err());
            write(dir.path(), &[past]).expect("write");
            assert_eq!(settle(dir.path(), &log).expect("settle"), 0);
            assert_eq!(std::fs::read(&log).expect("read"), b"xxaa bbbb yyyy\n");
        }
        // A journal for another log (a byte neither old nor new) is dropped
        // whole: its other patch, which would fit, is not written either.
        std::fs::write(&log, b"aaaa bbbb qqqq\n").expect("another log");
        write(dir.path(), &patches).expect("write");
        assert_eq!(settle(dir.path(), &log).expect("settle"), 0);
        assert_eq!(std::fs::read(&log).expect("read"), b"aaaa bbbb qqqq\n");
        assert!(!path_in(dir.path()).exists());
    }
}
