//! Abuse rules: the declarative rule language and its TOML rules file.
//!
//! Owns: the rules file format (`[lists]`, `[partner_flags]`, `[[rule]]`),
//! the `when` expression language (lexer, typed parser, evaluator), domain
//! lists, the partner-flag policy, and every message a bad rules file gets.
//! Never: reads events or keeps per-subject state. The engine evaluates an
//! [`Expr`] by answering the [`Feature`]s it asks for, lazily.
//!
//! A rules file is checked completely before anything is used: every problem
//! (in any rule, list or field) is collected into one [`RulesError`], so an
//! operator fixes the whole file in one pass. Expressions are type-checked at
//! parse time, and the tree types ([`Expr`] is always a condition, [`NumExpr`]
//! always a number) make an ill-typed rule unrepresentable.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

// Partner-flag reasons and list domains follow the edge's definitions.
use crate::edge::{is_reason_token, MAX_REASON_LEN};

/// Shortest window a windowed feature may use.
const MIN_WINDOW_MS: i64 = 1_000;
/// Longest window: the engine keeps per-subject event state this long at most.
const MAX_WINDOW_MS: i64 = 30 * DAY_MS;
const DAY_MS: i64 = 86_400_000;
/// Longest rule or list name; names are identifiers in `when` expressions.
const MAX_NAME_LEN: usize = 64;
/// Most domain lists in one file: the engine marks each sent message with
/// the lists its link matched in a 16-bit mask.
const MAX_LISTS: usize = 16;
/// The built-in rules file, compiled in so the default works with no files.
const DEFAULT_RULES_TOML: &str = include_str!("default_rules.toml");
/// The one list file the built-in rules name, as written in the file.
const DEFAULT_PHISHING_LIST_PATH: &str = "lists/phishing_domains.txt";
const DEFAULT_PHISHING_LIST: &str = include_str!("lists/phishing_domains.txt");

/// Every problem found in a rules file, listed together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_error(.origin, .problems))]
pub struct RulesError {
    /// The rules file, when the rules came from one ([`RuleSet::load`]).
    pub origin: Option<String>,
    /// One line per problem, each naming the rule (or list) and the field.
    pub problems: Vec<String>,
}

fn render_error(origin: &Option<String>, problems: &[String]) -> String {
    let mut text = match origin {
        Some(origin) => format!("invalid abuse rules in {origin}:"),
        None => "invalid abuse rules:".to_string(),
    };
    for problem in problems {
        text.push_str("\n  - ");
        text.push_str(problem);
    }
    text
}

impl RulesError {
    fn single(problem: String) -> RulesError {
        RulesError { origin: None, problems: vec![problem] }
    }
}

/// The reason category a rule's action carries, shared with partners.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReasonCategory {
    Spam,
    Scam,
    Phishing,
    FakeAccount,
    Abuse,
}

impl ReasonCategory {
    pub const ALL: [ReasonCategory; 5] = [
        ReasonCategory::Spam,
        ReasonCategory::Scam,
        ReasonCategory::Phishing,
        ReasonCategory::FakeAccount,
        ReasonCategory::Abuse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCategory::Spam => "spam",
            ReasonCategory::Scam => "scam",
            ReasonCategory::Phishing => "phishing",
            ReasonCategory::FakeAccount => "fake_account",
            ReasonCategory::Abuse => "abuse",
        }
    }

    pub fn parse(text: &str) -> Option<ReasonCategory> {
        ReasonCategory::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

impl fmt::Display for ReasonCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a matching rule does. At least one is set in a parsed rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Effects {
    /// Ban the subject.
    pub ban: bool,
    /// Put the subject in the review queue.
    pub review: bool,
    /// Flag the subject to partners (through the consent gate).
    pub share: bool,
}

/// What to do with a `partner_flag` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagAction {
    Ban,
    Review,
    Ignore,
}

impl FlagAction {
    pub const ALL: [FlagAction; 3] = [FlagAction::Ban, FlagAction::Review, FlagAction::Ignore];

    pub fn as_str(self) -> &'static str {
        match self {
            FlagAction::Ban => "ban",
            FlagAction::Review => "review",
            FlagAction::Ignore => "ignore",
        }
    }

    pub fn parse(text: &str) -> Option<FlagAction> {
        FlagAction::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

impl fmt::Display for FlagAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[partner_flags]` section: partner flags with a reason in
/// `ban_reasons` ban, any other reason gets `default`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagPolicy {
    pub ban_reasons: Vec<String>,
    pub default: FlagAction,
}

impl Default for FlagPolicy {
    /// Without a `[partner_flags]` section every flag goes to review: a
    /// partner's word alone bans nobody unless the operator says so.
    fn default() -> FlagPolicy {
        FlagPolicy { ban_reasons: Vec::new(), default: FlagAction::Review }
    }
}

impl FlagPolicy {
    pub fn action_for(&self, reason: &str) -> FlagAction {
        if self.ban_reasons.iter().any(|ban_reason| ban_reason == reason) {
            FlagAction::Ban
        } else {
            self.default
        }
    }
}

/// A named set of domains, for `list_links[LIST, WINDOW]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainList {
    pub name: String,
    /// Lowercase bare domains.
    pub domains: foldhash::HashSet<String>,
}

impl DomainList {
    /// True when `domain` or any parent domain of it is in the list, so
    /// `sub.evil.top` matches a list holding `evil.top`.
    pub fn contains(&self, domain: &str) -> bool {
        let lowered;
        let mut candidate = if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = domain.to_ascii_lowercase();
            lowered.as_str()
        } else {
            domain
        };
        loop {
            if self.domains.contains(candidate) {
                return true;
            }
            match candidate.find('.') {
                Some(dot) => candidate = &candidate[dot + 1..],
                None => return false,
            }
        }
    }
}

/// The features a `when` expression can ask about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureKind {
    AccountAge,
    MessagesSent,
    DistinctRecipients,
    NonContactRecipients,
    GroupsMessaged,
    DeviceRegistrations,
    ReportsReceived,
    DistinctReporters,
    BlocksReceived,
    ListLinks,
    PartnerFlags,
}

impl FeatureKind {
    pub const ALL: [FeatureKind; 11] = [
        FeatureKind::AccountAge,
        FeatureKind::MessagesSent,
        FeatureKind::DistinctRecipients,
        FeatureKind::NonContactRecipients,
        FeatureKind::GroupsMessaged,
        FeatureKind::DeviceRegistrations,
        FeatureKind::ReportsReceived,
        FeatureKind::DistinctReporters,
        FeatureKind::BlocksReceived,
        FeatureKind::ListLinks,
        FeatureKind::PartnerFlags,
    ];

    /// The name used in `when` expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureKind::AccountAge => "account_age",
            FeatureKind::MessagesSent => "messages_sent",
            FeatureKind::DistinctRecipients => "distinct_recipients",
            FeatureKind::NonContactRecipients => "non_contact_recipients",
            FeatureKind::GroupsMessaged => "groups_messaged",
            FeatureKind::DeviceRegistrations => "device_registrations",
            FeatureKind::ReportsReceived => "reports_received",
            FeatureKind::DistinctReporters => "distinct_reporters",
            FeatureKind::BlocksReceived => "blocks_received",
            FeatureKind::ListLinks => "list_links",
            FeatureKind::PartnerFlags => "partner_flags",
        }
    }

    pub fn parse(text: &str) -> Option<FeatureKind> {
        FeatureKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Everything but `account_age` counts events in a time window.
    pub fn is_windowed(self) -> bool {
        self != FeatureKind::AccountAge
    }
}

impl fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value an expression needs: a kind, its window and (for `list_links`)
/// its list. Hashable so the engine can cache answers per evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Feature {
    pub kind: FeatureKind,
    /// The window in milliseconds; 0 for `account_age`.
    pub window_ms: i64,
    /// Index into [`RuleSet::lists`]; 0 unless `kind` is `ListLinks`.
    pub list: u16,
}

impl Feature {
    /// The feature as written in a rule: `messages_sent[15s]`,
    /// `list_links[phishing, 1h]`, `account_age`.
    pub fn display(&self, lists: &[DomainList]) -> String {
        match self.kind {
            FeatureKind::AccountAge => self.kind.as_str().to_string(),
            FeatureKind::ListLinks => {
                let list_name = match lists.get(usize::from(self.list)) {
                    Some(list) => list.name.clone(),
                    None => format!("#{}", self.list),
                };
                format!("{}[{list_name}, {}]", self.kind, format_window(self.window_ms))
            }
            _ => format!("{}[{}]", self.kind, format_window(self.window_ms)),
        }
    }
}

/// A window in the largest unit that divides it exactly (`90s`, `2h`, `7d`).
fn format_window(window_ms: i64) -> String {
    if window_ms % 1000 != 0 {
        return format!("{window_ms}ms");
    }
    let seconds = window_ms / 1000;
    for (unit_seconds, unit) in [(86_400, "d"), (3_600, "h"), (60, "m")] {
        if seconds != 0 && seconds % unit_seconds == 0 {
            return format!("{}{unit}", seconds / unit_seconds);
        }
    }
    format!("{seconds}s")
}

/// A comparison between two numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    fn apply(self, left: f64, right: f64) -> bool {
        match self {
            CompareOp::Lt => left < right,
            CompareOp::Le => left <= right,
            CompareOp::Gt => left > right,
            CompareOp::Ge => left >= right,
            CompareOp::Eq => left == right,
            CompareOp::Ne => left != right,
        }
    }
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }

    fn apply(self, left: f64, right: f64) -> f64 {
        match self {
            ArithOp::Add => left + right,
            ArithOp::Sub => left - right,
            ArithOp::Mul => left * right,
            // A ratio over an empty window is 0, not infinity or NaN, so
            // `a / b > 0.5` is simply false when nothing happened.
            ArithOp::Div if right == 0.0 => 0.0,
            ArithOp::Div => left / right,
        }
    }
}

/// A condition (true/false): the whole `when` of a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Compare { op: CompareOp, left: NumExpr, right: NumExpr },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A number inside a condition.
#[derive(Clone, Debug, PartialEq)]
pub enum NumExpr {
    /// A literal; durations are already converted to seconds.
    Number(f64),
    Feature(Feature),
    Neg(Box<NumExpr>),
    Arith {
        op: ArithOp,
        left: Box<NumExpr>,
        right: Box<NumExpr>,
    },
}

impl Expr {
    /// Evaluates to bool, querying features lazily (short-circuit `and`/`or`,
    /// so a cheap first clause skips expensive features). `features` may be
    /// called more than once for the same feature; the caller caches.
    pub fn eval(&self, features: &mut dyn FnMut(Feature) -> f64) -> bool {
        match self {
            Expr::Compare { op, left, right } => {
                let left_value = left.eval(features);
                let right_value = right.eval(features);
                op.apply(left_value, right_value)
            }
            Expr::Not(inner) => !inner.eval(features),
            Expr::And(left, right) => left.eval(features) && right.eval(features),
            Expr::Or(left, right) => left.eval(features) || right.eval(features),
        }
    }

    /// Every feature the expression mentions (deduplicated, in order of
    /// first mention), for recording evidence.
    pub fn features(&self) -> Vec<Feature> {
        let mut found = Vec::new();
        self.collect_features(&mut found);
        found
    }

    fn collect_features(&self, found: &mut Vec<Feature>) {
        match self {
            Expr::Compare { left, right, .. } => {
                left.collect_features(found);
                right.collect_features(found);
            }
            Expr::Not(inner) => inner.collect_features(found),
            Expr::And(left, right) | Expr::Or(left, right) => {
                left.collect_features(found);
                right.collect_features(found);
            }
        }
    }

    /// The expression fully parenthesised, features written as in a rule:
    /// shows exactly how a `when` was grouped.
    pub fn render(&self, lists: &[DomainList]) -> String {
        match self {
            Expr::Compare { op, left, right } => {
                format!("({} {} {})", left.render(lists), op.as_str(), right.render(lists))
            }
            Expr::Not(inner) => format!("(not {})", inner.render(lists)),
            Expr::And(left, right) => format!("({} and {})", left.render(lists), right.render(lists)),
            Expr::Or(left, right) => format!("({} or {})", left.render(lists), right.render(lists)),
        }
    }
}

impl NumExpr {
    pub fn eval(&self, features: &mut dyn FnMut(Feature) -> f64) -> f64 {
        match self {
            NumExpr::Number(value) => *value,
            NumExpr::Feature(feature) => features(*feature),
            NumExpr::Neg(inner) => -inner.eval(features),
            NumExpr::Arith { op, left, right } => {
                let left_value = left.eval(features);
                let right_value = right.eval(features);
                op.apply(left_value, right_value)
            }
        }
    }

    fn collect_features(&self, found: &mut Vec<Feature>) {
        match self {
            NumExpr::Number(_) => {}
            NumExpr::Feature(feature) => {
                if !found.contains(feature) {
                    found.push(*feature);
                }
            }
            NumExpr::Neg(inner) => inner.collect_features(found),
            NumExpr::Arith { left, right, .. } => {
                left.collect_features(found);
                right.collect_features(found);
            }
        }
    }

    pub fn render(&self, lists: &[DomainList]) -> String {
        match self {
            NumExpr::Number(value) => format!("{value}"),
            NumExpr::Feature(feature) => feature.display(lists),
            NumExpr::Neg(inner) => format!("(-{})", inner.render(lists)),
            NumExpr::Arith { op, left, right } => {
                format!("({} {} {})", left.render(lists), op.as_str(), right.render(lists))
            }
        }
    }
}

/// One `[[rule]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub when: Expr,
    pub effects: Effects,
    pub reason: ReasonCategory,
    pub enabled: bool,
    /// The `when` text as written.
    pub source: String,
}

/// A checked rules file.
#[derive(Clone, Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Sorted by name; [`Feature::list`] indexes this.
    pub lists: Vec<DomainList>,
    pub partner_flags: FlagPolicy,
    /// Each list file read while parsing: (path as written, contents), so
    /// the exact rules can be recorded and re-parsed with no files.
    list_files: Vec<(String, String)>,
}

impl RuleSet {
    /// Parses rules text; `base_dir` resolves list file paths.
    pub fn parse(text: &str, base_dir: &Path) -> Result<RuleSet, RulesError> {
        let read_from_disk = |path: &str| -> Result<String, io::Error> {
            let full_path = base_dir.join(path);
            std::fs::read_to_string(&full_path)
                .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", full_path.display())))
        };
        RuleSet::parse_with(text, &read_from_disk)
    }

    /// Reads the rules file (a read error names the path), then parses it
    /// with list paths relative to the file's directory.
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|error| RulesError {
            origin: Some(path.display().to_string()),
            problems: vec![format!("cannot read rules file: {error}")],
        })?;
        let base_dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        RuleSet::parse(&text, &base_dir)
            .map_err(|error| RulesError { origin: Some(path.display().to_string()), problems: error.problems })
    }

    /// The built-in default rules. Lists come from the binary too, so the
    /// default works with no files on disk; a unit test proves it parses.
    pub fn default_rules() -> RuleSet {
        let read_builtin = |path: &str| -> Result<String, io::Error> {
            if path == DEFAULT_PHISHING_LIST_PATH {
                Ok(DEFAULT_PHISHING_LIST.to_string())
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "not a built-in list"))
            }
        };
        match RuleSet::parse_with(DEFAULT_RULES_TOML, &read_builtin) {
            Ok(rules) => rules,
            // Not user input: the tests parse the built-in file on every run.
            Err(error) => panic!("built-in abuse rules are invalid: {error}"),
        }
    }

    /// Parses rules text, reading each list `file` through `read_list`
    /// (given the path exactly as written in the rules file). Replay uses
    /// this with the recorded list contents.
    pub fn parse_with(
        text: &str,
        read_list: &dyn Fn(&str) -> Result<String, io::Error>,
    ) -> Result<RuleSet, RulesError> {
        let table: toml::Table = toml::from_str(text).map_err(|error| {
            let position = match error.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    format!("line {line}, column {column}: ")
                }
                None => String::new(),
            };
            // toml's message can span lines; one problem is one line.
            let message = error.message().trim_end().replace('\n', "; ");
            RulesError::single(format!("toml syntax: {position}{message}"))
        })?;
        let mut checker = Checker::default();
        for key in table.keys() {
            if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                checker.problems.push(unknown_key_problem("top level", key, TOP_LEVEL_KEYS));
            }
        }
        let (lists, list_files) = match table.get("lists") {
            Some(value) => checker.check_lists(value, read_list),
            None => (Vec::new(), Vec::new()),
        };
        let partner_flags = match table.get("partner_flags") {
            Some(value) => checker.check_partner_flags(value),
            None => FlagPolicy::default(),
        };
        let list_names: Vec<String> = lists.iter().map(|list| list.name.clone()).collect();
        let rules = match table.get("rule") {
            Some(value) => checker.check_rules(value, &list_names),
            None => Vec::new(),
        };
        if checker.problems.is_empty() {
            Ok(RuleSet { rules, lists, partner_flags, list_files })
        } else {
            Err(RulesError { origin: None, problems: checker.problems })
        }
    }

    /// Re-parses rules as logged in a `RulesLoaded` record: each list file is
    /// served from `lists` (path as written, contents), so replay reads no files.
    pub fn parse_logged(text: &str, lists: &[(String, String)]) -> Result<RuleSet, RulesError> {
        let read_logged = |path: &str| -> Result<String, io::Error> {
            match lists.iter().find(|(logged_path, _)| logged_path == path) {
                Some((_, contents)) => Ok(contents.clone()),
                None => Err(io::Error::new(io::ErrorKind::NotFound, "not in the logged rules")),
            }
        };
        RuleSet::parse_with(text, &read_logged)
    }

    /// Each list file read while parsing, as (path as written, contents):
    /// what a `RulesLoaded` record stores next to the rules text.
    pub fn list_files(&self) -> &[(String, String)] {
        &self.list_files
    }

    /// The list named `name`, with its index for [`Feature::list`].
    pub fn list(&self, name: &str) -> Option<(u16, &DomainList)> {
        let index = self.lists.iter().position(|list| list.name == name)?;
        Some((u16::try_from(index).ok()?, &self.lists[index]))
    }

    /// Longest window used by any enabled rule for `kind`, in ms (0 if
    /// unused): the engine keeps state only that long.
    pub fn retention_ms(&self, kind: FeatureKind) -> i64 {
        self.enabled_features()
            .filter(|feature| feature.kind == kind)
            .map(|feature| feature.window_ms)
            .max()
            .unwrap_or(0)
    }

    /// Longest window used by any enabled rule, across all kinds.
    pub fn max_retention_ms(&self) -> i64 {
        self.enabled_features().map(|feature| feature.window_ms).max().unwrap_or(0)
    }

    fn enabled_features(&self) -> impl Iterator<Item = Feature> + '_ {
        self.rules.iter().filter(|rule| rule.enabled).flat_map(|rule| rule.when.features())
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

const TOP_LEVEL_KEYS: &[&str] = &["lists", "partner_flags", "rule"];
const LIST_KEYS: &[&str] = &["file", "domains"];
const PARTNER_FLAG_KEYS: &[&str] = &["ban_reasons", "default"];
const RULE_KEYS: &[&str] = &["name", "description", "when", "effects", "reason", "enabled"];
const EFFECT_NAMES: &[&str] = &["ban", "review", "share"];

/// Collects problems while checking one rules file.
#[derive(Default)]
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn check_lists(
        &mut self,
        value: &toml::Value,
        read_list: &dyn Fn(&str) -> Result<String, io::Error>,
    ) -> (Vec<DomainList>, Vec<(String, String)>) {
        let mut lists = Vec::new();
        let mut list_files = Vec::new();
        let Some(table) = value.as_table() else {
            self.problems.push(format!("lists: must be a table, found {}", value.type_str()));
            return (lists, list_files);
        };
        for (name, entry) in table {
            let place = format!("lists.{name}");
            if !is_identifier(name) {
                self.problems.push(format!("{place}: list names are 1-{MAX_NAME_LEN} characters from a-z 0-9 _"));
            }
            // The list is kept (possibly empty) even when it has problems, so
            // rules naming it do not also report an unknown list.
            let mut list = DomainList { name: name.clone(), domains: foldhash::HashSet::default() };
            let Some(entry_table) = entry.as_table() else {
                self.problems.push(format!(
                    "{place}: must be a table such as {{ file = \"lists/{name}.txt\" }} or {{ domains = [\"evil.example\"] }}, found {}",
                    entry.type_str()
                ));
                lists.push(list);
                continue;
            };
            for key in entry_table.keys() {
                if !LIST_KEYS.contains(&key.as_str()) {
                    self.problems.push(unknown_key_problem(&place, key, LIST_KEYS));
                }
            }
            match (entry_table.get("file"), entry_table.get("domains")) {
                (Some(_), Some(_)) => {
                    self.problems.push(format!("{place}: give either `file` or `domains`, not both"));
                }
                (None, None) => {
                    self.problems.push(format!("{place}: needs `file` (a path) or `domains` (an array of domains)"));
                }
                (Some(file), None) => match file.as_str() {
                    None => self.problems.push(format!("{place}.file: must be a string, found {}", file.type_str())),
                    Some(path) => match read_list(path) {
                        Ok(contents) => {
                            self.read_list_file(&place, &contents, &mut list);
                            list_files.push((path.to_string(), contents));
                        }
                        Err(error) => {
                            self.problems.push(format!("{place}: cannot read list file `{path}`: {error}"));
                        }
                    },
                },
                (None, Some(domains)) => match domains.as_array() {
                    None => {
                        self.problems.push(format!(
                            "{place}.domains: must be an array of strings, found {}",
                            domains.type_str()
                        ));
                    }
                    Some(items) => {
                        for (position, item) in items.iter().enumerate() {
                            match item.as_str().and_then(normalize_domain) {
                                Some(domain) => {
                                    list.domains.insert(domain);
                                }
                                None => self.problems.push(format!(
                                    "{place}.domains[{position}]: not a bare domain (labels of a-z 0-9 - joined by dots, e.g. `evil.example`)"
                                )),
                            }
                        }
                    }
                },
            }
            lists.push(list);
        }
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        if lists.len() > MAX_LISTS {
            self.problems.push(format!("lists: at most {MAX_LISTS} lists, found {}", lists.len()));
        }
        (lists, list_files)
    }

    /// One domain per line; blank lines and `#` comments (whole-line or
    /// trailing) are ignored. A bad line is named by number, not echoed.
    fn read_list_file(&mut self, place: &str, contents: &str, list: &mut DomainList) {
        for (index, line) in contents.lines().enumerate() {
            let without_comment = match line.find('#') {
                Some(hash) => &line[..hash],
                None => line,
            };
            let trimmed = without_comment.trim();
            if trimmed.is_empty() {
                continue;
            }
            match normalize_domain(trimmed) {
                Some(domain) => {
                    list.domains.insert(domain);
                }
                None => self.problems.push(format!(
                    "{place}: line {} of the list file is not a bare domain (labels of a-z 0-9 - joined by dots, e.g. `evil.example`)",
                    index + 1
                )),
            }
        }
    }

    fn check_partner_flags(&mut self, value: &toml::Value) -> FlagPolicy {
        let mut policy = FlagPolicy::default();
        let Some(table) = value.as_table() else {
            self.problems.push(format!("partner_flags: must be a table, found {}", value.type_str()));
            return policy;
        };
        for key in table.keys() {
            if !PARTNER_FLAG_KEYS.contains(&key.as_str()) {
                self.problems.push(unknown_key_problem("partner_flags", key, PARTNER_FLAG_KEYS));
            }
        }
        if let Some(reasons) = table.get("ban_reasons") {
            match reasons.as_array() {
                None => self.problems.push(format!(
                    "partner_flags.ban_reasons: must be an array of strings, found {}",
                    reasons.type_str()
                )),
                Some(items) => {
                    for (position, item) in items.iter().enumerate() {
                        match item.as_str() {
                            Some(reason) if is_reason_token(reason) => {
                                if !policy.ban_reasons.iter().any(|known| known == reason) {
                                    policy.ban_reasons.push(reason.to_string());
                                }
                            }
                            _ => self.problems.push(format!(
                                "partner_flags.ban_reasons[{position}]: must be a reason token of 1-{MAX_REASON_LEN} characters from a-z 0-9 _ -"
                            )),
                        }
                    }
                }
            }
        }
        if let Some(default) = table.get("default") {
            match default.as_str() {
                None => self.problems.push(format!(
                    "partner_flags.default: must be a string (review, ban or ignore), found {}",
                    default.type_str()
                )),
                Some(text) => match FlagAction::parse(text) {
                    Some(action) => policy.default = action,
                    None => self.problems.push(format!(
                        "partner_flags.default: unknown action `{text}` (expected review, ban or ignore)"
                    )),
                },
            }
        }
        policy
    }

    fn check_rules(&mut self, value: &toml::Value, list_names: &[String]) -> Vec<Rule> {
        let Some(items) = value.as_array() else {
            self.problems
                .push(format!("rule: must be an array of tables written `[[rule]]`, found {}", value.type_str()));
            return Vec::new();
        };
        // First pass: which names are valid and unique, so that every
        // message can name its rule unambiguously.
        let mut first_with_name: HashMap<&str, usize> = HashMap::new();
        let mut labels = Vec::with_capacity(items.len());
        let mut duplicate_of = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let name = item.get("name").and_then(toml::Value::as_str).filter(|name| is_identifier(name));
            let first = name.and_then(|name| first_with_name.get(name).copied());
            duplicate_of.push(first);
            match (name, first) {
                (Some(name), None) => {
                    first_with_name.insert(name, index);
                    labels.push(format!("rule `{name}`"));
                }
                _ => labels.push(format!("rule #{}", index + 1)),
            }
        }
        // Rules named after a later duplicate keep their name label; the
        // duplicate itself is labelled by index.
        let mut rules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let label = &labels[index];
            if let Some(first) = duplicate_of[index] {
                let name = item.get("name").and_then(toml::Value::as_str).unwrap_or_default();
                self.problems.push(format!("{label}: name: `{name}` is already used by rule #{}", first + 1));
            }
            if let Some(rule) = self.check_rule(label, item, list_names) {
                rules.push(rule);
            }
        }
        rules
    }

    fn check_rule(&mut self, label: &str, value: &toml::Value, list_names: &[String]) -> Option<Rule> {
        let Some(table) = value.as_table() else {
            self.problems.push(format!("{label}: must be a table written `[[rule]]`, found {}", value.type_str()));
            return None;
        };
        let problems_before = self.problems.len();
        for key in table.keys() {
            if !RULE_KEYS.contains(&key.as_str()) {
                self.problems.push(unknown_key_problem(label, key, RULE_KEYS));
            }
        }
        let name = self.required_string(label, table, "name").and_then(|name| {
            if is_identifier(name) {
                Some(name.to_string())
            } else {
                self.problems.push(format!("{label}: name: must be 1-{MAX_NAME_LEN} characters from a-z 0-9 _"));
                None
            }
        });
        let description = match table.get("description") {
            None => None,
            Some(value) => match value.as_str() {
                Some(text) => Some(text.to_string()),
                None => {
                    self.problems.push(format!("{label}: description: must be a string, found {}", value.type_str()));
                    None
                }
            },
        };
        let source = self.required_string(label, table, "when").map(str::to_string);
        let when = source.as_deref().and_then(|source| match parse_expression(source, list_names) {
            Ok(expr) => Some(expr),
            Err(expression_problems) => {
                for (column, message) in expression_problems {
                    self.problems.push(format!("{label}: when: column {column}: {message}"));
                }
                None
            }
        });
        let effects = self.check_effects(label, table.get("effects"));
        let reason = self.required_string(label, table, "reason").and_then(|text| match ReasonCategory::parse(text) {
            Some(reason) => Some(reason),
            None => {
                self.problems.push(format!(
                    "{label}: reason: unknown reason `{text}` (expected spam, scam, phishing, fake_account or abuse)"
                ));
                None
            }
        });
        let enabled = match table.get("enabled") {
            None => Some(true),
            Some(value) => match value.as_bool() {
                Some(enabled) => Some(enabled),
                None => {
                    self.problems.push(format!("{label}: enabled: must be true or false, found {}", value.type_str()));
                    None
                }
            },
        };
        if self.problems.len() != problems_before {
            return None;
        }
        Some(Rule {
            name: name?,
            description,
            when: when?,
            effects: effects?,
            reason: reason?,
            enabled: enabled?,
            source: source?,
        })
    }

    fn required_string<'t>(&mut self, label: &str, table: &'t toml::Table, field: &str) -> Option<&'t str> {
        match table.get(field) {
            None => {
                self.problems.push(format!("{label}: {field}: missing"));
                None
            }
            Some(value) => match value.as_str() {
                Some(text) => Some(text),
                None => {
                    self.problems.push(format!("{label}: {field}: must be a string, found {}", value.type_str()));
                    None
                }
            },
        }
    }

    fn check_effects(&mut self, label: &str, value: Option<&toml::Value>) -> Option<Effects> {
        let Some(value) = value else {
            self.problems.push(format!("{label}: effects: missing (a non-empty list of ban, review, share)"));
            return None;
        };
        let Some(items) = value.as_array() else {
            self.problems.push(format!(
                "{label}: effects: must be an array such as [\"ban\", \"share\"], found {}",
                value.type_str()
            ));
            return None;
        };
        if items.is_empty() {
            self.problems.push(format!("{label}: effects: must list at least one of ban, review, share"));
            return None;
        }
        let problems_before = self.problems.len();
        let mut effects = Effects::default();
        for item in items {
            let Some(text) = item.as_str() else {
                self.problems.push(format!("{label}: effects: entries must be strings, found {}", item.type_str()));
                continue;
            };
            let slot = match text {
                "ban" => &mut effects.ban,
                "review" => &mut effects.review,
                "share" => &mut effects.share,
                _ => {
                    let hint = suggestion(text, EFFECT_NAMES.iter().copied())
                        .map(|close| format!("did you mean `{close}`? "))
                        .unwrap_or_default();
                    self.problems.push(format!(
                        "{label}: effects: unknown effect `{text}` ({hint}expected ban, review or share)"
                    ));
                    continue;
                }
            };
            if *slot {
                self.problems.push(format!("{label}: effects: `{text}` is listed twice"));
            }
            *slot = true;
        }
        (self.problems.len() == problems_before).then_some(effects)
    }
}

fn unknown_key_problem(place: &str, key: &str, known: &[&str]) -> String {
    let expected = known.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
    match suggestion(key, known.iter().copied()) {
        Some(close) => format!("{place}: unknown key `{key}` (did you mean `{close}`?)"),
        None => format!("{place}: unknown key `{key}` (expected one of {expected})"),
    }
}

/// Rule and list names: `[a-z0-9_]{1,64}`.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A list entry, trimmed and lowercased, if it is a bare domain as the edge
/// accepts `link_domain` (at least two labels, so an entry can never match
/// a whole top-level domain).
fn normalize_domain(text: &str) -> Option<String> {
    crate::edge::normalize_bare_domain(text.trim())
}

/// The closest candidate to a misspelt name, if any is close enough.
fn suggestion<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    let mut current = vec![0; b_chars.len() + 1];
    for (i, a_char) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b_chars.len()]
}

// ---------------------------------------------------------------------------
// The `when` expression language: lexer, then a typed recursive-descent parser.
// ---------------------------------------------------------------------------

/// A problem in an expression: 1-based column (in characters) and message.
type ExprProblem = (usize, String);

#[derive(Clone, Debug, PartialEq)]
enum TokenKind {
    Number(f64),
    /// A duration literal such as `15s`, already in seconds, with its text.
    Duration(f64, String),
    Ident(String),
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Compare(CompareOp),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    kind: TokenKind,
    column: usize,
}

fn describe(kind: &TokenKind) -> String {
    match kind {
        TokenKind::Number(value) => format!("the number `{value}`"),
        TokenKind::Duration(_, text) => format!("the duration `{text}`"),
        TokenKind::Ident(name) => {
            match ["and", "or", "not"].iter().find(|keyword| name.eq_ignore_ascii_case(keyword)) {
                Some(keyword) => format!("`{name}` (keywords are lowercase: `{keyword}`)"),
                None => format!("`{name}`"),
            }
        }
        TokenKind::And => "`and`".to_string(),
        TokenKind::Or => "`or`".to_string(),
        TokenKind::Not => "`not`".to_string(),
        TokenKind::LParen => "`(`".to_string(),
        TokenKind::RParen => "`)`".to_string(),
        TokenKind::LBracket => "`[`".to_string(),
        TokenKind::RBracket => "`]`".to_string(),
        TokenKind::Comma => "`,`".to_string(),
        TokenKind::Plus => "`+`".to_string(),
        TokenKind::Minus => "`-`".to_string(),
        TokenKind::Star => "`*`".to_string(),
        TokenKind::Slash => "`/`".to_string(),
        TokenKind::Compare(op) => format!("`{}`", op.as_str()),
        TokenKind::End => "the end of the condition".to_string(),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, ExprProblem> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut position = 0;
    while position < chars.len() {
        let character = chars[position];
        let column = position + 1;
        if character.is_whitespace() {
            position += 1;
            continue;
        }
        if character.is_ascii_digit() {
            let start = position;
            while position < chars.len() && chars[position].is_ascii_digit() {
                position += 1;
            }
            if position < chars.len() && chars[position] == '.' {
                position += 1;
                if position >= chars.len() || !chars[position].is_ascii_digit() {
                    return Err((position + 1, "expected digits after the decimal point".to_string()));
                }
                while position < chars.len() && chars[position].is_ascii_digit() {
                    position += 1;
                }
            }
            let digits: String = chars[start..position].iter().collect();
            let value: f64 = digits.parse().map_err(|_| (column, format!("`{digits}` is not a number")))?;
            let unit_start = position;
            while position < chars.len() && (chars[position].is_ascii_alphanumeric() || chars[position] == '_') {
                position += 1;
            }
            let unit: String = chars[unit_start..position].iter().collect();
            let kind = match unit.as_str() {
                "" => TokenKind::Number(value),
                "s" => TokenKind::Duration(value, format!("{digits}s")),
                "m" => TokenKind::Duration(value * 60.0, format!("{digits}m")),
                "h" => TokenKind::Duration(value * 3_600.0, format!("{digits}h")),
                "d" => TokenKind::Duration(value * 86_400.0, format!("{digits}d")),
                _ => {
                    return Err((
                        unit_start + 1,
                        format!("unknown duration unit `{unit}` in `{digits}{unit}` (use s, m, h or d)"),
                    ))
                }
            };
            tokens.push(Token { kind, column });
            continue;
        }
        if character.is_ascii_alphabetic() || character == '_' {
            let start = position;
            while position < chars.len() && (chars[position].is_ascii_alphanumeric() || chars[position] == '_') {
                position += 1;
            }
            let word: String = chars[start..position].iter().collect();
            let kind = match word.as_str() {
                "and" => TokenKind::And,
                "or" => TokenKind::Or,
                "not" => TokenKind::Not,
                _ => TokenKind::Ident(word),
            };
            tokens.push(Token { kind, column });
            continue;
        }
        let next = chars.get(position + 1).copied();
        let (kind, width) = match (character, next) {
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            ('[', _) => (TokenKind::LBracket, 1),
            (']', _) => (TokenKind::RBracket, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('+', _) => (TokenKind::Plus, 1),
            ('-', _) => (TokenKind::Minus, 1),
            ('*', _) => (TokenKind::Star, 1),
            ('/', _) => (TokenKind::Slash, 1),
            ('<', Some('=')) => (TokenKind::Compare(CompareOp::Le), 2),
            ('<', _) => (TokenKind::Compare(CompareOp::Lt), 1),
            ('>', Some('=')) => (TokenKind::Compare(CompareOp::Ge), 2),
            ('>', _) => (TokenKind::Compare(CompareOp::Gt), 1),
            ('=', Some('=')) => (TokenKind::Compare(CompareOp::Eq), 2),
            ('!', Some('=')) => (TokenKind::Compare(CompareOp::Ne), 2),
            ('=', _) => return Err((column, "`=` is not an operator (use `==` to compare)".to_string())),
            ('!', _) => return Err((column, "`!` is not an operator (use `not`)".to_string())),
            ('&', Some('&')) => return Err((column, "`&&` is not an operator (use `and`)".to_string())),
            ('|', Some('|')) => return Err((column, "`||` is not an operator (use `or`)".to_string())),
            ('&', _) => return Err((column, "`&` is not an operator (use `and`)".to_string())),
            ('|', _) => return Err((column, "`|` is not an operator (use `or`)".to_string())),
            _ => return Err((column, format!("unexpected character `{character}`"))),
        };
        tokens.push(Token { kind, column });
        position += width;
    }
    tokens.push(Token { kind: TokenKind::End, column: chars.len() + 1 });
    Ok(tokens)
}

/// A parsed sub-expression of either type, with the column it starts at.
enum Typed {
    Bool(Expr),
    Num(NumExpr),
}

struct Node {
    typed: Typed,
    column: usize,
}

/// Stand-ins that let parsing continue after a type or name problem, so
/// later problems are found too. They never reach a [`RuleSet`].
fn placeholder_bool() -> Expr {
    Expr::Compare { op: CompareOp::Eq, left: NumExpr::Number(0.0), right: NumExpr::Number(0.0) }
}

/// One argument inside `feature[...]`.
enum WindowArg {
    Name(String),
    Duration { seconds: f64, text: String },
    Other(String),
}

struct Parser<'a> {
    tokens: Vec<Token>,
    position: usize,
    list_names: &'a [String],
    /// Problems that do not stop parsing: names, windows, types.
    problems: Vec<ExprProblem>,
}

/// Parses and type-checks one `when` expression. Returns every problem
/// found (a syntax error stops parsing; name and type problems do not).
fn parse_expression(text: &str, list_names: &[String]) -> Result<Expr, Vec<ExprProblem>> {
    if text.trim().is_empty() {
        return Err(vec![(1, "the condition is empty".to_string())]);
    }
    let tokens = lex(text).map_err(|problem| vec![problem])?;
    let mut parser = Parser { tokens, position: 0, list_names, problems: Vec::new() };
    let outcome = parser.parse_or().and_then(|node| {
        let next = parser.peek().clone();
        if next.kind == TokenKind::End {
            Ok(node)
        } else {
            Err((
                next.column,
                format!("expected `and`, `or` or the end of the condition, found {}", describe(&next.kind)),
            ))
        }
    });
    match outcome {
        Ok(node) => {
            let expr = match node.typed {
                Typed::Bool(expr) => Some(expr),
                Typed::Num(_) => {
                    parser.problems.push((
                        node.column,
                        "the condition is a number, not true/false (compare it, e.g. `messages_sent[1m] > 10`)"
                            .to_string(),
                    ));
                    None
                }
            };
            match expr {
                Some(expr) if parser.problems.is_empty() => Ok(expr),
                _ => Err(parser.problems),
            }
        }
        Err(syntax_problem) => {
            parser.problems.push(syntax_problem);
            Err(parser.problems)
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // `lex` always ends the tokens with `End`, and `advance` never moves past it.
        &self.tokens[self.position.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.position += 1;
        }
        token
    }

    fn expect_bool(&mut self, node: Node, what: &str) -> Expr {
        match node.typed {
            Typed::Bool(expr) => expr,
            Typed::Num(_) => {
                self.problems.push((
                    node.column,
                    format!("{what} must be a condition (true/false), found a number (did you forget a comparison?)"),
                ));
                placeholder_bool()
            }
        }
    }

    fn expect_num(&mut self, node: Node, what: &str) -> NumExpr {
        match node.typed {
            Typed::Num(expr) => expr,
            Typed::Bool(_) => {
                self.problems.push((node.column, format!("{what} must be a number, found a condition (true/false)")));
                NumExpr::Number(0.0)
            }
        }
    }

    fn parse_or(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_and()?;
        while self.peek().kind == TokenKind::Or {
            self.advance();
            let right = self.parse_and()?;
            let column = left.column;
            let left_expr = self.expect_bool(left, "the left side of `or`");
            let right_expr = self.expect_bool(right, "the right side of `or`");
            left = Node { typed: Typed::Bool(Expr::Or(Box::new(left_expr), Box::new(right_expr))), column };
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_not()?;
        while self.peek().kind == TokenKind::And {
            self.advance();
            let right = self.parse_not()?;
            let column = left.column;
            let left_expr = self.expect_bool(left, "the left side of `and`");
            let right_expr = self.expect_bool(right, "the right side of `and`");
            left = Node { typed: Typed::Bool(Expr::And(Box::new(left_expr), Box::new(right_expr))), column };
        }
        Ok(left)
    }

    fn parse_not(&mut self) -> Result<Node, ExprProblem> {
        if self.peek().kind == TokenKind::Not {
            let column = self.advance().column;
            let operand = self.parse_not()?;
            let inner = self.expect_bool(operand, "the operand of `not`");
            return Ok(Node { typed: Typed::Bool(Expr::Not(Box::new(inner))), column });
        }
        self.parse_comparison()
    }

    fn parse_comparison(&mut self) -> Result<Node, ExprProblem> {
        let left = self.parse_additive()?;
        let TokenKind::Compare(op) = self.peek().kind else {
            return Ok(left);
        };
        self.advance();
        let right = self.parse_additive()?;
        if let TokenKind::Compare(second) = self.peek().kind {
            return Err((
                self.peek().column,
                format!(
                    "comparisons cannot be chained (`{}` after `{}`); join them with `and`",
                    second.as_str(),
                    op.as_str()
                ),
            ));
        }
        let column = left.column;
        let what_left = format!("the left side of `{}`", op.as_str());
        let what_right = format!("the right side of `{}`", op.as_str());
        let left_expr = self.expect_num(left, &what_left);
        let right_expr = self.expect_num(right, &what_right);
        Ok(Node { typed: Typed::Bool(Expr::Compare { op, left: left_expr, right: right_expr }), column })
    }

    fn parse_additive(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_multiplicative()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => ArithOp::Add,
                TokenKind::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.parse_multiplicative()?;
            left = self.arith(op, left, right);
        }
    }

    fn parse_multiplicative(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_unary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Star => ArithOp::Mul,
                TokenKind::Slash => ArithOp::Div,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.parse_unary()?;
            left = self.arith(op, left, right);
        }
    }

    fn arith(&mut self, op: ArithOp, left: Node, right: Node) -> Node {
        let column = left.column;
        let left_expr = self.expect_num(left, &format!("the left side of `{}`", op.as_str()));
        let right_expr = self.expect_num(right, &format!("the right side of `{}`", op.as_str()));
        Node {
            typed: Typed::Num(NumExpr::Arith { op, left: Box::new(left_expr), right: Box::new(right_expr) }),
            column,
        }
    }

    fn parse_unary(&mut self) -> Result<Node, ExprProblem> {
        if self.peek().kind == TokenKind::Minus {
            let column = self.advance().column;
            let operand = self.parse_unary()?;
            let inner = self.expect_num(operand, "the operand of unary `-`");
            return Ok(Node { typed: Typed::Num(NumExpr::Neg(Box::new(inner))), column });
        }
        self.parse_atom()
    }

    fn parse_atom(&mut self) -> Result<Node, ExprProblem> {
        let token = self.advance();
        let column = token.column;
        match token.kind {
            TokenKind::Number(value) => Ok(Node { typed: Typed::Num(NumExpr::Number(value)), column }),
            TokenKind::Duration(seconds, _) => Ok(Node { typed: Typed::Num(NumExpr::Number(seconds)), column }),
            TokenKind::LParen => {
                let inner = self.parse_or()?;
                let closing = self.advance();
                if closing.kind != TokenKind::RParen {
                    return Err((
                        closing.column,
                        format!("expected `)` to close the `(` at column {column}, found {}", describe(&closing.kind)),
                    ));
                }
                Ok(Node { typed: inner.typed, column })
            }
            TokenKind::Ident(name) => self.parse_feature(name, column),
            other => {
                Err((column, format!("expected a number, a duration, a feature or `(`, found {}", describe(&other))))
            }
        }
    }

    /// `name`, `name[WINDOW]` or `list_links[LIST, WINDOW]`.
    fn parse_feature(&mut self, name: String, column: usize) -> Result<Node, ExprProblem> {
        let args = if self.peek().kind == TokenKind::LBracket {
            let open = self.advance().column;
            Some((open, self.parse_window_args(open)?))
        } else {
            None
        };
        let unknown = Node { typed: Typed::Num(NumExpr::Number(0.0)), column };
        let Some(kind) = FeatureKind::parse(&name) else {
            let hint = if self.list_names.contains(&name) {
                format!(" (`{name}` is a list: use `list_links[{name}, 1h]`)")
            } else {
                match suggestion(&name, FeatureKind::ALL.iter().map(|kind| kind.as_str())) {
                    Some(close) => format!(" (did you mean `{close}`?)"),
                    None => String::new(),
                }
            };
            self.problems.push((column, format!("unknown feature `{name}`{hint}")));
            return Ok(unknown);
        };
        let feature = match (kind, args) {
            (FeatureKind::AccountAge, None) => Some(Feature { kind, window_ms: 0, list: 0 }),
            (FeatureKind::AccountAge, Some((open, _))) => {
                self.problems
                    .push((open, "`account_age` takes no window (it is the account's age in seconds)".to_string()));
                None
            }
            (FeatureKind::ListLinks, None) => {
                self.problems.push((
                    column,
                    "`list_links` needs a list and a window, e.g. `list_links[phishing, 1h]`".to_string(),
                ));
                None
            }
            (FeatureKind::ListLinks, Some((open, args))) => match args.as_slice() {
                [(WindowArg::Name(list_name), list_column), (window, window_column)] => {
                    let list = self.resolve_list(list_name, *list_column);
                    let window_ms = self.window_ms(window, *window_column, kind);
                    match (list, window_ms) {
                        (Some(list), Some(window_ms)) => Some(Feature { kind, window_ms, list }),
                        _ => None,
                    }
                }
                _ => {
                    self.problems.push((
                        open,
                        "`list_links` takes a list name and a window, e.g. `list_links[phishing, 1h]`".to_string(),
                    ));
                    None
                }
            },
            (_, None) => {
                self.problems.push((column, format!("`{name}` needs a window, e.g. `{name}[15s]`")));
                None
            }
            (_, Some((open, args))) => match args.as_slice() {
                [(window, window_column)] => {
                    self.window_ms(window, *window_column, kind).map(|window_ms| Feature { kind, window_ms, list: 0 })
                }
                _ => {
                    self.problems.push((open, format!("`{name}` takes exactly one window, e.g. `{name}[15s]`")));
                    None
                }
            },
        };
        Ok(match feature {
            Some(feature) => Node { typed: Typed::Num(NumExpr::Feature(feature)), column },
            None => unknown,
        })
    }

    /// The comma-separated arguments after `[`, through the closing `]`.
    fn parse_window_args(&mut self, open: usize) -> Result<Vec<(WindowArg, usize)>, ExprProblem> {
        let mut args = Vec::new();
        loop {
            let token = self.advance();
            let arg = match token.kind {
                TokenKind::Ident(name) => WindowArg::Name(name),
                TokenKind::Duration(seconds, text) => WindowArg::Duration { seconds, text },
                TokenKind::RBracket if args.is_empty() => return Ok(args),
                TokenKind::End => {
                    return Err((token.column, format!("expected `]` to close the `[` at column {open}")));
                }
                other => WindowArg::Other(describe(&other)),
            };
            args.push((arg, token.column));
            let separator = self.advance();
            match separator.kind {
                TokenKind::Comma => continue,
                TokenKind::RBracket => return Ok(args),
                other => {
                    return Err((
                        separator.column,
                        format!("expected `,` or `]` to close the `[` at column {open}, found {}", describe(&other)),
                    ));
                }
            }
        }
    }

    fn resolve_list(&mut self, name: &str, column: usize) -> Option<u16> {
        if let Some(index) = self.list_names.iter().position(|list| list == name) {
            return u16::try_from(index).ok();
        }
        let hint = if self.list_names.is_empty() {
            " (no lists are defined; add one under [lists])".to_string()
        } else {
            match suggestion(name, self.list_names.iter().map(String::as_str)) {
                Some(close) => format!(" (did you mean `{close}`?)"),
                None => format!(
                    " (lists: {})",
                    self.list_names.iter().map(|list| format!("`{list}`")).collect::<Vec<_>>().join(", ")
                ),
            }
        };
        self.problems.push((column, format!("unknown list `{name}`{hint}")));
        None
    }

    fn bad_window(&mut self, column: usize, kind: FeatureKind, found: String) -> Option<i64> {
        self.problems.push((
            column,
            format!("the window of `{kind}` must be a duration such as `15s`, `10m`, `1h` or `7d`, found {found}"),
        ));
        None
    }

    fn window_ms(&mut self, arg: &WindowArg, column: usize, kind: FeatureKind) -> Option<i64> {
        let (seconds, text) = match arg {
            WindowArg::Duration { seconds, text } => (*seconds, text),
            WindowArg::Name(name) => return self.bad_window(column, kind, format!("`{name}`")),
            WindowArg::Other(description) => return self.bad_window(column, kind, description.clone()),
        };
        if seconds.fract() != 0.0 {
            self.problems.push((column, format!("window `{text}` must be a whole number of seconds")));
            return None;
        }
        let window_ms = seconds * 1000.0;
        if window_ms < MIN_WINDOW_MS as f64 {
            self.problems.push((column, format!("window `{text}` is shorter than the minimum of 1s")));
            return None;
        }
        if window_ms > MAX_WINDOW_MS as f64 {
            self.problems.push((column, format!("window `{text}` is longer than the maximum of 30d")));
            return None;
        }
        Some(window_ms as i64)
    }
}

#[cfg(test)]
mod tests;
