//! `proviso audit verify` and `proviso audit head`.

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::disclose::audit::{verify, verify_extends, Head, AUDIT_DIR, AUDIT_FILE};

/// Check the disclosure audit log.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  proviso audit verify
  proviso audit head > audit-head.txt     # keep this file where the data dir's writers cannot
  proviso audit verify --head \"$(cat audit-head.txt)\"")]
pub struct AuditCommand {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditAction {
    /// Verify the hash chain of <data>/audit/disclosures.log: exits non-zero
    /// and names the first altered, removed or reordered record. With
    /// --head, also proves the log still extends a head printed earlier by
    /// `proviso audit head`. Safe while the server runs (read-only).
    Verify {
        /// A head printed earlier by `proviso audit head` (COUNT:HASH): fails
        /// unless record COUNT-1 still has HASH, which catches a log rewritten
        /// with a valid chain or cut short
        #[arg(long, value_name = "COUNT:HASH")]
        head: Option<Head>,
        #[command(flatten)]
        options: OptArgs,
    },
    /// Verify the chain, then print its head as COUNT:HASH (the number of
    /// records and the last one's hash) on stdout. Keep it where whoever can
    /// write the data dir cannot: anyone who can write the file can rebuild
    /// a valid chain, but not one that extends a head kept elsewhere. Safe
    /// while the server runs (read-only).
    Head {
        #[command(flatten)]
        options: OptArgs,
    },
}

pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command.action {
        AuditAction::Verify { head, options } => {
            let config = super::resolve_config(&options)?;
            let path = config.data_dir.join(AUDIT_DIR).join(AUDIT_FILE);
            let (verified, extends) = match &head {
                Some(head) => verify_extends(&path, head)?,
                None => (verify(&path)?, Ok(())),
            };
            if let Some(problem) = verified.first_bad {
                anyhow::bail!(
                    "{}: {problem}; the {} records before it are intact{}",
                    path.display(),
                    verified.records,
                    scrub_note(&config.data_dir)
                );
            }
            extends.map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))?;
            let extended = head.map(|head| format!("; extends head {head}")).unwrap_or_default();
            println!(
                "{}: {} records, chain intact (head {}){extended}",
                path.display(),
                verified.records,
                verified.head()
            );
            if verified.torn_bytes > 0 {
                println!(
                    "{}: a torn last line of {} bytes follows (an append a crash interrupted, never acknowledged); \
                     it is not part of the chain and the next start cuts it",
                    path.display(),
                    verified.torn_bytes
                );
            }
            Ok(())
        }
        AuditAction::Head { options } => {
            let config = super::resolve_config(&options)?;
            let path = config.data_dir.join(AUDIT_DIR).join(AUDIT_FILE);
            let verified = verify(&path).with_context(|| format!("reading {}", path.display()))?;
            if let Some(problem) = verified.first_bad {
                anyhow::bail!(
                    "{}: {problem}; no head printed for a broken chain{}",
                    path.display(),
                    scrub_note(&config.data_dir)
                );
            }
            println!("{}", verified.head());
            Ok(())
        }
    }
}

/// Said after a broken record when an erasure's scrub in place is under
/// way or was cut short: the record may be one it is rewriting.
fn scrub_note(data_dir: &std::path::Path) -> &'static str {
    if proviso::disclose::audit::scrub_under_way(data_dir) {
        ". An erasure's scrub in place is under way or was cut short by a crash (audit/scrub.journal): the record \
         may be one it is rewriting. Verify again once the server finished it (a start of proviso finishes a cut one)"
    } else {
        ""
    }
}
