//! Long work over the whole log reports its progress: `proviso rebuild` and
//! `proviso compact` draw their bars from what the library reports, so the
//! reports must cover the log, in order, step by step, and end at its last
//! record.

mod common;

use std::cell::RefCell;
use std::process::Stdio;

use common::command;

fn run(args: &[&str]) -> std::process::Output {
    command().args(args).stdin(Stdio::null()).output().expect("run proviso")
}

/// Every report of one step, in order: (step, sequence reached).
fn reports_of(reports: &[(&'static str, u64)], step: &str) -> Vec<u64> {
    reports.iter().filter(|(name, _)| *name == step).map(|&(_, seq)| seq).collect()
}

fn assert_covers(seqs: &[u64], last: u64, what: &str) {
    assert!(!seqs.is_empty(), "{what}: no report");
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{what}: reports go forward: {seqs:?}");
    assert_eq!(*seqs.last().expect("one"), last, "{what}: the last report is the last record");
    let every = proviso::pipeline::PROGRESS_EVERY;
    assert_eq!(
        seqs.len() as u64,
        last / every + 1 + u64::from(!last.is_multiple_of(every)),
        "{what}: one every {every} and the end"
    );
}

fn last_seq(data: &std::path::Path) -> u64 {
    let log = proviso::log::Log::open(&data.join(proviso::pipeline::LOG_DIR), 1 << 28).expect("open log");
    log.next_seq() - 1
}

#[test]
fn rebuild_and_compaction_report_each_step_up_to_the_last_record() {
    let temp = tempfile::tempdir().expect("tempdir");
    let events = temp.path().join("events.ndjson");
    let data = temp.path().join("data");
    let (events_arg, data_arg) = (events.to_str().expect("utf8"), data.to_str().expect("utf8"));
    let output = run(&[
        "simulate",
        "--seed",
        "5",
        "--subjects",
        "2000",
        "--days",
        "5",
        "--events",
        "30000",
        "--start",
        "2026-03-01",
        "--out",
        events_arg,
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = run(&["ingest", events_arg, "--data", data_arg]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let before = last_seq(&data);
    assert!(before > 3 * proviso::pipeline::PROGRESS_EVERY, "a log of several reports: {before}");
    let reports = RefCell::new(Vec::new());
    let progress = |step, seq| reports.borrow_mut().push((step, seq));
    proviso::pipeline::rebuild_state_reporting(&data, false, &progress).expect("rebuild");
    let rebuilt = reports.take();
    assert!(rebuilt.iter().all(|(step, _)| *step == "replaying the log"), "{rebuilt:?}");
    assert_covers(&reports_of(&rebuilt, "replaying the log"), before, "rebuild");

    // One person deleted: the compaction's two passes, in that order.
    let first = std::fs::read_to_string(&events).expect("events");
    let phone = first
        .lines()
        .next()
        .and_then(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .and_then(|line| line["phone"].as_str().map(str::to_string))
        .expect("a first sender");
    let erase = temp.path().join("erase.ndjson");
    std::fs::write(
        &erase,
        format!("{{\"type\":\"delete_account\",\"ts\":\"2026-03-06T00:00:00Z\",\"phone\":\"{phone}\"}}\n"),
    )
    .expect("write");
    let output = run(&["ingest", erase.to_str().expect("utf8"), "--data", data_arg]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let before = last_seq(&data);
    let report = proviso::pipeline::compact_log_reporting(&data, 1 << 28, &[], &progress).expect("compact");
    assert!(report.erased_subjects >= 1, "the person deleted (and any the simulator deleted)");
    let compacted = reports.take();
    let steps: Vec<&str> = compacted.iter().map(|(step, _)| *step).collect();
    let switch = steps.iter().position(|step| *step == "writing the new log").expect("a second pass");
    assert!(steps[..switch].iter().all(|step| *step == "finding the erased"), "{steps:?}");
    assert!(steps[switch..].iter().all(|step| *step == "writing the new log"), "{steps:?}");
    assert_covers(&reports_of(&compacted, "finding the erased"), before, "compaction's first pass");
    assert_covers(&reports_of(&compacted, "writing the new log"), before, "compaction's second pass");
}
