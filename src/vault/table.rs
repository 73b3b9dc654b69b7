//! The vault's secrets in memory: one dense entry a person, found by
//! pseudonym or by record handle.
//!
//! Owns: the in-memory table behind [`super::Vault`] (the file is `mod.rs`'s),
//! and wiping an entry's bytes when it is removed.
//! Never: writes anything to disk, or keeps a removed secret's bytes in
//! its live buffer (the vacated slot is zeroed before the vector shrinks;
//! buffers given back when the vector grew are the allocator's, unwiped).
//!
//! Why: the vault holds a secret for every person ever disclosed, which in
//! a long-running deployment is most people. Two `HashMap`s (pseudonym to
//! secret, handle to pseudonym) took 49 + 33 bytes a bucket at a load of
//! 7/16 to 7/8: 94 to 188 bytes a person. One 64-byte entry and two tables
//! of `u32` indexes take 76 to 87 with the entries' vector full (as after
//! a start), up to 64 more just after it doubles (bench/README.md, "Memory
//! of a served node, continued").

use std::hash::BuildHasher;

use super::SubjectSecret;
use crate::contract::Pseudonym;

#[derive(Clone, Copy)]
struct Entry {
    pseudonym: Pseudonym,
    secret: SubjectSecret,
    /// The secret's record handle bytes (kept: computing one is a keyed
    /// hash, and a lookup by handle would compare several).
    handle: [u8; 16],
}

impl Entry {
    /// What a vacated slot is overwritten with.
    fn wiped() -> Entry {
        Entry { pseudonym: Pseudonym::from_stored([0; 16]), secret: SubjectSecret([0; 32]), handle: [0; 16] }
    }
}

#[derive(Default)]
pub(super) struct Secrets {
    entries: Vec<Entry>,
    by_pseudonym: hashbrown::HashTable<u32>,
    by_handle: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Secrets {
    fn pseudonym_hash(&self, pseudonym: &Pseudonym) -> u64 {
        self.hasher.hash_one(pseudonym)
    }

    fn handle_hash(&self, handle: &[u8; 16]) -> u64 {
        self.hasher.hash_one(handle)
    }

    fn index_of(&self, pseudonym: &Pseudonym) -> Option<usize> {
        let entries = &self.entries;
        self.by_pseudonym
            .find(self.pseudonym_hash(pseudonym), |&at| entries[at as usize].pseudonym == *pseudonym)
            .map(|&at| at as usize)
    }

    pub fn get(&self, pseudonym: &Pseudonym) -> Option<SubjectSecret> {
        self.index_of(pseudonym).map(|at| self.entries[at].secret)
    }

    pub fn contains(&self, pseudonym: &Pseudonym) -> bool {
        self.index_of(pseudonym).is_some()
    }

    /// The person whose secret has this record handle.
    pub fn owner(&self, handle: &[u8; 16]) -> Option<Pseudonym> {
        let entries = &self.entries;
        self.by_handle
            .find(self.handle_hash(handle), |&at| entries[at as usize].handle == *handle)
            .map(|&at| entries[at as usize].pseudonym)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Gives back the entries' spare room (after a start has read them all).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Pseudonym, &SubjectSecret)> {
        self.entries.iter().map(|entry| (&entry.pseudonym, &entry.secret))
    }

    /// Sets the person's secret; the one it replaced.
    pub fn insert(&mut self, pseudonym: Pseudonym, secret: SubjectSecret) -> Option<SubjectSecret> {
        let old = self.remove(&pseudonym);
        let at = u32::try_from(self.entries.len()).expect("fewer than 2^32 people hold a secret");
        let entry = Entry { pseudonym, secret, handle: secret.record_handle_bytes() };
        let (pseudonym_hash, handle_hash) = (self.pseudonym_hash(&pseudonym), self.handle_hash(&entry.handle));
        self.entries.push(entry);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_pseudonym
            .insert_unique(pseudonym_hash, at, |&other| hasher.hash_one(entries[other as usize].pseudonym));
        self.by_handle.insert_unique(handle_hash, at, |&other| hasher.hash_one(entries[other as usize].handle));
        old
    }

    /// Forgets the person's secret and returns it. The last entry takes its
    /// place, and the slot the vector gives up is wiped first.
    pub fn remove(&mut self, pseudonym: &Pseudonym) -> Option<SubjectSecret> {
        let at = self.index_of(pseudonym)?;
        let removed = self.entries[at];
        self.unindex(at, &removed);
        let last = self.entries.len() - 1;
        if at != last {
            let moved = self.entries[last];
            self.reindex(last, at, &moved);
            self.entries[at] = moved;
        }
        self.entries[last] = Entry::wiped();
        self.entries.pop();
        Some(removed.secret)
    }

    fn unindex(&mut self, at: usize, entry: &Entry) {
        let at = at as u32;
        if let Ok(found) = self.by_pseudonym.find_entry(self.hasher.hash_one(entry.pseudonym), |&i| i == at) {
            found.remove();
        }
        if let Ok(found) = self.by_handle.find_entry(self.hasher.hash_one(entry.handle), |&i| i == at) {
            found.remove();
        }
    }

    /// The entry at `from` moves to `to`: both tables point at its new place.
    fn reindex(&mut self, from: usize, to: usize, entry: &Entry) {
        let (from, to) = (from as u32, to as u32);
        if let Some(slot) = self.by_pseudonym.find_mut(self.hasher.hash_one(entry.pseudonym), |&i| i == from) {
            *slot = to;
        }
        if let Some(slot) = self.by_handle.find_mut(self.hasher.hash_one(entry.handle), |&i| i == from) {
            *slot = to;
        }
    }

    /// Heap bytes: the entries and both tables' buckets (a `u32` and a
    /// control byte each), allocator headers left out.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        let buckets = |capacity: usize| if capacity == 0 { 0 } else { (capacity * 8 / 7).next_power_of_two() };
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + (buckets(self.by_pseudonym.capacity()) + buckets(self.by_handle.capacity())) * 5
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn person(n: u8) -> Pseudonym {
        let mut bytes = [0u8; 16];
        bytes[0] = n;
        bytes[15] = 1;
        Pseudonym::from_stored(bytes)
    }

    fn secret(n: u8, version: u8) -> SubjectSecret {
        let mut bytes = [7u8; 32];
        bytes[0] = n;
        bytes[1] = version;
        SubjectSecret(bytes)
    }

    proptest! {
        /// Through any mix of inserts (new people and replaced secrets) and
        /// removals, the table answers as the two maps it replaced: by
        /// pseudonym, by record handle (an old handle names nobody), and
        /// in its count and contents.
        #[test]
        fn the_table_answers_as_two_maps(ops in proptest::collection::vec((0u8..40, 0u8..4, any::<bool>()), 0..400)) {
            let mut table = Secrets::default();
            let mut secrets: HashMap<Pseudonym, SubjectSecret> = HashMap::new();
            let mut owners: HashMap<[u8; 16], Pseudonym> = HashMap::new();
            let mut handles_seen = Vec::new();
            for (who, version, insert) in ops {
                let pseudonym = person(who);
                if insert {
                    let new = secret(who, version);
                    handles_seen.push(new.record_handle_bytes());
                    let old = secrets.insert(pseudonym, new);
                    if let Some(old) = old {
                        owners.remove(&old.record_handle_bytes());
                    }
                    owners.insert(new.record_handle_bytes(), pseudonym);
                    prop_assert!(table.insert(pseudonym, new) == old);
                } else {
                    let old = secrets.remove(&pseudonym);
                    if let Some(old) = old {
                        owners.remove(&old.record_handle_bytes());
                    }
                    prop_assert!(table.remove(&pseudonym) == old);
                }
                prop_assert_eq!(table.len(), secrets.len());
            }
            for who in 0..40 {
                prop_assert!(table.get(&person(who)) == secrets.get(&person(who)).copied());
                prop_assert_eq!(table.contains(&person(who)), secrets.contains_key(&person(who)));
            }
            for handle in &handles_seen {
                prop_assert!(table.owner(handle) == owners.get(handle).copied());
            }
            let held: HashMap<Pseudonym, SubjectSecret> = table.iter().map(|(p, s)| (*p, *s)).collect();
            prop_assert!(held == secrets);
        }
    }

    /// Under 90 bytes a person at 100,000 people once the entries' room
    /// is given back, where the two maps took 94 to 188 (49 + 33 bytes a
    /// bucket).
    #[test]
    fn a_person_costs_under_ninety_bytes() {
        let mut table = Secrets::default();
        let count = 100_000u32;
        for n in 0..count {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            let mut secret_bytes = [1u8; 32];
            secret_bytes[..4].copy_from_slice(&n.to_le_bytes());
            table.insert(Pseudonym::from_stored(bytes), SubjectSecret(secret_bytes));
        }
        table.shrink_to_fit();
        let per_person = table.heap_bytes() as f64 / f64::from(count);
        assert!(per_person < 90.0, "{per_person:.1} bytes a person");
        assert_eq!(table.len(), count as usize);
    }
}
