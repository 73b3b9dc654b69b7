//! Usage metrics: exact daily active subjects and message counts.
//!
//! Owns: one roaring bitmap of dense subject indexes per UTC day, per-day
//! message counts by kind, and the country/platform bitmaps used for `by=`.
//! Never: reads consent (usage counting is the essential `analytics`
//! purpose) or estimates: every count is exact.

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

use crate::contract::{day_of, Direction, Event, EventBody, MessageKind, Platform, Region};

/// Platform slot for subjects without a register event.
pub const UNKNOWN_PLATFORM: usize = Platform::ALL.len();

#[derive(Default)]
pub struct Usage {
    /// Subjects active on each UTC day (day number since the epoch).
    active_by_day: BTreeMap<i32, RoaringBitmap>,
    /// Messages per day, indexed by `MessageKind::code()`.
    messages_by_day: BTreeMap<i32, [u64; MessageKind::ALL.len()]>,
    by_country: HashMap<Region, RoaringBitmap>,
    /// One bitmap per platform plus `unknown` (last slot).
    by_platform: [RoaringBitmap; Platform::ALL.len() + 1],
    /// Per subject: platform slot, and (same index) the time of the register
    /// event that set it (the earliest by event time wins, so late events
    /// are handled). Two vectors: 9 bytes a subject where `(u8, i64)` pairs
    /// took 16.
    platform_of: Vec<u8>,
    platform_set_ms: Vec<i64>,
}

/// How to split an active-subject series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    Country,
    Platform,
}

/// One day of an active-subject series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivePoint {
    pub day: i32,
    pub active: u64,
    /// Present when a grouping was asked for; groups with zero are left out.
    pub groups: Option<BTreeMap<String, u64>>,
}

impl Usage {
    /// Registers a new subject (dense index `subject`) from `region`.
    /// Registers a subject on its first own event. Indexes may arrive out of
    /// order: a subject first named in someone's address book gets its index
    /// then, and joins usage only when it acts.
    pub fn add_subject(&mut self, subject: u32, region: Region) {
        let index = subject as usize;
        if self.platform_of.len() <= index {
            self.platform_of.resize(index + 1, UNKNOWN_PLATFORM as u8);
            self.platform_set_ms.resize(index + 1, i64::MAX);
        }
        self.by_country.entry(region).or_default().insert(subject);
        self.by_platform[UNKNOWN_PLATFORM].insert(subject);
    }

    pub fn apply(&mut self, subject: u32, event: &Event) {
        let day = day_of(event.ts_ms);
        let active = match &event.body {
            EventBody::Register { platform, .. } => {
                self.set_platform(subject, *platform, event.ts_ms);
                true
            }
            EventBody::Session { .. } => true,
            EventBody::Message { kind, .. } => {
                self.messages_by_day.entry(day).or_default()[kind.code() as usize] += 1;
                true
            }
            EventBody::BusinessMessage { direction, .. } => *direction == Direction::Out,
            _ => false,
        };
        if active {
            self.active_by_day.entry(day).or_default().insert(subject);
        }
    }

    fn set_platform(&mut self, subject: u32, platform: Platform, ts_ms: i64) {
        let index = subject as usize;
        let (Some(slot), Some(set_ms)) = (self.platform_of.get_mut(index), self.platform_set_ms.get_mut(index)) else {
            return;
        };
        if ts_ms >= *set_ms {
            return;
        }
        self.by_platform[usize::from(*slot)].remove(subject);
        (*slot, *set_ms) = (platform.code(), ts_ms);
        self.by_platform[platform.code() as usize].insert(subject);
    }

    /// Distinct subjects active in the `window` days ending on each day of
    /// `from..=to`, optionally split by country or platform.
    pub fn active_series(&self, from: i32, to: i32, window: u32, grouping: Option<Grouping>) -> Vec<ActivePoint> {
        let window = window.max(1) as i32;
        let mut series = Vec::with_capacity((to - from + 1).max(0) as usize);
        // Slide the window day by day: union of the days in range. Unions of
        // at most 30 compressed bitmaps are cheap; no incremental trick needed.
        for day in from..=to {
            let mut union = RoaringBitmap::new();
            for (_, bitmap) in self.active_by_day.range(day - window + 1..=day) {
                union |= bitmap;
            }
            let groups = grouping.map(|grouping| self.split(&union, grouping));
            series.push(ActivePoint { day, active: union.len(), groups });
        }
        series
    }

    fn split(&self, union: &RoaringBitmap, grouping: Grouping) -> BTreeMap<String, u64> {
        let mut groups = BTreeMap::new();
        match grouping {
            Grouping::Country => {
                for (region, members) in &self.by_country {
                    let count = union.intersection_len(members);
                    if count > 0 {
                        groups.insert(region.as_str().to_string(), count);
                    }
                }
            }
            Grouping::Platform => {
                for (slot, members) in self.by_platform.iter().enumerate() {
                    let count = union.intersection_len(members);
                    if count > 0 {
                        let name = Platform::from_code(slot as u8).map_or("unknown", Platform::as_str);
                        groups.insert(name.to_string(), count);
                    }
                }
            }
        }
        groups
    }

    /// Messages per day of `from..=to`, total and by kind.
    pub fn message_series(&self, from: i32, to: i32) -> Vec<(i32, [u64; MessageKind::ALL.len()])> {
        (from..=to).map(|day| (day, self.messages_by_day.get(&day).copied().unwrap_or_default())).collect()
    }

    /// The last UTC day with any activity.
    /// Forgets an erased subject: it leaves every active-day, country and
    /// platform bitmap. (Message totals are recomputed by log compaction.)
    pub fn remove_subject(&mut self, subject: u32) {
        for bitmap in
            self.active_by_day.values_mut().chain(self.by_country.values_mut()).chain(self.by_platform.iter_mut())
        {
            bitmap.remove(subject);
        }
        if let Some(slot) = self.platform_of.get_mut(subject as usize) {
            *slot = UNKNOWN_PLATFORM as u8;
        }
        if let Some(set_ms) = self.platform_set_ms.get_mut(subject as usize) {
            *set_ms = i64::MAX;
        }
    }

    /// Takes `people` out of the country and platform sets (a snapshot's
    /// sets are read for every acting person; those a node does not cover
    /// leave them).
    pub(crate) fn forget_groups(&mut self, people: &RoaringBitmap) {
        for bitmap in self.by_country.values_mut().chain(self.by_platform.iter_mut()) {
            *bitmap -= people;
        }
        self.by_country.retain(|_, members| !members.is_empty());
    }

    /// Days on which `subject` was active, oldest first.
    pub fn active_days_of(&self, subject: u32) -> Vec<i32> {
        self.active_by_day.iter().filter(|(_, bitmap)| bitmap.contains(subject)).map(|(day, _)| *day).collect()
    }

    /// The platform of the subject's earliest register, if any.
    pub fn platform_of(&self, subject: u32) -> Option<Platform> {
        let slot = self.platform_of.get(subject as usize)?;
        Platform::ALL.get(usize::from(*slot)).copied()
    }

    pub fn last_day(&self) -> Option<i32> {
        self.active_by_day.keys().next_back().copied()
    }

    /// Bytes held by the bitmaps and per-subject vectors (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        let bitmaps: usize = self.active_by_day.values().map(RoaringBitmap::serialized_size).sum::<usize>()
            + self.by_country.values().map(RoaringBitmap::serialized_size).sum::<usize>()
            + self.by_platform.iter().map(RoaringBitmap::serialized_size).sum::<usize>();
        bitmaps + self.platform_of.capacity() + self.platform_set_ms.capacity() * std::mem::size_of::<i64>()
    }

    pub(crate) fn encode(&self, out: &mut crate::codec::Writer) {
        out.u32(self.active_by_day.len() as u32);
        for (day, bitmap) in &self.active_by_day {
            out.i32(*day);
            out.bitmap(bitmap);
        }
        out.u32(self.messages_by_day.len() as u32);
        for (day, counts) in &self.messages_by_day {
            out.i32(*day);
            for count in counts {
                out.u64(*count);
            }
        }
        out.u32(self.platform_of.len() as u32);
        for (slot, ts) in self.platform_of.iter().zip(&self.platform_set_ms) {
            out.u8(*slot);
            out.i64(*ts);
        }
    }

    /// Rebuilds usage from a snapshot; `regions` gives each subject's region
    /// (`None` for subjects that never acted).
    pub(crate) fn decode(
        input: &mut crate::codec::Reader<'_>,
        regions: impl Iterator<Item = Option<Region>>,
    ) -> Result<Usage, crate::codec::DecodeError> {
        let mut usage = Usage::default();
        for _ in 0..input.u32()? {
            let day = input.i32()?;
            usage.active_by_day.insert(day, input.bitmap()?);
        }
        for _ in 0..input.u32()? {
            let day = input.i32()?;
            let mut counts = [0u64; MessageKind::ALL.len()];
            for count in &mut counts {
                *count = input.u64()?;
            }
            usage.messages_by_day.insert(day, counts);
        }
        let subjects = input.u32()?;
        // Nine bytes a subject: a count the input cannot hold reserves no
        // more than it could.
        let room = (subjects as usize).min(input.remaining() / 9);
        usage.platform_of.reserve_exact(room);
        usage.platform_set_ms.reserve_exact(room);
        let mut regions = regions;
        for subject in 0..subjects {
            let slot = input.u8()?;
            let ts = input.i64()?;
            usage.platform_of.push(slot);
            usage.platform_set_ms.push(ts);
            let Some(region) = regions.next().flatten() else { continue };
            usage.by_country.entry(region).or_default().insert(subject);
            usage.by_platform[(slot as usize).min(UNKNOWN_PLATFORM)].insert(subject);
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Pseudonym;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn session(subject: u8, ts_ms: i64) -> Event {
        Event {
            ts_ms,
            subject: Pseudonym::from_stored([subject; 16]),
            region: Region(*b"IN"),
            body: EventBody::Session { device: "d".into() },
        }
    }

    fn register(subject: u8, ts_ms: i64, platform: Platform) -> Event {
        Event {
            ts_ms,
            subject: Pseudonym::from_stored([subject; 16]),
            region: Region(*b"IN"),
            body: EventBody::Register { device: "d".into(), platform },
        }
    }

    /// The earliest register by event time sets the platform, whatever the
    /// order they arrive in; a snapshot keeps it, and an erasure forgets it.
    #[test]
    fn the_earliest_register_sets_the_platform_and_a_snapshot_keeps_it() {
        let mut usage = Usage::default();
        usage.add_subject(3, Region(*b"IN"));
        usage.apply(3, &register(3, 100, Platform::ALL[0]));
        usage.apply(3, &register(3, 50, Platform::ALL[1]));
        usage.apply(3, &register(3, 200, Platform::ALL[2]));
        assert_eq!(usage.platform_of(3), Some(Platform::ALL[1]));
        assert_eq!(usage.platform_of(0), None, "indexes below the first subject have no platform");
        let mut out = crate::codec::Writer::default();
        usage.encode(&mut out);
        let regions = (0..4).map(|subject| (subject == 3).then_some(Region(*b"IN")));
        let mut decoded = Usage::decode(&mut crate::codec::Reader::new(&out.bytes), regions).expect("decode");
        assert_eq!(decoded.platform_of(3), Some(Platform::ALL[1]));
        decoded.apply(3, &register(3, 75, Platform::ALL[2]));
        assert_eq!(decoded.platform_of(3), Some(Platform::ALL[1]), "50 is still the earliest after a reload");
        decoded.apply(3, &register(3, 10, Platform::ALL[2]));
        assert_eq!(decoded.platform_of(3), Some(Platform::ALL[2]));
        decoded.remove_subject(3);
        assert_eq!(decoded.platform_of(3), None);
    }

    proptest! {
        /// Windowed bitmap counts equal a naive count over the same events,
        /// whatever their order (late events count on their own day).
        #[test]
        fn bitmap_counts_equal_naive_counts(
            events in proptest::collection::vec((0u8..40, 0i64..(20 * crate::contract::DAY_MS)), 0..300),
            window in prop_oneof![Just(1u32), Just(7), Just(30)],
        ) {
            let mut usage = Usage::default();
            for subject in 0..40u32 {
                usage.add_subject(subject, Region(*b"IN"));
            }
            for (subject, ts) in &events {
                usage.apply(u32::from(*subject), &session(*subject, *ts));
            }
            let series = usage.active_series(0, 19, window, None);
            for point in series {
                let naive: HashSet<u8> = events
                    .iter()
                    .filter(|(_, ts)| {
                        let day = day_of(*ts);
                        day <= point.day && day > point.day - window as i32
                    })
                    .map(|(s, _)| *s)
                    .collect();
                prop_assert_eq!(point.active, naive.len() as u64);
            }
        }
    }
}
