//! Recent idempotency keys: which keyed batches were applied, and what they
//! were answered, so a resend is answered the same and not applied again.
//!
//! Owns: the bounded map from key digest to first answer, filled from
//! `BatchKeyed` control records in log order, expired by age and capped by
//! count and bytes (oldest dropped first), and its snapshot section.
//! Never: holds a key itself (only a digest scoped to the caller), or
//! decides the window (the pipeline passes the oldest time still honoured).

use std::collections::{HashMap, VecDeque};

use crate::contract::{KeyedAnswer, KeyedRejection};

/// Most keys remembered: about 1M batches, whatever the window says.
pub const MAX_KEYS: usize = 1 << 20;
/// Most bytes of stored answers (rejection messages mostly): a window full
/// of batches with many rejected lines cannot grow state without bound.
pub const MAX_ANSWER_BYTES: usize = 256 << 20;

/// Fixed cost counted per entry besides its rejection messages.
const ENTRY_BYTES: usize = 64;

/// Keys by digest, in the order they were logged.
///
/// `order` is a queue because keys arrive in log order, which is (but for
/// clock steps) time order: expiry and the caps both pop from the front.
/// A digest seen again after it expired is pushed again; the stale queue
/// entry is recognised by its time and skipped.
pub struct RecentKeys {
    answers: HashMap<[u8; 16], Remembered>,
    order: VecDeque<([u8; 16], i64)>,
    answer_bytes: usize,
    max_keys: usize,
    max_answer_bytes: usize,
}

struct Remembered {
    at_ms: i64,
    answer: KeyedAnswer,
}

impl Default for RecentKeys {
    fn default() -> Self {
        RecentKeys::with_caps(MAX_KEYS, MAX_ANSWER_BYTES)
    }
}

fn answer_bytes(answer: &KeyedAnswer) -> usize {
    ENTRY_BYTES
        + answer.rejected.iter().map(|rejection| 16 + rejection.reason.len() + rejection.error.len()).sum::<usize>()
}

impl RecentKeys {
    /// An empty map holding at most `max_keys` keys and `max_answer_bytes`.
    pub fn with_caps(max_keys: usize, max_answer_bytes: usize) -> RecentKeys {
        RecentKeys {
            answers: HashMap::new(),
            order: VecDeque::new(),
            answer_bytes: 0,
            max_keys: max_keys.max(1),
            max_answer_bytes,
        }
    }

    /// The first answer to `digest`, if it was logged at or after `not_before_ms`.
    pub fn get(&self, digest: &[u8; 16], not_before_ms: i64) -> Option<&KeyedAnswer> {
        self.answers.get(digest).filter(|remembered| remembered.at_ms >= not_before_ms).map(|r| &r.answer)
    }

    /// Remembers `digest` (logged at `at_ms`), dropping the oldest keys
    /// beyond the caps.
    pub fn insert(&mut self, digest: [u8; 16], at_ms: i64, answer: KeyedAnswer) {
        self.answer_bytes += answer_bytes(&answer);
        if let Some(previous) = self.answers.insert(digest, Remembered { at_ms, answer }) {
            self.answer_bytes -= answer_bytes(&previous.answer);
        }
        self.order.push_back((digest, at_ms));
        while self.answers.len() > self.max_keys || self.answer_bytes > self.max_answer_bytes {
            if !self.pop_oldest() {
                break;
            }
        }
    }

    /// Forgets every key logged before `not_before_ms` (front of the queue).
    pub fn expire(&mut self, not_before_ms: i64) {
        while self.order.front().is_some_and(|&(_, at_ms)| at_ms < not_before_ms) {
            self.pop_oldest();
        }
    }

    /// Drops the front of the queue; false when it was empty.
    fn pop_oldest(&mut self) -> bool {
        let Some((digest, at_ms)) = self.order.pop_front() else { return false };
        if self.answers.get(&digest).is_some_and(|remembered| remembered.at_ms == at_ms) {
            if let Some(removed) = self.answers.remove(&digest) {
                self.answer_bytes -= answer_bytes(&removed.answer);
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.answer_bytes + self.order.capacity() * 24 + self.answers.capacity() * 17
    }

    /// The entries in log order, as the snapshot stores them.
    pub(super) fn to_stored(&self) -> StoredKeys {
        let entries = self
            .order
            .iter()
            .filter_map(|(digest, at_ms)| {
                let remembered = self.answers.get(digest).filter(|r| r.at_ms == *at_ms)?;
                Some(StoredKey {
                    digest: *digest,
                    at_ms: *at_ms,
                    accepted: remembered.answer.accepted,
                    request: remembered.answer.request,
                    rejected: remembered
                        .answer
                        .rejected
                        .iter()
                        .map(|r| (r.line, r.reason.clone(), r.error.clone()))
                        .collect(),
                })
            })
            .collect();
        StoredKeys { entries }
    }

    /// Rebuilds the map from a snapshot section.
    pub(super) fn from_stored(stored: StoredKeys) -> RecentKeys {
        let mut keys = RecentKeys::default();
        for entry in stored.entries {
            let rejected = entry
                .rejected
                .into_iter()
                .map(|(line, reason, error)| KeyedRejection { line, reason, error })
                .collect();
            keys.insert(
                entry.digest,
                entry.at_ms,
                KeyedAnswer { accepted: entry.accepted, rejected, request: entry.request },
            );
        }
        keys
    }

    /// Rebuilds the map from a version-4 snapshot section (no request
    /// digests were kept then).
    pub(super) fn from_stored_v4(stored: StoredKeysV4) -> RecentKeys {
        RecentKeys::from_stored(StoredKeys {
            entries: stored
                .entries
                .into_iter()
                .map(|e| StoredKey {
                    digest: e.digest,
                    at_ms: e.at_ms,
                    accepted: e.accepted,
                    rejected: e.rejected,
                    request: None,
                })
                .collect(),
        })
    }
}

/// The snapshot section: entries oldest first.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(super) struct StoredKeys {
    entries: Vec<StoredKey>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    digest: [u8; 16],
    at_ms: i64,
    accepted: u64,
    rejected: Vec<(u64, String, String)>,
    request: Option<[u8; 16]>,
}

/// The section as snapshot version 4 wrote it.
#[derive(serde::Deserialize, Default)]
pub(super) struct StoredKeysV4 {
    entries: Vec<StoredKeyV4>,
}

#[derive(serde::Deserialize)]
struct StoredKeyV4 {
    digest: [u8; 16],
    at_ms: i64,
    accepted: u64,
    rejected: Vec<(u64, String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(accepted: u64) -> KeyedAnswer {
        KeyedAnswer { accepted, rejected: Vec::new(), request: None }
    }

    /// A key is answered inside the window and not before it; expiring
    /// forgets exactly the keys logged before the cut.
    #[test]
    fn keys_expire_by_age() {
        let mut keys = RecentKeys::default();
        keys.insert([1; 16], 1_000, answer(1));
        keys.insert([2; 16], 2_000, answer(2));
        assert_eq!(keys.get(&[1; 16], 500).map(|a| a.accepted), Some(1));
        assert_eq!(keys.get(&[1; 16], 1_500), None, "older than the window");
        keys.expire(1_500);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.get(&[1; 16], 0), None);
        assert_eq!(keys.get(&[2; 16], 0).map(|a| a.accepted), Some(2));
        keys.expire(10_000);
        assert!(keys.is_empty());
        assert_eq!(keys.answer_bytes, 0);
    }

    /// Beyond the key cap the oldest key is dropped first.
    #[test]
    fn keys_beyond_the_cap_drop_the_oldest() {
        let mut keys = RecentKeys::with_caps(3, usize::MAX);
        for k in 1..=5u8 {
            keys.insert([k; 16], i64::from(k), answer(u64::from(k)));
        }
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.get(&[1; 16], 0), None);
        assert_eq!(keys.get(&[2; 16], 0), None);
        for k in 3..=5u8 {
            assert_eq!(keys.get(&[k; 16], 0).map(|a| a.accepted), Some(u64::from(k)));
        }
    }

    /// Beyond the byte cap the oldest answers are dropped first.
    #[test]
    fn answers_beyond_the_byte_cap_drop_the_oldest() {
        let rejection = KeyedRejection { line: 1, reason: "content".into(), error: "x".repeat(100) };
        let big = KeyedAnswer { accepted: 0, rejected: vec![rejection; 10], request: None };
        let one = answer_bytes(&big);
        let mut keys = RecentKeys::with_caps(usize::MAX, 2 * one);
        for k in 1..=3u8 {
            keys.insert([k; 16], i64::from(k), big.clone());
        }
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get(&[1; 16], 0), None);
        assert!(keys.get(&[3; 16], 0).is_some());
    }

    /// A key reused after it expired is remembered with its new answer, and
    /// the stale queue entry does not evict it.
    #[test]
    fn a_key_seen_again_after_expiry_keeps_its_new_answer() {
        let mut keys = RecentKeys::default();
        keys.insert([1; 16], 1_000, answer(1));
        keys.insert([1; 16], 9_000, answer(9));
        keys.expire(5_000);
        assert_eq!(keys.get(&[1; 16], 5_000).map(|a| a.accepted), Some(9));
        let restored = RecentKeys::from_stored(keys.to_stored());
        assert_eq!(restored.len(), 1);
        assert_eq!(restored.get(&[1; 16], 5_000).map(|a| a.accepted), Some(9));
    }
}
