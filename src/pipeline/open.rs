//! Opening a data dir: the lock, the key, the vault, and state from the
//! snapshot plus the log after it; then the writer thread starts.
//!
//! Owns: the order of opening (lock, tighten modes, finish an interrupted
//! compaction, key, log, state, vault shredding left by a crash, writer),
//! rebuilding state from a snapshot and the log, replaying decoded records.
//! Never: acknowledges or appends anything; only the writer does.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use super::housekeeping::Housekeeping;
use super::outputs::Outputs;
use super::replay::{replay_records_reporting, Progress};
use super::writer::{writer_loop, Job, KeyWindow};
use super::{
    compact, CompactionHook, OpenReport, Pipeline, PipelineError, PipelineOptions, RevocationHook, LOG_DIR, STATE_DIR,
};
use crate::edge::{Edge, PseudonymKey};
use crate::log::{fsmode, DirLock, Log};
use crate::state::{load_snapshot, State};
use crate::vault::Vault;

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
        super::allocator::loading();
        let key = match options.pseudonym_key.clone() {
            Some(key) => key,
            None => PseudonymKey::load_or_create(&data_dir)?,
        };
        let vault_key = key.clone();
        let edge = Arc::new(
            Edge::new(key, options.default_region)
                .with_default_partner(&options.default_partner)
                .with_max_future_skew_ms(options.max_future_skew_ms)
                .with_clock(options.clock.clone()),
        );
        // The closed segments are read whole (damage anywhere stops the
        // start) while state loads from the snapshot and replays the tail:
        // the two halves of start-up, side by side.
        let (mut log, closed) = Log::open_unverified(&data_dir.join(LOG_DIR), options.segment_bytes)?;
        // Cluster mode: replay decides again the outputs of messages after
        // the outputs mark (a crash came between a message and its outputs).
        // A node's vault is opened first: its outputs take handles from it.
        let node_vault = match &options.cluster {
            Some(_) => Some(Arc::new(Vault::open(&data_dir)?.for_cluster(&vault_key))),
            None => None,
        };
        let new_outputs = |vault: &Option<Arc<Vault>>| {
            options
                .cluster
                .as_ref()
                .zip(vault.as_ref())
                .map(|(cluster, vault)| Outputs::new(&data_dir, Arc::clone(&cluster.decider), Arc::clone(vault)))
        };
        let mut outputs = new_outputs(&node_vault);
        let (rebuilt, verified) = std::thread::scope(|scope| {
            let verifying = scope.spawn(|| closed.verify());
            let rebuilt = rebuild_state_gathering(&data_dir, true, outputs.as_mut(), &|_, _| {});
            (rebuilt, verifying.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        log.closed_verified(verified?);
        let (state, report) = rebuilt?;
        if state.next_seq > log.next_seq() {
            tracing::warn!(
                snapshot_seq = state.next_seq,
                log_seq = log.next_seq(),
                "Snapshot is ahead of the log; rebuilding state from the log alone."
            );
        }
        let state = if state.next_seq > log.next_seq() {
            outputs = new_outputs(&node_vault);
            rebuild_state_gathering(&data_dir, false, outputs.as_mut(), &|_, _| {})?.0
        } else {
            state
        };
        if let Some(outputs) = outputs.as_mut() {
            outputs.start_at(state.stream_position).map_err(dir_error)?;
        }
        let on_compacted: Arc<Mutex<Option<CompactionHook>>> = Arc::new(Mutex::new(None));
        let on_backup: Arc<Mutex<Option<super::BackupHook>>> = Arc::new(Mutex::new(None));
        // Erasures a crash kept from the vault (logged, not yet shredded).
        // A node of a cluster, or a copy of one opened alone: its secrets
        // come from the cluster's log.
        let vault = match node_vault {
            Some(vault) => vault,
            None if state.stream_position != crate::contract::LogPosition::default() => {
                Arc::new(Vault::open(&data_dir)?.for_cluster(&vault_key))
            }
            None => Arc::new(Vault::open(&data_dir)?),
        };
        let shredded = vault.forget_unless(|pseudonym| state.subjects.lookup(pseudonym).is_some())?;
        if shredded > 0 {
            tracing::info!(shredded, "Destroyed the secrets of people erased before the last stop.");
        }
        // Secrets the cluster minted that a crash kept from the vault.
        let mut state = state;
        vault.install(&state.drain_minted())?;
        let state = Arc::new(RwLock::new(state));
        let (sender, receiver) = mpsc::sync_channel::<Job>(256);
        let writer_state = Arc::clone(&state);
        let hook: Arc<Mutex<Option<RevocationHook>>> = Arc::new(Mutex::new(None));
        let mut housekeeping = Housekeeping::new(
            &options,
            Arc::clone(&vault),
            Arc::clone(&hook),
            Arc::clone(&on_compacted),
            Arc::clone(&on_backup),
        );
        let idempotency_window_ms = i64::try_from(options.idempotency_window.as_millis()).unwrap_or(i64::MAX);
        let keys = KeyWindow { clock: options.clock.clone(), window_ms: idempotency_window_ms };
        let write_failure = Arc::new(Mutex::new(None));
        let failure = Arc::clone(&write_failure);
        let readers_waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waiting = Arc::clone(&readers_waiting);
        let outputs_hook = outputs.as_ref().map(|outputs| Arc::clone(&outputs.hook));
        let disclosure_outcomes = outputs.as_ref().map(|outputs| Arc::clone(&outputs.outcomes)).unwrap_or_default();
        let writer = std::thread::Builder::new()
            .name("proviso-writer".into())
            .spawn(move || {
                housekeeping.outputs = outputs;
                writer_loop(receiver, log, writer_state, waiting, housekeeping, keys, failure)
            })
            .map_err(|source| PipelineError::DataDir { path: data_dir.display().to_string(), source })?;
        let cluster = match options.cluster.clone() {
            Some(cluster) => {
                let position = state.read().unwrap_or_else(|p| p.into_inner()).stream_position;
                Some(super::cluster::Node::start(cluster, position, sender.clone())?)
            }
            None => None,
        };
        let pipeline = Pipeline {
            edge,
            state,
            policy: options.policy,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            hook,
            on_compacted,
            on_backup,
            vault,
            data_dir,
            report,
            clock: options.clock.clone(),
            idempotency_window_ms,
            write_failure,
            readers_waiting,
            cluster,
            outputs_hook,
            disclosure_outcomes,
            cover_sent: Mutex::new(None),
            _lock: lock,
        };
        if let Some(node) = &pipeline.cluster {
            // A node answers once it has applied what the cluster holds (its
            // rules included, before it compares its own with them).
            node.catch_up_blocking()?;
        }
        if let Some(path) = &options.rules_path {
            pipeline.install_rules_file(path).map_err(|error| PipelineError::Rules(error.to_string()))?;
        }
        super::allocator::running();
        Ok(pipeline)
    }
}

/// Builds state from the snapshot (when `use_snapshot`) plus the log after it.
pub fn rebuild_state(data_dir: &Path, use_snapshot: bool) -> Result<(State, OpenReport), PipelineError> {
    rebuild_state_gathering(data_dir, use_snapshot, None, &|_, _| {})
}

/// [`rebuild_state`], reporting its replay as the step `"replaying the log"`.
pub fn rebuild_state_reporting(
    data_dir: &Path,
    use_snapshot: bool,
    progress: Progress<'_>,
) -> Result<(State, OpenReport), PipelineError> {
    rebuild_state_gathering(data_dir, use_snapshot, None, progress)
}

/// [`rebuild_state`], gathering cluster mode's outputs as it replays.
fn rebuild_state_gathering(
    data_dir: &Path,
    use_snapshot: bool,
    mut outputs: Option<&mut Outputs>,
    progress: Progress<'_>,
) -> Result<(State, OpenReport), PipelineError> {
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
                let path = data_dir.join(STATE_DIR).join(crate::state::SNAPSHOT_FILE);
                tracing::warn!(
                    snapshot = %path.display(),
                    %error,
                    "Snapshot unreadable (damaged?); rebuilding state from the whole log, which holds everything it did. The next snapshot replaces it."
                );
            }
        }
    }
    if let Some(outputs) = outputs.as_mut() {
        outputs.seen_from(state.stream_position);
    }
    let log_dir = data_dir.join(LOG_DIR);
    if !log_dir.exists() {
        return Ok((state, report));
    }
    let from = state.next_seq;
    replay_records_reporting(&log_dir, from, ("replaying the log", progress), |seq, record| {
        state.apply(seq, &record);
        if let Some(outputs) = outputs.as_mut() {
            outputs.after_record(&mut state, &record);
        }
        report.replayed_records += 1;
    })?;
    state.settle_replayed();
    Ok((state, report))
}
