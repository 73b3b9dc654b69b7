//! `proviso log verify` and `proviso log cut`.

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::log::DirLock;
use proviso::pipeline::LOG_DIR;

/// Check the event log.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  proviso log verify --data ./proviso-data
  proviso log cut --at 00000000000000000000.seg:5850 --data ./proviso-data          # says what it would move
  proviso log cut --at 00000000000000000000.seg:5850 --data ./proviso-data --yes    # moves it aside")]
pub struct LogCommand {
    #[command(subcommand)]
    pub action: LogAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum LogAction {
    /// Read every segment of <data>/log whole and check each record's
    /// checksum: exits non-zero and names every damaged record (segment file
    /// and byte offset) and how many valid records follow it. A torn last
    /// record (a write a crash cut short, never acknowledged) is reported
    /// but is not damage: the next start cuts it. Safe while the server runs
    /// (read-only). See docs/reliability.md#faults-from-the-disk for what to
    /// do about damage.
    Verify {
        #[command(flatten)]
        options: OptArgs,
    },
    /// Last resort for a damaged log with no backup: end the log at a
    /// damaged record. The bytes from SEGMENT:BYTE on, and every later
    /// segment, are moved into <data>/log-cut-<time>/ (kept, not deleted);
    /// every record after the cut leaves the log (acknowledged events among
    /// them are lost from proviso's answers; people known only from them
    /// lose their secrets at the next start). Without --yes it only says what
    /// it would move. Needs the data dir free (stop the server first).
    Cut {
        /// Where to cut, as `proviso log verify` prints it: a segment file
        /// name, a colon, a byte offset where a record starts
        #[arg(long, value_name = "SEGMENT:BYTE")]
        at: String,
        /// Move the records aside (without it: only report)
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        options: OptArgs,
    },
}

pub fn run(command: LogCommand) -> anyhow::Result<()> {
    match command.action {
        LogAction::Verify { options } => {
            let config = super::resolve_config(&options)?;
            let dir = config.data_dir.join(LOG_DIR);
            let checks = proviso::log::verify(&dir)?;
            let mut damaged = 0;
            let mut records = 0;
            for check in &checks {
                records += check.records;
                for (offset, detail) in &check.damage {
                    damaged += 1;
                    println!("{}: damaged at byte {offset} ({detail})", check.path.display());
                }
                if let Some(bytes) = check.torn_tail {
                    println!(
                        "{}: torn last record ({bytes} bytes, a write cut short by a crash; never acknowledged, cut at the next start)",
                        check.path.display()
                    );
                }
            }
            if damaged > 0 {
                anyhow::bail!(
                    "{}: {damaged} damaged record(s) among {records} valid ones in {} segment(s); proviso will not \
                     start on it. Restore the data dir from a backup (see docs/reliability.md#faults-from-the-disk)",
                    dir.display(),
                    checks.len()
                );
            }
            println!("{}: {records} records in {} segment(s), every checksum intact", dir.display(), checks.len());
            Ok(())
        }
        LogAction::Cut { at, yes, options } => {
            let config = super::resolve_config(&options)?;
            let (segment, offset) = at
                .rsplit_once(':')
                .and_then(|(segment, offset)| {
                    Some((segment.rsplit('/').next()?.to_string(), offset.parse::<u64>().ok()?))
                })
                .context(
                    "--at is SEGMENT:BYTE, e.g. 00000000000000000000.seg:5850, as `proviso log verify` prints it",
                )?;
            let data = &config.data_dir;
            let _lock = DirLock::acquire(data).with_context(|| format!("opening data dir {}", data.display()))?;
            let dir = data.join(LOG_DIR);
            if !yes {
                let report = proviso::log::cut(&dir, &segment, offset, None)?;
                println!(
                    "would keep {} records and move {} valid records ({} bytes) aside from {segment} byte {offset} on; \
                     nothing changed (add --yes to do it)",
                    report.kept_records, report.moved_records, report.moved_bytes
                );
                return Ok(());
            }
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let aside = data.join(format!("log-cut-{stamp}"));
            let report = proviso::log::cut(&dir, &segment, offset, Some(&aside))?;
            println!(
                "kept {} records; moved {} valid records ({} bytes) from {segment} byte {offset} on to {}; the next \
                 start rebuilds state from the log that is left",
                report.kept_records,
                report.moved_records,
                report.moved_bytes,
                aside.display()
            );
            Ok(())
        }
    }
}
