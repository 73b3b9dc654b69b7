//! The command line: one file per subcommand. Parses arguments and formats
//! output; the work happens in the library.

mod audit;
mod backup;
mod bench;
mod bench_nats;
mod bench_stats;
mod compact;
mod config;
mod demo;
mod http;
mod ingest;
mod log;
mod query;
mod rebuild;
mod report;
mod restore;
mod rules;
mod serve;
mod simulate;
mod soak;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use proviso::config::{Config, ConfigError, GlobalOpt, OptArgs, SERVE_ONLY_HEADINGS};
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
///   proviso backup DIR --server URL      a consistent copy of a running server's data dir
///   proviso restore DIR --into NEW --erasures-from DATA   bring a backup back, later erasures kept
///   proviso config show --config FILE    the configuration in force (secrets masked)
#[derive(Debug, Parser)]
#[command(name = "proviso", version, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpt,
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the command line (exits on `--help` or a usage error). Commands
/// that serve nothing accept the server's options, so one config file and
/// one environment serve every command, but leave them out of `--help`.
pub fn parse() -> Cli {
    let mut command = Cli::command();
    let quiet: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .filter(|name| name != "serve" && name != "config")
        .collect();
    for name in quiet {
        command = command.mut_subcommand(name, hide_serve_only_options);
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

fn hide_serve_only_options(command: clap::Command) -> clap::Command {
    let serve_only: Vec<String> = command
        .get_arguments()
        .filter(|arg| arg.get_help_heading().is_some_and(|heading| SERVE_ONLY_HEADINGS.contains(&heading)))
        .map(|arg| arg.get_id().to_string())
        .collect();
    let subcommands: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_string()).collect();
    let command = serve_only.into_iter().fold(command, |command, id| command.mut_arg(id, |arg| arg.hide(true)));
    subcommands.into_iter().fold(command, |command, name| command.mut_subcommand(name, hide_serve_only_options))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Each variant sets only the one-line `about` (the subcommand list and
    // `-h`); `--help` shows the long help of the command's own doc comment.
    // A `///` here would replace that long help with its one line.
    #[command(about = "Run the HTTP server (ingest, metrics, consent, abuse, partner outputs) on a data dir")]
    Serve(serve::ServeCommand),
    #[command(about = "Load an NDJSON file (or stdin) into a data dir, durably")]
    Ingest(ingest::IngestCommand),
    #[command(about = "Query usage metrics from a data dir or a running server")]
    Query(query::QueryCommand),
    #[command(about = "Generate a deterministic, realistic workload (file or live stream)")]
    Simulate(simulate::SimulateCommand),
    // The about and long help come from `DemoCommand`'s doc comment.
    Demo(demo::DemoCommand),
    #[command(about = "Rebuild derived state from the log alone and write a fresh snapshot")]
    Rebuild(rebuild::RebuildCommand),
    #[command(about = "Check abuse rules, or backtest them against labelled history")]
    Rules(rules::RulesCommand),
    #[command(about = "Verify the hash-chained disclosure audit log, or print its head to keep")]
    Audit(audit::AuditCommand),
    #[command(about = "Rewrite the log without erased (deleted) subjects")]
    Compact(compact::CompactCommand),
    #[command(about = "Check every record of the event log (names damaged ones by file and byte)")]
    Log(log::LogCommand),
    #[command(about = "Print what proviso holds about one person (JSON)")]
    Report(report::ReportCommand),
    #[command(about = "Take a consistent backup of a data dir, while the server runs")]
    Backup(backup::BackupCommand),
    #[command(about = "Restore a backup into a new data dir, erasing everyone erased since")]
    Restore(restore::RestoreCommand),
    #[command(about = "Soak a real server on loopback for --minutes and check it stays flat")]
    Soak(soak::SoakCommand),
    #[command(about = "Print the configuration in force (secrets masked), or the options reference")]
    Config(config::ConfigCommand),
    #[command(about = "Benchmark clients for the scripts in bench/ (a low-CPU HTTP load generator)")]
    Bench(bench::BenchCommand),
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
        Command::Log(command) => log::run(command),
        Command::Report(command) => report::run(command),
        Command::Backup(command) => backup::run(command),
        Command::Restore(command) => restore::run(command),
        Command::Soak(command) => soak::run(command),
        Command::Config(command) => config::run(command),
        Command::Bench(command) => bench::run(command),
    }
}

/// Resolves the configuration, then compiles the abuse rules file it names,
/// so a broken file stops the command before anything is opened, its
/// problems listed like any other bad setting. (The pipeline compiles it
/// again when it installs it.)
pub fn resolve_config(options: &OptArgs) -> anyhow::Result<Config> {
    let config = Config::resolve(options)?;
    if let Some(path) = &config.rules_path {
        if let Err(error) = RuleSet::load(path) {
            return Err(ConfigError { problems: vec![format!("rules: {error}")] }.into());
        }
    }
    Ok(config)
}

/// Tracing to stderr, filtered by `--log` / `PROVISO_LOG` (an unreadable
/// filter falls back to `info`).
pub fn init_tracing(global: &GlobalOpt) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
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

/// Bars for work over the whole log (`proviso rebuild`, `proviso compact`):
/// one a step the library reports ([`proviso::pipeline::Progress`]), each
/// counting records up to the log's length, on stderr and hidden when
/// stderr is not a terminal.
pub struct LogBars {
    records: std::cell::Cell<u64>,
    current: std::cell::RefCell<Option<(&'static str, indicatif::ProgressBar)>>,
}

impl LogBars {
    /// Bars for the log of `data_dir` as it stands (its records counted from
    /// the segments' names and the active segment, without reading the
    /// closed ones); none to draw when it has no log.
    pub fn for_log(data_dir: &std::path::Path, segment_bytes: u64) -> anyhow::Result<LogBars> {
        let log_dir = data_dir.join(proviso::pipeline::LOG_DIR);
        let records = if log_dir.exists() {
            proviso::log::Log::open_unverified(&log_dir, segment_bytes)
                .map_err(|error| anyhow::anyhow!("opening the log in {}: {error}", log_dir.display()))?
                .0
                .next_seq()
        } else {
            0
        };
        Ok(LogBars { records: std::cell::Cell::new(records), current: std::cell::RefCell::new(None) })
    }

    /// The log's length from now on (a compaction rewrote it).
    pub fn set_records(&self, records: u64) {
        self.records.set(records);
    }

    /// The library's progress report: a new bar when the step changes.
    pub fn report(&self, step: &'static str, seq: u64) {
        let mut current = self.current.borrow_mut();
        if current.as_ref().map(|(name, _)| *name) != Some(step) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let bar = counting_bar(
                self.records.get(),
                "{prefix} [{bar:30}] {human_pos}/{human_len} records, eta {eta}",
                step,
            );
            *current = Some((step, bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_position(seq.saturating_add(1).min(self.records.get()));
        }
    }

    /// Ends the last bar, and its line: what the command prints next
    /// starts on a line of its own (it followed the bar on the terminal).
    pub fn finish(&self) {
        if let Some((_, bar)) = self.current.borrow_mut().take() {
            bar.finish();
            if !bar.is_hidden() {
                eprintln!();
            }
        }
    }
}

/// A progress bar on stderr that hides itself when stderr is not a terminal
/// (CI, pipes). With a known total it shows bytes; otherwise a spinner.
pub fn progress_bar(total_bytes: Option<u64>, what: &'static str) -> indicatif::ProgressBar {
    match total_bytes {
        Some(total) => {
            counting_bar(total, "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}", what)
        }
        None => {
            let bar = indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{prefix} {spinner} {bytes} {bytes_per_sec} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(what);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
            bar
        }
    }
}

/// A bar of `len` steps drawn with `template`, prefixed `what`, on stderr
/// (hidden when stderr is not a terminal): what every bar of a known length
/// shares.
pub fn counting_bar(len: u64, template: &str, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar
}
