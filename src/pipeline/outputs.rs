//! Cluster mode's partner outputs, in the order of the cluster's log.
//!
//! Owns: gathering, as the writer applies each message of the cluster's
//! log, what its records mean for the outputs: the gate's decision on each
//! `Disclosed` record taken at its own point of the log (by the decider
//! `disclose/` gives the cluster options), the withdrawals each record
//! causes, in record order, and the message's time (its `StreamPosition`
//! record's); handing them to the outputs hook once the message is applied;
//! the outputs mark (`outputs.position` in the data dir: the last message
//! whose outputs are on file), and telling the node that submitted a
//! disclosure whether it was written. So every node writes the same audit
//! records and feed records in the same order with the same times, however
//! its writer groups the messages.
//! Never: writes an output file itself (the hook, from `disclose/`, does),
//! or decides a disclosure on anything but state at the record's position.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::contract::{Control, ControlBody, LogPosition, Record};
use crate::state::{State, Withdrawal};

/// The gate's decision on one `Disclosed` record, in the disclosure layer's
/// own type (the pipeline only carries it to the outputs hook).
pub type Decision = Box<dyn Any + Send>;

/// Decides a `Disclosed` record on state as it stands at that record:
/// `None` when the gate refuses anyone it names (then nothing of it is
/// written, and the node that submitted it decides again).
pub type DisclosedDecider = Arc<dyn Fn(&State, &Control) -> Option<Decision> + Send + Sync>;

/// Writes one group's outputs, in order, before the group is acknowledged.
pub type OutputsHook = Arc<dyn Fn(Vec<MessageOutputs>) -> Result<(), String> + Send + Sync>;

/// One thing a message of the cluster's log means for the outputs.
pub enum OutputItem {
    /// A disclosure the gate let through at its point of the log, decided
    /// at `at_ms` (the record's time), with the `r_` handle of each person it
    /// names (empty: none), taken there: a person erased later in the same
    /// group still has theirs, one minted earlier in it already has one.
    Disclosed { at_ms: i64, decision: Decision, handles: Vec<String> },
    /// Withdrawals of earlier disclosures (refusals, bans, unlinkings,
    /// erasures), retracted at the message's time; each with the person's
    /// `r_` handle, taken where it applied (a person without a secret had
    /// nothing disclosed, so is not here).
    Withdrawals(Vec<(Withdrawal, String)>),
}

/// The outputs of one message of the cluster's log.
pub struct MessageOutputs {
    pub position: LogPosition,
    /// The message's time (JetStream's, the same on every node).
    pub at_ms: i64,
    pub items: Vec<OutputItem>,
}

/// File in the data dir naming the last message whose outputs are on file.
pub const OUTPUTS_MARK: &str = "outputs.position";

/// Reads the outputs mark of `data_dir` (`None`: never written).
pub fn read_mark(data_dir: &Path) -> Option<LogPosition> {
    let text = std::fs::read_to_string(data_dir.join(OUTPUTS_MARK)).ok()?;
    let (epoch, sequence) = text.trim().split_once(':')?;
    Some(LogPosition { epoch: epoch.parse().ok()?, sequence: sequence.parse().ok()? })
}

fn write_mark(data_dir: &Path, position: LogPosition) -> std::io::Result<()> {
    let path = data_dir.join(OUTPUTS_MARK);
    let tmp = path.with_extension("tmp");
    let mut file = crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&tmp)?;
    std::io::Write::write_all(&mut file, format!("{position}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// The writer's side of cluster mode's outputs.
pub(super) struct Outputs {
    data_dir: PathBuf,
    vault: Arc<crate::vault::Vault>,
    decider: DisclosedDecider,
    pub(super) hook: Arc<Mutex<Option<OutputsHook>>>,
    /// Ids of disclosures this node submitted and waits for, and once
    /// decided, whether they were written.
    pub(super) outcomes: Arc<Mutex<HashMap<[u8; 16], Option<bool>>>>,
    /// Outputs of the message being applied.
    current: Vec<OutputItem>,
    /// Outputs of the messages applied and not yet written (none once the
    /// hook has run; they wait while no hook is set).
    ready: Vec<MessageOutputs>,
    /// Messages at or before this have their outputs on file already
    /// (replayed at start after a crash: decided again, written once).
    written: LogPosition,
    /// Set when the hook failed: the outputs after the mark are written at
    /// the next start, so no snapshot may be taken past the mark till then.
    behind: bool,
}

impl Outputs {
    pub(super) fn new(data_dir: &Path, decider: DisclosedDecider, vault: Arc<crate::vault::Vault>) -> Outputs {
        Outputs {
            data_dir: data_dir.to_path_buf(),
            vault,
            decider,
            hook: Arc::new(Mutex::new(None)),
            outcomes: Arc::new(Mutex::new(HashMap::new())),
            current: Vec::new(),
            ready: Vec::new(),
            // No mark: a node's first start with outputs gathered here; the
            // caller sets it where replay ends ([`Outputs::start_at`]).
            written: read_mark(data_dir).unwrap_or(LogPosition { epoch: u64::MAX, sequence: u64::MAX }),
            behind: false,
        }
    }

    /// After `record` is applied to `state`: its disclosure decided, the
    /// withdrawals it caused taken in order, and at a message's end (its
    /// `StreamPosition`) the message's outputs set aside with its time.
    pub(super) fn after_record(&mut self, state: &mut State, record: &Record) {
        if let Record::Control(control) = record {
            match &control.body {
                ControlBody::Disclosed(disclosed) => {
                    let decision = (self.decider)(state, control);
                    if let Some(waiting) =
                        self.outcomes.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&disclosed.id)
                    {
                        *waiting = Some(decision.is_some());
                    }
                    if let Some(decision) = decision {
                        let handles = disclosed
                            .people
                            .iter()
                            .map(|person| self.handle(state, person).unwrap_or_default())
                            .collect();
                        self.current.push(OutputItem::Disclosed { at_ms: control.ts_ms, decision, handles });
                    }
                }
                ControlBody::StreamPosition { position } => {
                    let items = std::mem::take(&mut self.current);
                    if *position > self.written && !items.is_empty() {
                        self.ready.push(MessageOutputs { position: *position, at_ms: control.ts_ms, items });
                    }
                    return;
                }
                _ => {}
            }
        }
        let withdrawals = state.drain_revocations();
        if !withdrawals.is_empty() {
            let handled: Vec<(Withdrawal, String)> = withdrawals
                .into_iter()
                .filter_map(|withdrawal| {
                    let handle = self.handle(state, &withdrawal.subject)?;
                    Some((withdrawal, handle))
                })
                .collect();
            if !handled.is_empty() {
                self.current.push(OutputItem::Withdrawals(handled));
            }
        }
    }

    /// A person's `r_` handle as state stands now: from the vault, or from a
    /// nonce applied in this group and not stored yet.
    fn handle(&self, state: &State, person: &crate::contract::Pseudonym) -> Option<String> {
        self.vault.record_handle_or_minted(person, state.minted_nonce(person))
    }

    /// Whether outputs wait to be written (no snapshot is taken meanwhile:
    /// a start after a crash decides them again from an earlier one).
    pub(super) fn pending(&self) -> bool {
        !self.ready.is_empty() || self.behind
    }

    /// A node's first start with outputs gathered here (a new node, or one
    /// made before they were): nothing before `position` is owed.
    pub(super) fn start_at(&mut self, position: LogPosition) -> std::io::Result<()> {
        if read_mark(&self.data_dir).is_none() {
            write_mark(&self.data_dir, position)?;
            self.written = position;
        } else if !self.ready.is_empty() {
            tracing::info!(
                messages = self.ready.len(),
                after = %self.written,
                "Partner outputs a stop left unwritten are decided again and written once the outputs open."
            );
        }
        Ok(())
    }

    /// Hands the outputs gathered so far to the hook, then moves the mark.
    /// Without a hook (the disclosure layer not open yet) they wait.
    pub(super) fn write(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        let Some(hook) = self.hook.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return };
        crate::failpoint::reach("outputs.write");
        let ready = std::mem::take(&mut self.ready);
        let last = ready.last().map(|message| message.position).unwrap_or_default();
        match hook(ready) {
            Ok(()) => match write_mark(&self.data_dir, last) {
                Ok(()) => self.written = last,
                Err(error) => {
                    self.behind = true;
                    tracing::error!(%error, "The outputs mark could not be written; the outputs after it are written again at the next start.")
                }
            },
            Err(error) => {
                self.behind = true;
                tracing::error!(%error, "Partner outputs could not be written; they are written at the next start.")
            }
        }
    }
}
