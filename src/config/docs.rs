//! The options reference in docs/configuration.md, generated from [`Opt`].
//!
//! Owns: turning clap's metadata (flag, env, default, help) and serde's
//! field names (file keys) into the markdown table, and the test that keeps
//! the file equal to it.
//! Never: holds an option's text itself; every word comes from opt.rs.

use clap::Args;

use super::{GlobalOpt, Opt, OptArgs};

/// The file the reference lives in, relative to the repository root.
pub const DOCS_PATH: &str = "docs/configuration.md";
/// Marks the start of the generated part of [`DOCS_PATH`].
pub const BEGIN_MARKER: &str =
    "<!-- BEGIN OPTIONS: generated from src/config/opt.rs by `proviso config docs`; edit there, not here -->";
/// Marks the end of the generated part of [`DOCS_PATH`].
pub const END_MARKER: &str = "<!-- END OPTIONS -->";

/// Heading of the options that have none in `--help` (`--log`).
const EVERY_COMMAND: &str = "Every command";

/// One table per help heading, in the order of opt.rs: flag, environment
/// variable, file key, default and description of every option.
pub fn options_reference() -> String {
    let command = GlobalOpt::augment_args(OptArgs::augment_args(clap::Command::new("proviso")));
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for arg in command.get_arguments() {
        let heading = arg.get_help_heading().unwrap_or(EVERY_COMMAND).to_string();
        let row = row(arg);
        match sections.iter_mut().find(|(name, _)| *name == heading) {
            Some((_, rows)) => rows.push(row),
            None => sections.push((heading, vec![row])),
        }
    }
    let mut text = String::new();
    for (heading, rows) in sections {
        text.push_str(&format!("### {heading}\n\n"));
        text.push_str("| flag | env | file key | default | description |\n|---|---|---|---|---|\n");
        for row in rows {
            text.push_str(&row);
        }
        text.push('\n');
    }
    text
}

fn row(arg: &clap::Arg) -> String {
    let id = arg.get_id().as_str();
    let value_name = arg.get_value_names().and_then(|names| names.first()).map(|name| name.to_string());
    let mut flag = match (arg.get_long(), value_name) {
        (Some(long), Some(value)) => format!("`--{long} <{value}>`"),
        (Some(long), None) => format!("`--{long}`"),
        (None, _) => "—".to_string(),
    };
    if matches!(arg.get_action(), clap::ArgAction::Append) {
        flag.push_str(" (repeatable)");
    }
    let env = arg.get_env().map(|env| format!("`{}`", env.to_string_lossy())).unwrap_or_else(|| "—".to_string());
    let file_key = if Opt::file_keys().contains(&id) { format!("`{id}`") } else { "—".to_string() };
    let defaults: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
    let default = if defaults.is_empty() { "—".to_string() } else { format!("`{}`", defaults.join(", ")) };
    let help = arg.get_long_help().or(arg.get_help()).map(|help| help.to_string()).unwrap_or_default();
    let mut description = help.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
    if arg.is_hide_env_values_set() {
        description.push_str(". Secret: `config show` prints `***`");
    }
    format!("| {flag} | {env} | {file_key} | {default} | {description} |\n")
}

/// Where the generated part of `docs` is: between the markers.
pub fn generated_part(docs: &str) -> Option<std::ops::Range<usize>> {
    let start = docs.find(BEGIN_MARKER)? + BEGIN_MARKER.len();
    let end = docs[start..].find(END_MARKER)? + start;
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md lists exactly the options of opt.rs, with their
    /// current flags, env names, file keys, defaults and help. On a change,
    /// `UPDATE_DOCS=1 cargo test --lib config::docs` rewrites the table (or
    /// paste the output of `proviso config docs` between the markers).
    #[test]
    fn configuration_docs_match_the_options_struct() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOCS_PATH);
        let docs = std::fs::read_to_string(&path).expect("docs/configuration.md exists");
        let part = generated_part(&docs).expect("docs/configuration.md has the BEGIN and END OPTIONS markers");
        let expected = format!("\n{}", options_reference());
        if docs[part.clone()] == expected {
            return;
        }
        if std::env::var_os("UPDATE_DOCS").is_some_and(|value| value == "1") {
            let updated = format!("{}{expected}{}", &docs[..part.start], &docs[part.end..]);
            std::fs::write(&path, updated).expect("rewrite docs/configuration.md");
            return;
        }
        panic!(
            "{DOCS_PATH} is out of date with src/config/opt.rs.\n\
             Regenerate it with `UPDATE_DOCS=1 cargo test --lib config::docs`, or put the output of\n\
             `proviso config docs` between its OPTIONS markers. Expected between the markers:\n{expected}"
        );
    }
}
