//! What the audit log's scrub owes: the index key (4 bytes of the hash of
//! the `r_` handle) of every secret destroyed since the log was last
//! scrubbed, so the scrub rewrites only the records that may name them
//! instead of reading all of history.
//!
//! Owns: `vault/scrub-owed.bin`: one byte saying whether the list can be
//! trusted, then the keys, appended by [`crate::vault::Vault::forget`]
//! before the secret is destroyed (and, on a cluster's node, by
//! `Vault::list_unless_live` before a handle no live secret stands for is
//! written).
//! Never: holds a handle or anything a handle can be derived from (a key
//! is 32 bits of a hash of the handle, shared by many handles), or says a
//! list is whole that missed an erasure: a list is trusted when it was
//! started for an audit log with no record, or once a full scrub ran after
//! the file was made; a dir without the file (a restored backup, a dir
//! from before it existed) owes a full scrub. Whoever can write the data
//! dir can remove a key, and could as well rewrite the audit log itself.

use std::io::{Read, Write};
use std::path::Path;

/// The file in the vault dir.
pub const SCRUB_OWED_FILE: &str = "scrub-owed.bin";
/// First byte: the keys since the file was made are listed, but erasures
/// before it were not: a full scrub is owed.
const UNTRUSTED: u8 = 0;
/// First byte: every secret destroyed since the last scrub has its key
/// listed.
const TRUSTED: u8 = 1;
/// Bytes of one key.
pub const KEY: usize = 4;

/// What the audit log's next scrub must cover.
#[derive(Debug, PartialEq, Eq)]
pub enum ScrubOwed {
    /// Every record: the list cannot be trusted.
    Everything { read: u64 },
    /// The records naming a handle with one of these keys.
    Keys { keys: Vec<[u8; KEY]>, read: u64 },
}

impl ScrubOwed {
    /// The file's length when read: [`settle`] keeps what was appended
    /// after it.
    pub fn read(&self) -> u64 {
        match self {
            ScrubOwed::Everything { read } | ScrubOwed::Keys { read, .. } => *read,
        }
    }
}

/// Reads the list, making the file (untrusted) when there is none, so the
/// erasures from now on are listed while the full scrub it owes runs.
pub fn read(path: &Path) -> std::io::Result<ScrubOwed> {
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)?;
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            write_whole(path, &[UNTRUSTED])?;
            return Ok(ScrubOwed::Everything { read: 1 });
        }
        Err(error) => return Err(error),
    }
    let read = bytes.len() as u64;
    match bytes.first() {
        Some(&TRUSTED) => {
            let keys = bytes[1..]
                .chunks_exact(KEY)
                .map(|chunk| {
                    let mut key = [0u8; KEY];
                    key.copy_from_slice(chunk);
                    key
                })
                .collect();
            Ok(ScrubOwed::Keys { keys, read })
        }
        _ => Ok(ScrubOwed::Everything { read }),
    }
}

/// Starts a whole, empty list where there is none (the audit log holds no
/// record, so no handle is owed a scrub); returns whether it did.
pub fn start_whole(path: &Path) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    write_whole(path, &[TRUSTED])?;
    Ok(true)
}

/// Appends `keys` (fsynced) if the file exists; without it a full scrub is
/// owed anyway. On failure (a full disk may take part of them) the file is
/// cut back to where it was, so the next keys stay in step; if it cannot
/// be, it is removed, and the next scrub covers the whole log.
pub fn append(path: &Path, keys: &[u8]) -> std::io::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut file = match crate::log::fsmode::private_file().append(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let before = file.metadata()?.len();
    let written = crate::failpoint::write_all("vault.scrub_owed", &mut file, keys).and_then(|()| file.sync_data());
    if written.is_err() && file.set_len(before).and_then(|()| file.sync_all()).is_err() {
        std::fs::remove_file(path)?;
    }
    written
}

/// After a scrub that covered what [`read`] returned: the list is trusted
/// and holds only the keys appended since.
pub fn settle(path: &Path, read: u64) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let since = bytes.get(read as usize..).unwrap_or_default();
    let mut out = Vec::with_capacity(1 + since.len());
    out.push(TRUSTED);
    out.extend_from_slice(&since[..since.len() - since.len() % KEY]);
    write_whole(path, &out)
}

/// Cuts a torn last key (a crash mid-append) so later keys stay in step;
/// its secret was not destroyed, so the next start forgets it again.
pub fn cut_torn(path: &Path) -> std::io::Result<()> {
    let length = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let torn = length.saturating_sub(1) % KEY as u64;
    if length > 0 && torn != 0 {
        let file = crate::log::fsmode::private_file().write(true).open(path)?;
        file.set_len(length - torn)?;
        file.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` aside, fsyncs, renames over `path` and fsyncs the dir.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("bin.tmp");
    let mut file = crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_trusted_only_after_a_scrub_and_keeps_keys_added_during_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SCRUB_OWED_FILE);
        append(&path, &[1, 2, 3, 4]).expect("no file: nothing to list");
        assert!(!path.exists());
        assert_eq!(read(&path).expect("read"), ScrubOwed::Everything { read: 1 });
        append(&path, &[1, 1, 1, 1]).expect("append");
        let owed = read(&path).expect("read");
        assert_eq!(owed, ScrubOwed::Everything { read: 5 }, "keys listed, but erasures before the file were not");
        append(&path, &[2, 2, 2, 2]).expect("during the scrub");
        settle(&path, owed.read()).expect("settle");
        assert_eq!(read(&path).expect("read"), ScrubOwed::Keys { keys: vec![[2; 4]], read: 5 });
        append(&path, &[3, 3, 3]).expect("a torn key");
        cut_torn(&path).expect("cut");
        append(&path, &[4, 4, 4, 4]).expect("append");
        let owed = read(&path).expect("read");
        assert_eq!(owed, ScrubOwed::Keys { keys: vec![[2; 4], [4; 4]], read: 9 });
        settle(&path, owed.read()).expect("settle");
        assert_eq!(read(&path).expect("read"), ScrubOwed::Keys { keys: vec![], read: 1 });
    }
}
