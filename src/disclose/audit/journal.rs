//! The redo journal of a scrub in place: the byte ranges of the log it is
//! about to overwrite and their new bytes, fsynced before the first byte of
//! the log changes, so a crash half way through leaves either the old log
//! (no whole journal: nothing was written) or a journal the next open
//! applies again.
//!
//! Owns: `audit/scrub.journal`: a magic, the entries (offset, length,
//! bytes), and a BLAKE3 hash of all of it.
//! Never: holds an erased handle (the new bytes are digests), changes a
//! byte of the log before its journal is on disk, or applies a journal
//! that is torn or names bytes past the log's end.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The journal file, in the audit dir.
pub const JOURNAL_FILE: &str = "scrub.journal";
const MAGIC: &[u8; 8] = b"PVSCRUB1";

/// New bytes for the log at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

fn path_in(audit_dir: &Path) -> PathBuf {
    audit_dir.join(JOURNAL_FILE)
}

fn encode(patches: &[Patch]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + patches.iter().map(|p| 12 + p.bytes.len()).sum::<usize>() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(patches.len() as u64).to_le_bytes());
    for patch in patches {
        out.extend_from_slice(&patch.offset.to_le_bytes());
        out.extend_from_slice(&(patch.bytes.len() as u32).to_le_bytes());
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
        patches.push(Patch { offset, bytes: take(length)?.to_vec() });
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
    if let Some(past) = patches.iter().find(|p| p.offset + p.bytes.len() as u64 > length) {
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
/// (its patches may be half written) and removes it; a torn one is removed
/// (the log was not touched yet). Returns the patches applied.
pub fn settle(audit_dir: &Path, log_path: &Path) -> std::io::Result<usize> {
    let bytes = match std::fs::read(path_in(audit_dir)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let applied = match decode(&bytes) {
        Some(patches) => {
            apply(log_path, &patches)?;
            patches.len()
        }
        None => 0,
    };
    remove(audit_dir)?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_journal_is_applied_again_and_a_torn_one_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        std::fs::write(&log, b"aaaa bbbb cccc\n").expect("log");
        let patches = vec![Patch { offset: 0, bytes: b"xx".to_vec() }, Patch { offset: 10, bytes: b"yyyy".to_vec() }];
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
        // A whole journal with its first patch written: both end up written.
        write(dir.path(), &patches).expect("write");
        apply(&log, &patches[..1]).expect("half");
        assert_eq!(settle(dir.path(), &log).expect("settle"), 2);
        assert_eq!(std::fs::read(&log).expect("read"), b"xxaa bbbb yyyy\n");
        assert!(!path_in(dir.path()).exists());
        // A patch past the log's end is refused, and nothing is written.
        let past = [Patch { offset: 14, bytes: b"zz".to_vec() }];
        assert!(apply(&log, &past).is_err());
        assert_eq!(std::fs::read(&log).expect("read"), b"xxaa bbbb yyyy\n");
    }
}
