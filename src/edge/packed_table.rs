//! The phone cache's table of packed keys (one per cache shard, see
//! `phone.rs`): open addressing with linear probing over slots that hold
//! the key and its outcome inline.
//!
//! Owns: finding, adding and clearing entries, and telling the processor
//! where a key's slot is before it is asked ([`PackedTable::prefetch`]), so
//! an address book's lookups overlap their cache misses. `hashbrown` does
//! not say where a bucket is, so its lookups could not be fetched ahead: at
//! 400,000 people a 4× ingest spent about half of `resolve_book`'s time on
//! the one load of each entry's key (bench/README.md,
//! "Memory and the 4× ingest", "The phone cache's own table").
//! Never: removes one entry (a full shard is cleared whole), or holds
//! anything but packed keys and outcomes (no written number).

use std::hash::BuildHasher;

/// Smallest table once anything is in it.
const MIN_SLOTS: usize = 64;

#[derive(Clone, Copy)]
struct Slot<V> {
    /// The packed key as two words, so a slot needs only 8-byte alignment
    /// (a `u128` would pad it to 48 bytes).
    key: [u64; 2],
    value: Option<V>,
}

/// At most half full: a hit reads one slot and a miss about two and a half
/// on average, nearly always in the cache line fetched ahead.
pub(super) struct PackedTable<V> {
    slots: Vec<Slot<V>>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

fn split(key: u128) -> [u64; 2] {
    [key as u64, (key >> 64) as u64]
}

impl<V: Copy> PackedTable<V> {
    /// An empty table whose keys hash with `hasher`: every `hash` passed in
    /// must be `hasher.hash_one(key)`.
    pub(super) fn with_hasher(hasher: foldhash::fast::RandomState) -> PackedTable<V> {
        PackedTable { slots: Vec::new(), len: 0, hasher }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.slots.len() - 1)
    }

    /// Asks the processor for the slot a lookup of `hash` reads first.
    pub(super) fn prefetch(&self, hash: u64) {
        if !self.slots.is_empty() {
            crate::prefetch::prefetch(&self.slots[self.home(hash)]);
        }
    }

    /// The value of `key` (`hash` its hash), if present.
    pub(super) fn get(&self, key: u128, hash: u64) -> Option<V> {
        debug_assert_eq!(hash, self.hasher.hash_one(key));
        if self.slots.is_empty() {
            return None;
        }
        let key = split(key);
        let mask = self.slots.len() - 1;
        let mut index = self.home(hash);
        loop {
            let slot = &self.slots[index];
            match slot.value {
                None => return None,
                Some(value) if slot.key == key => return Some(value),
                Some(_) => index = (index + 1) & mask,
            }
        }
    }

    /// Sets the value of `key` (`hash` its hash).
    pub(super) fn insert(&mut self, key: u128, hash: u64, value: V) {
        debug_assert_eq!(hash, self.hasher.hash_one(key));
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let split_key = split(key);
        let mask = self.slots.len() - 1;
        let mut index = self.home(hash);
        loop {
            let slot = &mut self.slots[index];
            match slot.value {
                None => {
                    *slot = Slot { key: split_key, value: Some(value) };
                    self.len += 1;
                    return;
                }
                Some(_) if slot.key == split_key => {
                    slot.value = Some(value);
                    return;
                }
                Some(_) => index = (index + 1) & mask,
            }
        }
    }

    /// Empties the table and keeps its room.
    pub(super) fn clear(&mut self) {
        self.slots.fill(Slot { key: [0; 2], value: None });
        self.len = 0;
    }

    fn grow(&mut self) {
        let slots = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![Slot { key: [0; 2], value: None }; slots]);
        self.len = 0;
        for slot in old {
            if let Some(value) = slot.value {
                let key = u128::from(slot.key[0]) | u128::from(slot.key[1]) << 64;
                self.insert(key, self.hasher.hash_one(key), value);
            }
        }
    }
}

/// Bytes of one slot holding a `V`.
#[cfg(test)]
pub(super) const fn slot_bytes<V>() -> usize {
    std::mem::size_of::<Slot<V>>()
}

#[cfg(test)]
mod tests {
    use super::PackedTable;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u128, u32),
        Get(u128),
        Clear,
    }

    /// Keys from a small set (so lookups hit, entries are overwritten and
    /// probe chains collide) and from all of `u128`.
    fn key() -> impl Strategy<Value = u128> {
        prop_oneof![(0u128..200).prop_map(|k| k * 0x1_0000_0001), any::<u128>()]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (key(), any::<u32>()).prop_map(|(k, v)| Step::Insert(k, v)),
            8 => key().prop_map(Step::Get),
            1 => Just(Step::Clear),
        ]
    }

    proptest! {
        /// Every lookup answers as a `HashMap` given the same inserts and
        /// clears, and the table stays at most half full.
        #[test]
        fn answers_as_a_hash_map(steps in proptest::collection::vec(step(), 1..600)) {
            let hasher = foldhash::fast::RandomState::default();
            let mut table = PackedTable::with_hasher(hasher.clone());
            let mut model: HashMap<u128, u32> = HashMap::new();
            for step in steps {
                match step {
                    Step::Insert(key, value) => {
                        table.insert(key, hasher.hash_one(key), value);
                        model.insert(key, value);
                    }
                    Step::Get(key) => prop_assert_eq!(table.get(key, hasher.hash_one(key)), model.get(&key).copied()),
                    Step::Clear => {
                        table.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert!(table.len() * 2 <= table.slots.len().max(1));
            }
            for (key, value) in &model {
                prop_assert_eq!(table.get(*key, hasher.hash_one(*key)), Some(*value));
            }
        }
    }
}
