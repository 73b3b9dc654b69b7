//! Derived state: the subject registry, usage metrics and consent registry,
//! built by applying log records in order; saved as snapshots.
//!
//! Owns: dense subject indexes (assigned in log order, so replay is
//! deterministic), applying one event to every processor, snapshots.
//! Never: the source of truth. Everything here can be rebuilt from the log
//! (`proviso rebuild`), and a missing or damaged snapshot only costs time.

pub(crate) mod codec;
mod snapshot;

pub use snapshot::{load_snapshot, save_snapshot, SNAPSHOT_FILE};

use std::collections::HashMap;

use crate::consent::{ConsentChange, ConsentRegistry};
use crate::contract::{Event, EventBody, Pseudonym, Region};
use crate::processors::usage::Usage;

/// What proviso holds about one acting subject, besides processor state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubjectRecord {
    pub pseudonym: Pseudonym,
    pub region: Region,
    /// Earliest event time seen for the subject: the start of any opt-out
    /// notice period.
    pub first_seen_ms: i64,
}

/// Subjects by pseudonym, with dense `u32` indexes for bitmaps.
#[derive(Default)]
pub struct Subjects {
    /// foldhash: pseudonyms are keyed-hash output already, SipHash's DoS
    /// resistance buys nothing here and costs a tenth of ingest time.
    index: HashMap<Pseudonym, u32, foldhash::fast::RandomState>,
    records: Vec<SubjectRecord>,
}

impl Subjects {
    pub fn lookup(&self, pseudonym: &Pseudonym) -> Option<u32> {
        self.index.get(pseudonym).copied()
    }

    pub fn get(&self, subject: u32) -> Option<&SubjectRecord> {
        self.records.get(subject as usize)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SubjectRecord> {
        self.records.iter()
    }

    fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the entry.
        self.index.capacity() * (std::mem::size_of::<(Pseudonym, u32)>() + 1)
            + self.records.capacity() * std::mem::size_of::<SubjectRecord>()
    }
}

/// Everything derived from the log.
#[derive(Default)]
pub struct State {
    pub subjects: Subjects,
    pub usage: Usage,
    pub consent: ConsentRegistry,
    /// Sequence number of the next log record to apply.
    pub next_seq: u64,
    /// Events applied in total (for the subjects/events gauges).
    pub events_applied: u64,
}

impl State {
    /// Applies log record `seq`. Records must come in log order.
    pub fn apply(&mut self, seq: u64, event: &Event) {
        debug_assert!(seq >= self.next_seq, "records applied out of order");
        let subject = self.subject_for(event);
        self.usage.apply(subject, event);
        if let EventBody::Consent { purpose, granted } = event.body {
            self.consent.record(subject, ConsentChange { purpose, granted, ts_ms: event.ts_ms });
        }
        self.next_seq = seq + 1;
        self.events_applied += 1;
    }

    fn subject_for(&mut self, event: &Event) -> u32 {
        if let Some(&subject) = self.subjects.index.get(&event.subject) {
            let record = &mut self.subjects.records[subject as usize];
            record.first_seen_ms = record.first_seen_ms.min(event.ts_ms);
            return subject;
        }
        let subject = self.subjects.records.len() as u32;
        self.subjects.index.insert(event.subject, subject);
        self.subjects.records.push(SubjectRecord {
            pseudonym: event.subject,
            region: event.region,
            first_seen_ms: event.ts_ms,
        });
        self.usage.add_subject(subject, event.region);
        subject
    }

    /// Approximate heap bytes of all state (for the memory-per-subject figure).
    pub fn heap_bytes(&self) -> usize {
        self.subjects.heap_bytes() + self.usage.heap_bytes()
    }
}
