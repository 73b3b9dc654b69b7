//! `proviso compact`.

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::log::DirLock;
use proviso::pipeline::{compact_log_reporting, rebuild_state_reporting, STATE_DIR};
use proviso::state::save_snapshot;

/// Rewrite the log without erased subjects (deleted accounts), then rebuild
/// state and the snapshot from it. Afterwards no byte of an erased subject's
/// pseudonym or events remains in the data dir. The server does this on its
/// own within `erasure_compaction_seconds`; run this with the server stopped.
#[derive(Debug, clap::Args)]
pub struct CompactCommand {
    #[command(flatten)]
    pub options: OptArgs,
}

pub fn run(command: CompactCommand) -> anyhow::Result<()> {
    let config = super::resolve_config(&command.options)?;
    let dir = &config.data_dir;
    let _lock = DirLock::acquire(dir).with_context(|| format!("opening data dir {}", dir.display()))?;
    let bars = super::LogBars::for_log(dir, config.segment_bytes)?;
    let progress = |step, seq| bars.report(step, seq);
    // The security feeds' cursors about erased people are kept as tombstones.
    let (before, _) = rebuild_state_reporting(dir, true, &progress).context("reading state before compaction")?;
    let gaps = before.security_feed_gaps(proviso::clock::now_ms());
    drop(before);
    let report = compact_log_reporting(dir, config.segment_bytes, gaps.as_slice(), &progress)
        .with_context(|| format!("compacting {}", dir.display()))?;
    if report.erased_subjects == 0 {
        bars.finish();
        println!("nothing to compact: no deleted accounts in {} log records", report.records_before);
        return Ok(());
    }
    bars.set_records(report.records_after);
    let (state, _) =
        rebuild_state_reporting(dir, false, &progress).context("rebuilding state from the compacted log")?;
    bars.finish();
    save_snapshot(&state, &dir.join(STATE_DIR)).context("writing the snapshot")?;
    // The erased people's secrets leave the vault file with the log.
    let vault = proviso::vault::Vault::open(dir).context("opening the vault")?;
    vault.forget_unless(|pseudonym| state.subjects.lookup(pseudonym).is_some()).context("shredding secrets")?;
    vault.compact().context("rewriting the vault")?;
    let feeds = proviso::disclose::feeds::Feeds::open(dir).context("opening the feeds")?;
    let audit = proviso::disclose::audit::AuditLog::open(dir).context("opening the audit log")?;
    proviso::disclose::compact_outputs(dir, &feeds, &audit, &vault);
    println!(
        "erased {} subjects: {} -> {} log records, {} -> {} bytes",
        report.erased_subjects, report.records_before, report.records_after, report.bytes_before, report.bytes_after
    );
    Ok(())
}
