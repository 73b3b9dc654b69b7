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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct SubjectWindow {
    /// (The link domains of these messages are kept by `reputation.rs`, in
    /// its own snapshot section, so this layout stays as older snapshots
    /// wrote it.)
    pub sent: VecDeque<Sent>,
    pub received: VecDeque<Received>,
    /// Hash of the device of the subject's latest register event.
    pub device: Option<u64>,
    /// Newest event time recorded here, for sweeping.
    pub newest_ms: i64,
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
}
