//! Durable event log: append-only segment files, group-committed with fsync.
//!
//! Owns: the on-disk framing (`u32 len, u32 crc32, payload`), group markers
//! (a group commit is all there or not there at all), segment rolling,
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

/// A group is written and fsynced this many bytes at a time: the group is
/// durable (and acknowledged) only after the last step, as before, but the
/// disk never holds more than this much of the log's dirty data at once. A
/// large group flushed with one fsync fills the device queue for tens of
/// milliseconds, and every small fsync of the outputs (vault, audit, feed)
/// on the same disk waits behind it. Steps of 256 KiB also ingest faster
/// than one flush per group (bench/README.md, "Log fsync steps").
pub const SYNC_STEP_BYTES: usize = 256 << 10;

/// Writes `bytes` at the end of `file` and makes them durable, one
/// [`SYNC_STEP_BYTES`] step at a time. The failpoints act on the first step
/// (a torn write then leaves a torn group, which the next open cuts).
fn write_synced(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    for (step, chunk) in bytes.chunks(SYNC_STEP_BYTES).enumerate() {
        if step == 0 {
            crate::failpoint::write_all("log.write", file, chunk)?;
            crate::failpoint::check("log.fsync")?;
        } else {
            io::Write::write_all(file, chunk)?;
        }
        file.sync_data()?;
    }
    drop_cached(file, bytes.len());
    Ok(())
}

/// Tells the kernel it may drop the page cache of the `len` bytes just
/// synced at the end of `file`: the log is read again only at a restart,
/// a compaction or a backup, so its pages are kept clean and unused. On this
/// machine kind (a VM) a page the kernel has not handed out recently is
/// expensive to write into: without this, `write`'s copy into fresh page
/// cache was 6 % of a 4x ingest's samples, 1 % with it (bench/README.md,
/// "Memory and the 4× ingest", "The log's page cache"). A hint only: failure changes nothing.
fn drop_cached(file: &File, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::io::Seek;
        use std::os::fd::AsRawFd;
        let mut handle = file;
        let Ok(end) = handle.stream_position() else { return };
        let (Ok(end), Ok(len)) = (i64::try_from(end), i64::try_from(len)) else { return };
        // SAFETY: posix_fadvise only reads its integer arguments; a closed
        // or wrong descriptor is an error return, not undefined behaviour.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), end - len, len, libc::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, len);
}

/// The length field of a group marker has this bit set (no record is that
/// long). A marker precedes every group commit and holds its record count;
/// a group cut short by a crash is dropped whole, so a batch and its
/// idempotency key (the group's last record) are kept or lost together.
/// Logs written before markers existed have none and read as before.
const MARKER_FLAG: u32 = 1 << 31;
/// Bytes of a group marker: header plus a `u64` record count.
const MARKER_BYTES: usize = FRAME_HEADER + 8;

fn marker(count: u64) -> [u8; MARKER_BYTES] {
    let payload = count.to_le_bytes();
    let mut out = [0u8; MARKER_BYTES];
    out[..4].copy_from_slice(&(MARKER_FLAG | payload.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out[8..].copy_from_slice(&payload);
    out
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log i/o on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "log segment {path} is damaged at byte {offset} ({detail}) and records follow it: this is damage, not a \
         torn write, so proviso will not start (cutting it would lose acknowledged records). `proviso log verify` \
         names every damaged record; see docs/reliability.md#faults-from-the-disk for what to do"
    )]
    Corrupt { path: String, offset: u64, detail: &'static str },
}

impl LogError {
    /// What went wrong, in words for a client: no path (it is the server's
    /// business), the disk's condition first.
    pub fn disk_fault(&self) -> String {
        match self {
            LogError::Io { source, .. } => describe_disk_error(source),
            LogError::Corrupt { detail, .. } => format!("the log is damaged: {detail}"),
        }
    }
}

/// An I/O error from a write, in words for a client or an operator: "the
/// disk is full (...)", "the disk failed (...)", or the error itself.
pub fn describe_disk_error(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(28) => format!("the disk is full: {error}"),
        Some(122) => format!("the disk quota is exhausted: {error}"),
        Some(5) => format!("the disk failed: {error}"),
        Some(30) => format!("the file system is read-only: {error}"),
        _ => format!("a write failed: {error}"),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.display().to_string(), source }
}

/// Appends one framed payload to `buffer`. Payloads are never empty (an
/// empty record does not read back).
pub fn frame(payload: &[u8], buffer: &mut Vec<u8>) {
    debug_assert!(!payload.is_empty(), "an empty log record");
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
    /// Sequence number of the active segment's first record (its name).
    active_base: u64,
    active_len: u64,
    /// Bytes in closed segments, for the `proviso_log_size_bytes` gauge.
    closed_bytes: u64,
    /// The group being written: its marker, then its records (reused).
    group: Vec<u8>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, cutting a torn tail left by a crash.
    /// Every closed segment is read whole first: damage anywhere in the log
    /// stops the start here, not a rebuild months later.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<Log, LogError> {
        let (mut log, closed) = Log::open_unverified(dir, segment_bytes)?;
        log.closed_verified(closed.verify()?);
        Ok(log)
    }

    /// [`Log::open`] in two halves, so the caller can do other work while
    /// the closed segments are read: the active segment is opened (and a
    /// torn tail cut) now; the closed segments are checked by
    /// [`ClosedSegments::verify`], whose answer goes to
    /// [`Log::closed_verified`] before the log is written or its size asked.
    /// Closed segments are never written, so reading them beside a replay
    /// of the same directory is safe.
    pub fn open_unverified(dir: &Path, segment_bytes: u64) -> Result<(Log, ClosedSegments), LogError> {
        fsmode::create_private_dir(dir).map_err(io_err(dir))?;
        let mut segments = list_segments(dir)?;
        let base = segments.last().map_or(0, |&(base, _)| base);
        segments.pop();
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
        let log = Log {
            dir: dir.to_path_buf(),
            segment_bytes,
            next_seq: base + scan.records,
            active,
            active_base: base,
            active_len: scan.valid_len,
            closed_bytes: 0,
            group: Vec::new(),
        };
        Ok((log, ClosedSegments { paths: segments.into_iter().map(|(_, path)| path).collect() }))
    }

    /// Takes the closed segments' size as [`ClosedSegments::verify`] found it.
    pub fn closed_verified(&mut self, closed_bytes: u64) {
        self.closed_bytes = closed_bytes;
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn size_bytes(&self) -> u64 {
        self.closed_bytes + self.active_len
    }

    /// Appends `count` already framed records as one group (behind its
    /// marker) and makes them durable, [`SYNC_STEP_BYTES`] at a time. Returns
    /// the sequence number of the first.
    pub fn append_framed(&mut self, framed: &[u8], count: u64) -> Result<u64, LogError> {
        if count == 0 {
            return Ok(self.next_seq);
        }
        let bytes = (MARKER_BYTES + framed.len()) as u64;
        if self.active_len > 0 && self.active_len + bytes > self.segment_bytes {
            self.roll()?;
        }
        self.group.clear();
        self.group.extend_from_slice(&marker(count));
        self.group.extend_from_slice(framed);
        let written = write_synced(&mut self.active, &self.group);
        if let Err(error) = written {
            let path = self.active_path();
            self.take_back(&path);
            return Err(io_err(&path)(error));
        }
        let first = self.next_seq;
        self.active_len += bytes;
        self.next_seq += count;
        Ok(first)
    }

    /// The active segment's path (named by its first sequence number).
    fn active_path(&self) -> PathBuf {
        segment_path(&self.dir, self.active_base)
    }

    /// After a failed append: cuts whatever part of the group reached the
    /// file (a full disk writes part of a group, then fails), so no record
    /// of an unacknowledged group is left for a restart to apply. Best
    /// effort: what it cannot cut is a torn tail that the next open cuts,
    /// or complete records of a group whose key record is missing (see
    /// docs/reliability.md).
    fn take_back(&mut self, path: &Path) {
        let cut = self
            .active
            .set_len(self.active_len)
            .and_then(|()| self.active.seek(SeekFrom::Start(self.active_len)).map(drop))
            .and_then(|()| self.active.sync_all());
        match cut {
            Ok(()) => {
                tracing::warn!(segment = %path.display(), kept_bytes = self.active_len, "Cut the failed group off the log.")
            }
            Err(error) => {
                tracing::error!(segment = %path.display(), %error, "Could not cut the failed group off the log; the next start cuts a torn tail.")
            }
        }
    }

    /// Copies the log as it stands (every record before [`Log::next_seq`])
    /// into the new directory `dest`: closed segments are hard-linked (they
    /// never change again; copied when a link is impossible), the active
    /// segment is copied up to its last appended record. Everything is
    /// fsynced. Runs on the thread that appends (nothing is appended
    /// meanwhile). Returns the sequence number after the last record copied.
    pub fn copy_to(&self, dest: &Path) -> Result<u64, LogError> {
        self.copy_to_with(dest, true)
    }

    /// [`Log::copy_to`] without the fsyncs: a copy that a crash may lose,
    /// because nothing needs it after one (an erasure's compaction reads it
    /// and a start removes it). Saves the writer flushing up to a whole
    /// active segment while ingest waits.
    pub fn copy_to_unsynced(&self, dest: &Path) -> Result<u64, LogError> {
        self.copy_to_with(dest, false)
    }

    fn copy_to_with(&self, dest: &Path, durable: bool) -> Result<u64, LogError> {
        fsmode::create_private_dir(dest).map_err(io_err(dest))?;
        let segments = list_segments(&self.dir)?;
        for (index, (_, path)) in segments.iter().enumerate() {
            let Some(name) = path.file_name() else { continue };
            let target = dest.join(name);
            if index + 1 < segments.len() {
                match fs::hard_link(path, &target) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(io_err(&target)(error));
                    }
                    // Another file system (or no links there): copy it.
                    Err(_) => {
                        let len = fs::metadata(path).map_err(io_err(path))?.len();
                        copy_prefix_from_with(File::open(path).map_err(io_err(path))?, &target, len, durable)
                            .map_err(io_err(&target))?;
                    }
                }
            } else {
                let active = File::open(path).map_err(io_err(path))?;
                copy_prefix_from_with(active, &target, self.active_len, durable).map_err(io_err(&target))?;
            }
        }
        if durable {
            sync_dir(dest)?;
        }
        Ok(self.next_seq)
    }

    fn roll(&mut self) -> Result<(), LogError> {
        let path = segment_path(&self.dir, self.next_seq);
        let file = fsmode::private_file().create_new(true).read(true).write(true).open(&path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.closed_bytes += self.active_len;
        self.active = file;
        self.active_base = self.next_seq;
        self.active_len = 0;
        tracing::info!(segment = %path.display(), "Log segment rolled.");
        Ok(())
    }
}

/// Replays every record with sequence number ≥ `from_seq`, in order.
/// A torn tail on the last segment ends the replay with a warning; a group
/// it cut short is not replayed at all (its records are held back until
/// the group is complete).
pub fn replay(
    dir: &Path,
    from_seq: u64,
    on_record: impl FnMut(u64, &[u8]) -> Result<(), LogError>,
) -> Result<u64, LogError> {
    replay_until(dir, from_seq, u64::MAX, on_record)
}

/// [`replay`] of the records before `until_seq` only, which must end a
/// group: nothing after them is read, so the log's writer may be appending
/// to it meanwhile (`until_seq` is then a sequence number it has
/// committed).
pub fn replay_until(
    dir: &Path,
    from_seq: u64,
    until_seq: u64,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), LogError>,
) -> Result<u64, LogError> {
    let segments = list_segments(dir)?;
    let mut seq = from_seq;
    for (index, (base, path)) in segments.iter().enumerate() {
        let next_base = segments.get(index + 1).map(|(b, _)| *b);
        if next_base.is_some_and(|next| next <= from_seq) {
            continue;
        }
        if *base >= until_seq {
            break;
        }
        let is_last = index + 1 == segments.len();
        let file = File::open(path).map_err(io_err(path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut record_seq = *base;
        let mut offset = 0u64;
        let mut payload = Vec::new();
        let mut group = Group::default();
        let corrupt = |offset, detail| LogError::Corrupt { path: path.display().to_string(), offset, detail };
        loop {
            if record_seq >= until_seq && group.remaining == 0 {
                return Ok(seq);
            }
            match read_frame(&mut reader, &mut payload) {
                Ok(Some(Frame::Marker { count, len })) => {
                    if group.remaining > 0 {
                        return Err(corrupt(offset, "group marker inside an unfinished group"));
                    }
                    group.begin(count, offset);
                    offset += len;
                }
                Ok(Some(Frame::Record { len })) => {
                    if group.remaining > 0 {
                        group.hold(record_seq, &payload);
                        if group.remaining == 0 {
                            for (held_seq, held) in group.release() {
                                if held_seq >= from_seq {
                                    on_record(held_seq, held)?;
                                    seq = held_seq + 1;
                                }
                            }
                        }
                    } else if record_seq >= from_seq {
                        on_record(record_seq, &payload)?;
                        seq = record_seq + 1;
                    }
                    record_seq += 1;
                    offset += len;
                }
                Ok(None) if group.remaining == 0 => break,
                Ok(None) if is_last => {
                    tracing::warn!(segment = %path.display(), offset = group.offset, "Replay stopped at a group cut short by a crash; it was never acknowledged.");
                    break;
                }
                Ok(None) => return Err(corrupt(group.offset, "group cut short inside a closed segment")),
                Err(detail) if is_last && is_torn_tail(path, offset)? => {
                    tracing::warn!(segment = %path.display(), offset, detail, "Replay stopped at a torn log tail.");
                    break;
                }
                Err(detail) => return Err(corrupt(offset, detail)),
            }
        }
    }
    Ok(seq)
}

/// The records of a group being replayed, held until the last one is read.
#[derive(Default)]
struct Group {
    /// Records still to read; 0 outside a group.
    remaining: u64,
    /// Byte offset of the group's marker.
    offset: u64,
    first_seq: u64,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Group {
    fn begin(&mut self, count: u64, offset: u64) {
        self.remaining = count;
        self.offset = offset;
        self.bytes.clear();
        self.ends.clear();
    }

    fn hold(&mut self, seq: u64, payload: &[u8]) {
        if self.ends.is_empty() {
            self.first_seq = seq;
        }
        self.bytes.extend_from_slice(payload);
        self.ends.push(self.bytes.len());
        self.remaining -= 1;
    }

    fn release(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        (self.first_seq..).zip(starts.zip(self.ends.iter().copied()).map(|(start, end)| &self.bytes[start..end]))
    }
}

/// The closed segments of a log opened by [`Log::open_unverified`], still
/// to be read whole.
#[must_use = "closed segments must be verified before the log is used"]
pub struct ClosedSegments {
    paths: Vec<PathBuf>,
}

impl ClosedSegments {
    /// Their sizes, unread: only for segments this process wrote, fsynced
    /// and read back whole since (a compaction's new log, replayed into
    /// the new state before it is swapped in).
    pub fn written_here(self) -> Result<u64, LogError> {
        let mut bytes = 0;
        for path in &self.paths {
            bytes += fs::metadata(path).map_err(io_err(path))?.len();
        }
        Ok(bytes)
    }

    /// Reads every closed segment whole (on up to two threads) and returns
    /// their valid bytes; damage anywhere is an error.
    pub fn verify(self) -> Result<u64, LogError> {
        let scan = |paths: &[PathBuf]| -> Result<u64, LogError> {
            let mut bytes = 0;
            for path in paths {
                let mut file = File::open(path).map_err(io_err(path))?;
                bytes += scan_segment(path, &mut file, false)?.valid_len;
            }
            Ok(bytes)
        };
        if self.paths.len() < 2 {
            return scan(&self.paths);
        }
        let (first, second) = self.paths.split_at(self.paths.len() / 2);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| scan(second));
            let mine = scan(first);
            let other = other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok(mine? + other?)
        })
    }
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
    // Where the unfinished group began, and how many of its records are due.
    let mut group_start = Scan { records: 0, valid_len: 0 };
    let mut remaining = 0u64;
    let corrupt = |offset, detail| LogError::Corrupt { path: path.display().to_string(), offset, detail };
    loop {
        match read_frame(&mut reader, &mut payload) {
            Ok(Some(Frame::Marker { count, len })) => {
                if remaining > 0 {
                    return Err(corrupt(scan.valid_len, "group marker inside an unfinished group"));
                }
                group_start = Scan { records: scan.records, valid_len: scan.valid_len };
                remaining = count;
                scan.valid_len += len;
            }
            Ok(Some(Frame::Record { len })) => {
                remaining = remaining.saturating_sub(1);
                scan.records += 1;
                scan.valid_len += len;
            }
            Ok(None) if remaining == 0 => return Ok(scan),
            Ok(None) if is_last => return Ok(group_start),
            Ok(None) => return Err(corrupt(group_start.valid_len, "group cut short inside a closed segment")),
            Err(detail) => {
                drop(reader);
                if is_last && is_torn_tail(path, scan.valid_len)? {
                    return Ok(if remaining > 0 { group_start } else { scan });
                }
                return Err(corrupt(scan.valid_len, detail));
            }
        }
    }
}

/// One frame of a segment: a record, or the marker opening a group.
enum Frame {
    Record { len: u64 },
    Marker { count: u64, len: u64 },
}

impl Frame {
    /// Bytes the frame takes on disk, header included.
    fn len(&self) -> u64 {
        match self {
            Frame::Record { len } | Frame::Marker { len, .. } => *len,
        }
    }

    /// 1 for a record, 0 for a group marker (which is not a record).
    fn records(&self) -> u64 {
        u64::from(matches!(self, Frame::Record { .. }))
    }
}

/// Reads one frame; a marker's count is returned, not left in `payload`.
fn read_frame(reader: &mut impl Read, payload: &mut Vec<u8>) -> Result<Option<Frame>, &'static str> {
    match read_record(reader, payload)? {
        None => Ok(None),
        Some(len) if len & MARKER_LEN_BIT != 0 => {
            let count: [u8; 8] = payload.as_slice().try_into().map_err(|_| "group marker of the wrong size")?;
            Ok(Some(Frame::Marker { count: u64::from_le_bytes(count), len: len & !MARKER_LEN_BIT }))
        }
        Some(len) => Ok(Some(Frame::Record { len })),
    }
}

/// Set in [`read_record`]'s answer when the frame was a group marker.
pub const MARKER_LEN_BIT: u64 = 1 << 63;

/// Whether the record that does not read at `offset` of the last segment
/// is a torn tail (a write cut short by a crash, never acknowledged): no
/// complete, valid record follows it anywhere in the file. A damaged record
/// with valid records after it is damage: cutting there would drop
/// acknowledged records. The record's own length is tried first (a flipped
/// payload or checksum byte), then every later byte (a flipped length).
fn is_torn_tail(path: &Path, offset: u64) -> Result<bool, LogError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).map_err(io_err(path))?;
    let declared = frame_len_at(&rest, 0);
    if let Some(len) = declared {
        if rest.len() >= len && valid_frame_at(&rest, len) {
            return Ok(false);
        }
    }
    match next_valid_frame(&rest, 1) {
        Search::Found(_) => Ok(false),
        Search::None => Ok(true),
        Search::GaveUp => {
            tracing::warn!(segment = %path.display(), offset, bytes = rest.len(), "Could not rule out valid records after a bad one; treating it as damage.");
            Ok(false)
        }
    }
}

/// What a search for the next valid record found.
enum Search {
    Found(usize),
    None,
    /// Checksummed [`SEARCH_BUDGET`] bytes without an answer (a long run of
    /// garbage whose lengths happen to fit): undecided.
    GaveUp,
}

/// Most payload bytes a search checksums before giving up: bounds the
/// time a start spends on a long run of garbage.
const SEARCH_BUDGET: usize = 1 << 30;

/// The first position at or after `from` where a valid record starts.
fn next_valid_frame(bytes: &[u8], from: usize) -> Search {
    let mut budget = SEARCH_BUDGET;
    for start in from..bytes.len() {
        let Some(framed) = frame_len_at(bytes, start) else { continue };
        if framed == FRAME_HEADER || start + framed > bytes.len() {
            continue;
        }
        if framed > budget {
            return Search::GaveUp;
        }
        budget -= framed;
        if valid_frame_at(bytes, start) {
            return Search::Found(start);
        }
    }
    Search::None
}

/// The framed length the header at `start` declares, if it fits the rules.
fn frame_len_at(bytes: &[u8], start: usize) -> Option<usize> {
    let header = bytes.get(start..start + FRAME_HEADER)?;
    let field = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let len = (field & !MARKER_FLAG) as usize;
    let fits = if field & MARKER_FLAG != 0 { len == 8 } else { len <= MAX_RECORD_BYTES };
    fits.then_some(FRAME_HEADER + len)
}

/// Whether a complete record with a non-empty payload and a matching
/// checksum starts at `start` (empty payloads are never written, and eight
/// zero bytes, what a crash may leave, would otherwise pass).
fn valid_frame_at(bytes: &[u8], start: usize) -> bool {
    let Some(framed) = frame_len_at(bytes, start) else { return false };
    if framed == FRAME_HEADER || start + framed > bytes.len() {
        return false;
    }
    let header = &bytes[start..start + FRAME_HEADER];
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    crc32fast::hash(&bytes[start + FRAME_HEADER..start + framed]) == crc
}

/// Reads one framed record and returns its length on disk (with
/// [`MARKER_LEN_BIT`] set for a group marker). `Ok(None)` at a clean end of
/// file; `Err` names what is wrong with a torn or corrupt record.
pub fn read_record(reader: &mut impl Read, payload: &mut Vec<u8>) -> Result<Option<u64>, &'static str> {
    let mut header = [0u8; FRAME_HEADER];
    match read_full(reader, &mut header) {
        0 => return Ok(None),
        FRAME_HEADER => {}
        _ => return Err("truncated record header"),
    }
    let len_field = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let is_marker = len_field & MARKER_FLAG != 0;
    let len = (len_field & !MARKER_FLAG) as usize;
    if is_marker && len != 8 {
        return Err("group marker of the wrong size");
    }
    if len > MAX_RECORD_BYTES {
        return Err("record length out of range");
    }
    // No record is empty (every payload starts with its kind). Eight zero
    // bytes would pass the checksum (the CRC of nothing is zero), and zeros
    // are what power loss can leave where a write was going.
    if len == 0 {
        return Err("empty record (zero bytes where a record should be)");
    }
    payload.resize(len, 0);
    if read_full(reader, payload) != len {
        return Err("truncated record payload");
    }
    if crc32fast::hash(payload) != crc {
        return Err("record checksum mismatch");
    }
    let frame_len = (FRAME_HEADER + len) as u64;
    Ok(Some(if is_marker { frame_len | MARKER_LEN_BIT } else { frame_len }))
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

/// What [`verify`] found in one segment.
#[derive(Debug, PartialEq, Eq)]
pub struct SegmentCheck {
    pub path: PathBuf,
    /// Complete records with a matching checksum.
    pub records: u64,
    /// Each record that does not read: byte offset and what is wrong.
    pub damage: Vec<(u64, &'static str)>,
    /// Bytes at the end of the last segment that a start cuts (a write a
    /// crash cut short); not damage.
    pub torn_tail: Option<u64>,
}

/// Reads every segment of the log in `dir` whole, read-only (safe while a
/// server runs), and names every record that does not read. After a damaged
/// record the check resumes at the next valid record, so one report lists
/// all the damage and how many records follow it.
pub fn verify(dir: &Path) -> Result<Vec<SegmentCheck>, LogError> {
    let segments = list_segments(dir)?;
    let mut checks = Vec::with_capacity(segments.len());
    for (index, (_, path)) in segments.iter().enumerate() {
        let bytes = fs::read(path).map_err(io_err(path))?;
        let mut check = SegmentCheck { path: path.clone(), records: 0, damage: Vec::new(), torn_tail: None };
        let mut offset = 0usize;
        let mut payload = Vec::new();
        while offset < bytes.len() {
            match read_frame(&mut &bytes[offset..], &mut payload) {
                Ok(Some(frame)) => {
                    check.records += frame.records();
                    offset += frame.len() as usize;
                }
                Ok(None) => break,
                Err(detail) => match next_valid_frame(&bytes, offset + 1) {
                    Search::Found(next) => {
                        check.damage.push((offset as u64, detail));
                        offset = next;
                    }
                    Search::None if index + 1 == segments.len() => {
                        check.torn_tail = Some((bytes.len() - offset) as u64);
                        break;
                    }
                    Search::None | Search::GaveUp => {
                        check.damage.push((offset as u64, detail));
                        break;
                    }
                },
            }
        }
        checks.push(check);
    }
    Ok(checks)
}

/// What [`cut`] moved aside.
#[derive(Debug, PartialEq, Eq)]
pub struct CutReport {
    /// Records kept in the log (before the cut).
    pub kept_records: u64,
    /// Valid records among the bytes moved aside (acknowledged events lost
    /// from the log, unless they were a group a crash cut short).
    pub moved_records: u64,
    /// Bytes moved aside, the damaged ones included.
    pub moved_bytes: u64,
}

/// Ends the log at byte `offset` of the segment named `segment` (a file
/// name as [`verify`] prints it): the bytes from there on, and every later
/// segment, are moved into `aside` (created; nothing is deleted), then the
/// segment is cut. With `aside` `None`, only reports what it would move. Explicit repair only, never run by proviso itself: every
/// record after the cut leaves the log. Each step is synced before the
/// next, and a crash midway leaves either the log as it was or copies in
/// `aside`; running it again finishes it.
pub fn cut(dir: &Path, segment: &str, offset: u64, aside: Option<&Path>) -> Result<CutReport, LogError> {
    let segments = list_segments(dir)?;
    let index = segments.iter().position(|(_, path)| path.file_name().is_some_and(|name| name == segment)).ok_or_else(
        || LogError::Io {
            path: dir.join(segment).display().to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such log segment"),
        },
    )?;
    let path = &segments[index].1;
    let bytes = fs::read(path).map_err(io_err(path))?;
    let at = usize::try_from(offset).ok().filter(|&at| at <= bytes.len()).ok_or_else(|| LogError::Io {
        path: path.display().to_string(),
        source: io::Error::new(io::ErrorKind::InvalidInput, format!("byte {offset} is past its end")),
    })?;
    let kept = count_valid(&bytes[..at]);
    if let Some(group_start) = kept.2 {
        return Err(LogError::Io {
            path: path.display().to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "byte {offset} is inside a group commit, which is kept whole or not at all: cut at the start of \
                     its group, byte {group_start}"
                ),
            ),
        });
    }
    if kept.1 != at as u64 {
        return Err(LogError::Io {
            path: path.display().to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "byte {offset} is not where a record starts after intact ones (`proviso log verify` prints where)"
                ),
            ),
        });
    }
    let mut report = CutReport { kept_records: kept.0, moved_records: 0, moved_bytes: 0 };
    for (_, earlier) in &segments[..index] {
        let mut file = File::open(earlier).map_err(io_err(earlier))?;
        report.kept_records += scan_segment(earlier, &mut file, false)?.records;
    }
    let Some(aside) = aside else {
        report.moved_bytes = (bytes.len() - at) as u64;
        report.moved_records = count_valid_anywhere(&bytes[at..]);
        for (_, later) in &segments[index + 1..] {
            let bytes = fs::read(later).map_err(io_err(later))?;
            report.moved_bytes += bytes.len() as u64;
            report.moved_records += count_valid_anywhere(&bytes);
        }
        return Ok(report);
    };
    fsmode::create_private_dir(aside).map_err(io_err(aside))?;
    // The tail of the segment, copied aside and synced first.
    let tail = aside.join(segment);
    {
        let mut file =
            fsmode::private_file().write(true).create(true).truncate(true).open(&tail).map_err(io_err(&tail))?;
        std::io::Write::write_all(&mut file, &bytes[at..]).and_then(|()| file.sync_all()).map_err(io_err(&tail))?;
    }
    report.moved_bytes += (bytes.len() - at) as u64;
    report.moved_records += count_valid_anywhere(&bytes[at..]);
    // Later segments, moved whole.
    for (_, later) in &segments[index + 1..] {
        let bytes = fs::read(later).map_err(io_err(later))?;
        report.moved_bytes += bytes.len() as u64;
        report.moved_records += count_valid_anywhere(&bytes);
        let name = later.file_name().map(PathBuf::from).unwrap_or_default();
        fs::rename(later, aside.join(name)).map_err(io_err(later))?;
    }
    sync_dir(aside)?;
    sync_dir(dir)?;
    let file = fs::OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
    file.set_len(offset).and_then(|()| file.sync_all()).map_err(io_err(path))?;
    Ok(report)
}

/// Records and bytes of the intact records at the start of `bytes`, and
/// where the group they end in began if they end inside one.
fn count_valid(bytes: &[u8]) -> (u64, u64, Option<u64>) {
    let (mut records, mut at) = (0, 0usize);
    let (mut group_start, mut remaining) = (0usize, 0u64);
    let mut payload = Vec::new();
    while let Ok(Some(frame)) = read_frame(&mut &bytes[at..], &mut payload) {
        match frame {
            Frame::Marker { count, .. } => (group_start, remaining) = (at, count),
            Frame::Record { .. } => remaining = remaining.saturating_sub(1),
        }
        records += frame.records();
        at += frame.len() as usize;
    }
    (records, at as u64, (remaining > 0).then_some(group_start as u64))
}

/// Valid records in `bytes`, skipping damage the way [`verify`] does.
fn count_valid_anywhere(bytes: &[u8]) -> u64 {
    let (mut records, mut at) = (0, 0usize);
    let mut payload = Vec::new();
    while at < bytes.len() {
        match read_frame(&mut &bytes[at..], &mut payload) {
            Ok(Some(frame)) => {
                records += frame.records();
                at += frame.len() as usize;
            }
            Ok(None) => break,
            Err(_) => match next_valid_frame(bytes, at + 1) {
                Search::Found(next) => at = next,
                Search::None | Search::GaveUp => break,
            },
        }
    }
    records
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

/// Copies the first `len` bytes of `source` into the new file `target`
/// (mode 0600) and fsyncs it.
pub fn copy_prefix(source: &Path, target: &Path, len: u64) -> io::Result<()> {
    copy_prefix_from_with(File::open(source)?, target, len, true)
}

/// Like [`copy_prefix`], from a file already open (so a file renamed over
/// since is still read as it was).
pub fn copy_prefix_from(source: File, target: &Path, len: u64) -> io::Result<()> {
    copy_prefix_from_with(source, target, len, true)
}

fn copy_prefix_from_with(source: File, target: &Path, len: u64, durable: bool) -> io::Result<()> {
    let mut out = fsmode::private_file().write(true).create_new(true).open(target)?;
    let copied = io::copy(&mut source.take(len), &mut out)?;
    if copied != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("copied {copied} of {len} bytes")));
    }
    if durable {
        out.sync_all()?;
    }
    Ok(())
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
            batches in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6), 1..8),
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

    /// A group larger than one sync step (written and fsynced in several)
    /// reads back whole, in order, after the records before it, and a
    /// reopened log continues after it.
    #[test]
    fn a_group_of_several_sync_steps_reads_back_whole() {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("open");
        let mut framed = Vec::new();
        frame(b"before", &mut framed);
        log.append_framed(&framed, 1).expect("append");
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|k| vec![k; SYNC_STEP_BYTES / 10 + usize::from(k)]).collect();
        let mut framed = Vec::new();
        for payload in &payloads {
            frame(payload, &mut framed);
        }
        assert!(framed.len() > 3 * SYNC_STEP_BYTES, "the group must span several steps");
        assert_eq!(log.append_framed(&framed, payloads.len() as u64).expect("append the large group"), 1);
        drop(log);
        let log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("reopen");
        assert_eq!(log.next_seq(), 41);
        let replayed = collect(temp.path(), 0);
        assert_eq!(replayed[0], (0, b"before".to_vec()));
        let rest: Vec<(u64, Vec<u8>)> = payloads.into_iter().enumerate().map(|(i, p)| (i as u64 + 1, p)).collect();
        assert_eq!(&replayed[1..], &rest[..]);
    }

    /// A copy holds exactly the records appended before it, across segment
    /// rolls; appends after it (to the active segment or a new one) leave
    /// the copy as it was, and the copy opens as a log of its own.
    #[test]
    fn a_copy_holds_the_log_at_its_position() {
        let temp = tempfile::tempdir().expect("tempdir");
        let live = temp.path().join("live");
        let mut log = Log::open(&live, 64).expect("open");
        for k in 0..10u8 {
            let mut framed = Vec::new();
            frame(&[k; 20], &mut framed);
            log.append_framed(&framed, 1).expect("append");
        }
        assert!(list_segments(&live).expect("segments").len() > 2, "the test must cross segment rolls");
        let copy = temp.path().join("copy");
        assert_eq!(log.copy_to(&copy).expect("copy"), 10);
        for k in 10..14u8 {
            let mut framed = Vec::new();
            frame(&[k; 20], &mut framed);
            log.append_framed(&framed, 1).expect("append after the copy");
        }
        let copied = collect(&copy, 0);
        assert_eq!(copied, collect(&live, 0).into_iter().take(10).collect::<Vec<_>>());
        assert!(copy.join(format!("{:020}.seg", 0)).exists());
        assert!(log.copy_to(&copy).is_err(), "the copy's files are never overwritten");
        assert_eq!(Log::open(&copy, 64).expect("open the copy").next_seq(), 10);
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

    fn group(payloads: &[&[u8]]) -> Vec<u8> {
        let mut framed = Vec::new();
        for payload in payloads {
            frame(payload, &mut framed);
        }
        framed
    }

    /// A crash that tears a group's write keeps none of the group, even the
    /// records of it that are complete on disk: replay (before any reopen)
    /// and reopening agree, and the next group takes the dropped sequence.
    #[test]
    fn a_group_cut_short_is_dropped_whole() {
        for cut in 1..MARKER_BYTES + 3 * (FRAME_HEADER + 3) {
            let temp = tempfile::tempdir().expect("tempdir");
            let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("open");
            log.append_framed(&group(&[b"one"]), 1).expect("first group");
            let kept = std::fs::metadata(segment_path(temp.path(), 0)).expect("meta").len();
            log.append_framed(&group(&[b"two", b"2nd", b"key"]), 3).expect("second group");
            drop(log);
            let path = segment_path(temp.path(), 0);
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open segment");
            file.set_len(kept + cut as u64).expect("tear");
            drop(file);
            let replayed: Vec<Vec<u8>> = collect(temp.path(), 0).into_iter().map(|(_, p)| p).collect();
            assert_eq!(replayed, vec![b"one".to_vec()], "torn after {cut} bytes of the group");
            let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("reopen");
            assert_eq!(log.next_seq(), 1, "torn after {cut} bytes of the group");
            assert_eq!(std::fs::metadata(&path).expect("meta").len(), kept, "the torn group is cut off the file");
            assert_eq!(log.append_framed(&group(&[b"three"]), 1).expect("append"), 1);
            drop(log);
            let replayed: Vec<(u64, Vec<u8>)> = collect(temp.path(), 0);
            assert_eq!(replayed, vec![(0, b"one".to_vec()), (1, b"three".to_vec())]);
        }
    }

    /// A bounded replay (the compaction's thread reading the live log while
    /// the writer appends) stops at its bound: a damaged group after it,
    /// which a whole replay refuses, is never read.
    #[test]
    fn a_bounded_replay_reads_nothing_after_its_end() {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("open");
        let mut ends = vec![0];
        for payloads in [&[&b"one"[..]][..], &[b"two", b"2nd"], &[b"three", b"3rd"], &[b"four"]] {
            log.append_framed(&group(payloads), payloads.len() as u64).expect("append");
            ends.push(log.next_seq());
        }
        drop(log);
        // Damage the payload of the third group ("three"), not the tail.
        let path = segment_path(temp.path(), 0);
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes.windows(5).position(|w| w == b"three").expect("three");
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert!(replay(temp.path(), 0, |_, _| Ok(())).is_err(), "a whole replay reads the damage");
        for (n, &until) in ends.iter().enumerate().take(3) {
            let mut seen = Vec::new();
            replay_until(temp.path(), 0, until, |seq, payload| {
                seen.push((seq, payload.to_vec()));
                Ok(())
            })
            .expect("bounded replay");
            let want: Vec<(u64, Vec<u8>)> = [&b"one"[..], b"two", b"2nd"][..until as usize]
                .iter()
                .enumerate()
                .map(|(seq, p)| (seq as u64, p.to_vec()))
                .collect();
            assert_eq!(seen, want, "up to group end {n}");
        }
    }

    /// `log cut` keeps groups whole: a cut inside one is refused, naming
    /// the byte where the group starts.
    #[test]
    fn a_cut_inside_a_group_is_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("open");
        log.append_framed(&group(&[b"one"]), 1).expect("append");
        log.append_framed(&group(&[b"two", b"three"]), 2).expect("append");
        drop(log);
        let second_group = (MARKER_BYTES + FRAME_HEADER + 3) as u64;
        let inside = second_group + (MARKER_BYTES + FRAME_HEADER + 3) as u64;
        let name = format!("{:020}.seg", 0);
        let error = cut(temp.path(), &name, inside, None).expect_err("refused").to_string();
        assert!(error.contains(&format!("cut at the start of its group, byte {second_group}")), "{error}");
        let report = cut(temp.path(), &name, second_group, None).expect("a dry run at the group");
        assert_eq!((report.kept_records, report.moved_records), (1, 2));
    }

    /// Segments written before group markers existed (records only) still
    /// open and replay, and new groups append after them.
    #[test]
    fn a_log_without_markers_still_reads() {
        let temp = tempfile::tempdir().expect("tempdir");
        std::fs::write(segment_path(temp.path(), 0), group(&[b"old", b"older"])).expect("write old segment");
        let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("open");
        assert_eq!(log.next_seq(), 2);
        log.append_framed(&group(&[b"new"]), 1).expect("append");
        drop(log);
        let replayed: Vec<(u64, Vec<u8>)> = collect(temp.path(), 1);
        assert_eq!(replayed, vec![(1, b"older".to_vec()), (2, b"new".to_vec())]);
    }

    fn log_of(dir: &Path, payloads: &[&[u8]], segment_bytes: u64) {
        let mut log = Log::open(dir, segment_bytes).expect("open");
        for payload in payloads {
            let mut framed = Vec::new();
            frame(payload, &mut framed);
            log.append_framed(&framed, 1).expect("append");
        }
    }

    fn flip(path: &Path, at: usize) {
        let mut bytes = std::fs::read(path).expect("read");
        bytes[at] ^= 0x5a;
        std::fs::write(path, bytes).expect("write");
    }

    /// Closed segments are read on two threads: damage in any one of them,
    /// whichever half it falls in, stops the open, and an intact log of
    /// many segments opens with every byte counted.
    #[test]
    fn damage_in_any_closed_segment_stops_the_open() {
        let payloads: Vec<Vec<u8>> = (0..12).map(|i| format!("record number {i:02}").into_bytes()).collect();
        let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let segment_bytes = 2 * (MARKER_BYTES + FRAME_HEADER + payloads[0].len()) as u64;
        let intact = tempfile::tempdir().expect("tempdir");
        log_of(intact.path(), &payloads, segment_bytes);
        let segments = list_segments(intact.path()).expect("list");
        assert!(segments.len() >= 5, "{} segments", segments.len());
        let log = Log::open(intact.path(), segment_bytes).expect("open");
        let on_disk: u64 = segments.iter().map(|(_, path)| std::fs::metadata(path).expect("stat").len()).sum();
        assert_eq!((log.next_seq(), log.size_bytes()), (12, on_disk));
        for damaged in [0, segments.len() / 2, segments.len() - 2] {
            let temp = tempfile::tempdir().expect("tempdir");
            log_of(temp.path(), &payloads, segment_bytes);
            let path = &list_segments(temp.path()).expect("list")[damaged].1;
            flip(path, MARKER_BYTES + FRAME_HEADER + 2);
            let error = Log::open(temp.path(), segment_bytes).err().expect("damage found").to_string();
            assert!(error.contains(&path.display().to_string()), "segment {damaged}: {error}");
        }
    }

    /// Regression: a damaged record in the middle of the last segment was
    /// taken for a torn tail and every acknowledged record after it was cut.
    /// Damage in the payload, the checksum or the length field, with valid
    /// records after it, now stops the open and the replay, naming the
    /// segment and the byte, and leaves the file as it was.
    #[test]
    fn a_damaged_record_followed_by_valid_ones_is_refused_not_cut() {
        let payloads: [&[u8]; 4] = [b"first record", b"second record", b"third record", b"fourth record"];
        let second = 2 * MARKER_BYTES + FRAME_HEADER + payloads[0].len();
        for (what, at) in [("payload", second + FRAME_HEADER + 3), ("checksum", second + 5), ("length", second)] {
            let temp = tempfile::tempdir().expect("tempdir");
            log_of(temp.path(), &payloads, DEFAULT_SEGMENT_BYTES);
            let path = segment_path(temp.path(), 0);
            flip(&path, at);
            let damaged = std::fs::read(&path).expect("read");
            let error = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).err().expect(what).to_string();
            assert!(error.contains(&format!("{} is damaged at byte {second}", path.display())), "{what}: {error}");
            assert!(error.contains("proviso log verify"), "{error}");
            assert_eq!(std::fs::read(&path).expect("read"), damaged, "{what}: nothing is cut");
            let replayed = replay(temp.path(), 0, |_, _| Ok(()));
            assert!(matches!(replayed, Err(LogError::Corrupt { offset, .. }) if offset == second as u64), "{what}");
            let checks = verify(temp.path()).expect("verify");
            assert_eq!(checks.len(), 1);
            assert_eq!(checks[0].damage.iter().map(|(at, _)| *at).collect::<Vec<_>>(), vec![second as u64], "{what}");
            assert_eq!((checks[0].records, checks[0].torn_tail), (3, None), "{what}: the records after it are counted");
        }
    }

    /// A damaged last record of the last segment is a torn tail: cut, and
    /// every record before it kept.
    #[test]
    fn a_damaged_last_record_is_a_torn_tail() {
        let temp = tempfile::tempdir().expect("tempdir");
        log_of(temp.path(), &[b"one", b"two", b"three"], DEFAULT_SEGMENT_BYTES);
        let path = segment_path(temp.path(), 0);
        let len = std::fs::metadata(&path).expect("meta").len() as usize;
        flip(&path, len - 2);
        let log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("a torn tail is not damage");
        assert_eq!(log.next_seq(), 2);
        drop(log);
        assert!(verify(temp.path()).expect("verify").iter().all(|check| check.damage.is_empty()));
        let payloads: Vec<Vec<u8>> = collect(temp.path(), 0).into_iter().map(|(_, p)| p).collect();
        assert_eq!(payloads, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    /// Regression: a tail of zeros (what power loss can leave where a write
    /// was going) read as hundreds of valid empty records, which then failed
    /// to decode and stopped the start. It is a torn tail; zeros with valid
    /// records after them are damage.
    #[test]
    fn a_tail_of_zeros_is_a_torn_tail() {
        let temp = tempfile::tempdir().expect("tempdir");
        log_of(temp.path(), &[b"one", b"two"], DEFAULT_SEGMENT_BYTES);
        let path = segment_path(temp.path(), 0);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&[0u8; 4096]).expect("zeros");
        drop(file);
        let log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("zeros are a torn tail");
        assert_eq!(log.next_seq(), 2);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 2 * (MARKER_BYTES + FRAME_HEADER) as u64 + 6);
        drop(log);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&[0u8; 64]).expect("zeros");
        drop(file);
        let mut framed = Vec::new();
        frame(b"three", &mut framed);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&framed).expect("a valid record after the zeros");
        drop(file);
        let error = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).err().expect("damage").to_string();
        assert!(error.contains("empty record"), "{error}");
    }

    /// Damage in a closed segment stops the open (every segment is read),
    /// even where a snapshot would let the replay skip it.
    #[test]
    fn damage_in_a_closed_segment_stops_the_open() {
        let temp = tempfile::tempdir().expect("tempdir");
        log_of(temp.path(), &[b"one one one", b"two two two", b"three three", b"four four"], 40);
        let segments = list_segments(temp.path()).expect("list");
        assert!(segments.len() >= 2, "{segments:?}");
        let (_, first) = &segments[0];
        flip(first, FRAME_HEADER + 2);
        let error = Log::open(temp.path(), 40).err().expect("refused").to_string();
        assert!(error.contains(&format!("{} is damaged at byte 0", first.display())), "{error}");
        let after = segments[1].0;
        assert!(replay(temp.path(), after, |_, _| Ok(())).is_ok(), "a replay from after it does not read it");
    }
}
