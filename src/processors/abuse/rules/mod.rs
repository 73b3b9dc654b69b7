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
//!
//! Layout: this file holds the [`RuleSet`] and the types a rules file is made
//! of; `check.rs` walks the TOML table; `lexer.rs` and `parser.rs` turn a
//! `when` into an [`Expr`] (`ast.rs`, which also evaluates it);
//! `diagnostics.rs` words the problems.

mod ast;
mod check;
mod diagnostics;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use ast::{ArithOp, CompareOp, Expr, Feature, FeatureKind, NumExpr, DERIVED_LIST, DERIVED_LIST_NAME};
use check::{Checker, TOP_LEVEL_KEYS};
pub use diagnostics::RulesError;
use diagnostics::{line_column, unknown_key_problem};

/// The built-in rules file, compiled in so the default works with no files.
const DEFAULT_RULES_TOML: &str = include_str!("../default_rules.toml");
/// The one list file the built-in rules name, as written in the file.
const DEFAULT_PHISHING_LIST_PATH: &str = "lists/phishing_domains.txt";
const DEFAULT_PHISHING_LIST: &str = include_str!("../lists/phishing_domains.txt");

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

/// The `[suspicious_domains]` section: when proviso itself puts a link
/// domain on the derived list `suspicious_domains` (domain reputation).
/// A domain becomes suspicious when, within `window`, at least
/// `young_senders` distinct young accounts sent it to at least
/// `stranger_recipients` distinct strangers, strangers got at least
/// `stranger_share` of its recent sends, and those young senders outnumber
/// the established people who ever sent it to someone who knows them; the
/// verdict lapses one `window` after the last such evidence (see
/// `reputation.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReputationConfig {
    pub window_ms: i64,
    /// An account younger than this (seconds, at send time) is young.
    pub young_account_seconds: i64,
    pub young_senders: u32,
    pub stranger_recipients: u32,
    pub stranger_share: f64,
    /// Most domains tracked at once; the least recently seen is evicted.
    pub max_domains: usize,
}

impl Default for ReputationConfig {
    fn default() -> ReputationConfig {
        ReputationConfig {
            window_ms: 86_400_000,
            young_account_seconds: 7 * 86_400,
            young_senders: 3,
            stranger_recipients: 10,
            stranger_share: 0.5,
            max_domains: 20_000,
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
    /// When a domain lands on the derived `suspicious_domains` list.
    pub reputation: ReputationConfig,
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
        let reputation = match table.get("suspicious_domains") {
            Some(value) => checker.check_reputation(value),
            None => ReputationConfig::default(),
        };
        let list_names: Vec<String> = lists.iter().map(|list| list.name.clone()).collect();
        let rules = match table.get("rule") {
            Some(value) => checker.check_rules(value, &list_names),
            None => Vec::new(),
        };
        if checker.problems.is_empty() {
            Ok(RuleSet { rules, lists, partner_flags, reputation, list_files })
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

    /// Whether any enabled rule reads domain reputation (the derived list
    /// or a per-domain feature): only then is the domain table kept.
    pub fn uses_domains(&self) -> bool {
        self.enabled_features().any(|feature| {
            feature.kind.reads_domains() || (feature.kind == FeatureKind::ListLinks && feature.list == DERIVED_LIST)
        })
    }

    /// How long the domain table keeps a domain's sends, in ms (0: unused).
    pub fn domain_retention_ms(&self) -> i64 {
        if !self.uses_domains() {
            return 0;
        }
        let longest = self
            .enabled_features()
            .filter(|f| f.kind.reads_domains() || (f.kind == FeatureKind::ListLinks && f.list == DERIVED_LIST))
            .map(|feature| feature.window_ms)
            .max()
            .unwrap_or(0);
        longest.max(self.reputation.window_ms)
    }

    fn enabled_features(&self) -> impl Iterator<Item = Feature> + '_ {
        self.rules.iter().filter(|rule| rule.enabled).flat_map(|rule| rule.when.features())
    }
}
