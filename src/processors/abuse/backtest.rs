//! Backtests: score the actions candidate rules took against ground-truth
//! labels. The replay that produces those actions (logged events through a
//! fresh in-memory state) is `state::backtest`, one layer up.
//!
//! Owns: labels files, scoring (precision, recall, detection delay, per rule
//! and per labelled behaviour) and the report.
//! Never: writes to the data dir, or prints a label's phone number (labels
//! are matched by pseudonym).

use std::collections::HashMap;

use serde::Serialize;

use super::{Abuse, Origin};
use crate::contract::Pseudonym;

/// One ground-truth label, its number already pseudonymised.
#[derive(Clone, Debug)]
pub struct Label {
    pub subject: Pseudonym,
    pub spam: bool,
    /// What the simulator made the subject do (e.g. `fresh_burst`).
    pub behaviour: String,
    /// Event time of the first abusive event (spam only).
    pub first_abuse_ms: Option<i64>,
}

/// Per-rule figures.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RuleScore {
    pub rule: String,
    /// Subjects the rule acted on.
    pub subjects: u64,
    pub true_positives: u64,
    pub false_positives: u64,
}

/// Per-behaviour figures: recall for spam behaviours, false positives for
/// hard negatives.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct BehaviourScore {
    pub behaviour: String,
    pub spam: bool,
    pub subjects: u64,
    pub detected: u64,
    /// Median event-time seconds from first abuse to first action over the
    /// detected spammers of this behaviour (0 for hard negatives).
    pub delay_p50_seconds: f64,
}

/// What a backtest found.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct BacktestReport {
    pub events: u64,
    pub rules: usize,
    pub labelled_spam: u64,
    pub labelled_ham: u64,
    /// Subjects with at least one action (rule or partner-flag policy).
    pub detected: u64,
    pub true_positives: u64,
    /// Detected subjects not labelled spam.
    pub false_positives: u64,
    pub false_negatives: u64,
    pub precision: f64,
    pub recall: f64,
    /// Event-time seconds from a spammer's first abusive event to its first
    /// action: median, 90th percentile, max (over detected spammers).
    pub delay_p50_seconds: f64,
    pub delay_p90_seconds: f64,
    pub delay_max_seconds: f64,
    pub by_rule: Vec<RuleScore>,
    pub by_behaviour: Vec<BehaviourScore>,
    pub rule_evaluations: u64,
    pub replay_seconds: f64,
    /// Heap bytes of window state per subject holding any, at the end.
    pub window_bytes_per_active_subject: f64,
}

/// Scores the actions of `abuse` after a replay of `events` events through
/// `rules` rules against `labels`; `lookup` gives a pseudonym's dense index
/// in the replayed state.
pub fn score(
    abuse: &Abuse,
    lookup: impl Fn(&Pseudonym) -> Option<u32>,
    labels: &[Label],
    events: u64,
    replay_seconds: f64,
    rules: usize,
) -> BacktestReport {
    // First action per subject, and every rule that acted on it.
    let mut first_action: HashMap<u32, i64> = HashMap::new();
    let mut rules_by_subject: HashMap<u32, Vec<&str>> = HashMap::new();
    for action in abuse.actions() {
        let origin = match &action.origin {
            Origin::Rule { rule } => rule.as_str(),
            Origin::PartnerFlag { .. } => "(partner flag policy)",
            Origin::Reviewer { .. } => continue,
        };
        let first = first_action.entry(action.subject).or_insert(action.ts_ms);
        *first = (*first).min(action.ts_ms);
        let list = rules_by_subject.entry(action.subject).or_default();
        if !list.contains(&origin) {
            list.push(origin);
        }
    }
    let label_of: HashMap<u32, &Label> =
        labels.iter().filter_map(|label| lookup(&label.subject).map(|index| (index, label))).collect();
    let is_spam = |subject: &u32| label_of.get(subject).is_some_and(|label| label.spam);

    let mut report = BacktestReport {
        events,
        rules,
        replay_seconds,
        rule_evaluations: abuse.evaluations,
        ..BacktestReport::default()
    };
    report.labelled_spam = labels.iter().filter(|l| l.spam).count() as u64;
    report.labelled_ham = labels.len() as u64 - report.labelled_spam;
    report.detected = first_action.len() as u64;
    report.true_positives = first_action.keys().filter(|s| is_spam(s)).count() as u64;
    report.false_positives = report.detected - report.true_positives;
    report.false_negatives = report.labelled_spam - report.true_positives.min(report.labelled_spam);
    report.precision = ratio(report.true_positives, report.detected);
    report.recall = ratio(report.true_positives, report.labelled_spam);

    let mut delays: Vec<f64> = first_action
        .iter()
        .filter_map(|(subject, at)| {
            let label = label_of.get(subject).filter(|l| l.spam)?;
            Some((at - label.first_abuse_ms?) as f64 / 1000.0)
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    report.delay_p50_seconds = percentile(&delays, 0.5);
    report.delay_p90_seconds = percentile(&delays, 0.9);
    report.delay_max_seconds = delays.last().copied().unwrap_or(0.0);

    let mut by_rule: HashMap<&str, RuleScore> = HashMap::new();
    for (subject, names) in &rules_by_subject {
        for name in names {
            let score =
                by_rule.entry(name).or_insert_with(|| RuleScore { rule: name.to_string(), ..Default::default() });
            score.subjects += 1;
            if is_spam(subject) {
                score.true_positives += 1;
            } else {
                score.false_positives += 1;
            }
        }
    }
    report.by_rule = by_rule.into_values().collect();
    report.by_rule.sort_by(|a, b| a.rule.cmp(&b.rule));

    let mut by_behaviour: HashMap<(&str, bool), BehaviourScore> = HashMap::new();
    let mut delays_by_behaviour: HashMap<&str, Vec<f64>> = HashMap::new();
    for label in labels {
        if let (true, Some(first_abuse), Some(at)) =
            (label.spam, label.first_abuse_ms, lookup(&label.subject).and_then(|index| first_action.get(&index)))
        {
            delays_by_behaviour.entry(label.behaviour.as_str()).or_default().push((at - first_abuse) as f64 / 1000.0);
        }
        let score = by_behaviour.entry((label.behaviour.as_str(), label.spam)).or_insert_with(|| BehaviourScore {
            behaviour: label.behaviour.clone(),
            spam: label.spam,
            ..Default::default()
        });
        score.subjects += 1;
        let detected = lookup(&label.subject).is_some_and(|index| first_action.contains_key(&index));
        score.detected += u64::from(detected);
    }
    for score in by_behaviour.values_mut().filter(|score| score.spam) {
        if let Some(delays) = delays_by_behaviour.get_mut(score.behaviour.as_str()) {
            delays.sort_by(f64::total_cmp);
            score.delay_p50_seconds = percentile(delays, 0.5);
        }
    }
    report.by_behaviour = by_behaviour.into_values().collect();
    report.by_behaviour.sort_by(|a, b| (!a.spam, &a.behaviour).cmp(&(!b.spam, &b.behaviour)));
    let active = abuse.active_subjects();
    report.window_bytes_per_active_subject =
        if active == 0 { 0.0 } else { abuse.window_heap_bytes() as f64 / active as f64 };
    report
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

impl BacktestReport {
    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "replayed {} events through {} rules in {:.1}s ({} rule evaluations)\n",
            self.events, self.rules, self.replay_seconds, self.rule_evaluations
        ));
        out.push_str(&format!(
            "precision {:.3}  recall {:.3}  ({} detected: {} spam, {} not; {} spam missed)\n",
            self.precision, self.recall, self.detected, self.true_positives, self.false_positives, self.false_negatives
        ));
        out.push_str(&format!(
            "detection delay (event time, first abuse -> action): p50 {:.0}s  p90 {:.0}s  max {:.0}s\n",
            self.delay_p50_seconds, self.delay_p90_seconds, self.delay_max_seconds
        ));
        out.push_str("\nby rule                          subjects    spam   not spam\n");
        for rule in &self.by_rule {
            out.push_str(&format!(
                "  {:<30} {:>8} {:>7} {:>10}\n",
                rule.rule, rule.subjects, rule.true_positives, rule.false_positives
            ));
        }
        out.push_str("\nby labelled behaviour            label   subjects  detected  delay p50\n");
        for behaviour in &self.by_behaviour {
            let delay = if behaviour.spam && behaviour.detected > 0 {
                format!("{:.0}s", behaviour.delay_p50_seconds)
            } else {
                "-".to_string()
            };
            out.push_str(&format!(
                "  {:<30} {:<6} {:>9} {:>9} {:>10}\n",
                behaviour.behaviour,
                if behaviour.spam { "spam" } else { "ham" },
                behaviour.subjects,
                behaviour.detected,
                delay
            ));
        }
        out
    }
}

/// A bad labels file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelsError {
    #[error("labels line {line}: {message}")]
    Line { line: usize, message: String },
}

#[derive(serde::Deserialize)]
struct LabelLine {
    phone: Option<String>,
    subject: Option<String>,
    label: String,
    #[serde(default)]
    behaviour: Option<String>,
    #[serde(default)]
    first_abuse_ts: Option<i64>,
}

/// Reads a labels file: NDJSON lines `{"phone": "...", "label": "spam"|"ham",
/// "behaviour": "...", "first_abuse_ts": ms}` (as `proviso simulate --labels`
/// writes), or with `"subject": "s_..."` instead of a phone. `resolve` turns
/// a written number into its pseudonym through the edge.
pub fn parse_labels(text: &str, resolve: impl Fn(&str) -> Option<Pseudonym>) -> Result<Vec<Label>, LabelsError> {
    let mut labels = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |message: &str| LabelsError::Line { line, message: message.to_string() };
        let parsed: LabelLine = serde_json::from_str(raw).map_err(|_| {
            bad("expected {\"phone\" or \"subject\", \"label\": \"spam\"|\"ham\", \"behaviour\", \"first_abuse_ts\"}")
        })?;
        let subject = match (&parsed.phone, &parsed.subject) {
            (Some(phone), None) => resolve(phone).ok_or_else(|| bad("`phone` is not a valid number"))?,
            (None, Some(id)) => Pseudonym::from_subject_id(id).ok_or_else(|| bad("`subject` is not a subject id"))?,
            _ => return Err(bad("give exactly one of `phone` or `subject`")),
        };
        let spam = match parsed.label.as_str() {
            "spam" => true,
            "ham" => false,
            _ => return Err(bad("`label` must be spam or ham")),
        };
        labels.push(Label {
            subject,
            spam,
            behaviour: parsed.behaviour.unwrap_or_else(|| parsed.label.clone()),
            first_abuse_ms: parsed.first_abuse_ts,
        });
    }
    Ok(labels)
}
