//! The command line: one file per subcommand. Parses arguments and formats
//! output; the work happens in the library.

mod audit;
mod compact;
mod demo;
mod http;
mod ingest;
mod query;
mod rebuild;
mod report;
mod rules;
mod serve;
mod simulate;

use clap::{Parser, Subcommand};
use proviso::config::{Config, ConfigError, DataArgs, ServeArgs};
use proviso::processors::abuse::rules::RuleSet;

/// proviso: share messaging usage data with a partner network, consent first.
///
/// Events enter through a privacy edge (strict schema, message content
/// refused, phone numbers replaced by keyed pseudonyms), land in a durable log,
/// feed exact real-time usage metrics, and leave only through a purpose gate
/// that applies each person's consent.
///
/// Start here:
///   proviso demo                         live demo on ./proviso-demo
///   proviso serve --data ./proviso-data  run the server on 127.0.0.1:7420
///   proviso simulate --out events.ndjson generate a realistic workload
///   proviso ingest events.ndjson         load a file into the data dir
///   proviso query active --window 30     monthly active subjects
///   proviso rules backtest RULES --labels LABELS   score abuse rules
///   proviso report --phone NUMBER        what proviso holds about one person
#[derive(Debug, Parser)]
#[command(name = "proviso", version, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (ingest, metrics, consent, abuse, partner outputs) on a data dir
    Serve(serve::ServeCommand),
    /// Load an NDJSON file (or stdin) into a data dir, durably
    Ingest(ingest::IngestCommand),
    /// Query usage metrics from a data dir or a running server
    Query(query::QueryCommand),
    /// Generate a deterministic, realistic workload (file or live stream)
    Simulate(simulate::SimulateCommand),
    /// Start a server on a demo data dir and stream the simulator into it live
    Demo(demo::DemoCommand),
    /// Rebuild derived state from the log alone and write a fresh snapshot
    Rebuild(rebuild::RebuildCommand),
    /// Check abuse rules, or backtest them against labelled history
    Rules(rules::RulesCommand),
    /// Verify the hash-chained disclosure audit log, or print its head to keep
    Audit(audit::AuditCommand),
    /// Rewrite the log without erased (deleted) subjects
    Compact(compact::CompactCommand),
    /// Print what proviso holds about one person (JSON)
    Report(report::ReportCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(command) => serve::run(command),
        Command::Ingest(command) => ingest::run(command),
        Command::Query(command) => query::run(command),
        Command::Simulate(command) => simulate::run(command),
        Command::Demo(command) => demo::run(command),
        Command::Rebuild(command) => rebuild::run(command),
        Command::Rules(command) => rules::run(command),
        Command::Audit(command) => audit::run(command),
        Command::Compact(command) => compact::run(command),
        Command::Report(command) => report::run(command),
    }
}

/// Resolves the configuration, then compiles the abuse rules file it names,
/// so a broken file stops the command before anything is opened, its
/// problems listed like any other bad setting. (The pipeline compiles it
/// again when it installs it.)
pub fn resolve_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let config = Config::resolve(args)?;
    if let Some(path) = &config.rules_path {
        if let Err(error) = RuleSet::load(path) {
            return Err(ConfigError { problems: vec![format!("rules: {error}")] }.into());
        }
    }
    Ok(config)
}

/// [`resolve_config`] for commands that open a data dir but serve nothing.
pub fn resolve_data_config(args: &DataArgs) -> anyhow::Result<Config> {
    resolve_config(&ServeArgs { data: args.clone(), ..ServeArgs::default() })
}

/// Tracing to stderr; `PROVISO_LOG` sets the filter (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(proviso::config::env::PROVISO_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A multi-threaded tokio runtime for commands that need one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from)
}

/// A progress bar on stderr that hides itself when stderr is not a terminal
/// (CI, pipes). With a known total it shows bytes; otherwise a spinner.
pub fn progress_bar(total_bytes: Option<u64>, what: &'static str) -> indicatif::ProgressBar {
    let bar = match total_bytes {
        Some(total) => indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{prefix} {spinner} {bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(what);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar
}
