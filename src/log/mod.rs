//! Durable event log: append-only segment files, group-committed with fsync.
//!
//! Owns: the on-disk framing (`u32 len, u32 crc32, payload`), segment rolling,
//! torn-tail recovery, replay from a sequence number, the data dir lock, and
//! owner-only file modes for everything in the data dir ([`fsmode`]).
//! Never: interprets a payload (that is `contract::codec`) or rewrites an
//! acknowledged record.

pub mod fsmode;
mod lock;

pub use lock::{DirLock, LockError};

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Bytes of framing before each payload.
pub const FRAME_HEADER: usize = 8;
/// Segments roll over at this size; replay and compaction work per segment.
pub const DEFAULT_SEGMENT_BYTES: u64 = 256 << 20;
/// Largest payload accepted (a 10k-contact snapshot is ~160 KB).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log i/o on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("log segment {path} is corrupt at byte {offset} (not at its tail): {detail}")]
    Corrupt { path: String, offset: u64, detail: &'static str },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.display().to_string(), source }
}

/// Appends one framed payload to `buffer`.
pub fn frame(payload: &[u8], buffer: &mut Vec<u8>) {
    buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buffer.extend_from_slice(payload);
}

/// Frames a payload produced by `write` directly in `buffer` (no copy).
pub fn frame_with(buffer: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0u8; FRAME_HEADER]);
    write(buffer);
    let payload_len = buffer.len() - start - FRAME_HEADER;
    let crc = crc32fast::hash(&buffer[start + FRAME_HEADER..]);
    buffer[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The writable log. One per data dir (the [`DirLock`] enforces it).
pub struct Log {
    dir: PathBuf,
    segment_bytes: u64,
    /// Sequence number of the next record to append.
    next_seq: u64,
    active: File,
    active_len: u64,
    /// Bytes in closed segments, for the `proviso_log_size_bytes` gauge.
    closed_bytes: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`, cutting a torn tail left by a crash.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<Log, LogError> {
        fsmode::create_private_dir(dir).map_err(io_err(dir))?;
        let segments = list_segments(dir)?;
        let (base, closed_bytes) = match segments.last() {
            Some(&(base, _)) => {
                let mut closed = 0;
                for (_, path) in &segments[..segments.len() - 1] {
                    closed += fs::metadata(path).map_err(io_err(path))?.len();
                }
                (base, closed)
            }
            None => (0, 0),
        };
        let path = segment_path(dir, base);
        let mut active = fsmode::private_file()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let scan = scan_segment(&path, &mut active, true)?;
        if scan.valid_len < active.metadata().map_err(io_err(&path))?.len() {
            tracing::warn!(segment = %path.display(), kept_bytes = scan.valid_len, "Cut a torn tail from the log; no acknowledged record is lost.");
            active.set_len(scan.valid_len).map_err(io_err(&path))?;
            active.sync_all().map_err(io_err(&path))?;
        }
        active.seek(SeekFrom::Start(scan.valid_len)).map_err(io_err(&path))?;
        sync_dir(dir)?;
        Ok(Log {
            dir: dir.to_path_buf(),
            segment_bytes,
            next_seq: base + scan.records,
            active,
            active_len: scan.valid_len,
            closed_bytes,
        })
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn size_bytes(&self) -> u64 {
        self.closed_bytes + self.active_len
    }

    /// Appends `count` already framed records and makes them durable (one
    /// fsync for the whole group). Returns the sequence number of the first.
    pub fn append_framed(&mut self, framed: &[u8], count: u64) -> Result<u64, LogError> {
        if count == 0 {
            return Ok(self.next_seq);
        }
        if self.active_len > 0 && self.active_len + framed.len() as u64 > self.segment_bytes {
            self.roll()?;
        }
        let path = segment_path(&self.dir, self.next_seq);
        crate::failpoint::write_all("log.write", &mut self.active, framed).map_err(io_err(&path))?;
        crate::failpoint::check("log.fsync").map_err(io_err(&path))?;
        self.active.sync_data().map_err(io_err(&path))?;
        let first = self.next_seq;
        self.active_len += framed.len() as u64;
        self.next_seq += count;
        Ok(first)
    }

    fn roll(&mut self) -> Result<(), LogError> {
        let path = segment_path(&self.dir, self.next_seq);
        let file = fsmode::private_file().create_new(true).read(true).write(true).open(&path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.closed_bytes += self.active_len;
        self.active = file;
        self.active_len = 0;
        tracing::info!(segment = %path.display(), "Log segment rolled.");
        Ok(())
    }
}

/// Replays every record with sequence number ≥ `from_seq`, in order.
/// A torn tail on the last segment ends the replay silently.
pub fn replay(
    dir: &Path,
    from_seq: u64,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), LogError>,
) -> Result<u64, LogError> {
    let segments = list_segments(dir)?;
    let mut seq = from_seq;
    for (index, (base, path)) in segments.iter().enumerate() {
        let next_base = segments.get(index + 1).map(|(b, _)| *b);
        if next_base.is_some_and(|next| next <= from_seq) {
            continue;
        }
        let is_last = index + 1 == segments.len();
        let file = File::open(path).map_err(io_err(path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut record_seq = *base;
        let mut offset = 0u64;
        let mut payload = Vec::new();
        loop {
            match read_record(&mut reader, &mut payload) {
                Ok(Some(len)) => {
                    if record_seq >= from_seq {
                        on_record(record_seq, &payload)?;
                        seq = record_seq + 1;
                    }
                    record_seq += 1;
                    offset += len;
                }
                Ok(None) => break,
                Err(detail) if is_last => {
                    tracing::warn!(segment = %path.display(), offset, detail, "Replay stopped at a torn log tail.");
                    break;
                }
                Err(detail) => {
                    return Err(LogError::Corrupt { path: path.display().to_string(), offset, detail });
                }
            }
        }
    }
    Ok(seq)
}

struct Scan {
    records: u64,
    valid_len: u64,
}

fn scan_segment(path: &Path, file: &mut File, is_last: bool) -> Result<Scan, LogError> {
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, &*file);
    let mut payload = Vec::new();
    let mut scan = Scan { records: 0, valid_len: 0 };
    loop {
        match read_record(&mut reader, &mut payload) {
            Ok(Some(len)) => {
                scan.records += 1;
                scan.valid_len += len;
            }
            Ok(None) => return Ok(scan),
            Err(_) if is_last => return Ok(scan),
            Err(detail) => {
                return Err(LogError::Corrupt { path: path.display().to_string(), offset: scan.valid_len, detail })
            }
        }
    }
}

/// Reads one framed record. `Ok(None)` at a clean end of file; `Err` names
/// what is wrong with a torn or corrupt record.
pub fn read_record(reader: &mut impl Read, payload: &mut Vec<u8>) -> Result<Option<u64>, &'static str> {
    let mut header = [0u8; FRAME_HEADER];
    match read_full(reader, &mut header) {
        0 => return Ok(None),
        FRAME_HEADER => {}
        _ => return Err("truncated record header"),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES {
        return Err("record length out of range");
    }
    payload.resize(len, 0);
    if read_full(reader, payload) != len {
        return Err("truncated record payload");
    }
    if crc32fast::hash(payload) != crc {
        return Err("record checksum mismatch");
    }
    Ok(Some((FRAME_HEADER + len) as u64))
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    filled
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        segments.push((base, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Makes a directory's entries (new or renamed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn collect(dir: &Path, from: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        replay(dir, from, |seq, payload| {
            out.push((seq, payload.to_vec()));
            Ok(())
        })
        .expect("replay");
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Append then replay returns the same records in order, across
        /// segment rolls and reopenings, from any starting sequence.
        #[test]
        fn append_then_replay_returns_same_records(
            batches in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6), 1..8),
            from in 0u64..20,
        ) {
            let temp = tempfile::tempdir().expect("tempdir");
            let mut expected = Vec::new();
            for batch in &batches {
                let mut log = Log::open(temp.path(), 64).expect("open");
                let mut framed = Vec::new();
                for payload in batch {
                    frame(payload, &mut framed);
                    expected.push(payload.clone());
                }
                log.append_framed(&framed, batch.len() as u64).expect("append");
            }
            let replayed = collect(temp.path(), from);
            let wanted: Vec<(u64, Vec<u8>)> = expected.into_iter().enumerate().map(|(i, p)| (i as u64, p)).filter(|(i, _)| *i >= from).collect();
            prop_assert_eq!(replayed, wanted);
        }
    }

    /// A crash mid-write leaves a torn tail; reopening cuts it and keeps every
    /// complete record.
    #[test]
    fn reopen_cuts_torn_tail_and_keeps_complete_records() {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("open");
        let mut framed = Vec::new();
        frame(b"one", &mut framed);
        frame(b"two", &mut framed);
        log.append_framed(&framed, 2).expect("append");
        drop(log);
        let path = segment_path(temp.path(), 0);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open segment");
        file.write_all(&[9, 0, 0, 0, 1, 2]).expect("torn write");
        drop(file);
        let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("reopen");
        assert_eq!(log.next_seq(), 2);
        let mut framed = Vec::new();
        frame(b"three", &mut framed);
        log.append_framed(&framed, 1).expect("append after recovery");
        let payloads: Vec<Vec<u8>> = collect(temp.path(), 0).into_iter().map(|(_, p)| p).collect();
        assert_eq!(payloads, vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    }
}
