//! Domain reputation: link domains judged by how they are sent, not by a list.
//!
//! Owns: a bounded table of recently seen link domains (first and last seen,
//! their recent sends: sender, recipient, whether the sender was young and
//! the recipient a stranger), each recent sender's link domains (as hashes,
//! for the per-sender domain features), the derived verdict that puts a domain on the
//! `suspicious_domains` list with its evidence (which young senders, how many
//! strangers, when), and a copy of that evidence for each action it fed.
//! Never: holds more than `max_domains` domains (the least recently seen is
//! evicted), more than [`MAX_SENDS_PER_DOMAIN`] sends per domain, a phone
//! number or message content. Domains are link domains as the edge
//! normalised them (bare domains, never a URL path); people are dense
//! subject indexes, shown as pseudonyms by the outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::rules::ReputationConfig;
use super::window::distinct;

/// Most sends kept per domain (the newest): enough for the verdict's
/// thresholds, and a popular domain cannot grow without bound.
pub const MAX_SENDS_PER_DOMAIN: usize = 64;
/// Most young senders named in a verdict's evidence.
pub const MAX_EVIDENCE_SENDERS: usize = 8;
/// How long proviso remembers that one person wrote to another who was not
/// in their contacts: an answer within this time is not a message to a
/// stranger (a shop's offer to customers who wrote in weeks ago).
pub const FIRST_WRITE_MEMORY_MS: i64 = 30 * 86_400_000;
/// Most people remembered per writer (the most recently written kept): an
/// ordinary person writes first to a handful of non-contacts; a spammer's
/// thousands are cut to the newest, which costs only an answer from an
/// older victim being counted as cold.
pub const MAX_FIRST_WRITES: usize = 16;

/// One link message that carried the domain.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct DomainSend {
    ts_ms: i64,
    sender: u32,
    recipient: u32,
    young: bool,
    stranger: bool,
}

impl super::window::Timed for DomainSend {
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
}

/// One person a subject wrote to without having them in their contacts.
/// Times are whole seconds since the epoch (12 bytes an entry: there is one
/// per person a writer cold-messaged, up to [`MAX_FIRST_WRITES`]).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct FirstWrite {
    to: u32,
    first_s: u32,
    last_s: u32,
}

/// Event time in whole seconds, as [`FirstWrite`] keeps it.
fn seconds(ts_ms: i64) -> u32 {
    ts_ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32
}

/// Why a domain is on the derived list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainVerdict {
    pub domain: String,
    /// Event time the domain became suspicious.
    pub since_ms: i64,
    /// Event time proviso first saw the domain (its age).
    pub first_seen_ms: i64,
    /// Young accounts that sent it to strangers (subject indexes, at most
    /// [`MAX_EVIDENCE_SENDERS`]).
    pub young_senders: Vec<u32>,
    /// Distinct young senders counted when it was judged.
    pub young_sender_count: u32,
    /// Distinct strangers it was sent to when it was judged.
    pub stranger_recipients: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DomainEntry {
    domain: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    sends: VecDeque<DomainSend>,
    verdict: Option<DomainVerdict>,
}

/// The domain table. Serialised as its own snapshot section.
#[derive(Default, Serialize, Deserialize)]
pub struct DomainReputation {
    /// By the stable hash of the domain (the key per-subject windows keep).
    entries: HashMap<u64, DomainEntry, foldhash::fast::RandomState>,
    /// (last seen, hash): the eviction order, least recently seen first.
    by_last_seen: BTreeSet<(i64, u64)>,
    /// Each subject's recent link messages: (event time, domain hash),
    /// oldest first, kept as long as the rules read.
    links: HashMap<u32, VecDeque<(i64, u64)>, foldhash::fast::RandomState>,
    /// Domain evidence of each action a domain feature fired, by action id.
    action_evidence: BTreeMap<u64, Vec<DomainVerdict>>,
    /// Whom each subject wrote to one-to-one without having them in their
    /// contacts: (recipient, first write, last write), least recently
    /// written first, at most [`MAX_FIRST_WRITES`], for
    /// [`FIRST_WRITE_MEMORY_MS`] after the last write.
    first_writes: HashMap<u32, VecDeque<FirstWrite>, foldhash::fast::RandomState>,
    /// Domains evicted to keep the cap.
    pub evicted: u64,
}

/// What one send changed.
pub struct Noted {
    /// The domain became suspicious with this send: its recent senders
    /// should be looked at again.
    pub became_suspicious: bool,
}

impl DomainReputation {
    /// Records a link message of `domain` (hash `hash`).
    #[allow(clippy::too_many_arguments)]
    pub fn note_send(
        &mut self,
        config: &ReputationConfig,
        retention_ms: i64,
        domain: &str,
        hash: u64,
        ts_ms: i64,
        sender: u32,
        recipient: u32,
        young: bool,
        stranger: bool,
    ) -> Noted {
        if !self.entries.contains_key(&hash) {
            while self.entries.len() >= config.max_domains.max(1) {
                self.evict_least_recent();
            }
            let entry = DomainEntry {
                domain: domain.to_string(),
                first_seen_ms: ts_ms,
                last_seen_ms: ts_ms,
                sends: VecDeque::new(),
                verdict: None,
            };
            self.entries.insert(hash, entry);
            self.by_last_seen.insert((ts_ms, hash));
        }
        let Some(entry) = self.entries.get_mut(&hash) else { return Noted { became_suspicious: false } };
        entry.first_seen_ms = entry.first_seen_ms.min(ts_ms);
        if ts_ms > entry.last_seen_ms {
            self.by_last_seen.remove(&(entry.last_seen_ms, hash));
            entry.last_seen_ms = ts_ms;
            self.by_last_seen.insert((ts_ms, hash));
        }
        super::window::insert_sorted(
            &mut entry.sends,
            DomainSend { ts_ms, sender, recipient, young, stranger },
            retention_ms.max(1),
        );
        while entry.sends.len() > MAX_SENDS_PER_DOMAIN {
            entry.sends.pop_front();
        }
        if entry.verdict.is_some() || !stranger || !young {
            return Noted { became_suspicious: false };
        }
        let verdict = judge(entry, config, ts_ms);
        let became_suspicious = verdict.is_some();
        entry.verdict = verdict;
        Noted { became_suspicious }
    }

    fn evict_least_recent(&mut self) {
        // The index and the table hold the same keys; should a damaged
        // snapshot break that, the table is emptied rather than growing.
        let Some((_, hash)) = self.by_last_seen.pop_first() else {
            self.entries.clear();
            return;
        };
        if self.entries.remove(&hash).is_some() {
            self.evicted += 1;
        }
    }

    /// Records that `from` wrote one-to-one to `to`, who is not in `from`'s
    /// contacts.
    pub fn note_first_write(&mut self, from: u32, to: u32, ts_ms: i64) {
        let writes = self.first_writes.entry(from).or_default();
        let (mut first_s, mut last_s) = (seconds(ts_ms), seconds(ts_ms));
        if let Some(at) = writes.iter().position(|write| write.to == to) {
            if let Some(old) = writes.remove(at) {
                first_s = first_s.min(old.first_s);
                last_s = last_s.max(old.last_s);
            }
        } else if writes.len() >= MAX_FIRST_WRITES {
            // Full: the least recently written goes, unless this is older
            // still. Made room before inserting, so the deque's capacity
            // stays at MAX_FIRST_WRITES.
            if writes.front().is_some_and(|oldest| oldest.last_s > last_s) {
                return;
            }
            writes.pop_front();
        }
        // Least recently written first; event times may arrive out of order.
        let at = writes.iter().rposition(|write| write.last_s <= last_s).map_or(0, |at| at + 1);
        writes.insert(at, FirstWrite { to, first_s, last_s });
    }

    /// Whether `from` wrote to `to` at or before `at_ms` (as remembered by
    /// [`Self::note_first_write`], to the second): a message from `to` to
    /// `from` then is an answer, not cold messaging.
    pub fn wrote_to(&self, from: u32, to: u32, at_ms: i64) -> bool {
        self.first_writes.get(&from).is_some_and(|writes| {
            writes.iter().any(|write| {
                write.to == to
                    && i64::from(write.first_s) * 1000 <= at_ms
                    && at_ms - i64::from(write.last_s) * 1000 <= FIRST_WRITE_MEMORY_MS
            })
        })
    }

    /// Records that `subject` sent a link to the domain with hash `hash`.
    pub fn note_subject_link(&mut self, subject: u32, ts_ms: i64, hash: u64, retention_ms: i64) {
        super::window::insert_sorted(self.links.entry(subject).or_default(), (ts_ms, hash), retention_ms.max(1));
    }

    /// The distinct domain hashes `subject` linked in `(at - window, at]`.
    pub fn domains_of(&self, subject: u32, at_ms: i64, window_ms: i64, out: &mut Vec<u64>) {
        out.clear();
        if let Some(links) = self.links.get(&subject) {
            out.extend(super::window::in_window(links, at_ms, window_ms).map(|(_, hash)| *hash));
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Link messages `subject` sent in `(at - window, at]` to any domain in
    /// `hashes` (sorted).
    pub fn count_links(&self, subject: u32, at_ms: i64, window_ms: i64, hashes: &[u64]) -> usize {
        if hashes.is_empty() {
            return 0;
        }
        self.links.get(&subject).map_or(0, |links| {
            super::window::in_window(links, at_ms, window_ms)
                .filter(|(_, hash)| hashes.binary_search(hash).is_ok())
                .count()
        })
    }

    /// Drops subjects' link histories with nothing newer than `horizon_ms`,
    /// and first writes older than [`FIRST_WRITE_MEMORY_MS`] at `now_ms`.
    pub fn sweep(&mut self, horizon_ms: i64, now_ms: i64) {
        self.links.retain(|_, links| links.back().is_some_and(|(ts, _)| *ts > horizon_ms));
        let write_horizon_ms = now_ms.saturating_sub(FIRST_WRITE_MEMORY_MS);
        self.first_writes.retain(|_, writes| {
            writes.retain(|write| i64::from(write.last_s) * 1000 > write_horizon_ms);
            !writes.is_empty()
        });
    }

    /// Whether the domain with this hash is on the derived list.
    pub fn is_suspicious(&self, hash: u64) -> bool {
        self.entries.get(&hash).is_some_and(|entry| entry.verdict.is_some())
    }

    pub fn verdict(&self, hash: u64) -> Option<&DomainVerdict> {
        self.entries.get(&hash).and_then(|entry| entry.verdict.as_ref())
    }

    /// Event time the domain was first seen, if tracked.
    pub fn first_seen_ms(&self, hash: u64) -> Option<i64> {
        self.entries.get(&hash).map(|entry| entry.first_seen_ms)
    }

    /// Distinct young senders and distinct stranger recipients of the
    /// domain over `(at - window, at]`.
    pub fn velocity(&self, hash: u64, at_ms: i64, window_ms: i64, scratch: &mut Vec<u32>) -> (usize, usize) {
        let Some(entry) = self.entries.get(&hash) else { return (0, 0) };
        let recent = || super::window::in_window(&entry.sends, at_ms, window_ms);
        let young = distinct(recent().filter(|send| send.young).map(|send| send.sender), scratch);
        let strangers = distinct(recent().filter(|send| send.stranger).map(|send| send.recipient), scratch);
        (young, strangers)
    }

    /// Distinct senders of the domain's kept sends (to look at again when
    /// it becomes suspicious).
    pub fn recent_senders(&self, hash: u64) -> Vec<u32> {
        let mut senders: Vec<u32> = self
            .entries
            .get(&hash)
            .map(|entry| entry.sends.iter().map(|send| send.sender).collect())
            .unwrap_or_default();
        senders.sort_unstable();
        senders.dedup();
        senders
    }

    /// Keeps the domain evidence of action `id`.
    pub fn record_action(&mut self, id: u64, verdicts: Vec<DomainVerdict>) {
        if !verdicts.is_empty() {
            self.action_evidence.insert(id, verdicts);
        }
    }

    /// The domain evidence of action `id` (empty for most actions).
    pub fn action_evidence(&self, id: u64) -> &[DomainVerdict] {
        self.action_evidence.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Domains tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Suspicious domains now, newest verdict first.
    pub fn suspicious(&self) -> Vec<&DomainVerdict> {
        let mut verdicts: Vec<&DomainVerdict> =
            self.entries.values().filter_map(|entry| entry.verdict.as_ref()).collect();
        verdicts.sort_by(|a, b| b.since_ms.cmp(&a.since_ms).then_with(|| a.domain.cmp(&b.domain)));
        verdicts
    }

    /// Forgets an erased subject: its sends, and its name in any evidence.
    pub fn remove_subject(&mut self, subject: u32) {
        self.links.remove(&subject);
        self.first_writes.remove(&subject);
        self.first_writes.retain(|_, writes| {
            writes.retain(|write| write.to != subject);
            !writes.is_empty()
        });
        for entry in self.entries.values_mut() {
            entry.sends.retain(|send| send.sender != subject && send.recipient != subject);
            if let Some(verdict) = &mut entry.verdict {
                verdict.young_senders.retain(|sender| *sender != subject);
            }
        }
        for verdicts in self.action_evidence.values_mut() {
            for verdict in verdicts {
                verdict.young_senders.retain(|sender| *sender != subject);
            }
        }
    }

    /// Drops the evidence of an action about an erased subject.
    pub fn forget_action(&mut self, id: u64) {
        self.action_evidence.remove(&id);
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u64, DomainEntry)>() + 1;
        let sends: usize = self
            .entries
            .values()
            .map(|entry| entry.sends.capacity() * std::mem::size_of::<DomainSend>() + entry.domain.capacity())
            .sum();
        let links: usize = self.links.values().map(|links| links.capacity() * 16 + 40).sum();
        let writes: usize =
            self.first_writes.values().map(|writes| writes.capacity() * std::mem::size_of::<FirstWrite>() + 40).sum();
        self.entries.capacity() * entry + sends + self.by_last_seen.len() * 24 + links + writes
    }
}

/// The verdict on a domain after a young sender's send to a stranger, or
/// `None` while it stays below the thresholds.
fn judge(entry: &DomainEntry, config: &ReputationConfig, at_ms: i64) -> Option<DomainVerdict> {
    let recent: Vec<&DomainSend> = super::window::in_window(&entry.sends, at_ms, config.window_ms).collect();
    let mut young_senders: Vec<u32> =
        recent.iter().filter(|send| send.young && send.stranger).map(|send| send.sender).collect();
    young_senders.sort_unstable();
    young_senders.dedup();
    let mut strangers: Vec<u32> = recent.iter().filter(|send| send.stranger).map(|send| send.recipient).collect();
    strangers.sort_unstable();
    strangers.dedup();
    let stranger_sends = recent.iter().filter(|send| send.stranger).count();
    let share = stranger_sends as f64 / recent.len().max(1) as f64;
    if young_senders.len() < config.young_senders as usize
        || strangers.len() < config.stranger_recipients as usize
        || share < config.stranger_share
    {
        return None;
    }
    let young_sender_count = young_senders.len() as u32;
    young_senders.truncate(MAX_EVIDENCE_SENDERS);
    Some(DomainVerdict {
        domain: entry.domain.clone(),
        since_ms: at_ms,
        first_seen_ms: entry.first_seen_ms,
        young_senders,
        young_sender_count,
        stranger_recipients: strangers.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_domains: usize) -> ReputationConfig {
        ReputationConfig { max_domains, ..ReputationConfig::default() }
    }

    /// A first write is remembered for a month after the last write, so an
    /// answer days later (a shop's offer to customers who wrote in) is not
    /// cold messaging; it is never an answer before the first write, each
    /// writer keeps at most MAX_FIRST_WRITES people, and erasure forgets
    /// the subject on both sides.
    #[test]
    fn first_writes_make_later_answers_warm_within_bounds() {
        let day = 86_400_000;
        let mut table = DomainReputation::default();
        // Customer 7 writes to shop 1 on day 1; the shop answers on day 9.
        table.note_first_write(7, 1, day);
        assert!(table.wrote_to(7, 1, 9 * day));
        assert!(!table.wrote_to(7, 1, day - 1), "not an answer before the first write");
        assert!(!table.wrote_to(1, 7, 9 * day), "the relation has a direction");
        // A later write extends the memory; none forgets it after a month.
        table.note_first_write(7, 1, 20 * day);
        assert!(table.wrote_to(7, 1, 49 * day));
        assert!(!table.wrote_to(7, 1, 51 * day));
        table.sweep(0, 51 * day);
        assert!(table.first_writes.is_empty(), "swept after the memory");
        // A spammer writing to many keeps only the newest.
        for to in 0..100u32 {
            table.note_first_write(3, to, i64::from(to) * 1_000);
        }
        assert_eq!(table.first_writes[&3].len(), MAX_FIRST_WRITES);
        assert!(table.first_writes[&3].capacity() <= MAX_FIRST_WRITES, "room is made before inserting");
        assert!(table.wrote_to(3, 99, 200_000));
        assert!(!table.wrote_to(3, 0, 200_000));
        // Out-of-order event times keep the least recently written first.
        table.note_first_write(3, 500, 1);
        assert_eq!(table.first_writes[&3].len(), MAX_FIRST_WRITES);
        assert!(!table.wrote_to(3, 500, 200_000), "older than every kept write: the one evicted");
        // Erasure forgets a subject as writer and as recipient.
        table.note_first_write(8, 99, 5);
        table.remove_subject(99);
        assert!(!table.wrote_to(3, 99, 200_000) && !table.wrote_to(8, 99, 200_000));
        assert!(!table.first_writes.contains_key(&8), "an emptied writer is dropped");
    }

    /// The table never holds more than `max_domains`; the least recently
    /// seen domain is the one evicted, and a domain seen again stays.
    #[test]
    fn cap_holds_and_least_recently_seen_is_evicted() {
        let config = config(3);
        let mut table = DomainReputation::default();
        let day = 86_400_000;
        for (k, name) in ["a.example", "b.example", "c.example"].iter().enumerate() {
            table.note_send(&config, day, name, k as u64, 1_000 * k as i64, 1, 2, false, false);
        }
        // a is seen again: b is now the least recently seen.
        table.note_send(&config, day, "a.example", 0, 5_000, 1, 2, false, false);
        table.note_send(&config, day, "d.example", 3, 6_000, 1, 2, false, false);
        assert_eq!(table.len(), 3);
        assert_eq!(table.evicted, 1);
        assert!(table.first_seen_ms(1).is_none(), "b was least recently seen");
        assert!(
            table.first_seen_ms(0).is_some() && table.first_seen_ms(2).is_some() && table.first_seen_ms(3).is_some()
        );
        for k in 10..1_000u64 {
            table.note_send(&config, day, "x.example", k, 10_000 + k as i64, 1, 2, false, false);
            assert!(table.len() <= 3);
        }
        assert_eq!(table.by_last_seen.len(), table.len(), "index and table agree");
        assert_eq!(table.evicted, 1 + 990);
    }

    /// Young senders spraying strangers make a domain suspicious, with its
    /// evidence; sends to contacts never do, however many.
    #[test]
    fn young_senders_to_strangers_make_a_domain_suspicious() {
        let config = ReputationConfig { young_senders: 3, stranger_recipients: 6, ..ReputationConfig::default() };
        let mut table = DomainReputation::default();
        let day = 86_400_000;
        for k in 0..200u32 {
            let noted =
                table.note_send(&config, day, "viral.example", 7, i64::from(k) * 1_000, k % 20, 100 + k, true, false);
            assert!(!noted.became_suspicious);
        }
        let mut became = None;
        for k in 0..12u32 {
            let noted = table.note_send(
                &config,
                day,
                "fresh.top",
                9,
                i64::from(k) * 60_000,
                500 + k % 4,
                1_000 + k,
                true,
                true,
            );
            if noted.became_suspicious {
                became = Some(k);
            }
        }
        assert_eq!(became, Some(5), "the sixth stranger (by then four young senders)");
        let verdict = table.verdict(9).expect("suspicious");
        assert_eq!(verdict.domain, "fresh.top");
        assert_eq!(verdict.stranger_recipients, 6);
        assert_eq!(verdict.young_senders, vec![500, 501, 502, 503]);
        assert!(!table.is_suspicious(7));
        table.remove_subject(500);
        assert_eq!(table.verdict(9).map(|v| v.young_senders.clone()), Some(vec![501, 502, 503]));
    }
}
