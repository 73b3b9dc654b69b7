//! Derived state: the subject registry, usage metrics and consent registry,
//! built by applying log records in order; saved as snapshots.
//!
//! Owns: dense subject indexes (assigned in log order, so replay is
//! deterministic), applying one event to every processor, snapshots.
//! Never: the source of truth. Everything here can be rebuilt from the log
//! (`proviso rebuild`), and a missing or damaged snapshot only costs time.

#[cfg(test)]
mod abuse_tests;
pub mod backtest;
mod cover;
mod idempotency;
mod snapshot;
mod subject_index;

pub use cover::Cover;
pub use idempotency::RecentKeys;

pub use snapshot::{
    decode_snapshot, encode_snapshot, load_snapshot, save_snapshot, save_snapshot_as, SnapshotError,
    COMPACTED_SNAPSHOT_FILE, SNAPSHOT_FILE,
};

use crate::consent::{ConsentChange, ConsentRegistry};
use crate::contract::{
    Control, ControlBody, Event, EventBody, LinkOrigin, LinkState, Pseudonym, Purpose, Recipient, Record, Region,
};
use crate::processors::abuse::{self, Abuse, Signal};
use crate::processors::audiences::Audiences;
use crate::processors::graph::Graph;
use crate::processors::links::Links;
use crate::processors::usage::Usage;

/// What proviso holds about one acting subject, besides processor state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubjectRecord {
    pub pseudonym: Pseudonym,
    pub region: Region,
    /// Earliest event time seen for the subject: the start of any opt-out
    /// notice period. `i64::MAX` for a subject only ever named by others
    /// (in an address book, as a recipient or a report target).
    pub first_seen_ms: i64,
}

/// The first-seen time of a subject that has not acted yet.
const NOT_ACTED: i64 = i64::MAX;

impl SubjectRecord {
    /// Whether the subject has sent an event of its own.
    pub fn has_acted(&self) -> bool {
        self.first_seen_ms != NOT_ACTED
    }
}

/// What an event's intern and first-seen update both read: one 24-byte
/// entry, so one cache line (two at most) a subject, as the padded record
/// took.
#[derive(Clone, Copy)]
struct Hot {
    pseudonym: Pseudonym,
    first_seen_ms: i64,
}

impl Hot {
    fn has_acted(&self) -> bool {
        self.first_seen_ms != NOT_ACTED
    }
}

/// Every subject's record: 26 bytes a subject instead of a padded
/// `SubjectRecord`'s 32. The region, read only when a subject first acts
/// and by queries, lies apart.
#[derive(Default)]
struct Records {
    hot: Vec<Hot>,
    regions: Vec<Region>,
}

impl Records {
    fn len(&self) -> usize {
        self.hot.len()
    }

    fn pseudonym(&self, subject: u32) -> &Pseudonym {
        &self.hot[subject as usize].pseudonym
    }

    fn get(&self, subject: u32) -> Option<SubjectRecord> {
        let hot = self.hot.get(subject as usize)?;
        Some(SubjectRecord {
            pseudonym: hot.pseudonym,
            region: self.regions[subject as usize],
            first_seen_ms: hot.first_seen_ms,
        })
    }

    fn push(&mut self, record: SubjectRecord) {
        self.hot.push(Hot { pseudonym: record.pseudonym, first_seen_ms: record.first_seen_ms });
        self.regions.push(record.region);
    }

    fn set(&mut self, subject: u32, record: SubjectRecord) {
        self.hot[subject as usize] = Hot { pseudonym: record.pseudonym, first_seen_ms: record.first_seen_ms };
        self.regions[subject as usize] = record.region;
    }

    fn reserve(&mut self, more: usize) {
        self.hot.reserve(more);
        self.regions.reserve(more);
    }

    fn iter(&self) -> impl Iterator<Item = SubjectRecord> + '_ {
        (0..self.len() as u32).filter_map(|subject| self.get(subject))
    }

    fn heap_bytes(&self) -> usize {
        self.hot.capacity() * std::mem::size_of::<Hot>() + self.regions.capacity() * std::mem::size_of::<Region>()
    }
}

/// Subjects by pseudonym, with dense `u32` indexes for bitmaps.
#[derive(Default)]
pub struct Subjects {
    /// foldhash: pseudonyms are keyed-hash output already, SipHash's DoS
    /// resistance buys nothing here and costs a tenth of ingest time.
    /// Dense indexes only: the pseudonym is read from `records`, so it is
    /// stored once (5 bytes a slot here instead of 21).
    index: subject_index::SubjectIndex,
    hasher: foldhash::fast::FixedState,
    records: Records,
    /// Subjects that have acted (the rest are only named by others).
    acting: usize,
}

impl Subjects {
    pub fn lookup(&self, pseudonym: &Pseudonym) -> Option<u32> {
        self.find(pseudonym, self.hash(pseudonym))
    }

    fn find(&self, pseudonym: &Pseudonym, hash: u64) -> Option<u32> {
        let records = &self.records;
        self.index.find(hash, |subject| records.pseudonym(subject) == pseudonym)
    }

    /// The index of a person who has used the service (sent an event of
    /// their own). Someone only named in others' address books, messages or
    /// reports, or claimed by a partner, is not answered for: the answer
    /// would tell the asker whether anyone saved that number.
    pub fn lookup_person(&self, pseudonym: &Pseudonym) -> Option<u32> {
        self.lookup(pseudonym).filter(|&subject| self.records.hot[subject as usize].has_acted())
    }

    /// Every subject record, in index order (people named only by others included).
    pub fn all(&self) -> impl Iterator<Item = SubjectRecord> + '_ {
        self.records.iter()
    }

    pub fn get(&self, subject: u32) -> Option<SubjectRecord> {
        self.records.get(subject)
    }

    fn hash(&self, pseudonym: &Pseudonym) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, pseudonym)
    }

    /// Room for `more` subjects without growing the index.
    fn reserve(&mut self, more: usize) {
        self.records.reserve(more);
        self.index.reserve(more, hash_of(&self.hasher, &self.records));
    }

    /// Adds `subject`, whose record is `pseudonym` and already in `records`.
    fn insert_index(&mut self, pseudonym: Pseudonym, subject: u32) {
        let hash = self.hash(&pseudonym);
        self.insert_hashed(hash, subject);
    }

    /// Adds `subject`, whose record (already in `records`) hashes to `hash`.
    fn insert_hashed(&mut self, hash: u64, subject: u32) {
        self.index.insert(hash, subject, hash_of(&self.hasher, &self.records));
    }

    /// Erases a subject from the registry: its pseudonym leaves the index
    /// and the record (zeroed); the dense index stays reserved until the
    /// next compaction rebuilds state.
    fn erase(&mut self, subject: u32) {
        let Some(record) = self.records.get(subject) else { return };
        let hash = self.hash(&record.pseudonym);
        self.index.remove(hash, subject, hash_of(&self.hasher, &self.records));
        if record.has_acted() {
            self.acting -= 1;
        }
        self.records.set(
            subject,
            SubjectRecord {
                pseudonym: Pseudonym::from_stored([0; 16]),
                region: Region::UNKNOWN,
                first_seen_ms: NOT_ACTED,
            },
        );
    }

    /// Every known index, including subjects only named by others.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Subjects that have sent at least one event of their own.
    pub fn acting(&self) -> usize {
        self.acting
    }

    /// The index of a pseudonym named by someone else's event, creating a
    /// record that has not acted yet when it is new.
    pub fn intern(&mut self, pseudonym: Pseudonym) -> u32 {
        let hash = self.hash(&pseudonym);
        self.intern_hashed(pseudonym, hash)
    }

    fn intern_hashed(&mut self, pseudonym: Pseudonym, hash: u64) -> u32 {
        if let Some(subject) = self.find(&pseudonym, hash) {
            return subject;
        }
        let subject = self.records.len() as u32;
        self.records.push(SubjectRecord { pseudonym, region: Region::UNKNOWN, first_seen_ms: NOT_ACTED });
        self.insert_hashed(hash, subject);
        subject
    }

    /// [`Subjects::intern`] of each of `pseudonyms` (an address book), in
    /// order, with the same answers. Faster: the lookups are pipelined. The
    /// index's tag and slot for a contact are asked for `AHEAD` contacts
    /// before its record is, and the record `AHEAD` before the lookup, so
    /// the cache misses of many contacts overlap instead of coming one after
    /// the other (each is a few hundred cycles once the registry outgrows the
    /// last-level cache).
    pub fn intern_all(&mut self, pseudonyms: &[Pseudonym]) -> Vec<u32> {
        /// How far each stage runs ahead of the next: about a memory
        /// latency's worth of lookups.
        const AHEAD: usize = 16;
        let hashes: Vec<u64> = pseudonyms.iter().map(|pseudonym| self.hash(pseudonym)).collect();
        let mut subjects = Vec::with_capacity(pseudonyms.len());
        for step in 0..pseudonyms.len() + 2 * AHEAD {
            if let Some(&hash) = hashes.get(step) {
                self.index.prefetch(hash);
            }
            if let Some(&hash) = step.checked_sub(AHEAD).and_then(|at| hashes.get(at)) {
                if let Some(hot) = self.index.candidate(hash).and_then(|subject| self.records.hot.get(subject as usize))
                {
                    crate::prefetch::prefetch(hot);
                }
            }
            if let Some(at) = step.checked_sub(2 * AHEAD).filter(|&at| at < pseudonyms.len()) {
                subjects.push(self.intern_hashed(pseudonyms[at], hashes[at]));
            }
        }
        subjects
    }

    pub fn is_empty(&self) -> bool {
        self.records.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = SubjectRecord> + '_ {
        self.records.iter()
    }

    fn heap_bytes(&self) -> usize {
        self.index.heap_bytes() + self.records.heap_bytes()
    }
}

/// The hash of a subject already in `records`, for the index to place it
/// again (growing, or closing the gap a removal left).
fn hash_of<'a>(hasher: &'a foldhash::fast::FixedState, records: &'a Records) -> impl Fn(u32) -> u64 + 'a {
    move |known| std::hash::BuildHasher::hash_one(hasher, records.pseudonym(known))
}

/// Why a person's earlier disclosures must be withdrawn: emitted by state,
/// consumed by the outputs that disclosed (the partner feeds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub subject: Pseudonym,
    /// Purposes affected.
    pub purposes: Vec<Purpose>,
    /// Only this partner's disclosures (an unlinking); `None`: every partner.
    pub partner: Option<String>,
    pub reason: &'static str,
}

/// Bookkeeping that is neither a processor nor the registry.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Housekeeping {
    /// Account deletions applied since the log was last compacted: while
    /// above zero, the log still holds erased subjects' events.
    pub erasures_pending: u64,
}

/// Everything derived from the log.
#[derive(Default)]
pub struct State {
    pub subjects: Subjects,
    pub usage: Usage,
    pub consent: ConsentRegistry,
    pub graph: Graph,
    pub links: Links,
    pub abuse: Abuse,
    pub audiences: Audiences,
    /// Withdrawals of earlier disclosures caused by records applied since
    /// the last drain (refusals, bans, unlinkings, account deletions). Not
    /// snapshotted: the writer hands them to the outputs before acknowledging.
    pub revocations: Vec<Withdrawal>,
    /// People erased since the last drain: the writer destroys their secrets
    /// (`vault/`) before acknowledging. Not snapshotted.
    erased: Vec<Pseudonym>,
    /// Cluster mode: secrets minted since the last drain
    /// ([`ControlBody::SecretMinted`]), the first nonce per person, for the
    /// writer to put in the vault before acknowledging. Not snapshotted.
    minted: Vec<(Pseudonym, [u8; 32])>,
    pub housekeeping: Housekeeping,
    /// Idempotency keys of recent keyed batches and their first answers.
    pub recent_keys: RecentKeys,
    /// Sequence number of the next log record to apply.
    pub next_seq: u64,
    /// Events applied in total (for the subjects/events gauges).
    pub events_applied: u64,
    /// Cluster mode: the position of the last message of the cluster's log
    /// applied ([`ControlBody::StreamPosition`]); the default in embedded mode.
    pub stream_position: crate::contract::LogPosition,
    /// Whose usage is held: everyone's, or in cluster mode the people of
    /// the partitions this node covers (the others' usage is held by the
    /// nodes covering theirs, and queries gather it).
    pub cover: Cover,
    /// A scratch state replayed for a new cover ([`State::for_cover`]):
    /// only the registry, usage and audience membership are applied.
    usage_only: bool,
}

impl State {
    /// Empty state that will hold the usage of the people `cover` covers.
    pub fn covering(cover: Cover) -> State {
        State { cover, ..State::default() }
    }

    /// Empty scratch state for a cluster node's new cover: replayed, it
    /// holds the registry, and the usage and audience memberships of the
    /// people `cover` covers, exactly as a whole state replayed with that
    /// cover would (the same people at the same indexes: it interns every
    /// person a record names, in the same order), and nothing else. Consent,
    /// books, links, abuse, budgets and keys are left empty: the node's live
    /// state holds them, and only the parts a cover changes are swapped in.
    /// About what a replay of the whole state takes in memory, less the
    /// books, abuse windows and links, and less of its time.
    pub fn for_cover(cover: Cover) -> State {
        State { cover, usage_only: true, ..State::default() }
    }

    /// Applies log record `seq`. Records must come in log order.
    pub fn apply(&mut self, seq: u64, record: &Record) {
        debug_assert!(seq >= self.next_seq, "records applied out of order");
        match record {
            Record::Event(event) => self.apply_event(seq, event),
            Record::Control(control) => {
                self.apply_control(control);
                self.next_seq = seq + 1;
                // A keyed batch's answer is bookkeeping beside its events,
                // not one more thing the batch sent.
                if !matches!(
                    control.body,
                    ControlBody::BatchKeyed { .. }
                        | ControlBody::StreamPosition { .. }
                        | ControlBody::SecretMinted { .. }
                        | ControlBody::Disclosed(_)
                ) {
                    self.events_applied += 1;
                }
            }
        }
    }

    /// Applies log record `seq`, an event.
    pub fn apply_event(&mut self, seq: u64, event: &Event) {
        self.next_seq = seq + 1;
        self.events_applied += 1;
        if !event.is_own_use() {
            self.apply_partner_event(event);
            return;
        }
        let covered = self.cover.covers(&event.subject);
        let subject = self.subject_for(event, covered);
        // What a cover holds: the usage and audience memberships of the
        // covered people (everyone's, but on a cluster node).
        if covered {
            self.usage.apply(subject, event);
            if let EventBody::BusinessMessage { business, .. } = &event.body {
                self.audiences.record(business, subject, event.ts_ms);
            }
        }
        if self.usage_only {
            self.intern_named(subject, event);
            return;
        }
        if self.abuse.note_event(subject) {
            crate::telemetry::BannedEventLogged.emit();
        }
        let ts_ms = event.ts_ms;
        match &event.body {
            EventBody::Consent { purpose, granted } => {
                self.consent.record(subject, ConsentChange { purpose: *purpose, granted: *granted, ts_ms });
                if !granted {
                    self.revoke(subject, vec![*purpose], None, "refused");
                }
            }
            EventBody::Register { device, .. } => {
                self.abuse.observe(subject, ts_ms, Signal::Registered { device }, &self.graph, &self.links);
            }
            EventBody::Message { to, link_domain, .. } => {
                let to = match to {
                    Recipient::Subject(pseudonym) => abuse::Recipient::Subject(self.subjects.intern(*pseudonym)),
                    Recipient::Group(group) => abuse::Recipient::Group(abuse::group_hash(group)),
                };
                let signal = Signal::Sent { to, link_domain: link_domain.as_deref() };
                self.abuse.observe(subject, ts_ms, signal, &self.graph, &self.links);
            }
            EventBody::Contacts { contacts } => {
                let book = self.subjects.intern_all(contacts);
                self.graph.set_book(subject, book);
            }
            EventBody::Report { target, .. } => {
                let target = self.subjects.intern(*target);
                self.abuse.observe(subject, ts_ms, Signal::Reported { target }, &self.graph, &self.links);
            }
            EventBody::Block { target } => {
                let target = self.subjects.intern(*target);
                self.graph.block(subject, target);
                self.abuse.observe(subject, ts_ms, Signal::Blocked { target }, &self.graph, &self.links);
            }
            EventBody::PartnerAccount { partner, partner_id, state, origin } => {
                self.apply_link(partner, subject, partner_id, *state, *origin);
            }
            // Never own use: handled by `apply_partner_event`.
            EventBody::PartnerFlag { .. } | EventBody::PartnerFriend { .. } => {}
            // Applied above, with usage.
            EventBody::BusinessMessage { .. } => {}
            EventBody::DeleteAccount => {
                self.revoke(subject, Purpose::ALL.to_vec(), None, "deleted");
                self.erase(subject);
            }
            EventBody::Session { .. } => {}
        }
    }

    /// The rest of [`State::apply_event`] in a scratch state for a cover:
    /// the people the event names are interned as the whole apply interns
    /// them, and an erasure is applied; nothing else.
    fn intern_named(&mut self, subject: u32, event: &Event) {
        match &event.body {
            EventBody::Message { to: Recipient::Subject(pseudonym), .. } => {
                self.subjects.intern(*pseudonym);
            }
            EventBody::Contacts { contacts } => {
                self.subjects.intern_all(contacts);
            }
            EventBody::Report { target, .. } | EventBody::Block { target } => {
                self.subjects.intern(*target);
            }
            EventBody::DeleteAccount => self.erase(subject),
            _ => {}
        }
    }

    /// Applies what a partner says (a claim, an unlinking, a flag, a
    /// friendship). It never makes the line's person known: a flag or a
    /// friendship about an account id not linked to that partner has no
    /// effect, and the line's phone number is not consulted.
    fn apply_partner_event(&mut self, event: &Event) {
        match &event.body {
            EventBody::PartnerAccount { partner, partner_id, state, origin } => {
                // A claim names a person who may never have used the service:
                // intern without making them known.
                let subject = self.subjects.intern(event.subject);
                if !self.usage_only {
                    self.apply_link(partner, subject, partner_id, *state, *origin);
                }
            }
            _ if self.usage_only => {}
            EventBody::PartnerFlag { partner, partner_id, reason } => {
                let Some(flagged) = self.linked_subject(partner, partner_id) else { return };
                let signal = Signal::PartnerFlagged { partner, reason };
                self.abuse.observe(flagged, event.ts_ms, signal, &self.graph, &self.links);
            }
            EventBody::PartnerFriend { partner, partner_id, friend, state }
                if self.linked_subject(partner, partner_id).is_some()
                    && self.linked_subject(partner, friend).is_some() =>
            {
                self.links.set_friends(partner, partner_id, friend, *state);
            }
            _ => {}
        }
    }

    /// The subject the service attested for `account` at `partner`.
    pub fn linked_subject(&self, partner: &str, account: &str) -> Option<u32> {
        self.links.partner_index(partner).and_then(|index| self.links.subject_of(index, account))
    }

    fn apply_link(&mut self, partner: &str, subject: u32, account: &str, state: LinkState, origin: LinkOrigin) {
        for ended in self.links.apply(partner, subject, account, state, origin) {
            self.revoke(ended, Purpose::ALL.to_vec(), Some(partner.to_string()), "unlinked");
        }
    }

    /// Removes a subject from every processor and the registry. Its events
    /// stay in the log until compaction rewrites it without them.
    fn erase(&mut self, subject: u32) {
        self.usage.remove_subject(subject);
        self.consent.remove(subject);
        self.graph.remove_subject(subject);
        self.links.remove_subject(subject);
        self.abuse.remove_subject(subject);
        self.audiences.remove_subject(subject);
        if let Some(record) = self.subjects.get(subject) {
            self.erased.push(record.pseudonym);
            // A secret minted for this life and not yet in the vault is not
            // the next life's.
            self.minted.retain(|(pseudonym, _)| *pseudonym != record.pseudonym);
        }
        self.subjects.erase(subject);
        self.housekeeping.erasures_pending += 1;
    }

    fn revoke(&mut self, subject: u32, purposes: Vec<Purpose>, partner: Option<String>, reason: &'static str) {
        if let Some(record) = self.subjects.get(subject) {
            self.revocations.push(Withdrawal { subject: record.pseudonym, purposes, partner, reason });
        }
    }

    /// Takes the revocations of the records applied since the last call
    /// (bans included).
    pub fn drain_revocations(&mut self) -> Vec<Withdrawal> {
        for subject in self.abuse.drain_newly_banned() {
            self.revoke(subject, vec![Purpose::Product, Purpose::Ads], None, "banned");
        }
        std::mem::take(&mut self.revocations)
    }

    /// The gaps record a compaction writes first, if any security feed has
    /// cursors to keep (see [`ControlBody::SecurityFeedGaps`]).
    pub fn security_feed_gaps(&self, ts_ms: i64) -> Option<Control> {
        let partners: Vec<(String, Vec<u64>)> = self
            .abuse
            .security_gaps()
            .into_iter()
            .filter_map(|(index, cursors)| Some((self.links.partner_name(index)?.to_string(), cursors)))
            .collect();
        if partners.is_empty() {
            return None;
        }
        Some(Control { ts_ms, body: ControlBody::SecurityFeedGaps { partners } })
    }

    /// After a replay: the refusals, bans and erasures it replayed were
    /// handled when first applied (the server reconciles its feeds against
    /// the current state when it starts, and opening the pipeline shreds any
    /// erased person's secret left behind), so their lists are dropped.
    pub fn settle_replayed(&mut self) {
        drop(self.drain_revocations());
        drop(self.drain_erased());
    }

    /// Takes the people erased since the last call.
    pub fn drain_erased(&mut self) -> Vec<Pseudonym> {
        std::mem::take(&mut self.erased)
    }

    /// A secret minted for `subject` (cluster mode), kept for the writer to
    /// store. Nobody to mint for when they were erased before this applied,
    /// or never known; the first nonce applied wins.
    fn mint(&mut self, subject: &Pseudonym, nonce: &[u8; 32]) {
        if self.subjects.lookup(subject).is_some() && !self.minted.iter().any(|(p, _)| p == subject) {
            self.minted.push((*subject, *nonce));
        }
    }

    /// Whether `pseudonym` was erased since the last drain (their secret is
    /// not shredded yet).
    pub fn erased_pending(&self, pseudonym: &Pseudonym) -> bool {
        self.erased.contains(pseudonym)
    }

    /// The nonce minted for `pseudonym` since the last drain, if any.
    pub fn minted_nonce(&self, pseudonym: &Pseudonym) -> Option<&[u8; 32]> {
        self.minted.iter().find(|(p, _)| p == pseudonym).map(|(_, nonce)| nonce)
    }

    /// Takes the secrets minted since the last call (cluster mode): one
    /// nonce per person, the first applied; the vault keeps a secret it
    /// already holds.
    pub fn drain_minted(&mut self) -> Vec<(Pseudonym, [u8; 32])> {
        std::mem::take(&mut self.minted)
    }

    fn apply_control(&mut self, control: &Control) {
        if self.usage_only {
            // Of the controls, only a reviewer's decision names a person
            // the registry may not know yet.
            match &control.body {
                ControlBody::Decision { subject, .. } => {
                    self.subjects.intern(*subject);
                }
                ControlBody::StreamPosition { position } => self.stream_position = *position,
                _ => {}
            }
            return;
        }
        match &control.body {
            ControlBody::RulesLoaded { text, lists } => {
                match abuse::rules::RuleSet::parse_logged(text, lists) {
                    Ok(rules) => {
                        self.abuse.set_rules(rules, abuse::RulesSource { text: text.clone(), lists: lists.clone() })
                    }
                    // Rules are validated before they are logged; a record that
                    // no longer parses (a newer rule language?) keeps the old rules.
                    Err(error) => tracing::error!(%error, "Logged rules no longer parse; keeping the previous rules."),
                }
            }
            ControlBody::Decision { subject, action, note } => {
                let subject = self.subjects.intern(*subject);
                self.abuse.decide(subject, control.ts_ms, *action, note, &self.links);
            }
            ControlBody::SecurityFeedGaps { partners } => {
                for (partner, cursors) in partners {
                    let index = self.links.intern(partner);
                    self.abuse.reserve_cursors(index, cursors);
                }
            }
            ControlBody::BudgetSpent { advertiser, business, day, epsilon_micros } => {
                self.audiences.spend(advertiser.as_deref(), business, *day, *epsilon_micros);
            }
            ControlBody::BatchKeyed { key_digest, answer } => {
                self.recent_keys.insert(*key_digest, control.ts_ms, answer.clone());
            }
            ControlBody::StreamPosition { position } => self.stream_position = *position,
            // Only the secrets minted with it: the outputs (audit log,
            // feeds) are written by the writer as it applies it
            // (`pipeline/outputs.rs`).
            ControlBody::Disclosed(disclosed) => {
                for (index, nonce) in &disclosed.nonces {
                    if let Some(subject) = disclosed.people.get(*index as usize) {
                        self.mint(subject, nonce);
                    }
                }
            }
            ControlBody::SecretMinted { subject, nonce } => self.mint(subject, nonce),
        }
    }

    /// The acting person's index; on their first own event they become
    /// known, and join usage if `covered`.
    fn subject_for(&mut self, event: &Event, covered: bool) -> u32 {
        let subject = self.subjects.intern(event.subject);
        let records = &mut self.subjects.records;
        let hot = &mut records.hot[subject as usize];
        if !hot.has_acted() {
            records.regions[subject as usize] = event.region;
            self.subjects.acting += 1;
            if covered {
                self.usage.add_subject(subject, event.region);
            }
        }
        hot.first_seen_ms = hot.first_seen_ms.min(event.ts_ms);
        subject
    }

    /// Approximate heap bytes of all state (for the memory-per-subject figure).
    pub fn heap_bytes(&self) -> usize {
        self.heap_breakdown().iter().map(|(_, bytes)| bytes).sum()
    }

    /// Approximate heap bytes per part of the state.
    pub fn heap_breakdown(&self) -> [(&'static str, usize); 8] {
        [
            ("subjects", self.subjects.heap_bytes()),
            ("usage", self.usage.heap_bytes()),
            ("consent", self.consent.heap_bytes()),
            ("graph", self.graph.heap_bytes()),
            ("links", self.links.heap_bytes()),
            ("abuse", self.abuse.heap_bytes()),
            ("audiences", self.audiences.heap_bytes()),
            ("keys", self.recent_keys.heap_bytes()),
        ]
    }
}

#[cfg(test)]
mod subjects_tests {
    use super::Subjects;
    use crate::contract::Pseudonym;
    use proptest::prelude::*;

    fn person(n: u16) -> Pseudonym {
        let mut bytes = [0u8; 16];
        bytes[..2].copy_from_slice(&n.to_le_bytes());
        bytes[15] = 1;
        Pseudonym::from_stored(bytes)
    }

    proptest! {
        /// Books of known, new and repeated contacts, some people erased
        /// between them: the pipelined lookups give every contact the index
        /// one lookup at a time gives, and assign new ones in the same order.
        #[test]
        fn a_book_interned_at_once_gets_the_indexes_of_one_at_a_time(
            books in proptest::collection::vec(
                (proptest::collection::vec(0u16..400, 0..120), proptest::option::of(0u16..400)),
                1..12,
            )
        ) {
            let (mut together, mut one_by_one) = (Subjects::default(), Subjects::default());
            for (book, erased) in books {
                let book: Vec<Pseudonym> = book.into_iter().map(person).collect();
                let expected: Vec<u32> = book.iter().map(|p| one_by_one.intern(*p)).collect();
                prop_assert_eq!(together.intern_all(&book), expected);
                if let Some(gone) = erased.map(person) {
                    let (a, b) = (together.lookup(&gone), one_by_one.lookup(&gone));
                    prop_assert_eq!(a, b);
                    if let (Some(a), Some(b)) = (a, b) {
                        together.erase(a);
                        one_by_one.erase(b);
                        prop_assert_eq!(together.lookup(&gone), None);
                    }
                }
            }
            prop_assert_eq!(together.len(), one_by_one.len());
            for record in one_by_one.all().filter(|r| r.pseudonym != Pseudonym::from_stored([0; 16])) {
                prop_assert_eq!(together.lookup(&record.pseudonym), one_by_one.lookup(&record.pseudonym));
            }
        }
    }
}
