//! `proviso log verify`.

use proviso::config::OptArgs;
use proviso::pipeline::LOG_DIR;

/// Check the event log.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  proviso log verify --data ./proviso-data")]
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
    }
}
