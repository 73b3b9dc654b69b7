use std::cell::Cell;
use std::io;
use std::path::Path;

use proptest::prelude::*;

use super::*;

/// Parses rules text where every list file is missing.
fn parse(text: &str) -> Result<RuleSet, RulesError> {
    let no_files = |path: &str| -> Result<String, io::Error> {
        Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {path}")))
    };
    RuleSet::parse_with(text, &no_files)
}

/// A file with one `phishing` list and one rule `r` with the given `when`.
fn file_with_when(when: &str) -> String {
    format!(
        "[lists]\nphishing = {{ domains = [\"evil.top\"] }}\n\n[[rule]]\nname = \"r\"\nwhen = '{when}'\neffects = [\"ban\"]\nreason = \"spam\"\n"
    )
}

fn parse_when(when: &str) -> (Expr, Vec<DomainList>) {
    match parse(&file_with_when(when)) {
        Ok(mut rules) => (rules.rules.remove(0).when, rules.lists),
        Err(error) => panic!("`{when}` should parse: {error}"),
    }
}

fn render(when: &str) -> String {
    let (expr, lists) = parse_when(when);
    expr.render(&lists)
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected the rules to be refused:\n{text}"),
        Err(error) => error.problems,
    }
}

fn when_problems(when: &str) -> Vec<String> {
    problems(&file_with_when(when))
}

/// Asserts that some problem contains `needle`, showing all of them if not.
fn assert_has(problems: &[String], needle: &str) {
    assert!(problems.iter().any(|problem| problem.contains(needle)), "no problem contains {needle:?}: {problems:#?}");
}

/// Evaluates with fixed values per feature kind (0 for anything not given).
fn eval_with(expr: &Expr, values: &[(FeatureKind, f64)]) -> bool {
    expr.eval(&mut |feature| values.iter().find(|(kind, _)| *kind == feature.kind).map_or(0.0, |(_, value)| *value))
}

#[test]
fn default_rules_parse_with_built_in_list() {
    let rules = RuleSet::default_rules();
    let names: Vec<&str> = rules.rules.iter().map(|rule| rule.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fresh_account_burst",
            "phishing_links",
            "mass_reported",
            "device_farm",
            "suspicious_domain_links",
            "stranger_link_spray"
        ]
    );
    assert!(rules.uses_domains(), "the defaults read domain reputation");
    assert_eq!(rules.reputation, ReputationConfig::default(), "the file spells out the defaults");
    assert!(rules.rules.iter().all(|rule| rule.enabled && rule.description.is_some()));

    let effects_of =
        |name: &str| rules.rules.iter().find(|rule| rule.name == name).map(|rule| (rule.effects, rule.reason));
    let ban_share = Effects { ban: true, review: false, share: true };
    assert_eq!(effects_of("fresh_account_burst"), Some((ban_share, ReasonCategory::Spam)));
    assert_eq!(effects_of("phishing_links"), Some((ban_share, ReasonCategory::Phishing)));
    assert_eq!(
        effects_of("mass_reported"),
        Some((Effects { ban: false, review: true, share: true }, ReasonCategory::Abuse))
    );
    assert_eq!(effects_of("device_farm"), Some((ban_share, ReasonCategory::FakeAccount)));
    let review_share = Effects { ban: false, review: true, share: true };
    assert_eq!(effects_of("suspicious_domain_links"), Some((review_share, ReasonCategory::Spam)));
    assert_eq!(
        effects_of("stranger_link_spray"),
        Some((Effects { ban: false, review: true, share: true }, ReasonCategory::Spam))
    );

    let (index, phishing) = rules.list("phishing").expect("the default rules define `phishing`");
    assert_eq!(index, 0);
    assert!(phishing.domains.len() >= 18, "{} domains", phishing.domains.len());
    for domain in ["secure-login-verify.top", "parcel-redelivery-fee.top", "login.wallet-unlock-support.live"] {
        assert!(phishing.contains(domain), "{domain}");
    }
    assert_eq!(rules.list_files().len(), 1);
    assert_eq!(rules.list_files()[0].0, "lists/phishing_domains.txt");
    assert_eq!(rules.partner_flags, FlagPolicy::default());
}

#[test]
fn default_rules_file_on_disk_loads_like_the_built_in_copy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/processors/abuse/default_rules.toml");
    let loaded = RuleSet::load(&path).expect("the shipped default rules file loads from disk");
    let built_in = RuleSet::default_rules();
    assert_eq!(loaded.rules, built_in.rules);
    assert_eq!(loaded.lists, built_in.lists);
    assert_eq!(loaded.reputation, built_in.reputation);
}

/// `[suspicious_domains]` is checked like every other section, and the
/// derived list cannot be redefined under `[lists]`.
#[test]
fn suspicious_domains_section_is_checked() {
    let good = r#"
[suspicious_domains]
window = "6h"
young_account = "2d"
young_senders = 4
stranger_recipients = 12
stranger_share = 0.7
max_domains = 500

[[rule]]
name = "derived"
when = "list_links[suspicious_domains, 1d] >= 1 and domain_young_senders[1d] >= 2 and newest_domain_age[1d] < 2d"
effects = ["review"]
reason = "spam"
"#;
    let rules = parse(good).expect("valid");
    assert_eq!(rules.reputation.window_ms, 6 * 3_600_000);
    assert_eq!(rules.reputation.young_account_seconds, 2 * 86_400);
    assert_eq!(rules.reputation.max_domains, 500);
    assert_eq!(rules.domain_retention_ms(), 86_400_000, "the longest domain window read");
    assert_eq!(
        rules.rules[0].when.render(&rules.lists),
        "(((list_links[suspicious_domains, 1d] >= 1) and (domain_young_senders[1d] >= 2)) and (newest_domain_age[1d] < 172800))"
    );
    let bad = r#"
[lists]
suspicious_domains = { domains = ["a.example"] }

[suspicious_domains]
window = "forever"
young_senders = 0
stranger_share = 2
max_domain = 5
"#;
    let problems = problems(bad);
    assert_has(&problems, "lists.suspicious_domains: `suspicious_domains` is the list proviso derives itself");
    assert_has(&problems, "suspicious_domains.window: must be a duration");
    assert_has(&problems, "suspicious_domains.young_senders: must be a whole number from 1 to 1000000");
    assert_has(&problems, "suspicious_domains.stranger_share: must be a number from 0 to 1");
    assert_has(&problems, "suspicious_domains: unknown key `max_domain` (did you mean `max_domains`?");
}

#[test]
fn default_rules_fire_on_their_intended_pattern() {
    let rules = RuleSet::default_rules();
    let fresh = &rules.rules[0].when;
    let burst = [
        (FeatureKind::AccountAge, 600.0),
        (FeatureKind::MessagesSent, 40.0),
        (FeatureKind::NonContactRecipients, 39.0),
        (FeatureKind::DistinctRecipients, 40.0),
    ];
    assert!(eval_with(fresh, &burst));
    let mut old_account = burst;
    old_account[0] = (FeatureKind::AccountAge, 7_200.0);
    assert!(!eval_with(fresh, &old_account));
    let mut friends = burst;
    friends[2] = (FeatureKind::NonContactRecipients, 10.0);
    assert!(!eval_with(fresh, &friends));
}

#[test]
fn arithmetic_binds_tighter_than_comparison() {
    assert_eq!(render("1 + 2 * 3 == 7"), "((1 + (2 * 3)) == 7)");
    assert!(eval_with(&parse_when("1 + 2 * 3 == 7").0, &[]));
    assert!(eval_with(&parse_when("10 - 4 - 3 == 3").0, &[]), "subtraction is left associative");
    assert!(eval_with(&parse_when("12 / 3 / 2 == 2").0, &[]), "division is left associative");
    assert!(eval_with(&parse_when("2 * (3 + 4) == 14").0, &[]));
    assert_eq!(render("-2 * 3 < -5"), "(((-2) * 3) < (-5))");
    assert!(eval_with(&parse_when("- -2 == 2").0, &[]));
}

#[test]
fn not_binds_looser_than_comparison_and_tighter_than_and_or() {
    assert_eq!(
        render("not account_age < messages_sent[1m] and blocks_received[1h] > 1"),
        "((not (account_age < messages_sent[1m])) and (blocks_received[1h] > 1))"
    );
    assert_eq!(render("1 > 0 or 2 > 0 and 3 > 0"), "((1 > 0) or ((2 > 0) and (3 > 0)))");
    assert_eq!(render("(1 > 0 or 2 > 0) and 3 > 0"), "(((1 > 0) or (2 > 0)) and (3 > 0))");
    assert_eq!(render("not not 1 > 0"), "(not (not (1 > 0)))");
    let (expr, _) = parse_when("not account_age < 10 and messages_sent[1m] > 1");
    assert!(eval_with(&expr, &[(FeatureKind::AccountAge, 20.0), (FeatureKind::MessagesSent, 2.0)]));
    assert!(!eval_with(&expr, &[(FeatureKind::AccountAge, 5.0), (FeatureKind::MessagesSent, 2.0)]));
}

#[test]
fn and_or_skip_the_right_side_when_the_left_decides() {
    let (expr, _) = parse_when("account_age < 10m and messages_sent[15s] > 100");
    let calls = Cell::new(0);
    let old_account = expr.eval(&mut |feature| {
        calls.set(calls.get() + 1);
        assert_eq!(feature.kind, FeatureKind::AccountAge, "the right side of a false `and` was queried");
        1e12
    });
    assert!(!old_account);
    assert_eq!(calls.get(), 1);

    let (expr, _) = parse_when("account_age < 10m or messages_sent[15s] > 100");
    let young = expr.eval(&mut |feature| {
        assert_eq!(feature.kind, FeatureKind::AccountAge, "the right side of a true `or` was queried");
        60.0
    });
    assert!(young);

    // When the left side does not decide, the right side is evaluated.
    let queried = Cell::new(0);
    let (expr, _) = parse_when("account_age < 10m and messages_sent[15s] > 100");
    let fired = expr.eval(&mut |feature| {
        queried.set(queried.get() + 1);
        if feature.kind == FeatureKind::AccountAge {
            60.0
        } else {
            101.0
        }
    });
    assert!(fired);
    assert_eq!(queried.get(), 2);
}

#[test]
fn division_by_zero_is_zero() {
    let (expr, _) = parse_when("messages_sent[1m] / distinct_recipients[1m] == 0");
    assert!(eval_with(&expr, &[(FeatureKind::MessagesSent, 5.0)]));
    let (ratio, _) = parse_when("non_contact_recipients[1m] / distinct_recipients[1m] > 0.5");
    assert!(!eval_with(&ratio, &[(FeatureKind::NonContactRecipients, 3.0)]));
    assert!(eval_with(&ratio, &[(FeatureKind::NonContactRecipients, 3.0), (FeatureKind::DistinctRecipients, 4.0)]));
    assert!(eval_with(&parse_when("1 / 0 == 0").0, &[]));
}

#[test]
fn durations_are_seconds() {
    for when in ["15s == 15", "10m == 600", "1h == 3600", "7d == 604800", "0.5h == 1800", "90s == 1.5 * 60"] {
        assert!(eval_with(&parse_when(when).0, &[]), "{when}");
    }
    let (young, _) = parse_when("account_age < 10m");
    assert!(eval_with(&young, &[(FeatureKind::AccountAge, 599.0)]));
    assert!(!eval_with(&young, &[(FeatureKind::AccountAge, 600.0)]));
}

#[test]
fn windows_are_milliseconds_and_display_as_written() {
    let (expr, lists) = parse_when(
        "messages_sent[15s] + messages_sent[90s] + distinct_reporters[3d] + list_links[phishing, 1h] + account_age > 0 and messages_sent[15s] > 1",
    );
    let features = expr.features();
    let shown: Vec<String> = features.iter().map(|feature| feature.display(&lists)).collect();
    assert_eq!(
        shown,
        [
            "messages_sent[15s]",
            "messages_sent[90s]",
            "distinct_reporters[3d]",
            "list_links[phishing, 1h]",
            "account_age"
        ],
        "deduplicated, in order of first mention"
    );
    assert_eq!(features[0], Feature { kind: FeatureKind::MessagesSent, window_ms: 15_000, list: 0 });
    assert_eq!(features[2].window_ms, 3 * 86_400_000);
    assert_eq!(features[3], Feature { kind: FeatureKind::ListLinks, window_ms: 3_600_000, list: 0 });
    assert_eq!(features[4], Feature { kind: FeatureKind::AccountAge, window_ms: 0, list: 0 });
    assert_eq!(
        Feature { kind: FeatureKind::BlocksReceived, window_ms: 30 * 86_400_000, list: 0 }.display(&[]),
        "blocks_received[30d]"
    );
}

#[test]
fn list_links_index_follows_sorted_list_names() {
    let text = r#"
[lists]
zeta = { domains = ["z.example"] }
alpha = { domains = ["a.example"] }

[[rule]]
name = "r"
when = "list_links[zeta, 1h] > 0"
effects = ["review"]
reason = "phishing"
"#;
    let rules = parse(text).expect("valid");
    assert_eq!(rules.lists.iter().map(|list| list.name.as_str()).collect::<Vec<_>>(), ["alpha", "zeta"]);
    let feature = rules.rules[0].when.features()[0];
    assert_eq!(feature.list, 1);
    assert_eq!(feature.display(&rules.lists), "list_links[zeta, 1h]");
    assert_eq!(rules.list("zeta").map(|(index, _)| index), Some(1));
}

#[test]
fn unknown_feature_suggests_the_closest_name() {
    let found = when_problems("mesages_sent[15s] > 100");
    assert_eq!(found, ["rule `r`: when: column 1: unknown feature `mesages_sent` (did you mean `messages_sent`?)"]);
    let found = when_problems("account_age < 1 and xyz > 1");
    assert_eq!(found, ["rule `r`: when: column 21: unknown feature `xyz`"]);
    let found = when_problems("phishing > 1");
    assert_has(&found, "unknown feature `phishing` (`phishing` is a list: use `list_links[phishing, 1h]`)");
}

#[test]
fn window_mistakes_are_named() {
    assert_eq!(
        when_problems("messages_sent > 100"),
        ["rule `r`: when: column 1: `messages_sent` needs a window, e.g. `messages_sent[15s]`"]
    );
    assert_eq!(
        when_problems("account_age[1h] < 100"),
        ["rule `r`: when: column 12: `account_age` takes no window (it is the account's age in seconds)"]
    );
    assert_has(&when_problems("list_links[1h] > 1"), "`list_links` takes a list name and a window");
    assert_has(&when_problems("list_links > 1"), "`list_links` needs a list and a window");
    assert_has(&when_problems("messages_sent[15s, 1m] > 1"), "`messages_sent` takes exactly one window");
    assert_has(&when_problems("messages_sent[31d] > 1"), "column 15: window `31d` is longer than the maximum of 30d");
    assert_has(&when_problems("messages_sent[0s] > 1"), "window `0s` is shorter than the minimum of 1s");
    assert_has(&when_problems("messages_sent[1.5s] > 1"), "window `1.5s` must be a whole number of seconds");
    assert_has(
        &when_problems("messages_sent[15] > 1"),
        "the window of `messages_sent` must be a duration such as `15s`, `10m`, `1h` or `7d`, found the number `15`",
    );
    assert_has(&when_problems("messages_sent[10ms] > 1"), "unknown duration unit `ms` in `10ms` (use s, m, h or d)");
    assert!(parse(&file_with_when("messages_sent[30d] > 1 and messages_sent[1s] > 1")).is_ok(), "bounds are inclusive");
}

#[test]
fn unknown_list_is_named_with_a_suggestion() {
    assert_eq!(
        when_problems("list_links[phishng, 1h] >= 3"),
        ["rule `r`: when: column 12: unknown list `phishng` (did you mean `phishing`?)"]
    );
    let no_lists =
        "[[rule]]\nname = \"r\"\nwhen = \"list_links[phishing, 1h] > 0\"\neffects = [\"ban\"]\nreason = \"phishing\"\n";
    assert_has(&problems(no_lists), "unknown list `phishing` (no lists are defined; add one under [lists])");
}

#[test]
fn type_errors_name_the_operator_and_side() {
    assert_eq!(
        when_problems("messages_sent[1m] and account_age < 1"),
        ["rule `r`: when: column 1: the left side of `and` must be a condition (true/false), found a number (did you forget a comparison?)"]
    );
    assert_has(
        &when_problems("account_age < 1 or 3"),
        "column 20: the right side of `or` must be a condition (true/false), found a number",
    );
    assert_has(&when_problems("not messages_sent[1m]"), "column 5: the operand of `not` must be a condition");
    assert_has(
        &when_problems("(account_age < 1) + 1 > 2"),
        "column 1: the left side of `+` must be a number, found a condition (true/false)",
    );
    assert_has(&when_problems("(1 > 0) == (2 > 0)"), "the left side of `==` must be a number, found a condition");
    assert_eq!(
        when_problems("messages_sent[1m] * 2"),
        ["rule `r`: when: column 1: the condition is a number, not true/false (compare it, e.g. `messages_sent[1m] > 10`)"]
    );
}

#[test]
fn syntax_errors_have_columns_and_hints() {
    assert_has(
        &when_problems("1 < 2 < 3"),
        "column 7: comparisons cannot be chained (`<` after `<`); join them with `and`",
    );
    assert_has(&when_problems("account_age > 1 && 1 > 0"), "column 17: `&&` is not an operator (use `and`)");
    assert_has(&when_problems("account_age = 1"), "`=` is not an operator (use `==` to compare)");
    assert_has(&when_problems("!(account_age > 1)"), "`!` is not an operator (use `not`)");
    assert_has(&when_problems("account_age > 1 || 1 > 0"), "column 17: `||` is not an operator (use `or`)");
    assert_has(
        &when_problems("account_age > 1 AND account_age < 5"),
        "column 17: expected `and`, `or` or the end of the condition, found `AND` (keywords are lowercase: `and`)",
    );
    assert_has(&when_problems("(account_age > 1"), "column 17: expected `)` to close the `(` at column 1");
    assert_has(
        &when_problems("account_age >"),
        "column 14: expected a number, a duration, a feature or `(`, found the end of the condition",
    );
    assert_has(&when_problems("messages_sent[1m > 1"), "expected `,` or `]` to close the `[` at column 14");
    assert_has(&when_problems("   "), "column 1: the condition is empty");
    assert_has(&when_problems("account_age > 1.x"), "expected digits after the decimal point");
}

#[test]
fn several_problems_in_one_expression_are_all_reported() {
    let found = when_problems("mesages_sent[1m] > 1 and account_age[1h] > 2 and list_links[nope, 1h] > 0");
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_has(&found, "unknown feature `mesages_sent`");
    assert_has(&found, "`account_age` takes no window");
    assert_has(&found, "unknown list `nope`");
}

#[test]
fn duplicate_rule_names_are_refused() {
    let text = r#"
[[rule]]
name = "same"
when = "account_age < 1"
effects = ["ban"]
reason = "spam"

[[rule]]
name = "same"
when = "account_age < 2"
effects = ["review"]
reason = "spam"
"#;
    assert_eq!(problems(text), ["rule #2: name: `same` is already used by rule #1"]);
}

#[test]
fn bad_effects_are_refused() {
    let with_effects = |effects: &str| {
        format!("[[rule]]\nname = \"r\"\nwhen = \"account_age < 1\"\neffects = {effects}\nreason = \"spam\"\n")
    };
    assert_eq!(problems(&with_effects("[]")), ["rule `r`: effects: must list at least one of ban, review, share"]);
    assert_eq!(problems(&with_effects("[\"ban\", \"ban\"]")), ["rule `r`: effects: `ban` is listed twice"]);
    assert_eq!(
        problems(&with_effects("[\"bna\"]")),
        ["rule `r`: effects: unknown effect `bna` (did you mean `ban`? expected ban, review or share)"]
    );
    assert_has(
        &problems(&with_effects("\"ban\"")),
        "rule `r`: effects: must be an array such as [\"ban\", \"share\"], found string",
    );
    assert_has(&problems(&with_effects("[1]")), "rule `r`: effects: entries must be strings, found integer");
    let missing = "[[rule]]\nname = \"r\"\nwhen = \"account_age < 1\"\nreason = \"spam\"\n";
    assert_eq!(problems(missing), ["rule `r`: effects: missing (a non-empty list of ban, review, share)"]);
    let share_only = parse(&with_effects("[\"share\"]")).expect("share alone is allowed");
    assert_eq!(share_only.rules[0].effects, Effects { ban: false, review: false, share: true });
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    let text = r#"
[lists]
bad = { file = "x.txt", domain = ["a.example"] }

[partner_flags]
default = "review"
ban_reason = ["scam"]

[[rule]]
name = "r"
whne = "account_age < 1"
effects = ["ban"]
reason = "spam"

[[rules]]
name = "s"
"#;
    let found = problems(text);
    assert_has(&found, "top level: unknown key `rules` (did you mean `rule`?)");
    assert_has(&found, "lists.bad: unknown key `domain` (did you mean `domains`?)");
    assert_has(&found, "partner_flags: unknown key `ban_reason` (did you mean `ban_reasons`?)");
    assert_has(&found, "rule `r`: unknown key `whne` (did you mean `when`?)");
    assert_has(&found, "rule `r`: when: missing");
    assert_has(&problems("[[rule]]\nname = \"r\"\nwhen = \"account_age < 1\"\neffects = [\"ban\"]\nreason = \"spam\"\nseverity = 3\n"),
        "rule `r`: unknown key `severity` (expected one of `name`, `description`, `when`, `effects`, `reason`, `enabled`)");
}

#[test]
fn rule_fields_are_checked() {
    let text = r#"
[[rule]]
name = "Bad Name"
when = "account_age < 1"
effects = ["ban"]
reason = "spam"

[[rule]]
name = "r"
description = 5
when = 3
effects = ["ban"]
reason = "harassment"
enabled = "yes"
"#;
    let found = problems(text);
    assert_eq!(
        found,
        [
            "rule #1: name: must be 1-64 characters from a-z 0-9 _",
            "rule `r`: description: must be a string, found integer",
            "rule `r`: when: must be a string, found integer",
            "rule `r`: reason: unknown reason `harassment` (expected spam, scam, phishing, fake_account or abuse)",
            "rule `r`: enabled: must be true or false, found string",
        ]
    );
}

#[test]
fn every_problem_in_the_file_is_reported_together() {
    let text = r#"
[lists]
phishing = { file = "lists/missing.txt" }
inline = { domains = ["ok.example", "not a domain"] }

[partner_flags]
default = "block"

[[rule]]
name = "one"
when = "mesages_sent[1m] > 1"
effects = ["ban"]
reason = "spam"

[[rule]]
name = "two"
when = "account_age < 1"
effects = []
reason = "spam"

[[rule]]
when = "account_age < 1"
effects = ["review"]
reason = "scams"
"#;
    let error = parse(text).expect_err("broken in many places");
    assert_eq!(
        error.problems,
        [
            "lists.inline.domains[1]: not a bare domain (labels of a-z 0-9 - joined by dots, e.g. `evil.example`)",
            "lists.phishing: cannot read list file `lists/missing.txt`: no file lists/missing.txt",
            "partner_flags.default: unknown action `block` (expected review, ban or ignore)",
            "rule `one`: when: column 1: unknown feature `mesages_sent` (did you mean `messages_sent`?)",
            "rule `two`: effects: must list at least one of ban, review, share",
            "rule #3: name: missing",
            "rule #3: reason: unknown reason `scams` (expected spam, scam, phishing, fake_account or abuse)",
        ]
    );
    let shown = error.to_string();
    assert!(shown.starts_with("invalid abuse rules:\n  - lists.inline.domains[1]: "), "{shown}");
    assert_eq!(shown.lines().count(), 8);
}

#[test]
fn toml_syntax_errors_use_the_toml_message_with_a_position() {
    let found = problems("[[rule]]\nname = \"r\nwhen = \"x\"\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("toml syntax: line 2, column "), "{found:?}");
    let found = problems("[[rule]\nname = 1\n");
    assert_eq!(found, ["toml syntax: line 1, column 7: invalid table header; expected `.`, `]]`"]);
    let found = problems("rule = 3\n");
    assert_eq!(found, ["rule: must be an array of tables written `[[rule]]`, found integer"]);
}

#[test]
fn empty_file_has_no_rules_and_the_default_flag_policy() {
    let rules = parse("").expect("an empty file is valid");
    assert!(rules.rules.is_empty() && rules.lists.is_empty());
    assert_eq!(rules.partner_flags, FlagPolicy { ban_reasons: Vec::new(), default: FlagAction::Review });
    assert_eq!(rules.max_retention_ms(), 0);
}

#[test]
fn list_files_are_read_relative_to_the_rules_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("lists")).expect("mkdir");
    std::fs::write(
        dir.path().join("lists/bad.txt"),
        "# a comment\n\n  Evil.TOP  \nphish.example # trailing comment\n\tspaced.example\n",
    )
    .expect("write list");
    let rules_path = dir.path().join("rules.toml");
    let text = "[lists]\nbad = { file = \"lists/bad.txt\" }\n\n[[rule]]\nname = \"r\"\nwhen = \"list_links[bad, 1h] > 0\"\neffects = [\"ban\"]\nreason = \"phishing\"\n";
    std::fs::write(&rules_path, text).expect("write rules");

    let rules = RuleSet::load(&rules_path).expect("loads");
    let list = &rules.lists[0];
    let mut domains: Vec<&str> = list.domains.iter().map(String::as_str).collect();
    domains.sort_unstable();
    assert_eq!(domains, ["evil.top", "phish.example", "spaced.example"]);
    assert_eq!(
        rules.list_files(),
        [("lists/bad.txt".to_string(), std::fs::read_to_string(dir.path().join("lists/bad.txt")).expect("read"))]
    );

    // What a `RulesLoaded` record holds re-parses with no files at all.
    let replayed = RuleSet::parse_logged(text, rules.list_files()).expect("replays");
    assert_eq!(replayed.rules, rules.rules);
    assert_eq!(replayed.lists, rules.lists);
    assert_has(
        &RuleSet::parse_logged(text, &[]).expect_err("list missing").problems,
        "lists.bad: cannot read list file",
    );
}

#[test]
fn unreadable_list_file_names_the_list_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "[lists]\nphishing = { file = \"nowhere/list.txt\" }\n";
    let error = RuleSet::parse(text, dir.path()).expect_err("missing file");
    assert_eq!(error.problems.len(), 1);
    let problem = &error.problems[0];
    assert!(problem.starts_with("lists.phishing: cannot read list file `nowhere/list.txt`: "), "{problem}");
    assert!(problem.contains(&dir.path().join("nowhere/list.txt").display().to_string()), "{problem}");
}

#[test]
fn bad_list_lines_are_named_by_number() {
    let read =
        |_: &str| -> Result<String, io::Error> { Ok("good.example\nhttps://evil.example/login\n\ntop\n".to_string()) };
    let error = RuleSet::parse_with("[lists]\nx = { file = \"x.txt\" }\n", &read).expect_err("bad lines");
    assert_eq!(
        error.problems,
        [
            "lists.x: line 2 of the list file is not a bare domain (labels of a-z 0-9 - joined by dots, e.g. `evil.example`)",
            "lists.x: line 4 of the list file is not a bare domain (labels of a-z 0-9 - joined by dots, e.g. `evil.example`)",
        ]
    );
    assert_has(&problems("[lists]\nx = { }\n"), "lists.x: needs `file` (a path) or `domains` (an array of domains)");
    assert_has(
        &problems("[lists]\nx = { file = \"a\", domains = [] }\n"),
        "lists.x: give either `file` or `domains`, not both",
    );
    assert_has(
        &problems("[lists]\nBad-Name = { domains = [] }\n"),
        "lists.Bad-Name: list names are 1-64 characters from a-z 0-9 _",
    );
}

#[test]
fn too_many_lists_are_refused() {
    let mut text = String::from("[lists]\n");
    for index in 0..17 {
        text.push_str(&format!("l{index} = {{ domains = [\"d{index}.example\"] }}\n"));
    }
    assert_eq!(problems(&text), ["lists: at most 16 lists, found 17"]);
}

#[test]
fn domain_lists_match_subdomains_but_not_lookalikes() {
    let rules = parse("[lists]\nbad = { domains = [\"Evil.Top\", \"phish.example\"] }\n").expect("valid");
    let list = &rules.lists[0];
    assert!(list.contains("evil.top"));
    assert!(list.contains("login.evil.top"));
    assert!(list.contains("a.b.c.evil.top"));
    assert!(list.contains("Sub.EVIL.top"), "matching ignores case");
    assert!(!list.contains("notevil.top"), "a suffix that is not a parent domain does not match");
    assert!(!list.contains("top"));
    assert!(!list.contains("evil.top.example"));
    assert!(!list.contains(""));
}

#[test]
fn partner_flag_policy_bans_listed_reasons_only() {
    let rules =
        parse("[partner_flags]\nban_reasons = [\"scam\", \"fake_account\"]\ndefault = \"ignore\"\n").expect("valid");
    assert_eq!(rules.partner_flags.action_for("scam"), FlagAction::Ban);
    assert_eq!(rules.partner_flags.action_for("fake_account"), FlagAction::Ban);
    assert_eq!(rules.partner_flags.action_for("spam_wave"), FlagAction::Ignore);
    assert_eq!(FlagPolicy::default().action_for("scam"), FlagAction::Review);
    let only_default = parse("[partner_flags]\ndefault = \"ban\"\n").expect("valid");
    assert_eq!(only_default.partner_flags.action_for("anything"), FlagAction::Ban);
    assert_has(
        &problems("[partner_flags]\nban_reasons = [\"Has Space\"]\n"),
        "partner_flags.ban_reasons[0]: must be a reason token of 1-64 characters from a-z 0-9 _ -",
    );
}

#[test]
fn retention_is_the_longest_window_of_enabled_rules() {
    let text = r#"
[[rule]]
name = "short"
when = "messages_sent[15s] > 10 and account_age < 1h"
effects = ["ban"]
reason = "spam"

[[rule]]
name = "long"
when = "messages_sent[1h] > 100 or distinct_reporters[3d] > 5"
effects = ["review"]
reason = "abuse"

[[rule]]
name = "off"
when = "messages_sent[7d] > 1000 and blocks_received[30d] > 1"
effects = ["ban"]
reason = "spam"
enabled = false
"#;
    let rules = parse(text).expect("valid");
    assert!(!rules.rules[2].enabled);
    assert_eq!(rules.retention_ms(FeatureKind::MessagesSent), 3_600_000);
    assert_eq!(rules.retention_ms(FeatureKind::DistinctReporters), 3 * 86_400_000);
    assert_eq!(rules.retention_ms(FeatureKind::BlocksReceived), 0, "only a disabled rule reads it");
    assert_eq!(rules.retention_ms(FeatureKind::AccountAge), 0);
    assert_eq!(rules.retention_ms(FeatureKind::ListLinks), 0);
    assert_eq!(rules.max_retention_ms(), 3 * 86_400_000);

    let defaults = RuleSet::default_rules();
    assert_eq!(defaults.retention_ms(FeatureKind::DeviceRegistrations), 86_400_000);
    assert_eq!(defaults.retention_ms(FeatureKind::MessagesSent), 3_600_000);
    assert_eq!(defaults.max_retention_ms(), 3 * 86_400_000);
}

#[test]
fn load_names_the_path_of_an_unreadable_or_invalid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let error = RuleSet::load(&missing).expect_err("no file");
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("invalid abuse rules in {}:\n  - cannot read rules file: ", missing.display())),
        "{shown}"
    );

    let invalid = dir.path().join("bad.toml");
    std::fs::write(&invalid, "[[rule]]\nname = \"r\"\n").expect("write");
    let error = RuleSet::load(&invalid).expect_err("invalid");
    assert_eq!(error.origin, Some(invalid.display().to_string()));
    assert_has(&error.problems, "rule `r`: when: missing");
}

#[test]
fn reason_and_flag_action_names_round_trip() {
    for reason in ReasonCategory::ALL {
        assert_eq!(ReasonCategory::parse(reason.as_str()), Some(reason));
    }
    for action in FlagAction::ALL {
        assert_eq!(FlagAction::parse(action.as_str()), Some(action));
    }
    for kind in FeatureKind::ALL {
        assert_eq!(FeatureKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(ReasonCategory::parse("fake_account"), Some(ReasonCategory::FakeAccount));
    assert_eq!(ReasonCategory::parse("Spam"), None);
}

proptest! {
    /// `a > b` and `not (a <= b)` agree for any feature values (no NaN).
    #[test]
    fn greater_than_is_not_less_or_equal(
        a in prop_oneof![-5i32..5, any::<i32>()],
        b in prop_oneof![-5i32..5, any::<i32>()],
        scale in prop_oneof![Just(1.0), Just(0.25), Just(1e-3)],
    ) {
        let (greater, _) = parse_when("messages_sent[1m] > blocks_received[1m]");
        let (not_less_equal, _) = parse_when("not (messages_sent[1m] <= blocks_received[1m])");
        let values = [
            (FeatureKind::MessagesSent, f64::from(a) * scale),
            (FeatureKind::BlocksReceived, f64::from(b) * scale),
        ];
        prop_assert_eq!(eval_with(&greater, &values), eval_with(&not_less_equal, &values));
        prop_assert_eq!(eval_with(&greater, &values), f64::from(a) > f64::from(b));
    }
}

/// Nesting is bounded, so a hostile `when` cannot overflow the stack of the
/// thread that parses it (the API's blocking pool has 2 MiB stacks): deep
/// `(`, `not` and unary `-` are refused with a problem, not a crash, and a
/// `when` is at most `MAX_WHEN_BYTES` long.
#[test]
fn deep_nesting_and_huge_conditions_are_refused_not_a_stack_overflow() {
    use super::parser::{MAX_NESTING, MAX_WHEN_BYTES};
    let at_limit = format!("{}messages_sent[1m] > 1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    parse_when(&at_limit);
    parse_when(&format!("{}messages_sent[1m] > 1", "not ".repeat(MAX_NESTING)));
    for deep in [
        format!("{}messages_sent[1m] > 1{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1)),
        format!("{}messages_sent[1m] > 1", "not ".repeat(MAX_NESTING + 1)),
        format!("messages_sent[1m] > {}1", "-".repeat(MAX_NESTING + 1)),
    ] {
        assert_has(&when_problems(&deep), &format!("nest at most {MAX_NESTING} deep"));
    }
    // Far deeper than any stack: refused by length before parsing.
    let hostile = format!("{}1", "(".repeat(200_000));
    assert_has(&when_problems(&hostile), &format!("longer than {MAX_WHEN_BYTES} bytes"));
    let chain = vec!["messages_sent[1m] > 1"; 400].join(" and ");
    assert_has(&when_problems(&chain), &format!("longer than {MAX_WHEN_BYTES} bytes"));
}
