//! The subjects of one business on one day: a sorted boxed slice while the
//! set is small, a roaring bitmap once it is large, stored as the roaring
//! bitmap's portable bytes either way.
//!
//! Owns: choosing the representation, and the snapshot form of one day.
//! Never: changes what the set holds, or the bytes a snapshot stores.
//!
//! Why (measured on the `bench/partner.sh` workload, bench/README.md,
//! "Memory of a served node, continued"): 13,724 business-days held 74,383
//! members, five or six a day, in 32,170 roaring containers, each a struct
//! and its own allocation: 2.3 MB for 0.3 MB of indexes. A day's few members
//! as a sorted slice take 4 bytes each and one allocation.

use roaring::RoaringBitmap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most members held as a sorted slice; one more and the day becomes a
/// roaring bitmap (which takes about 2 bytes a member once its containers
/// fill, and so wins for large sets).
pub const SMALL_MAX: usize = 1024;

#[derive(Clone, Debug)]
pub enum DaySet {
    /// Sorted, distinct, at most [`SMALL_MAX`].
    Small(Box<[u32]>),
    Large(RoaringBitmap),
}

impl Default for DaySet {
    fn default() -> DaySet {
        DaySet::Small(Box::default())
    }
}

impl DaySet {
    pub fn insert(&mut self, subject: u32) {
        match self {
            DaySet::Small(members) => {
                let Err(at) = members.binary_search(&subject) else { return };
                if members.len() < SMALL_MAX {
                    crate::processors::edit_exact(members, |grown| grown.insert(at, subject));
                } else {
                    let mut bitmap = RoaringBitmap::from_sorted_iter(members.iter().copied())
                        .expect("a small day's members are sorted and distinct");
                    bitmap.insert(subject);
                    *self = DaySet::Large(bitmap);
                }
            }
            DaySet::Large(bitmap) => {
                bitmap.insert(subject);
            }
        }
    }

    pub fn remove(&mut self, subject: u32) {
        match self {
            DaySet::Small(members) => {
                if let Ok(at) = members.binary_search(&subject) {
                    crate::processors::edit_exact(members, |kept| kept.remove(at));
                }
            }
            DaySet::Large(bitmap) => {
                bitmap.remove(subject);
            }
        }
    }

    pub fn contains(&self, subject: u32) -> bool {
        match self {
            DaySet::Small(members) => members.binary_search(&subject).is_ok(),
            DaySet::Large(bitmap) => bitmap.contains(subject),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> u64 {
        match self {
            DaySet::Small(members) => members.len() as u64,
            DaySet::Large(bitmap) => bitmap.len(),
        }
    }

    /// Adds every member to `into`.
    pub fn union_into(&self, into: &mut RoaringBitmap) {
        match self {
            DaySet::Small(members) => into.extend(members.iter().copied()),
            DaySet::Large(bitmap) => *into |= bitmap,
        }
    }

    /// The set holding `bitmap`'s members, in the representation its size
    /// calls for.
    pub fn from_bitmap(bitmap: RoaringBitmap) -> DaySet {
        if bitmap.len() <= SMALL_MAX as u64 {
            DaySet::Small(bitmap.iter().collect())
        } else {
            DaySet::Large(bitmap)
        }
    }

    /// Drops every member of `people`; whether the set is empty after.
    pub fn remove_all(&mut self, people: &RoaringBitmap) -> bool {
        let (untouched, empty) = match self {
            DaySet::Small(members) => (!members.iter().any(|member| people.contains(*member)), members.is_empty()),
            DaySet::Large(bitmap) => (bitmap.is_disjoint(people), bitmap.is_empty()),
        };
        if untouched {
            return empty;
        }
        let kept = self.to_bitmap().into_owned() - people;
        let empty = kept.is_empty();
        *self = DaySet::from_bitmap(kept);
        empty
    }

    /// The set as a roaring bitmap (what a snapshot stores).
    fn to_bitmap(&self) -> std::borrow::Cow<'_, RoaringBitmap> {
        match self {
            DaySet::Small(members) => std::borrow::Cow::Owned(
                RoaringBitmap::from_sorted_iter(members.iter().copied())
                    .expect("a small day's members are sorted and distinct"),
            ),
            DaySet::Large(bitmap) => std::borrow::Cow::Borrowed(bitmap),
        }
    }

    /// Heap bytes, allocator headers left out.
    pub fn heap_bytes(&self) -> usize {
        match self {
            DaySet::Small(members) => members.len() * 4,
            DaySet::Large(bitmap) => bitmap.serialized_size() + 32,
        }
    }
}

impl Serialize for DaySet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bitmap = self.to_bitmap();
        let mut bytes = Vec::with_capacity(bitmap.serialized_size());
        bitmap.serialize_into(&mut bytes).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for DaySet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(deserializer)?;
        let bitmap = RoaringBitmap::deserialize_from(&bytes[..]).map_err(serde::de::Error::custom)?;
        Ok(DaySet::from_bitmap(bitmap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32),
        Remove(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Small values repeat (a subject messaging a business twice a day);
        // the wide ones spread over many roaring containers.
        let subject = prop_oneof![0u32..3_000, any::<u32>()];
        prop_oneof![4 => subject.clone().prop_map(Op::Insert), 1 => subject.prop_map(Op::Remove)]
    }

    proptest! {
        /// Through inserts and removes that cross the size where a day
        /// becomes a bitmap, a day answers as a roaring bitmap does, and
        /// writes the bytes that bitmap writes (so snapshots are unchanged),
        /// and reads back as the same set.
        #[test]
        fn a_day_answers_and_stores_as_a_roaring_bitmap(ops in proptest::collection::vec(op(), 0..2_500)) {
            let mut day = DaySet::default();
            let mut truth = RoaringBitmap::new();
            for op in &ops {
                match *op {
                    Op::Insert(subject) => {
                        day.insert(subject);
                        truth.insert(subject);
                    }
                    Op::Remove(subject) => {
                        day.remove(subject);
                        truth.remove(subject);
                    }
                }
            }
            prop_assert_eq!(day.len(), truth.len());
            for probe in ops.iter().map(|op| match op { Op::Insert(s) | Op::Remove(s) => *s }).chain([0, 1, u32::MAX]) {
                prop_assert_eq!(day.contains(probe), truth.contains(probe));
            }
            let mut union = RoaringBitmap::new();
            day.union_into(&mut union);
            prop_assert_eq!(&union, &truth);
            let mut truth_bytes = Vec::new();
            truth.serialize_into(&mut truth_bytes).expect("writes");
            let stored = postcard::to_allocvec(&day).expect("encodes");
            prop_assert_eq!(&stored, &postcard::to_allocvec(&serde_bytes_of(&truth_bytes)).expect("encodes"));
            let read: DaySet = postcard::from_bytes(&stored).expect("decodes");
            prop_assert_eq!(read.len(), truth.len());
            prop_assert_eq!(matches!(read, DaySet::Small(_)), truth.len() <= SMALL_MAX as u64);
            let mut read_union = RoaringBitmap::new();
            read.union_into(&mut read_union);
            prop_assert_eq!(read_union, truth);
        }
    }

    /// The bytes as the old `SerdeBitmap` wrote them: serde bytes.
    fn serde_bytes_of(bytes: &[u8]) -> impl Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        Bytes(bytes)
    }
}
