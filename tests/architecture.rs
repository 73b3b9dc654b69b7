//! Import direction: no arrow points back up the data path.
//!
//! Every top-level module of `src/` has a layer ([`LAYERS`], lowest first,
//! the table in `docs/architecture.md`). A module may refer to modules of its
//! own layer or lower ones, never higher. This test reads every `src/**/*.rs`
//! file, collects each `crate::<module>` reference, and fails listing every
//! `file:line: A (layer n) imports B (layer m)` that points upwards.
//!
//! What counts as a reference: `use crate::x...` lines, `use crate::{a, b}`
//! groups (also across several lines), and inline paths such as
//! `crate::x::y(...)` anywhere in code, string literals included (a serde
//! `with = "crate::x"` is a real dependency). Comments, doc comments
//! included, are not code and are skipped. `super::` paths are not followed:
//! in this tree they stay inside one top-level module.
//!
//! Test code is checked like any other code: `#[cfg(test)]` modules and
//! `tests.rs` files get no exemption, so a test that needs a higher layer
//! lives in that layer.
//!
//! A file maps to its top-level module by its first path component
//! (`src/server.rs` is `server`, `src/outputs/api/x.rs` is `outputs`);
//! `src/main.rs` and `src/cli/**` are `cli`. A module missing from
//! [`LAYERS`] fails the test, whether a file belongs to it or something
//! refers to it, so a new module gets its layer deliberately.

use std::path::{Path, PathBuf};

/// Layers, lowest first: the data path from the bottom up.
const LAYERS: &[(&str, u32)] = &[
    ("clock", 0),
    ("codec", 0),
    ("failpoint", 0),
    ("prefetch", 0),
    ("contract", 0),
    ("edge", 1),
    ("log", 1),
    ("sim", 1),
    ("vault", 2),
    ("telemetry", 2),
    ("processors", 3),
    ("consent", 3),
    ("state", 4),
    ("cluster", 4),
    ("pipeline", 5),
    ("gate", 6),
    ("disclose", 7),
    ("config", 8),
    ("outputs", 9),
    ("server", 10),
    ("fuzzing", 10),
    ("cli", 11),
];

/// One `crate::<module>` reference in a source file.
#[derive(Debug)]
struct Reference {
    line: usize,
    /// The path after `crate::`, up to the first brace, bracket or space.
    path: String,
}

impl Reference {
    fn module(&self) -> &str {
        self.path.split("::").next().unwrap_or_default()
    }
}

fn layer_of(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

/// The top-level module a file under `src/` belongs to (`None` for `lib.rs`,
/// the crate root, which declares modules and imports nothing).
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" => None,
        "main.rs" => Some("cli".to_string()),
        _ => Some(first.strip_suffix(".rs").unwrap_or(&first).to_string()),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `source` with every comment replaced by spaces (newlines kept, so line
/// numbers stay). String and character literals are kept as they are; they
/// are only recognised so that a `//` inside one is not taken for a comment.
fn strip_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let previous_is_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if (c == 'r' || (c == 'b' && next == Some('r')))
            && !previous_is_ident
            && raw_string_end(&chars, i).is_some()
        {
            let end = raw_string_end(&chars, i).expect("checked");
            out.extend(&chars[i..end]);
            i = end;
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    out.push(chars[i]);
                    i += 1;
                }
                out.push(chars[i]);
                i += 1;
            }
            if i < chars.len() {
                out.push('"');
                i += 1;
            }
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..chars.len()).find(|&j| chars[j] == '\'').map(|j| j + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            let end = end.unwrap_or(i + 1);
            out.extend(&chars[i..end]);
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// If a raw string (`r"..."`, `r#"..."#`, `br"..."`) starts at `start`, the
/// index just past its end.
fn raw_string_end(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + if chars[start] == 'b' { 2 } else { 1 };
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if chars.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(chars.len())
}

/// Every `crate::...` reference in comment-free `code`.
fn references(code: &str) -> Vec<Reference> {
    let chars: Vec<char> = code.chars().collect();
    let line_at = |index: usize| 1 + chars[..index].iter().filter(|&&c| c == '\n').count();
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    // A path `a::b::c` starting at `i`: its text and where it stops.
    let path_at = |mut i: usize| {
        let mut path = String::new();
        loop {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            path.extend(&chars[start..i]);
            let after = skip_space(i);
            if start == i || chars.get(after) != Some(&':') || chars.get(after + 1) != Some(&':') {
                return (path, i);
            }
            let next = skip_space(after + 2);
            if !chars.get(next).copied().is_some_and(is_ident) {
                return (path, i);
            }
            path.push_str("::");
            i = next;
        }
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i + 5 <= chars.len() {
        let is_crate = chars[i] == 'c'
            && chars[i..i + 5].iter().copied().eq("crate".chars())
            && (i == 0 || !is_ident(chars[i - 1]))
            && !chars.get(i + 5).copied().is_some_and(is_ident);
        if !is_crate {
            i += 1;
            continue;
        }
        let colons = skip_space(i + 5);
        if chars.get(colons) != Some(&':') || chars.get(colons + 1) != Some(&':') {
            i += 5;
            continue;
        }
        let target = skip_space(colons + 2);
        if chars.get(target) == Some(&'{') {
            // A group: the first segment of each top-level item is a module.
            let mut depth = 0;
            let mut item_start = true;
            let mut j = target;
            while j < chars.len() {
                match chars[j] {
                    '{' => {
                        depth += 1;
                        item_start = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && is_ident(c) => {
                        item_start = false;
                        let (path, end) = path_at(j);
                        if path != "self" && !path.starts_with("self::") {
                            found.push(Reference { line: line_at(j), path });
                        }
                        j = end;
                        continue;
                    }
                    _ => {}
                }
                j += 1;
            }
            i = j;
        } else if chars.get(target).copied().is_some_and(is_ident) {
            let (path, end) = path_at(target);
            found.push(Reference { line: line_at(target), path });
            i = end;
        } else {
            i = target;
        }
    }
    found
}

/// The modules `lib.rs` declares (`mod x;`, `pub mod x;`, `pub mod x { .. }`).
fn declared_modules(lib: &str) -> Vec<(usize, String)> {
    let mut modules = Vec::new();
    for (index, line) in strip_comments(lib).lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(position) = words.iter().position(|word| *word == "mod") {
            if let Some(name) = words.get(position + 1) {
                let name = name.trim_end_matches(';').trim_end_matches('{');
                modules.push((index + 1, name.to_string()));
            }
        }
    }
    modules
}

#[test]
fn no_module_imports_a_higher_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files under {}", files.len(), src.display());

    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let shown = Path::new("src").join(relative).display().to_string();
        let source = std::fs::read_to_string(file).unwrap_or_else(|error| panic!("reading {shown}: {error}"));
        let Some(module) = module_of(relative) else {
            for (line, declared) in declared_modules(&source) {
                if layer_of(&declared).is_none() {
                    problems.push(format!(
                        "{shown}:{line}: module `{declared}` is not in the layer table: give it a layer in LAYERS \
                         (tests/architecture.rs) and docs/architecture.md"
                    ));
                }
            }
            continue;
        };
        let Some(layer) = layer_of(&module) else {
            problems.push(format!(
                "{shown}: module `{module}` is not in the layer table: give it a layer in LAYERS \
                 (tests/architecture.rs) and docs/architecture.md"
            ));
            continue;
        };
        for reference in references(&strip_comments(&source)) {
            let target = reference.module();
            let Some(target_layer) = layer_of(target) else {
                problems.push(format!(
                    "{shown}:{}: {module} (layer {layer}) imports `{target}`, which is not in the layer table \
                     (crate::{})",
                    reference.line, reference.path
                ));
                continue;
            };
            if target_layer > layer {
                problems.push(format!(
                    "{shown}:{}: {module} (layer {layer}) imports {target} (layer {target_layer}) via crate::{}",
                    reference.line, reference.path
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the import direction (layers, lowest first: {}):\n{}\n",
        problems.len(),
        LAYERS.iter().map(|(name, layer)| format!("{layer} {name}")).collect::<Vec<_>>().join(", "),
        problems.join("\n")
    );
}

/// The scanner itself: groups across lines, inline paths, comments and
/// strings, so the test above cannot pass by missing references.
#[test]
fn references_are_found_in_groups_inline_and_not_in_comments() {
    let code = "use crate::{\n    log::Log,\n    state::{State, Withdrawal},\n};\n\
                // crate::outputs in a comment\n\
                /* crate::server\n in a block */\n\
                let url = \"http://x\"; let t = crate::clock::now_ms();\n\
                let c = '\"'; fn f<'a>(x: &'a str) -> crate :: gate::Gated {}\n\
                let raw = r#\"// not a comment \"# ; crate::vault::Vault::open();\n\
                pub(crate) fn g() {}\n";
    let found: Vec<(usize, String)> = references(&strip_comments(code)).into_iter().map(|r| (r.line, r.path)).collect();
    let expected: Vec<(usize, String)> =
        [(2, "log::Log"), (3, "state"), (8, "clock::now_ms"), (9, "gate::Gated"), (10, "vault::Vault::open")]
            .into_iter()
            .map(|(line, path)| (line, path.to_string()))
            .collect();
    assert_eq!(found, expected);
}
