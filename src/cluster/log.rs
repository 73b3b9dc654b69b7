//! The cluster's log: one JetStream stream, `PROVISO_LOG` (subject
//! `proviso.log`), holding every record every node applies, in the one
//! order all of them apply it. Each node keeps its own copy in its data dir
//! (the embedded log) and resumes this stream after the last message its
//! copy holds.
//!
//! Owns: creating the stream (file storage, a deduplication window of
//! proviso's idempotency window), appending one batch's framed records as
//! one message, or as a few consecutive ones when it is larger than
//! [`MESSAGE_BYTES`] (each awaited before the next, so they are stored in
//! the batch's order), deduplicated by message ids derived from the
//! request, following the stream from a sequence, and the sequence
//! current now (what a read waits for).
//! Never: decides what a batch holds (the edge did, and the pipeline framed
//! it), or applies anything (the pipeline's follower does).

use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use bytes::Bytes;

use super::stream::Published;
use super::ClusterError;

/// The stream's name.
pub const STREAM: &str = "PROVISO_LOG";
/// Its one subject.
pub const SUBJECT: &str = "proviso.log";
/// A batch is cut into messages of about this many bytes of framed records
/// (whole records; NATS refuses a message over 1 MiB by default).
pub const MESSAGE_BYTES: usize = 512 << 10;

/// The cluster's log, opened.
pub struct ClusterLog {
    jetstream: jetstream::Context,
    stream: Stream,
}

/// What appending one batch got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stream sequence of the batch's last message: a node that has
    /// applied it has applied the whole batch.
    pub last: u64,
    /// Every message was a duplicate: the batch was appended before, under
    /// the same request digest, and nothing was stored now.
    pub duplicate: bool,
}

impl ClusterLog {
    /// Opens the log, creating it when the cluster is new. Each message is
    /// kept `retention` after it was stored (at least a second), then
    /// JetStream drops it: the nodes' own logs are where events stay, and
    /// an erased person's events leave NATS within `retention` of being
    /// written. `dedup` is how long a message id is remembered (proviso's
    /// idempotency window; JetStream keeps ids no longer than messages).
    pub async fn open(
        jetstream: &jetstream::Context,
        dedup: Duration,
        retention: Duration,
    ) -> Result<ClusterLog, ClusterError> {
        let retention = retention.max(Duration::from_secs(1));
        let stream = jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: STREAM.to_string(),
                subjects: vec![SUBJECT.to_string()],
                storage: jetstream::stream::StorageType::File,
                max_age: retention,
                duplicate_window: dedup.min(retention),
                ..Default::default()
            })
            .await
            .map_err(ClusterError::jetstream)?;
        Ok(ClusterLog { jetstream: jetstream.clone(), stream })
    }

    /// Appends one batch's framed records (the embedded log's framing) under
    /// the request digest `request`, and returns once JetStream
    /// acknowledged every message of it. A retry with the same digest and
    /// records stores nothing more. On an error some messages of the batch
    /// may be stored (in order, from the first): the batch is not
    /// acknowledged, and a retry stores only the rest.
    pub async fn append(&self, request: &[u8; 16], framed: &[u8]) -> Result<Appended, ClusterError> {
        let mut appended = Appended { last: 0, duplicate: true };
        for (index, chunk) in chunks(framed, MESSAGE_BYTES).into_iter().enumerate() {
            let id = format!("{}-{index}", super::hex(request));
            let published: Published =
                super::stream::publish(&self.jetstream, SUBJECT.to_string(), &id, Bytes::copy_from_slice(chunk))
                    .await?;
            appended.last = appended.last.max(published.sequence);
            appended.duplicate &= published.duplicate;
        }
        Ok(appended)
    }

    /// The log's messages after stream sequence `after`, in order, for as
    /// long as the returned stream is read: what a node applies. An ordered
    /// consumer: after a lost connection or a restarted server it resumes
    /// after the last message it handed out, never skipping or repeating one.
    /// [`ClusterError::Behind`] when the log no longer holds the message
    /// right after `after` (past its retention).
    pub async fn follow(
        &self,
        after: u64,
    ) -> Result<impl futures_util::Stream<Item = Result<(u64, Bytes), ClusterError>> + Send + use<>, ClusterError> {
        use futures_util::StreamExt;
        let first = self.first_sequence().await?;
        if first > after.saturating_add(1) {
            return Err(ClusterError::Behind { position: after, first });
        }
        let consumer = self
            .stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: SUBJECT.to_string(),
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after.saturating_add(1),
                },
                ..Default::default()
            })
            .await
            .map_err(ClusterError::jetstream)?;
        let messages = consumer.messages().await.map_err(ClusterError::jetstream)?;
        Ok(messages.map(|message| {
            let message = message.map_err(ClusterError::jetstream)?;
            let sequence = message.info().map_err(ClusterError::jetstream)?.stream_sequence;
            Ok((sequence, message.payload.clone()))
        }))
    }

    /// The sequence of the log's first message still held (past the last
    /// one when it holds none).
    pub async fn first_sequence(&self) -> Result<u64, ClusterError> {
        Ok(self.stream.get_info().await.map_err(ClusterError::jetstream)?.state.first_sequence)
    }

    /// The sequence of the log's last message now (0 while empty): a node
    /// that has applied up to it has every write acknowledged before this
    /// call.
    pub async fn last_sequence(&self) -> Result<u64, ClusterError> {
        Ok(self.stream.get_info().await.map_err(ClusterError::jetstream)?.state.last_sequence)
    }
}

/// `framed` cut at record boundaries into pieces of at most `max` bytes (a
/// record longer than `max` is a piece of its own). Framing that does not
/// parse is kept whole in the last piece: the node that reads it refuses it.
pub fn chunks(framed: &[u8], max: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < framed.len() {
        let Some(header) = framed.get(at..at + crate::log::FRAME_HEADER) else { break };
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[..4]);
        let end = at + crate::log::FRAME_HEADER + u32::from_le_bytes(len) as usize;
        if end > framed.len() {
            break;
        }
        if end - start > max && at > start {
            pieces.push(&framed[start..at]);
            start = at;
        }
        at = end;
    }
    if start < framed.len() {
        pieces.push(&framed[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, size) in sizes.iter().enumerate() {
            crate::log::frame_with(&mut out, |payload| payload.extend(std::iter::repeat_n(n as u8, *size)));
        }
        out
    }

    /// Pieces hold whole records, in order, none over the limit unless one
    /// record alone is; together they are the input.
    #[test]
    fn a_batch_is_cut_at_record_boundaries() {
        let input = framed(&[10, 20, 30, 5, 100, 1]);
        let pieces = chunks(&input, 50);
        assert_eq!(pieces.concat(), input);
        assert_eq!(pieces.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![18 + 28, 38, 13, 108, 9]);
        assert_eq!(chunks(&input, 1 << 20), vec![&input[..]]);
        assert!(chunks(&[], 50).is_empty());
        // A torn tail stays with the last piece, whole.
        let torn = &input[..input.len() - 3];
        assert_eq!(chunks(torn, 50).concat(), torn);
    }
}
