//! The audit log's index by subject: which records (by byte offset) name a
//! handle.
//!
//! Owns: (key, offset) pairs, a 32-bit key of each handle named by each
//! record, sorted but for the latest appends, which wait in a hash table.
//! Never: holds a handle, or decides that a record names one: two handles
//! may share a key, so the reader checks each record it reads (a collision
//! costs one record read and skipped).
//!
//! Why: the audit log keeps every disclosure for good, so its index grows
//! with the whole history. A `HashMap` from a 64-bit key to a `Vec` of
//! offsets took 24 bytes a (record, handle) pair on the partner bench (a
//! bucket and a small allocation for each handle, most named by a record or
//! two; heaptrack, bench/README.md "What grows with disclosures"). A pair is
//! 12 bytes here.

/// One handle named by one record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Pair {
    key: u32,
    /// The record's byte offset, as two halves (a `u64` would pad the
    /// pair to 16 bytes).
    offset: [u32; 2],
}

impl Pair {
    fn new(key: u32, offset: u64) -> Pair {
        Pair { key, offset: [(offset >> 32) as u32, offset as u32] }
    }

    fn offset(&self) -> u64 {
        (u64::from(self.offset[0]) << 32) | u64::from(self.offset[1])
    }
}

/// Appends kept in a hash table before they are merged into the sorted
/// pairs: at least this many, or an eighth of the sorted ones (so a merge,
/// which moves them all, costs a few moves a pair over time, and a lookup
/// stays a binary search and a probe however large the index).
const RECENT_AT_LEAST: usize = 4096;

/// A handle's key in the index: the first 4 bytes of its BLAKE3 hash.
pub(super) fn key_of(subject: &str) -> u32 {
    u32::from_le_bytes(crate::contract::hash_prefix(subject))
}

/// The recent table's hash of a key: keys are already uniform (a BLAKE3
/// prefix); the multiplication spreads them over the 64 bits the table
/// reads (its high bits tag a slot, its low bits place it).
fn recent_hash(key: u32) -> u64 {
    u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A key with this many pairs among the recent appends moves to
/// `popular`: all of a key's pairs share a hash, so in the table they form
/// one probe run, and each append naming a handle already named by
/// thousands of recent records scanned it (200,000 records naming one
/// handle: 110 s in a debug build, against 1.9 s for distinct handles).
const POPULAR: usize = 16;

#[derive(Default)]
pub(super) struct BySubject {
    /// Sorted by key, then offset.
    sorted: Vec<Pair>,
    /// The latest appends, by key (every offset is above those in
    /// `sorted`).
    recent: hashbrown::HashTable<Pair>,
    /// The recent offsets, ascending, of keys with [`POPULAR`] recent pairs
    /// or more (none of them left in `recent`).
    popular: hashbrown::HashMap<u32, Vec<u64>>,
    /// Pairs in `popular`.
    popular_pairs: usize,
}

impl BySubject {
    /// Indexes the record at `offset` under each handle it names (once
    /// however often it names it). Records come in offset order.
    pub(super) fn add<'a>(&mut self, offset: u64, subjects: impl IntoIterator<Item = &'a String>) {
        // All of a record's pairs go in before a merge, so a handle it
        // names twice is found in the recent table the second time.
        for subject in subjects {
            self.insert(Pair::new(key_of(subject), offset));
        }
        self.merge_if_due();
    }

    /// Indexes the record at `offset` under `key`: a pair not held yet
    /// (offsets come in ascending order).
    pub(super) fn add_key(&mut self, offset: u64, key: u32) {
        self.insert(Pair::new(key, offset));
        self.merge_if_due();
    }

    fn insert(&mut self, pair: Pair) {
        let offset = pair.offset();
        if let Some(offsets) = self.popular.get_mut(&pair.key) {
            if offsets.last() != Some(&offset) {
                offsets.push(offset);
                self.popular_pairs += 1;
            }
            return;
        }
        let hash = recent_hash(pair.key);
        let mut pairs = 0;
        for known in self.recent.iter_hash(hash).filter(|known| known.key == pair.key) {
            if *known == pair {
                return;
            }
            pairs += 1;
        }
        if pairs + 1 >= POPULAR {
            let mut offsets = Vec::with_capacity(pairs + 1);
            while let Ok(entry) = self.recent.find_entry(hash, |known| known.key == pair.key) {
                offsets.push(entry.get().offset());
                entry.remove();
            }
            offsets.push(offset);
            offsets.sort_unstable();
            self.popular_pairs += offsets.len();
            self.popular.insert(pair.key, offsets);
            return;
        }
        self.recent.insert_unique(hash, pair, |known| recent_hash(known.key));
    }

    fn merge_if_due(&mut self) {
        if self.recent.len() + self.popular_pairs >= RECENT_AT_LEAST.max(self.sorted.len() / 8) {
            self.merge();
        }
    }

    fn merge(&mut self) {
        let mut run: Vec<Pair> = self.recent.drain().collect();
        for (key, offsets) in self.popular.drain() {
            run.extend(offsets.into_iter().map(|offset| Pair::new(key, offset)));
        }
        self.popular_pairs = 0;
        run.sort_unstable();
        // Exact: the pairs are kept for good, and doubling would leave up
        // to half the vector unused.
        self.sorted.reserve_exact(run.len());
        self.sorted.append(&mut run);
        // Two sorted runs: the standard stable sort finds them and merges
        // them in one pass.
        self.sorted.sort();
        self.recent.shrink_to(RECENT_AT_LEAST, |known| recent_hash(known.key));
    }

    /// The pairs held.
    pub(super) fn len(&self) -> usize {
        self.sorted.len() + self.recent.len() + self.popular_pairs
    }

    /// Every pair as (key, offset), sorted, leaving the index empty.
    pub(super) fn take_sorted(&mut self) -> Vec<(u32, u64)> {
        self.merge();
        let pairs = std::mem::take(&mut self.sorted).into_iter().map(|pair| (pair.key, pair.offset())).collect();
        self.recent = hashbrown::HashTable::new();
        pairs
    }

    /// Offsets, ascending, of the records naming a handle with `key`.
    pub(super) fn offsets(&self, key: u32) -> Vec<u64> {
        let from = self.sorted.partition_point(|pair| pair.key < key);
        let to = from + self.sorted[from..].partition_point(|pair| pair.key == key);
        let mut recent: Vec<u64> =
            self.recent.iter_hash(recent_hash(key)).filter(|pair| pair.key == key).map(Pair::offset).collect();
        recent.extend(self.popular.get(&key).into_iter().flatten());
        recent.sort_unstable();
        self.sorted[from..to].iter().map(Pair::offset).chain(recent).collect()
    }

    /// Heap bytes held, by capacity.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * std::mem::size_of::<Pair>()
            + self.recent.capacity() * (std::mem::size_of::<Pair>() + 1)
            + self.popular.values().map(|offsets| offsets.capacity() * 8 + 40).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Over records naming random handles (some twice), with enough of
        /// them to merge several times, every handle's offsets are those of
        /// the records naming it, ascending and once each, as the map of
        /// vectors gave them; a handle never named gets none.
        #[test]
        fn offsets_are_those_of_the_records_naming_the_handle(
            records in proptest::collection::vec(proptest::collection::vec(0..400u32, 0..5), 1..12_000),
        ) {
            let mut index = BySubject::default();
            let mut model: HashMap<String, Vec<u64>> = HashMap::new();
            let mut offset = 0u64;
            for named in &records {
                let subjects: Vec<String> = named.iter().map(|n| format!("r_{n}")).collect();
                index.add(offset, &subjects);
                for subject in &subjects {
                    let offsets = model.entry(subject.clone()).or_default();
                    if offsets.last() != Some(&offset) {
                        offsets.push(offset);
                    }
                }
                offset += 100 + u64::from(named.len() as u32) * 37 + (1 << 33);
            }
            for n in 0..400u32 {
                let subject = format!("r_{n}");
                let want = model.get(&subject).cloned().unwrap_or_default();
                let got = index.offsets(key_of(&subject));
                // A handle sharing a 32-bit key may add records; none here
                // share one (checked), so the answer is exact.
                prop_assert_eq!(got, want, "handle {}", n);
            }
            prop_assert!(index.offsets(key_of("r_never")).is_empty());
        }
    }

    #[test]
    fn the_test_handles_have_distinct_keys() {
        let keys: std::collections::HashSet<u32> = (0..400).map(|n| key_of(&format!("r_{n}"))).collect();
        assert_eq!(keys.len(), 400);
    }

    /// A million records naming three handles each: under 16 bytes a
    /// (record, handle) pair, counted by capacity, where the map took about
    /// 70 a record.
    #[test]
    fn a_pair_costs_under_sixteen_bytes() {
        let mut index = BySubject::default();
        const RECORDS: u64 = 1_000_000;
        for n in 0..RECORDS {
            let subjects = [format!("r_a{}", n % 50_000), format!("r_b{n}"), format!("r_c{}", n * 7)];
            index.add(n * 300, &subjects);
        }
        let per_pair = index.heap_bytes() as f64 / (3 * RECORDS) as f64;
        assert!(per_pair < 16.0, "{per_pair:.1} bytes a pair");
        assert_eq!(index.offsets(key_of("r_b123456")), vec![123_456 * 300]);
    }

    /// A handle named by every record (someone in every suggestion list)
    /// next to handles named once: every record is found under it, once.
    /// (Before such keys moved out of the recent table, 200,000 of these
    /// records took 110 s in a debug build; now about 1 s.)
    #[test]
    fn a_handle_named_by_every_record_is_found_in_each() {
        let mut index = BySubject::default();
        for n in 0..100_000u64 {
            let subjects = [String::from("r_everyone"), format!("r_x{n}"), String::from("r_everyone")];
            index.add(n * 100, &subjects);
        }
        let offsets = index.offsets(key_of("r_everyone"));
        assert_eq!(offsets, (0..100_000u64).map(|n| n * 100).collect::<Vec<_>>());
        assert_eq!(index.offsets(key_of("r_x777")), vec![77_700]);
        assert_eq!(index.len(), 200_000);
    }
}
