//! `(partner, index) -> index` maps for links, as one vector a partner that
//! the key indexes (a subject's or an account id's dense index).
//!
//! Owns: the layout of the two link maps (subject -> account, account ->
//! subject). Dense indexes are handed out in order from zero, so a vector
//! holds a map in 4 bytes a possible key where `hashbrown` took 13 a
//! bucket at most seven eighths full, and a lookup hashes nothing (a served
//! partner-workload node: 0.85 MiB less, bench/README.md "Memory and the 4×
//! ingest: the allocator, the log's page cache, the phone cache").
//! Never: holds anything but indexes, or answers for one partner with
//! another's entries.

use super::PartnerIndex;

/// No value: indexes are below the registry's and the account table's
/// lengths, which a `u32` index never reaches.
const NONE: u32 = u32::MAX;

#[derive(Default)]
pub(super) struct ByIndex {
    by_partner: Vec<Vec<u32>>,
    len: usize,
}

impl ByIndex {
    pub(super) fn get(&self, partner: PartnerIndex, key: u32) -> Option<u32> {
        let value = *self.by_partner.get(usize::from(partner))?.get(key as usize)?;
        (value != NONE).then_some(value)
    }

    /// Sets the value of `key` at `partner`; the value it replaced.
    pub(super) fn insert(&mut self, partner: PartnerIndex, key: u32, value: u32) -> Option<u32> {
        debug_assert_ne!(value, NONE, "a dense index never reaches u32::MAX");
        let partner = usize::from(partner);
        if self.by_partner.len() <= partner {
            self.by_partner.resize_with(partner + 1, Vec::new);
        }
        let values = &mut self.by_partner[partner];
        if values.len() <= key as usize {
            values.resize(key as usize + 1, NONE);
        }
        let previous = std::mem::replace(&mut values[key as usize], value);
        if previous == NONE {
            self.len += 1;
            None
        } else {
            Some(previous)
        }
    }

    pub(super) fn remove(&mut self, partner: PartnerIndex, key: u32) -> Option<u32> {
        let slot = self.by_partner.get_mut(usize::from(partner))?.get_mut(key as usize)?;
        let previous = std::mem::replace(slot, NONE);
        (previous != NONE).then(|| {
            self.len -= 1;
            previous
        })
    }

    /// Every entry as `(partner, key, value)`, partner by partner, keys in
    /// order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (PartnerIndex, u32, u32)> + '_ {
        self.by_partner.iter().enumerate().flat_map(|(partner, values)| {
            values
                .iter()
                .enumerate()
                .filter(|(_, &value)| value != NONE)
                .map(move |(key, &value)| (partner as PartnerIndex, key as u32, value))
        })
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.by_partner.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.by_partner.iter().map(|values| values.capacity() * 4).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::ByIndex;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u16, u32, u32),
        Remove(u16, u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u16..3, 0u32..300, 0u32..1000).prop_map(|(p, k, v)| Step::Insert(p, k, v)),
            (0u16..4, 0u32..400).prop_map(|(p, k)| Step::Remove(p, k)),
        ]
    }

    proptest! {
        /// Answers, replaced values and iteration as a `HashMap` keyed by
        /// `(partner, key)` given the same inserts and removals.
        #[test]
        fn answers_as_a_hash_map(steps in proptest::collection::vec(step(), 1..400)) {
            let mut map = ByIndex::default();
            let mut model: HashMap<(u16, u32), u32> = HashMap::new();
            for step in steps {
                match step {
                    Step::Insert(p, k, v) => prop_assert_eq!(map.insert(p, k, v), model.insert((p, k), v)),
                    Step::Remove(p, k) => prop_assert_eq!(map.remove(p, k), model.remove(&(p, k))),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for p in 0..4u16 {
                for k in 0..400u32 {
                    prop_assert_eq!(map.get(p, k), model.get(&(p, k)).copied());
                }
            }
            let mut entries: Vec<(u16, u32, u32)> = model.iter().map(|(&(p, k), &v)| (p, k, v)).collect();
            entries.sort_unstable();
            prop_assert_eq!(map.iter().collect::<Vec<_>>(), entries);
        }
    }
}
