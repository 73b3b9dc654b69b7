//! `proviso rebuild`.

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::log::DirLock;
use proviso::pipeline::{rebuild_state_reporting, STATE_DIR};
use proviso::state::save_snapshot;

/// Rebuild derived state from the log alone (ignoring any snapshot) and
/// write a fresh snapshot. The log is the source of truth; run this after
/// upgrading proviso or if a snapshot is suspect. Needs the data dir to be
/// free (stop the server first).
#[derive(Debug, clap::Args)]
pub struct RebuildCommand {
    #[command(flatten)]
    pub options: OptArgs,
}

pub fn run(command: RebuildCommand) -> anyhow::Result<()> {
    let config = super::resolve_config(&command.options)?;
    let dir = &config.data_dir;
    let _lock = DirLock::acquire(dir).with_context(|| format!("opening data dir {}", dir.display()))?;
    let started = std::time::Instant::now();
    let bars = super::LogBars::for_log(dir, config.segment_bytes)?;
    let (state, report) = rebuild_state_reporting(dir, false, &|step, seq| bars.report(step, seq))
        .with_context(|| format!("replaying the log in {}", dir.display()))?;
    bars.finish();
    let bytes = save_snapshot(&state, &dir.join(STATE_DIR)).context("writing the snapshot")?;
    println!(
        "rebuilt state from {} log records in {:.2}s: {} subjects, snapshot {} bytes",
        report.replayed_records,
        started.elapsed().as_secs_f64(),
        state.subjects.acting(),
        bytes
    );
    let acting = state.subjects.acting().max(1) as f64;
    let parts: Vec<String> =
        state.heap_breakdown().iter().map(|(name, part)| format!("{name} {:.0}", *part as f64 / acting)).collect();
    println!(
        "state heap: {:.1} MB, {:.0} bytes per acting subject ({})",
        state.heap_bytes() as f64 / 1e6,
        state.heap_bytes() as f64 / acting,
        parts.join(", ")
    );
    Ok(())
}
