//! Entry points for fuzzing: exists for the fuzz targets in `fuzz/` and the
//! corpus replay in `tests/fuzz_corpus.rs` only. Not part of proviso's API
//! (hidden from the docs); nothing else in the crate uses it.
//!
//! One function per fuzz target, each taking arbitrary bytes, so a fuzz
//! target's body is one call and `cargo test` replays the committed corpus
//! through exactly the same code. Each must return normally on every input:
//! a panic (or an abort, a stack overflow, an allocation past the fuzzer's
//! limit) is a bug in the parser it drives. Beyond "no panic" they check
//! cheap invariants with `assert!` (what decodes re-encodes and decodes to
//! the same value), so a broken invariant is reported as a crash too.
//!
//! Top layer (it drives `outputs`): see `tests/architecture.rs`.

use std::sync::OnceLock;

use axum::extract::Query;
use axum::http::Uri;

use crate::contract::{decode_event, decode_record, encode_control, encode_event, Purpose, Record, Region};
use crate::edge::{Edge, PseudonymKey, Source};
use crate::outputs::api::params;
use crate::pipeline::prepare;
use crate::processors::abuse::rules::RuleSet;
use crate::state::{decode_snapshot, encode_snapshot};

/// Target `edge_line`: a request body (NDJSON lines or a JSON array)
/// through the privacy edge, as `POST /v1/events` and `proviso ingest` run
/// it. An even-length input is sent by the messaging service, an odd-length
/// one by partner `net` (so both paths are fuzzed without a prefix byte
/// that would make the seeds less readable); partner accounts with ids of
/// even length count as linked. Every accepted event must
/// survive the log codec and the log framing unchanged.
pub fn edge_line(data: &[u8]) {
    static EDGE: OnceLock<Edge> = OnceLock::new();
    let edge = EDGE.get_or_init(|| {
        Edge::new(PseudonymKey::from_bytes([7; 32]), Region(*b"IN"))
            // 2026-02-01T00:00:00Z: event times after it are "in the future".
            .with_clock(crate::clock::Clock::fixed(1_769_904_000_000))
    });
    let source = if data.len().is_multiple_of(2) { Source::Service } else { Source::Partner("net") };
    let mut prepared = prepare(edge, data, source);
    // As `Pipeline::prepare`, with accounts of even-length ids "linked".
    prepared.refuse_unlinked_partner_events(|_, account| account.len().is_multiple_of(2));
    let mut framed = &prepared.framed[..];
    let mut payload = Vec::new();
    for record in &prepared.records {
        let Record::Event(event) = record else { panic!("the edge made a control record") };
        let mut bytes = Vec::new();
        encode_event(event, &mut bytes);
        assert_eq!(decode_event(&bytes).as_ref(), Ok(event), "an accepted event does not survive the codec");
        let read = crate::log::read_record(&mut framed, &mut payload);
        assert!(matches!(read, Ok(Some(_))), "framed batch ends early: {read:?}");
        assert_eq!(payload, bytes, "framed record differs from the encoded event");
    }
    assert!(framed.is_empty(), "framed batch has bytes past its records");
    for rejection in &prepared.rejected {
        assert!(rejection.line >= 1, "rejections are numbered from 1");
    }
}

/// Target `rules`: an abuse rules file. The input is the rules text, then
/// optionally a NUL byte and the contents served for every list `file` it
/// names. The same text is also parsed as the `when` of one rule in an
/// otherwise valid file, so mutations reach the expression parser directly.
/// What parses must re-parse from what a `RulesLoaded` record keeps (the
/// text and the list files read), as replay does; a rule's expression must
/// evaluate, and read back the same from its fully parenthesised rendering.
pub fn rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (rules_text, list) = text.split_once('\0').unwrap_or((&text, "spam.example\nphish.example\n"));
    check_rules(rules_text, list, false);
    check_rules(&one_rule_file(rules_text), list, true);
}

/// A rules file with one list (`bad`) and one rule whose `when` is `when`.
fn one_rule_file(when: &str) -> String {
    format!(
        "[lists]\nbad = {{ file = \"bad.txt\" }}\n\n[[rule]]\nname = \"fuzz\"\nwhen = {}\neffects = [\"review\"]\nreason = \"spam\"\n",
        toml_basic_string(when)
    )
}

/// `text` as a TOML basic string (quoted, escaped).
fn toml_basic_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn check_rules(text: &str, list: &str, render_round_trip: bool) {
    let read_list = |_path: &str| -> Result<String, std::io::Error> { Ok(list.to_string()) };
    let Ok(rules) = RuleSet::parse_with(text, &read_list) else { return };
    let logged = RuleSet::parse_logged(text, rules.list_files()).expect("accepted rules re-parse as logged");
    assert_eq!(logged.rules, rules.rules, "rules re-parsed as logged differ");
    let _ = rules.max_retention_ms();
    for rule in &rules.rules {
        for value in [0.0, 1.0, -1.0, 1e300, f64::NAN] {
            let _ = rule.when.eval(&mut |_| value);
        }
        let _ = rule.when.features();
        if render_round_trip {
            let rendered = rule.when.render(&rules.lists);
            let again = RuleSet::parse_with(&one_rule_file(&rendered), &read_list)
                .unwrap_or_else(|error| panic!("rendered rule `{rendered}` does not parse: {error}"));
            assert_eq!(again.rules[0].when, rule.when, "rendered rule `{rendered}` reads back differently");
        }
    }
}

/// Target `log_record`: the input as one log record payload, then as a log
/// segment (framed records, read as replay reads them). A payload that
/// decodes must re-encode to bytes that decode to the same record, and
/// frame and unframe unchanged.
pub fn log_record(data: &[u8]) {
    check_payload(data);
    let mut segment = data;
    let mut payload = Vec::new();
    while let Ok(Some(_)) = crate::log::read_record(&mut segment, &mut payload) {
        check_payload(&payload);
    }
}

fn check_payload(payload: &[u8]) {
    let Ok(record) = decode_record(payload) else { return };
    let mut bytes = Vec::new();
    match &record {
        Record::Event(event) => encode_event(event, &mut bytes),
        Record::Control(control) => encode_control(control, &mut bytes),
    }
    assert_eq!(decode_record(&bytes).as_ref(), Ok(&record), "a decoded record does not survive re-encoding");
    let mut framed = Vec::new();
    crate::log::frame(&bytes, &mut framed);
    let mut reader = &framed[..];
    let mut back = Vec::new();
    assert_eq!(crate::log::read_record(&mut reader, &mut back), Ok(Some(framed.len() as u64)));
    assert_eq!(back, bytes);
}

/// Snapshot file magics (`state/snapshot.rs`): versions 4, 3, 6, 5, 7, 8,
/// 9 and 10 (a first byte of 0 or 1 picks 4 or 3, as before versions 5 to
/// 8 were here; 2 and 3 still pick 6 and 5; with bit 2 set, bits 3 and 4
/// pick 7, 8, then the covered 9 and 10, whose covers are decoded too).
const SNAPSHOT_MAGICS: [&[u8; 8]; 8] =
    [b"PRVSNAP4", b"PRVSNAP3", b"PRVSNAP6", b"PRVSNAP5", b"PRVSNAP7", b"PRVSNAP8", b"PRVSNAP9", b"PRVSNAPA"];

/// Target `snapshot`: the input as a snapshot file; then its first byte
/// picks the version (its low two bits: 4, 3, 6, 5; with bit 2 set, 7, 8, 9 or 10 by bits 3 and 4) and the rest is a body given the
/// right magic and checksum, so mutations get past the crc32. A snapshot
/// that decodes must encode and decode again.
pub fn snapshot(data: &[u8]) {
    check_snapshot(data);
    let Some((version, body)) = data.split_first() else { return };
    let pick = if version & 4 != 0 { 4 + usize::from(version >> 3 & 3) } else { usize::from(version & 3) };
    let mut file = SNAPSHOT_MAGICS[pick].to_vec();
    file.extend_from_slice(body);
    file.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    check_snapshot(&file);
}

fn check_snapshot(bytes: &[u8]) {
    let Ok(state) = decode_snapshot(bytes) else { return };
    let _ = state.heap_breakdown();
    let encoded = encode_snapshot(&state).expect("a decoded snapshot encodes");
    let again =
        decode_snapshot(&encoded).unwrap_or_else(|error| panic!("a re-encoded snapshot does not decode: {error}"));
    assert_eq!((again.next_seq, again.events_applied), (state.next_seq, state.events_applied));
    assert_eq!(again.subjects.len(), state.subjects.len());
}

/// Target `api_query`: an HTTP query string, read by the API's own
/// functions as the handlers read it. The first byte picks the endpoint;
/// the rest is the query (after `?`), or, for the subject id and the feed
/// purpose, a path segment. A request line that is not a valid URI never
/// reaches a handler (hyper refuses it) and is skipped.
pub fn api_query(data: &[u8]) {
    let Some((endpoint, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    match endpoint % 10 {
        8 => {
            if let Ok(pseudonym) = params::parse_subject(text) {
                let id = pseudonym.subject_id();
                assert!(params::parse_subject(&id).is_ok_and(|again| again == pseudonym), "subject id round trip");
            }
            return;
        }
        9 => {
            if let Some(purpose) = Purpose::parse(text) {
                assert_eq!(Purpose::parse(purpose.as_str()), Some(purpose));
            }
            return;
        }
        _ => {}
    }
    let Ok(uri) = Uri::try_from(format!("/v1/x?{text}")) else { return };
    match endpoint % 10 {
        0 => {
            if let Ok(query) = params::active_params(Query::try_from_uri(&uri)) {
                let span = query.check().expect("checked query checks again");
                assert!(span.from <= span.to && (1..=366).contains(&span.window));
            }
        }
        1 => {
            if let Ok(query) = params::messages_params(Query::try_from_uri(&uri)) {
                let (from, to, _) = query.check().expect("checked query checks again");
                assert!(from <= to);
            }
        }
        2 => {
            let _ = params::actions_params(Query::<params::ActionsQuery>::try_from_uri(&uri));
        }
        3 => {
            if let Ok((after, limit)) = params::feed_params(Query::<params::FeedQuery>::try_from_uri(&uri)) {
                assert!((1..=1000).contains(&limit));
                let _ = after.map_or(0, |after| after.saturating_add(1));
            }
        }
        4 => {
            if let Ok(limit) = params::suggestions_params(Query::<params::SuggestionsQuery>::try_from_uri(&uri)) {
                assert!((1..=100).contains(&limit));
            }
        }
        5 => {
            if let Ok((days, _)) = params::size_params(Query::<params::AudienceQuery>::try_from_uri(&uri)) {
                assert!((1..=365).contains(&days));
            }
        }
        6 => {
            if let Ok(days) = params::partner_audience_params(Query::<params::AudienceQuery>::try_from_uri(&uri)) {
                assert!((1..=365).contains(&days));
            }
        }
        _ => {
            if let Ok(interval) = params::live_params(Query::<params::LiveQuery>::try_from_uri(&uri)) {
                assert!((200..=60_000).contains(&interval));
            }
        }
    }
}
