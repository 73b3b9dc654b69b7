//! Partition leases: which node holds each of the cluster's partitions,
//! kept in the JetStream key-value bucket `proviso_leases`.
//!
//! Owns: taking, renewing, giving up and releasing the lease of each
//! partition so that every partition is held by at most one node at any
//! moment and, once the live nodes have each run a round, by exactly one;
//! each node holding its share (the partition count over the live nodes,
//! rounded up); a partition of a node that dies moving to the others once
//! its lease expires, and a node that joins getting its share from the
//! others. Which partitions a node holds now ([`LeaseView`]).
//! Never: applies, moves or drops state (the writer does: after each
//! round `Keeper::start`'s callback hands it the partitions held, and it
//! rebuilds the usage and audience memberships it covers), or trusts a
//! lease past the time its holder could prove it.
//!
//! How "at most one" holds. A lease is the key `partition.<n>`; its value
//! names the holder's process. The bucket's `max_age` is the lease time:
//! JetStream removes a key that was not written for that long. A node takes
//! a free partition with `create` (which fails when the key exists) and
//! renews with `update` at the revision it last wrote (which fails when
//! anyone else wrote since), so only one node's writes succeed for a
//! partition until the key expires. A node counts a lease as its own only
//! until the time it sent its last successful write plus the lease time,
//! less a margin: the key cannot expire on the server (nor anyone else take
//! it) before that, since the write reached the server after it was sent.
//! A node that cannot reach NATS keeps its leases only until then.
//!
//! The share. Every node also writes `node.<hex of its holder value>` each round;
//! the live nodes are the keys of that form (a dead node's expires with its
//! leases). Each round a node renews what it holds, gives up what is above
//! its share (the ones it ranks lowest), and takes free partitions up to its
//! share, in the order of a rendezvous hash of its name and the partition
//! (so nodes mostly go for different ones, and a restarted node takes back
//! much of what it had).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;

use super::ClusterError;

/// The bucket of partition leases and node heartbeats.
pub const BUCKET: &str = "proviso_leases";

/// A lease's time unless the cluster's bucket already says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(6);

/// How long before its server-side expiry a node stops counting a lease as
/// its own, as a share of the lease time: room for clocks that run at
/// slightly different rates and for the time a write takes.
const MARGIN_DIVISOR: u32 = 4;

/// Which partitions this node holds, as of now: shared between the task
/// that keeps the leases and whoever asks (health, later the applier).
#[derive(Clone, Default)]
pub struct LeaseView {
    held: Arc<RwLock<BTreeMap<u16, Instant>>>,
}

impl LeaseView {
    /// The partitions whose lease this node can prove now.
    pub fn held(&self) -> Vec<u16> {
        self.held_at(Instant::now())
    }

    /// The partitions whose lease this node could prove at `now`.
    pub fn held_at(&self, now: Instant) -> Vec<u16> {
        let held = self.held.read().unwrap_or_else(|p| p.into_inner());
        held.iter().filter(|(_, until)| **until > now).map(|(partition, _)| *partition).collect()
    }

    fn set(&self, held: &BTreeMap<u16, Held>) {
        let view = held.iter().map(|(partition, lease)| (*partition, lease.valid_until)).collect();
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = view;
    }
}

/// One lease this node wrote.
#[derive(Clone, Copy, Debug)]
struct Held {
    revision: u64,
    valid_until: Instant,
}

/// This node's side of the partition leases.
pub struct Leases {
    store: kv::Store,
    partitions: u16,
    /// The lease time (the bucket's `max_age`).
    lease: Duration,
    /// The node's name, as configured (its rendezvous ranking uses it).
    node: String,
    /// What this process writes as the holder: its name and a random
    /// instance, so a restarted node never mistakes its earlier life's
    /// leases for its own.
    holder: bytes::Bytes,
    held: BTreeMap<u16, Held>,
    view: LeaseView,
}

impl Leases {
    /// Opens the lease bucket (made with `lease` as its lease time when the
    /// cluster has none yet; an existing bucket's time is the cluster's) for
    /// node `node` of a cluster of `partitions` partitions.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        node: &str,
        partitions: u16,
        lease: Duration,
    ) -> Result<Leases, ClusterError> {
        let store = match jetstream.get_key_value(BUCKET).await {
            Ok(store) => store,
            Err(_) => {
                let created = jetstream
                    .create_key_value(kv::Config {
                        bucket: BUCKET.to_string(),
                        history: 1,
                        max_age: lease,
                        storage: async_nats::jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await;
                match created {
                    Ok(store) => store,
                    Err(error) => jetstream.get_key_value(BUCKET).await.map_err(|_| ClusterError::jetstream(error))?,
                }
            }
        };
        let status = store.status().await.map_err(ClusterError::jetstream)?;
        let lease = status.info.config.max_age;
        if lease.is_zero() {
            return Err(ClusterError::JetStream(format!(
                "the bucket {BUCKET} has no max_age: leases would never expire"
            )));
        }
        let mut instance = [0u8; 8];
        getrandom::fill(&mut instance).map_err(|error| ClusterError::JetStream(error.to_string()))?;
        let holder = format!("{node} {}", super::hex(&instance)).into_bytes().into();
        Ok(Leases {
            store,
            partitions: partitions.max(1),
            lease,
            node: node.to_string(),
            holder,
            held: BTreeMap::new(),
            view: LeaseView::default(),
        })
    }

    /// What this node holds, for others to read.
    pub fn view(&self) -> LeaseView {
        self.view.clone()
    }

    /// The cluster's partition count.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// The lease time in force.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// One round: writes this node's heartbeat, renews its leases (those it
    /// lost are dropped), gives up those above its share, and takes free
    /// partitions up to it. Returns the partitions held after it. An error
    /// from NATS ends the round early; leases not renewed stay held only
    /// until they lapse.
    pub async fn round(&mut self) -> Result<Vec<u16>, ClusterError> {
        let result = self.round_inner().await;
        self.drop_lapsed(Instant::now());
        self.view.set(&self.held);
        result.map(|()| self.held.keys().copied().collect())
    }

    async fn round_inner(&mut self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let valid_until = started + self.lease - self.lease / MARGIN_DIVISOR;
        self.store.put(self.node_key(), self.holder.clone()).await.map_err(ClusterError::jetstream)?;
        let nodes = self.live_nodes().await?.max(1);
        // Renew what is held; a failed update means another node wrote the
        // key since (this node's lease had lapsed): it is not ours.
        let mine: Vec<(u16, Held)> = self.held.iter().map(|(p, h)| (*p, *h)).collect();
        for (partition, held) in mine {
            match self.store.update(partition_key(partition), self.holder.clone(), held.revision).await {
                Ok(revision) => {
                    self.held.insert(partition, Held { revision, valid_until });
                }
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::info!(partition, "A partition's lease was taken by another node.");
                    self.held.remove(&partition);
                }
                Err(error) => return Err(ClusterError::jetstream(error)),
            }
        }
        let share = usize::from(self.partitions).div_ceil(nodes);
        // Above the share (a node joined): give up the lowest ranked.
        while self.held.len() > share {
            let Some(&lowest) = self.held.keys().min_by_key(|p| self.rank(**p)) else { break };
            let Some(held) = self.held.remove(&lowest) else { break };
            // Failing, it lapses instead (or another node took it already).
            if let Err(error) = self.store.delete_expect_revision(partition_key(lowest), Some(held.revision)).await {
                tracing::debug!(partition = lowest, %error, "A lease given up could not be deleted; it lapses.");
            }
            tracing::info!(partition = lowest, share, nodes, "Gave up a partition's lease for a node that joined.");
        }
        if self.held.len() >= share {
            return Ok(());
        }
        // Below it: take free partitions, best ranked first.
        let mut free = Vec::new();
        for partition in 0..self.partitions {
            if self.held.contains_key(&partition) {
                continue;
            }
            let entry = self.store.entry(partition_key(partition)).await.map_err(ClusterError::jetstream)?;
            if entry.is_none_or(|entry| entry.operation != kv::Operation::Put) {
                free.push(partition);
            }
        }
        free.sort_by_key(|p| std::cmp::Reverse(self.rank(*p)));
        for partition in free {
            if self.held.len() >= share {
                break;
            }
            // Another node may take it first: then `create` fails, and
            // this node tries the next one.
            let sent = Instant::now();
            if let Ok(revision) = self.store.create(partition_key(partition), self.holder.clone()).await {
                let valid_until = sent + self.lease - self.lease / MARGIN_DIVISOR;
                self.held.insert(partition, Held { revision, valid_until });
            }
        }
        Ok(())
    }

    /// Gives up every lease this node holds and its heartbeat, so that the
    /// others take its partitions at their next round instead of after the
    /// lease time (a clean stop).
    pub async fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.view.set(&self.held);
        for (partition, lease) in held {
            if let Err(error) = self.store.delete_expect_revision(partition_key(partition), Some(lease.revision)).await
            {
                tracing::debug!(partition, %error, "A lease could not be released; it lapses instead.");
            }
        }
        let _ = self.store.delete(self.node_key()).await;
    }

    fn drop_lapsed(&mut self, now: Instant) {
        self.held.retain(|_, held| held.valid_until > now);
    }

    /// The nodes whose heartbeat has not expired (this one included).
    async fn live_nodes(&self) -> Result<usize, ClusterError> {
        let mut keys = self.store.keys().await.map_err(ClusterError::jetstream)?;
        let mut nodes = 0;
        while let Some(key) = keys.next().await {
            if key.map_err(ClusterError::jetstream)?.starts_with("node.") {
                nodes += 1;
            }
        }
        Ok(nodes)
    }

    /// This process's heartbeat key: by its holder value (name and
    /// instance), so two nodes of one name (`host:0` when ports are picked
    /// at start) still count as two.
    fn node_key(&self) -> String {
        format!("node.{}", super::hex(&self.holder))
    }

    /// This node's rendezvous rank of `partition`: higher is taken first
    /// and given up last.
    fn rank(&self, partition: u16) -> u64 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.node.as_bytes());
        hasher.update(&partition.to_le_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}

fn partition_key(partition: u16) -> String {
    format!("partition.{partition}")
}

/// A running [`keep`] task: what it holds, and how to stop it.
#[derive(Clone)]
pub struct Keeper {
    pub view: LeaseView,
    /// The cluster's partition count.
    pub partitions: u16,
    stop: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
}

impl Keeper {
    /// Starts keeping `leases` on the current runtime: a round at once,
    /// then one every third of the lease time. After each round that
    /// reached NATS, `on_round` gets the partitions held (the node's
    /// pipeline covers them). While `healthy` says no (the node stopped
    /// applying the cluster's log, or cannot write its own), the node
    /// holds no lease, so the others take its partitions.
    pub fn start(
        leases: Leases,
        on_round: impl Fn(&[u16]) + Send + 'static,
        healthy: impl Fn() -> bool + Send + 'static,
    ) -> Keeper {
        let (stop, stopped) = tokio::sync::mpsc::channel(1);
        let view = leases.view();
        let (every, partitions) = (leases.lease() / 3, leases.partitions);
        tokio::spawn(keep(leases, every, stopped, on_round, healthy));
        Keeper { view, partitions, stop }
    }

    /// Releases every lease (a clean stop), waiting at most `within`.
    pub async fn release(&self, within: Duration) {
        let (done, released) = tokio::sync::oneshot::channel();
        if self.stop.send(done).await.is_ok() {
            let _ = tokio::time::timeout(within, released).await;
        }
    }
}

/// Keeps `leases` in a loop, a round every `every`, until `stop` fires;
/// then releases them and answers `stop`'s sender.
async fn keep(
    mut leases: Leases,
    every: Duration,
    mut stop: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<()>>,
    on_round: impl Fn(&[u16]),
    healthy: impl Fn() -> bool,
) {
    loop {
        if healthy() {
            match leases.round().await {
                Ok(held) => on_round(&held),
                Err(error) => tracing::warn!(%error, "A round of partition leases failed; retried."),
            }
        } else if !leases.held.is_empty() {
            tracing::warn!("This node cannot serve its partitions (see /healthz): their leases are given up.");
            leases.release().await;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            done = stop.recv() => {
                leases.release().await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
        }
    }
}
