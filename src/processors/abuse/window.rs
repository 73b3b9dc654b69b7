//! Per-subject event-time windows and the feature values computed from them.
//!
//! Owns: the compact entries kept per subject (messages sent, reports,
//! blocks and partner flags received) and per device (registrations),
//! dropping each entry once it is older than the longest window any rule
//! reads.
//! Never: keeps more than the rules need, or anything but dense indexes and
//! hashes (no number, no domain text, no group id).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One message sent. `to` is a subject index, or a hash of the group id.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) struct Sent {
    pub ts_ms: i64,
    pub to: u32,
    pub flags: u8,
    /// Bit i set: the link domain is on domain list i.
    pub lists: u16,
}

pub(super) const SENT_GROUP: u8 = 1;
pub(super) const SENT_NON_CONTACT: u8 = 2;
/// The message carried a link.
pub(super) const SENT_LINK: u8 = 4;
/// A one-to-one link message to a stranger: neither has the other in their
/// contact book, and the recipient had not written to the sender (within
/// what the sender's recipient's window keeps).
pub(super) const SENT_STRANGER: u8 = 8;

/// One report, block or partner flag received.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) struct Received {
    pub ts_ms: i64,
    pub from: u32,
    pub kind: u8,
}

pub(super) const RECEIVED_REPORT: u8 = 0;
pub(super) const RECEIVED_BLOCK: u8 = 1;
pub(super) const RECEIVED_FLAG: u8 = 2;

/// What is kept about one recently active subject.
///
/// Laid out for the common case, a subject who only sends: 48 bytes in the
/// table (it was 96 with both deques and the device inline). Received
/// entries and the device, which few subjects have (on the partner workload
/// 2,200 of 74,000 windows), live in one box that only they allocate. The
/// snapshot form is unchanged ([`StoredWindow`]), so snapshots read and
/// write the same bytes as before.
#[derive(Clone, Debug, Default)]
pub(super) struct SubjectWindow {
    /// (The link domains of these messages are kept by `reputation.rs`, in
    /// its own snapshot section, so this layout stays as older snapshots
    /// wrote it.)
    pub sent: VecDeque<Sent>,
    rare: Option<Box<Rare>>,
    /// Newest event time recorded here, for sweeping.
    pub newest_ms: i64,
}

/// The part of a window few subjects have.
#[derive(Clone, Debug, Default)]
struct Rare {
    received: VecDeque<Received>,
    /// Hash of the device of the subject's latest register event.
    device: Option<u64>,
}

/// What a window holding nothing received reads as.
static NOTHING_RECEIVED: VecDeque<Received> = VecDeque::new();

impl SubjectWindow {
    pub fn received(&self) -> &VecDeque<Received> {
        self.rare.as_ref().map_or(&NOTHING_RECEIVED, |rare| &rare.received)
    }

    pub fn received_mut(&mut self) -> &mut VecDeque<Received> {
        &mut self.rare.get_or_insert_with(Box::default).received
    }

    /// Hash of the device of the subject's latest register event.
    pub fn device(&self) -> Option<u64> {
        self.rare.as_ref().and_then(|rare| rare.device)
    }

    pub fn set_device(&mut self, device: u64) {
        self.rare.get_or_insert_with(Box::default).device = Some(device);
    }

    /// Gives back the room of entries dropped since the deque last grew
    /// (a burst of sends leaves its capacity behind otherwise): keeps at
    /// most twice what is held, so a busy sender does not reallocate at
    /// every sweep.
    pub fn shrink(&mut self) {
        shrink_deque(&mut self.sent);
        if let Some(rare) = &mut self.rare {
            shrink_deque(&mut rare.received);
            if rare.received.is_empty() && rare.device.is_none() {
                self.rare = None;
            }
        }
    }

    /// Heap bytes held by the entries (allocator headers left out).
    pub fn heap_bytes(&self) -> usize {
        self.sent.capacity() * std::mem::size_of::<Sent>()
            + self.rare.as_ref().map_or(0, |rare| {
                std::mem::size_of::<Rare>() + rare.received.capacity() * std::mem::size_of::<Received>()
            })
    }
}

fn shrink_deque<T>(deque: &mut VecDeque<T>) {
    if deque.capacity() > 2 * deque.len().max(2) {
        deque.shrink_to(2 * deque.len());
    }
}

/// A window as snapshots store it (the layout before [`SubjectWindow`]
/// boxed its rare part).
#[derive(Serialize, Deserialize)]
struct StoredWindow<Entries, Receipts> {
    sent: Entries,
    received: Receipts,
    device: Option<u64>,
    newest_ms: i64,
}

impl Serialize for SubjectWindow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredWindow { sent: &self.sent, received: self.received(), device: self.device(), newest_ms: self.newest_ms }
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SubjectWindow {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredWindow::<VecDeque<Sent>, VecDeque<Received>>::deserialize(deserializer)?;
        let rare = (!stored.received.is_empty() || stored.device.is_some())
            .then(|| Box::new(Rare { received: stored.received, device: stored.device }));
        Ok(SubjectWindow { sent: stored.sent, rare, newest_ms: stored.newest_ms })
    }
}

/// Entries with an event-time field, kept sorted by it.
pub(super) trait Timed: Copy {
    fn ts_ms(&self) -> i64;
}

impl Timed for Sent {
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
}

impl Timed for Received {
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
}

impl Timed for (i64, u32) {
    fn ts_ms(&self) -> i64 {
        self.0
    }
}

impl Timed for (i64, u64) {
    fn ts_ms(&self) -> i64 {
        self.0
    }
}

/// Inserts in event-time order (late events go to their place), then drops
/// entries more than `retention_ms` older than the newest.
pub(super) fn insert_sorted<T: Timed>(deque: &mut VecDeque<T>, entry: T, retention_ms: i64) {
    let ts = entry.ts_ms();
    if deque.back().is_none_or(|last| last.ts_ms() <= ts) {
        deque.push_back(entry);
    } else {
        let at = deque.partition_point(|e| e.ts_ms() <= ts);
        deque.insert(at, entry);
    }
    let newest = deque.back().map_or(ts, Timed::ts_ms);
    while deque.front().is_some_and(|first| first.ts_ms() <= newest - retention_ms) {
        deque.pop_front();
    }
}

/// The entries with event time in `(at - window, at]`.
pub(super) fn in_window<T: Timed>(deque: &VecDeque<T>, at_ms: i64, window_ms: i64) -> impl Iterator<Item = &T> {
    let low = deque.partition_point(|e| e.ts_ms() <= at_ms - window_ms);
    let high = deque.partition_point(|e| e.ts_ms() <= at_ms);
    deque.range(low..high.max(low))
}

/// Number of distinct values (reuses `scratch` to avoid allocating).
pub(super) fn distinct(values: impl Iterator<Item = u32>, scratch: &mut Vec<u32>) -> usize {
    scratch.clear();
    scratch.extend(values);
    scratch.sort_unstable();
    scratch.dedup();
    scratch.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(ts_ms: i64, to: u32) -> Sent {
        Sent { ts_ms, to, flags: 0, lists: 0 }
    }

    /// Late entries land in order; old ones are dropped; windows are (t-w, t].
    #[test]
    fn windows_are_event_time_and_bounded() {
        let mut deque = VecDeque::new();
        for (ts, to) in [(1_000, 1), (5_000, 2), (3_000, 3), (9_000, 4)] {
            insert_sorted(&mut deque, sent(ts, to), 10_000);
        }
        let order: Vec<i64> = deque.iter().map(|e| e.ts_ms).collect();
        assert_eq!(order, vec![1_000, 3_000, 5_000, 9_000]);
        // (4_000, 9_000] holds 5_000 and 9_000.
        let in_5s: Vec<u32> = in_window(&deque, 9_000, 5_000).map(|e| e.to).collect();
        assert_eq!(in_5s, vec![2, 4]);
        // Evaluated at a late event's time, later entries are not counted.
        let at_3s: Vec<u32> = in_window(&deque, 3_000, 5_000).map(|e| e.to).collect();
        assert_eq!(at_3s, vec![1, 3]);
        insert_sorted(&mut deque, sent(12_500, 5), 10_000);
        assert_eq!(deque.front().map(|e| e.ts_ms), Some(3_000), "entries 10s older than the newest are dropped");
        let mut scratch = Vec::new();
        assert_eq!(distinct([3, 1, 3, 2, 1].into_iter(), &mut scratch), 3);
    }

    /// The compact layout stores what the old one stored, byte for byte, and
    /// reads it back the same; giving back room keeps every entry.
    #[test]
    fn a_window_keeps_its_snapshot_form_and_shrinks_without_losing_entries() {
        #[derive(Serialize)]
        struct OldLayout {
            sent: VecDeque<Sent>,
            received: VecDeque<Received>,
            device: Option<u64>,
            newest_ms: i64,
        }
        let mut window = SubjectWindow::default();
        let mut old = OldLayout { sent: VecDeque::new(), received: VecDeque::new(), device: None, newest_ms: 0 };
        // A burst of 40 sends kept a minute, then one that leaves 5 of them
        // within 10 s.
        for (ts, retention) in (0..40).map(|ts| (ts * 1_000, 60_000)).chain([(45_000, 10_000)]) {
            insert_sorted(&mut window.sent, sent(ts, ts as u32), retention);
            insert_sorted(&mut old.sent, sent(ts, ts as u32), retention);
        }
        window.newest_ms = 45_000;
        old.newest_ms = 45_000;
        assert_eq!(postcard::to_stdvec(&window).unwrap(), postcard::to_stdvec(&old).unwrap(), "only sends");
        assert!(window.rare.is_none(), "a subject who only sends allocates no rare part");

        let report = Received { ts_ms: 38_500, from: 7, kind: RECEIVED_REPORT };
        insert_sorted(window.received_mut(), report, 10_000);
        old.received.push_back(report);
        window.set_device(0);
        old.device = Some(0);
        let bytes = postcard::to_stdvec(&window).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&old).unwrap(), "sends, a report and device 0");
        let back: SubjectWindow = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        assert_eq!(back.device(), Some(0));

        let held: Vec<i64> = window.sent.iter().map(|e| e.ts_ms).collect();
        assert_eq!(held.len(), 5);
        assert!(window.sent.capacity() > 2 * window.sent.len(), "the burst left room for 40");
        window.shrink();
        assert!(window.sent.capacity() <= 2 * window.sent.len());
        assert_eq!(window.sent.iter().map(|e| e.ts_ms).collect::<Vec<_>>(), held);
        assert_eq!(window.received().len(), 1);
        assert_eq!(window.device(), Some(0));
    }
}
