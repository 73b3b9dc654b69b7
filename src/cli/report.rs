//! `proviso report`: what proviso holds about one person, from a data dir.

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::contract::Pseudonym;
use proviso::disclose::audit::AuditLog;
use proviso::edge::{Edge, PseudonymKey};
use proviso::pipeline::rebuild_state;

/// Print the transparency report of one person as JSON: the same document
/// as `GET /v1/subjects/{s}/report` (activity, counts, consent, partner
/// links, every disclosure, abuse actions). Reads the data dir only; safe
/// while the server runs.
///
/// Examples:
///   proviso report --phone "+91 98123 45678"
///   proviso report --subject s_0123456789abcdef0123456789abcdef
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ReportCommand {
    /// The person's number, written any way (never logged)
    #[arg(long, conflicts_with = "subject", required_unless_present = "subject")]
    pub phone: Option<String>,
    /// Region to read a national-format number in (ISO 3166 alpha-2)
    #[arg(long, requires = "phone")]
    pub country: Option<String>,
    /// The person's subject id (`s_` + 32 hex digits)
    #[arg(long)]
    pub subject: Option<String>,
    #[command(flatten)]
    pub options: OptArgs,
}

pub fn run(command: ReportCommand) -> anyhow::Result<()> {
    let config = super::resolve_config(&command.options)?;
    let dir = &config.data_dir;
    let pseudonym = match (&command.phone, &command.subject) {
        (Some(phone), _) => {
            let key = match config.pseudonym_key.clone() {
                Some(key) => key,
                None => PseudonymKey::load_existing(dir)
                    .with_context(|| format!("reading the pseudonym key of {}", dir.display()))?,
            };
            let edge = Edge::new(key, config.default_region);
            edge.resolve_phone(phone, command.country.as_deref()).map_err(|error| anyhow::anyhow!("{error}"))?.0
        }
        (None, Some(id)) => Pseudonym::from_subject_id(id)
            .ok_or_else(|| anyhow::anyhow!("subject ids look like `s_` followed by 32 hex digits"))?,
        (None, None) => anyhow::bail!("give --phone or --subject"),
    };
    let (state, _) = rebuild_state(dir, true).with_context(|| format!("reading {}", dir.display()))?;
    if !state.cover.covers(&pseudonym) {
        anyhow::bail!(
            "{} is a cluster node's data dir, and another node holds this person's usage; ask a running node \
             (GET /v1/subjects/{}/report)",
            dir.display(),
            pseudonym.subject_id()
        );
    }
    let audit = AuditLog::open(dir).context("opening the audit log")?;
    let vault = proviso::vault::Vault::open(dir).context("opening the vault")?;
    let report = proviso::disclose::subjects::report(
        &state,
        &config.policy,
        &audit,
        &vault,
        &pseudonym,
        proviso::clock::now_ms(),
        None,
    )
    .map_err(|error| match error {
        proviso::disclose::DiscloseError::Gate(_) | proviso::disclose::DiscloseError::SubjectNotFound => {
            anyhow::anyhow!("proviso holds nothing about this subject")
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
