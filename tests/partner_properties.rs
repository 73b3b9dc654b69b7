//! Property tests over the composition the partner endpoints use (state,
//! gate, suggestions, audiences, feeds): for random interleavings of
//! events, consent changes, bans, unlinkings and reads,
//! - no output contains a person not allowed its purpose when produced
//!   (checked against an independent model of consent, bans and links);
//! - every earlier disclosure involving a person who is no longer allowed
//!   has a retraction.

use std::collections::HashMap;

use proptest::prelude::*;
use proviso::config::Partner;
use proviso::consent::Policy;
use proviso::contract::{
    Control, ControlBody, DecisionAction, Event, EventBody, LinkOrigin, LinkState, Pseudonym, Purpose, Record, Region,
    DAY_MS,
};
use proviso::disclose::feeds::{Feeds, Revocation};
use proviso::gate::{release_count, release_to_partner, Gated, PartnerGrant};
use proviso::processors::graph::suggest::suggest;
use proviso::state::State;

const PEOPLE: u32 = 6;
const BASE: i64 = 1_767_225_600_000; // 2026-01-01

#[derive(Clone, Debug)]
enum Op {
    Book(u32, Vec<u32>),
    Consent(u32, bool, bool),
    Ban(u32),
    Clear(u32),
    Link(u32, bool),
    Shop(u32),
    Suggest(u32),
    Audience,
}

fn op() -> impl Strategy<Value = Op> {
    let person = 0..PEOPLE;
    prop_oneof![
        (person.clone(), proptest::collection::vec(0..PEOPLE, 0..5)).prop_map(|(a, b)| Op::Book(a, b)),
        (person.clone(), any::<bool>(), any::<bool>()).prop_map(|(a, ads, granted)| Op::Consent(a, ads, granted)),
        person.clone().prop_map(Op::Ban),
        person.clone().prop_map(Op::Clear),
        (person.clone(), any::<bool>()).prop_map(|(a, linked)| Op::Link(a, linked)),
        person.clone().prop_map(Op::Shop),
        person.prop_map(Op::Suggest),
        Just(Op::Audience),
    ]
}

fn who(k: u32) -> Pseudonym {
    Pseudonym::from_subject_id(&format!("s_{k:032x}")).expect("id")
}

/// The independent model: latest choice per purpose, ban, link.
#[derive(Default)]
struct Model {
    refused: HashMap<(u32, Purpose), bool>,
    banned: HashMap<u32, bool>,
    linked: HashMap<u32, bool>,
}

impl Model {
    fn allowed(&self, k: u32, purpose: Purpose) -> bool {
        !self.refused.get(&(k, purpose)).copied().unwrap_or(false)
            && !self.banned.get(&k).copied().unwrap_or(false)
            && self.linked.get(&k).copied().unwrap_or(false)
    }
}

struct World {
    state: State,
    seq: u64,
    ts: i64,
    feeds: Feeds,
    vault: proviso::vault::Vault,
    model: Model,
}

impl World {
    fn apply(&mut self, record: Record) {
        self.state.apply(self.seq, &record);
        self.seq += 1;
        let revocations = Revocation::from_withdrawals(&self.state.drain_revocations(), &self.vault);
        self.feeds.revoke(&revocations, self.ts).expect("revoke");
    }

    fn event(&mut self, k: u32, body: EventBody) {
        self.ts += 1_000;
        self.apply(Record::Event(Event { ts_ms: self.ts, subject: who(k), region: Region(*b"IN"), body }));
    }

    fn index(&self, k: u32) -> u32 {
        self.state.subjects.lookup(&who(k)).expect("known")
    }

    /// The person's `r_` handle, minting their secret on first use.
    fn handle(&self, k: u32) -> String {
        self.vault.record_handles(&[who(k)]).expect("vault").remove(0)
    }

    fn person(&self, index: u32) -> u32 {
        (0..PEOPLE).find(|k| self.index(*k) == index).expect("a person")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn outputs_follow_consent_and_refusals_are_retracted(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut world = World {
            state: State::default(),
            seq: 0,
            ts: BASE,
            feeds: Feeds::open(dir.path()).expect("feeds"),
            vault: proviso::vault::Vault::open(dir.path()).expect("vault"),
            model: Model::default(),
        };
        let policy = Policy::default_policy();
        let partner = Partner { name: "net".into(), purposes: vec![Purpose::Product, Purpose::Ads], tokens: vec![], pseudonym_key: None };
        let grant = PartnerGrant { name: &partner.name, purposes: &partner.purposes };
        // Everyone acts and links long before the reads: notices are over.
        for k in 0..PEOPLE {
            world.event(k, EventBody::Session { device: format!("d{k}") });
            world.event(k, EventBody::PartnerAccount { partner: "net".into(), partner_id: format!("p{k}"), state: LinkState::Linked, origin: LinkOrigin::Service });
            world.model.linked.insert(k, true);
        }
        world.ts += 40 * DAY_MS;
        for op in ops {
            match op {
                Op::Book(k, book) => {
                    let contacts = book.into_iter().map(who).collect();
                    world.event(k, EventBody::Contacts { contacts });
                }
                Op::Consent(k, ads, granted) => {
                    let purpose = if ads { Purpose::Ads } else { Purpose::Product };
                    world.event(k, EventBody::Consent { purpose, granted });
                    world.model.refused.insert((k, purpose), !granted);
                }
                Op::Ban(k) | Op::Clear(k) => {
                    let action = if matches!(op, Op::Ban(_)) { DecisionAction::Ban } else { DecisionAction::Clear };
                    world.ts += 1_000;
                    let body = ControlBody::Decision { subject: who(k), action, note: String::new() };
                    world.apply(Record::Control(Control { ts_ms: world.ts, body }));
                    world.model.banned.insert(k, action == DecisionAction::Ban);
                }
                Op::Link(k, linked) => {
                    let state = if linked { LinkState::Linked } else { LinkState::Unlinked };
                    world.event(k, EventBody::PartnerAccount { partner: "net".into(), partner_id: format!("p{k}"), state, origin: LinkOrigin::Service });
                    world.model.linked.insert(k, linked);
                }
                Op::Shop(k) => {
                    world.event(k, EventBody::BusinessMessage { business: "shop".into(), direction: proviso::contract::Direction::Out });
                }
                Op::Suggest(k) => {
                    let at = world.ts;
                    let state = &world.state;
                    let owner = world.index(k);
                    let Some(index) = state.links.partner_index("net") else { continue };
                    let Some(account) = state.links.account_of(index, owner).map(str::to_string) else { continue };
                    if release_to_partner(state, &policy, &grant, owner, Purpose::Product, at, ()).is_err() {
                        prop_assert!(!world.model.allowed(k, Purpose::Product));
                        continue;
                    }
                    let mut eligible = |c: u32| release_to_partner(state, &policy, &grant, c, Purpose::Product, at, ()).is_ok();
                    let found = suggest(&state.graph, &state.links, index, owner, &account, &mut eligible, 20);
                    prop_assert!(world.model.allowed(k, Purpose::Product));
                    let mut items = Vec::new();
                    for suggestion in &found {
                        let person = world.person(suggestion.subject);
                        prop_assert!(world.model.allowed(person, Purpose::Product), "suggested {person} not allowed");
                        let item = (account.clone(), Some(suggestion.account.clone()), None, vec![world.handle(k), world.handle(person)]);
                        items.push(release_to_partner(state, &policy, &grant, suggestion.subject, Purpose::Product, at, item).expect("suggested, so allowed"));
                    }
                    let items = Gated::gather(Purpose::Product, items).expect("one purpose");
                    world.feeds.disclose("net", "suggestion", items, at).expect("disclose");
                }
                Op::Audience => {
                    let at = world.ts;
                    let state = &world.state;
                    let members = state.audiences.members("shop", proviso::contract::day_of(at), 365);
                    let consenting = release_count(state, &policy, members.iter(), Purpose::Ads, at).into_inner();
                    let Some(index) = state.links.partner_index("net") else { continue };
                    let mut items = Vec::new();
                    for subject in consenting {
                        let person = world.person(subject);
                        let Some(account) = state.links.account_of(index, subject) else { continue };
                        let item = (account.to_string(), None, Some("shop".to_string()), vec![world.handle(person)]);
                        if let Ok(gated) = release_to_partner(state, &policy, &grant, subject, Purpose::Ads, at, item) {
                            prop_assert!(world.model.allowed(person, Purpose::Ads), "audience member {person} not allowed");
                            items.push(gated);
                        }
                    }
                    let items = Gated::gather(Purpose::Ads, items).expect("one purpose");
                    world.feeds.disclose("net", "audience_member", items, at).expect("disclose");
                }
            }
        }
        // Every live disclosure involves only people allowed its purpose now.
        for (_, purpose, record) in world.feeds.live().expect("live") {
            for subject in &record.subjects {
                let person = (0..PEOPLE).find(|k| world.handle(*k) == *subject).expect("person");
                prop_assert!(world.model.allowed(person, purpose), "{record:?} still live for {person}");
            }
        }
    }
}
