//! Hot backups: a consistent copy of a running data dir.
//!
//! Owns: what a backup holds and in which order it is taken, on the writer
//! thread between two groups (nothing is appended or applied meanwhile):
//! any erasure still waiting for compaction is compacted first; every
//! person state knows gets a vault secret (so a later erasure leaves a mark
//! in the live dir's ledger that this backup can be matched against, see
//! `vault::LEDGER_FILE`); the log is copied up to its position (closed
//! segments hard-linked, the active one copied to its last record); state
//! at that position is written as the backup's snapshot; the backup hook
//! copies the outputs (audit log, feeds) as they stand; then the vault and
//! its ledger (after the outputs, so every handle they name has its
//! secret), the pseudonym key and admin token files, and a manifest.
//! Never: writes into an existing directory, or leaves a backup that looks
//! complete without its manifest (written last, after every fsync).

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};

use super::housekeeping::Housekeeping;
use super::{PipelineError, LOG_DIR, STATE_DIR};
use crate::contract::Pseudonym;
use crate::log::{fsmode, Log};
use crate::state::{save_snapshot, State};

/// The manifest written last into every backup.
pub const BACKUP_MANIFEST: &str = "backup.json";

/// Copies the outputs (audit log, feeds) into a backup dir; returns the
/// audit records and feed records copied.
pub type BackupHook = Arc<dyn Fn(&Path) -> Result<(u64, u64), String> + Send + Sync>;

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupReport {
    /// The log position: the backup holds every record before it.
    pub position: u64,
    /// Events applied to state at that position.
    pub events: u64,
    /// Audit log records copied.
    pub audit_records: u64,
    /// Feed records copied (all partners and purposes).
    pub feed_records: u64,
    /// Vault secrets minted for people who had none.
    pub secrets_minted: u64,
    /// When the backup was taken (epoch milliseconds).
    pub taken_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup destination {0} already exists; name a new directory")]
    Exists(String),
    #[error("writing the backup at {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("copying the outputs into the backup: {0}")]
    Outputs(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error("writing the backup's snapshot: {0}")]
    Snapshot(String),
}

/// A backup asked of the writer.
pub(super) struct BackupJob {
    pub(super) dest: PathBuf,
    pub(super) reply: Sender<Result<BackupReport, BackupError>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.display().to_string(), source }
}

impl Housekeeping {
    /// Takes the backup `job` asks for, on the writer thread, and answers it.
    pub(super) fn backup(&mut self, log: &mut Log, state: &RwLock<State>, job: BackupJob, failed: bool) {
        let existed = job.dest.exists();
        let result = if failed {
            Err(PipelineError::Failed(
                "a write to the log failed earlier; restart proviso once the disk is fixed".to_string(),
            )
            .into())
        } else {
            self.take_backup(log, state, &job.dest)
        };
        if let Err(error) = &result {
            tracing::error!(%error, dest = %job.dest.display(), "Backup failed.");
            if !existed && job.dest.exists() {
                // A partial backup (no manifest) is removed, not left to be mistaken for one.
                let _ = std::fs::remove_dir_all(&job.dest);
            }
        }
        let _ = job.reply.send(result);
    }

    fn take_backup(&mut self, log: &mut Log, state: &RwLock<State>, dest: &Path) -> Result<BackupReport, BackupError> {
        let started = std::time::Instant::now();
        if dest.exists() {
            return Err(BackupError::Exists(dest.display().to_string()));
        }
        if self.erasures_pending(state) {
            self.compact_now(log, state);
        }
        fsmode::create_private_dir(dest).map_err(io(dest))?;
        let state = state.read().unwrap_or_else(|p| p.into_inner());
        let people: Vec<Pseudonym> = state
            .subjects
            .all()
            .map(|record| record.pseudonym)
            .filter(|pseudonym| *pseudonym != Pseudonym::ERASED)
            .collect();
        let before = self.vault().len();
        if !self.vault().is_cluster() {
            // (A cluster's node mints through the cluster's log before the
            // backup job; a cluster copy opened alone mints nothing.)
            self.vault().secrets_for(&people)?;
        }
        let secrets_minted = (self.vault().len() - before) as u64;
        let position = log.copy_to(&dest.join(LOG_DIR))?;
        debug_assert_eq!(position, state.next_seq);
        save_snapshot(&state, &dest.join(STATE_DIR)).map_err(|error| BackupError::Snapshot(error.to_string()))?;
        let hook = self.on_backup.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (audit_records, feed_records) = match hook {
            Some(hook) => hook(dest).map_err(BackupError::Outputs)?,
            None => (0, 0),
        };
        self.vault().copy_to(dest)?;
        for name in [crate::edge::KEY_FILE, "admin.token"] {
            let source = self.data_dir().join(name);
            if source.exists() {
                let len = std::fs::metadata(&source).map_err(io(&source))?.len();
                crate::log::copy_prefix(&source, &dest.join(name), len).map_err(io(&source))?;
            }
        }
        let report = BackupReport {
            position,
            events: state.events_applied,
            audit_records,
            feed_records,
            secrets_minted,
            taken_ms: crate::clock::now_ms(),
        };
        crate::log::sync_dir(dest)?;
        let manifest = dest.join(BACKUP_MANIFEST);
        let text = serde_json::to_vec_pretty(&report).map_err(|e| io(&manifest)(std::io::Error::other(e)))?;
        crate::edge::write_private(&manifest, &text).map_err(io(&manifest))?;
        crate::log::sync_dir(dest)?;
        tracing::info!(
            dest = %dest.display(),
            position,
            audit_records,
            feed_records,
            secrets_minted,
            millis = started.elapsed().as_millis() as u64,
            "Backup taken."
        );
        Ok(report)
    }
}
