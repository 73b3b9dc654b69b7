//! The subject registry's index: pseudonym -> dense subject index.
//!
//! Owns: finding a subject's index by the hash of its pseudonym, adding and
//! removing one, and warming the memory a whole address book's lookups
//! will touch before they are made.
//! Never: holds a pseudonym (they live once, in the registry's records; the
//! caller compares and rehashes through them), or decides anything.
//!
//! Why not `hashbrown`: an address book of a hundred contacts is a hundred
//! lookups, each three dependent cache misses (the tag, the slot, the
//! record) once the registry outgrows the last-level cache. `hashbrown` does
//! not say where a key's bucket is, so those misses can only be waited out
//! one lookup at a time; here the caller asks for a book's tags and slots,
//! then its records, to be fetched together ([`SubjectIndex::prefetch`],
//! [`SubjectIndex::candidate`]), and the lookups then find them in the
//! cache. Linear probing over a byte of tag per slot (the slot's hash, so a
//! probe rarely reads a record that is not the one asked for), at most
//! seven eighths full, as `hashbrown` (so no more memory than it took:
//! with three quarters the partner workload's server held 7 bytes a
//! subject more); a removal shifts the entries after it back, so
//! there are no tombstones.

/// Smallest table once anything is in it.
const MIN_CAPACITY: usize = 16;

#[derive(Default)]
pub(super) struct SubjectIndex {
    /// 0: empty; else `0x80` and seven bits of the entry's hash.
    tags: Vec<u8>,
    /// The subject index at each occupied slot.
    slots: Vec<u32>,
    len: usize,
}

impl SubjectIndex {
    fn mask(&self) -> usize {
        self.tags.len().wrapping_sub(1)
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    fn tag(hash: u64) -> u8 {
        0x80 | (hash >> 57) as u8
    }

    /// The subject whose hash is `hash` and for which `is_it` holds.
    pub(super) fn find(&self, hash: u64, is_it: impl Fn(u32) -> bool) -> Option<u32> {
        self.probe(hash, is_it).map(|slot| self.slots[slot])
    }

    /// The first slot, from `hash`'s home on, whose tag is `hash`'s and
    /// whose subject `is_it`; `None` at the first empty slot.
    fn probe(&self, hash: u64, is_it: impl Fn(u32) -> bool) -> Option<usize> {
        if self.tags.is_empty() {
            return None;
        }
        let (mask, tag) = (self.mask(), Self::tag(hash));
        let mut slot = self.home(hash);
        loop {
            match self.tags[slot] {
                0 => return None,
                found if found == tag && is_it(self.slots[slot]) => return Some(slot),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Adds `subject` under `hash` (not checked for being there already).
    /// `hash_of` gives the hash of a subject already in the table, for
    /// growing it.
    pub(super) fn insert(&mut self, hash: u64, subject: u32, hash_of: impl Fn(u32) -> u64) {
        if (self.len + 1) * 8 > self.tags.len() * 7 {
            self.grow(&hash_of);
        }
        self.place(hash, subject);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, subject: u32) {
        let mask = self.mask();
        let mut slot = self.home(hash);
        while self.tags[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.tags[slot] = Self::tag(hash);
        self.slots[slot] = subject;
    }

    fn grow(&mut self, hash_of: &impl Fn(u32) -> u64) {
        let capacity = (self.tags.len() * 2).max(MIN_CAPACITY);
        let tags = std::mem::replace(&mut self.tags, vec![0; capacity]);
        let slots = std::mem::replace(&mut self.slots, vec![0; capacity]);
        for (tag, subject) in tags.into_iter().zip(slots) {
            if tag != 0 {
                self.place(hash_of(subject), subject);
            }
        }
    }

    /// Room for `more` entries without growing.
    pub(super) fn reserve(&mut self, more: usize, hash_of: impl Fn(u32) -> u64) {
        while (self.len + more) * 8 > self.tags.len() * 7 {
            self.grow(&hash_of);
        }
    }

    /// Removes `subject`, found under `hash`; the entries after it that
    /// would no longer be reached move back into the hole.
    pub(super) fn remove(&mut self, hash: u64, subject: u32, hash_of: impl Fn(u32) -> u64) {
        let Some(mut hole) = self.probe(hash, |found| found == subject) else { return };
        let mask = self.mask();
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            if self.tags[next] == 0 {
                break;
            }
            let home = self.home(hash_of(self.slots[next]));
            // The entry at `next` may move into the hole unless its home lies
            // (cyclically) after the hole, up to `next`.
            let stays = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !stays {
                self.tags[hole] = self.tags[next];
                self.slots[hole] = self.slots[next];
                hole = next;
            }
        }
        self.tags[hole] = 0;
        self.len -= 1;
    }

    /// Asks for the tag and slot a lookup of `hash` reads first to be
    /// brought into the cache, without waiting for them.
    pub(super) fn prefetch(&self, hash: u64) {
        if self.tags.is_empty() {
            return;
        }
        let home = self.home(hash);
        crate::prefetch::prefetch(&self.tags[home]);
        crate::prefetch::prefetch(&self.slots[home]);
    }

    /// The first subject a lookup of `hash` would compare (its tag matches):
    /// the record to fetch ahead. A hint only; [`SubjectIndex::find`] decides.
    pub(super) fn candidate(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.tags.capacity() + self.slots.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::SubjectIndex;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Keys with few distinct hashes, so probes collide, wrap and shift.
    fn hash_of(key: u32) -> u64 {
        u64::from(key % 37).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(key % 5)
    }

    proptest! {
        #[test]
        fn it_finds_what_a_map_finds_through_inserts_and_removals(
            steps in proptest::collection::vec((any::<bool>(), 0u32..300), 1..600)
        ) {
            let mut index = SubjectIndex::default();
            let mut known: HashMap<u32, ()> = HashMap::new();
            for (add, key) in steps {
                if add && !known.contains_key(&key) {
                    index.insert(hash_of(key), key, hash_of);
                    known.insert(key, ());
                } else if !add && known.remove(&key).is_some() {
                    index.remove(hash_of(key), key, hash_of);
                }
                prop_assert_eq!(index.len, known.len());
            }
            for key in 0..300u32 {
                let found = index.find(hash_of(key), |subject| subject == key);
                prop_assert_eq!(found, known.contains_key(&key).then_some(key), "key {}", key);
                if found.is_some() {
                    prop_assert!(index.candidate(hash_of(key)).is_some());
                }
            }
        }
    }

    #[test]
    fn it_stays_at_most_seven_eighths_full() {
        let mut index = SubjectIndex::default();
        for key in 0..10_000u32 {
            index.insert(hash_of(key), key, hash_of);
            assert!(index.len * 8 <= index.tags.len() * 7);
        }
        index.reserve(20_000, hash_of);
        assert!(index.tags.len() * 7 >= 30_000 * 8);
        assert!((0..10_000).all(|key| index.find(hash_of(key), |s| s == key) == Some(key)));
        assert_eq!(SubjectIndex::default().find(1, |_| true), None);
    }
}
