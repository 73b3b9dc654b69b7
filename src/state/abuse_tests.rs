//! The abuse processor driven through [`State`]: records applied in log
//! order, as the writer and replay apply them.

use super::State;
use crate::contract::{
    Control, ControlBody, DecisionAction, Event, EventBody, LinkState, MessageKind, Platform, Pseudonym, Record, Region,
};
use crate::processors::abuse::{Origin, Status, SWEEP_EVERY};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

const RULES: &str = r#"
[lists]
phishing = { domains = ["evil.top"] }

[partner_flags]
ban_reasons = ["scam"]
default = "review"

[[rule]]
name = "burst"
when = "account_age < 10m and messages_sent[1m] >= 20 and non_contact_recipients[1m] > 0.8 * distinct_recipients[1m]"
effects = ["ban", "share"]
reason = "spam"

[[rule]]
name = "links"
when = "list_links[phishing, 1h] >= 3"
effects = ["review"]
reason = "phishing"

[[rule]]
name = "reported"
when = "distinct_reporters[1d] >= 3"
effects = ["review", "share"]
reason = "abuse"
"#;

fn who(n: u32) -> Pseudonym {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    Pseudonym::from_stored(bytes)
}

struct Harness {
    state: State,
    seq: u64,
}

impl Harness {
    fn new() -> Harness {
        let mut harness = Harness { state: State::default(), seq: 0 };
        harness.control(ControlBody::RulesLoaded { text: RULES.into(), lists: Vec::new() });
        harness
    }

    fn apply(&mut self, record: Record) {
        self.state.apply(self.seq, &record);
        self.seq += 1;
    }

    fn control(&mut self, body: ControlBody) {
        self.apply(Record::Control(Control { ts_ms: T0, body }));
    }

    fn event(&mut self, subject: u32, ts_ms: i64, body: EventBody) {
        self.apply(Record::Event(Event { ts_ms, subject: who(subject), region: Region(*b"IN"), body }));
    }

    fn message(&mut self, from: u32, to: u32, ts_ms: i64, link: Option<&str>) {
        let body = EventBody::Message {
            to: crate::contract::Recipient::Subject(who(to)),
            kind: MessageKind::Text,
            link_domain: link.map(str::to_string),
        };
        self.event(from, ts_ms, body);
    }

    fn register(&mut self, subject: u32, ts_ms: i64) {
        self.event(subject, ts_ms, EventBody::Register { device: format!("d{subject}"), platform: Platform::Android });
    }

    fn index(&self, subject: u32) -> u32 {
        self.state.subjects.lookup(&who(subject)).expect("known subject")
    }

    fn link(&mut self, partner: &str, subject: u32, account: &str) {
        let body = EventBody::PartnerAccount {
            partner: partner.into(),
            partner_id: account.into(),
            state: LinkState::Linked,
            origin: crate::contract::LinkOrigin::Service,
        };
        self.event(subject, T0, body);
    }
}

/// A fresh account blasting strangers is banned with the feature values as
/// evidence, and only partners it is linked to get a security record.
#[test]
fn fresh_burst_is_banned_and_shared_with_linked_partners_only() {
    let mut h = Harness::new();
    h.link("friendnet", 1, "fn_1");
    h.link("othernet", 2, "on_2");
    h.register(1, T0 + 1_000);
    for k in 0..25u32 {
        h.message(1, 100 + k, T0 + 60_000 + i64::from(k) * 1_000, None);
    }
    let spammer = h.index(1);
    assert_eq!(h.state.abuse.status(spammer), Status::Banned);
    let action = &h.state.abuse.actions()[0];
    assert_eq!(action.origin, Origin::Rule { rule: "burst".into() });
    assert!(action.shared);
    // Fired at the 20th message, whose event time is recorded.
    assert_eq!(action.ts_ms, T0 + 60_000 + 19_000);
    let evidence: std::collections::HashMap<_, _> = action.evidence.iter().cloned().collect();
    assert_eq!(evidence["messages_sent[1m]"], 20.0);
    assert_eq!(evidence["non_contact_recipients[1m]"], 20.0);
    assert!(evidence["account_age"] < 600.0);
    let friendnet = h.state.links.partner_index("friendnet").expect("interned");
    let othernet = h.state.links.partner_index("othernet").expect("interned");
    assert_eq!(h.state.abuse.security_feed(friendnet).len(), 1);
    assert_eq!(h.state.abuse.security_feed(friendnet)[0].partner_account, "fn_1");
    assert!(h.state.abuse.security_feed(othernet).is_empty(), "not linked there: nothing shared");
    // Later events are still logged, and counted as from a banned subject:
    // the last 5 of the burst plus this one.
    h.message(1, 500, T0 + 200_000, None);
    assert_eq!(h.state.abuse.subject(spammer).expect("record").events_while_banned, 6);
    assert_eq!(h.state.abuse.actions().len(), 1, "a banned subject fires no more rules");
}

/// The same burst to people in the sender's address book fires nothing; an
/// old account (no register seen) fires nothing either.
#[test]
fn contacts_and_old_accounts_do_not_fire_the_burst_rule() {
    let mut h = Harness::new();
    h.register(1, T0);
    let book = (0..25u32).map(|k| who(100 + k)).collect();
    h.event(1, T0 + 1_000, EventBody::Contacts { contacts: book });
    for k in 0..25u32 {
        h.message(1, 100 + k, T0 + 60_000 + i64::from(k) * 1_000, None);
        h.message(2, 300 + k, T0 + 60_000 + i64::from(k) * 1_000, None);
    }
    assert_eq!(h.state.abuse.status(h.index(1)), Status::Clear);
    assert_eq!(h.state.abuse.status(h.index(2)), Status::Clear);
    assert!(h.state.abuse.actions().is_empty());
}

/// Reports from distinct reporters put the target in review; a partner flag
/// bans for a named reason and reviews otherwise; reviewers can clear.
#[test]
fn reports_partner_flags_and_decisions() {
    let mut h = Harness::new();
    for reporter in 10..13u32 {
        let body = EventBody::Report { target: who(1), reason: "spam".into() };
        h.event(reporter, T0 + i64::from(reporter) * 1_000, body);
    }
    let target = h.index(1);
    assert_eq!(h.state.abuse.status(target), Status::Review);

    h.link("friendnet", 2, "fn_2");
    h.link("friendnet", 3, "fn_3");
    let flag = |account: &str, reason: &str| EventBody::PartnerFlag {
        partner: "friendnet".into(),
        partner_id: account.into(),
        reason: reason.into(),
    };
    // The flag names the partner's account; the link maps it to subject 2,
    // even though the event's phone (subject 9) is someone else.
    h.event(9, T0 + 5_000, flag("fn_2", "scam"));
    h.event(9, T0 + 6_000, flag("fn_3", "spam"));
    assert_eq!(h.state.abuse.status(h.index(2)), Status::Banned);
    assert_eq!(h.state.abuse.status(h.index(3)), Status::Review);
    assert!(h.state.subjects.lookup(&who(9)).is_none(), "the line's phone is never consulted, not even interned");

    h.control(ControlBody::Decision { subject: who(2), action: DecisionAction::Clear, note: "appeal upheld".into() });
    assert_eq!(h.state.abuse.status(h.index(2)), Status::Clear);
    h.control(ControlBody::Decision { subject: who(3), action: DecisionAction::Ban, note: "confirmed".into() });
    assert_eq!(h.state.abuse.status(h.index(3)), Status::Banned);
    let friendnet = h.state.links.partner_index("friendnet").expect("interned");
    let feed: Vec<(String, Status)> =
        h.state.abuse.security_feed(friendnet).iter().map(|r| (r.partner_account.clone(), r.status)).collect();
    assert_eq!(feed, vec![("fn_3".to_string(), Status::Banned)], "a reviewer ban is shared; flags are not echoed back");
}

/// Window state is dropped once no rule can read it: memory stays bounded
/// by recent activity, not by history.
#[test]
fn expired_windows_are_swept() {
    let mut h = Harness::new();
    for subject in 0..1_000u32 {
        h.message(subject, subject + 1, T0 + i64::from(subject), Some("evil.top"));
    }
    assert_eq!(h.state.abuse.active_subjects(), 1_000);
    // Two days later (longer than every window), enough traffic to sweep.
    let later = T0 + 2 * crate::contract::DAY_MS;
    for k in 0..SWEEP_EVERY as u32 {
        h.message(5_000 + (k % 10), 6_000, later + i64::from(k), None);
    }
    assert!(h.state.abuse.active_subjects() <= 10, "{}", h.state.abuse.active_subjects());
}

/// Phishing links count per named list, over the window only.
#[test]
fn list_links_count_only_listed_domains_in_the_window() {
    let mut h = Harness::new();
    h.message(1, 2, T0, Some("evil.top"));
    h.message(1, 3, T0 + 1_000, Some("login.evil.top"));
    h.message(1, 4, T0 + 2_000, Some("example.com"));
    assert_eq!(h.state.abuse.status(h.index(1)), Status::Clear);
    // Two hours later the first two have left the 1h window.
    h.message(1, 5, T0 + 7_200_000, Some("evil.top"));
    assert_eq!(h.state.abuse.status(h.index(1)), Status::Clear);
    h.message(1, 6, T0 + 7_201_000, Some("evil.top"));
    h.message(1, 7, T0 + 7_202_000, Some("evil.top"));
    assert_eq!(h.state.abuse.status(h.index(1)), Status::Review);
}

const LINK_RULES: &str = r#"
[suspicious_domains]
young_senders = 3
stranger_recipients = 6

[[rule]]
name = "suspicious_domain_links"
when = "list_links[suspicious_domains, 1d] >= 1"
effects = ["ban"]
reason = "spam"

[[rule]]
name = "stranger_links"
when = "stranger_link_messages[1d] >= 5 and stranger_link_share[1d] > 0.5"
effects = ["review"]
reason = "spam"
"#;

impl Harness {
    fn with_rules(text: &str) -> Harness {
        let mut harness = Harness { state: State::default(), seq: 0 };
        harness.control(ControlBody::RulesLoaded { text: text.into(), lists: Vec::new() });
        harness
    }

    fn records_for_ring(&mut self) {
        // Four young accounts, two link messages each to strangers, an hour apart.
        for sender in 1..=4u32 {
            self.register(sender, T0 + i64::from(sender) * 1_000);
        }
        for round in 0..2i64 {
            for sender in 1..=4u32 {
                let to = 100 + sender * 10 + round as u32;
                self.message(
                    sender,
                    to,
                    T0 + HOUR_MS * (1 + round) + i64::from(sender) * 60_000,
                    Some("fresh-deal.top"),
                );
            }
        }
    }
}

const HOUR_MS: i64 = 3_600_000;

/// A domain young accounts spray at strangers lands on the derived list
/// with its evidence; every recent sender of it is acted on, not only the
/// one whose message tipped it; sends to contacts and answers to people
/// who wrote first never count as strangers.
#[test]
fn derived_suspicious_domains_catch_a_slow_ring_with_evidence() {
    let mut h = Harness::with_rules(LINK_RULES);
    // A shop answering customers who wrote first, and someone sharing a link
    // with their contacts: never strangers, never suspicious.
    h.register(50, T0);
    h.event(51, T0, EventBody::Contacts { contacts: (200..230).map(who).collect() });
    h.register(51, T0);
    for k in 0..30u32 {
        h.message(300 + k, 50, T0 + 1_000 + i64::from(k), None);
        h.message(50, 300 + k, T0 + 10_000 + i64::from(k), Some("myshop.example"));
        h.message(51, 200 + k, T0 + 10_000 + i64::from(k), Some("viral.example"));
    }
    h.records_for_ring();
    let suspicious: Vec<&str> = h.state.abuse.suspicious_domains().iter().map(|v| v.domain.as_str()).collect();
    assert_eq!(suspicious, vec!["fresh-deal.top"]);
    for sender in 1..=4u32 {
        assert_eq!(h.state.abuse.status(h.index(sender)), Status::Banned, "ring member {sender}");
    }
    assert_eq!(h.state.abuse.status(h.index(50)), Status::Clear, "the shop");
    assert_eq!(h.state.abuse.status(h.index(51)), Status::Clear, "the link sharer");
    let action = &h.state.abuse.actions()[0];
    let domains = h.state.abuse.action_domains(action.id);
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].domain, "fresh-deal.top");
    assert_eq!(domains[0].stranger_recipients, 6);
    assert_eq!(domains[0].young_sender_count, 4);
}

/// Domain reputation survives a snapshot (its own section), a snapshot
/// without the section still loads, and state after a snapshot matches
/// state rebuilt from the records.
#[test]
fn domain_reputation_survives_snapshot_and_matches_a_rebuild() {
    let mut h = Harness::with_rules(LINK_RULES);
    h.records_for_ring();
    let dir = tempfile::tempdir().expect("tempdir");
    super::snapshot::save_snapshot(&h.state, dir.path()).expect("save");
    let loaded = super::snapshot::load_snapshot(dir.path()).expect("loads").expect("present");
    let view = |state: &State| {
        let suspicious: Vec<_> = state.abuse.suspicious_domains().into_iter().cloned().collect();
        let evidence: Vec<_> =
            state.abuse.actions().iter().map(|a| state.abuse.action_domains(a.id).to_vec()).collect();
        (suspicious, evidence, state.abuse.domain_reputation().len())
    };
    assert_eq!(view(&loaded), view(&h.state));
    let mut rebuilt = Harness::with_rules(LINK_RULES);
    rebuilt.records_for_ring();
    assert_eq!(view(&rebuilt.state), view(&h.state));

    // A version-5 snapshot written before the section existed: no domain
    // blob after the keys. It loads, with no domain state.
    let path = dir.path().join(super::snapshot::SNAPSHOT_FILE);
    std::fs::write(&path, version_5_snapshot(&std::fs::read(&path).expect("read"), &h.state, None)).expect("write");
    let loaded = super::snapshot::load_snapshot(dir.path()).expect("old layout loads").expect("present");
    assert!(loaded.abuse.suspicious_domains().is_empty());
    assert_eq!(loaded.abuse.actions().len(), h.state.abuse.actions().len());
}

/// The bytes of a version-5 snapshot of `state`, made from its current
/// bytes: the old magic, the graph in the old layout, and in place of the
/// domain blob the version-5 layout `domains_v5` (or nothing, as before the
/// section existed).
fn version_5_snapshot(current: &[u8], state: &State, domains_v5: Option<&[u8]>) -> Vec<u8> {
    let current = super::snapshot::with_legacy_sections(current, state, b"PRVSNAP5");
    let domains = postcard::to_stdvec(state.abuse.domain_reputation()).expect("blob");
    // Before the checksum: the log position (16), then the domain blob.
    let body_end = current.len() - 4 - 16 - 8 - domains.len();
    let mut old = b"PRVSNAP5".to_vec();
    old.extend_from_slice(&current[8..body_end]);
    if let Some(blob) = domains_v5 {
        old.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        old.extend_from_slice(blob);
    }
    let crc = crc32fast::hash(&old[8..]);
    old.extend_from_slice(&crc.to_le_bytes());
    old
}

/// A version-5 snapshot whose domain table has the old layout (no
/// ordinary-sender sketch, verdicts that never lapsed) still loads: the
/// ring's verdict and every action's evidence are kept, and the verdict
/// then lapses a window after the ring's last send, as one placed by this
/// version does.
#[test]
fn version_5_domain_reputation_loads_and_its_verdicts_lapse() {
    let mut h = Harness::with_rules(LINK_RULES);
    h.records_for_ring();
    let dir = tempfile::tempdir().expect("tempdir");
    super::snapshot::save_snapshot(&h.state, dir.path()).expect("save");
    let path = dir.path().join(super::snapshot::SNAPSHOT_FILE);
    let blob = postcard::to_stdvec(&h.state.abuse.domain_reputation().to_v5()).expect("v5 blob");
    let current = std::fs::read(&path).expect("read");
    assert_eq!(&current[..8], b"PRVSNAP8");
    std::fs::write(&path, version_5_snapshot(&current, &h.state, Some(&blob))).expect("write");
    let loaded = super::snapshot::load_snapshot(dir.path()).expect("version 5 loads").expect("present");
    let suspicious = |state: &State| -> Vec<_> { state.abuse.suspicious_domains().into_iter().cloned().collect() };
    assert_eq!(suspicious(&loaded), suspicious(&h.state));
    assert_eq!(suspicious(&loaded).len(), 1, "the ring's domain");
    for action in h.state.abuse.actions() {
        assert_eq!(loaded.abuse.action_domains(action.id), h.state.abuse.action_domains(action.id));
    }
    assert_eq!(loaded.abuse.domain_reputation().len(), h.state.abuse.domain_reputation().len());

    // The ring's last send was at T0 + 2h 4min: a day later the verdict lapsed.
    let mut later = Harness { state: loaded, seq: h.seq };
    later.message(60, 61, T0 + 26 * HOUR_MS, None);
    assert_eq!(suspicious(&later.state).len(), 1, "within a day of the ring's last send");
    later.message(60, 61, T0 + 27 * HOUR_MS, None);
    assert!(suspicious(&later.state).is_empty(), "lapsed a day after the ring's last send");
}

/// An erased sender leaves no trace in domain evidence.
#[test]
fn erasure_removes_a_sender_from_domain_evidence() {
    let mut h = Harness::with_rules(LINK_RULES);
    h.records_for_ring();
    let first = h.index(1);
    h.event(1, T0 + 10 * HOUR_MS, EventBody::DeleteAccount);
    for verdict in h.state.abuse.suspicious_domains() {
        assert!(!verdict.young_senders.contains(&first));
    }
    for action in h.state.abuse.actions() {
        for verdict in h.state.abuse.action_domains(action.id) {
            assert!(!verdict.young_senders.contains(&first));
        }
    }
}
