//! Snapshots: the whole state at a log position, written atomically.
//!
//! File layout: magic `PRVSNAP8` (`PRVSNAPA` for a cluster node holding the usage and audience memberships of its partitions only; `PRVSNAP9`, still read, held usage only), body, crc32 of body. The body holds the
//! subject registry, usage and consent in a hand-written layout, then the
//! graph, partner links, abuse, audiences, housekeeping and recent
//! idempotency keys as one postcard blob each, then domain reputation as a
//! last blob, then the cluster log position (two `u64`s) and the cover (`Cover`: whose usage is held, when not everyone's); a version-8
//! snapshot written before cluster mode ends without it). Older versions are still read: `PRVSNAP7`, whose links hold
//! partner account ids as strings in every map (converted,
//! `Links::from_legacy`); `PRVSNAP6`, whose graph also holds each address
//! book as a `u32` list (converted, `Graph::from_legacy`);
//! `PRVSNAP5`, which also has its domain blob in the older layout without
//! each domain's ordinary-sender sketch and verdict lapse time (converted,
//! `DomainReputation::from_v5`; one written before domain reputation existed
//! ends after the keys and loads with no domain state, which the next link
//! messages rebuild); `PRVSNAP4`, whose keys also lack request digests;
//! `PRVSNAP3`, without the keys. A snapshot
//! of another version is ignored (state is rebuilt from the log). Written to a temporary
//! file, fsynced, then renamed over the old snapshot, so a crash leaves either
//! the old or the new snapshot, never a mix.

use std::path::Path;

use super::{State, SubjectRecord};
use crate::codec::{DecodeError, Reader, Writer};
use crate::consent::ConsentChange;
use crate::contract::{Pseudonym, Purpose, Region};
use crate::processors::abuse::reputation::{DomainReputation, DomainReputationV5};
use crate::processors::graph::Graph;
use crate::processors::links::Links;
use crate::processors::usage::Usage;

pub const SNAPSHOT_FILE: &str = "snapshot.bin";

/// The snapshot an erasure's compaction writes of its new log before the
/// swap, beside [`SNAPSHOT_FILE`]: renamed over it once the new log is the
/// log, removed by any start that finds it.
pub const COMPACTED_SNAPSHOT_FILE: &str = "snapshot.compacted.bin";
/// Version 8: partner account ids interned once (`processors/links/`).
const MAGIC: &[u8; 8] = b"PRVSNAP8";
/// Version 8's layout with a cover after the stream position: a cluster
/// node's snapshot holding the usage and audience memberships of its
/// partitions only (version 10). A separate magic so that a proviso that
/// knows no cover, or covers usage only, never reads one as everyone's
/// (it rebuilds from the log instead).
const MAGIC_COVERED: &[u8; 8] = b"PRVSNAPA";
/// Version 9: the same, written when a cover held usage only (its
/// audiences hold everyone's members: the uncovered are dropped on load).
const MAGIC_COVERED_9: &[u8; 8] = b"PRVSNAP9";
/// Version 7: address books as varint gaps (`processors/graph/books.rs`).
const MAGIC_7: &[u8; 8] = b"PRVSNAP7";
/// Version 6: each tracked link domain keeps a sketch of its ordinary
/// senders, and a verdict the time it lapses; books as `u32` lists.
const MAGIC_6: &[u8; 8] = b"PRVSNAP6";
/// Version 5: each recent idempotency key keeps its request's digest; domain
/// reputation, when present, in the version-5 layout.
const MAGIC_5: &[u8; 8] = b"PRVSNAP5";
/// Version 4: recent idempotency keys after the housekeeping blob.
const MAGIC_4: &[u8; 8] = b"PRVSNAP4";
/// Version 3: partner claims beside links; audience budgets per advertiser.
/// Still read (with no idempotency keys: none were logged before version 4).
const MAGIC_3: &[u8; 8] = b"PRVSNAP3";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("snapshot is not a proviso v2 snapshot")]
    Magic,
    #[error("snapshot section: {0}")]
    Encode(String),
    #[error(
        "snapshot checksum mismatch: some byte of its {0} bytes changed since it was written (a checksum cannot say which)"
    )]
    Checksum(u64),
    #[error("snapshot i/o on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.display().to_string(), source }
}

pub fn save_snapshot(state: &State, dir: &Path) -> Result<u64, SnapshotError> {
    save_snapshot_as(state, dir, SNAPSHOT_FILE)
}

/// [`save_snapshot`] under the file name `name` (its temporary file: the
/// name with the extension `tmp`).
pub fn save_snapshot_as(state: &State, dir: &Path, name: &str) -> Result<u64, SnapshotError> {
    crate::log::fsmode::create_private_dir(dir).map_err(io_err(dir))?;
    let bytes = encode_snapshot(state)?;

    let path = dir.join(name);
    let temporary = path.with_extension("tmp");
    let written = write_temporary(&temporary, &bytes).and_then(|()| {
        crate::failpoint::check("snapshot.rename").map_err(io_err(&path))?;
        std::fs::rename(&temporary, &path).map_err(io_err(&path))
    });
    if let Err(error) = written {
        // On a full disk the partial temporary file holds space the log
        // needs: remove it (the old snapshot, if any, stays whole).
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    Ok(bytes.len() as u64)
}

/// The bytes of a snapshot of `state` (magic, body, crc32), as
/// [`save_snapshot`] writes them and [`decode_snapshot`] reads them.
pub fn encode_snapshot(state: &State) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Writer::default();
    out.raw(if state.cover == super::Cover::All { MAGIC } else { MAGIC_COVERED });
    out.u64(state.next_seq);
    out.u64(state.events_applied);
    out.u32(state.subjects.records.len() as u32);
    for record in state.subjects.records.iter() {
        out.raw(record.pseudonym.as_bytes());
        out.raw(&record.region.0);
        out.i64(record.first_seen_ms);
    }
    state.usage.encode(&mut out);
    let mut histories: Vec<(u32, &[ConsentChange])> = state.consent.iter().collect();
    histories.sort_by_key(|(subject, _)| *subject);
    out.u32(histories.len() as u32);
    for (subject, history) in histories {
        out.u32(subject);
        out.u32(history.len() as u32);
        for change in history {
            out.u8(change.purpose.code());
            out.u8(u8::from(change.granted));
            out.i64(change.ts_ms);
        }
    }
    for blob in [
        postcard::to_stdvec(&state.graph),
        postcard::to_stdvec(&state.links.to_stored()),
        postcard::to_stdvec(&state.abuse),
        postcard::to_stdvec(&state.audiences),
        postcard::to_stdvec(&state.housekeeping),
        postcard::to_stdvec(&state.recent_keys.to_stored()),
        postcard::to_stdvec(state.abuse.domain_reputation()),
    ] {
        let blob = blob.map_err(|error| SnapshotError::Encode(error.to_string()))?;
        out.u64(blob.len() as u64);
        out.raw(&blob);
    }
    // Last, so a version-8 snapshot written before cluster mode (without it)
    // still reads: its position is 0.
    out.u64(state.stream_position.epoch);
    out.u64(state.stream_position.sequence);
    // Then the cover, unless it is everyone (a snapshot without one held
    // everyone's usage, and a whole cover's bytes stay as they were).
    if state.cover != super::Cover::All {
        state.cover.encode(&mut out);
    }
    let crc = crc32fast::hash(&out.bytes[MAGIC.len()..]);
    out.u32(crc);
    Ok(out.bytes)
}

fn write_temporary(temporary: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let mut file = crate::log::fsmode::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temporary)
        .map_err(io_err(temporary))?;
    // A leftover temporary file keeps its old mode when reopened.
    crate::log::fsmode::restrict(temporary).map_err(io_err(temporary))?;
    crate::failpoint::write_all("snapshot.write", &mut file, bytes).map_err(io_err(temporary))?;
    file.sync_all().map_err(io_err(temporary))
}

/// Loads the snapshot in `dir`, or `None` when there is none.
pub fn load_snapshot(dir: &Path) -> Result<Option<State>, SnapshotError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_err(&path)(error)),
    };
    decode_snapshot(&bytes).map(Some)
}

/// Decodes the bytes of a snapshot file (magic, body, crc32). Any input
/// gives a state or an error, never a panic (`fuzz/` checks this).
pub fn decode_snapshot(bytes: &[u8]) -> Result<State, SnapshotError> {
    if bytes.len() < MAGIC.len() + 4 {
        return Err(SnapshotError::Magic);
    }
    let version = match &bytes[..MAGIC.len()] {
        magic if magic == MAGIC => 8,
        magic if magic == MAGIC_COVERED => 10,
        magic if magic == MAGIC_COVERED_9 => 9,
        magic if magic == MAGIC_7 => 7,
        magic if magic == MAGIC_6 => 6,
        magic if magic == MAGIC_5 => 5,
        magic if magic == MAGIC_4 => 4,
        magic if magic == MAGIC_3 => 3,
        _ => return Err(SnapshotError::Magic),
    };
    let body = &bytes[MAGIC.len()..bytes.len() - 4];
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&bytes[bytes.len() - 4..]);
    if crc32fast::hash(body) != u32::from_le_bytes(crc_bytes) {
        return Err(SnapshotError::Checksum(bytes.len() as u64));
    }
    let mut input = Reader::new(body);
    let mut state = State { next_seq: input.u64()?, events_applied: input.u64()?, ..State::default() };
    let subjects = input.u32()?;
    // Each record takes 26 bytes of the body: a count the body cannot hold
    // reserves no more than it could.
    state.subjects.reserve((subjects as usize).min(body.len() / 26));
    for subject in 0..subjects {
        let record = SubjectRecord {
            pseudonym: Pseudonym::from_stored(input.bytes16()?),
            region: Region(input.bytes2()?),
            first_seen_ms: input.i64()?,
        };
        state.subjects.acting += usize::from(record.has_acted());
        state.subjects.records.push(record);
        state.subjects.insert_index(record.pseudonym, subject);
    }
    state.usage = Usage::decode(&mut input, state.subjects.records.iter().map(|r| r.has_acted().then_some(r.region)))?;
    for _ in 0..input.u32()? {
        let subject = input.u32()?;
        for _ in 0..input.u32()? {
            let code = input.u8()?;
            let granted = input.u8()? != 0;
            let ts_ms = input.i64()?;
            let purpose = Purpose::from_code(code).ok_or(DecodeError::Truncated)?;
            state.consent.record(subject, ConsentChange { purpose, granted, ts_ms });
        }
    }
    let graph = if version >= 7 {
        Graph::from_stored(decode_blob(&mut input)?, state.subjects.len())
    } else {
        Graph::from_legacy(decode_blob(&mut input)?, state.subjects.len())
    };
    state.graph = graph.map_err(SnapshotError::Encode)?;
    state.links = if version >= 8 {
        Links::from_stored(decode_blob(&mut input)?, state.subjects.len()).map_err(SnapshotError::Encode)?
    } else {
        Links::from_legacy(decode_blob(&mut input)?, state.subjects.len()).map_err(SnapshotError::Encode)?
    };
    state.abuse = decode_blob(&mut input)?;
    state.abuse.bind_windows(state.subjects.len()).map_err(SnapshotError::Encode)?;
    state.audiences = decode_blob(&mut input)?;
    state.housekeeping = decode_blob(&mut input)?;
    match version {
        5..=10 => state.recent_keys = super::RecentKeys::from_stored(decode_blob(&mut input)?),
        4 => state.recent_keys = super::RecentKeys::from_stored_v4(decode_blob(&mut input)?),
        _ => {}
    }
    let mut domains_v5: Option<DomainReputationV5> = None;
    if version >= 6 {
        state.abuse.set_domain_reputation(decode_blob(&mut input)?);
    } else if version == 5 && input.remaining() > 0 {
        domains_v5 = Some(decode_blob(&mut input)?);
    }
    if version >= 8 && input.remaining() > 0 {
        state.stream_position = crate::contract::LogPosition { epoch: input.u64()?, sequence: input.u64()? };
    }
    if version >= 9 {
        state.cover = super::Cover::decode(&mut input)?;
        // Usage's country and platform sets were read for every acting
        // person: those of partitions not covered leave them (memory
        // only: every count intersects them with active days, which hold
        // covered people alone).
        if !state.cover.is_whole() {
            let uncovered = state.subjects.records.iter().enumerate().filter_map(|(subject, record)| {
                (record.has_acted() && !state.cover.covers(&record.pseudonym)).then_some(subject as u32)
            });
            let uncovered = uncovered.collect();
            state.usage.forget_groups(&uncovered);
            // A version 9 snapshot was written before audiences followed
            // the cover: it holds everyone's members, and the others' are
            // theirs to answer for.
            if version == 9 {
                state.audiences.forget_members(&uncovered);
            }
        }
    }
    state.abuse.restore_rules().map_err(|error| SnapshotError::Encode(error.to_string()))?;
    if let Some(old) = domains_v5 {
        // Converted under the rules in force (their window bounds verdicts).
        let config = state.abuse.rules().reputation.clone();
        state.abuse.set_domain_reputation(DomainReputation::from_v5(old, &config));
    }
    Ok(state)
}

fn decode_blob<T: serde::de::DeserializeOwned>(input: &mut Reader<'_>) -> Result<T, SnapshotError> {
    let len = input.u64()?;
    let bytes = input.take(usize::try_from(len).map_err(|_| DecodeError::Truncated)?)?;
    postcard::from_bytes(bytes).map_err(|error| SnapshotError::Encode(error.to_string()))
}

/// `current`, a snapshot file of `state` in this version's layout, as an
/// older version under `magic` wrote it: the graph section in the layout of
/// version 6 and older (`Graph::legacy_blob`) unless `magic` is version 7,
/// the links section in the layout of version 7 and older
/// (`Links::to_legacy`), checksum recomputed. Tests use it to write old
/// snapshots.
#[cfg(test)]
pub(crate) fn with_legacy_sections(current: &[u8], state: &State, magic: &[u8; 8]) -> Vec<u8> {
    let framed = |blob: Vec<u8>| {
        let mut framed = (blob.len() as u64).to_le_bytes().to_vec();
        framed.extend_from_slice(&blob);
        framed
    };
    let graph = framed(postcard::to_stdvec(&state.graph).expect("graph blob"));
    let links = framed(postcard::to_stdvec(&state.links.to_stored()).expect("links blob"));
    let mut sections = graph.clone();
    sections.extend_from_slice(&links);
    let at = current.windows(sections.len()).position(|window| window == sections).expect("graph section found");
    let mut old = magic.to_vec();
    old.extend_from_slice(&current[MAGIC.len()..at]);
    if magic == MAGIC_7 {
        old.extend_from_slice(&graph);
    } else {
        old.extend_from_slice(&framed(state.graph.legacy_blob()));
    }
    old.extend_from_slice(&framed(postcard::to_stdvec(&state.links.to_legacy()).expect("legacy links")));
    old.extend_from_slice(&current[at + sections.len()..current.len() - 4]);
    let crc = crc32fast::hash(&old[MAGIC.len()..]);
    old.extend_from_slice(&crc.to_le_bytes());
    old
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Direction, Event, EventBody, LinkState};

    /// A snapshot loads back (never silently falling back to a replay) with
    /// every processor's state intact.
    #[test]
    fn snapshot_round_trips_every_processor() {
        let mut state = State::default();
        let who = |k: u8| Pseudonym::from_stored([k; 16]);
        let events = [
            (1, EventBody::Contacts { contacts: vec![who(2), who(3)] }),
            (1, EventBody::BusinessMessage { business: "shop".into(), direction: Direction::Out }),
            (
                2,
                EventBody::PartnerAccount {
                    partner: "net".into(),
                    partner_id: "p2".into(),
                    state: LinkState::Linked,
                    origin: crate::contract::LinkOrigin::Service,
                },
            ),
            (3, EventBody::Consent { purpose: Purpose::Ads, granted: false }),
            (2, EventBody::Block { target: who(1) }),
        ];
        for (seq, (k, body)) in events.into_iter().enumerate() {
            let event = Event { ts_ms: 1_767_225_600_000 + seq as i64, subject: who(k), region: Region(*b"IN"), body };
            state.apply_event(seq as u64, &event);
        }
        state.audiences.spend(Some("acme"), "shop", 1, 500_000);
        state.audiences.spend(None, "shop", 1, 250_000);
        let dir = tempfile::tempdir().expect("tempdir");
        save_snapshot(&state, dir.path()).expect("save");
        let loaded = load_snapshot(dir.path()).expect("loads without error").expect("present");
        assert_eq!(loaded.next_seq, state.next_seq);
        assert_eq!(loaded.heap_breakdown().map(|(name, _)| name), state.heap_breakdown().map(|(name, _)| name));
        let one = loaded.subjects.lookup(&who(1)).expect("subject 1");
        assert_eq!(loaded.graph.book(one).len(), 2);
        assert_eq!(loaded.audiences.businesses_of(one), vec![("shop", 1)]);
        assert!((loaded.audiences.spent("acme", "shop", 1) - 0.75).abs() < 1e-9);
        assert!((loaded.audiences.spent("beta", "shop", 1) - 0.25).abs() < 1e-9);
        let two = loaded.subjects.lookup(&who(2)).expect("subject 2");
        assert!(loaded.graph.blocked_either_way(one, two));
        let net = loaded.links.partner_index("net").expect("partner");
        assert_eq!(loaded.links.account_of(net, two), Some("p2"));
        let three = loaded.subjects.lookup(&who(3)).expect("subject 3");
        assert_eq!(loaded.consent.history(three).len(), 1);
    }

    /// A cluster node's stream position survives a snapshot; a version-8
    /// snapshot written before cluster mode (it ends without one) loads at 0.
    #[test]
    fn the_stream_position_is_kept_and_an_older_snapshot_reads_as_zero() {
        let position = crate::contract::LogPosition { epoch: 3, sequence: 77 };
        let state = State { stream_position: position, ..State::default() };
        let bytes = encode_snapshot(&state).expect("encode");
        assert_eq!(decode_snapshot(&bytes).expect("decode").stream_position, position);
        let mut older = bytes[..bytes.len() - 20].to_vec();
        let crc = crc32fast::hash(&older[MAGIC.len()..]);
        older.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_snapshot(&older).expect("decode older").stream_position, Default::default());
    }

    /// Recent idempotency keys survive a snapshot; a version-3 snapshot
    /// (written before keys existed) still loads, with no keys.
    #[test]
    fn snapshot_keeps_recent_keys_and_reads_version_3() {
        use crate::contract::{Control, ControlBody, KeyedAnswer, KeyedRejection, Record};
        let mut state = State::default();
        let answer = KeyedAnswer {
            accepted: 3,
            rejected: vec![KeyedRejection { line: 2, reason: "content".into(), error: "line 2: `text`".into() }],
            request: Some([4; 16]),
        };
        let body = ControlBody::BatchKeyed { key_digest: [9; 16], answer: answer.clone() };
        state.apply(0, &Record::Control(Control { ts_ms: 5_000, body }));
        assert_eq!(state.events_applied, 0, "a key record is not an event");
        let dir = tempfile::tempdir().expect("tempdir");
        save_snapshot(&state, dir.path()).expect("save");
        let loaded = load_snapshot(dir.path()).expect("loads").expect("present");
        assert_eq!(loaded.recent_keys.get(&[9; 16], 5_000), Some(&answer));
        assert_eq!(loaded.next_seq, 1);

        // The same snapshot as version 3 wrote it: old magic, no key blob.
        let path = dir.path().join(SNAPSHOT_FILE);
        let bytes = std::fs::read(&path).expect("read");
        let blob = postcard::to_stdvec(&state.recent_keys.to_stored()).expect("blob");
        let domains = postcard::to_stdvec(state.abuse.domain_reputation()).expect("domain blob");
        let body_end = bytes.len() - 4 - 8 - blob.len() - 8 - domains.len();
        let mut old = MAGIC_3.to_vec();
        old.extend_from_slice(&bytes[MAGIC.len()..body_end]);
        let crc = crc32fast::hash(&old[MAGIC.len()..]);
        old.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, old).expect("write");
        let loaded = load_snapshot(dir.path()).expect("version 3 loads").expect("present");
        assert!(loaded.recent_keys.is_empty());
        assert_eq!(loaded.next_seq, 1);
    }

    /// The pseudonym of test person `k`.
    fn who(k: u32) -> Pseudonym {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&k.to_le_bytes());
        Pseudonym::from_stored(bytes)
    }

    /// Applies events of test person `k` to a state, one log position and
    /// one millisecond apart.
    fn applier() -> impl FnMut(&mut State, u32, EventBody) {
        let mut seq = 0u64;
        move |state: &mut State, k: u32, body: EventBody| {
            let event = Event { ts_ms: 1_767_225_600_000 + seq as i64, subject: who(k), region: Region(*b"IN"), body };
            state.apply_event(seq, &event);
            seq += 1;
        }
    }

    /// A version-7 snapshot (partner account ids as strings in every links
    /// map) loads into the interned layout with the same answers: every
    /// link both ways, every claim, every friendship, including after an
    /// erasure forgot the ids only the erased person named; and the
    /// version-8 file of the same state answers the same.
    #[test]
    fn snapshot_reads_version_7_links_with_identical_answers() {
        use crate::contract::{FriendState, LinkOrigin};

        let mut state = State::default();
        let mut rng = fastrand::Rng::with_seed(8);
        let mut apply = applier();
        let partners = ["net", "other"];
        for _ in 0..600 {
            let k = rng.u32(..120);
            let partner = partners[rng.usize(..2)].to_string();
            let partner_id = format!("p{}", rng.u32(..150));
            let body = match rng.u8(..5) {
                0 | 1 => EventBody::PartnerAccount {
                    partner,
                    partner_id,
                    state: if rng.u8(..4) == 0 { LinkState::Unlinked } else { LinkState::Linked },
                    origin: if rng.bool() { LinkOrigin::Service } else { LinkOrigin::Partner },
                },
                _ => EventBody::PartnerFriend {
                    partner,
                    partner_id,
                    friend: format!("p{}", rng.u32(..150)),
                    state: if rng.u8(..5) == 0 { FriendState::Removed } else { FriendState::Added },
                },
            };
            apply(&mut state, k, body);
        }
        apply(&mut state, 7, EventBody::DeleteAccount);
        let ids: Vec<String> = (0..150).map(|n| format!("p{n}")).collect();
        let answers = |state: &State| {
            let links = &state.links;
            let mut out = Vec::new();
            for name in partners {
                let Some(partner) = links.partner_index(name) else { continue };
                for subject in 0..state.subjects.len() as u32 {
                    out.push(format!(
                        "{:?} {:?}",
                        links.account_of(partner, subject),
                        links.claim_of(partner, subject)
                    ));
                }
                for a in &ids {
                    out.push(format!("{:?}", links.subject_of(partner, a)));
                    for b in &ids {
                        out.push(format!("{}", links.are_friends(partner, a, b)));
                    }
                }
            }
            out
        };
        let bytes = encode_snapshot(&state).expect("encode");
        let old = with_legacy_sections(&bytes, &state, MAGIC_7);
        assert_eq!(&old[..8], b"PRVSNAP7");
        let loaded = decode_snapshot(&old).expect("version 7 loads");
        assert_eq!(answers(&loaded), answers(&state));
        let again = decode_snapshot(&bytes).expect("version 8 loads");
        assert_eq!(answers(&again), answers(&state));
    }

    /// A version-6 snapshot (each address book a sorted `u32` list in a hash
    /// map) loads into the packed layout with the same answers: every
    /// membership, every book in order, every in-degree, blocks, and the
    /// same friend suggestions.
    #[test]
    fn snapshot_reads_version_6_graph_with_identical_answers() {
        let mut state = State::default();
        let mut rng = fastrand::Rng::with_seed(5);
        let mut apply = applier();
        for k in 0..300 {
            let size = [0, 1, 2, 60, 64, 65, 130, 299][rng.usize(..8)];
            let contacts = (0..size).map(|_| who(rng.u32(..300))).collect();
            apply(&mut state, k, EventBody::Contacts { contacts });
            let partner_id = format!("p{k}");
            let body = EventBody::PartnerAccount {
                partner: "net".into(),
                partner_id,
                state: LinkState::Linked,
                origin: crate::contract::LinkOrigin::Service,
            };
            apply(&mut state, k, body);
        }
        // Replaced books and an erasure, so the arena has garbage and holes.
        for k in (0..300).step_by(7) {
            let contacts = (0..rng.usize(..90)).map(|_| who(rng.u32(..300))).collect();
            apply(&mut state, k, EventBody::Contacts { contacts });
        }
        apply(&mut state, 11, EventBody::Block { target: who(12) });
        apply(&mut state, 13, EventBody::DeleteAccount);

        let index = |state: &State, k: u32| state.subjects.lookup(&who(k)).expect("known");
        assert!(state.graph.blocked_either_way(index(&state, 12), index(&state, 11)));
        let bytes = encode_snapshot(&state).expect("encode");
        let subjects = state.subjects.len() as u32;
        let old = with_legacy_sections(&bytes, &state, MAGIC_6);
        let loaded = decode_snapshot(&old).expect("version 6 loads");
        let (before, after) = (&state.graph, &loaded.graph);
        assert_eq!(after.books().count(), before.books().count());
        for owner in 0..subjects {
            let book: Vec<u32> = before.book(owner).iter().collect();
            assert_eq!(after.book(owner).iter().collect::<Vec<_>>(), book, "book of {owner}");
            assert_eq!(after.in_degree(owner), before.in_degree(owner));
            for other in 0..subjects {
                assert_eq!(after.has_contact(owner, other), before.has_contact(owner, other));
                assert_eq!(after.blocked_either_way(owner, other), before.blocked_either_way(owner, other));
            }
        }
        let net = loaded.links.partner_index("net").expect("partner");
        for owner in 0..subjects {
            let Some(account) = loaded.links.account_of(net, owner) else { continue };
            let ask = |graph| {
                crate::processors::graph::suggest::suggest(graph, &loaded.links, net, owner, account, &mut |_| true, 20)
            };
            assert_eq!(ask(after), ask(before), "suggestions for {owner}");
        }
        // And the version-7 file of the same state gives the same graph too.
        let again = decode_snapshot(&bytes).expect("version 7 loads");
        for owner in 0..subjects {
            assert_eq!(
                again.graph.book(owner).iter().collect::<Vec<_>>(),
                after.book(owner).iter().collect::<Vec<_>>()
            );
        }
    }
}
