//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! same `proviso::fuzzing` function each fuzz target calls, on stable and
//! without cargo-fuzz: every input that once found new coverage (and every
//! input that once crashed, kept as a regression) must still run without a
//! panic. Fuzzing itself: `fuzz/run-brief.sh` and docs/reliability.md.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus under {}", dir.display());
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|error| panic!("reading {}: {error}", file.display()));
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            std::panic::resume_unwind(Box::new(format!("{}: {:?}", file.display(), panic.downcast_ref::<String>())));
        }
    }
}

#[test]
fn edge_line_corpus() {
    replay("edge_line", proviso::fuzzing::edge_line);
}

#[test]
fn rules_corpus() {
    replay("rules", proviso::fuzzing::rules);
}

#[test]
fn log_record_corpus() {
    replay("log_record", proviso::fuzzing::log_record);
}

#[test]
fn snapshot_corpus() {
    replay("snapshot", proviso::fuzzing::snapshot);
}

#[test]
fn api_query_corpus() {
    replay("api_query", proviso::fuzzing::api_query);
}

/// Writes the hand-made seeds the corpus started from into
/// `fuzz/corpus/<target>/seed-*` (run once by hand, then `cargo fuzz cmin`):
/// `cargo test --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes files: run by hand to re-seed the corpus"]
fn write_seeds() {
    use proviso::contract::{encode_control, encode_event, Control, ControlBody, DecisionAction, Pseudonym, Record};
    use proviso::edge::{Edge, PseudonymKey, Source};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
    };

    let lines = [
        r#"{"type":"register","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","device":"d1","platform":"android"}"#,
        r#"{"type":"session","ts":1767607200000,"phone":"+919812345678","device":"d1"}"#,
        r#"{"type":"message","ts":"2026-01-05T10:00:00+05:30","phone":"+919812345678","to":"+5511987654321","kind":"text","link_domain":"Example.COM"}"#,
        r#"{"type":"message","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","group":"g-1","kind":"media"}"#,
        r#"{"type":"contacts","ts":"2026-01-05T10:00:00Z","phone":"098123 45678","country":"IN","contacts":["+5511987654321","098123 45679"]}"#,
        r#"{"type":"business_message","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","business":"b_42","direction":"out"}"#,
        r#"{"type":"report","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","target":"+5511987654321","reason":"spam"}"#,
        r#"{"type":"block","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","target":"+5511987654321"}"#,
        r#"{"type":"consent","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","purpose":"ads","granted":false}"#,
        r#"{"type":"delete_account","ts":"2026-01-05T10:00:00Z","phone":"+919812345678"}"#,
        r#"{"type":"partner_account","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","partner_id":"p_1"}"#,
        r#"{"type":"partner_friend","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","partner_id":"p_1","friend":"p_2","state":"added"}"#,
        r#"{"type":"partner_flag","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","partner_id":"p_1","reason":"spam_wave"}"#,
        r#"{"type":"message","ts":1767607200000,"phone":"+919812345678","to":"+5511987654321","kind":"text","text":"hello"}"#,
        r#"{"type":"session","ts":"yesterday","phone":"(202) 555-0143","device":"d"}"#,
    ];
    for (index, line) in lines.iter().enumerate() {
        write("edge_line", &format!("line-{index:02}"), line.as_bytes());
        // The same line from a partner: odd length.
        let padded = if line.len().is_multiple_of(2) { format!("{line} ") } else { line.to_string() };
        write("edge_line", &format!("partner-{index:02}"), padded.as_bytes());
    }
    write("edge_line", "ndjson", lines.join("\r\n").as_bytes());
    write("edge_line", "array", format!("[{},\n{}]", lines[0], lines[2]).as_bytes());

    let default_rules = include_str!("../src/processors/abuse/default_rules.toml");
    write("rules", "default", default_rules.as_bytes());
    write(
        "rules",
        "default-with-list",
        format!("{default_rules}\0evil.example\n# comment\nPhish.Example.\n").as_bytes(),
    );
    let whens = [
        "account_age < 1h and messages_sent[1m] >= 30 and non_contact_recipients[1m] > 0.8 * distinct_recipients[1m]",
        "list_links[bad, 1h] >= 2",
        "distinct_reporters[3d] >= 10 or not (device_registrations[1d] < 5)",
        "-(messages_sent[1h] - 2) / 3 * 1.5e2 >= -0.25",
    ];
    for (index, when) in whens.iter().enumerate() {
        write("rules", &format!("when-{index}"), when.as_bytes());
    }

    let edge = Edge::new(PseudonymKey::from_bytes([7; 32]), proviso::contract::Region(*b"IN"))
        .with_clock(proviso::clock::Clock::fixed(1_769_904_000_000));
    let mut records = Vec::new();
    for line in lines {
        if let Ok(event) = edge.accept_line_from(line.as_bytes(), Source::Service) {
            records.push(Record::Event(event));
        }
    }
    assert!(records.len() >= 12, "the seed lines are accepted");
    let who = Pseudonym::from_subject_id("s_0123456789abcdef0123456789abcdef").expect("subject id");
    for body in [
        ControlBody::RulesLoaded {
            text: whens[1].to_string(),
            lists: vec![("bad.txt".to_string(), "evil.example\n".to_string())],
        },
        ControlBody::Decision { subject: who, action: DecisionAction::from_code(0).expect("code 0"), note: "n".into() },
        ControlBody::BudgetSpent {
            advertiser: Some("acme".into()),
            business: "b_42".into(),
            day: 20_000,
            epsilon_micros: 500_000,
        },
        ControlBody::BudgetSpent { advertiser: None, business: "b_42".into(), day: 20_000, epsilon_micros: 1 },
        ControlBody::SecurityFeedGaps { partners: vec![("net".into(), vec![3, 7])] },
        ControlBody::BatchKeyed {
            key_digest: [9; 16],
            answer: proviso::contract::KeyedAnswer {
                accepted: 2,
                rejected: vec![proviso::contract::KeyedRejection {
                    line: 3,
                    reason: "content".into(),
                    error: "line 3: `text`".into(),
                }],
                request: Some([4; 16]),
            },
        },
    ] {
        records.push(Record::Control(Control { ts_ms: 1_767_607_200_000, body }));
    }
    let mut segment = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let mut payload = Vec::new();
        match record {
            Record::Event(event) => encode_event(event, &mut payload),
            Record::Control(control) => encode_control(control, &mut payload),
        }
        write("log_record", &format!("record-{index:02}"), &payload);
        proviso::log::frame(&payload, &mut segment);
    }
    write("log_record", "segment", &segment);

    let mut state = proviso::state::State::default();
    for (seq, record) in records.iter().enumerate() {
        state.apply(seq as u64, record);
    }
    let file = proviso::state::encode_snapshot(&state).expect("encodes");
    write("snapshot", "file", &file);
    // Body only (magic and crc32 added by the target): version 4, then 3.
    let body = &file[8..file.len() - 4];
    write("snapshot", "body-v4", &[[0].as_slice(), body].concat());
    write(
        "snapshot",
        "empty-v4",
        &[[0].as_slice(), &{
            let empty = proviso::state::encode_snapshot(&proviso::state::State::default()).expect("encodes");
            empty[8..empty.len() - 4].to_vec()
        }]
        .concat(),
    );

    let queries: [&[u8]; 10] = [
        b"\x00from=2026-01-01&to=2026-01-31&window=7&by=country",
        b"\x01from=2026-01-01&to=2026-01-31&by=kind",
        b"\x02status=review&after=10&limit=50&open=true",
        b"\x03after=5&limit=100",
        b"\x04limit=20",
        b"\x05days=30&noise=true",
        b"\x06days=7",
        b"\x07interval_ms=1000",
        b"\x08s_0123456789abcdef0123456789abcdef",
        b"\x09ads",
    ];
    for (index, query) in queries.iter().enumerate() {
        write("api_query", &format!("{index}"), query);
    }
}
