//! Diagnostics for a bad rules file: the error that lists every problem and
//! the helpers that phrase one.
//!
//! Owns: [`RulesError`] and how it renders, positions in the file text,
//! "unknown key" messages and "did you mean" suggestions.
//! Never: decides whether something is a problem; the checker and the
//! expression parser do, and only call in here to word it.

/// Every problem found in a rules file, listed together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_error(.origin, .problems))]
pub struct RulesError {
    /// The rules file, when the rules came from one ([`RuleSet::load`](super::RuleSet::load)).
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
    pub(super) fn single(problem: String) -> RulesError {
        RulesError { origin: None, problems: vec![problem] }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

pub(super) fn unknown_key_problem(place: &str, key: &str, known: &[&str]) -> String {
    let expected = known.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
    match suggestion(key, known.iter().copied()) {
        Some(close) => format!("{place}: unknown key `{key}` (did you mean `{close}`?)"),
        None => format!("{place}: unknown key `{key}` (expected one of {expected})"),
    }
}

/// The closest candidate to a misspelt name, if any is close enough.
pub(super) fn suggestion<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
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

/// A problem in an expression: 1-based column (in characters) and message.
pub(super) type ExprProblem = (usize, String);
