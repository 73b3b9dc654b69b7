//! `proviso backup`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use proviso::config::{Config, OptArgs};
use proviso::pipeline::{BackupReport, Pipeline};

/// Take a consistent backup of a data dir into a new directory, while the
/// server runs (--server) or, with no server on it, from the data dir itself.
///
/// The backup holds the log up to one position, a snapshot of state at that
/// position, the audit log, feeds and vault as of that point, and the
/// pseudonym key: `proviso serve --data DIR` opens it and answers exactly as
/// the source answered at that position. Every batch acknowledged before the
/// backup was asked for is in it; ingest waits while it is taken (closed log
/// segments are hard-linked, so that is about the time to copy the active
/// segment, the audit log and the feeds).
///
/// With --server, give a NAME: the server creates the backup in its
/// `backup_dir` (default `<data>-backups` beside its data dir) and prints
/// where; a request never makes the server write anywhere else. Without
/// --server, DIR is any new directory, and the data dir (--data) must not be
/// in use.
///
/// To bring a backup back, use `proviso restore`: it also erases everyone
/// erased since the backup was taken (see docs/reliability.md, "Hot backups").
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  proviso backup 2026-03-01 --server http://127.0.0.1:7420 --token $ADMIN_TOKEN
  proviso backup /backups/proviso-2026-03-01 --data ./proviso-data     # server stopped")]
pub struct BackupCommand {
    /// Directory to create for the backup (must not exist); with --server, a
    /// name (letters, digits, `.`, `_`, `-`) inside the server's backup_dir
    #[arg(value_name = "DIR|NAME")]
    pub dir: PathBuf,
    /// Ask the server running at this URL to take the backup
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Admin token for --server (default: the configured admin token, else
    /// <data>/admin.token)
    #[arg(long, env = proviso::config::env::PROVISO_TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub options: OptArgs,
}

pub fn run(command: BackupCommand) -> anyhow::Result<()> {
    let config = super::resolve_config(&command.options)?;
    let mut dir = std::path::absolute(&command.dir).context("resolving the backup directory")?;
    let report = match &command.server {
        Some(server) => {
            let token = match &command.token {
                Some(token) => token.clone(),
                None => admin_token(&config)?,
            };
            let client = super::http::Client::new(server, &token);
            let name = command.dir.to_str().filter(|name| !name.contains('/')).with_context(|| {
                format!(
                    "with --server, give the backup a name, not a path ({}): the server writes it into its backup_dir",
                    command.dir.display()
                )
            })?;
            let answer = client.post_json("/v1/admin/backup", &serde_json::json!({ "name": name }))?;
            dir = PathBuf::from(answer["dir"].as_str().unwrap_or_default());
            BackupReport {
                position: answer["position"].as_u64().unwrap_or_default(),
                events: answer["events"].as_u64().unwrap_or_default(),
                audit_records: answer["audit_records"].as_u64().unwrap_or_default(),
                feed_records: answer["feed_records"].as_u64().unwrap_or_default(),
                secrets_minted: answer["secrets_minted"].as_u64().unwrap_or_default(),
                taken_ms: 0,
            }
        }
        None => offline(&config, &dir)?,
    };
    println!(
        "backup at log position {} in {}: {} events, {} audit records, {} feed records",
        report.position,
        dir.display(),
        report.events,
        report.audit_records,
        report.feed_records
    );
    Ok(())
}

/// The admin token for --server: configured, else the generated one.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = config.tokens.iter().find(|token| token.role == "admin") {
        return Ok(token.token.expose().to_string());
    }
    let path = config.data_dir.join(proviso::server::ADMIN_TOKEN_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("--server needs --token (or PROVISO_TOKEN); no admin token in {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// With no server: open the data dir (taking its lock) and back it up.
fn offline(config: &Config, dir: &Path) -> anyhow::Result<BackupReport> {
    anyhow::ensure!(
        config.pseudonym_key.is_some() || config.data_dir.join(proviso::edge::KEY_FILE).exists(),
        "{} holds no {}: give its key with --pseudonym-key or PROVISO_PSEUDONYM_KEY",
        config.data_dir.display(),
        proviso::edge::KEY_FILE
    );
    let mut options = config.pipeline_options();
    // Open as it is: no rules file installed, nothing appended.
    options.rules_path = None;
    let pipeline = Pipeline::open(options).with_context(|| {
        format!("opening data dir {} (if a server runs on it, pass --server URL)", config.data_dir.display())
    })?;
    let data_dir = config.data_dir.clone();
    pipeline.set_backup_hook(Arc::new(move |dest| {
        let audit = proviso::disclose::audit::AuditLog::open(&data_dir).map_err(|error| error.to_string())?;
        let feeds = proviso::disclose::feeds::Feeds::open(&data_dir).map_err(|error| error.to_string())?;
        Ok((audit.copy_to(dest).map_err(|e| e.to_string())?, feeds.copy_to(dest).map_err(|e| e.to_string())?))
    }));
    let report = pipeline.backup(dir).with_context(|| format!("backing up into {}", dir.display()))?;
    pipeline.shutdown();
    Ok(report)
}
