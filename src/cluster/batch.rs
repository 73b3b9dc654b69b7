//! One accepted batch as the cluster stream stores it: its events split by
//! partition, each part one message of framed records (the embedded log's
//! framing and encoding, so a part reads back with the same code).
//!
//! Owns: the split (each event to its acting person's partition, in batch
//! order within a part), the message id of each part (the request's digest
//! and the partition: a client's retry of the batch is stored once per
//! part), and reading a part back.
//! Never: decides which events are accepted (the edge did) or sends
//! anything (`stream::EventStream::publish_batch` does).

use crate::contract::{decode_event, encode_event, Event};

use super::partition_of;

/// The events of one batch that go to one partition, framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub partition: u16,
    /// Events in the part.
    pub events: u64,
    /// The events framed as the log frames records.
    pub framed: Vec<u8>,
}

/// Splits a batch's events over `partitions`: one part per partition that
/// gets any, in partition order; within a part, the batch's order.
pub fn split(events: &[Event], partitions: u16) -> Vec<Part> {
    let mut parts: Vec<Option<Part>> = vec![None; usize::from(partitions.max(1))];
    for event in events {
        let partition = partition_of(&event.subject, partitions);
        let part =
            parts[usize::from(partition)].get_or_insert_with(|| Part { partition, events: 0, framed: Vec::new() });
        crate::log::frame_with(&mut part.framed, |out| encode_event(event, out));
        part.events += 1;
    }
    parts.into_iter().flatten().collect()
}

/// The message id of one part of the batch whose request digest is
/// `request` (the idempotency key's digest, or the body's).
pub fn message_id(request: &[u8; 16], partition: u16) -> String {
    format!("{}-{partition}", super::hex(request))
}

/// Why a part does not read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a stored batch part does not read back: {0}")]
pub struct PartError(String);

/// The events of a stored part, in order.
pub fn read(part: &[u8]) -> Result<Vec<Event>, PartError> {
    let mut reader = part;
    let mut payload = Vec::new();
    let mut events = Vec::new();
    while !reader.is_empty() {
        match crate::log::read_record(&mut reader, &mut payload) {
            Ok(Some(_)) => events.push(decode_event(&payload).map_err(|error| PartError(error.to_string()))?),
            Ok(None) => break,
            Err(detail) => return Err(PartError(detail.to_string())),
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Region;
    use crate::edge::{Edge, PseudonymKey};

    fn events(count: usize) -> Vec<Event> {
        let edge = Edge::new(PseudonymKey::from_bytes([4; 32]), Region(*b"US"));
        (0..count)
            .map(|n| {
                let line = format!(
                    r#"{{"type":"message","ts":1764000000000,"phone":"+1415555{:04}","to":"+14155559999","kind":"text"}}"#,
                    n % 40
                );
                edge.accept_line(line.as_bytes()).expect("accepted")
            })
            .collect()
    }

    /// Every event lands in exactly one part, its person's, in batch order;
    /// the parts read back as the events.
    #[test]
    fn a_batch_splits_into_its_people_s_partitions_and_reads_back() {
        let batch = events(200);
        for partitions in [1u16, 7, 64] {
            let parts = split(&batch, partitions);
            assert!(parts.windows(2).all(|w| w[0].partition < w[1].partition));
            assert_eq!(parts.iter().map(|p| p.events).sum::<u64>(), 200);
            for part in &parts {
                let read = read(&part.framed).expect("reads back");
                assert_eq!(read.len() as u64, part.events);
                let expected: Vec<Event> =
                    batch.iter().filter(|e| partition_of(&e.subject, partitions) == part.partition).cloned().collect();
                assert_eq!(read, expected, "partition {} of {partitions}", part.partition);
            }
        }
        assert_eq!(split(&batch, 1).len(), 1);
        assert!(split(&[], 64).is_empty());
    }

    /// A torn part is an error, not fewer events.
    #[test]
    fn a_torn_part_does_not_read() {
        let parts = split(&events(5), 1);
        let framed = &parts[0].framed;
        assert!(read(&framed[..framed.len() - 3]).is_err());
    }

    #[test]
    fn message_ids_name_the_request_and_the_partition() {
        assert_eq!(message_id(&[0xab; 16], 7), format!("{}-7", "ab".repeat(16)));
        assert_ne!(message_id(&[1; 16], 7), message_id(&[1; 16], 8));
    }
}
