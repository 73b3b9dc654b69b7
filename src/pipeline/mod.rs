//! The write path: edge -> durable log -> state, with group commit.
//!
//! Owns: the data dir layout, opening it (lock, key, snapshot + replay), the
//! single writer thread that appends batches to the log with one fsync per
//! group and applies them to state before acknowledging (read-your-writes).
//! Never: decides what may leave the process (that is `gate/`), and never
//! acknowledges an event before it is on disk.

mod batch;
mod compact;
mod rules;

pub use batch::{prepare_lines, Prepared, Rejection};
pub use compact::{compact_log, recover_interrupted, CompactReport};
pub use rules::{watch_rules, RulesLoadError, RulesLoaded};

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::consent::Policy;
use crate::contract::{decode_record, Region};
use crate::edge::{Edge, PseudonymKey};
use crate::log::{fsmode, DirLock, Log, LogError};
use crate::state::{load_snapshot, save_snapshot, State};
use crate::vault::Vault;

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
    #[error("the log is unavailable after a write failure; restart proviso")]
    Failed,
    #[error("proviso is shutting down")]
    ShuttingDown,
    #[error("abuse rules: {0}")]
    Rules(String),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
}

/// What replaying a data dir found.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenReport {
    pub from_snapshot: bool,
    pub replayed_records: u64,
}

type AckFn = Box<dyn FnOnce(Result<u64, PipelineError>) + Send>;

/// Called by the writer after each log compaction (outputs rewrite their
/// own files without the erased people).
pub type CompactionHook = Arc<dyn Fn() + Send + Sync>;

/// Called by the writer with the revocations of each group, after it is
/// applied and before it is acknowledged (the feeds append retractions).
pub type RevocationHook = Arc<dyn Fn(&[crate::state::Withdrawal]) + Send + Sync>;

struct Commit {
    prepared: Prepared,
    ack: AckFn,
}

/// An open data dir with its writer thread.
pub struct Pipeline {
    edge: Arc<Edge>,
    state: Arc<RwLock<State>>,
    policy: Policy,
    sender: Mutex<Option<SyncSender<Commit>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    hook: Arc<Mutex<Option<RevocationHook>>>,
    on_compacted: Arc<Mutex<Option<CompactionHook>>>,
    vault: Arc<Vault>,
    data_dir: PathBuf,
    report: OpenReport,
    _lock: DirLock,
}

impl Pipeline {
    /// Opens a data dir: takes its lock, loads the key, loads the snapshot and
    /// replays the log after it, then starts the writer.
    pub fn open(options: PipelineOptions) -> Result<Pipeline, PipelineError> {
        let data_dir = options.data_dir.clone();
        let dir_error = |source| PipelineError::DataDir { path: data_dir.display().to_string(), source };
        fsmode::create_private_dir(&data_dir).map_err(dir_error)?;
        let lock = DirLock::acquire(&data_dir)?;
        // A data dir made by an older proviso or under a loose umask: owner only.
        fsmode::restrict_tree(&data_dir).map_err(dir_error)?;
        compact::recover_interrupted(&data_dir)?;
        let key = match options.pseudonym_key.clone() {
            Some(key) => key,
            None => PseudonymKey::load_or_create(&data_dir)?,
        };
        let edge = Arc::new(
            Edge::new(key, options.default_region)
                .with_default_partner(&options.default_partner)
                .with_max_future_skew_ms(options.max_future_skew_ms),
        );
        let log = Log::open(&data_dir.join(LOG_DIR), options.segment_bytes)?;
        let (state, report) = rebuild_state(&data_dir, true)?;
        if state.next_seq > log.next_seq() {
            tracing::warn!(
                snapshot_seq = state.next_seq,
                log_seq = log.next_seq(),
                "Snapshot is ahead of the log; rebuilding state from the log alone."
            );
        }
        let state = if state.next_seq > log.next_seq() { rebuild_state(&data_dir, false)?.0 } else { state };
        let on_compacted: Arc<Mutex<Option<CompactionHook>>> = Arc::new(Mutex::new(None));
        // Erasures a crash kept from the vault (logged, not yet shredded).
        let vault = Arc::new(Vault::open(&data_dir)?);
        let shredded = vault.forget_unless(|pseudonym| state.subjects.lookup(pseudonym).is_some())?;
        if shredded > 0 {
            tracing::info!(shredded, "Destroyed the secrets of people erased before the last stop.");
        }
        let state = Arc::new(RwLock::new(state));
        let (sender, receiver) = mpsc::sync_channel::<Commit>(256);
        let writer_state = Arc::clone(&state);
        let housekeeping = Housekeeping {
            data_dir: data_dir.clone(),
            segment_bytes: options.segment_bytes,
            erasure_compaction: options.erasure_compaction,
            vault: Arc::clone(&vault),
            on_compacted: Arc::clone(&on_compacted),
        };
        let snapshot_every = options.snapshot_every_records.max(1);
        let hook: Arc<Mutex<Option<RevocationHook>>> = Arc::new(Mutex::new(None));
        let writer_hook = Arc::clone(&hook);
        let writer = std::thread::Builder::new()
            .name("proviso-writer".into())
            .spawn(move || writer_loop(receiver, log, writer_state, housekeeping, snapshot_every, writer_hook))
            .map_err(|source| PipelineError::DataDir { path: data_dir.display().to_string(), source })?;
        let pipeline = Pipeline {
            edge,
            state,
            policy: options.policy,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            hook,
            on_compacted,
            vault,
            data_dir,
            report,
            _lock: lock,
        };
        if let Some(path) = &options.rules_path {
            pipeline.install_rules_file(path).map_err(|error| PipelineError::Rules(error.to_string()))?;
        }
        Ok(pipeline)
    }

    /// Installs the hook that receives each group's revocations before the
    /// group is acknowledged.
    pub fn set_revocation_hook(&self, hook: RevocationHook) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Installs the hook run after each log compaction.
    pub fn set_compaction_hook(&self, hook: CompactionHook) {
        *self.on_compacted.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
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

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// Read access to state. Hold it briefly: the writer waits for readers.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    /// applied (or failed). Blocks while the writer's queue is full.
    pub fn submit(&self, prepared: Prepared, ack: impl FnOnce(Result<u64, PipelineError>) + Send + 'static) {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match sender {
            Some(sender) => {
                if let Err(mpsc::SendError(commit)) = sender.send(Commit { prepared, ack: Box::new(ack) }) {
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

    /// Stops the writer after it drains its queue, and writes a final snapshot.
    pub fn shutdown(&self) {
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

/// Builds state from the snapshot (when `use_snapshot`) plus the log after it.
pub fn rebuild_state(data_dir: &Path, use_snapshot: bool) -> Result<(State, OpenReport), PipelineError> {
    let mut report = OpenReport::default();
    let mut state = State::default();
    if use_snapshot {
        match load_snapshot(&data_dir.join(STATE_DIR)) {
            Ok(Some(loaded)) => {
                state = loaded;
                report.from_snapshot = true;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "Snapshot unreadable; rebuilding state from the whole log.");
            }
        }
    }
    let log_dir = data_dir.join(LOG_DIR);
    if !log_dir.exists() {
        return Ok((state, report));
    }
    let from = state.next_seq;
    replay_records(&log_dir, from, |seq, record| {
        state.apply(seq, &record);
        report.replayed_records += 1;
    })?;
    // Replayed refusals and bans were handled when first applied; the server
    // reconciles its feeds against the current state when it starts, and
    // opening the pipeline shreds any erased person's secret left behind.
    drop(state.drain_revocations());
    drop(state.drain_erased());
    Ok((state, report))
}

/// Replays the decoded records of the log in `log_dir` from `from_seq`;
/// the first undecodable record fails the whole replay (after it ends).
pub fn replay_records(
    log_dir: &Path,
    from_seq: u64,
    mut on_record: impl FnMut(u64, crate::contract::Record),
) -> Result<(), PipelineError> {
    let mut decode_error = None;
    crate::log::replay(log_dir, from_seq, |seq, payload| {
        match decode_record(payload) {
            Ok(record) => on_record(seq, record),
            Err(source) => {
                decode_error.get_or_insert(PipelineError::Decode { seq, source });
            }
        }
        Ok(())
    })?;
    match decode_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Largest group committed at once: bounds latency of the first batch in it.
const MAX_GROUP_RECORDS: u64 = 1 << 20;

fn writer_loop(
    receiver: Receiver<Commit>,
    mut log: Log,
    state: Arc<RwLock<State>>,
    housekeeping: Housekeeping,
    snapshot_every: u64,
    hook: Arc<Mutex<Option<RevocationHook>>>,
) {
    let state_dir = housekeeping.data_dir.join(STATE_DIR);
    let mut erasure_seen: Option<Instant> = None;
    let mut failed = false;
    let mut since_snapshot = 0u64;
    let mut framed = Vec::new();
    loop {
        let pending = state.read().unwrap_or_else(|p| p.into_inner()).housekeeping.erasures_pending > 0;
        if pending {
            let since = *erasure_seen.get_or_insert_with(Instant::now);
            if !failed && since.elapsed() >= housekeeping.erasure_compaction {
                housekeeping.compact(&mut log, &state);
                erasure_seen = None;
            }
        }
        let first = if pending && erasure_seen.is_some() {
            let wait =
                housekeeping.erasure_compaction.saturating_sub(erasure_seen.map_or(Duration::ZERO, |s| s.elapsed()));
            match receiver.recv_timeout(wait.max(Duration::from_millis(10))) {
                Ok(commit) => commit,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(commit) => commit,
                Err(_) => break,
            }
        };
        let mut group = vec![first];
        let mut records = group[0].prepared.records.len() as u64;
        while records < MAX_GROUP_RECORDS {
            match receiver.try_recv() {
                Ok(commit) => {
                    records += commit.prepared.records.len() as u64;
                    group.push(commit);
                }
                Err(_) => break,
            }
        }
        if failed {
            for commit in group {
                (commit.ack)(Err(PipelineError::Failed));
            }
            continue;
        }
        framed.clear();
        for commit in &group {
            framed.extend_from_slice(&commit.prepared.framed);
        }
        let started = Instant::now();
        let first_seq = match log.append_framed(&framed, records) {
            Ok(seq) => seq,
            Err(error) => {
                tracing::error!(%error, "Log append failed; refusing further writes until restart.");
                failed = true;
                for commit in group {
                    (commit.ack)(Err(PipelineError::Failed));
                }
                continue;
            }
        };
        let mut seq = first_seq;
        let mut firsts = Vec::with_capacity(group.len());
        let revocations = {
            let mut state = state.write().unwrap_or_else(|p| p.into_inner());
            for commit in &group {
                firsts.push(seq);
                for record in &commit.prepared.records {
                    state.apply(seq, record);
                    seq += 1;
                }
            }
            crate::telemetry::LogAppended {
                log_bytes: log.size_bytes(),
                log_records: log.next_seq(),
                subjects: state.subjects.acting(),
            }
            .emit();
            (state.drain_revocations(), state.drain_erased())
        };
        let (revocations, erased) = revocations;
        if !revocations.is_empty() {
            let hook = hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(hook) = hook {
                hook(&revocations);
            }
        }
        // Crypto-shredding: the erased people's secrets are destroyed before
        // the erasure is acknowledged (after the retractions, which need them).
        if let Err(error) = housekeeping.vault.forget(&erased) {
            tracing::error!(%error, "Erased people's secrets could not be destroyed on disk; retried at the next start.");
        }
        // With a zero bound, a deletion is compacted away before it is
        // acknowledged.
        if housekeeping.erasure_compaction.is_zero()
            && state.read().unwrap_or_else(|p| p.into_inner()).housekeeping.erasures_pending > 0
        {
            housekeeping.compact(&mut log, &state);
            erasure_seen = None;
            since_snapshot = 0;
        }
        tracing::trace!(records, micros = started.elapsed().as_micros() as u64, "Group committed.");
        for (commit, first) in group.into_iter().zip(firsts) {
            (commit.ack)(Ok(first));
        }
        since_snapshot += records;
        if since_snapshot >= snapshot_every {
            since_snapshot = 0;
            write_snapshot(&state, &state_dir);
        }
    }
    if !failed {
        write_snapshot(&state, &state_dir);
    }
}

/// What the writer needs to compact the log for erasures.
struct Housekeeping {
    data_dir: PathBuf,
    segment_bytes: u64,
    erasure_compaction: Duration,
    vault: Arc<Vault>,
    on_compacted: Arc<Mutex<Option<CompactionHook>>>,
}

impl Housekeeping {
    /// Compacts the log, rebuilds state from it and snapshots, all while
    /// holding the state lock (queries wait; nothing is acknowledged
    /// meanwhile). On failure the old log stays and compaction is retried.
    fn compact(&self, log: &mut Log, state: &RwLock<State>) {
        let started = Instant::now();
        let mut guard = state.write().unwrap_or_else(|p| p.into_inner());
        let gaps = guard.security_feed_gaps(crate::clock::now_ms());
        let outcome = compact::compact_log(&self.data_dir, self.segment_bytes, gaps.as_slice()).and_then(|report| {
            *log = Log::open(&self.data_dir.join(LOG_DIR), self.segment_bytes)?;
            let (rebuilt, _) = rebuild_state(&self.data_dir, false)?;
            *guard = rebuilt;
            // The destroyed secrets leave the vault file with the log.
            self.vault.compact()?;
            Ok(report)
        });
        match outcome {
            Ok(report) => {
                if let Err(error) = save_snapshot(&guard, &self.data_dir.join(STATE_DIR)) {
                    tracing::warn!(%error, "Snapshot after compaction failed; state stays rebuildable from the log.");
                }
                tracing::info!(
                    erased_subjects = report.erased_subjects,
                    records_before = report.records_before,
                    records_after = report.records_after,
                    millis = started.elapsed().as_millis() as u64,
                    "Log compacted: erased subjects removed."
                );
                let hook = self.on_compacted.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(hook) = hook {
                    hook();
                }
            }
            Err(error) => tracing::error!(%error, "Log compaction failed; erased subjects' events remain in the log."),
        }
    }
}

fn write_snapshot(state: &RwLock<State>, state_dir: &Path) {
    let state = state.read().unwrap_or_else(|p| p.into_inner());
    match save_snapshot(&state, state_dir) {
        Ok(bytes) => {
            crate::telemetry::SnapshotWritten { bytes, next_seq: state.next_seq, heap_bytes: state.heap_bytes() }.emit()
        }
        Err(error) => tracing::warn!(%error, "Snapshot failed; state stays rebuildable from the log."),
    }
}
