//! The cluster's log: every record every node applies, in the one order all
//! of them apply it, cut into epochs. Each epoch is one JetStream stream,
//! `PROVISO_LOG_<epoch>` (subject `proviso.log.<epoch>`); the epoch writers
//! append to is named in the key-value bucket `proviso_cluster` (key
//! `log_epoch`). Each node keeps its own copy in its data dir (the embedded
//! log) and resumes this log after the last position its copy holds.
//!
//! Why epochs: JetStream frees a message's bytes only with its whole block
//! file (an expired or purged message stays in a block a newer one
//! shares), while deleting a stream deletes its files. So the log is
//! forgotten an epoch at a time, like the embedded log's segments: an
//! epoch's stream is deleted once its last message is older than the
//! retention less one epoch, and nothing of anyone (an erased person
//! included) stays in NATS longer than the retention.
//!
//! Owns: creating epochs and rolling to the next one every quarter of the
//! retention (any node may: the key's revision lets one win), sealing an
//! epoch once the next has begun (so a late write goes to the next one and
//! a follower knows when an epoch is whole), deleting epochs past
//! retention, appending one batch's framed records as one message, or as a
//! few consecutive ones in one atomic batch when it is larger than
//! [`MESSAGE_BYTES`] (stored together, in the batch's order, or not at all),
//! deduplicated within an epoch by message ids derived from the request,
//! following one epoch from a sequence, and the position current now (what
//! a read waits for).
//! Never: decides what a batch holds (the edge did, and the pipeline framed
//! it), or applies anything (the pipeline's follower does).

use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream::Stream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::stream::BatchStored;
use super::ClusterError;
use crate::contract::LogPosition;

/// Streams of the log are named this, then the epoch.
pub const STREAM_PREFIX: &str = "PROVISO_LOG_";
/// A batch is cut into messages of about this many bytes of framed records
/// (whole records; NATS refuses a message over 1 MiB by default).
pub const MESSAGE_BYTES: usize = 512 << 10;
/// How long a batch over one message waits for its turn while the stream
/// holds as many uncommitted batches as the server allows
/// (`jetstream { limits { batch { max_inflight_per_stream } } }` in the
/// server's config, 50 by default in nats-server 2.15).
const BUSY_LIMIT: Duration = Duration::from_secs(10);
/// The shortest retention: a node may be away for three quarters of it.
pub const MIN_RETENTION: Duration = Duration::from_secs(4);
/// The key of the current epoch in the cluster's bucket.
const EPOCH_KEY: &str = "log_epoch";
/// The key of the oldest epoch not deleted: raised before an epoch's stream
/// is deleted, so a stream that is missing below it is gone for good, and
/// one missing at or above it is only not there yet (a restarting server
/// still loading its streams).
const OLDEST_KEY: &str = "log_oldest";

/// The stream of `epoch`.
pub fn stream_name(epoch: u64) -> String {
    format!("{STREAM_PREFIX}{epoch}")
}

/// The subject of `epoch`'s stream.
pub fn subject(epoch: u64) -> String {
    format!("proviso.log.{epoch}")
}

/// The current epoch, as the bucket holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Epoch {
    epoch: u64,
    /// When it began, epoch milliseconds.
    started_ms: i64,
}

/// The cluster's log, opened.
pub struct ClusterLog {
    jetstream: jetstream::Context,
    bucket: kv::Store,
    dedup: Duration,
    retention: Duration,
    /// The epoch this node appends to (the latest it has heard of).
    current: Mutex<u64>,
}

/// Where a follower stands in its epoch ([`ClusterLog::progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Messages the epoch holds after the follower's position.
    pub after: u64,
    /// The epoch is sealed and the follower has read all of it.
    pub finished: bool,
}

/// What appending one batch got.
/// One message of the log as a node reads it.
#[derive(Clone, Debug)]
pub struct Followed {
    pub position: LogPosition,
    /// When JetStream stored it (epoch milliseconds): the same for every
    /// node, so what a node does "at" a message does not take its own clock.
    pub published_ms: i64,
    /// The request digest it was appended under (from its message id): the
    /// idempotency key's digest for a keyed batch, random otherwise.
    pub request: Option<[u8; 16]>,
    pub payload: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The position of the batch's last message: a node that has applied
    /// it has applied the whole batch.
    pub last: LogPosition,
    /// Every message was a duplicate: the batch was appended before, under
    /// the same request digest, and nothing was stored now.
    pub duplicate: bool,
}

impl ClusterLog {
    /// Opens the log, creating its first epoch when the cluster is new.
    /// `retention` (at least [`MIN_RETENTION`]) bounds how long anything
    /// stays in NATS: an epoch lasts a quarter of it, and is deleted once
    /// its end is three quarters of it old. `dedup` is how long a message id
    /// is remembered within an epoch (proviso's idempotency window).
    pub async fn open(
        jetstream: &jetstream::Context,
        dedup: Duration,
        retention: Duration,
    ) -> Result<ClusterLog, ClusterError> {
        let bucket = super::settings::bucket(jetstream).await?;
        let log = ClusterLog {
            jetstream: jetstream.clone(),
            bucket,
            dedup,
            retention: retention.max(MIN_RETENTION),
            current: Mutex::new(0),
        };
        let now = crate::clock::now_ms();
        if log.epoch().await?.is_none() {
            log.create_stream(1).await?;
            let first = Epoch { epoch: 1, started_ms: now };
            // Two nodes making a new cluster at once: one create wins.
            let _ = log.bucket.create(EPOCH_KEY, encode(&first)?).await;
        }
        let epoch =
            log.epoch().await?.ok_or_else(|| ClusterError::JetStream("no log epoch after creating one".into()))?;
        log.heard_of(epoch.0.epoch);
        Ok(log)
    }

    /// How long an epoch lasts.
    pub fn epoch_length(&self) -> Duration {
        (self.retention / 4).max(Duration::from_secs(1))
    }

    /// The current epoch and the bucket revision it was read at.
    async fn epoch(&self) -> Result<Option<(Epoch, u64)>, ClusterError> {
        let Some(entry) = self.bucket.entry(EPOCH_KEY).await.map_err(ClusterError::jetstream)? else {
            return Ok(None);
        };
        if entry.value.is_empty() {
            return Ok(None);
        }
        let epoch =
            serde_json::from_slice(&entry.value).map_err(|error| ClusterError::Unreadable(error.to_string()))?;
        Ok(Some((epoch, entry.revision)))
    }

    /// Notes that `epoch` has begun: appends go there from now on.
    fn heard_of(&self, epoch: u64) -> u64 {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *current = (*current).max(epoch);
        *current
    }

    async fn create_stream(&self, epoch: u64) -> Result<Stream, ClusterError> {
        self.jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: stream_name(epoch),
                subjects: vec![subject(epoch)],
                storage: jetstream::stream::StorageType::File,
                duplicate_window: self.dedup,
                // A batch over one message is published atomically.
                allow_atomic_publish: true,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::jetstream)
    }

    /// `epoch`'s stream, `None` once it is deleted (or never was). Its
    /// `cached_info()` is read by this very request: use it rather than ask
    /// again.
    async fn stream(&self, epoch: u64) -> Result<Option<Stream>, ClusterError> {
        match self.jetstream.get_stream(stream_name(epoch)).await {
            Ok(stream) => Ok(Some(stream)),
            Err(error) if matches!(error.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref js) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                Ok(None)
            }
            Err(error) => Err(ClusterError::jetstream(error)),
        }
    }

    /// The oldest epoch not deleted (1 until one is).
    async fn oldest(&self) -> Result<u64, ClusterError> {
        match self.bucket.get(OLDEST_KEY).await.map_err(ClusterError::jetstream)? {
            Some(bytes) if !bytes.is_empty() => {
                serde_json::from_slice(&bytes).map_err(|error| ClusterError::Unreadable(error.to_string()))
            }
            _ => Ok(1),
        }
    }

    /// Why the stream of `at`'s epoch is missing: deleted past retention (the
    /// node at `at` is behind for good), or not there yet.
    async fn missing(&self, at: LogPosition) -> ClusterError {
        match self.oldest().await {
            Ok(oldest) if at.epoch < oldest => {
                ClusterError::Behind { position: at, first: LogPosition { epoch: oldest, sequence: 0 } }
            }
            Ok(_) => ClusterError::JetStream(format!("the stream of epoch {} is not there (yet)", at.epoch)),
            Err(error) => error,
        }
    }

    /// Appends one batch's framed records (the embedded log's framing) under
    /// the request digest `request`, and returns once JetStream
    /// acknowledged it. A batch larger than [`MESSAGE_BYTES`] is cut into a
    /// few messages published as one atomic batch: JetStream stores all of
    /// them, one after another, in one epoch, or none (a crash half way
    /// leaves nothing, so a retry into a later epoch cannot store a part
    /// twice). A retry with the same digest in the same epoch stores nothing
    /// more.
    pub async fn append(&self, request: &[u8; 16], framed: &[u8]) -> Result<Appended, ClusterError> {
        let prefix = super::hex(request);
        let parts = chunks(framed, MESSAGE_BYTES);
        if let [only] = parts.as_slice() {
            let (last, duplicate) = self.append_message(&format!("{prefix}-0"), Bytes::copy_from_slice(only)).await?;
            return Ok(Appended { last, duplicate });
        }
        let ids: Vec<String> = (0..parts.len()).map(|index| format!("{prefix}-{index}")).collect();
        let parts: Vec<Bytes> = parts.into_iter().map(Bytes::copy_from_slice).collect();
        let mut epoch = self.heard_of(0);
        let busy_until = std::time::Instant::now() + BUSY_LIMIT;
        loop {
            let batch = format!("{prefix}-{:016x}", fastrand::u64(..));
            match super::stream::publish_atomic(&self.jetstream, subject(epoch), &batch, &ids, &parts).await {
                Ok(BatchStored::Whole { last }) => {
                    return Ok(Appended { last: LogPosition { epoch, sequence: last }, duplicate: false })
                }
                // Stored whole by an earlier attempt, somewhere before the
                // log's end now: a node that has applied that much has it.
                Ok(BatchStored::Duplicate) => {
                    let last = self.last_position().await?.max(LogPosition { epoch, sequence: 0 });
                    return Ok(Appended { last, duplicate: true });
                }
                // As many batches as the server stages at once are in
                // flight (from every node): this one waits its turn.
                Ok(BatchStored::Busy) if std::time::Instant::now() < busy_until => {
                    tokio::time::sleep(Duration::from_millis(5 + fastrand::u64(..20))).await;
                }
                Ok(BatchStored::Busy) => {
                    return Err(ClusterError::JetStream(format!(
                        "JetStream held too many uncommitted batches for {} s",
                        BUSY_LIMIT.as_secs()
                    )))
                }
                Err(error) => epoch = self.later_epoch(epoch, error).await?,
            }
        }
    }

    /// After a publish to `epoch` failed: the later epoch to publish to
    /// instead when one has begun (`epoch` is sealed), else the error.
    async fn later_epoch(&self, epoch: u64, error: ClusterError) -> Result<u64, ClusterError> {
        let latest = self.epoch().await?.map_or(epoch, |(latest, _)| latest.epoch);
        if latest <= epoch {
            return Err(error);
        }
        Ok(self.heard_of(latest))
    }

    /// Publishes one message to the current epoch; when that fails because
    /// the epoch was sealed (a later one has begun), to the later one.
    async fn append_message(&self, id: &str, payload: Bytes) -> Result<(LogPosition, bool), ClusterError> {
        let mut epoch = self.heard_of(0);
        loop {
            match super::stream::publish(&self.jetstream, subject(epoch), id, payload.clone()).await {
                Ok(published) => {
                    return Ok((LogPosition { epoch, sequence: published.sequence }, published.duplicate));
                }
                Err(error) => epoch = self.later_epoch(epoch, error).await?,
            }
        }
    }

    /// The epoch's messages after sequence `after`, in order, for as long as
    /// the returned stream is read: what a node applies. An ordered
    /// consumer: after a lost connection or a restarted server it resumes
    /// after the last message it handed out, never skipping or repeating
    /// one. [`ClusterError::Behind`] when the log no longer holds the
    /// message right after `after` (its epoch deleted, past retention).
    pub async fn follow(
        &self,
        after: LogPosition,
    ) -> Result<impl futures_util::Stream<Item = Result<Followed, ClusterError>> + Send + use<>, ClusterError> {
        use futures_util::StreamExt;
        let epoch = after.epoch;
        let behind =
            |first: u64| ClusterError::Behind { position: after, first: LogPosition { epoch, sequence: first } };
        let Some(stream) = self.stream(epoch).await? else {
            return Err(behind(0));
        };
        let first = stream.cached_info().state.first_sequence;
        if first > after.sequence.saturating_add(1) {
            return Err(behind(first));
        }
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject(epoch),
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after.sequence.saturating_add(1),
                },
                ..Default::default()
            })
            .await
            .map_err(ClusterError::jetstream)?;
        let messages = consumer.messages().await.map_err(ClusterError::jetstream)?;
        Ok(messages.map(move |message| {
            let message = message.map_err(ClusterError::jetstream)?;
            let info = message.info().map_err(ClusterError::jetstream)?;
            let published_ms = i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            let request = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
                .and_then(|id| super::request_of(id.as_str()));
            Ok(Followed {
                position: LogPosition { epoch, sequence: info.stream_sequence },
                published_ms,
                request,
                payload: message.payload.clone(),
            })
        }))
    }

    /// Where a node at `at` stands in `at`'s epoch: how many messages the
    /// epoch holds after `at`, and whether the node has read the whole of
    /// it (a later epoch has begun, `at`'s is sealed, which this does, so
    /// no write can land in it after this answer, and none is after `at`).
    /// Then the node goes on at the next epoch's start.
    pub async fn progress(&self, at: LogPosition) -> Result<Progress, ClusterError> {
        let latest = self.epoch().await?.map_or(0, |(latest, _)| latest.epoch);
        self.heard_of(latest);
        let Some(stream) = self.stream(at.epoch).await? else {
            return Err(self.missing(at).await);
        };
        let mut info = stream.cached_info().clone();
        if latest > at.epoch && !info.config.sealed {
            let mut config = info.config.clone();
            config.sealed = true;
            self.jetstream.update_stream(config).await.map_err(ClusterError::jetstream)?;
            info = stream.get_info().await.map_err(ClusterError::jetstream)?;
        }
        let after = info.state.last_sequence.saturating_sub(at.sequence);
        Ok(Progress { after, finished: latest > at.epoch && info.config.sealed && after == 0 })
    }

    /// The position of the log's last message now (the current epoch's start
    /// while it is empty): a node that has applied up to it has every write
    /// acknowledged before this call.
    pub async fn last_position(&self) -> Result<LogPosition, ClusterError> {
        let (epoch, _) = self.epoch().await?.ok_or_else(|| ClusterError::JetStream("the log has no epoch".into()))?;
        self.heard_of(epoch.epoch);
        let sequence = match self.stream(epoch.epoch).await? {
            Some(stream) => stream.cached_info().state.last_sequence,
            None => 0,
        };
        Ok(LogPosition { epoch: epoch.epoch, sequence })
    }

    /// The log's upkeep, which every node runs now and then (any may; the
    /// bucket's revision makes one win a roll): begins the next epoch once
    /// the current one is [`ClusterLog::epoch_length`] old, and deletes
    /// every epoch whose end is more than the retention less one epoch ago.
    /// Returns the epochs deleted.
    pub async fn upkeep(&self) -> Result<Vec<u64>, ClusterError> {
        let now = crate::clock::now_ms();
        let length_ms = self.epoch_length().as_millis() as i64;
        if let Some((current, revision)) = self.epoch().await? {
            if now - current.started_ms >= length_ms {
                let next = Epoch { epoch: current.epoch + 1, started_ms: now };
                self.create_stream(next.epoch).await?;
                if self.bucket.update(EPOCH_KEY, encode(&next)?, revision).await.is_ok() {
                    self.heard_of(next.epoch);
                }
            }
        }
        let keep_ms = (self.retention.as_millis() as i64).saturating_sub(length_ms);
        let mut epochs = self.epochs().await?;
        epochs.sort_unstable();
        let mut deleted = Vec::new();
        for pair in epochs.windows(2) {
            let (epoch, next) = (pair[0], pair[1]);
            let Some(stream) = self.stream(next).await? else { continue };
            let info = stream.cached_info();
            let ended_ms = (info.created.unix_timestamp_nanos() / 1_000_000) as i64;
            if now - ended_ms > keep_ms {
                // First the mark that it is gone for good, then the stream.
                if self.oldest().await? <= epoch {
                    let mark = serde_json::to_vec(&(epoch + 1)).map_err(|e| ClusterError::Unreadable(e.to_string()))?;
                    self.bucket.put(OLDEST_KEY, mark.into()).await.map_err(ClusterError::jetstream)?;
                }
                match self.jetstream.delete_stream(stream_name(epoch)).await {
                    Ok(_) => deleted.push(epoch),
                    // Another node deleted it first.
                    Err(_) if self.stream(epoch).await?.is_none() => {}
                    Err(error) => return Err(ClusterError::jetstream(error)),
                }
            }
        }
        Ok(deleted)
    }

    /// The epochs whose streams exist now.
    pub async fn epochs(&self) -> Result<Vec<u64>, ClusterError> {
        use futures_util::TryStreamExt;
        let names: Vec<String> = self.jetstream.stream_names().try_collect().await.map_err(ClusterError::jetstream)?;
        Ok(names.iter().filter_map(|name| name.strip_prefix(STREAM_PREFIX)?.parse().ok()).collect())
    }
}

fn encode(epoch: &Epoch) -> Result<Bytes, ClusterError> {
    serde_json::to_vec(epoch).map(Bytes::from).map_err(|error| ClusterError::Unreadable(error.to_string()))
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

    #[test]
    fn positions_order_by_epoch_then_sequence() {
        let at = |epoch, sequence| LogPosition { epoch, sequence };
        assert!(at(1, 900) < at(2, 0));
        assert!(at(2, 0) < at(2, 1));
        assert_eq!(LogPosition::default(), at(0, 0));
    }
}
