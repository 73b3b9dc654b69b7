//! Cross-service abuse fighting: windowed rules, actions, subject status and
//! the security records shared with linked partners.
//!
//! Owns: the rules in force (swapped by `RulesLoaded` control records, so
//! replay re-derives every action at the same log position), per-subject
//! event-time windows, domain reputation (`reputation.rs`: the derived
//! `suspicious_domains` list and its evidence), actions with their evidence, each subject's status
//! (clear, review, banned) and the per-partner security records.
//! Never: sees a phone number (only dense indexes and pseudonyms), or hands
//! anything to a partner itself: feeds are read through `gate/`.

pub mod backtest;
pub mod reputation;
pub mod rules;
mod window;
mod window_table;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::contract::DecisionAction;
use crate::processors::graph::Graph;
use crate::processors::links::{Links, PartnerIndex};
use reputation::{DomainReputation, DomainVerdict};
use rules::{Feature, FeatureKind, FlagAction, RuleSet, DERIVED_LIST};
use window::{
    distinct, in_window, insert_sorted, Received, Sent, RECEIVED_BLOCK, RECEIVED_FLAG, RECEIVED_REPORT, SENT_GROUP,
    SENT_LINK, SENT_NON_CONTACT, SENT_STRANGER,
};
use window_table::WindowTable;

/// Where a subject stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[default]
    Clear,
    Review,
    Banned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Clear => "clear",
            Status::Review => "review",
            Status::Banned => "banned",
        }
    }
}

/// What set an action off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Origin {
    /// A rule fired on the subject's own features.
    Rule { rule: String },
    /// A partner network flagged the subject's account there.
    PartnerFlag { partner: String, reason: String },
    /// A reviewer decided.
    Reviewer { note: String },
}

/// One action taken about one subject, with the evidence for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Position in the action list: the cursor of `GET /v1/abuse/actions`.
    pub id: u64,
    pub subject: u32,
    /// Event time of the event that fired it (decision time for reviewers).
    pub ts_ms: i64,
    /// Status the subject got: banned, review, or clear (reviewer only).
    pub status: Status,
    /// Whether the action was published to linked partners' security feeds.
    pub shared: bool,
    /// Reason category (spam, scam, phishing, fake_account, abuse).
    pub reason: String,
    pub origin: Origin,
    /// Feature values that fired the rule, e.g. `messages_sent[15s] = 140`.
    pub evidence: Vec<(String, f64)>,
}

/// One record of a partner's security feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityRecord {
    /// The action it reports.
    pub action: u64,
    pub subject: u32,
    /// The subject's account id at that partner, when the record was written.
    pub partner_account: String,
    /// `ban`, `review` or `clear`.
    pub status: Status,
    pub reason: String,
    pub ts_ms: i64,
}

/// Per-subject abuse record, kept only for subjects with at least one action.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SubjectAbuse {
    pub status: Status,
    /// When the current status began.
    pub since_ms: i64,
    /// Ids of every action about the subject, oldest first.
    pub actions: Vec<u64>,
    /// Rules that fired since the subject was last cleared (each fires once).
    fired: Vec<String>,
    /// Events logged from the subject while banned.
    pub events_while_banned: u64,
}

/// What an event means for the abuse features of its subject.
pub enum Signal<'a> {
    Registered { device: &'a str },
    Sent { to: Recipient, link_domain: Option<&'a str> },
    Reported { target: u32 },
    Blocked { target: u32 },
    PartnerFlagged { partner: &'a str, reason: &'a str },
}

/// Who a message went to, as the abuse features see it.
#[derive(Clone, Copy)]
pub enum Recipient {
    Subject(u32),
    Group(u32),
}

/// The source of the rules in force, as logged in `RulesLoaded`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesSource {
    pub text: String,
    pub lists: Vec<(String, String)>,
}

/// Subject index of actions and records about an erased subject.
pub const ERASED: u32 = u32::MAX;

/// Account age reported when no register event was seen: effectively
/// infinite, so "young account" rules never fire on old accounts.
pub const UNKNOWN_ACCOUNT_AGE_SECONDS: f64 = 1e12;

/// How often (in observed events) expired windows are swept.
pub(crate) const SWEEP_EVERY: u64 = 1 << 16;

/// The abuse processor.
#[derive(Default, Serialize, Deserialize)]
pub struct Abuse {
    #[serde(skip)]
    rules: Option<Arc<RuleSet>>,
    /// Retention of sent, received and device entries under the rules in
    /// force, computed once per rules change (not per event).
    #[serde(skip)]
    retention: Option<Retention>,
    /// `None`: the built-in default rules.
    rules_source: Option<RulesSource>,
    windows: WindowTable,
    /// Registrations by device hash: (event time, subject).
    devices: HashMap<u64, VecDeque<(i64, u32)>, foldhash::fast::RandomState>,
    /// First register time by subject, epoch seconds (0: none seen).
    registered_s: Vec<u32>,
    subjects: HashMap<u32, SubjectAbuse, foldhash::fast::RandomState>,
    actions: Vec<Action>,
    feeds: Vec<Vec<SecurityRecord>>,
    /// Security feed cursors to keep as tombstones (records about people
    /// erased before the last compaction), by partner: filled before the
    /// next record is appended, so every other record keeps its cursor.
    #[serde(default)]
    reserved: HashMap<PartnerIndex, std::collections::BTreeSet<u64>, foldhash::fast::RandomState>,
    /// Newest event time observed: windows older than this minus the
    /// longest retention are swept.
    watermark_ms: i64,
    observed: u64,
    /// Rule evaluations since start (for the rule evaluations/s figure).
    #[serde(skip)]
    pub evaluations: u64,
    #[serde(skip)]
    scratch: Vec<u32>,
    #[serde(skip)]
    domain_scratch: Vec<u64>,
    /// Domain reputation. Not in the abuse blob: its own snapshot section
    /// (so snapshots written before it still load).
    #[serde(skip)]
    pub(crate) domains: DomainReputation,
    /// Subjects banned since the last drain (for retractions).
    #[serde(skip)]
    newly_banned: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
struct Retention {
    sent_ms: i64,
    received_ms: i64,
    device_ms: i64,
    /// How long domain sends and subjects' link domains are kept (0: the
    /// rules read no domain state, none is kept).
    domain_ms: i64,
    /// Whether any rule reads who is a stranger (then first writes to
    /// non-contacts are remembered; see `reputation::FIRST_WRITE_MEMORY_MS`).
    strangers: bool,
}

impl Retention {
    fn of(rules: &RuleSet) -> Retention {
        let longest = |kinds: &[FeatureKind]| kinds.iter().map(|kind| rules.retention_ms(*kind)).max().unwrap_or(0);
        let sent_ms = longest(&[
            FeatureKind::MessagesSent,
            FeatureKind::DistinctRecipients,
            FeatureKind::NonContactRecipients,
            FeatureKind::GroupsMessaged,
            FeatureKind::ListLinks,
            FeatureKind::StrangerLinkMessages,
            FeatureKind::StrangerLinkShare,
            FeatureKind::ComplaintRate,
        ]);
        let received_ms = longest(&[
            FeatureKind::ReportsReceived,
            FeatureKind::DistinctReporters,
            FeatureKind::BlocksReceived,
            FeatureKind::PartnerFlags,
            FeatureKind::ComplaintRate,
        ]);
        let device_ms = rules.retention_ms(FeatureKind::DeviceRegistrations);
        let domain_ms = rules.domain_retention_ms().max(longest(&[
            FeatureKind::LinkDomains,
            FeatureKind::DomainYoungSenders,
            FeatureKind::DomainStrangerRecipients,
            FeatureKind::NewestDomainAge,
        ]));
        let strangers =
            domain_ms > 0 || longest(&[FeatureKind::StrangerLinkMessages, FeatureKind::StrangerLinkShare]) > 0;
        Retention { sent_ms, received_ms, device_ms, domain_ms, strangers }
    }
}

/// Stable 32-bit hash for group ids and 64-bit for devices (fixed seed, so
/// replay and snapshots agree).
fn stable_hash(text: &str) -> u64 {
    let hash = blake3::hash(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}

/// Hash of a link domain, as the domain table keys it (never 0).
fn domain_hash(domain: &str) -> u64 {
    stable_hash(domain).max(1)
}

/// Hash of a group id, as stored in message windows.
pub fn group_hash(group: &str) -> u32 {
    stable_hash(group) as u32
}

impl Abuse {
    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        match &self.rules {
            Some(rules) => Arc::clone(rules),
            None => Arc::new(RuleSet::default_rules()),
        }
    }

    fn rules_ref(&mut self) -> Arc<RuleSet> {
        Arc::clone(self.rules.get_or_insert_with(|| Arc::new(RuleSet::default_rules())))
    }

    /// Where the rules in force came from (`None`: built-in defaults).
    pub fn rules_source(&self) -> Option<&RulesSource> {
        self.rules_source.as_ref()
    }

    /// Puts new rules in force (from a `RulesLoaded` record). Windows are
    /// kept: a rule that reads a longer window than before sees only what
    /// the old rules retained.
    pub fn set_rules(&mut self, rules: RuleSet, source: RulesSource) {
        self.retention = Some(Retention::of(&rules));
        self.rules = Some(Arc::new(rules));
        self.rules_source = Some(source);
    }

    /// Restores the parsed rules after a snapshot load.
    pub fn restore_rules(&mut self) -> Result<(), rules::RulesError> {
        self.rules = match &self.rules_source {
            Some(source) => Some(Arc::new(RuleSet::parse_logged(&source.text, &source.lists)?)),
            None => None,
        };
        self.retention = None;
        Ok(())
    }

    pub fn status(&self, subject: u32) -> Status {
        self.subjects.get(&subject).map_or(Status::Clear, |record| record.status)
    }

    pub fn is_banned(&self, subject: u32) -> bool {
        self.status(subject) == Status::Banned
    }

    /// Subjects per current status (clear subjects without actions are not counted).
    pub fn status_counts(&self) -> Vec<(Status, u64)> {
        let mut counts: Vec<(Status, u64)> = Vec::new();
        for record in self.subjects.values() {
            match counts.iter_mut().find(|(status, _)| *status == record.status) {
                Some((_, count)) => *count += 1,
                None => counts.push((record.status, 1)),
            }
        }
        counts
    }

    pub fn subject(&self, subject: u32) -> Option<&SubjectAbuse> {
        self.subjects.get(&subject)
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    pub fn action(&self, id: u64) -> Option<&Action> {
        self.actions.get(id as usize)
    }

    /// A partner's security records, oldest first (index = cursor).
    /// Keeps `cursors` of the partner's security feed as tombstones (from
    /// the gaps record a compaction writes first).
    pub fn reserve_cursors(&mut self, partner: PartnerIndex, cursors: &[u64]) {
        self.reserved.entry(partner).or_default().extend(cursors.iter().copied());
        self.fill_reserved(partner);
    }

    /// Appends a tombstone at every reserved cursor reached (the feed
    /// exists and ends right before it).
    fn fill_reserved(&mut self, partner: PartnerIndex) {
        let index = usize::from(partner);
        if self.feeds.len() <= index {
            self.feeds.resize_with(index + 1, Vec::new);
        }
        let Some(reserved) = self.reserved.get_mut(&partner) else { return };
        while reserved.remove(&(self.feeds[index].len() as u64)) {
            self.feeds[index].push(SecurityRecord {
                action: u64::MAX,
                subject: ERASED,
                partner_account: String::new(),
                status: Status::Clear,
                reason: String::new(),
                ts_ms: 0,
            });
        }
    }

    /// The cursors of each partner's security feed that hold no record any
    /// more (people erased) or are reserved ahead: what a compaction must
    /// keep. `(partner index, cursors)`, for partners with any.
    pub fn security_gaps(&self) -> Vec<(PartnerIndex, Vec<u64>)> {
        let mut gaps = Vec::new();
        for (index, feed) in self.feeds.iter().enumerate() {
            let partner = index as PartnerIndex;
            let mut cursors: Vec<u64> = feed
                .iter()
                .enumerate()
                .filter(|(_, record)| record.subject == ERASED)
                .map(|(cursor, _)| cursor as u64)
                .collect();
            cursors.extend(self.reserved.get(&partner).into_iter().flatten().copied());
            if !cursors.is_empty() {
                gaps.push((partner, cursors));
            }
        }
        gaps
    }

    pub fn security_feed(&self, partner: PartnerIndex) -> &[SecurityRecord] {
        self.feeds.get(usize::from(partner)).map_or(&[], Vec::as_slice)
    }

    /// Forgets an erased subject: windows, registration, status, and its
    /// place in actions and security records (kept as erased placeholders
    /// so cursors stay stable; outputs skip them).
    pub fn remove_subject(&mut self, subject: u32) {
        self.windows.remove(subject);
        self.domains.remove_subject(subject);
        for action in self.actions.iter().filter(|a| a.subject == subject) {
            self.domains.forget_action(action.id);
        }
        if let Some(slot) = self.registered_s.get_mut(subject as usize) {
            *slot = 0;
        }
        self.subjects.remove(&subject);
        for registrations in self.devices.values_mut() {
            registrations.retain(|(_, s)| *s != subject);
        }
        for action in self.actions.iter_mut().filter(|a| a.subject == subject) {
            action.subject = ERASED;
            action.evidence.clear();
            action.origin = Origin::Reviewer { note: String::new() };
        }
        for record in self.feeds.iter_mut().flatten().filter(|r| r.subject == subject) {
            record.subject = ERASED;
            record.partner_account.clear();
        }
    }

    /// Subjects banned since the last call.
    pub fn drain_newly_banned(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.newly_banned)
    }

    /// Counts an event logged from a banned subject.
    pub fn note_event(&mut self, subject: u32) -> bool {
        match self.subjects.get_mut(&subject) {
            Some(record) if record.status == Status::Banned => {
                record.events_while_banned += 1;
                true
            }
            _ => false,
        }
    }

    /// Records a first register time (the earliest wins).
    fn note_registered(&mut self, subject: u32, ts_ms: i64) {
        let index = subject as usize;
        if self.registered_s.len() <= index {
            self.registered_s.resize(index + 1, 0);
        }
        let seconds = (ts_ms / 1000).clamp(1, i64::from(u32::MAX)) as u32;
        let slot = &mut self.registered_s[index];
        if *slot == 0 || seconds < *slot {
            *slot = seconds;
        }
    }

    /// Feeds one signal about `subject` at event time `ts_ms` and runs the
    /// rules for whichever subject's features changed.
    pub fn observe(&mut self, subject: u32, ts_ms: i64, signal: Signal<'_>, graph: &Graph, links: &Links) {
        let rules = self.rules_ref();
        let retention = *self.retention.get_or_insert_with(|| Retention::of(&rules));
        let (sent_retention, received_retention) = (retention.sent_ms, retention.received_ms);
        self.watermark_ms = self.watermark_ms.max(ts_ms);
        let evaluated = match signal {
            Signal::Registered { device } => {
                self.note_registered(subject, ts_ms);
                let device = stable_hash(device);
                if retention.device_ms > 0 {
                    insert_sorted(self.devices.entry(device).or_default(), (ts_ms, subject), retention.device_ms);
                }
                let window = self.windows.get_or_default(subject);
                window.set_device(device);
                window.newest_ms = window.newest_ms.max(ts_ms);
                subject
            }
            Signal::Sent { to, link_domain } => {
                let (to, mut flags) = match to {
                    Recipient::Subject(to) if graph.has_contact(subject, to) => (to, 0),
                    Recipient::Subject(to) => (to, SENT_NON_CONTACT),
                    Recipient::Group(group) => (group, SENT_GROUP),
                };
                if flags & SENT_NON_CONTACT != 0 && retention.strangers {
                    self.domains.note_first_write(subject, to, ts_ms);
                }
                if let Some(domain) = link_domain {
                    flags |= SENT_LINK;
                    if flags & SENT_NON_CONTACT != 0
                        && !graph.has_contact(to, subject)
                        && !self.domains.wrote_to(to, subject, ts_ms)
                    {
                        flags |= SENT_STRANGER;
                    }
                    if retention.domain_ms > 0 {
                        let hash = domain_hash(domain);
                        self.domains.note_subject_link(subject, ts_ms, hash, retention.domain_ms);
                        let young =
                            self.account_age_seconds(subject, ts_ms) < rules.reputation.young_account_seconds as f64;
                        let noted = self.domains.note_send(
                            &rules.reputation,
                            retention.domain_ms,
                            domain,
                            hash,
                            ts_ms,
                            subject,
                            to,
                            young,
                            flags & SENT_STRANGER != 0,
                        );
                        if noted.became_suspicious {
                            crate::telemetry::DomainJudgedSuspicious.emit();
                            // The domain is suspicious for every sender now:
                            // look again at its other recent senders.
                            for sender in self.domains.recent_senders(hash) {
                                if sender != subject {
                                    self.evaluate(&rules, sender, ts_ms, links);
                                }
                            }
                        }
                    }
                }
                if sent_retention > 0 {
                    let mut lists = 0u16;
                    if let Some(domain) = link_domain {
                        for (index, list) in rules.lists.iter().enumerate().take(16) {
                            if list.contains(domain) {
                                lists |= 1 << index;
                            }
                        }
                    }
                    let window = self.windows.get_or_default(subject);
                    insert_sorted(&mut window.sent, Sent { ts_ms, to, flags, lists }, sent_retention);
                    window.newest_ms = window.newest_ms.max(ts_ms);
                }
                subject
            }
            Signal::Reported { target } | Signal::Blocked { target } => {
                let kind = if matches!(signal, Signal::Reported { .. }) { RECEIVED_REPORT } else { RECEIVED_BLOCK };
                if received_retention > 0 {
                    let window = self.windows.get_or_default(target);
                    insert_sorted(window.received_mut(), Received { ts_ms, from: subject, kind }, received_retention);
                    window.newest_ms = window.newest_ms.max(ts_ms);
                }
                target
            }
            Signal::PartnerFlagged { partner, reason } => {
                if received_retention > 0 {
                    let window = self.windows.get_or_default(subject);
                    let from = u32::from(links.partner_index(partner).unwrap_or(0));
                    insert_sorted(
                        window.received_mut(),
                        Received { ts_ms, from, kind: RECEIVED_FLAG },
                        received_retention,
                    );
                    window.newest_ms = window.newest_ms.max(ts_ms);
                }
                let status = match rules.partner_flags.action_for(reason) {
                    FlagAction::Ban => Some(Status::Banned),
                    FlagAction::Review => Some(Status::Review),
                    FlagAction::Ignore => None,
                };
                if let Some(status) = status {
                    let origin = Origin::PartnerFlag { partner: partner.to_string(), reason: reason.to_string() };
                    let category = rules::ReasonCategory::parse(reason)
                        .map_or_else(|| "abuse".to_string(), |category| category.as_str().to_string());
                    if self.status(subject) != Status::Banned {
                        self.act(subject, ts_ms, status, false, category, origin, Vec::new(), links);
                    }
                }
                subject
            }
        };
        self.evaluate(&rules, evaluated, ts_ms, links);
        self.observed += 1;
        if self.observed.is_multiple_of(SWEEP_EVERY) {
            self.sweep(&rules);
        }
    }

    /// Seconds since the subject's first register event at `at_ms`, or
    /// [`UNKNOWN_ACCOUNT_AGE_SECONDS`] when none was seen.
    fn account_age_seconds(&self, subject: u32, at_ms: i64) -> f64 {
        match self.registered_s.get(subject as usize) {
            Some(&registered) if registered > 0 => ((at_ms / 1000) - i64::from(registered)).max(0) as f64,
            _ => UNKNOWN_ACCOUNT_AGE_SECONDS,
        }
    }

    /// The verdicts on suspicious domains `subject` linked in the longest
    /// window of the domain features `features` name: the domain evidence
    /// of an action.
    fn domain_evidence(&mut self, subject: u32, at_ms: i64, features: &[Feature]) -> Vec<DomainVerdict> {
        let window_ms = features
            .iter()
            .filter(|f| f.kind.reads_domains() || (f.kind == FeatureKind::ListLinks && f.list == DERIVED_LIST))
            .map(|f| f.window_ms)
            .max();
        let Some(window_ms) = window_ms else { return Vec::new() };
        let mut hashes = std::mem::take(&mut self.domain_scratch);
        self.domains.domains_of(subject, at_ms, window_ms, &mut hashes);
        let verdicts = hashes.iter().filter_map(|hash| self.domains.verdict(*hash, at_ms).cloned()).collect();
        self.domain_scratch = hashes;
        verdicts
    }

    /// Suspicious domains at the newest event time seen (the derived list),
    /// newest verdict first.
    pub fn suspicious_domains(&self) -> Vec<&DomainVerdict> {
        self.domains.suspicious(self.watermark_ms)
    }

    /// The domain evidence of action `id`.
    pub fn action_domains(&self, id: u64) -> &[DomainVerdict] {
        self.domains.action_evidence(id)
    }

    /// Domain reputation, for the snapshot section and tests.
    pub fn domain_reputation(&self) -> &DomainReputation {
        &self.domains
    }

    /// Restores domain reputation from its snapshot section.
    pub fn set_domain_reputation(&mut self, domains: DomainReputation) {
        self.domains = domains;
    }

    /// Runs every enabled rule that has not yet fired for `subject`.
    fn evaluate(&mut self, rules: &RuleSet, subject: u32, at_ms: i64, links: &Links) {
        if self.status(subject) == Status::Banned {
            return;
        }
        let mut cache: Vec<(Feature, f64)> = Vec::new();
        for rule in rules.rules.iter().filter(|rule| rule.enabled) {
            if self.subjects.get(&subject).is_some_and(|record| record.fired.iter().any(|name| name == &rule.name)) {
                continue;
            }
            self.evaluations += 1;
            let fired = rule.when.eval(&mut |feature| self.cached_feature(&mut cache, subject, at_ms, feature));
            if !fired {
                continue;
            }
            let features = rule.when.features();
            let domain_evidence = self.domain_evidence(subject, at_ms, &features);
            let evidence: Vec<(String, f64)> = features
                .into_iter()
                .map(|feature| {
                    let value = self.cached_feature(&mut cache, subject, at_ms, feature);
                    (feature.display(&rules.lists), value)
                })
                .collect();
            let status = if rule.effects.ban {
                Status::Banned
            } else if rule.effects.review {
                Status::Review
            } else {
                self.status(subject)
            };
            let origin = Origin::Rule { rule: rule.name.clone() };
            self.domains.record_action(self.actions.len() as u64, domain_evidence);
            self.act(
                subject,
                at_ms,
                status,
                rule.effects.share,
                rule.reason.as_str().to_string(),
                origin,
                evidence,
                links,
            );
            if let Some(record) = self.subjects.get_mut(&subject) {
                record.fired.push(rule.name.clone());
            }
            if status == Status::Banned {
                break;
            }
        }
    }

    fn cached_feature(&mut self, cache: &mut Vec<(Feature, f64)>, subject: u32, at_ms: i64, feature: Feature) -> f64 {
        if let Some((_, value)) = cache.iter().find(|(known, _)| *known == feature) {
            return *value;
        }
        let value = self.feature(subject, at_ms, feature);
        cache.push((feature, value));
        value
    }

    /// One feature's value for `subject` over the window ending at `at_ms`.
    pub fn feature(&mut self, subject: u32, at_ms: i64, feature: Feature) -> f64 {
        if feature.kind == FeatureKind::AccountAge {
            return self.account_age_seconds(subject, at_ms);
        }
        let width = feature.window_ms;
        if feature.kind.reads_domains() || feature.kind == FeatureKind::LinkDomains {
            return self.domain_feature(subject, at_ms, feature);
        }
        let Some(window) = self.windows.get(subject) else { return 0.0 };
        let scratch = &mut self.scratch;
        let sent = || in_window(&window.sent, at_ms, width);
        let received = |kind: u8| in_window(window.received(), at_ms, width).filter(move |e| e.kind == kind);
        let stranger_links = || sent().filter(|e| e.flags & (SENT_LINK | SENT_STRANGER) == SENT_LINK | SENT_STRANGER);
        let value = match feature.kind {
            FeatureKind::MessagesSent => sent().count(),
            FeatureKind::DistinctRecipients => {
                distinct(sent().filter(|e| e.flags & SENT_GROUP == 0).map(|e| e.to), scratch)
            }
            FeatureKind::NonContactRecipients => {
                distinct(sent().filter(|e| e.flags & SENT_NON_CONTACT != 0).map(|e| e.to), scratch)
            }
            FeatureKind::GroupsMessaged => {
                distinct(sent().filter(|e| e.flags & SENT_GROUP != 0).map(|e| e.to), scratch)
            }
            FeatureKind::ListLinks if feature.list == DERIVED_LIST => {
                let (domains, links) = (&self.domains, &mut self.domain_scratch);
                domains.domains_of(subject, at_ms, width, links);
                links.retain(|hash| domains.is_suspicious(*hash, at_ms));
                // Messages (not domains) on the list, as for static lists.
                domains.count_links(subject, at_ms, width, links)
            }
            FeatureKind::ListLinks => {
                let bit = 1u16.checked_shl(u32::from(feature.list)).unwrap_or(0);
                sent().filter(|e| e.lists & bit != 0).count()
            }
            FeatureKind::StrangerLinkMessages => stranger_links().count(),
            FeatureKind::StrangerLinkShare => {
                let all = sent().count();
                return if all == 0 { 0.0 } else { stranger_links().count() as f64 / all as f64 };
            }
            FeatureKind::ComplaintRate => {
                let recipients = distinct(sent().filter(|e| e.flags & SENT_GROUP == 0).map(|e| e.to), scratch);
                let complainers = distinct(
                    in_window(window.received(), at_ms, width)
                        .filter(|e| e.kind == RECEIVED_BLOCK || e.kind == RECEIVED_REPORT)
                        .map(|e| e.from),
                    scratch,
                );
                return if recipients == 0 { 0.0 } else { complainers as f64 / recipients as f64 };
            }
            FeatureKind::ReportsReceived => received(RECEIVED_REPORT).count(),
            FeatureKind::DistinctReporters => distinct(received(RECEIVED_REPORT).map(|e| e.from), scratch),
            FeatureKind::BlocksReceived => received(RECEIVED_BLOCK).count(),
            FeatureKind::PartnerFlags => received(RECEIVED_FLAG).count(),
            FeatureKind::DeviceRegistrations => match window.device().and_then(|device| self.devices.get(&device)) {
                Some(registrations) => distinct(in_window(registrations, at_ms, width).map(|(_, s)| *s), scratch),
                None => 0,
            },
            // Answered above.
            FeatureKind::AccountAge
            | FeatureKind::LinkDomains
            | FeatureKind::DomainYoungSenders
            | FeatureKind::DomainStrangerRecipients
            | FeatureKind::NewestDomainAge => 0,
        };
        value as f64
    }

    /// Features over the link domains `subject` sent in the window.
    fn domain_feature(&mut self, subject: u32, at_ms: i64, feature: Feature) -> f64 {
        let width = feature.window_ms;
        let mut hashes = std::mem::take(&mut self.domain_scratch);
        self.domains.domains_of(subject, at_ms, width, &mut hashes);
        let value = match feature.kind {
            FeatureKind::LinkDomains => hashes.len() as f64,
            FeatureKind::DomainYoungSenders | FeatureKind::DomainStrangerRecipients => {
                let mut most = 0usize;
                for hash in &hashes {
                    let (young, strangers) = self.domains.velocity(*hash, at_ms, width, &mut self.scratch);
                    most = most.max(if feature.kind == FeatureKind::DomainYoungSenders { young } else { strangers });
                }
                most as f64
            }
            FeatureKind::NewestDomainAge => hashes
                .iter()
                .filter_map(|hash| self.domains.first_seen_ms(*hash))
                .map(|first| ((at_ms - first) / 1000).max(0) as f64)
                .fold(UNKNOWN_ACCOUNT_AGE_SECONDS, f64::min),
            _ => 0.0,
        };
        self.domain_scratch = hashes;
        value
    }

    #[allow(clippy::too_many_arguments)]
    fn act(
        &mut self,
        subject: u32,
        ts_ms: i64,
        status: Status,
        share: bool,
        reason: String,
        origin: Origin,
        evidence: Vec<(String, f64)>,
        links: &Links,
    ) {
        let id = self.actions.len() as u64;
        let record = self.subjects.entry(subject).or_default();
        if status == Status::Banned && record.status != Status::Banned {
            self.newly_banned.push(subject);
        }
        if record.status != status {
            record.status = status;
            record.since_ms = ts_ms;
        }
        if status == Status::Clear {
            record.fired.clear();
        }
        record.actions.push(id);
        if share {
            for (partner, account) in links.links_of(subject) {
                let index = usize::from(partner);
                self.fill_reserved(partner);
                self.feeds[index].push(SecurityRecord {
                    action: id,
                    subject,
                    partner_account: account.to_string(),
                    status,
                    reason: reason.clone(),
                    ts_ms,
                });
            }
        }
        crate::telemetry::AbuseActed { status: status.as_str(), shared: share }.emit();
        self.actions.push(Action { id, subject, ts_ms, status, shared: share, reason, origin, evidence });
    }

    /// Applies a reviewer's decision. A ban is shared with linked partners;
    /// clearing a subject whose ban was shared tells them too.
    pub fn decide(&mut self, subject: u32, ts_ms: i64, action: DecisionAction, note: &str, links: &Links) {
        let was_shared_ban = self.subjects.get(&subject).is_some_and(|record| {
            record.status == Status::Banned
                && record.actions.iter().any(|id| self.action(*id).is_some_and(|action| action.shared))
        });
        let reason = self
            .subjects
            .get(&subject)
            .and_then(|record| record.actions.last())
            .and_then(|id| self.action(*id))
            .map_or_else(|| "abuse".to_string(), |action| action.reason.clone());
        let origin = Origin::Reviewer { note: note.to_string() };
        match action {
            DecisionAction::Ban => self.act(subject, ts_ms, Status::Banned, true, reason, origin, Vec::new(), links),
            DecisionAction::Clear => {
                self.act(subject, ts_ms, Status::Clear, was_shared_ban, reason, origin, Vec::new(), links)
            }
        }
    }

    /// Drops windows and device entries older than any rule reads.
    fn sweep(&mut self, rules: &RuleSet) {
        let horizon = self.watermark_ms - rules.max_retention_ms();
        self.windows.retain(|window| {
            let kept = window.newest_ms > horizon;
            if kept {
                window.shrink();
            }
            kept
        });
        let device_horizon = self.watermark_ms - rules.retention_ms(FeatureKind::DeviceRegistrations);
        self.devices.retain(|_, registrations| registrations.back().is_some_and(|(ts, _)| *ts > device_horizon));
        self.domains
            .sweep(self.watermark_ms - rules.domain_retention_ms().max(rules.max_retention_ms()), self.watermark_ms);
    }

    /// Indexes the windows just read from a snapshot against the
    /// registry's `subjects` (see [`WindowTable::bind`]).
    pub fn bind_windows(&mut self, subjects: usize) -> Result<(), String> {
        self.windows.bind(subjects)
    }

    /// Subjects with window state now (the "active subjects" of the memory figure).
    pub fn active_subjects(&self) -> usize {
        self.windows.len()
    }

    /// Approximate heap bytes of window state (windows and devices).
    pub fn window_heap_bytes(&self) -> usize {
        let devices: usize = self.devices.values().map(|d| d.capacity() * 16 + 40).sum();
        self.windows.heap_bytes() + devices
    }

    /// Approximate heap bytes of all abuse state.
    pub fn heap_bytes(&self) -> usize {
        self.window_heap_bytes()
            + self.registered_s.capacity() * 4
            + self.actions.capacity() * std::mem::size_of::<Action>()
            + self.subjects.capacity() * (std::mem::size_of::<(u32, SubjectAbuse)>() + 1)
            + self.domains.heap_bytes()
    }
}
