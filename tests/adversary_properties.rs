//! Property (issue 11): over random interleavings of attested links,
//! partner claims and unlinkings, refusals dated in the past, now or in the
//! future, erasures, re-registrations and partner reads, no partner output,
//! read at any cursor, ever holds a person who is not attested and allowed
//! that purpose at read time, and nothing links an erased life to a later
//! one.
//!
//! Every line goes through the real edge (a pinned clock, so "future" is
//! exact), state, gate, feeds and vault, wired as the writer wires them;
//! the expectations come from an independent model kept here.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use proviso::config::Partner;
use proviso::consent::Policy;
use proviso::contract::{Purpose, Record, Region, DAY_MS};
use proviso::disclose::feeds::{Feeds, Revocation};
use proviso::edge::{Edge, PseudonymKey, Source};
use proviso::gate::{release_count, release_to_partner, Gated, PartnerGrant};
use proviso::processors::graph::suggest::suggest;
use proviso::state::State;
use proviso::vault::Vault;

const PEOPLE: u32 = 5;
/// The pinned arrival time of every line: 2026-06-01.
const NOW: i64 = 1_780_272_000_000;

fn phone(k: u32) -> String {
    format!("+9198765{:05}", 100 + k)
}

#[derive(Clone, Debug)]
enum When {
    Past,
    Now,
    /// Ahead within the skew: logged as arrival.
    Soon,
    /// An hour ahead: refused by the edge.
    Later,
}

#[derive(Clone, Debug)]
enum Op {
    /// The service sees the person use the app (first sight 40 days back).
    Session(u32),
    /// The service attests person k's account `fn-k`.
    Attest(u32),
    /// The partner claims account `fn-j` for person k.
    Claim(u32, u32),
    /// Unlinking of `fn-k`: by the service (for k) or by the partner.
    Unlink(u32, bool),
    Consent(u32, bool, bool, When),
    Book(u32, Vec<u32>),
    Shop(u32),
    Erase(u32),
    Suggest(u32),
    Audience,
    /// Read a feed (ads if true) from a cursor.
    Read(bool, u8),
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![Just(When::Past), Just(When::Now), Just(When::Soon), Just(When::Later)]
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..PEOPLE;
    prop_oneof![
        k.clone().prop_map(Op::Session),
        k.clone().prop_map(Op::Attest),
        (k.clone(), k.clone()).prop_map(|(a, b)| Op::Claim(a, b)),
        (k.clone(), any::<bool>()).prop_map(|(a, by_partner)| Op::Unlink(a, by_partner)),
        (k.clone(), any::<bool>(), any::<bool>(), when())
            .prop_map(|(a, ads, granted, w)| Op::Consent(a, ads, granted, w)),
        (k.clone(), proptest::collection::vec(0..PEOPLE, 0..5)).prop_map(|(a, b)| Op::Book(a, b)),
        k.clone().prop_map(Op::Shop),
        k.clone().prop_map(Op::Erase),
        k.prop_map(Op::Suggest),
        Just(Op::Audience),
        (any::<bool>(), 0u8..12).prop_map(|(ads, cursor)| Op::Read(ads, cursor)),
    ]
}

/// What the independent model says about each person now.
#[derive(Default)]
struct Model {
    /// Used the service in this life.
    alive: HashSet<u32>,
    /// First seen 40 days back in this life: the opt-out notice is over.
    notice_over: HashSet<u32>,
    attested: HashSet<u32>,
    /// The choice acknowledged last, per purpose (true: granted).
    choice: HashMap<(u32, Purpose), bool>,
}

impl Model {
    fn allowed(&self, k: u32, purpose: Purpose) -> bool {
        self.alive.contains(&k)
            && self.attested.contains(&k)
            && self.choice.get(&(k, purpose)).copied().unwrap_or(self.notice_over.contains(&k))
    }

    fn erase(&mut self, k: u32) {
        self.alive.remove(&k);
        self.notice_over.remove(&k);
        self.attested.remove(&k);
        self.choice.retain(|(person, _), _| *person != k);
    }
}

struct World {
    edge: Edge,
    state: State,
    seq: u64,
    feeds: Feeds,
    vault: Vault,
    model: Model,
    /// Every `r_` and `h_` handle each life of each person was given.
    lives: HashMap<u32, Vec<HashSet<String>>>,
    partner_key: PseudonymKey,
}

impl World {
    /// One line through the edge, then state, retractions and shredding as
    /// the writer does them. Returns whether the edge accepted it.
    fn line(&mut self, line: String, source: Source<'_>) -> bool {
        let Ok(event) = self.edge.accept_line_at(line.as_bytes(), source, NOW) else { return false };
        self.state.apply(self.seq, &Record::Event(event));
        self.seq += 1;
        let revocations = Revocation::from_withdrawals(&self.state.drain_revocations(), &self.vault);
        self.feeds.revoke(&revocations, NOW).expect("revoke");
        self.vault.forget(&self.state.drain_erased()).expect("forget");
        true
    }

    fn person_of_account(&self, account: &str) -> u32 {
        account.strip_prefix("fn-").and_then(|k| k.parse().ok()).expect("an fn- account")
    }

    fn index(&self, k: u32) -> Option<u32> {
        let (pseudonym, _) = self.edge.resolve_phone(&phone(k), None).expect("phone");
        self.state.subjects.lookup_person(&pseudonym)
    }

    /// Handles of the people disclosed, remembered per life.
    fn handles(&mut self, people: &[u32]) -> Vec<String> {
        let pseudonyms: Vec<_> =
            people.iter().map(|k| self.edge.resolve_phone(&phone(*k), None).expect("phone").0).collect();
        let secrets = self.vault.secrets_for(&pseudonyms).expect("vault");
        let mut out = Vec::new();
        for (k, secret) in people.iter().zip(secrets) {
            let life = self.lives.entry(*k).or_insert_with(|| vec![HashSet::new()]);
            let current = life.last_mut().expect("a life");
            current.insert(secret.record_handle());
            current.insert(secret.partner_handle(&self.partner_key));
            out.push(secret.record_handle());
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn partner_outputs_hold_only_attested_allowed_people_and_lives_stay_apart(ops in proptest::collection::vec(op(), 1..70)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut world = World {
            edge: Edge::new(PseudonymKey::from_bytes([5; 32]), Region(*b"IN")).with_default_partner("net").with_clock(proviso::clock::Clock::fixed(NOW)),
            state: State::default(),
            seq: 0,
            feeds: Feeds::open(dir.path()).expect("feeds"),
            vault: Vault::open(dir.path()).expect("vault"),
            model: Model::default(),
            lives: HashMap::new(),
            partner_key: PseudonymKey::from_bytes([6; 32]),
        };
        let policy = Policy::default_policy();
        let partner = Partner { name: "net".into(), purposes: vec![Purpose::Product, Purpose::Ads], tokens: vec![], pseudonym_key: None };
        let grant = PartnerGrant { name: &partner.name, purposes: &partner.purposes };
        let long_ago = NOW - 40 * DAY_MS;
        for op in ops {
            // Every person alive now has the handles of their current life.
            let alive: Vec<u32> = (0..PEOPLE).filter(|k| world.index(*k).is_some()).collect();
            world.handles(&alive);
            match op {
                Op::Session(k) => {
                    let line = format!(r#"{{"type":"session","ts":{long_ago},"phone":"{}","device":"dev-{k}"}}"#, phone(k));
                    prop_assert!(world.line(line, Source::Service));
                    world.model.alive.insert(k);
                    world.model.notice_over.insert(k);
                }
                Op::Attest(k) => {
                    let line = format!(r#"{{"type":"partner_account","ts":{NOW},"phone":"{}","partner_id":"fn-{k}"}}"#, phone(k));
                    prop_assert!(world.line(line, Source::Service));
                    // An attestation is the person's own use of the app.
                    world.model.alive.insert(k);
                    world.model.attested.insert(k);
                }
                Op::Claim(k, j) => {
                    let line = format!(r#"{{"type":"partner_account","ts":{long_ago},"phone":"{}","partner_id":"fn-{j}"}}"#, phone(k));
                    prop_assert!(world.line(line, Source::Partner("net")));
                }
                Op::Unlink(k, by_partner) => {
                    let line = format!(r#"{{"type":"partner_account","ts":{NOW},"phone":"{}","partner_id":"fn-{k}","state":"unlinked"}}"#, phone(k));
                    let source = if by_partner { Source::Partner("net") } else { Source::Service };
                    prop_assert!(world.line(line, source));
                    world.model.attested.remove(&k);
                    if !by_partner {
                        world.model.alive.insert(k);
                    }
                }
                Op::Consent(k, ads, granted, when) => {
                    let ts = match when {
                        When::Past => NOW - 2 * 3_600_000,
                        When::Now => NOW,
                        When::Soon => NOW + 240_000,
                        When::Later => NOW + 3_600_000,
                    };
                    let purpose = if ads { "ads" } else { "product" };
                    let line = format!(r#"{{"type":"consent","ts":{ts},"phone":"{}","purpose":"{purpose}","granted":{granted}}}"#, phone(k));
                    let accepted = world.line(line, Source::Service);
                    prop_assert_eq!(accepted, !matches!(when, When::Later), "only beyond the skew is refused");
                    if accepted {
                        let purpose = if ads { Purpose::Ads } else { Purpose::Product };
                        world.model.choice.insert((k, purpose), granted);
                        world.model.alive.insert(k);
                    }
                }
                Op::Book(k, book) => {
                    let contacts: Vec<String> = book.into_iter().filter(|j| *j != k).map(phone).collect();
                    let line = serde_json::json!({"type": "contacts", "ts": NOW, "phone": phone(k), "contacts": contacts}).to_string();
                    prop_assert!(world.line(line, Source::Service));
                    world.model.alive.insert(k);
                }
                Op::Shop(k) => {
                    let line = format!(r#"{{"type":"business_message","ts":{NOW},"phone":"{}","business":"shop","direction":"out"}}"#, phone(k));
                    prop_assert!(world.line(line, Source::Service));
                    world.model.alive.insert(k);
                }
                Op::Erase(k) => {
                    if world.index(k).is_none() {
                        continue;
                    }
                    let line = format!(r#"{{"type":"delete_account","ts":{NOW},"phone":"{}"}}"#, phone(k));
                    prop_assert!(world.line(line, Source::Service));
                    world.model.erase(k);
                    world.lives.entry(k).or_insert_with(|| vec![HashSet::new()]).push(HashSet::new());
                }
                Op::Suggest(k) => {
                    let Some(owner) = world.index(k) else { continue };
                    let state = &world.state;
                    let Some(index) = state.links.partner_index("net") else { continue };
                    let Some(account) = state.links.account_of(index, owner).map(str::to_string) else {
                        prop_assert!(!world.model.attested.contains(&k), "{k} attested but not linked");
                        continue;
                    };
                    prop_assert!(world.model.attested.contains(&k), "{k} linked without attestation");
                    if release_to_partner(state, &policy, &grant, owner, Purpose::Product, NOW, ()).is_err() {
                        continue;
                    }
                    prop_assert!(world.model.allowed(k, Purpose::Product), "suggestions asked for {k}, not allowed");
                    let mut eligible = |c: u32| release_to_partner(state, &policy, &grant, c, Purpose::Product, NOW, ()).is_ok();
                    let found = suggest(&state.graph, &state.links, index, owner, &account, &mut eligible, 20);
                    let people: Vec<u32> = found.iter().map(|s| world.person_of_account(&s.account)).collect();
                    for person in &people {
                        prop_assert!(world.model.allowed(*person, Purpose::Product), "suggested {person}, not allowed");
                    }
                    let handles: Vec<Vec<String>> = people.iter().map(|person| world.handles(&[k, *person])).collect();
                    let state = &world.state;
                    let mut items = Vec::new();
                    for (suggestion, handles) in found.iter().zip(handles) {
                        let item = (account.clone(), Some(suggestion.account.clone()), None, handles);
                        items.push(release_to_partner(state, &policy, &grant, suggestion.subject, Purpose::Product, NOW, item).expect("suggested, so allowed"));
                    }
                    let items = Gated::gather(Purpose::Product, items).expect("one purpose");
                    world.feeds.disclose("net", "suggestion", items, NOW).expect("disclose");
                }
                Op::Audience => {
                    let state = &world.state;
                    let members = state.audiences.members("shop", proviso::contract::day_of(NOW), 30);
                    let consenting = release_count(state, &policy, members.iter(), Purpose::Ads, NOW).into_inner();
                    let Some(index) = state.links.partner_index("net") else { continue };
                    let linked: Vec<(u32, String)> = consenting
                        .into_iter()
                        .filter_map(|subject| Some((subject, state.links.account_of(index, subject)?.to_string())))
                        .collect();
                    let people: Vec<u32> = linked.iter().map(|(_, account)| world.person_of_account(account)).collect();
                    let handles: Vec<Vec<String>> = people.iter().map(|person| world.handles(&[*person])).collect();
                    let state = &world.state;
                    let mut items = Vec::new();
                    for ((subject, account), handles) in linked.into_iter().zip(handles) {
                        let person = world.person_of_account(&account);
                        let item = (account, None, Some("shop".to_string()), handles);
                        if let Ok(gated) = release_to_partner(state, &policy, &grant, subject, Purpose::Ads, NOW, item) {
                            prop_assert!(world.model.allowed(person, Purpose::Ads), "audience member {person}, not allowed");
                            items.push(gated);
                        }
                    }
                    let items = Gated::gather(Purpose::Ads, items).expect("one purpose");
                    world.feeds.disclose("net", "audience_member", items, NOW).expect("disclose");
                }
                Op::Read(ads, cursor) => {
                    let purpose = if ads { Purpose::Ads } else { Purpose::Product };
                    let after = cursor.checked_sub(1).map(u64::from);
                    for record in world.feeds.read("net", purpose, after, 1000).expect("read") {
                        if record.op != "add" || record.is_redacted() {
                            prop_assert!(record.is_redacted(), "a retract names nobody: {record:?}");
                            continue;
                        }
                        let named = std::iter::once(record.partner_id.as_str()).chain(record.suggested.as_deref());
                        for account in named {
                            let person = world.person_of_account(account);
                            prop_assert!(world.model.allowed(person, purpose), "read {record:?}: {person} not allowed");
                        }
                    }
                }
            }
        }
        // Lives stay apart: no handle of one life is a handle of another.
        for (k, lives) in &world.lives {
            for (i, earlier) in lives.iter().enumerate() {
                for later in &lives[i + 1..] {
                    prop_assert!(earlier.is_disjoint(later), "person {k}: a handle links two lives");
                }
            }
        }
    }
}
