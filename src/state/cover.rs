//! Which people's usage and audience memberships a node holds:
//! everyone's (embedded mode, and a cluster node before its first lease
//! round), or only the people of the partitions it covers (a cluster node:
//! the partitions whose lease it holds).
//!
//! Owns: the set and the test of one person against it, and its bytes in
//! a snapshot.
//! Never: decides which partitions a node covers (that is
//! `cluster::leases`, through the writer), or reads anything but a
//! pseudonym's bytes.

use crate::codec::{DecodeError, Reader, Writer};
use crate::contract::Pseudonym;

/// The people a node's usage holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cover {
    /// Everyone.
    #[default]
    All,
    /// The people of these partitions of a cluster of `count`.
    Partitions {
        count: u16,
        /// Sorted, each below `count`.
        held: Vec<u16>,
    },
}

impl Cover {
    /// The partitions `held` (any order, repeats allowed; those not below
    /// `count` are left out) of a cluster of `count`.
    pub fn partitions(count: u16, held: &[u16]) -> Cover {
        let mut held: Vec<u16> = held.iter().copied().filter(|p| *p < count).collect();
        held.sort_unstable();
        held.dedup();
        Cover::Partitions { count: count.max(1), held }
    }

    /// Whether `person`'s usage is held under this cover.
    pub fn covers(&self, person: &Pseudonym) -> bool {
        match self {
            Cover::All => true,
            Cover::Partitions { count, held } => held.binary_search(&person.partition(*count)).is_ok(),
        }
    }

    /// Whether every person is covered (all partitions, or everyone).
    pub fn is_whole(&self) -> bool {
        match self {
            Cover::All => true,
            Cover::Partitions { count, held } => held.len() == usize::from(*count),
        }
    }

    /// The partitions covered of a cluster of `count` (every one for [`Cover::All`]).
    pub fn held_of(&self, count: u16) -> Vec<u16> {
        match self {
            Cover::All => (0..count).collect(),
            Cover::Partitions { count: own, held } if *own == count => held.clone(),
            // Another partition count: only a whole cover says anything.
            Cover::Partitions { .. } if self.is_whole() => (0..count).collect(),
            Cover::Partitions { .. } => Vec::new(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Writer) {
        match self {
            Cover::All => out.u32(0),
            Cover::Partitions { count, held } => {
                out.u32(u32::from(*count));
                out.u32(held.len() as u32);
                for partition in held {
                    out.u32(u32::from(*partition));
                }
            }
        }
    }

    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Cover, DecodeError> {
        let count = input.u32()?;
        if count == 0 {
            return Ok(Cover::All);
        }
        let count = u16::try_from(count).map_err(|_| DecodeError::Truncated)?;
        let mut held = Vec::new();
        for _ in 0..input.u32()? {
            let partition = u16::try_from(input.u32()?).map_err(|_| DecodeError::Truncated)?;
            if partition >= count {
                return Err(DecodeError::Truncated);
            }
            held.push(partition);
        }
        Ok(Cover::partitions(count, &held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(n: u64) -> Pseudonym {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        Pseudonym::from_stored(bytes)
    }

    #[test]
    fn disjoint_covers_hold_each_person_once() {
        let (a, b) = (Cover::partitions(7, &[0, 2, 4, 6]), Cover::partitions(7, &[1, 3, 5]));
        for n in 0..1_000 {
            let person = person(n * 7919);
            assert!(a.covers(&person) ^ b.covers(&person), "person {n} held by exactly one cover");
            assert!(Cover::All.covers(&person));
        }
        assert!(!a.is_whole() && Cover::partitions(3, &[2, 0, 1, 1, 9]).is_whole());
    }

    #[test]
    fn a_cover_reads_back_from_its_bytes() {
        for cover in [Cover::All, Cover::partitions(64, &[63, 1, 5]), Cover::partitions(1, &[])] {
            let mut out = Writer::default();
            cover.encode(&mut out);
            assert_eq!(Cover::decode(&mut Reader::new(&out.bytes)).expect("decodes"), cover);
        }
        let mut out = Writer::default();
        Cover::Partitions { count: 4, held: vec![4] }.encode(&mut out);
        assert!(Cover::decode(&mut Reader::new(&out.bytes)).is_err(), "a partition past the count is refused");
    }
}

/// Usage split over covers: nodes covering disjoint partitions hold
/// between them exactly what one state holding everyone holds.
#[cfg(test)]
mod split_tests {
    use super::Cover;
    use crate::contract::{Event, EventBody, MessageKind, Platform, Pseudonym, Recipient, Record, Region};
    use crate::processors::usage::Grouping;
    use crate::state::State;
    use proptest::prelude::*;

    const DAY_MS: i64 = 86_400_000;

    fn person(n: u8) -> Pseudonym {
        Pseudonym::from_stored(*blake3::hash(&[n]).as_bytes().first_chunk::<16>().expect("16 bytes"))
    }

    fn event(who: u8, day: i64, what: u8) -> Event {
        let body = match what % 5 {
            0 => EventBody::Session { device: "d".into() },
            1 => EventBody::Register {
                device: "d".into(),
                platform: Platform::ALL[usize::from(who) % Platform::ALL.len()],
            },
            2 => EventBody::Message {
                to: Recipient::Subject(person(who.wrapping_add(1))),
                kind: MessageKind::ALL[usize::from(what) % MessageKind::ALL.len()],
                link_domain: None,
            },
            3 => EventBody::BusinessMessage {
                business: format!("shop{}", what % 3),
                direction: crate::contract::Direction::Out,
            },
            _ => EventBody::DeleteAccount,
        };
        let region = if who.is_multiple_of(2) { Region(*b"IN") } else { Region(*b"BR") };
        Event { ts_ms: day * DAY_MS + i64::from(what), subject: person(who), region, body }
    }

    /// What the parts add up to: active (daily, then monthly), by country,
    /// messages, the person's days and businesses, and each shop's audience
    /// over 1 and 10 days (as pseudonyms: dense indexes are each state's).
    type Sums = (Vec<u64>, Vec<u64>, Vec<u64>, Vec<i32>, Vec<(String, usize)>, Vec<Vec<Pseudonym>>);

    fn sums(states: &[&State], subject: &Pseudonym) -> Sums {
        let mut active = vec![0; 10];
        let mut monthly = vec![0; 10];
        let mut by_country = vec![0; 2];
        let mut messages = vec![0; 10];
        let mut days = Vec::new();
        let mut businesses = Vec::new();
        let mut audiences = vec![Vec::new(); 6];
        for state in states {
            for (slot, audience) in audiences.iter_mut().enumerate() {
                let members = state.audiences.members(&format!("shop{}", slot % 3), 9, if slot < 3 { 1 } else { 10 });
                audience.extend(members.iter().filter_map(|index| state.subjects.get(index).map(|r| r.pseudonym)));
            }
            for (slot, point) in state.usage.active_series(0, 9, 1, Some(Grouping::Country)).iter().enumerate() {
                active[slot] += point.active;
                let groups = point.groups.clone().unwrap_or_default();
                by_country[0] += groups.get("IN").copied().unwrap_or(0);
                by_country[1] += groups.get("BR").copied().unwrap_or(0);
            }
            for (slot, point) in state.usage.active_series(0, 9, 30, None).iter().enumerate() {
                monthly[slot] += point.active;
            }
            for (slot, (_, counts)) in state.usage.message_series(0, 9).iter().enumerate() {
                messages[slot] += counts.iter().sum::<u64>();
            }
            if let Some(index) = state.subjects.lookup(subject).filter(|_| state.cover.covers(subject)) {
                days.extend(state.usage.active_days_of(index));
                businesses.extend(state.audiences.businesses_of(index).into_iter().map(|(b, d)| (b.to_string(), d)));
            }
        }
        active.extend(monthly);
        for audience in &mut audiences {
            audience.sort_unstable_by_key(|p| *p.as_bytes());
        }
        (active, by_country, messages, days, businesses, audiences)
    }

    /// A covered snapshot written before audiences followed the cover held
    /// everyone's members: read back, it keeps the covered people's only
    /// (the others' are their covering node's to answer for).
    #[test]
    fn an_older_covered_snapshot_keeps_the_covered_members_only() {
        let cover = Cover::partitions(7, &[0, 3]);
        let covered = (0..24).find(|&n| cover.covers(&person(n))).expect("someone covered");
        let other = (0..24).find(|&n| !cover.covers(&person(n))).expect("someone not");
        let mut state = State::covering(cover);
        for (seq, who) in [covered, other].into_iter().enumerate() {
            state.apply(seq as u64, &Record::Event(event(who, 1, 0)));
            let index = state.subjects.lookup(&person(who)).expect("known");
            state.audiences.record("shop", index, DAY_MS);
        }
        assert_eq!(state.audiences.members("shop", 1, 1).len(), 2, "as the older proviso held them");
        let mut bytes = crate::state::encode_snapshot(&state).expect("encodes");
        assert_eq!(&bytes[..8], b"PRVSNAPA", "a cover's snapshot names its version");
        // As version 9 wrote it (the crc covers the body only).
        bytes[..8].copy_from_slice(b"PRVSNAP9");
        let read = crate::state::decode_snapshot(&bytes).expect("decodes");
        let members: Vec<u32> = read.audiences.members("shop", 1, 1).iter().collect();
        assert_eq!(members, vec![read.subjects.lookup(&person(covered)).expect("known")]);
    }

    /// A record of any kind that names people (each kind the whole apply
    /// interns someone for, erasures and partner claims among them).
    fn any_record(who: u8, other: u8, day: i64, what: u8) -> Record {
        use crate::contract::{Control, ControlBody, DecisionAction, LinkOrigin, LinkState, Purpose};
        let ts_ms = day * DAY_MS + i64::from(what);
        let body = match what % 12 {
            0..=4 => return Record::Event(event(who, day, what)),
            5 => EventBody::Contacts { contacts: (0..other % 5).map(|k| person(other.wrapping_add(k * 7))).collect() },
            6 => EventBody::Report { target: person(other), reason: "spam".into() },
            7 => EventBody::Block { target: person(other) },
            8 => EventBody::Consent { purpose: Purpose::Ads, granted: other.is_multiple_of(2) },
            9 => EventBody::PartnerAccount {
                partner: "net".into(),
                partner_id: format!("a{other}"),
                state: LinkState::Linked,
                origin: if other.is_multiple_of(2) { LinkOrigin::Service } else { LinkOrigin::Partner },
            },
            10 => {
                return Record::Control(Control {
                    ts_ms,
                    body: ControlBody::Decision {
                        subject: person(other),
                        action: DecisionAction::Ban,
                        note: String::new(),
                    },
                })
            }
            _ => EventBody::Message { to: Recipient::Group("g".into()), kind: MessageKind::Text, link_domain: None },
        };
        Record::Event(Event { ts_ms, subject: person(who), region: Region(*b"IN"), body })
    }

    /// Each index of the registry: who, from where, first seen when, and
    /// whether they acted.
    fn registry(state: &State) -> Vec<Option<(Pseudonym, Region, i64, bool)>> {
        (0..state.subjects.len() as u32)
            .map(|index| state.subjects.get(index).map(|r| (r.pseudonym, r.region, r.first_seen_ms, r.has_acted())))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// A scratch state for a cover (`State::for_cover`, what a node
        /// replays when its partitions change) ends with the registry,
        /// usage and audiences a whole state replayed with that cover ends
        /// with: the same people at the same indexes, over records of every
        /// kind that names someone.
        #[test]
        fn a_replay_for_a_cover_holds_what_a_whole_replay_holds(
            records in proptest::collection::vec((0u8..40, 0u8..40, 0i64..10, any::<u8>()), 1..300)
        ) {
            let cover = Cover::partitions(7, &[1, 4, 6]);
            let mut whole = State::covering(cover.clone());
            let mut scratch = State::for_cover(cover);
            for (seq, (who, other, day, what)) in records.iter().enumerate() {
                let record = any_record(*who, *other, *day, *what);
                whole.apply(seq as u64, &record);
                scratch.apply(seq as u64, &record);
            }
            prop_assert_eq!(registry(&scratch), registry(&whole));
            prop_assert_eq!(scratch.subjects.len(), whole.subjects.len());
            for n in 0..40 {
                prop_assert_eq!(sums(&[&scratch], &person(n)), sums(&[&whole], &person(n)), "person {}", n);
            }
        }

        /// Random events of 24 people over 10 days, applied to one state
        /// holding everyone and to states covering 3 disjoint shares of 7
        /// partitions (one of them read back from its snapshot): the shares
        /// add up to the whole for every series, split, person and audience.
        #[test]
        fn disjoint_covers_add_up_to_the_whole(
            events in proptest::collection::vec((0u8..24, 0i64..10, any::<u8>()), 1..200)
        ) {
            let covers = [Cover::partitions(7, &[0, 3]), Cover::partitions(7, &[1, 4, 6]), Cover::partitions(7, &[2, 5])];
            let mut whole = State::default();
            let mut shares: Vec<State> = covers.iter().map(|cover| State::covering(cover.clone())).collect();
            for (seq, (who, day, what)) in events.iter().enumerate() {
                let record = Record::Event(event(*who, *day, *what));
                whole.apply(seq as u64, &record);
                for share in &mut shares {
                    share.apply(seq as u64, &record);
                }
            }
            let bytes = crate::state::encode_snapshot(&shares[1]).expect("encodes");
            shares[1] = crate::state::decode_snapshot(&bytes).expect("decodes");
            prop_assert_eq!(&shares[1].cover, &covers[1]);
            let parts: Vec<&State> = shares.iter().collect();
            for n in 0..24 {
                prop_assert_eq!(sums(&parts, &person(n)), sums(&[&whole], &person(n)), "person {}", n);
            }
        }
    }
}
