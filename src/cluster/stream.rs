//! The cluster's event stream: one JetStream stream, `PROVISO_EVENTS`, with
//! one subject per virtual partition (`proviso.events.<partition>`).
//!
//! Owns: creating the stream (file storage, deduplication window),
//! publishing one message to a partition and waiting for JetStream's
//! acknowledgement (with `sync_interval: always` on the server, stored and
//! fsynced), deduplicated by a message id the caller derives from the
//! request (a client's retry is stored once), reading a message back by
//! sequence or a partition's after a sequence, and erasing one (JetStream's message delete overwrites the
//! message's bytes in its block file; a subject-filtered purge would leave
//! them there).
//! Never: decides what a message holds (the pipeline's framed records,
//! which went through the edge) or which partition a person is in
//! ([`super::partition_of`]).

use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use bytes::Bytes;

use super::ClusterError;

/// The stream's name.
pub const STREAM: &str = "PROVISO_EVENTS";

/// The subject of one partition.
pub fn subject(partition: u16) -> String {
    format!("proviso.events.{partition}")
}

/// What JetStream answered to one publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message's sequence in the stream.
    pub sequence: u64,
    /// The message id was seen within the deduplication window: nothing was
    /// stored, `sequence` is the first copy's.
    pub duplicate: bool,
}

/// Publishes `payload` to `subject` under `message_id` and returns once
/// JetStream acknowledged it (stored, or recognised as a duplicate).
pub(super) async fn publish(
    jetstream: &jetstream::Context,
    subject: String,
    message_id: &str,
    payload: Bytes,
) -> Result<Published, ClusterError> {
    let publish = jetstream::message::PublishMessage::build().message_id(message_id).payload(payload);
    let ack = jetstream
        .send_publish(subject, publish)
        .await
        .map_err(ClusterError::jetstream)?
        .await
        .map_err(ClusterError::jetstream)?;
    Ok(Published { sequence: ack.sequence, duplicate: ack.duplicate })
}

/// What JetStream answered to an atomic batch ([`publish_atomic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BatchStored {
    /// Every message stored, consecutively; the sequence of the last one.
    Whole { last: u64 },
    /// A message id of the batch was seen within the deduplication window:
    /// nothing of this attempt was stored (an earlier attempt was, whole).
    Duplicate,
    /// The stream holds as many uncommitted batches as the server allows
    /// (50 a stream by default): nothing was stored; try again shortly.
    Busy,
}

/// JetStream's error code for an atomic batch holding a message id it has
/// seen: the whole batch is refused.
const ATOMIC_DUPLICATE: u64 = 10201;
/// JetStream's error code for an atomic batch begun while the stream holds
/// the most uncommitted ones the server allows.
const ATOMIC_TOO_MANY_INFLIGHT: u64 = 10210;

/// Publishes `parts` to `subject` as one atomic batch (ADR-50, nats-server
/// 2.12 and later): JetStream stores all of them, one after another, or
/// none. Part `i` carries the message id `ids[i]`. A publisher that stops
/// half way (a crash, a lost connection) leaves nothing stored; the server
/// drops an uncommitted batch after its batch timeout. `batch` names this
/// attempt and must be new for every attempt.
pub(super) async fn publish_atomic(
    jetstream: &jetstream::Context,
    subject: String,
    batch: &str,
    ids: &[String],
    parts: &[Bytes],
) -> Result<BatchStored, ClusterError> {
    use async_nats::header;
    let client = jetstream.client();
    let count = parts.len();
    for (index, (id, part)) in ids.iter().zip(parts).enumerate() {
        let sequence = index + 1;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(header::NATS_BATCH_ID, batch);
        headers.insert(header::NATS_BATCH_SEQUENCE, sequence.to_string().as_str());
        headers.insert(header::NATS_MESSAGE_ID, id.as_str());
        if sequence == count {
            headers.insert(header::NATS_BATCH_COMMIT, header::NATS_BATCH_COMMIT_FINAL);
        }
        if sequence > 1 && sequence < count {
            client
                .publish_with_headers(subject.clone(), headers, part.clone())
                .await
                .map_err(ClusterError::jetstream)?;
        } else {
            // The first part is answered (empty) once the batch has begun,
            // or with the reason it cannot; the commit with the batch's ack.
            let reply = client
                .request_with_headers(subject.clone(), headers, part.clone())
                .await
                .map_err(ClusterError::jetstream)?;
            if sequence == count || !reply.payload.is_empty() {
                let ack: BatchAck = serde_json::from_slice(&reply.payload)
                    .map_err(|error| ClusterError::Unreadable(error.to_string()))?;
                match ack.error {
                    Some(error) if error.err_code == ATOMIC_DUPLICATE => return Ok(BatchStored::Duplicate),
                    Some(error) if error.err_code == ATOMIC_TOO_MANY_INFLIGHT => return Ok(BatchStored::Busy),
                    Some(error) => {
                        return Err(ClusterError::JetStream(format!(
                            "atomic batch refused: {} (error {})",
                            error.description, error.err_code
                        )))
                    }
                    None if sequence == count => return Ok(BatchStored::Whole { last: ack.seq }),
                    None => {}
                }
            }
        }
        // A part sent, the batch not committed yet.
        crate::failpoint::reach("cluster.batch_part");
    }
    Err(ClusterError::JetStream("an atomic batch of no parts".into()))
}

/// JetStream's answer to a batch's first part (when it is refused) or commit.
#[derive(serde::Deserialize)]
struct BatchAck {
    #[serde(default)]
    seq: u64,
    error: Option<BatchError>,
}

#[derive(serde::Deserialize)]
struct BatchError {
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// The event stream of one cluster.
pub struct EventStream {
    jetstream: jetstream::Context,
    stream: Stream,
}

impl EventStream {
    /// Opens the stream, creating it when the cluster is new. `dedup` is how
    /// long a message id is remembered (proviso's idempotency window).
    pub async fn open(jetstream: &jetstream::Context, dedup: Duration) -> Result<EventStream, ClusterError> {
        let stream = jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: STREAM.to_string(),
                subjects: vec!["proviso.events.*".to_string()],
                storage: jetstream::stream::StorageType::File,
                duplicate_window: dedup,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::jetstream)?;
        Ok(EventStream { jetstream: jetstream.clone(), stream })
    }

    /// Publishes `payload` to `partition` under `message_id` and returns once
    /// JetStream acknowledged it (stored, or recognised as a duplicate).
    pub async fn publish(&self, partition: u16, message_id: &str, payload: Bytes) -> Result<Published, ClusterError> {
        publish(&self.jetstream, subject(partition), message_id, payload).await
    }

    /// Publishes every part of one batch (see [`super::batch::split`]) at
    /// once, each under its message id from `request` (the request's
    /// digest), and returns once JetStream acknowledged them all, in the
    /// parts' order. A retry of the batch (same digest) is answered with
    /// duplicates and stores nothing. On an error some parts may be stored:
    /// the batch is not acknowledged, and the client's retry completes it
    /// without storing those twice.
    pub async fn publish_batch(
        &self,
        request: &[u8; 16],
        parts: Vec<super::batch::Part>,
    ) -> Result<Vec<Published>, ClusterError> {
        let publishes = parts.into_iter().map(|part| {
            let id = super::batch::message_id(request, part.partition);
            async move { self.publish(part.partition, &id, Bytes::from(part.framed)).await }
        });
        futures_util::future::join_all(publishes).await.into_iter().collect()
    }

    /// The message at `sequence`: its partition and payload; `None` when
    /// there is none (never stored, or erased).
    pub async fn get(&self, sequence: u64) -> Result<Option<(u16, Bytes)>, ClusterError> {
        match self.stream.get_raw_message(sequence).await {
            Ok(message) => {
                let partition = message
                    .subject
                    .as_str()
                    .strip_prefix("proviso.events.")
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| {
                        ClusterError::JetStream(format!("message {sequence} is not on a partition subject"))
                    })?;
                Ok(Some((partition, message.payload)))
            }
            Err(error) if matches!(error.kind(), jetstream::stream::RawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(error) => Err(ClusterError::jetstream(error)),
        }
    }

    /// The messages of `partition` after stream sequence `after`, in stream
    /// order, at most `limit` of them: what the partition's owner applies
    /// when it resumes from a snapshot taken at `after`. Erased messages are
    /// not there. Reads only what the stream held when it was called, so it
    /// returns at once when there is nothing new.
    pub async fn read_partition(
        &self,
        partition: u16,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, ClusterError> {
        use futures_util::StreamExt;
        let mut consumer = self
            .stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject(partition),
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after.saturating_add(1),
                },
                ..Default::default()
            })
            .await
            .map_err(ClusterError::jetstream)?;
        let pending = consumer.info().await.map_err(ClusterError::jetstream)?.num_pending;
        let wanted = usize::try_from(pending).unwrap_or(usize::MAX).min(limit);
        let mut read = Vec::with_capacity(wanted.min(1 << 16));
        if wanted == 0 {
            return Ok(read);
        }
        let mut messages = consumer.messages().await.map_err(ClusterError::jetstream)?;
        while read.len() < wanted {
            let message = messages
                .next()
                .await
                .ok_or_else(|| ClusterError::JetStream(format!("partition {partition}'s messages ended early")))?
                .map_err(ClusterError::jetstream)?;
            let sequence = message.info().map_err(ClusterError::jetstream)?.stream_sequence;
            read.push((sequence, message.payload.clone()));
        }
        Ok(read)
    }

    /// Erases the message at `sequence`: its bytes are overwritten where
    /// JetStream stored them. `false` when there was no such message.
    pub async fn erase(&self, sequence: u64) -> Result<bool, ClusterError> {
        match self.stream.delete_message(sequence).await {
            Ok(erased) => Ok(erased),
            Err(error) if error.to_string().contains("no message found") => Ok(false),
            Err(error) => Err(ClusterError::jetstream(error)),
        }
    }

    /// Messages in the stream now.
    pub async fn stored_messages(&mut self) -> Result<u64, ClusterError> {
        Ok(self.stream.info().await.map_err(ClusterError::jetstream)?.state.messages)
    }
}
