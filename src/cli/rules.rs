//! `proviso rules check|backtest`.

use std::path::PathBuf;

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::edge::{Edge, PseudonymKey};
use proviso::pipeline::LOG_DIR;
use proviso::processors::abuse::backtest::parse_labels;
use proviso::processors::abuse::rules::RuleSet;
use proviso::state::backtest::backtest;

/// Validate abuse rules, or backtest them against labelled history.
#[derive(Debug, clap::Args)]
pub struct RulesCommand {
    #[command(subcommand)]
    pub action: RulesAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum RulesAction {
    /// Check a rules file and list its rules; exits non-zero with every
    /// problem listed when it is broken
    Check {
        /// The rules file (TOML, see docs/rules.md)
        rules: PathBuf,
    },
    /// Replay the logged events through candidate rules, with no side
    /// effects, and print precision, recall and detection delay against
    /// ground-truth labels.
    ///
    /// Example:
    ///   proviso simulate --seed 7 --out events.ndjson --labels labels.ndjson
    ///   proviso ingest events.ndjson --data ./bt
    ///   proviso rules backtest rules.toml --labels labels.ndjson --data ./bt
    #[command(verbatim_doc_comment)]
    Backtest {
        /// Candidate rules file (TOML)
        #[arg(value_name = "RULES")]
        candidate: PathBuf,
        /// Labels: NDJSON lines {"phone"|"subject", "label": "spam"|"ham",
        /// "behaviour", "first_abuse_ts"}, as `proviso simulate --labels` writes
        #[arg(long, value_name = "FILE")]
        labels: PathBuf,
        // Boxed: every option is in it, and `Check` is a path.
        #[command(flatten)]
        options: Box<OptArgs>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: RulesCommand) -> anyhow::Result<()> {
    match command.action {
        RulesAction::Check { rules } => {
            let set = RuleSet::load(&rules)?;
            println!("{}: {} rules, {} lists", rules.display(), set.rules.len(), set.lists.len());
            for rule in &set.rules {
                let state = if rule.enabled { "" } else { " (disabled)" };
                println!("  {}{}: {}", rule.name, state, rule.source);
            }
            Ok(())
        }
        RulesAction::Backtest { candidate, labels, options, json } => {
            let set = RuleSet::load(&candidate)?;
            let config = super::resolve_config(&options)?;
            let key = match config.pseudonym_key.clone() {
                Some(key) => key,
                None => PseudonymKey::load_existing(&config.data_dir)
                    .with_context(|| format!("reading the pseudonym key of {}", config.data_dir.display()))?,
            };
            let edge = Edge::new(key, config.default_region);
            let text = std::fs::read_to_string(&labels)
                .with_context(|| format!("reading labels file {}", labels.display()))?;
            let labels =
                parse_labels(&text, |phone| edge.resolve_phone(phone, None).ok().map(|(pseudonym, _)| pseudonym))?;
            let log_dir = config.data_dir.join(LOG_DIR);
            // A bar of the log's records (the spinner before counted them
            // as bytes).
            let bars = super::LogBars::for_log(&config.data_dir, config.segment_bytes)?;
            let mut records = Vec::new();
            proviso::pipeline::replay_records(&log_dir, 0, |seq, record| {
                records.push(record);
                bars.report("reading log records", seq);
            })
            .with_context(|| format!("reading the log in {}", log_dir.display()))?;
            bars.finish();
            let report = backtest(records, set, &labels);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(())
        }
    }
}
