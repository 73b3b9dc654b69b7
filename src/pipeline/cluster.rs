//! Cluster mode's side of the pipeline: a node writes through the cluster's
//! log in NATS JetStream and applies that log, whoever wrote to it.
//!
//! Owns: sending a batch to the cluster's log instead of the local writer
//! (acknowledged once JetStream stored every message of it *and* this node
//! applied them, so a node reads its own writes as in embedded mode), the
//! follower (one thread reading the cluster's log after this node's
//! position and handing each message to the local writer with a
//! `StreamPosition` record, so the node's log is its copy of the cluster's
//! up to that position, and a restart resumes right after it; at the end
//! of a finished epoch it goes on at the next), the log's upkeep (rolling
//! and deleting epochs, which every node runs), and catching up (waiting
//! until this node has applied the cluster's log as it stood when a
//! request began: read-your-writes on every node).
//! Never: applies a record that is not in the cluster's log, or skips one:
//! a message that does not decode stops the follower, and the node then
//! answers 503 until it is restarted on a proviso that reads it.

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::writer::{AckFn, Commit, Job};
use super::{Committed, PipelineError, Prepared};
use crate::cluster::log::ClusterLog;
use crate::contract::{decode_record, encode_control, Control, ControlBody, LogPosition, Record};
use crate::log::frame_with;

/// The first answer to a keyed batch, from state once it is applied.
pub(super) type FirstAnswer = Box<dyn FnOnce() -> Option<crate::contract::KeyedAnswer> + Send>;

/// What a pipeline needs to run as a node of a cluster.
#[derive(Clone)]
pub struct ClusterOptions {
    /// The cluster's log, opened.
    pub log: Arc<ClusterLog>,
    /// The runtime that talks to NATS.
    pub runtime: tokio::runtime::Handle,
    /// Decides each disclosure at its point of the log (from `disclose/`).
    pub decider: super::DisclosedDecider,
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterOptions")
    }
}

/// How long a write waits for this node to apply it, and a read to catch
/// up, before answering 503 (the write is durable in the cluster by then:
/// a retry with its Idempotency-Key is stored once).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// A node's link to its cluster.
pub(super) struct Node {
    log: Arc<ClusterLog>,
    runtime: tokio::runtime::Handle,
    /// The position in the cluster's log applied here, and why the
    /// follower stopped, once it has.
    applied: watch::Sender<Position>,
    /// Tells the follower and the upkeep to stop (the pipeline is shutting down).
    stop: watch::Sender<bool>,
    follower: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Clone, Debug, Default)]
struct Position {
    applied: LogPosition,
    stopped: Option<String>,
}

/// How long the follower waits for a message before it asks whether its
/// epoch is over (and a later one has begun).
const IDLE: Duration = Duration::from_millis(250);

/// How long a consumer may sit idle while messages wait before it is made anew.
const STALLED: Duration = Duration::from_secs(1);

/// How often a node runs the log's upkeep (rolling epochs, deleting old ones).
const UPKEEP_EVERY: Duration = Duration::from_millis(500);

impl Node {
    /// Starts following the cluster's log after `position` (the last
    /// message this node's log holds), handing messages to `writer`, and the
    /// log's upkeep.
    pub(super) fn start(
        options: ClusterOptions,
        position: LogPosition,
        writer: SyncSender<Job>,
    ) -> Result<Arc<Node>, PipelineError> {
        // A node that never applied anything starts at the first epoch.
        let position = position.max(LogPosition { epoch: 1, sequence: 0 });
        let (applied, _) = watch::channel(Position { applied: position, stopped: None });
        let (stop, stopped) = watch::channel(false);
        let node =
            Arc::new(Node { log: options.log, runtime: options.runtime, applied, stop, follower: Mutex::new(None) });
        let following = Arc::clone(&node);
        let thread = std::thread::Builder::new()
            .name("proviso-follower".into())
            .spawn(move || following.follow(position, writer, stopped))
            .map_err(|error| PipelineError::Cluster(format!("starting the follower: {error}")))?;
        *node.follower.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        let (log, mut stopped) = (Arc::clone(&node.log), node.stop.subscribe());
        node.runtime.spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(UPKEEP_EVERY) => {}
                }
                match log.upkeep().await {
                    Ok(deleted) if !deleted.is_empty() => {
                        tracing::info!(?deleted, "Deleted epochs of the cluster's log past retention.")
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "The cluster's log upkeep failed; trying again."),
                }
            }
        });
        Ok(node)
    }

    /// Stops the follower and the upkeep (the messages the follower handed
    /// over are still applied).
    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.follower.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }

    /// The follower's loop: read the log after `position`, hand each message
    /// to the writer in order, mark it applied when the writer says so; at
    /// the end of a finished epoch, go on at the next one.
    fn follow(&self, position: LogPosition, writer: SyncSender<Job>, mut stopped: watch::Receiver<bool>) {
        let runtime = self.runtime.clone();
        let mut position = position;
        let result: Result<(), String> = runtime.block_on(async {
            loop {
                let mut messages = tokio::select! {
                    _ = stopped.changed() => return Ok(()),
                    opened = self.log.follow(position) => match opened {
                        Ok(messages) => Box::pin(messages),
                        Err(error @ crate::cluster::ClusterError::Behind { .. }) => return Err(error.to_string()),
                        Err(error) => {
                            tracing::warn!(%error, "Cannot read the cluster's log; trying again in a second.");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                };
                // How long the consumer has sat idle while its epoch held
                // messages after `position`: an ordered consumer that did
                // not come back after a lost connection. It is made anew.
                let mut stalled = Duration::ZERO;
                loop {
                    let next = tokio::select! {
                        _ = stopped.changed() => return Ok(()),
                        next = tokio::time::timeout(IDLE, messages.next()) => next,
                    };
                    let (at, published_ms, request, payload) = match next {
                        Ok(Some(Ok(message))) => {
                            (message.position, message.published_ms, message.request, message.payload)
                        }
                        Ok(Some(Err(error))) => {
                            tracing::warn!(%error, "Reading the cluster's log failed; resuming after {position}.");
                            break;
                        }
                        Ok(None) => break,
                        Err(_idle) => match self.log.progress(position).await {
                            Ok(progress) if progress.finished => {
                                self.next_epoch(&mut position).await;
                                break;
                            }
                            Ok(progress) if progress.after > 0 => {
                                stalled += IDLE;
                                if stalled >= STALLED {
                                    tracing::warn!(%position, "The cluster's log has messages this node is not sent; reading it anew.");
                                    break;
                                }
                                continue;
                            }
                            Ok(_) => continue,
                            Err(error @ crate::cluster::ClusterError::Behind { .. }) => return Err(error.to_string()),
                            Err(error) => {
                                tracing::warn!(%error, "Cannot tell where epoch {} stands.", position.epoch);
                                continue;
                            }
                        },
                    };
                    stalled = Duration::ZERO;
                    crate::failpoint::reach("follower.apply");
                    let mut prepared = applied_message(&payload, at, published_ms)
                        .map_err(|error| format!("message {at} of the cluster's log: {error}"))?;
                    prepared.resent = request.map(|request| (request, published_ms));
                    let applied = self.applied.clone();
                    let ack: AckFn = Box::new(move |result| match result {
                        Ok(_) => {
                            applied.send_modify(|position| position.applied = position.applied.max(at));
                            crate::telemetry::ClusterApplied { epoch: at.epoch, sequence: at.sequence }.emit();
                        }
                        Err(error) => applied.send_modify(|position| position.stopped = Some(error.to_string())),
                    });
                    // The writer's queue is bounded: this blocks while it is full.
                    if writer.send(Job::Commit(Commit { prepared, ack })).is_err() {
                        return Ok(());
                    }
                    position = at;
                }
            }
        });
        if let Err(error) = result {
            tracing::error!(%error, "The follower stopped: this node applies nothing more until it is restarted.");
            self.applied.send_modify(|position| position.stopped = Some(error));
        }
    }

    /// `position`'s epoch is whole and this node handed all of it to the
    /// writer: once the writer has applied it, the node is at the next
    /// epoch's start (nothing is written for that: after a restart the node
    /// finds the epoch finished again).
    async fn next_epoch(&self, position: &mut LogPosition) {
        let done = *position;
        let mut applied = self.applied.subscribe();
        let _ = applied.wait_for(|now| now.applied >= done || now.stopped.is_some()).await;
        *position = LogPosition { epoch: done.epoch + 1, sequence: 0 };
        let next = *position;
        self.applied.send_modify(|now| now.applied = now.applied.max(next));
        tracing::debug!(epoch = next.epoch, "Following the next epoch of the cluster's log.");
    }

    /// Appends `prepared` to the cluster's log; `ack` runs once this node
    /// has applied it (or it failed).
    /// A keyed batch all of whose messages the log already held gets
    /// `first_answer` (the answer state keeps for its key), as a replay.
    pub(super) fn submit(self: &Arc<Self>, prepared: Prepared, first_answer: FirstAnswer, ack: AckFn) {
        let node = Arc::clone(self);
        self.runtime.spawn(async move {
            let keyed = prepared.key.as_ref().map(|key| key.digest);
            let request = match keyed {
                Some(digest) => digest,
                // Unkeyed: never a duplicate, as in embedded mode.
                None => match fresh_id() {
                    Ok(id) => id,
                    Err(error) => return ack(Err(error)),
                },
            };
            if prepared.framed.is_empty() {
                return ack(Ok(Committed::Applied { first_seq: 0 }));
            }
            let appended = match node.log.append(&request, &prepared.framed).await {
                Ok(appended) => appended,
                Err(error) => return ack(Err(PipelineError::Cluster(error.to_string()))),
            };
            if let Err(error) = node.applied_through(appended.last).await {
                return ack(Err(error));
            }
            match appended.duplicate.then(first_answer).flatten() {
                Some(answer) => ack(Ok(Committed::Replayed(answer))),
                None => ack(Ok(Committed::Applied { first_seq: 0 })),
            }
        });
    }

    /// Waits until this node has applied the cluster's log as it stands
    /// now: every write acknowledged (by any node) before this call.
    pub(super) async fn catch_up(&self) -> Result<(), PipelineError> {
        let started = std::time::Instant::now();
        let last = self.log.last_position().await.map_err(|error| PipelineError::Cluster(error.to_string()))?;
        self.applied_through(last).await?;
        crate::telemetry::ClusterCaughtUp { waited: started.elapsed() }.emit();
        Ok(())
    }

    /// [`Node::catch_up`] from a thread outside the runtime (opening).
    pub(super) fn catch_up_blocking(&self) -> Result<(), PipelineError> {
        self.runtime.block_on(self.catch_up())
    }

    /// Waits until this node has applied the log up to `sequence`.
    pub(super) async fn applied_through(&self, sequence: LogPosition) -> Result<(), PipelineError> {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(
            CATCH_UP_LIMIT,
            applied.wait_for(|position| position.applied >= sequence || position.stopped.is_some()),
        )
        .await;
        match reached {
            Ok(Ok(position)) => match &position.stopped {
                Some(why) if position.applied < sequence => Err(PipelineError::Cluster(format!(
                    "this node stopped applying the cluster's log ({why}); restart it"
                ))),
                _ => Ok(()),
            },
            Ok(Err(_)) => Err(PipelineError::ShuttingDown),
            Err(_) => Err(PipelineError::Cluster(format!(
                "this node has not applied the cluster's log up to {sequence} within {} s",
                CATCH_UP_LIMIT.as_secs()
            ))),
        }
    }

    /// The position in the cluster's log applied here, and why the follower
    /// stopped, once it has.
    pub(super) fn status(&self) -> (LogPosition, Option<String>) {
        let position = self.applied.borrow();
        (position.applied, position.stopped.clone())
    }
}

/// A message of the cluster's log as the writer takes it: its records,
/// framed as they came, then the `StreamPosition` record naming it, with
/// the message's time (JetStream's).
fn applied_message(payload: &[u8], position: LogPosition, published_ms: i64) -> Result<Prepared, String> {
    let mut prepared = Prepared::default();
    let mut reader = payload;
    let mut record = Vec::new();
    while !reader.is_empty() {
        match crate::log::read_record(&mut reader, &mut record) {
            Ok(Some(_)) => prepared.records.push(decode_record(&record).map_err(|error| error.to_string())?),
            Ok(None) => break,
            Err(detail) => return Err(detail.to_string()),
        }
    }
    prepared.framed.extend_from_slice(payload);
    let position = Control { ts_ms: published_ms, body: ControlBody::StreamPosition { position } };
    frame_with(&mut prepared.framed, |out| encode_control(&position, out));
    prepared.records.push(Record::Control(position));
    Ok(prepared)
}

/// A random request id for an unkeyed batch.
fn fresh_id() -> Result<[u8; 16], PipelineError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|error| PipelineError::Cluster(format!("no randomness: {error}")))?;
    Ok(id)
}
