//! Where a feed file's records start: the byte offset of every
//! [`STRIDE`]th record, and how many records the file has.
//!
//! Owns: the sampled offsets and the byte range a read of records
//! `start..stop` must cover ([`Offsets::cover`]).
//! Never: reads the file. The caller reads the range, skips the lines
//! before `start` and checks each record it keeps holds its own cursor.
//!
//! Why: a feed is the whole history of what a partner received, so an
//! offset for every record (8 bytes each) grew with the history for as
//! long as the node ran. A sample every 16 records is half a byte a record;
//! a read covers at most 15 records more on each side (a few kilobytes).

/// Records between two sampled offsets.
pub(super) const STRIDE: u64 = 16;

#[derive(Default)]
pub(super) struct Offsets {
    /// Byte offset of records 0, STRIDE, 2·STRIDE, …
    samples: Vec<u64>,
    len: u64,
}

/// What a read of some records must take from the file: the bytes
/// `from..to`, whose first line is record `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cover {
    pub first: u64,
    pub from: u64,
    pub to: u64,
}

impl Offsets {
    /// Records indexed.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Indexes the next record, which starts at byte `offset`.
    pub(super) fn push(&mut self, offset: u64) {
        if self.len.is_multiple_of(STRIDE) {
            self.samples.push(offset);
        }
        self.len += 1;
    }

    /// The bytes holding records `start..stop` (`stop` at most
    /// [`Offsets::len`]) of a file whose whole records end at `end`: from the
    /// sample at or before `start` to the sample at or after `stop`.
    pub(super) fn cover(&self, start: u64, stop: u64, end: u64) -> Cover {
        let first = (start / STRIDE) * STRIDE;
        let from = self.samples.get((start / STRIDE) as usize).copied().unwrap_or(end);
        let to = self.samples.get(stop.div_ceil(STRIDE) as usize).copied().unwrap_or(end);
        Cover { first, from, to }
    }

    /// Heap bytes held, by capacity.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.samples.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// For records of any lengths, the cover of any range starts on a
        /// record boundary at or before `start`, numbered `first`, and ends on
        /// one at or after `stop`: skipping `start - first` lines leaves
        /// exactly the records asked for.
        #[test]
        fn a_cover_holds_exactly_the_records_asked_for_after_the_skipped_lines(
            lengths in proptest::collection::vec(1u64..300, 0..100),
            start in 0u64..110,
            count in 0u64..60,
        ) {
            let mut offsets = Offsets::default();
            let mut starts = Vec::new();
            let mut end = 0;
            for length in &lengths {
                offsets.push(end);
                starts.push(end);
                end += length;
            }
            let len = offsets.len();
            prop_assert_eq!(len, lengths.len() as u64);
            let start = start.min(len);
            let stop = start.saturating_add(count).min(len);
            let cover = offsets.cover(start, stop, end);
            prop_assert!(cover.first <= start);
            let at = |record: u64| starts.get(record as usize).copied().unwrap_or(end);
            prop_assert_eq!(cover.from, at(cover.first.min(len)));
            // The lines in the cover, numbered from `first`, include
            // start..stop.
            let mut record = cover.first;
            let mut offset = cover.from;
            while offset < cover.to {
                offset += lengths[record as usize];
                record += 1;
            }
            prop_assert_eq!(offset, cover.to, "the cover ends on a record boundary");
            prop_assert!(record >= stop);
            prop_assert!(record - stop < STRIDE, "at most a stride past the end");
        }
    }

    #[test]
    fn a_record_costs_at_most_a_byte() {
        let mut offsets = Offsets::default();
        for n in 0..1_000_000u64 {
            offsets.push(n * 250);
        }
        // Half a byte a record, up to twice that just after the samples'
        // vector grew.
        assert!(offsets.heap_bytes() <= 1_000_000, "{} bytes", offsets.heap_bytes());
    }
}
