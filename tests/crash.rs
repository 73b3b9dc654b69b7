//! End-to-end durability: SIGKILL during ingest loses no acknowledged event,
//! and restart answers exactly what was answered before.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{day_name, ts, Server, ANALYST};

const BATCH: u64 = 200;

/// Batch `n`: BATCH sessions, each a distinct subject active on day n % 30.
fn batch(n: u64) -> String {
    (0..BATCH)
        .map(|i| {
            let subject = n * BATCH + i;
            format!(
                r#"{{"type":"session","ts":{},"phone":"+9198{:08}","device":"d"}}"#,
                ts((n % 30) as i64, i as i64),
                10_000_000 + subject
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn snapshot_of_answers(server: &Server) -> Vec<serde_json::Value> {
    let (from, to) = (day_name(0), day_name(29));
    let mut answers = Vec::new();
    for window in [1, 7, 30] {
        for by in ["", "&by=country", "&by=platform"] {
            let (status, body) =
                server.get(&format!("/v1/metrics/active?from={from}&to={to}&window={window}{by}"), Some(ANALYST));
            assert_eq!(status, 200);
            answers.push(body);
        }
    }
    answers.push(server.get(&format!("/v1/metrics/messages?from={from}&to={to}&by=kind"), Some(ANALYST)).1);
    answers.push(server.get("/healthz", None).1);
    answers
}

/// Streams batches and SIGKILLs the server mid-stream: after restart every
/// acknowledged batch is counted (at most the one batch in flight may be
/// there too), and per-day counts match exactly the batches present.
#[test]
fn sigkill_during_stream_loses_no_acknowledged_event() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Arc::new(Server::start(&data));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = {
        let (server, acked, stop) = (server.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = batch(n);
                let (status, _) =
                    server.post("/v1/events", Some(common::INGEST), "application/x-ndjson", body.as_bytes());
                if status != 200 {
                    break;
                }
                n += 1;
                acked.store(n, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 20 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL while the streamer is mid-request.
    let pid = server.child.id();
    let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    let acked_batches = acked.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    let _ = streamer.join();
    drop(server);

    let server = Server::start(&data);
    let events = server.get("/healthz", None).1["events"].as_u64().expect("events");
    assert!(events >= acked_batches * BATCH, "lost acknowledged events: {events} < {}", acked_batches * BATCH);
    assert!(events <= (acked_batches + 1) * BATCH, "more events than were sent");
    assert_eq!(events % BATCH, 0, "a batch is all-or-nothing");
    let present = events / BATCH;
    let (_, body) = server.get(&format!("/v1/metrics/active?from={}&to={}", day_name(0), day_name(29)), Some(ANALYST));
    for day in 0..30u64 {
        let expected = (0..present).filter(|n| n % 30 == day).count() as u64 * BATCH;
        assert_eq!(body["series"][day as usize]["active"].as_u64(), Some(expected), "day {day}");
    }
}

/// Answers before a SIGKILL equal answers after restart (log replay), after a
/// clean restart (snapshot plus replay), and after `proviso rebuild`.
#[test]
fn restart_answers_exactly_what_was_answered_before() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start(&data);
    for n in 0..10 {
        server.ingest(&batch(n));
    }
    server.ingest(
        r#"{"type":"register","ts":1767225600000,"phone":"+919810000001","device":"d","platform":"web"}
{"type":"message","ts":1767225600001,"phone":"+919810000001","to":"+919810000002","kind":"media"}"#,
    );
    let before = snapshot_of_answers(&server);
    let _ = server.kill();

    let server = Server::start(&data);
    assert_eq!(snapshot_of_answers(&server), before, "after SIGKILL and replay");
    server.ingest(&batch(10));
    let before = snapshot_of_answers(&server);
    let _ = server.stop();

    let server = Server::start(&data);
    assert_eq!(snapshot_of_answers(&server), before, "after clean stop (snapshot)");
    let _ = server.stop();

    let output = common::command().args(["rebuild", "--data"]).arg(&data).output().expect("rebuild");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("rebuilt state from 2202 log records"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let server = Server::start(&data);
    assert_eq!(snapshot_of_answers(&server), before, "after rebuild");
}
