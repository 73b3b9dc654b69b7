//! The rules file checker: walks the parsed TOML table and collects every
//! problem, so a file is accepted whole or rejected with a complete list.
//!
//! Owns: the keys each section may hold, `[lists]` (inline domains or list
//! files), `[partner_flags]`, each `[[rule]]` and its fields, and the shape of
//! rule and list names.
//! Never: stops at the first problem, or reads a file itself (list files
//! come through the caller's `read_list`).

use std::collections::HashMap;
use std::io;

// Partner-flag reasons and list domains follow the edge's definitions.
use crate::edge::{is_reason_token, MAX_REASON_LEN};

use super::diagnostics::{suggestion, unknown_key_problem};
use super::parser::parse_expression;
use super::{DomainList, Effects, FlagAction, FlagPolicy, ReasonCategory, ReputationConfig, Rule, DERIVED_LIST_NAME};

/// Longest rule or list name; names are identifiers in `when` expressions.
const MAX_NAME_LEN: usize = 64;
/// Most domain lists in one file: the engine marks each sent message with
/// the lists its link matched in a 16-bit mask.
const MAX_LISTS: usize = 16;
pub(super) const TOP_LEVEL_KEYS: &[&str] = &["lists", "partner_flags", "suspicious_domains", "rule"];
const REPUTATION_KEYS: &[&str] =
    &["window", "young_account", "young_senders", "stranger_recipients", "stranger_share", "max_domains"];
/// Most domains `max_domains` may ask to track.
const MAX_TRACKED_DOMAINS: i64 = 1_000_000;
const LIST_KEYS: &[&str] = &["file", "domains"];
const PARTNER_FLAG_KEYS: &[&str] = &["ban_reasons", "default"];
const RULE_KEYS: &[&str] = &["name", "description", "when", "effects", "reason", "enabled"];
const EFFECT_NAMES: &[&str] = &["ban", "review", "share"];

/// Collects problems while checking one rules file.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<String>,
}

impl Checker {
    pub(super) fn check_lists(
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
            if name == DERIVED_LIST_NAME {
                self.problems.push(format!(
                    "{place}: `{DERIVED_LIST_NAME}` is the list proviso derives itself; tune it under [suspicious_domains]"
                ));
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

    pub(super) fn check_partner_flags(&mut self, value: &toml::Value) -> FlagPolicy {
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

    pub(super) fn check_reputation(&mut self, value: &toml::Value) -> ReputationConfig {
        let mut config = ReputationConfig::default();
        let Some(table) = value.as_table() else {
            self.problems.push(format!("suspicious_domains: must be a table, found {}", value.type_str()));
            return config;
        };
        for (key, item) in table {
            let place = format!("suspicious_domains.{key}");
            match key.as_str() {
                "window" | "young_account" => match item.as_str().and_then(duration_seconds) {
                    Some(seconds) if (1..=30 * 86_400).contains(&seconds) => {
                        if key == "window" {
                            config.window_ms = seconds * 1000;
                        } else {
                            config.young_account_seconds = seconds;
                        }
                    }
                    _ => self
                        .problems
                        .push(format!("{place}: must be a duration from \"1s\" to \"30d\", such as \"1d\"")),
                },
                "young_senders" | "stranger_recipients" | "max_domains" => match item.as_integer() {
                    Some(number) if (1..=MAX_TRACKED_DOMAINS).contains(&number) => match key.as_str() {
                        "young_senders" => config.young_senders = number as u32,
                        "stranger_recipients" => config.stranger_recipients = number as u32,
                        _ => config.max_domains = number as usize,
                    },
                    _ => self.problems.push(format!("{place}: must be a whole number from 1 to {MAX_TRACKED_DOMAINS}")),
                },
                "stranger_share" => match item.as_float().or_else(|| item.as_integer().map(|n| n as f64)) {
                    Some(share) if (0.0..=1.0).contains(&share) => config.stranger_share = share,
                    _ => self.problems.push(format!("{place}: must be a number from 0 to 1")),
                },
                _ => self.problems.push(unknown_key_problem("suspicious_domains", key, REPUTATION_KEYS)),
            }
        }
        config
    }

    pub(super) fn check_rules(&mut self, value: &toml::Value, list_names: &[String]) -> Vec<Rule> {
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

/// `30s`, `10m`, `1h`, `7d` as whole seconds.
fn duration_seconds(text: &str) -> Option<i64> {
    let unit = match text.bytes().last()? {
        b's' => 1,
        b'm' => 60,
        b'h' => 3_600,
        b'd' => 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().map(|value| value * unit)
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
