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
use std::collections::{BTreeMap, HashMap};
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

/// Where the outputs hook goes, with what was on file when it was set (the
/// writer reads it).
pub(super) type HookSlot = Arc<Mutex<Option<(OutputsHook, OnFile)>>>;

/// How many records each partner output held: the audit log, and each feed
/// by its file's stem (`partner.purpose`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnFile {
    pub audit: u64,
    /// `None`: not known (a mark written before feed counts were kept).
    pub feeds: Option<BTreeMap<String, u64>>,
}

/// What became of a disclosure this node submitted: written (its audit and
/// feed records on file), refused by the gate at its point of the log, or
/// not written (the reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Refused,
    Failed(String),
}

/// Writes one group's outputs, in order, before the group is acknowledged.
/// Given what was on file at the outputs mark (`None`: not known); returns
/// what is accounted for after. Records beyond the mark's counts were
/// written for these same messages by a process that died before moving
/// the mark: the hook matches them with the outputs decided again instead
/// of writing them twice.
pub type OutputsHook = Arc<dyn Fn(Vec<MessageOutputs>, Option<&OnFile>) -> Result<OnFile, String> + Send + Sync>;

/// One thing a message of the cluster's log means for the outputs.
pub enum OutputItem {
    /// A disclosure the gate let through at its point of the log, decided
    /// at `at_ms` (the record's time), with the `r_` handle of each person it
    /// names (empty: none), taken there: a person erased later in the same
    /// group still has theirs, one minted earlier in it already has one.
    /// `id`: the record's, for the node that submitted it.
    Disclosed { id: [u8; 16], at_ms: i64, decision: Decision, handles: Vec<String> },
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

/// Reads the outputs mark of `data_dir` (`None`: never written): the last
/// message whose outputs are on file, and what was on file then (`None` in
/// a mark written before it was kept).
///
/// The mark is one line: `EPOCH:SEQUENCE AUDIT feeds STEM=COUNT ...`. Marks
/// of earlier versions stop after the position, or after the audit count
/// (then the feeds' counts are not known).
pub fn read_mark(data_dir: &Path) -> Option<(LogPosition, Option<OnFile>)> {
    let text = std::fs::read_to_string(data_dir.join(OUTPUTS_MARK)).ok()?;
    parse_mark(&text)
}

fn parse_mark(text: &str) -> Option<(LogPosition, Option<OnFile>)> {
    // The first line only: a mark written in place after a longer one that
    // was renamed over leaves that one's tail after its newline.
    let mut words = text.lines().next()?.split_whitespace();
    let (epoch, sequence) = words.next()?.split_once(':')?;
    let position = LogPosition { epoch: epoch.parse().ok()?, sequence: sequence.parse().ok()? };
    let Some(audit) = words.next().and_then(|count| count.parse().ok()) else { return Some((position, None)) };
    let feeds = match words.next() {
        Some("feeds") => {
            let counts: Option<BTreeMap<String, u64>> = words
                .map(|word| {
                    let (stem, count) = word.split_once('=')?;
                    Some((stem.to_string(), count.parse().ok()?))
                })
                .collect();
            // A mark that does not read whole says nothing of the feeds.
            counts
        }
        _ => None,
    };
    Some((position, Some(OnFile { audit, feeds })))
}

/// The mark's text for `position` and `on_file`.
fn mark_text(position: LogPosition, on_file: Option<&OnFile>) -> String {
    let mut mark = position.to_string();
    if let Some(on_file) = on_file {
        mark.push_str(&format!(" {}", on_file.audit));
        if let Some(feeds) = &on_file.feeds {
            mark.push_str(" feeds");
            for (stem, count) in feeds {
                mark.push_str(&format!(" {stem}={count}"));
            }
        }
    }
    mark
}

/// The longest mark written in place: one 512-byte disk sector, newline
/// included.
const MARK_IN_PLACE: usize = 511;

/// Writes the mark. Usually in place: one write of at most one disk sector
/// at the file's start (so never half old and half new) and one fdatasync;
/// no rename, which would cost a directory sync per group. A mark longer
/// than a sector (many feeds) is written aside and renamed over.
fn write_mark(data_dir: &Path, position: LogPosition, on_file: Option<&OnFile>) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let path = data_dir.join(OUTPUTS_MARK);
    let mark = mark_text(position, on_file);
    if mark.len() > MARK_IN_PLACE {
        let aside = data_dir.join(format!("{OUTPUTS_MARK}.tmp"));
        let mut file = crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&aside)?;
        std::io::Write::write_all(&mut file, format!("{mark}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&aside, &path)?;
        return std::fs::File::open(data_dir)?.sync_all();
    }
    let new = !path.exists();
    let file = crate::log::fsmode::private_file().write(true).create(true).truncate(false).open(&path)?;
    // Padded to a fixed width, so a shorter mark leaves no tail of a longer
    // one: a sector when feeds are named, else the width of earlier marks.
    let width = if on_file.is_some_and(|on_file| on_file.feeds.is_some()) { MARK_IN_PLACE } else { 63 };
    let text = format!("{mark:<width$}\n");
    file.write_all_at(text.as_bytes(), 0)?;
    file.sync_data()?;
    if new {
        std::fs::File::open(data_dir)?.sync_all()?;
    }
    Ok(())
}

/// The writer's side of cluster mode's outputs.
pub(super) struct Outputs {
    data_dir: PathBuf,
    vault: Arc<crate::vault::Vault>,
    decider: DisclosedDecider,
    /// The hook, and how many audit records were on file when it was set.
    pub(super) hook: HookSlot,
    /// Ids of disclosures this node submitted and waits for, and once
    /// settled, what became of them.
    pub(super) outcomes: Arc<Mutex<HashMap<[u8; 16], Option<Outcome>>>>,
    /// Outputs of the message being applied.
    current: Vec<OutputItem>,
    /// Outputs of the messages applied and not yet written (none once the
    /// hook has run; they wait while no hook is set).
    ready: Vec<MessageOutputs>,
    /// Messages at or before this have their outputs on file already
    /// (replayed at start after a crash: decided again, written once).
    written: LogPosition,
    /// What was on file at `written`.
    on_file: Option<OnFile>,
    /// The mark was first written by this process (a new node): no output
    /// was ever written before it.
    fresh: bool,
    /// Set while outputs could not be written (the hook failed, or secrets
    /// the log minted could not be stored): they are tried again with the
    /// next group and at the next start, and no snapshot is taken past the
    /// mark meanwhile (replay decides them again from an earlier one).
    behind: bool,
    /// Withdrawals of the last few minutes of the log, by message (`None`:
    /// the message being applied), so a disclosure decided before one of
    /// them and logged after it is refused whatever the times say.
    recent: std::collections::VecDeque<Recent>,
    /// Withdrawals applied after this position are all in `recent`; a
    /// disclosure decided before it is refused (it cannot be checked).
    known_from: LogPosition,
}

/// One withdrawal in [`Outputs::recent`].
struct Recent {
    /// Its message (`None` until the message's end is applied) and time.
    position: Option<LogPosition>,
    at_ms: i64,
    withdrawal: Withdrawal,
}

/// How long withdrawals are kept to check disclosures against: far longer
/// than a disclosure takes from its decision to its record.
const RECENT_MS: i64 = 5 * 60_000;

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
            written: read_mark(data_dir).map_or(LogPosition { epoch: u64::MAX, sequence: u64::MAX }, |(at, _)| at),
            on_file: read_mark(data_dir).and_then(|(_, on_file)| on_file),
            fresh: false,
            behind: false,
            recent: std::collections::VecDeque::new(),
            known_from: LogPosition { epoch: u64::MAX, sequence: u64::MAX },
        }
    }

    /// Replay (or following) starts after `position`: withdrawals from there
    /// on are seen.
    pub(super) fn seen_from(&mut self, position: LogPosition) {
        self.known_from = position;
    }

    /// Whether anyone `record` names had a disclosure of its purpose (to its
    /// partner) withdrawn after its decision: then the gate's answer at the
    /// record is not enough (the withdrawal's time may be after the
    /// decision's), and the disclosure is refused.
    fn withdrawn_since(&self, record: &crate::contract::DisclosedRecord) -> bool {
        if record.decided_after < self.known_from {
            return true;
        }
        self.recent.iter().any(|recent| {
            recent.position.is_none_or(|position| position > record.decided_after)
                && record.people.contains(&recent.withdrawal.subject)
                && recent.withdrawal.purposes.contains(&record.purpose)
                && recent.withdrawal.partner.as_ref().is_none_or(|only| *only == record.partner)
        })
    }

    /// The outputs opened with `on_file`: a mark that does not say what was
    /// on file at it (a new node's, or one written before the counts were
    /// kept) takes these counts when they are exact (no output was written
    /// since the mark: a new node, or none waiting). Once.
    fn adopt_counts(&mut self, on_file: OnFile) {
        let known = self.on_file.as_ref().is_some_and(|known| known.feeds.is_some());
        if known || !(self.fresh || self.ready.is_empty()) {
            return;
        }
        match write_mark(&self.data_dir, self.written, Some(&on_file)) {
            Ok(()) => self.on_file = Some(on_file),
            Err(error) => {
                tracing::warn!(%error, "The outputs mark could not be written; written with the next outputs.")
            }
        }
    }

    /// The ids of the disclosures among the outputs waiting to be written.
    fn ready_disclosures(&self) -> Vec<[u8; 16]> {
        self.ready
            .iter()
            .flat_map(|message| &message.items)
            .filter_map(|item| match item {
                OutputItem::Disclosed { id, .. } => Some(*id),
                OutputItem::Withdrawals(_) => None,
            })
            .collect()
    }

    /// Settles the outcome of a disclosure this node waits for.
    fn settle(&self, id: &[u8; 16], outcome: Outcome) {
        if let Some(waiting) = self.outcomes.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            *waiting = Some(outcome);
        }
    }

    /// Secrets the log minted could not be stored: no snapshot until they
    /// are (replay at the next start stores them).
    pub(super) fn vault_failed(&mut self) {
        self.behind = true;
    }

    /// After `record` is applied to `state`: its disclosure decided, the
    /// withdrawals it caused taken in order, and at a message's end (its
    /// `StreamPosition`) the message's outputs set aside with its time.
    pub(super) fn after_record(&mut self, state: &mut State, record: &Record) {
        if let Record::Control(control) = record {
            match &control.body {
                ControlBody::Disclosed(disclosed) => {
                    let decision = if self.withdrawn_since(disclosed) { None } else { (self.decider)(state, control) };
                    match decision {
                        Some(decision) => {
                            let handles = disclosed
                                .people
                                .iter()
                                .map(|person| self.handle(state, person).unwrap_or_default())
                                .collect();
                            let (id, at_ms) = (disclosed.id, control.ts_ms);
                            self.current.push(OutputItem::Disclosed { id, at_ms, decision, handles });
                        }
                        None => self.settle(&disclosed.id, Outcome::Refused),
                    }
                }
                ControlBody::StreamPosition { position } => {
                    for recent in self.recent.iter_mut().rev() {
                        if recent.position.is_some() {
                            break;
                        }
                        recent.position = Some(*position);
                        recent.at_ms = control.ts_ms;
                    }
                    while self.recent.front().is_some_and(|oldest| oldest.at_ms < control.ts_ms - RECENT_MS) {
                        if let Some(Recent { position: Some(position), .. }) = self.recent.pop_front() {
                            self.known_from = self.known_from.max(position);
                        }
                    }
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
        for withdrawal in &withdrawals {
            self.recent.push_back(Recent { position: None, at_ms: i64::MAX, withdrawal: withdrawal.clone() });
        }
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
    /// nonce applied in this group and not stored yet. Someone erased in
    /// this group and minted a secret since is a new life: theirs is the
    /// nonce's (the vault still holds the old life's, which the erasure's
    /// own retractions use, until the group's erasures are shredded).
    fn handle(&self, state: &State, person: &crate::contract::Pseudonym) -> Option<String> {
        let nonce = state.minted_nonce(person);
        match nonce {
            Some(nonce) if state.erased_pending(person) => self.vault.minted_handle(person, nonce),
            _ => self.vault.record_handle_or_minted(person, nonce),
        }
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
            write_mark(&self.data_dir, position, None)?;
            self.written = position;
            self.fresh = true;
        } else if !self.ready.is_empty() {
            tracing::info!(
                messages = self.ready.len(),
                after = %self.written,
                "Partner outputs a stop left unwritten are decided again and written once the outputs open."
            );
        }
        Ok(())
    }

    /// Hands the outputs gathered so far to the hook, then moves the mark,
    /// and tells the node that submitted each disclosure it is on file.
    /// Without a hook (the disclosure layer not open yet) they wait. Once
    /// the hook has failed, nothing more is written by this process (a
    /// later output must not land before an earlier one): the mark stays,
    /// every disclosure is answered as not written, and the next start
    /// decides them all again from the log and writes them in order.
    pub(super) fn write(&mut self) {
        if self.on_file.as_ref().is_none_or(|known| known.feeds.is_none()) {
            let opened =
                self.hook.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, on_file)| on_file.clone());
            if let Some(on_file) = opened {
                self.adopt_counts(on_file);
            }
        }
        if self.ready.is_empty() {
            return;
        }
        let Some((hook, _)) = self.hook.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return };
        if self.behind {
            let stopped = "partner outputs stopped after a failed write; restart proviso".to_string();
            for message in std::mem::take(&mut self.ready) {
                for item in message.items {
                    if let OutputItem::Disclosed { id, .. } = item {
                        self.settle(&id, Outcome::Failed(stopped.clone()));
                    }
                }
            }
            return;
        }
        crate::failpoint::reach("outputs.write");
        let ids = self.ready_disclosures();
        let last = self.ready.last().map(|message| message.position).unwrap_or_default();
        let ready = std::mem::take(&mut self.ready);
        let written = hook(ready, self.on_file.as_ref()).and_then(|on_file| {
            crate::failpoint::reach("outputs.mark");
            write_mark(&self.data_dir, last, Some(&on_file))
                .map(|()| on_file)
                .map_err(|error| format!("the outputs mark: {error}"))
        });
        match written {
            Ok(on_file) => {
                self.written = last;
                self.on_file = Some(on_file);
                for id in &ids {
                    self.settle(id, Outcome::Written);
                }
            }
            Err(error) => {
                self.behind = true;
                tracing::error!(%error, "Partner outputs could not be written; no disclosure is answered until proviso is restarted, which writes them.");
                for id in &ids {
                    self.settle(id, Outcome::Failed(error.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{DisclosedRecord, Event, EventBody, Platform, Pseudonym, Purpose, Region};

    /// The mark reads back what it was written with, and marks of earlier
    /// versions (the position alone, or with the audit count) still read.
    #[test]
    fn the_mark_reads_back_and_older_marks_still_read() {
        let position = LogPosition { epoch: 3, sequence: 41 };
        let feeds: BTreeMap<String, u64> = [("net.product".to_string(), 7), ("net.ads".to_string(), 0)].into();
        let on_file = OnFile { audit: 12, feeds: Some(feeds) };
        assert_eq!(parse_mark(&mark_text(position, Some(&on_file))), Some((position, Some(on_file.clone()))));
        let none = OnFile { audit: 0, feeds: Some(BTreeMap::new()) };
        assert_eq!(parse_mark(&mark_text(position, Some(&none))), Some((position, Some(none))), "no feed yet");
        assert_eq!(parse_mark("3:41 12\n"), Some((position, Some(OnFile { audit: 12, feeds: None }))));
        assert_eq!(parse_mark("3:41   \n"), Some((position, None)));
        assert_eq!(
            parse_mark("3:41 12 feeds net.product=x"),
            Some((position, Some(OnFile { audit: 12, feeds: None })))
        );
        assert_eq!(parse_mark("garbage"), None);

        let dir = tempfile::tempdir().expect("tempdir");
        write_mark(dir.path(), position, Some(&on_file)).expect("in place");
        let short = OnFile { audit: 1, feeds: Some(BTreeMap::new()) };
        write_mark(dir.path(), position, Some(&short)).expect("shorter, in place");
        assert_eq!(read_mark(dir.path()), Some((position, Some(short))), "no tail of the longer mark");
        let many: BTreeMap<String, u64> = (0..40).map(|n| (format!("partner-{n}.product"), n)).collect();
        let long = OnFile { audit: 5, feeds: Some(many) };
        assert!(mark_text(position, Some(&long)).len() > MARK_IN_PLACE);
        write_mark(dir.path(), position, Some(&long)).expect("aside and renamed");
        assert_eq!(read_mark(dir.path()), Some((position, Some(long))));
        write_mark(dir.path(), position, Some(&on_file)).expect("in place after a longer one");
        assert_eq!(read_mark(dir.path()), Some((position, Some(on_file))), "the longer one's tail is not read");
    }

    fn event(ts_ms: i64, subject: Pseudonym, body: EventBody) -> Record {
        Record::Event(Event { ts_ms, subject, region: Region(*b"US"), body })
    }

    fn end_of_message(sequence: u64) -> Record {
        let position = LogPosition { epoch: 1, sequence };
        Record::Control(Control { ts_ms: 1_000_000 + sequence as i64, body: ControlBody::StreamPosition { position } })
    }

    fn disclosed(id: u8, person: Pseudonym, decided_after: u64, decided_ms: i64) -> Record {
        Record::Control(Control {
            ts_ms: decided_ms,
            body: ControlBody::Disclosed(Box::new(DisclosedRecord {
                id: [id; 16],
                partner: "net".into(),
                purpose: Purpose::Product,
                kind: "suggestions".into(),
                people: vec![person],
                about: String::new(),
                items: Vec::new(),
                nonces: Vec::new(),
                decided_after: LogPosition { epoch: 1, sequence: decided_after },
            })),
        })
    }

    /// A refusal that reaches the log before a disclosure decided without
    /// it refuses that disclosure, though the refusal's time is after the
    /// decision's (the gate alone, asked at the decision's time, would let
    /// it through: here the decider lets everything through). One decided
    /// after the refusal's message is up to the gate; one decided before
    /// the withdrawals this node has seen cannot be checked and is refused.
    #[test]
    fn a_disclosure_decided_before_a_withdrawal_logged_ahead_of_it_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = Arc::new(
            crate::vault::Vault::open(dir.path())
                .expect("vault")
                .for_cluster(&crate::edge::PseudonymKey::from_bytes([3; 32])),
        );
        let everything: DisclosedDecider = Arc::new(|_: &State, _: &Control| Some(Box::new(()) as Decision));
        let mut outputs = Outputs::new(dir.path(), everything, vault);
        outputs.start_at(LogPosition::default()).expect("mark");
        outputs.seen_from(LogPosition { epoch: 1, sequence: 0 });
        let person = Pseudonym::from_stored([7; 16]);
        let mut state = State::default();
        let mut seq = 0;
        let mut apply = |outputs: &mut Outputs, state: &mut State, record: Record| {
            state.apply(seq, &record);
            outputs.after_record(state, &record);
            seq += 1;
        };
        let register = EventBody::Register { device: "d".into(), platform: Platform::Ios };
        apply(&mut outputs, &mut state, event(1_000, person, register));
        apply(&mut outputs, &mut state, end_of_message(1));
        let refusal = EventBody::Consent { purpose: Purpose::Product, granted: false };
        apply(&mut outputs, &mut state, event(2_001, person, refusal));
        apply(&mut outputs, &mut state, end_of_message(2));
        for id in [1, 2, 3] {
            outputs.outcomes.lock().expect("outcomes").insert([id; 16], None);
        }
        // Decided at 2,000 on state up to message 1: before the refusal.
        apply(&mut outputs, &mut state, disclosed(1, person, 1, 2_000));
        // Decided on state up to message 2: the refusal was seen.
        apply(&mut outputs, &mut state, disclosed(2, person, 2, 2_002));
        apply(&mut outputs, &mut state, end_of_message(3));
        let outcomes = outputs.outcomes.lock().expect("outcomes").clone();
        assert_eq!(outcomes[&[1; 16]], Some(Outcome::Refused), "decided before the refusal it was logged after");
        assert_eq!(outcomes[&[2; 16]], None, "left to the gate (which lets it through here): settled when written");
        assert_eq!(outputs.ready_disclosures(), vec![[2; 16]]);
        // Decided before anything this node has seen withdrawals from.
        outputs.seen_from(LogPosition { epoch: 1, sequence: 3 });
        apply(&mut outputs, &mut state, disclosed(3, person, 2, 2_003));
        let outcome = outputs.outcomes.lock().expect("outcomes")[&[3; 16]].clone();
        assert_eq!(outcome, Some(Outcome::Refused));
    }
}
