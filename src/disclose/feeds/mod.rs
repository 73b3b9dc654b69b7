//! Partner purpose feeds (`product`, `ads`) with retraction.
//!
//! Owns: one ordered, resumable change stream per partner and purpose in
//! `<data>/feeds/<partner>.<purpose>.ndjson`: an `add` for every suggestion
//! or audience membership first disclosed to the partner, and a `retract`
//! for each of those once a person involved refuses the purpose, is banned,
//! unlinks from the partner or deletes their account. The ledger of what is
//! live (disclosed and not retracted), rebuilt from the files at start.
//! Memory: the history stays on disk. Each feed keeps in memory only the
//! byte offset of every 16th record (`offsets.rs`: half a byte a record),
//! the cursors its retracts withdrew (a roaring treemap) and the ledger of
//! live adds (`ledger.rs`); a page a partner reads, the add a retraction
//! copies and the live records reconciliation checks are read from the
//! file around those offsets.
//! Never: sends a pseudonym to a partner (records keep the subject ids for
//! the ledger, the API strips them), or drops a retraction: retractions are
//! fsynced before the refusal that caused them is acknowledged.

mod ledger;
#[cfg(test)]
mod model_tests;
mod offsets;

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::contract::Purpose;

/// Sub-directory of the data dir holding the feeds.
pub const FEEDS_DIR: &str = "feeds";

/// One feed record as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedRecord {
    pub cursor: u64,
    /// `add` or `retract`.
    pub op: String,
    /// `suggestion` or `audience_member`.
    pub about: String,
    /// The partner account the record is about (suggestions: who it is for).
    pub partner_id: String,
    /// Suggestions: the suggested account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested: Option<String>,
    /// Audience memberships: the business.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business: Option<String>,
    /// Retractions: the cursor of the `add` withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retracts: Option<u64>,
    /// Retractions: refused, banned, unlinked, deleted or no_longer_allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at_ms: i64,
    /// Subject ids involved (kept for the ledger; never sent to partners).
    pub subjects: Vec<String>,
}

impl FeedRecord {
    /// The record with every identifier removed: what a withdrawn `add` and
    /// every `retract` read as (cursor, op, what it was about, the cursor it
    /// withdraws, why and when), the way log compaction keeps offsets.
    pub fn redacted(&self) -> FeedRecord {
        FeedRecord { partner_id: String::new(), suggested: None, business: None, subjects: Vec::new(), ..self.clone() }
    }

    /// Whether the record names nobody (a redacted one).
    pub fn is_redacted(&self) -> bool {
        self.partner_id.is_empty() && self.suggested.is_none() && self.business.is_none() && self.subjects.is_empty()
    }
}

/// One disclosed item: (partner_id, suggested, business, subject ids).
pub type Disclosed = (String, Option<String>, Option<String>, Vec<String>);

/// A [`crate::state::Withdrawal`] as the feeds ledger knows the person: by
/// the `r_` handle of their secret, never by pseudonym.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The person's `r_` handle.
    pub subject: String,
    /// Purposes affected.
    pub purposes: Vec<Purpose>,
    /// Only this partner's disclosures (an unlinking); `None`: every partner.
    pub partner: Option<String>,
    pub reason: &'static str,
}

impl Revocation {
    /// The feed revocations of state's withdrawals: each person by the `r_`
    /// handle of their secret. A person without a secret was never
    /// disclosed, so has nothing to retract.
    pub fn from_withdrawals(withdrawals: &[crate::state::Withdrawal], vault: &crate::vault::Vault) -> Vec<Revocation> {
        withdrawals
            .iter()
            .filter_map(|withdrawal| {
                Some(Revocation {
                    subject: vault.existing(&withdrawal.subject)?.record_handle(),
                    purposes: withdrawal.purposes.clone(),
                    partner: withdrawal.partner.clone(),
                    reason: withdrawal.reason,
                })
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("feed file {path}: {source}")]
pub struct FeedError {
    path: String,
    source: std::io::Error,
}

impl FeedError {
    /// The I/O error behind it.
    pub fn io_error(&self) -> &std::io::Error {
        &self.source
    }
}

struct Stream {
    path: PathBuf,
    /// The append handle.
    file: File,
    /// Where the file's records start (every 16th), and how many it has.
    offsets: offsets::Offsets,
    /// Length of the file's whole records: where the next append goes.
    end: u64,
    /// Cursors of `add`s that a `retract` withdrew: never served again.
    withdrawn: roaring::RoaringTreemap,
    /// How many of the file's records the live ledger reflects: all of
    /// them, except after [`Feeds::resume_at`] found records a crashed
    /// process wrote past the outputs mark. Those are matched, in order,
    /// with the records decided again for the same messages instead of
    /// being written a second time.
    ledger_at: u64,
    /// Set when a failed append could not be cut back off the file: later
    /// appends are refused (they would continue a broken line) until
    /// restart, whose open cuts the torn line.
    broken: bool,
}

impl Stream {
    fn len(&self) -> u64 {
        self.offsets.len()
    }

    /// Records `start..start + count` (as far as the feed goes), read from
    /// the file around their sampled offsets; each must hold its own cursor.
    fn read_records(&self, start: u64, count: u64) -> std::io::Result<Vec<FeedRecord>> {
        self.read_records_in(&File::open(&self.path)?, start, count)
    }

    /// [`Stream::read_records`] through a handle already open on the file.
    fn read_records_in(&self, file: &File, start: u64, count: u64) -> std::io::Result<Vec<FeedRecord>> {
        let start = start.min(self.len());
        let stop = start.saturating_add(count).min(self.len());
        if start == stop {
            return Ok(Vec::new());
        }
        let cover = self.offsets.cover(start, stop, self.end);
        let mut bytes = vec![0; cover.to.saturating_sub(cover.from) as usize];
        file.read_exact_at(&mut bytes, cover.from)?;
        let mut records = Vec::with_capacity((stop - start) as usize);
        let lines = (cover.first..).zip(bytes.split_inclusive(|&byte| byte == b'\n'));
        for (cursor, line) in lines.skip((start - cover.first) as usize).take((stop - start) as usize) {
            let record = serde_json::from_slice::<FeedRecord>(line.strip_suffix(b"\n").unwrap_or(line))
                .ok()
                .filter(|record| record.cursor == cursor);
            let Some(record) = record else {
                return Err(changed_under_us(cursor));
            };
            records.push(record);
        }
        if records.len() as u64 != stop - start {
            return Err(changed_under_us(start + records.len() as u64));
        }
        Ok(records)
    }

    /// The one record at `cursor`, if the feed has it.
    fn read_record(&self, cursor: u64) -> std::io::Result<Option<FeedRecord>> {
        Ok(self.read_records(cursor, 1)?.pop())
    }

    fn error(&self, source: std::io::Error) -> FeedError {
        FeedError { path: self.path.display().to_string(), source }
    }
}

fn changed_under_us(cursor: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("no record {cursor} where indexed: the file changed while proviso had it open"),
    )
}

/// A 128-bit digest of an add's identity key ([`key_of`]): the ledger keeps
/// it instead of the string. Two different keys share a digest with a
/// chance of 2^-128, so a disclosure trusts it to say an add is live. (The
/// people an add involves are linked by a shorter key, checked against the
/// add on file: `ledger.rs`.)
type Digest = [u8; 16];

fn digest(text: &str) -> Digest {
    crate::contract::hash_prefix(text)
}

#[derive(Default)]
struct Inner {
    streams: HashMap<(String, Purpose), Stream>,
    /// Every feed (partner, purpose) the ledger names, by number.
    feeds: Vec<(String, Purpose)>,
    /// Live adds: by feed number and identity key, and by the people they
    /// involve.
    ledger: ledger::Ledger,
}

/// Every partner's product and ads feeds.
pub struct Feeds {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

fn key_of(record: &FeedRecord) -> String {
    format!(
        "{}|{}|{}|{}",
        record.about,
        record.partner_id,
        record.suggested.as_deref().unwrap_or(""),
        record.business.as_deref().unwrap_or("")
    )
}

/// Reads one feed file, calling `visit` with each record, and returns the
/// byte offset of each record and the length of the whole records. Every
/// line ends with a newline and holds the record whose cursor is its
/// position; a last line without its newline is a torn append (a crash
/// mid-write, never acknowledged) and is cut off the file. Anything else
/// that does not read is corruption, named by byte offset: the feed is the
/// record of what a partner received, so proviso will not start without it
/// rather than lose an `add` it must retract.
fn read_stream(path: &Path, visit: &mut dyn FnMut(&FeedRecord)) -> std::io::Result<(offsets::Offsets, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut offsets = offsets::Offsets::default();
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        let Some(body) = line.strip_suffix(b"\n") else {
            tracing::warn!(path = %path.display(), cut = read, "Cut a torn last feed record.");
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(offset)?;
            file.sync_all()?;
            break;
        };
        let record = serde_json::from_slice::<FeedRecord>(body).ok().filter(|record| record.cursor == offsets.len());
        let Some(record) = record else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "corrupt at byte {offset} (record {}, not at the tail); this file is the record of what the \
                     partner received: restore it from a backup, or move it aside to start the feed anew (its \
                     live records will then not be retracted)",
                    offsets.len()
                ),
            ));
        };
        visit(&record);
        offsets.push(offset);
        offset += read as u64;
    }
    Ok((offsets, offset))
}

impl Feeds {
    /// Opens the feeds in `data_dir`, rebuilding the live ledger.
    pub fn open(data_dir: &Path) -> Result<Feeds, FeedError> {
        let dir = data_dir.join(FEEDS_DIR);
        crate::log::fsmode::create_private_dir(&dir)
            .map_err(|source| FeedError { path: dir.display().to_string(), source })?;
        let feeds = Feeds { dir: dir.clone(), inner: Mutex::new(Inner::default()) };
        let entries =
            std::fs::read_dir(&dir).map_err(|source| FeedError { path: dir.display().to_string(), source })?;
        let mut inner = feeds.lock();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(stem) = name.strip_suffix(".ndjson") else { continue };
            let Some((partner, purpose)) = stem.rsplit_once('.') else { continue };
            let Some(purpose) = Purpose::parse(purpose) else { continue };
            let path = entry.path();
            let io = |source| FeedError { path: path.display().to_string(), source };
            let mut withdrawn = roaring::RoaringTreemap::new();
            let (offsets, end) = read_stream(&path, &mut |record| {
                Inner::track(&mut inner, partner, purpose, record);
                withdrawn.extend(record.retracts);
            })
            .map_err(io)?;
            let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
            let ledger_at = offsets.len();
            let stream = Stream { path, file, offsets, end, withdrawn, ledger_at, broken: false };
            inner.streams.insert((partner.to_string(), purpose), stream);
        }
        drop(inner);
        Ok(feeds)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the adds of a disclosure not already live; returns how many
    /// were new. Each item: (partner_id, suggested, business, subject ids),
    /// released by the gate for the feed's purpose. The items name distinct
    /// adds (a suggestion list names each account once, an audience each
    /// member once): two equal items in one call would both be written, and
    /// the ledger would keep only the later as live.
    pub fn disclose(
        &self,
        partner: &str,
        about: &str,
        items: crate::gate::Gated<Vec<Disclosed>>,
        at_ms: i64,
    ) -> Result<usize, FeedError> {
        let purpose = items.purpose();
        let mut inner = self.lock();
        let feed = inner.feed_number(partner, purpose);
        let mut fresh = Vec::new();
        for (partner_id, suggested, business, subjects) in items.into_inner() {
            let record = FeedRecord {
                cursor: 0,
                op: "add".into(),
                about: about.into(),
                partner_id,
                suggested,
                business,
                retracts: None,
                reason: None,
                at_ms,
                subjects,
            };
            let live = feed.is_some_and(|feed| inner.ledger.cursor(feed, &digest(&key_of(&record))).is_some());
            if !live {
                fresh.push(record);
            }
        }
        let count = fresh.len();
        self.append(&mut inner, partner, purpose, fresh)?;
        Ok(count)
    }

    /// Appends retractions for every live add involving a revoked subject.
    /// Returns how many records were retracted.
    pub fn revoke(&self, revocations: &[Revocation], at_ms: i64) -> Result<usize, FeedError> {
        let mut inner = self.lock();
        let mut by_stream: HashMap<(String, Purpose), Vec<FeedRecord>> = HashMap::new();
        // Cursors already retracted here, and each feed's file opened once
        // (a popular person is in thousands of adds).
        let mut retracting: HashSet<(u32, u64)> = HashSet::new();
        let mut files: HashMap<u32, File> = HashMap::new();
        for revocation in revocations {
            for (feed, cursor) in inner.ledger.involving(&revocation.subject) {
                let Some((partner, purpose)) = inner.feeds.get(feed as usize).cloned() else { continue };
                if !revocation.purposes.contains(&purpose)
                    || revocation.partner.as_ref().is_some_and(|only| only != &partner)
                {
                    continue;
                }
                if retracting.contains(&(feed, cursor)) {
                    continue;
                }
                let Some(stream) = inner.streams.get(&(partner.clone(), purpose)) else { continue };
                let file = match files.entry(feed) {
                    std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
                    std::collections::hash_map::Entry::Vacant(vacant) => {
                        vacant.insert(File::open(&stream.path).map_err(|source| stream.error(source))?)
                    }
                };
                let read = stream.read_records_in(file, cursor, 1).map_err(|source| stream.error(source))?;
                let Some(added) = read.into_iter().next() else { continue };
                // The ledger links people by a 64-bit key: the add on file
                // says whether it names this person.
                if !added.subjects.contains(&revocation.subject) {
                    continue;
                }
                retracting.insert((feed, cursor));
                by_stream.entry((partner, purpose)).or_default().push(FeedRecord {
                    cursor: 0,
                    op: "retract".into(),
                    retracts: Some(cursor),
                    reason: Some(revocation.reason.to_string()),
                    at_ms,
                    ..added
                });
            }
        }
        let mut count = 0;
        for ((partner, purpose), records) in by_stream {
            if count > 0 {
                crate::failpoint::reach("consent.mid_retractions");
            }
            count += records.len();
            self.append(&mut inner, &partner, purpose, records)?;
        }
        Ok(count)
    }

    fn append(
        &self,
        inner: &mut Inner,
        partner: &str,
        purpose: Purpose,
        records: Vec<FeedRecord>,
    ) -> Result<(), FeedError> {
        if records.is_empty() {
            return Ok(());
        }
        let stream_key = (partner.to_string(), purpose);
        let records = Feeds::match_on_file(inner, &stream_key, records)?;
        if records.is_empty() {
            return Ok(());
        }
        if !inner.streams.contains_key(&stream_key) {
            let path = self.dir.join(format!("{partner}.{}.ndjson", purpose.as_str()));
            let file = crate::log::fsmode::private_file()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| FeedError { path: path.display().to_string(), source })?;
            inner.streams.insert(
                stream_key.clone(),
                Stream {
                    path,
                    file,
                    offsets: Default::default(),
                    end: 0,
                    withdrawn: Default::default(),
                    ledger_at: 0,
                    broken: false,
                },
            );
        }
        let mut bytes = Vec::new();
        let mut numbered = Vec::with_capacity(records.len());
        let mut starts = Vec::with_capacity(records.len());
        {
            let stream = inner.streams.get_mut(&stream_key).ok_or_else(|| FeedError {
                path: partner.to_string(),
                source: std::io::Error::other("stream vanished"),
            })?;
            for (cursor, mut record) in (stream.len()..).zip(records) {
                record.cursor = cursor;
                starts.push(bytes.len() as u64);
                bytes.extend_from_slice(&serde_json::to_vec(&record).unwrap_or_default());
                bytes.push(b'\n');
                numbered.push(record);
            }
            let io = |source| FeedError { path: stream.path.display().to_string(), source };
            if stream.broken {
                return Err(io(std::io::Error::other(
                    "an earlier append failed and could not be cut off the file; restart proviso",
                )));
            }
            let before = stream.file.metadata().map_err(io)?.len();
            let written = crate::failpoint::write_all("feed.write", &mut stream.file, &bytes)
                .and_then(|()| crate::failpoint::check("feed.fsync"))
                .and_then(|()| stream.file.sync_data());
            if let Err(error) = written {
                crate::telemetry::StorageFailed { file: "feed" }.emit();
                // A full disk may have taken part of the records: cut them,
                // or the next append would continue a broken line.
                if let Err(cut) = stream.file.set_len(before).and_then(|()| stream.file.sync_all()) {
                    tracing::error!(path = %stream.path.display(), %cut, "Could not cut a failed feed append; appends refused until restart.");
                    stream.broken = true;
                }
                return Err(io(error));
            }
            for start in starts {
                stream.offsets.push(before + start);
            }
            stream.ledger_at = stream.len();
            stream.end = before + bytes.len() as u64;
            stream.withdrawn.extend(numbered.iter().filter_map(|record| record.retracts));
        }
        for record in &numbered {
            Inner::track(inner, partner, purpose, record);
        }
        Ok(())
    }

    /// Records decided again for messages whose outputs a crashed process
    /// had already written past the outputs mark: each of the first
    /// `records` that lands on a cursor already on file is checked against
    /// the record there and taken into the ledger, not written again.
    /// Returns the records left to append. A record that differs from the
    /// one on file is an error: the outputs would no longer be the same on
    /// every node.
    fn match_on_file(
        inner: &mut Inner,
        stream_key: &(String, Purpose),
        records: Vec<FeedRecord>,
    ) -> Result<Vec<FeedRecord>, FeedError> {
        let Some(stream) = inner.streams.get(stream_key) else { return Ok(records) };
        if stream.ledger_at >= stream.len() {
            return Ok(records);
        }
        let (mut cursor, end) = (stream.ledger_at, stream.len());
        let mut matched = Vec::new();
        let mut rest = records.into_iter();
        for mut record in rest.by_ref() {
            record.cursor = cursor;
            let on_file = stream.read_record(cursor).map_err(|source| stream.error(source))?;
            if !on_file.as_ref().is_some_and(|on_file| same_record(on_file, &record)) {
                return Err(stream.error(std::io::Error::other(format!(
                    "record {cursor}, written past the outputs mark before a crash, differs from the one decided \
                     again for it; restore this node from another node's backup"
                ))));
            }
            matched.push(record);
            cursor += 1;
            if cursor == end {
                break;
            }
        }
        if let Some(stream) = inner.streams.get_mut(stream_key) {
            stream.ledger_at = cursor;
        }
        for record in &matched {
            Inner::track(inner, &stream_key.0, stream_key.1, record);
        }
        Ok(rest.collect())
    }

    /// The outputs mark said how many records each feed held when it was
    /// written (by file stem, `partner.purpose`; a feed it does not name
    /// held none). When a feed holds more, a process wrote records past the
    /// mark and died before moving it: the ledger is rebuilt as it stood at
    /// the mark, and the records decided again for those messages are
    /// matched with the ones on file ([`Feeds::append`]) instead of written
    /// twice. Without this, an add made and withdrawn past the mark was
    /// added and withdrawn a second time.
    pub fn resume_at(&self, counts: &std::collections::BTreeMap<String, u64>) -> Result<(), FeedError> {
        let mut inner = self.lock();
        let at_mark = |(partner, purpose): &(String, Purpose), stream: &Stream| {
            counts.get(&format!("{partner}.{}", purpose.as_str())).copied().unwrap_or(0).min(stream.len())
        };
        if inner.streams.iter().all(|(key, stream)| at_mark(key, stream) == stream.ledger_at) {
            return Ok(());
        }
        let inner = &mut *inner;
        inner.ledger.clear();
        let mut keys: Vec<(String, Purpose)> = inner.streams.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(stream) = inner.streams.get_mut(&key) else { continue };
            let count = at_mark(&key, stream);
            if count < stream.len() {
                tracing::info!(
                    path = %stream.path.display(),
                    past_mark = stream.len() - count,
                    "Feed records written past the outputs mark before a stop are matched with the outputs decided again, not written twice."
                );
            }
            stream.ledger_at = count;
            let mut start = 0;
            while start < count {
                let stream = &inner.streams[&key];
                let page =
                    stream.read_records(start, (count - start).min(1024)).map_err(|source| stream.error(source))?;
                if page.is_empty() {
                    break;
                }
                start += page.len() as u64;
                for record in &page {
                    Inner::track(inner, &key.0, key.1, record);
                }
            }
        }
        Ok(())
    }

    /// How many records of each feed (by file stem, `partner.purpose`) the
    /// ledger reflects: what the outputs mark keeps.
    pub fn accounted(&self) -> std::collections::BTreeMap<String, u64> {
        let inner = self.lock();
        inner
            .streams
            .iter()
            .map(|((partner, purpose), stream)| (format!("{partner}.{}", purpose.as_str()), stream.ledger_at))
            .collect()
    }

    /// Records of one feed after `after`, at most `limit`, as a partner may
    /// read them: a withdrawn `add` and every `retract` come redacted. The
    /// page is read from the file at the offsets the index holds.
    pub fn read(
        &self,
        partner: &str,
        purpose: Purpose,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FeedRecord>, FeedError> {
        let inner = self.lock();
        let start = after.map_or(0, |a| a.saturating_add(1));
        let Some(stream) = inner.streams.get(&(partner.to_string(), purpose)) else { return Ok(Vec::new()) };
        let records = stream.read_records(start, limit as u64).map_err(|source| stream.error(source))?;
        Ok(records
            .into_iter()
            .map(|record| {
                if record.op != "add" || stream.withdrawn.contains(record.cursor) {
                    record.redacted()
                } else {
                    record
                }
            })
            .collect())
    }

    /// Rewrites every feed file with each withdrawn `add` and every
    /// `retract` redacted, cursors unchanged: after an erasure no byte of the
    /// person's partner ids, businesses or handles stays in `feeds/` (their
    /// adds were all withdrawn when the erasure was acknowledged). Runs
    /// with the log's compaction; each file is written aside, fsynced and
    /// renamed over, so a crash leaves the old or the new file.
    pub fn compact(&self) -> Result<usize, FeedError> {
        let mut inner = self.lock();
        let mut redacted = 0;
        for stream in inner.streams.values_mut() {
            let owed = |record: &FeedRecord| {
                (record.op != "add" || stream.withdrawn.contains(record.cursor)) && !record.is_redacted()
            };
            // First pass: whether anything is left to redact.
            let mut changed = 0;
            for_each_record(stream, &mut |record| {
                changed += usize::from(owed(&record));
                Ok(())
            })?;
            if changed == 0 {
                continue;
            }
            redacted += changed;
            let tmp = stream.path.with_extension("ndjson.tmp");
            let io = |source| FeedError { path: tmp.display().to_string(), source };
            let file =
                crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&tmp).map_err(io)?;
            let mut out = BufWriter::new(file);
            let mut offsets = offsets::Offsets::default();
            let mut end = 0u64;
            for_each_record(stream, &mut |record| {
                let record = if owed(&record) { record.redacted() } else { record };
                let mut line = serde_json::to_vec(&record).unwrap_or_default();
                line.push(b'\n');
                out.write_all(&line)?;
                offsets.push(end);
                end += line.len() as u64;
                Ok(())
            })?;
            let file = out.into_inner().map_err(|error| io(error.into_error()))?;
            file.sync_all().map_err(io)?;
            let io = |source| FeedError { path: stream.path.display().to_string(), source };
            std::fs::rename(&tmp, &stream.path).map_err(io)?;
            stream.file = OpenOptions::new().append(true).open(&stream.path).map_err(io)?;
            stream.offsets = offsets;
            stream.end = end;
        }
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| FeedError { path: self.dir.display().to_string(), source })?;
        Ok(redacted)
    }

    /// Copies every feed as it stands into `dest_data_dir` (a backup);
    /// returns the records copied. Each file is opened and its length read
    /// under the feeds' lock (every append is whole under it), then copied
    /// to that length with appends going on.
    pub fn copy_to(&self, dest_data_dir: &Path) -> Result<u64, FeedError> {
        let dir = dest_data_dir.join(FEEDS_DIR);
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| FeedError { path, source }
        };
        let mut open = Vec::new();
        let mut records = 0;
        {
            let inner = self.lock();
            for stream in inner.streams.values() {
                let file = File::open(&stream.path).map_err(io(&stream.path))?;
                let len = file.metadata().map_err(io(&stream.path))?.len();
                records += stream.len();
                open.push((stream.path.clone(), file, len));
            }
        }
        crate::log::fsmode::create_private_dir(&dir).map_err(io(&dir))?;
        for (path, file, len) in open {
            let Some(name) = path.file_name() else { continue };
            let target = dir.join(name);
            crate::log::copy_prefix_from(file, &target, len).map_err(io(&target))?;
        }
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io(&dir))?;
        Ok(records)
    }

    /// Every live add, as (partner, purpose, record), for reconciliation:
    /// each read from its feed's file at its indexed offset.
    pub fn live(&self) -> Result<Vec<(String, Purpose, FeedRecord)>, FeedError> {
        let inner = self.lock();
        let mut live = Vec::with_capacity(inner.ledger.len());
        // One handle per feed file, however many of its adds are live.
        let mut open: HashMap<(&str, Purpose), File> = HashMap::new();
        for (feed, cursor) in inner.ledger.iter() {
            let Some((partner, purpose)) = inner.feeds.get(feed as usize) else { continue };
            let Some(stream) = inner.streams.get(&(partner.clone(), *purpose)) else { continue };
            let file = match open.entry((partner.as_str(), *purpose)) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(File::open(&stream.path).map_err(|source| stream.error(source))?)
                }
            };
            let mut read = stream.read_records_in(file, cursor, 1).map_err(|source| stream.error(source))?;
            if let Some(record) = read.pop() {
                live.push((partner.clone(), *purpose, record));
            }
        }
        Ok(live)
    }

    /// Records indexed (an offset each; no record is held in memory).
    #[cfg(test)]
    fn indexed(&self) -> usize {
        self.lock().streams.values().map(|stream| stream.offsets.len() as usize).sum()
    }
}

/// Whether a record decided again is the one on file at its cursor (which
/// compaction may have redacted: then what a redacted record keeps).
fn same_record(on_file: &FeedRecord, decided: &FeedRecord) -> bool {
    if on_file.is_redacted() {
        on_file == &decided.redacted()
    } else {
        on_file == decided
    }
}

/// Calls `visit` with every whole record of `stream`, read from its file in
/// order (up to the indexed end: the same records the index holds).
fn for_each_record(stream: &Stream, visit: &mut dyn FnMut(FeedRecord) -> std::io::Result<()>) -> Result<(), FeedError> {
    const PAGE: u64 = 1024;
    let mut start = 0;
    while start < stream.len() {
        let page = stream.read_records(start, PAGE).map_err(|source| stream.error(source))?;
        start += page.len() as u64;
        for record in page {
            visit(record).map_err(|source| stream.error(source))?;
        }
    }
    Ok(())
}

impl Inner {
    /// The number of feed (`partner`, `purpose`), if the ledger named it.
    fn feed_number(&self, partner: &str, purpose: Purpose) -> Option<u32> {
        self.feeds.iter().position(|(p, q)| p == partner && *q == purpose).map(|feed| feed as u32)
    }

    fn track(inner: &mut Inner, partner: &str, purpose: Purpose, record: &FeedRecord) {
        let feed = inner.feed_number(partner, purpose).unwrap_or_else(|| {
            inner.feeds.push((partner.to_string(), purpose));
            (inner.feeds.len() - 1) as u32
        });
        let key = digest(&key_of(record));
        if record.op == "add" {
            inner.ledger.add(feed, key, record.cursor, &record.subjects);
        } else if record.retracts.is_some() && inner.ledger.cursor(feed, &key) == record.retracts {
            inner.ledger.remove(feed, &key, &record.subjects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggestion(
        asker: &str,
        suggested: &str,
        subjects: &[&str],
    ) -> (String, Option<String>, Option<String>, Vec<String>) {
        (asker.into(), Some(suggested.into()), None, subjects.iter().map(|s| s.to_string()).collect())
    }

    /// Adds are recorded once; a refusal retracts every live add involving
    /// the subject for that purpose only; the ledger survives a reopen.
    #[test]
    fn disclosures_are_retracted_once_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let feeds = Feeds::open(dir.path()).expect("open");
        let items = vec![suggestion("p1", "p2", &["s_a", "s_b"]), suggestion("p1", "p3", &["s_a", "s_c"])];
        let released = |purpose, items| crate::gate::Gated::released_in_a_test(purpose, items);
        assert_eq!(feeds.disclose("net", "suggestion", released(Purpose::Product, items.clone()), 1).expect("add"), 2);
        assert_eq!(feeds.disclose("net", "suggestion", released(Purpose::Product, items), 2).expect("again"), 0);
        let audience = vec![("p2".to_string(), None, Some("shop".to_string()), vec!["s_b".to_string()])];
        feeds.disclose("net", "audience_member", released(Purpose::Ads, audience), 3).expect("ads");
        let refusal =
            Revocation { subject: "s_b".into(), purposes: vec![Purpose::Product], partner: None, reason: "refused" };
        assert_eq!(feeds.revoke(std::slice::from_ref(&refusal), 4).expect("revoke"), 1);
        assert_eq!(feeds.revoke(&[refusal], 5).expect("again"), 0, "retracted once");
        let product = feeds.read("net", Purpose::Product, None, 10).expect("read");
        assert_eq!(product.len(), 3);
        assert_eq!(
            (product[2].op.as_str(), product[2].retracts, product[2].suggested.as_deref()),
            ("retract", Some(0), None),
            "a retraction names nobody"
        );
        assert!(product[0].is_redacted(), "the withdrawn add reads as a tombstone: {:?}", product[0]);
        assert_eq!(product[1].suggested.as_deref(), Some("p3"), "a live add is served whole");
        assert_eq!(
            feeds.read("net", Purpose::Ads, None, 10).expect("read").len(),
            1,
            "ads untouched by a product refusal"
        );
        drop(feeds);
        let feeds = Feeds::open(dir.path()).expect("reopen");
        assert_eq!(feeds.live().expect("live").len(), 2, "p1->p3 and the ads membership stay live");
        let ban = Revocation {
            subject: "s_a".into(),
            purposes: vec![Purpose::Product, Purpose::Ads],
            partner: None,
            reason: "banned",
        };
        assert_eq!(feeds.revoke(&[ban], 6).expect("revoke"), 1);
        assert_eq!(feeds.read("net", Purpose::Product, Some(2), 10).expect("read").len(), 1);
    }

    /// A torn last record (a crash mid-append) is cut off the file, so the
    /// next append starts on a line of its own and every record reads back.
    /// Records a process wrote past the outputs mark before it died (an add
    /// and its retraction) are matched with the same records decided again
    /// after a reopen, not written twice; what comes after them is
    /// appended at the next cursor; a record decided again that differs from
    /// the one on file is refused.
    #[test]
    fn records_past_the_mark_are_matched_not_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let released = |items| crate::gate::Gated::released_in_a_test(Purpose::Product, items);
        let refusal = |subject: &str| Revocation {
            subject: subject.into(),
            purposes: vec![Purpose::Product],
            partner: None,
            reason: "refused",
        };
        let feeds = Feeds::open(dir.path()).expect("open");
        feeds.disclose("net", "suggestion", released(vec![suggestion("p1", "p2", &["s_a", "s_b"])]), 1).expect("add");
        let mark = feeds.accounted();
        assert_eq!(mark.get("net.product"), Some(&1));
        // Past the mark: an add, and the retraction of it.
        feeds.disclose("net", "suggestion", released(vec![suggestion("p1", "p3", &["s_a", "s_c"])]), 2).expect("add");
        assert_eq!(feeds.revoke(&[refusal("s_c")], 3).expect("revoke"), 1);
        let on_file = std::fs::read(dir.path().join("feeds/net.product.ndjson")).expect("feed");
        drop(feeds);

        let feeds = Feeds::open(dir.path()).expect("reopen");
        feeds.resume_at(&mark).expect("resume");
        assert_eq!(feeds.accounted().get("net.product"), Some(&1), "the ledger stands at the mark");
        let again = vec![suggestion("p1", "p3", &["s_a", "s_c"])];
        assert_eq!(feeds.disclose("net", "suggestion", released(again), 2).expect("matched"), 1);
        assert_eq!(feeds.revoke(&[refusal("s_c")], 3).expect("matched"), 1);
        assert_eq!(std::fs::read(dir.path().join("feeds/net.product.ndjson")).expect("feed"), on_file, "nothing twice");
        assert_eq!(feeds.accounted().get("net.product"), Some(&3));
        assert_eq!(feeds.revoke(&[refusal("s_b")], 4).expect("revoke"), 1, "the first add is still live");
        assert_eq!(feeds.read("net", Purpose::Product, Some(2), 10).expect("read")[0].retracts, Some(0));

        // Decided differently than what is on file: refused, nothing written.
        let feeds = {
            drop(feeds);
            Feeds::open(dir.path()).expect("reopen")
        };
        feeds.resume_at(&mark).expect("resume");
        let other = vec![suggestion("p1", "p9", &["s_a", "s_z"])];
        assert!(feeds.disclose("net", "suggestion", released(other), 2).is_err());
        assert_eq!(feeds.indexed(), 4);
    }

    #[test]
    fn a_torn_last_record_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let released = |items| crate::gate::Gated::released_in_a_test(Purpose::Product, items);
        let feeds = Feeds::open(dir.path()).expect("open");
        feeds.disclose("net", "suggestion", released(vec![suggestion("p1", "p2", &["r_a"])]), 1).expect("add");
        drop(feeds);
        let path = dir.path().join(FEEDS_DIR).join("net.product.ndjson");
        let whole = std::fs::read(&path).expect("read");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open file");
        file.write_all(br#"{"cursor":1,"op":"add","abo"#).expect("torn write");
        drop(file);
        let feeds = Feeds::open(dir.path()).expect("a torn tail is not corruption");
        assert_eq!(std::fs::read(&path).expect("read"), whole, "the torn bytes are cut");
        feeds.disclose("net", "suggestion", released(vec![suggestion("p1", "p3", &["r_b"])]), 2).expect("add");
        drop(feeds);
        let feeds = Feeds::open(dir.path()).expect("reopen");
        assert_eq!(feeds.read("net", Purpose::Product, None, 10).expect("read").len(), 2, "both adds read back");
        assert_eq!(feeds.live().expect("live").len(), 2);
    }

    /// A damaged record before the tail stops the open, naming the file and
    /// the byte: dropping it would lose an add whose retraction is owed.
    #[test]
    fn a_damaged_record_is_named_and_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let released = |items| crate::gate::Gated::released_in_a_test(Purpose::Product, items);
        let feeds = Feeds::open(dir.path()).expect("open");
        let items = vec![suggestion("p1", "p2", &["r_a"]), suggestion("p1", "p3", &["r_b"])];
        feeds.disclose("net", "suggestion", released(items), 1).expect("add");
        drop(feeds);
        let path = dir.path().join(FEEDS_DIR).join("net.product.ndjson");
        let mut bytes = std::fs::read(&path).expect("read");
        let second = bytes.iter().position(|&b| b == b'\n').expect("two lines") + 1;
        bytes[second] = b'X';
        std::fs::write(&path, &bytes).expect("damage");
        let error = Feeds::open(dir.path()).err().expect("refused").to_string();
        assert!(error.contains("net.product.ndjson"), "{error}");
        assert!(error.contains(&format!("corrupt at byte {second} (record 1")), "{error}");
        // A record out of its place is damage too (a line lost or repeated).
        let first = String::from_utf8(bytes[..second].to_vec()).expect("utf8");
        std::fs::write(&path, format!("{first}{first}")).expect("repeat");
        assert!(Feeds::open(dir.path()).is_err(), "a repeated record is refused");
    }

    /// The feeds hold no record in memory: a page, the add a retraction
    /// copies and the live records are read from the file at their indexed
    /// offsets (a same-length edit of the file shows in all three), and a
    /// compaction rebuilds the index for the shorter, redacted lines.
    #[test]
    fn records_are_served_from_the_file_not_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let released = |items| crate::gate::Gated::released_in_a_test(Purpose::Product, items);
        let feeds = Feeds::open(dir.path()).expect("open");
        let items: Vec<_> = (0..50).map(|n| suggestion("p1", &format!("q{n:02}"), &["r_a", "r_b"])).collect();
        feeds.disclose("net", "suggestion", released(items), 1).expect("add");
        feeds.disclose("net", "suggestion", released(vec![suggestion("p1", "p2", &["r_c"])]), 2).expect("add");
        assert_eq!(feeds.indexed(), 51);
        let path = dir.path().join(FEEDS_DIR).join("net.product.ndjson");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace(r#""suggested":"q07""#, r#""suggested":"x07""#)).expect("edit");
        let page = feeds.read("net", Purpose::Product, Some(5), 3).expect("read");
        assert_eq!(page.iter().map(|r| r.cursor).collect::<Vec<_>>(), vec![6, 7, 8]);
        assert_eq!(page[1].suggested.as_deref(), Some("x07"), "the page comes from the file");
        assert!(feeds.live().expect("live").iter().any(|(_, _, r)| r.suggested.as_deref() == Some("x07")));
        let refusal =
            Revocation { subject: "r_a".into(), purposes: vec![Purpose::Product], partner: None, reason: "refused" };
        assert_eq!(feeds.revoke(&[refusal], 3).expect("revoke"), 50);
        assert_eq!(feeds.indexed(), 101);
        let retractions = feeds.read("net", Purpose::Product, Some(50), 100).expect("read");
        assert_eq!(retractions.len(), 50);
        assert_eq!(retractions.iter().filter(|r| r.retracts == Some(7)).count(), 1);
        let raw = std::fs::read_to_string(&path).expect("read");
        assert!(raw.contains(r#""retracts":7,"reason":"refused","at_ms":3"#), "the retraction copies the add as read");
        assert_eq!(feeds.compact().expect("compact"), 100, "50 withdrawn adds and 50 retractions");
        assert!(!std::fs::read_to_string(&path).expect("read").contains("x07"));
        let all = feeds.read("net", Purpose::Product, None, 1000).expect("read after compaction");
        assert_eq!(all.len(), 101);
        assert!(all.iter().enumerate().all(|(n, r)| r.cursor == n as u64));
        assert_eq!(all[50].suggested.as_deref(), Some("p2"), "the live add survives the rewrite whole");
        feeds.disclose("net", "suggestion", released(vec![suggestion("p1", "p4", &["r_d"])]), 4).expect("add");
        assert_eq!(
            feeds.read("net", Purpose::Product, Some(100), 10).expect("read")[0].suggested.as_deref(),
            Some("p4")
        );
        drop(feeds);
        let feeds = Feeds::open(dir.path()).expect("reopen");
        assert_eq!(feeds.indexed(), 102);
        assert_eq!(feeds.live().expect("live").len(), 2);
    }

    /// A person named by many live adds (a popular person suggested to
    /// many askers) is retracted from each of them once, in one revoke.
    /// (Before the ledger moved such people to sets of their own, this
    /// took 52 s in a debug build, each add and removal scanning all of the
    /// person's links; now about 1 s.)
    #[test]
    fn a_person_in_many_adds_is_retracted_from_each_once() {
        const ADDS: usize = 20_000;
        let dir = tempfile::tempdir().expect("tempdir");
        let released = |items| crate::gate::Gated::released_in_a_test(Purpose::Product, items);
        let feeds = Feeds::open(dir.path()).expect("open");
        for chunk in 0..ADDS / 1_000 {
            let items = (0..1_000)
                .map(|k| suggestion(&format!("asker{}", chunk * 1_000 + k), "popular", &["r_popular", "r_other"]))
                .collect();
            feeds.disclose("net", "suggestion", released(items), 1).expect("add");
        }
        let revocation = Revocation {
            subject: "r_popular".into(),
            purposes: vec![Purpose::Product],
            partner: None,
            reason: "consent_withdrawn",
        };
        assert_eq!(feeds.revoke(std::slice::from_ref(&revocation), 2).expect("revoke"), ADDS);
        assert!(feeds.live().expect("live").is_empty());
        assert_eq!(feeds.revoke(&[revocation], 3).expect("again"), 0, "nothing left to retract");
        let records = feeds.read("net", Purpose::Product, None, 2 * ADDS + 1).expect("read");
        let retracted: std::collections::HashSet<u64> = records.iter().filter_map(|r| r.retracts).collect();
        assert_eq!((records.len(), retracted.len()), (2 * ADDS, ADDS));
    }
}
