//! Domain reputation: link domains judged by how they are sent, not by a list.
//!
//! Owns: a bounded table of recently seen link domains (first and last seen,
//! their recent sends: sender, recipient, whether the sender was young and
//! the recipient a stranger; a 64-bit sketch of how many distinct
//! established people ever sent the domain to someone who knows them), each
//! recent sender's link domains (as hashes, for the per-sender domain
//! features), the derived verdict that puts a domain on the
//! `suspicious_domains` list with its evidence (which young senders, how
//! many strangers, when) and the time it lapses, and a copy of that evidence
//! for each action it fed.
//! Never: holds more than `max_domains` domains (the least recently seen is
//! evicted), more than [`MAX_SENDS_PER_DOMAIN`] sends per domain, a phone
//! number or message content. Domains are link domains as the edge
//! normalised them (bare domains, never a URL path); people are dense
//! subject indexes, shown as pseudonyms by the outputs.
//!
//! A verdict is placed when, over the window, young accounts spray the
//! domain at strangers (the thresholds of `[suspicious_domains]`) **and**
//! those young senders outnumber the established people who have ever sent
//! the domain to people who know them (contacts, people who wrote first,
//! groups). It is kept only while the evidence holds: every later send of
//! the domain re-judges it and lifts it when the window's kept sends no
//! longer have the young senders and strangers the thresholds ask, and it
//! lapses one window after the last young-to-stranger send that still met
//! them.
//!
//! The attack this resists: a few young throwaway accounts spraying a
//! popular, legitimate domain (a news site, a shop) at strangers in a short
//! burst, to put it on the list and have the rule reading it flag every
//! ordinary person who shares it. Before, the burst filled the 64 kept
//! sends and the verdict stuck for as long as the domain stayed in the
//! table. Now the domain's history outweighs the burst (its ordinary
//! senders are counted beyond the 64 kept sends), and a verdict that did
//! get placed (a domain with little history) is lifted once ordinary sends
//! push the burst out of the kept sends, or lapses a window after the
//! burst. A real ring's own fresh domain has no ordinary senders, so its
//! young senders are the majority from the first sends and a ring that
//! keeps sending keeps the verdict renewed. What it costs: a ring cannot
//! get a domain with a long ordinary history listed (a URL shortener, a
//! file host), and the per-sender rules must catch its members instead;
//! and a ring that also controls as many established accounts as it uses
//! young ones can keep its own domain off the list by having them send it
//! to their contacts.

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

/// One writer's first writes, least recently written first. A boxed slice
/// holds them exactly, in 16 bytes of map entry, where a `VecDeque` took 32
/// and room for four: on the partner workload 47,000 writers hold 98,000
/// writes, about two each (bench/README.md, "Memory of a served node,
/// continued").
type Writes = Box<[FirstWrite]>;

/// Keeps the writes `keep` holds to, reallocating only when one goes.
fn retain_writes(writes: &mut Writes, keep: impl Fn(&FirstWrite) -> bool) {
    if !writes.iter().all(&keep) {
        crate::processors::edit_exact(writes, |kept| kept.retain(keep));
    }
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

/// A verdict in force: its evidence and when it lapses. Boxed in the entry,
/// so the many domains without one pay a pointer, not the evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LiveVerdict {
    verdict: DomainVerdict,
    /// Event time the verdict lapses unless fresh evidence renews it: one
    /// window after the last young-to-stranger send that met the thresholds.
    until_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DomainEntry {
    domain: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    sends: VecDeque<DomainSend>,
    /// Which established (not young) people ever sent the domain to someone
    /// who knows them, as a 64-bit linear-counting sketch (one bit per
    /// sender, chosen by a hash of the subject index; see
    /// [`distinct_estimate`]): the domain's history beyond the kept sends,
    /// in 8 bytes. A sender sending again sets the same bit, so repeats
    /// never inflate it. It names nobody (a bit stands for any of a 64th of
    /// all people), so erasure has nothing to take out of it.
    ordinary_senders: u64,
    verdict: Option<Box<LiveVerdict>>,
}

/// The bit of `sender` in a domain's ordinary-sender sketch: the top 6
/// bits of the splitmix64 finaliser of the subject index, so that indexes
/// close together (people who joined together) land on independent bits,
/// as linear counting assumes.
fn sender_bit(sender: u32) -> u64 {
    let mut mixed = u64::from(sender);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^= mixed >> 31;
    1u64 << (mixed >> 58)
}

/// Distinct senders a sketch has seen, estimated by linear counting
/// (`64 ln(64 / empty bits)`): unbiased, close to exact for a handful (2.03
/// for two bits, 3.07 for three), with a standard error of about 10% from
/// ten to a hundred, infinite once every bit is set (around 300 senders).
/// It passes 64, more young senders than the kept sends can hold, at about
/// 64 senders: such a domain can never be listed.
fn distinct_estimate(sketch: u64) -> f64 {
    let empty = f64::from(sketch.count_zeros());
    if empty == 0.0 {
        f64::INFINITY
    } else {
        64.0 * (64.0 / empty).ln()
    }
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
    first_writes: HashMap<u32, Writes, foldhash::fast::RandomState>,
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
    /// Records a link message of `domain` (hash `hash`), and judges the
    /// domain again: a verdict in force is lifted when the kept sends no
    /// longer hold its evidence, renewed by a young sender's send to a
    /// stranger that still meets the thresholds, and a domain without one
    /// is judged on each young sender's send to a stranger.
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
                ordinary_senders: 0,
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
        if !young && !stranger {
            entry.ordinary_senders |= sender_bit(sender);
        }
        let spray = young && stranger;
        // Judged as of the domain's newest send: a late event does not
        // judge the present by its past window.
        let now_ms = entry.last_seen_ms;
        if let Some(live) = &entry.verdict {
            if now_ms >= live.until_ms || !Evidence::of(entry, config, now_ms).holds(config) {
                entry.verdict = None;
            }
        }
        if let Some(live) = &mut entry.verdict {
            if spray {
                live.until_ms = live.until_ms.max(ts_ms.saturating_add(config.window_ms));
            }
            return Noted { became_suspicious: false };
        }
        if !spray {
            return Noted { became_suspicious: false };
        }
        let verdict = judge(entry, config, ts_ms);
        let became_suspicious = verdict.is_some();
        entry.verdict =
            verdict.map(|verdict| Box::new(LiveVerdict { verdict, until_ms: ts_ms.saturating_add(config.window_ms) }));
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
        let slot = self.first_writes.entry(from).or_default();
        crate::processors::edit_exact(slot, |writes| {
            let (mut first_s, mut last_s) = (seconds(ts_ms), seconds(ts_ms));
            if let Some(at) = writes.iter().position(|write| write.to == to) {
                let old = writes.remove(at);
                first_s = first_s.min(old.first_s);
                last_s = last_s.max(old.last_s);
            } else if writes.len() >= MAX_FIRST_WRITES {
                // Full: the least recently written goes, unless this is
                // older still.
                if writes.first().is_some_and(|oldest| oldest.last_s > last_s) {
                    return;
                }
                writes.remove(0);
            }
            // Least recently written first; event times may arrive out of
            // order.
            let at = writes.iter().rposition(|write| write.last_s <= last_s).map_or(0, |at| at + 1);
            writes.insert(at, FirstWrite { to, first_s, last_s });
        });
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
    /// first writes older than [`FIRST_WRITE_MEMORY_MS`] at `now_ms`, and
    /// verdicts lapsed by `now_ms`.
    pub fn sweep(&mut self, horizon_ms: i64, now_ms: i64) {
        for entry in self.entries.values_mut() {
            if entry.verdict.as_ref().is_some_and(|live| live.until_ms <= now_ms) {
                entry.verdict = None;
            }
        }
        self.links.retain(|_, links| links.back().is_some_and(|(ts, _)| *ts > horizon_ms));
        let write_horizon_ms = now_ms.saturating_sub(FIRST_WRITE_MEMORY_MS);
        self.first_writes.retain(|_, writes| {
            retain_writes(writes, |write| i64::from(write.last_s) * 1000 > write_horizon_ms);
            !writes.is_empty()
        });
    }

    /// Whether the domain with this hash is on the derived list at event
    /// time `at_ms` (a verdict lapsed by then is not).
    pub fn is_suspicious(&self, hash: u64, at_ms: i64) -> bool {
        self.verdict(hash, at_ms).is_some()
    }

    /// The verdict in force on the domain at event time `at_ms`, if any.
    pub fn verdict(&self, hash: u64, at_ms: i64) -> Option<&DomainVerdict> {
        self.entries
            .get(&hash)
            .and_then(|entry| entry.verdict.as_deref())
            .filter(|live| at_ms < live.until_ms)
            .map(|live| &live.verdict)
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

    /// Suspicious domains at event time `at_ms`, newest verdict first.
    pub fn suspicious(&self, at_ms: i64) -> Vec<&DomainVerdict> {
        let mut verdicts: Vec<&DomainVerdict> = self
            .entries
            .values()
            .filter_map(|entry| entry.verdict.as_deref())
            .filter(|live| at_ms < live.until_ms)
            .map(|live| &live.verdict)
            .collect();
        verdicts.sort_by(|a, b| b.since_ms.cmp(&a.since_ms).then_with(|| a.domain.cmp(&b.domain)));
        verdicts
    }

    /// Forgets an erased subject: its sends, and its name in any evidence.
    pub fn remove_subject(&mut self, subject: u32) {
        self.links.remove(&subject);
        self.first_writes.remove(&subject);
        self.first_writes.retain(|_, writes| {
            retain_writes(writes, |write| write.to != subject);
            !writes.is_empty()
        });
        for entry in self.entries.values_mut() {
            entry.sends.retain(|send| send.sender != subject && send.recipient != subject);
            if let Some(live) = &mut entry.verdict {
                live.verdict.young_senders.retain(|sender| *sender != subject);
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
            .map(|entry| {
                let verdict = entry.verdict.as_ref().map_or(0, |live| {
                    std::mem::size_of::<LiveVerdict>()
                        + live.verdict.domain.capacity()
                        + live.verdict.young_senders.capacity() * 4
                });
                entry.sends.capacity() * std::mem::size_of::<DomainSend>() + entry.domain.capacity() + verdict
            })
            .sum();
        let links: usize = self.links.values().map(|links| links.capacity() * 16 + 40).sum();
        let writes: usize =
            self.first_writes.values().map(|writes| writes.len() * std::mem::size_of::<FirstWrite>() + 24).sum();
        self.entries.capacity() * entry + sends + self.by_last_seen.len() * 24 + links + writes
    }
}

/// The domain table as snapshot version 5 held it (no ordinary-sender
/// sketch, verdicts that never lapsed), read by [`DomainReputation::from_v5`].
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct DomainReputationV5 {
    entries: HashMap<u64, DomainEntryV5, foldhash::fast::RandomState>,
    by_last_seen: BTreeSet<(i64, u64)>,
    links: HashMap<u32, VecDeque<(i64, u64)>, foldhash::fast::RandomState>,
    action_evidence: BTreeMap<u64, Vec<DomainVerdict>>,
    first_writes: HashMap<u32, Writes, foldhash::fast::RandomState>,
    evicted: u64,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct DomainEntryV5 {
    domain: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    sends: VecDeque<DomainSend>,
    verdict: Option<DomainVerdict>,
}

impl DomainReputation {
    /// The table of a version-5 snapshot under the rules in force. Each
    /// domain's sketch starts from the established senders to non-strangers
    /// among its kept sends (the older history was not kept). A verdict is
    /// kept only if its kept sends still hold the evidence at the domain's
    /// newest send, and lapses one window after the newest young sender's
    /// send to a stranger (or after it was placed, with none kept).
    pub fn from_v5(old: DomainReputationV5, config: &ReputationConfig) -> DomainReputation {
        let entries = old
            .entries
            .into_iter()
            .map(|(hash, old_entry)| {
                let ordinary_senders = old_entry
                    .sends
                    .iter()
                    .filter(|send| !send.young && !send.stranger)
                    .fold(0, |sketch, send| sketch | sender_bit(send.sender));
                let mut entry = DomainEntry {
                    domain: old_entry.domain,
                    first_seen_ms: old_entry.first_seen_ms,
                    last_seen_ms: old_entry.last_seen_ms,
                    sends: old_entry.sends,
                    ordinary_senders,
                    verdict: None,
                };
                if let Some(verdict) = old_entry.verdict {
                    let newest_spray = entry.sends.iter().filter(|send| send.young && send.stranger).map(|s| s.ts_ms);
                    let until_ms = newest_spray.max().unwrap_or(verdict.since_ms).saturating_add(config.window_ms);
                    if entry.last_seen_ms < until_ms && Evidence::of(&entry, config, entry.last_seen_ms).holds(config) {
                        entry.verdict = Some(Box::new(LiveVerdict { verdict, until_ms }));
                    }
                }
                (hash, entry)
            })
            .collect();
        DomainReputation {
            entries,
            by_last_seen: old.by_last_seen,
            links: old.links,
            action_evidence: old.action_evidence,
            first_writes: old.first_writes,
            evicted: old.evicted,
        }
    }

    /// This table in the version-5 layout (for the tests that write an old
    /// snapshot): the sketches and lapse times are dropped.
    #[cfg(test)]
    pub(crate) fn to_v5(&self) -> DomainReputationV5 {
        let entries = self
            .entries
            .iter()
            .map(|(hash, entry)| {
                let old_entry = DomainEntryV5 {
                    domain: entry.domain.clone(),
                    first_seen_ms: entry.first_seen_ms,
                    last_seen_ms: entry.last_seen_ms,
                    sends: entry.sends.clone(),
                    verdict: entry.verdict.as_ref().map(|live| live.verdict.clone()),
                };
                (*hash, old_entry)
            })
            .collect();
        DomainReputationV5 {
            entries,
            by_last_seen: self.by_last_seen.clone(),
            links: self.links.clone(),
            action_evidence: self.action_evidence.clone(),
            first_writes: self.first_writes.clone(),
            evicted: self.evicted,
        }
    }
}

/// What a domain's kept sends in `(at - window, at]` show.
struct Evidence {
    /// Distinct young accounts that sent it to strangers, sorted.
    young_senders: Vec<u32>,
    /// Distinct strangers it was sent to, by anyone.
    strangers: usize,
    /// Share of the window's sends that went to strangers.
    stranger_share: f64,
}

impl Evidence {
    fn of(entry: &DomainEntry, config: &ReputationConfig, at_ms: i64) -> Evidence {
        let recent = || super::window::in_window(&entry.sends, at_ms, config.window_ms);
        let mut young_senders: Vec<u32> =
            recent().filter(|send| send.young && send.stranger).map(|send| send.sender).collect();
        young_senders.sort_unstable();
        young_senders.dedup();
        let mut strangers: Vec<u32> = recent().filter(|send| send.stranger).map(|send| send.recipient).collect();
        strangers.sort_unstable();
        strangers.dedup();
        let stranger_sends = recent().filter(|send| send.stranger).count();
        let stranger_share = stranger_sends as f64 / recent().count().max(1) as f64;
        Evidence { young_senders, strangers: strangers.len(), stranger_share }
    }

    /// Whether the spray is still there: enough young senders to enough
    /// strangers. (What keeps a verdict. The share is left out, so a ring
    /// cannot lift its verdict with a few link messages among its members;
    /// ordinary sends lift it by pushing the spray out of the kept sends.)
    fn holds(&self, config: &ReputationConfig) -> bool {
        self.young_senders.len() >= config.young_senders as usize
            && self.strangers >= config.stranger_recipients as usize
    }
}

/// The verdict on a domain after a young sender's send to a stranger, or
/// `None` while it stays below the thresholds. Besides the thresholds, the
/// young senders must outnumber the established people who ever sent the
/// domain to someone who knows them: a burst cannot outvote a domain's
/// history.
fn judge(entry: &DomainEntry, config: &ReputationConfig, at_ms: i64) -> Option<DomainVerdict> {
    let evidence = Evidence::of(entry, config, at_ms);
    if !evidence.holds(config)
        || evidence.stranger_share < config.stranger_share
        || evidence.young_senders.len() as f64 <= distinct_estimate(entry.ordinary_senders)
    {
        return None;
    }
    let mut young_senders = evidence.young_senders;
    let young_sender_count = young_senders.len() as u32;
    young_senders.truncate(MAX_EVIDENCE_SENDERS);
    Some(DomainVerdict {
        domain: entry.domain.clone(),
        since_ms: at_ms,
        first_seen_ms: entry.first_seen_ms,
        young_senders,
        young_sender_count,
        stranger_recipients: evidence.strangers as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_domains: usize) -> ReputationConfig {
        ReputationConfig { max_domains, ..ReputationConfig::default() }
    }

    const DAY: i64 = 86_400_000;
    const MINUTE: i64 = 60_000;

    /// `senders` young accounts take turns sending `domain` (hash `hash`)
    /// to `sends` distinct strangers, one a minute from `start_ms`; whether
    /// the domain became suspicious with any of those sends.
    fn spray(
        table: &mut DomainReputation,
        domain: &str,
        hash: u64,
        senders: &[u32],
        sends: u32,
        start_ms: i64,
    ) -> bool {
        let config = ReputationConfig::default();
        let mut became = false;
        for k in 0..sends {
            let sender = senders[k as usize % senders.len()];
            let at = start_ms + i64::from(k) * MINUTE;
            let stranger = 10_000 + hash as u32 * 1_000 + k;
            became |= table.note_send(&config, DAY, domain, hash, at, sender, stranger, true, true).became_suspicious;
        }
        became
    }

    /// Issue 15 poisoning: a popular domain that 40 established people
    /// shared with their contacts over ten days, then four young accounts
    /// spraying it at 20 strangers within 20 minutes. The burst alone
    /// fills the kept sends and meets every threshold (it would have put
    /// the domain on the list for good), but the domain's history
    /// outweighs it: it is never suspicious, so nobody sharing it is
    /// flagged. The same burst on a fresh domain, or on one with only two
    /// earlier ordinary senders, does list it.
    #[test]
    fn a_burst_of_young_accounts_cannot_list_a_popular_domain() {
        let config = ReputationConfig::default();
        let mut table = DomainReputation::default();
        for day in 0..10i64 {
            for person in 0..40u32 {
                let at = day * DAY + i64::from(person) * 10 * MINUTE;
                table.note_send(&config, DAY, "news.example", 1, at, person, 1_000 + person, false, false);
            }
        }
        let burst_start = 11 * DAY;
        let ring = [900, 901, 902, 903];
        assert!(!spray(&mut table, "news.example", 1, &ring, 20, burst_start));
        let at = burst_start + 20 * MINUTE;
        assert!(!table.is_suspicious(1, at));
        assert!(table.suspicious(at).is_empty());
        // The burst is all the window holds: only the history stopped it.
        let evidence = Evidence::of(&table.entries[&1], &config, at);
        assert!(evidence.holds(&config) && evidence.stranger_share >= config.stranger_share);
        assert!(table.entries[&1].sends.iter().all(|send| send.young && send.stranger));
        assert!(distinct_estimate(table.entries[&1].ordinary_senders) > 30.0);

        // Control: the same burst lists a fresh domain ...
        assert!(spray(&mut table, "fresh.top", 2, &ring, 20, burst_start));
        assert!(table.is_suspicious(2, at));
        // ... and one that two established people sent before it: the four
        // young senders are still the majority.
        for person in [7, 8] {
            table.note_send(&config, DAY, "small.example", 3, burst_start - DAY, person, 50, false, false);
        }
        assert!(spray(&mut table, "small.example", 3, &ring, 20, burst_start));
    }

    /// The ordinary-sender sketch counts distinct senders: a repeat sets
    /// the same bit, the estimate is unbiased on consecutive subject
    /// indexes (averaged over 200 groups, within 5% for 3, 10 and 40
    /// senders), and it saturates to infinity.
    #[test]
    fn ordinary_sender_sketch_counts_distinct_senders() {
        assert_eq!(distinct_estimate(0), 0.0);
        let sketch = |senders: std::ops::Range<u32>| senders.fold(0u64, |sketch, s| sketch | sender_bit(s));
        assert_eq!(sketch(0..5), sketch(0..5) | sender_bit(3), "a repeat changes nothing");
        for n in [3u32, 10, 40] {
            let groups = 200u32;
            let mean = (0..groups).map(|g| distinct_estimate(sketch(g * n..(g + 1) * n))).sum::<f64>() / 200.0;
            assert!((mean - f64::from(n)).abs() <= 0.05 * f64::from(n), "{n} senders: mean estimate {mean}");
        }
        assert_eq!(distinct_estimate(u64::MAX), f64::INFINITY);
    }

    /// A verdict placed by a real burst is not forever: it lapses one
    /// window after the last young sender's send to a stranger (a ring that
    /// keeps sending keeps renewing it), and it is lifted at once when
    /// ordinary sends push the spray out of the kept sends. A few link
    /// messages among young accounts do not lift it.
    #[test]
    fn a_verdict_lapses_without_fresh_evidence_and_lifts_when_ordinary_sends_resume() {
        let config = ReputationConfig::default();
        let ring = [900, 901, 902];
        let mut table = DomainReputation::default();
        assert!(spray(&mut table, "ring.top", 1, &ring, 12, 0));
        let last_spray = 11 * MINUTE;
        assert!(table.is_suspicious(1, last_spray + DAY - 1));
        assert!(!table.is_suspicious(1, last_spray + DAY), "lapsed a window after the last spray");
        table.sweep(0, last_spray + DAY);
        assert!(table.entries[&1].verdict.is_none(), "swept once lapsed");

        // A slow ring that keeps sending keeps it listed past that window.
        assert!(spray(&mut table, "slow.top", 2, &ring, 12, 0));
        for hour in 1..40i64 {
            let sender = ring[hour as usize % ring.len()];
            let at = hour * 3_600_000;
            table.note_send(&config, DAY, "slow.top", 2, at, sender, 50_000 + hour as u32, true, true);
        }
        assert!(table.is_suspicious(2, 40 * 3_600_000), "renewed by the ring's sends");

        // Padding: ten link messages among the ring's members (contacts)
        // take the stranger share under a half but leave the spray.
        assert!(spray(&mut table, "pad.top", 3, &ring, 12, 0));
        for k in 0..10u32 {
            table.note_send(&config, DAY, "pad.top", 3, 20 * MINUTE, ring[k as usize % 3], ring[0], true, false);
        }
        assert!(table.is_suspicious(3, 20 * MINUTE), "a few sends among the ring do not lift it");

        // Ordinary sends resume: established people send it to contacts
        // the same day. Once the kept sends no longer hold three young
        // senders, the verdict is lifted, hours before it would lapse.
        assert!(spray(&mut table, "shop.example", 4, &ring, 12, 0));
        let mut lifted_after = None;
        for k in 0..64u32 {
            let at = 30 * MINUTE + i64::from(k) * MINUTE;
            table.note_send(&config, DAY, "shop.example", 4, at, 100 + k, 2_000 + k, false, false);
            if lifted_after.is_none() && !table.is_suspicious(4, at) {
                lifted_after = Some(k + 1);
            }
        }
        // Lifted once the kept sends reach fewer than 10 strangers: with 64
        // kept, that is after the 55th ordinary send (9 spray sends left),
        // the first moment the evidence no longer holds.
        assert_eq!(lifted_after, Some(MAX_SENDS_PER_DOMAIN as u32 - 9));
    }

    /// A writer's first writes are stored as the deque they were before
    /// (a sequence of entries), so snapshots read and write the same bytes.
    #[test]
    fn boxed_writes_have_the_bytes_of_the_old_deque() {
        let writes = [FirstWrite { to: 5, first_s: 10, last_s: 20 }, FirstWrite { to: 70_000, first_s: 3, last_s: 40 }];
        let deque: VecDeque<FirstWrite> = writes.iter().copied().collect();
        let boxed: Writes = writes.iter().copied().collect();
        let deque_bytes = postcard::to_allocvec(&deque).expect("encodes");
        assert_eq!(deque_bytes, postcard::to_allocvec(&boxed).expect("encodes"));
        let read: Writes = postcard::from_bytes(&deque_bytes).expect("decodes");
        assert_eq!(
            read.iter().map(|write| (write.to, write.first_s, write.last_s)).collect::<Vec<_>>(),
            vec![(5, 10, 20), (70_000, 3, 40)]
        );
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
        let verdict = table.verdict(9, 12 * 60_000).expect("suspicious");
        assert_eq!(verdict.domain, "fresh.top");
        assert_eq!(verdict.stranger_recipients, 6);
        assert_eq!(verdict.young_senders, vec![500, 501, 502, 503]);
        assert!(!table.is_suspicious(7, 12 * 60_000));
        table.remove_subject(500);
        assert_eq!(table.verdict(9, 12 * 60_000).map(|v| v.young_senders.clone()), Some(vec![501, 502, 503]));
    }
}
