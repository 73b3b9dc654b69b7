//! The write path: edge -> durable log -> state, with group commit.
//!
//! Owns: the data dir layout, opening it (lock, key, snapshot + replay), the
//! single writer thread that appends batches to the log as one durable group
//! and applies them to state before acknowledging (read-your-writes).
//! Never: decides what may leave the process (that is `gate/`), and never
//! acknowledges an event before it is on disk.
//!
//! This file holds the public [`Pipeline`] API. The rest, one job per file:
//! `open.rs` (opening and rebuild), `replay.rs` (reading the log back as
//! records, with progress reports), `writer.rs` (group commit and
//! apply), `housekeeping.rs` (erasure compaction, snapshots, the revocation
//! hook, crypto-shredding), `batch.rs` (edge output framed for the writer),
//! `compact.rs` (rewriting the log without erased people), `rules.rs`
//! (installing abuse rules as control records), `cluster.rs` (cluster mode:
//! writing through the cluster's log and following it).

mod allocator;
mod backup;
mod batch;
mod cluster;
mod compact;
mod housekeeping;
mod open;
mod outputs;
mod replay;
mod rules;
mod writer;

pub use allocator::give_back as give_back_free_memory;
pub use backup::{BackupError, BackupHook, BackupReport, BACKUP_MANIFEST};
pub use batch::{idempotency_digest, prepare, prepare_lines, request_digest, Prepared, Rejection};
pub use cluster::ClusterOptions;
pub use compact::{compact_log, compact_log_reporting, recover_interrupted, CompactReport, OUTPUTS_OWED};
pub use open::{rebuild_state, rebuild_state_reporting};
pub use outputs::{
    read_mark, Decision, DisclosedDecider, MessageOutputs, OnFile, OutputItem, OutputsHook, OUTPUTS_MARK,
};
pub use replay::{replay_records, replay_records_reporting, Progress, PROGRESS_EVERY};
pub use rules::{watch_rules, RulesLoadError, RulesLoaded};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use crate::consent::Policy;
use crate::contract::{Control, ControlBody, KeyedAnswer, Pseudonym, Region};
use crate::edge::{Edge, PseudonymKey};
use crate::log::{DirLock, LogError};
use crate::state::State;
use crate::vault::Vault;
use writer::{Commit, Job};

/// Sub-directory of the data dir holding log segments.
pub const LOG_DIR: &str = "log";
/// Sub-directory holding the state snapshot.
pub const STATE_DIR: &str = "state";

/// How the pipeline opens a data dir.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub data_dir: PathBuf,
    /// Hex key from config; `None` loads or creates `pseudonym.key`.
    pub pseudonym_key: Option<PseudonymKey>,
    pub default_region: Region,
    pub policy: Policy,
    pub segment_bytes: u64,
    /// Records applied between automatic snapshots.
    pub snapshot_every_records: u64,
    /// Partner named on the service's partner events that name none.
    pub default_partner: String,
    /// Abuse rules file; `None` runs the built-in defaults.
    pub rules_path: Option<PathBuf>,
    /// Longest time an erased subject's events stay in the log: the writer
    /// compacts the log this long after the first pending erasure (zero:
    /// before acknowledging the deletion).
    pub erasure_compaction: std::time::Duration,
    /// Event times more than this far ahead of arrival are refused.
    pub max_future_skew_ms: i64,
    /// The process's clock: arrival times, control records, and everyone
    /// who asks the pipeline (`Clock::system()` outside tests).
    pub clock: crate::clock::Clock,
    /// How long a batch's idempotency key is honoured after it was first seen.
    pub idempotency_window: std::time::Duration,
    /// Cluster mode: write through the cluster's log and apply it (see
    /// `cluster.rs`); `None` is the embedded single-node mode.
    pub cluster: Option<ClusterOptions>,
}

/// How the writer settled a batch.
#[derive(Debug)]
pub enum Committed {
    /// Written and applied, from this sequence number on.
    Applied { first_seq: u64 },
    /// A keyed batch whose key was already applied: nothing was written;
    /// this is the answer the first one got.
    Replayed(KeyedAnswer),
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("creating data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] crate::log::LockError),
    #[error(transparent)]
    Key(#[from] crate::edge::KeyError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("log record {seq} cannot be decoded: {source}")]
    Decode { seq: u64, source: crate::contract::CodecError },
    /// A write to the log failed (the cause, as [`LogError::disk_fault`]
    /// words it): the batch was not acknowledged and no later one is until
    /// proviso restarts.
    #[error(
        "proviso could not write its log ({0}); this batch was not acknowledged and proviso accepts no writes \
         until it is restarted: free space or repair the disk, restart proviso, then resend the batch with the same \
         Idempotency-Key (it is applied once)"
    )]
    Failed(String),
    #[error("proviso is shutting down")]
    ShuttingDown,
    #[error("abuse rules: {0}")]
    Rules(String),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// Cluster mode: the cluster's log could not be written or this node
    /// has not applied it in time; nothing of the batch is acknowledged.
    #[error("cluster: {0}")]
    Cluster(String),
    #[error(
        "this data dir is a cluster node's copy of its cluster's log (up to {0}): start it with --nats and the \
         cluster's NATS URL; events go to the cluster (POST /v1/events to any node), not into one node's dir"
    )]
    ClusterCopy(String),
}

/// What replaying a data dir found.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenReport {
    pub from_snapshot: bool,
    pub replayed_records: u64,
}

/// Called by the writer after each log compaction (outputs rewrite their
/// own files without the erased people).
pub type CompactionHook = Arc<dyn Fn() + Send + Sync>;

/// Called by the writer with the revocations of each group, after it is
/// applied and before it is acknowledged (the feeds append retractions).
pub type RevocationHook = Arc<dyn Fn(&[crate::state::Withdrawal]) + Send + Sync>;

/// An open data dir with its writer thread.
pub struct Pipeline {
    edge: Arc<Edge>,
    state: Arc<RwLock<State>>,
    policy: Policy,
    sender: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    hook: Arc<Mutex<Option<RevocationHook>>>,
    on_compacted: Arc<Mutex<Option<CompactionHook>>>,
    on_backup: Arc<Mutex<Option<BackupHook>>>,
    vault: Arc<Vault>,
    data_dir: PathBuf,
    report: OpenReport,
    clock: crate::clock::Clock,
    /// [`PipelineOptions::idempotency_window`] in milliseconds.
    idempotency_window_ms: i64,
    /// Why the log failed, once a write to it failed (the writer sets it).
    write_failure: Arc<Mutex<Option<String>>>,
    /// Readers blocked on the state lock right now: while a long group is
    /// applied, the writer lets them in between two records (see
    /// `writer::apply`), so a query never waits for a whole group.
    readers_waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// Cluster mode: this node's link to the cluster's log.
    cluster: Option<Arc<cluster::Node>>,
    /// Cluster mode: where the outputs hook goes (the writer reads it).
    outputs_hook: Option<outputs::HookSlot>,
    /// Cluster mode: disclosures this node submitted and waits for, and
    /// whether each was written (see `outputs.rs`).
    disclosure_outcomes: Arc<Mutex<std::collections::HashMap<[u8; 16], Option<outputs::Outcome>>>>,
    /// Cluster mode: the cover last handed to the writer (the same one is
    /// not sent again).
    cover_sent: Mutex<Option<crate::state::Cover>>,
    _lock: DirLock,
}

impl Pipeline {
    /// Installs the hook that receives each group's revocations before the
    /// group is acknowledged.
    pub fn set_revocation_hook(&self, hook: RevocationHook) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Installs the hook run after each log compaction.
    pub fn set_compaction_hook(&self, hook: CompactionHook) {
        *self.on_compacted.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Installs the hook that copies the outputs (audit log, feeds) into a
    /// backup, run by the writer between the log copy and the vault copy.
    pub fn set_backup_hook(&self, hook: BackupHook) {
        *self.on_backup.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Cluster mode: installs the hook that writes the partner outputs (audit
    /// log, feeds) of each group in log order, and has the writer write
    /// those that waited for it (the messages applied while the node
    /// caught up, or decided again after a crash). `on_file`: what the
    /// audit log and the feeds hold now. Embedded mode uses the revocation
    /// hook instead, and this does nothing.
    pub fn set_outputs_hook(&self, hook: OutputsHook, on_file: OnFile) {
        let Some(slot) = &self.outputs_hook else { return };
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((hook, on_file));
        let (done, written) = mpsc::channel();
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sender) = sender {
            if sender.send(Job::WriteOutputs(done)).is_ok() {
                let _ = written.recv();
            }
        }
    }

    /// Whether this pipeline is a node of a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Cluster mode: appends a disclosure to the cluster's log and waits
    /// until this node applied it; `Ok(true)` when the gate let it through
    /// at its point of the log and its audit and feed records are on file,
    /// `Ok(false)` when it refused someone it names (nothing was written),
    /// an error when its records could not be written.
    pub fn disclose(&self, at_ms: i64, record: crate::contract::DisclosedRecord) -> Result<bool, PipelineError> {
        let id = record.id;
        let outcomes = Arc::clone(&self.disclosure_outcomes);
        outcomes.lock().unwrap_or_else(|p| p.into_inner()).insert(id, None);
        let committed = self.commit_blocking(Prepared::from_control(Control {
            ts_ms: at_ms,
            body: ControlBody::Disclosed(Box::new(record)),
        }));
        let outcome = outcomes.lock().unwrap_or_else(|p| p.into_inner()).remove(&id).flatten();
        committed?;
        match outcome {
            Some(outputs::Outcome::Written) => Ok(true),
            Some(outputs::Outcome::Refused) | None => Ok(false),
            Some(outputs::Outcome::Failed(why)) => Err(PipelineError::Cluster(format!(
                "this node could not write the disclosure's audit and feed records ({why}); it answers no disclosure \
                 until it is restarted, and other nodes go on"
            ))),
        }
    }

    /// Takes a consistent backup of the data dir into `dest` (which must not
    /// exist) while the pipeline runs: the writer stops between two groups,
    /// compacts away any pending erasure, copies the log up to its position,
    /// writes a snapshot of state at that position, has the backup hook copy
    /// the outputs, copies the vault and the key, and only then takes the
    /// next group. Every batch acknowledged before this call is in it.
    /// In cluster mode the cluster's log first mints a secret for everyone
    /// who has none (the writer cannot: it applies that log).
    pub fn backup(&self, dest: &Path) -> Result<BackupReport, BackupError> {
        let mut minted = 0;
        if self.cluster.is_some() {
            let people: Vec<Pseudonym> = self
                .state()
                .subjects
                .all()
                .map(|record| record.pseudonym)
                .filter(|pseudonym| *pseudonym != Pseudonym::ERASED)
                .collect();
            let before = self.vault.len();
            self.mint_secrets(&people)?;
            minted = self.vault.len().saturating_sub(before) as u64;
        }
        let (reply, answer) = mpsc::channel();
        let job = backup::BackupJob { dest: dest.to_path_buf(), reply };
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match sender {
            Some(sender) => sender.send(Job::Backup(job)).map_err(|_| PipelineError::ShuttingDown)?,
            None => return Err(PipelineError::ShuttingDown.into()),
        }
        let mut report = answer.recv().unwrap_or(Err(PipelineError::ShuttingDown.into()))?;
        report.secrets_minted += minted;
        Ok(report)
    }

    /// Cluster mode: appends a `SecretMinted` record for each of `people`
    /// without a secret, and waits until this node applied them (its vault
    /// holds them then, as every node's does). Nothing to do in embedded
    /// mode, where the vault mints a secret when it is first asked for.
    /// Never call it holding a lock the writer may wait for.
    pub fn mint_secrets(&self, people: &[Pseudonym]) -> Result<(), PipelineError> {
        if self.cluster.is_none() {
            return Ok(());
        }
        let missing = self.vault.missing(people);
        if missing.is_empty() {
            return Ok(());
        }
        let ts_ms = self.clock.now_ms();
        let mut prepared = Prepared::default();
        for subject in missing {
            let mut nonce = [0u8; 32];
            getrandom::fill(&mut nonce).map_err(|error| PipelineError::Cluster(format!("no randomness: {error}")))?;
            prepared.push_control(Control { ts_ms, body: ControlBody::SecretMinted { subject, nonce } });
        }
        self.commit_blocking(prepared).map(drop)
    }

    /// The per-person secrets every outgoing identifier is derived from.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    pub fn edge(&self) -> &Edge {
        &self.edge
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The process's clock (the one the edge stamps arrivals with).
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Why writes are refused until restart, once a write to the log
    /// failed (as [`LogError::disk_fault`] words it); `None` while healthy.
    pub fn write_failure(&self) -> Option<String> {
        self.write_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// Cluster mode: cover the usage of the people of these partitions
    /// from now on (the leases' last round says which this node holds).
    /// The writer rebuilds usage for them between two groups; until then
    /// state keeps its cover, and says so (`State::cover`). A cover the
    /// writer's queue has no room for now is sent at the next call.
    pub fn cover(&self, cover: crate::state::Cover) {
        let mut sent = self.cover_sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.as_ref() == Some(&cover) {
            return;
        }
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sender) = sender {
            if sender.try_send(Job::Cover(cover.clone())).is_ok() {
                *sent = Some(cover);
            }
        }
    }

    /// Read access to state. Hold it briefly: the writer waits for readers.
    /// A reader that has to wait says so, and the writer lets it in within
    /// about a millisecond of applying, even in the middle of a group.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        match self.state.try_read() {
            Ok(guard) => return guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        self.readers_waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let guard = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.readers_waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        guard
    }

    /// Runs the edge over a request body (NDJSON or a JSON array), then
    /// refuses partner flags and friendships about accounts not linked to
    /// their partner (as state stands now, plus this body's own links).
    pub fn prepare(&self, body: &[u8], source: crate::edge::Source<'_>) -> Prepared {
        let mut prepared = batch::prepare(&self.edge, body, source);
        // The state lock is taken only for the (rare) partner flag and
        // friendship lines, so ordinary ingest never waits on it here.
        prepared
            .refuse_unlinked_partner_events(|partner, account| self.state().linked_subject(partner, account).is_some());
        prepared
    }

    /// Hands a prepared batch to the writer; `ack` runs once it is durable and
    /// applied (or failed) with its first sequence number. Blocks while the
    /// writer's queue is full. A keyed batch goes through [`Pipeline::submit_keyed`].
    pub fn submit(&self, prepared: Prepared, ack: impl FnOnce(Result<u64, PipelineError>) + Send + 'static) {
        debug_assert!(prepared.key.is_none(), "keyed batches go through submit_keyed");
        self.submit_keyed(prepared, move |result| {
            ack(result.map(|committed| match committed {
                Committed::Applied { first_seq } => first_seq,
                // Only a keyed batch is ever replayed.
                Committed::Replayed(_) => 0,
            }))
        });
    }

    /// The first answer to the idempotency key `digest` (see
    /// [`idempotency_digest`]) if a batch with it was applied within the
    /// window. A miss here is checked again by the writer, which alone
    /// applies keys, so a concurrent resend is still caught there.
    pub fn recent_answer(&self, digest: &[u8; 16]) -> Option<KeyedAnswer> {
        let not_before_ms = self.key_window().not_before_ms();
        self.state().recent_keys.get(digest, not_before_ms).cloned()
    }

    /// How long idempotency keys are honoured, on the pipeline's clock.
    fn key_window(&self) -> writer::KeyWindow {
        writer::KeyWindow { clock: self.clock.clone(), window_ms: self.idempotency_window_ms }
    }

    /// Like [`Pipeline::submit`], for any batch, keyed ([`Prepared::keyed`])
    /// or not: `ack` says whether it was applied or, its key being already
    /// applied, answered with the first answer and not written again.
    pub fn submit_keyed(
        &self,
        prepared: Prepared,
        ack: impl FnOnce(Result<Committed, PipelineError>) + Send + 'static,
    ) {
        if let Some(node) = &self.cluster {
            let keyed = prepared.key.as_ref().map(|key| key.digest);
            let state = Arc::clone(&self.state);
            let keys = self.key_window();
            // A keyed batch the cluster's log already held: answered with
            // the first answer, as the embedded writer does (a different
            // body under a used key is then told apart by its digest).
            let first_answer = move || {
                let digest = keyed?;
                let not_before_ms = keys.not_before_ms();
                let state = state.read().unwrap_or_else(|p| p.into_inner());
                state.recent_keys.get(&digest, not_before_ms).cloned()
            };
            node.submit(prepared, Box::new(first_answer), Box::new(ack));
            return;
        }
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match sender {
            Some(sender) => {
                if let Err(mpsc::SendError(Job::Commit(commit))) =
                    sender.send(Job::Commit(Commit { prepared, ack: Box::new(ack) }))
                {
                    (commit.ack)(Err(PipelineError::ShuttingDown));
                }
            }
            None => ack(Err(PipelineError::ShuttingDown)),
        }
    }

    /// Commits and waits: returns the first sequence number of the batch.
    pub fn commit_blocking(&self, prepared: Prepared) -> Result<u64, PipelineError> {
        let (sender, receiver) = mpsc::channel();
        self.submit(prepared, move |result| {
            let _ = sender.send(result);
        });
        receiver.recv().unwrap_or(Err(PipelineError::ShuttingDown))
    }

    /// Cluster mode: waits until this node has applied the cluster's log
    /// up to `at` (a gathered query's position). At once in embedded mode.
    pub async fn applied_through(&self, at: crate::contract::LogPosition) -> Result<(), PipelineError> {
        match &self.cluster {
            Some(node) => node.applied_through(at).await,
            None => Ok(()),
        }
    }

    /// Cluster mode: waits until this node has applied every write the
    /// cluster acknowledged before the call (read-your-writes on every
    /// node). At once in embedded mode.
    pub async fn catch_up(&self) -> Result<(), PipelineError> {
        match &self.cluster {
            Some(node) => node.catch_up().await,
            None => Ok(()),
        }
    }

    /// Opened without `--nats` on a data dir that is a cluster node's copy of
    /// the cluster's log: writing to it here would make it differ from its
    /// cluster, so servers and `proviso ingest` refuse it
    /// ([`PipelineError::ClusterCopy`]).
    pub fn refuse_cluster_copy(&self) -> Result<(), PipelineError> {
        let position = self.state().stream_position;
        match &self.cluster {
            None if position != crate::contract::LogPosition::default() => {
                Err(PipelineError::ClusterCopy(position.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Cluster mode: the last message of the cluster's log this node
    /// applied, and why it stopped applying, once it has.
    pub fn cluster_status(&self) -> Option<(crate::contract::LogPosition, Option<String>)> {
        self.cluster.as_ref().map(|node| node.status())
    }

    /// Stops the writer after it drains its queue, and writes a final snapshot.
    pub fn shutdown(&self) {
        if let Some(node) = &self.cluster {
            node.stop();
        }
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}
