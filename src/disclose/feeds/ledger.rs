//! The feeds' live ledger: which adds a partner holds now (disclosed and
//! not retracted), by feed and identity key, and which of them involve a
//! given person.
//!
//! Owns: one dense entry a live add (its identity key's digest, feed and
//! cursor), a table of slot numbers by (feed, key), and a multimap from a
//! 64-bit key of each involved person's id to the add's slot.
//! Never: reads the feed files or decides a retraction. [`Ledger::involving`]
//! answers *candidates*: two ids may share a 64-bit key, so the caller
//! checks the add it reads from the file names the person (it reads that
//! add anyway, to copy it into the retraction).
//!
//! Why: the ledger lives as long as the adds do, so in a long-running
//! deployment it grows with everything disclosed and not retracted. Two
//! `HashMap`s (key to cursor, person digest to a `Vec` of keys) took 167
//! bytes a live add on the partner bench; this takes 32 bytes an add, 4 a
//! slot number and 12 a person involved, over the tables' load (at most
//! 7/8): 109 bytes an add there, just after the adds' vector doubled
//! (heaptrack, bench/README.md "What grows with disclosures").

use std::hash::BuildHasher;

use super::Digest;

/// A vacated entry's feed: its `cursor` then holds the next vacant slot.
const VACANT: u32 = u32::MAX;
/// The end of the vacant slots' chain.
const NO_SLOT: u64 = u64::MAX;

#[derive(Clone, Copy)]
struct Add {
    key: Digest,
    cursor: u64,
    feed: u32,
}

/// One person's link to one live add: 12 bytes (a `(u64, u32)` pads to 16).
#[derive(Clone, Copy)]
struct PersonRef {
    person: [u32; 2],
    slot: u32,
}

impl PersonRef {
    fn person(&self) -> u64 {
        u64::from(self.person[0]) | (u64::from(self.person[1]) << 32)
    }
}

/// A person linked to this many live adds moves out of `by_person` into
/// `popular`: all of one person's links share a hash, so in the table they
/// form one probe run, and each add or removal for a person in thousands of
/// adds (someone suggested to many askers) scanned it, which made those
/// adds quadratic (20,000 adds of one person: 16 s in a debug build).
const POPULAR: usize = 16;

/// A person's id as the ledger indexes it: the first 8 bytes of its BLAKE3
/// hash (so not attacker-shaped), hashed again with a per-process seed for
/// the table.
pub(super) fn person_key(person: &str) -> u64 {
    u64::from_le_bytes(crate::contract::hash_prefix(person))
}

#[derive(Default)]
pub(super) struct Ledger {
    adds: Vec<Add>,
    /// First vacant slot of `adds` (a chain through their cursors).
    vacant: Option<u32>,
    /// Slots of the live adds, by (feed, key): as many as there are.
    by_key: hashbrown::HashTable<u32>,
    by_person: hashbrown::HashTable<PersonRef>,
    /// The slots of people linked to [`POPULAR`] adds or more, by person
    /// key (they have no links left in `by_person`).
    popular: hashbrown::HashMap<u64, hashbrown::HashSet<u32>>,
    /// [`POPULAR`] unless a test sets it (0).
    popular_at: usize,
    hasher: foldhash::fast::RandomState,
}

impl Ledger {
    fn key_hash(&self, feed: u32, key: &Digest) -> u64 {
        self.hasher.hash_one((feed, key))
    }

    fn person_hash(&self, person: u64) -> u64 {
        self.hasher.hash_one(person)
    }

    fn slot_of(&self, feed: u32, key: &Digest) -> Option<u32> {
        let adds = &self.adds;
        self.by_key
            .find(self.key_hash(feed, key), |&slot| {
                let add = &adds[slot as usize];
                add.feed == feed && add.key == *key
            })
            .copied()
    }

    /// Live adds.
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The cursor of the live add `key` in feed `feed`, if it is live.
    pub(super) fn cursor(&self, feed: u32, key: &Digest) -> Option<u64> {
        self.slot_of(feed, key).map(|slot| self.adds[slot as usize].cursor)
    }

    /// Records a live add at `cursor` involving `people`. An add already
    /// live under that key takes the new cursor and any person it did not
    /// name yet.
    pub(super) fn add(&mut self, feed: u32, key: Digest, cursor: u64, people: &[String]) {
        let slot = match self.slot_of(feed, &key) {
            Some(slot) => {
                self.adds[slot as usize].cursor = cursor;
                slot
            }
            None => {
                let add = Add { key, cursor, feed };
                let slot = match self.vacant {
                    Some(slot) => {
                        let next = self.adds[slot as usize].cursor;
                        self.vacant = (next != NO_SLOT).then_some(next as u32);
                        self.adds[slot as usize] = add;
                        slot
                    }
                    None => {
                        self.adds.push(add);
                        (self.adds.len() - 1) as u32
                    }
                };
                let hash = self.key_hash(feed, &key);
                let (adds, hasher) = (&self.adds, &self.hasher);
                self.by_key.insert_unique(hash, slot, |&at| {
                    let add = &adds[at as usize];
                    hasher.hash_one((add.feed, &add.key))
                });
                slot
            }
        };
        for person in people {
            self.link(person_key(person), slot);
        }
    }

    fn popular_at(&self) -> usize {
        if self.popular_at == 0 {
            POPULAR
        } else {
            self.popular_at
        }
    }

    /// Links `person` to the add in `slot` (once).
    fn link(&mut self, person: u64, slot: u32) {
        if let Some(slots) = self.popular.get_mut(&person) {
            slots.insert(slot);
            return;
        }
        let hash = self.person_hash(person);
        let mut links = 0;
        for link in self.by_person.iter_hash(hash).filter(|link| link.person() == person) {
            if link.slot == slot {
                return;
            }
            links += 1;
        }
        if links + 1 >= self.popular_at() {
            let mut slots: hashbrown::HashSet<u32> = hashbrown::HashSet::with_capacity(links + 1);
            while let Ok(entry) = self.by_person.find_entry(hash, |link| link.person() == person) {
                slots.insert(entry.get().slot);
                entry.remove();
            }
            slots.insert(slot);
            self.popular.insert(person, slots);
            return;
        }
        let link = PersonRef { person: [person as u32, (person >> 32) as u32], slot };
        let hasher = &self.hasher;
        self.by_person.insert_unique(hash, link, |link| hasher.hash_one(link.person()));
    }

    /// Unlinks `person` from the add in `slot`.
    fn unlink(&mut self, person: u64, slot: u32) {
        if let Some(slots) = self.popular.get_mut(&person) {
            slots.remove(&slot);
            if slots.is_empty() {
                self.popular.remove(&person);
            }
            return;
        }
        let hash = self.person_hash(person);
        if let Ok(entry) = self.by_person.find_entry(hash, |link| link.person() == person && link.slot == slot) {
            entry.remove();
        }
    }

    /// Removes the live add `key` of feed `feed` and the links of `people`
    /// (the people its retraction names: those of the add) to it. Returns
    /// whether it was live.
    pub(super) fn remove(&mut self, feed: u32, key: &Digest, people: &[String]) -> bool {
        let Some(slot) = self.slot_of(feed, key) else { return false };
        let hash = self.key_hash(feed, key);
        if let Ok(entry) = self.by_key.find_entry(hash, |&at| at == slot) {
            entry.remove();
        }
        for person in people {
            self.unlink(person_key(person), slot);
        }
        let next = self.vacant.map_or(NO_SLOT, u64::from);
        self.adds[slot as usize] = Add { key: [0; 16], cursor: next, feed: VACANT };
        self.vacant = Some(slot);
        true
    }

    /// (feed, cursor) of every live add linked to a person whose id has
    /// the same 64-bit key as `person`: a superset of the adds involving
    /// them, which the caller narrows by reading each add. Sorted, so that
    /// retractions are written in cursor order on every node (the table's
    /// order depends on a per-process seed).
    pub(super) fn involving(&self, person: &str) -> Vec<(u32, u64)> {
        let person = person_key(person);
        let linked = self.by_person.iter_hash(self.person_hash(person)).filter(|link| link.person() == person);
        let popular = self.popular.get(&person).into_iter().flatten().copied();
        let mut found: Vec<(u32, u64)> = linked
            .map(|link| link.slot)
            .chain(popular)
            .filter_map(|slot| {
                let add = self.adds.get(slot as usize)?;
                (add.feed != VACANT).then_some((add.feed, add.cursor))
            })
            .collect();
        found.sort_unstable();
        found
    }

    /// (feed, cursor) of every live add, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.adds.iter().filter(|add| add.feed != VACANT).map(|add| (add.feed, add.cursor))
    }

    pub(super) fn clear(&mut self) {
        *self = Ledger { hasher: self.hasher.clone(), popular_at: self.popular_at, ..Ledger::default() };
    }

    /// Heap bytes held, by capacity.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.adds.capacity() * std::mem::size_of::<Add>()
            + self.by_key.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.by_person.capacity() * (std::mem::size_of::<PersonRef>() + 1)
            + self.popular.values().map(|slots| slots.capacity() * 5 + 48).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;

    fn key(n: u8) -> Digest {
        super::super::digest(&format!("key-{n}"))
    }

    /// The ledger as it was: key -> cursor, person -> keys.
    #[derive(Default)]
    struct Model {
        live: HashMap<(u32, Digest), u64>,
        people: HashMap<(u32, Digest), Vec<String>>,
    }

    #[derive(Clone, Debug)]
    enum Step {
        Add { feed: u32, key: u8, cursor: u64, people: Vec<u8> },
        Remove { feed: u32, key: u8 },
        Clear,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..3u32, 0..40u8, 0..10_000u64, proptest::collection::vec(0..12u8, 0..4))
                .prop_map(|(feed, key, cursor, people)| Step::Add { feed, key, cursor, people }),
            4 => (0..3u32, 0..40u8).prop_map(|(feed, key)| Step::Remove { feed, key }),
            1 => Just(Step::Clear),
        ]
    }

    fn person(n: u8) -> String {
        format!("r_person{n}")
    }

    proptest! {
        /// Through adds, removals (each naming the people of its add, as a
        /// retraction copies them) and clears, the ledger answers as the
        /// two maps it replaced: which adds are live and at what cursor,
        /// every live add, and the adds involving each person.
        #[test]
        fn the_ledger_answers_as_the_maps_it_replaced(
            steps in proptest::collection::vec(step(), 1..120),
            popular_at in 1usize..20,
        ) {
            // People move to the popular sets after 1 to 19 links.
            let mut ledger = Ledger { popular_at, ..Ledger::default() };
            let mut model = Model::default();
            for step in steps {
                match step {
                    Step::Add { feed, key: k, cursor, people } => {
                        let people: Vec<String> = people.into_iter().map(person).collect();
                        ledger.add(feed, key(k), cursor, &people);
                        model.live.insert((feed, key(k)), cursor);
                        let named = model.people.entry((feed, key(k))).or_default();
                        for p in people {
                            if !named.contains(&p) {
                                named.push(p);
                            }
                        }
                    }
                    Step::Remove { feed, key: k } => {
                        let people = model.people.remove(&(feed, key(k))).unwrap_or_default();
                        let was = model.live.remove(&(feed, key(k))).is_some();
                        prop_assert_eq!(ledger.remove(feed, &key(k), &people), was);
                    }
                    Step::Clear => {
                        ledger.clear();
                        model = Model::default();
                    }
                }
                prop_assert_eq!(ledger.len(), model.live.len());
                for feed in 0..3 {
                    for k in 0..40 {
                        prop_assert_eq!(ledger.cursor(feed, &key(k)), model.live.get(&(feed, key(k))).copied());
                    }
                }
                let all: BTreeSet<(u32, u64)> = ledger.iter().collect();
                let expected: BTreeSet<(u32, u64)> = model.live.iter().map(|(&(feed, _), &cursor)| (feed, cursor)).collect();
                prop_assert_eq!(all, expected);
                for p in 0..12 {
                    let got: BTreeSet<(u32, u64)> = ledger.involving(&person(p)).into_iter().collect();
                    let expected: BTreeSet<(u32, u64)> = model
                        .people
                        .iter()
                        .filter(|(_, named)| named.contains(&person(p)))
                        .map(|(live_key, _)| (live_key.0, model.live[live_key]))
                        .collect();
                    prop_assert_eq!(got, expected, "adds involving person {}", p);
                }
            }
        }
    }

    /// 100,000 live adds of two people each (most people in one add, as
    /// suggestions name them) cost under 100 bytes an add, counted by
    /// capacity; the maps took about 180.
    #[test]
    fn a_live_add_of_two_people_costs_under_a_hundred_bytes() {
        let mut ledger = Ledger::default();
        const ADDS: usize = 100_000;
        for n in 0..ADDS {
            let key = super::super::digest(&format!("add-{n}"));
            let people = [format!("r_asker{}", n / 20), format!("r_suggested{n}")];
            ledger.add(0, key, n as u64, &people);
        }
        assert_eq!(ledger.len(), ADDS);
        let per_add = ledger.heap_bytes() as f64 / ADDS as f64;
        assert!(per_add < 100.0, "{per_add:.1} bytes a live add");
    }

    /// A removed add's slot is taken by the next one, so a ledger whose adds
    /// come and go does not grow.
    #[test]
    fn vacated_slots_are_reused() {
        let mut ledger = Ledger::default();
        let people = [String::from("r_a"), String::from("r_b")];
        for round in 0..50u64 {
            for n in 0..100u64 {
                ledger.add(1, super::super::digest(&format!("{round}-{n}")), round * 100 + n, &people);
            }
            for n in 0..100u64 {
                assert!(ledger.remove(1, &super::super::digest(&format!("{round}-{n}")), &people));
            }
        }
        assert_eq!(ledger.len(), 0);
        assert_eq!(ledger.adds.len(), 100, "slots reused, not appended");
        assert!(ledger.involving("r_a").is_empty());
    }
}
