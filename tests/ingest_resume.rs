//! `proviso ingest` resumed after a crash (issue 13): each chunk is logged
//! with an idempotency key, so `--resume` skips what is already in the log
//! and the data dir ends exactly as one clean run leaves it.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::command;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run proviso")
}

fn ok_json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("json")
}

/// Writes a simulated input with some lines the edge rejects (content), so
/// skipped chunks must report their rejections too.
fn input(dir: &Path) -> (String, u64, u64) {
    let output = run(&["simulate", "--subjects", "400", "--events", "6000", "--days", "4", "--seed", "31"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut text = String::new();
    let (mut good, mut bad) = (0, 0);
    for (i, line) in String::from_utf8(output.stdout).expect("utf8").lines().enumerate() {
        text.push_str(line);
        text.push('\n');
        good += 1;
        if i % 500 == 0 {
            text.push_str(r#"{"type":"message","ts":"2026-01-02T10:00:00Z","phone":"+919812345678","body":"hi"}"#);
            text.push('\n');
            bad += 1;
        }
    }
    let path = dir.join("events.ndjson");
    std::fs::write(&path, text).expect("write input");
    (path.to_str().expect("utf8").to_string(), good, bad)
}

/// Everything the data dir answers about usage, for comparing two dirs.
fn answers(data: &str) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for query in [&["messages", "--by", "kind"][..], &["active"][..], &["active", "--window", "7"][..]] {
        let mut args = vec!["query"];
        args.extend_from_slice(query);
        args.extend_from_slice(&["--data", data, "--from", "2026-01-01", "--to", "2026-01-05", "--json"]);
        all.push(ok_json(&run(&args, &[])));
    }
    all
}

#[test]
fn ingest_killed_midway_then_resumed_equals_one_clean_run() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (file, good, bad) = input(temp.path());
    let chunk = ["--chunk-bytes", "32768"];

    let clean = temp.path().join("clean");
    let clean = clean.to_str().expect("utf8");
    let once = ok_json(&run(&[&["ingest", &file, "--data", clean, "--json"][..], &chunk].concat(), &[]));
    assert_eq!(once["accepted"].as_u64(), Some(good), "{once}");
    assert_eq!(once["rejected"].as_u64(), Some(bad), "{once}");

    // The writer dies after applying the 4th chunk's group, before answering.
    let data = temp.path().join("data");
    let data = data.to_str().expect("utf8");
    let crashed = run(
        &[&["ingest", &file, "--data", data, "--json", "--workers", "1"][..], &chunk].concat(),
        &[("PROVISO_FAILPOINTS", "writer.before_ack=exit@4")],
    );
    assert_eq!(crashed.status.code(), Some(86), "{}", String::from_utf8_lossy(&crashed.stderr));

    // Run again as it was: refused, nothing loaded twice.
    let refused = run(&[&["ingest", &file, "--data", data, "--json"][..], &chunk].concat(), &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("already ingested") && stderr.contains("--resume"), "{stderr}");

    let resumed = ok_json(&run(&[&["ingest", &file, "--data", data, "--json", "--resume"][..], &chunk].concat(), &[]));
    assert!(resumed["skipped_chunks"].as_u64().is_some_and(|n| n >= 4), "{resumed}");
    assert_eq!(resumed["accepted"], once["accepted"], "skipped chunks count what they held: {resumed}");
    assert_eq!(resumed["rejected"], once["rejected"], "{resumed}");
    assert_eq!(resumed["rejected_by_reason"], once["rejected_by_reason"], "{resumed}");
    assert_eq!(answers(data), answers(clean), "resumed = one clean run");

    // Resuming a finished ingest applies nothing.
    let again = ok_json(&run(&[&["ingest", &file, "--data", data, "--json", "--resume"][..], &chunk].concat(), &[]));
    assert_eq!(again["skipped_events"], once["accepted"], "{again}");
    assert_eq!(answers(data), answers(clean));
}

#[test]
fn again_loads_an_input_a_second_time() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (file, good, _) = input(temp.path());
    let data = temp.path().join("data");
    let data = data.to_str().expect("utf8");
    ok_json(&run(&["ingest", &file, "--data", data, "--json"], &[]));
    let messages = |data: &str| -> u64 {
        let body = ok_json(&run(
            &["query", "messages", "--data", data, "--from", "2026-01-01", "--to", "2026-01-05", "--json"],
            &[],
        ));
        body["series"].as_array().expect("series").iter().map(|day| day["messages"].as_u64().unwrap_or(0)).sum()
    };
    let first = messages(data);
    assert!(first > 0);
    let twice = ok_json(&run(&["ingest", &file, "--data", data, "--json", "--again"], &[]));
    assert_eq!(twice["accepted"].as_u64(), Some(good), "{twice}");
    assert_eq!(twice["skipped_chunks"], 0, "{twice}");
    assert_eq!(messages(data), 2 * first, "--again counts the input twice");
}

/// Chunks parsed by several workers, finished out of order, still reach the
/// log in file order: one person's consent flips back and forth at one
/// timestamp across hundreds of small chunks, interleaved with simulated
/// traffic, and the report (consent history included) is the same as one
/// worker's, whose state is the file's last word.
#[test]
fn chunks_finished_out_of_order_reach_the_log_in_file_order() {
    let temp = tempfile::tempdir().expect("tempdir");
    let output = run(&["simulate", "--subjects", "200", "--events", "3000", "--days", "4", "--seed", "37"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let simulated = String::from_utf8(output.stdout).expect("utf8");
    let mut text = String::new();
    let mut last_granted = false;
    for (index, line) in simulated.lines().enumerate() {
        text.push_str(line);
        text.push('\n');
        if index % 5 == 0 {
            // Every few lines a flip, all at the same time: only the order
            // in the log tells which one holds.
            last_granted = (index / 5) % 3 == 0;
            text.push_str(&format!(
                r#"{{"type":"consent","ts":"2026-01-02T10:00:00Z","phone":"+14155550142","purpose":"ads","granted":{last_granted}}}"#
            ));
            text.push('\n');
        }
    }
    let path = temp.path().join("events.ndjson");
    std::fs::write(&path, text).expect("write input");
    let file = path.to_str().expect("utf8");
    let report = |workers: &str, round: u32| {
        let data = temp.path().join(format!("data-{workers}-{round}"));
        let data = data.to_str().expect("utf8");
        // One key, so both data dirs name the person alike.
        let key = [("PROVISO_PSEUDONYM_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")];
        let args = ["ingest", file, "--data", data, "--json", "--workers", workers, "--chunk-bytes", "2048"];
        ok_json(&run(&args, &key));
        let report = ok_json(&run(&["report", "--phone", "+14155550142", "--data", data], &key));
        report["consent"].clone()
    };
    let one = report("1", 0);
    assert!(one.to_string().contains(if last_granted { "granted" } else { "denied" }), "{one}");
    for round in 0..3 {
        assert_eq!(report("4", round), one, "four workers logged the chunks in another order");
    }
}
