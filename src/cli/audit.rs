//! `proviso audit verify`.

use proviso::config::{Config, DataArgs};
use proviso::outputs::audit::{verify, AUDIT_DIR, AUDIT_FILE};

/// Check the disclosure audit log.
#[derive(Debug, clap::Args)]
pub struct AuditCommand {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditAction {
    /// Verify the hash chain of <data>/audit/disclosures.log: exits non-zero
    /// and names the first altered, removed or reordered record. Safe while
    /// the server runs (read-only).
    Verify {
        #[command(flatten)]
        data: DataArgs,
    },
}

pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command.action {
        AuditAction::Verify { data } => {
            let config = Config::resolve_data(&data)?;
            let path = config.data_dir.join(AUDIT_DIR).join(AUDIT_FILE);
            let verified = verify(&path)?;
            match verified.first_bad {
                None => {
                    println!(
                        "{}: {} records, chain intact (head {})",
                        path.display(),
                        verified.records,
                        verified.last_hash
                    );
                    Ok(())
                }
                Some(problem) => {
                    anyhow::bail!(
                        "{}: {problem}; the {} records before it are intact",
                        path.display(),
                        verified.records
                    )
                }
            }
        }
    }
}
