//! Backtest replay: logged events through candidate abuse rules, in a fresh
//! in-memory state, then scored by `processors::abuse::backtest`.
//!
//! Owns: the replay behind `proviso rules backtest`.
//! Never: touches the data dir or the state of a running pipeline.

use std::time::Instant;

use super::State;
use crate::contract::Record;
use crate::processors::abuse::backtest::{score, BacktestReport, Label};
use crate::processors::abuse::rules::RuleSet;
use crate::processors::abuse::RulesSource;

/// Replays `records` (control records are skipped: the candidate rules
/// replace the logged ones, and logged reviewer decisions are not replayed)
/// through `rules` and scores the result against `labels`.
pub fn backtest(records: impl IntoIterator<Item = Record>, rules: RuleSet, labels: &[Label]) -> BacktestReport {
    let started = Instant::now();
    let rule_count = rules.rules.len();
    let mut state = State::default();
    state.abuse.set_rules(rules, RulesSource { text: "(backtest)".into(), lists: Vec::new() });
    let mut seq = 0u64;
    for record in records {
        if let Record::Event(event) = record {
            state.apply_event(seq, &event);
            seq += 1;
        }
    }
    let replay_seconds = started.elapsed().as_secs_f64();
    score(&state.abuse, |pseudonym| state.subjects.lookup(pseudonym), labels, seq, replay_seconds, rule_count)
}
