//! `proviso restore`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::contract::{Event, EventBody, Purpose};
use proviso::disclose::feeds::{Feeds, Revocation};
use proviso::pipeline::{Pipeline, Prepared};
use proviso::state::Withdrawal;
use proviso::vault::{read_ledger, Vault};

/// Restore a backup into a new data dir, erasing everyone erased since the
/// backup was taken.
///
/// A backup holds the people it held when it was taken. Each erasure leaves
/// a mark in the erasure ledger of the data dir it happened in
/// (<data>/vault/erasures.bin): a digest of the person's destroyed secret,
/// which names nobody on its own. A backup still holds that secret, so the
/// restore finds exactly the people erased since, and erases them from the
/// restored dir the way the server does (retractions in the feeds, the log
/// compacted, their secrets destroyed, the audit log scrubbed) before
/// anything serves it. Give every ledger that may hold later erasures with
/// --erasures-from: the live data dir, a newer backup, or a copy of the
/// ledger file kept elsewhere (it is safe to copy anywhere).
///
/// Then serve it: `proviso serve --data DIR`.
///
/// A backup of a cluster's node is restored as it was: the people erased
/// since are erased again, retractions and all, as the node applies the
/// cluster's log from the backup's position (every node writes the same
/// outputs from that log; a retraction written here, at this machine's
/// time, would make this node's feeds differ from the others').
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  proviso restore /backups/proviso-2026-03-01 --into ./proviso-data.restored --erasures-from ./proviso-data
  proviso restore /backups/proviso-2026-03-01 --into ./restored --erasures-from /offsite/erasures.bin")]
pub struct RestoreCommand {
    /// The backup (a directory written by `proviso backup`)
    #[arg(value_name = "BACKUP")]
    pub backup: PathBuf,
    /// Data dir to create (must not exist, or be empty)
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
    /// An erasure ledger to honour: a data dir, a backup, or an
    /// erasures.bin file (repeatable)
    #[arg(long = "erasures-from", value_name = "PATH")]
    pub erasures_from: Vec<PathBuf>,
    /// Restore without any later erasure (only when no ledger survives:
    /// people erased since the backup come back)
    #[arg(long, conflicts_with = "erasures_from")]
    pub no_later_erasures: bool,
    #[command(flatten)]
    pub options: OptArgs,
}

pub fn run(command: RestoreCommand) -> anyhow::Result<()> {
    if command.erasures_from.is_empty() && !command.no_later_erasures {
        anyhow::bail!(
            "name the erasure ledgers to honour with --erasures-from (the live data dir, a newer backup, or a copy \
             of its vault/erasures.bin); people erased since the backup would otherwise come back. Only when no \
             ledger survives, pass --no-later-erasures"
        );
    }
    let manifest = command.backup.join(proviso::pipeline::BACKUP_MANIFEST);
    anyhow::ensure!(
        manifest.exists(),
        "{} is not a complete backup (no {}): take a new one",
        command.backup.display(),
        proviso::pipeline::BACKUP_MANIFEST
    );
    let config = super::resolve_config(&command.options)?;
    anyhow::ensure!(
        config.pseudonym_key.is_some() || command.backup.join(proviso::edge::KEY_FILE).exists(),
        "the backup holds no {}: its server had the key from --pseudonym-key or PROVISO_PSEUDONYM_KEY; give the \
         same key to the restore",
        proviso::edge::KEY_FILE
    );
    let mut marks = HashSet::new();
    for path in &command.erasures_from {
        marks.extend(read_ledger(path).with_context(|| format!("reading the erasure ledger of {}", path.display()))?);
    }
    let into = &command.into;
    if into.exists() && std::fs::read_dir(into).map(|mut entries| entries.next().is_some()).unwrap_or(true) {
        anyhow::bail!("{} already exists and is not empty; restore into a new directory", into.display());
    }
    copy_tree(&command.backup, into).with_context(|| format!("copying the backup into {}", into.display()))?;

    // Whom the ledgers mark: their feed disclosures are retracted first
    // (the retractions need their secrets), then they are erased. A cluster
    // node's copy leaves that to the cluster's log (see above).
    let vault = Vault::open(into).context("opening the restored vault")?;
    let cluster_copy = proviso::state::load_snapshot(&into.join(proviso::pipeline::STATE_DIR))
        .ok()
        .flatten()
        .is_some_and(|state| state.stream_position != proviso::contract::LogPosition::default());
    let marked = vault.marked(&marks);
    let people = if cluster_copy { Vec::new() } else { marked.clone() };
    let withdrawals: Vec<Withdrawal> = people
        .iter()
        .map(|&subject| Withdrawal { subject, purposes: Purpose::ALL.to_vec(), partner: None, reason: "deleted" })
        .collect();
    let revocations = Revocation::from_withdrawals(&withdrawals, &vault);
    drop(vault);
    let retracted = Feeds::open(into).context("opening the feeds")?.revoke(&revocations, proviso::clock::now_ms())?;

    let mut options = config.pipeline_options();
    options.data_dir = into.clone();
    options.rules_path = None;
    options.erasure_compaction = std::time::Duration::ZERO;
    let pipeline = Pipeline::open(options).with_context(|| format!("opening {}", into.display()))?;
    let position = pipeline.state().next_seq;
    if !people.is_empty() {
        let now = proviso::clock::now_ms();
        let events: Vec<Event> = {
            let state = pipeline.state();
            people
                .iter()
                .filter_map(|pseudonym| {
                    let subject = state.subjects.lookup(pseudonym)?;
                    let region = state.subjects.get(subject)?.region;
                    Some(Event { ts_ms: now, subject: *pseudonym, region, body: EventBody::DeleteAccount })
                })
                .collect()
        };
        if !events.is_empty() {
            // With a zero compaction bound the log is compacted before this returns.
            pipeline.commit_blocking(Prepared::from_events(events)).context("erasing")?;
        }
        // Anyone marked but unknown to state keeps no secret either.
        pipeline.vault().forget(&people).context("destroying the erased people's secrets")?;
    }
    pipeline.shutdown();
    drop(pipeline);
    let vault = Vault::open(into).context("opening the vault")?;
    // The ledgers' other marks too, so a later restore from this dir honours them.
    vault.record_marks(&marks).context("keeping the ledgers' marks")?;
    if !people.is_empty() {
        let feeds = Feeds::open(into).context("opening the feeds")?;
        let audit = proviso::disclose::audit::AuditLog::open(into).context("opening the audit log")?;
        proviso::disclose::compact_outputs(into, &feeds, &audit, &vault);
    }
    if cluster_copy {
        println!(
            "restored {} (log position {position}), a copy of a cluster's node, into {}: {} people erased since the \
             backup are erased again as it applies the cluster's log; start it with --nats",
            command.backup.display(),
            into.display(),
            marked.len()
        );
        return Ok(());
    }
    println!(
        "restored {} (log position {position}) into {}: {} people erased since the backup erased again, {retracted} feed records retracted",
        command.backup.display(),
        into.display(),
        people.len()
    );
    Ok(())
}

/// Copies `from` into the new directory `to` (owner-only modes), leaving out
/// the source's lock file.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    proviso::log::fsmode::create_private_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&path, &target)?;
        } else if kind.is_file() && entry.file_name() != "LOCK" {
            let len = entry.metadata()?.len();
            proviso::log::copy_prefix(&path, &target, len)?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}
