//! End-to-end erasure: after `POST /v1/subjects/{s}/erase` the person is
//! gone from every state and output (metrics recomputed without them),
//! partners get retractions, and after compaction no byte of their
//! pseudonym or events remains anywhere in the data dir; they never return
//! on restart or rebuild.

mod common;

use std::process::Stdio;

use common::{command, files_under, Server, ANALYST, PARTNER, SUBJECT};
use proviso::edge::{Edge, PseudonymKey};
use serde_json::{json, Value};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const DAY_MS: i64 = 86_400_000;

fn phone(k: u32) -> String {
    format!("+9198766{k:05}")
}

fn day(ts: i64) -> String {
    let days = ts.div_euclid(DAY_MS);
    let date = time::Date::from_julian_day(2_440_588 + days as i32).expect("date");
    format!("{}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

fn start(data: &std::path::Path) -> Server {
    Server::start_with(data, &[("PROVISO_PSEUDONYM_KEY", KEY_HEX), ("PROVISO_ERASURE_COMPACTION_SECONDS", "0")])
}

fn active(server: &Server, on: &str) -> u64 {
    let (status, body) = server.get(&format!("/v1/metrics/active?from={on}&to={on}&window=1"), Some(ANALYST));
    assert_eq!(status, 200, "{body}");
    body["series"][0]["active"].as_u64().expect("count")
}

fn resolve(server: &Server, k: u32) -> (u16, Value) {
    let body = json!({ "phone": phone(k) }).to_string();
    server.post("/v1/subjects/resolve", Some(SUBJECT), "application/json", body.as_bytes())
}

/// Scans every file under the data dir for each needle.
fn traces(data: &std::path::Path, needles: &[&[u8]]) -> Vec<String> {
    let mut found = Vec::new();
    for path in files_under(data) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == *needle) {
                found.push(format!("{} holds {:?}", path.display(), String::from_utf8_lossy(needle)));
            }
        }
    }
    found
}

#[test]
fn erased_subjects_leave_no_trace_and_never_return() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = start(&data);
    let target = 1u32;
    let old = common::now_ms() - 40 * DAY_MS;
    let today = common::now_ms() - 60_000;
    let mut lines = Vec::new();
    for k in 0..6u32 {
        let p = phone(k);
        lines.push(format!(r#"{{"type":"register","ts":{old},"phone":"{p}","device":"dev{k}","platform":"ios"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{old},"phone":"{p}","partner_id":"fn-{k}"}}"#));
        lines.push(format!(r#"{{"type":"session","ts":{today},"phone":"{p}","device":"dev{k}"}}"#));
        // Everyone's book holds everyone else, the target included.
        let book: Vec<String> = (0..6).filter(|j| *j != k).map(phone).collect();
        lines.push(json!({"type": "contacts", "ts": old, "phone": p, "contacts": book}).to_string());
    }
    let t = phone(target);
    lines.push(format!(r#"{{"type":"message","ts":{today},"phone":"{t}","to":"{}","kind":"text"}}"#, phone(2)));
    lines.push(format!(r#"{{"type":"message","ts":{today},"phone":"{}","to":"{t}","kind":"voice"}}"#, phone(3)));
    lines.push(format!(r#"{{"type":"report","ts":{today},"phone":"{}","target":"{t}","reason":"spam"}}"#, phone(4)));
    lines.push(format!(
        r#"{{"type":"business_message","ts":{today},"phone":"{t}","business":"shop","direction":"out"}}"#
    ));
    lines.push(format!(r#"{{"type":"consent","ts":{today},"phone":"{t}","purpose":"ads","granted":true}}"#));
    assert_eq!(server.ingest(&lines.join("\n"))["rejected"], json!([]));

    // Disclose the target to the partner: suggested to person 0.
    let (_, suggestions) = server.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    assert!(suggestions.to_string().contains("fn-1"), "{suggestions}");
    let today_name = day(today);
    let before = active(&server, &today_name);
    assert_eq!(before, 6);
    let (status, resolved) = resolve(&server, target);
    assert_eq!(status, 200);
    let subject = resolved["subject"].as_str().expect("subject").to_string();

    let edge = Edge::new(PseudonymKey::from_hex(KEY_HEX).expect("key"), proviso::contract::Region(*b"US"));
    let (pseudonym, _) = edge.resolve_phone(&t, None).expect("phone");
    assert!(!traces(&data, &[pseudonym.as_bytes()]).is_empty(), "the log holds the pseudonym before erasure");

    let (_, feed) = server.get("/v1/partners/friendnet/feeds/product", Some(PARTNER));
    let added = feed["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["suggested"] == "fn-1")
        .and_then(|r| r["cursor"].as_u64())
        .expect("the target was suggested");
    let (status, erased) =
        server.post(&format!("/v1/subjects/{subject}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["compacted"], true, "{erased}");

    // Gone from every output.
    assert_eq!(resolve(&server, target).0, 404);
    assert_eq!(server.get(&format!("/v1/subjects/{subject}/report"), Some(SUBJECT)).0, 404);
    assert_eq!(active(&server, &today_name), before - 1, "metrics recomputed without them");
    let (_, messages) = server.get(&format!("/v1/metrics/messages?from={today_name}&to={today_name}"), Some(ANALYST));
    assert_eq!(messages["series"][0]["messages"], 1, "their own message is gone: {messages}");
    let (_, again) = server.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    assert!(!again.to_string().contains("fn-1"), "{again}");
    let (_, feed) = server.get("/v1/partners/friendnet/feeds/product", Some(PARTNER));
    let retracted: Vec<&Value> =
        feed["records"].as_array().expect("records").iter().filter(|r| r["op"] == "retract").collect();
    assert!(retracted.iter().any(|r| r["retracts"] == added && r["reason"] == "deleted"), "{feed}");
    assert!(!feed.to_string().contains("fn-1"), "read from cursor 0, the feed names them nowhere: {feed}");

    // No byte of the pseudonym, its subject id, the number, or their partner
    // account id anywhere (feeds included; the audit log keeps `r_` handles
    // of a secret that was destroyed).
    let digits = t.trim_start_matches('+').to_string();
    let needles: [&[u8]; 4] = [pseudonym.as_bytes(), subject.as_bytes(), digits.as_bytes(), b"\"fn-1\""];
    let found = traces(&data, &needles);
    assert!(found.is_empty(), "{found:#?}");

    // Never returns: not after a restart, not after a rebuild.
    server.stop();
    let output = command()
        .args(["rebuild", "--data"])
        .arg(&data)
        .env("PROVISO_PSEUDONYM_KEY", KEY_HEX)
        .stdin(Stdio::null())
        .output()
        .expect("rebuild");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let server = start(&data);
    assert_eq!(resolve(&server, target).0, 404);
    assert_eq!(active(&server, &today_name), before - 1);
    assert!(traces(&data, &needles).is_empty());
    // The others are intact: person 3 still sent their message.
    assert_eq!(resolve(&server, 3).0, 200);
    server.stop();
}

/// Sends one raw HTTP/1.1 request to the server at `base` and returns its status line,
/// or `None` when no answer came within `wait`.
fn raw_status(base: &str, method: &str, path: &str, token: &str, wait: std::time::Duration) -> Option<String> {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(_) if answer.is_empty() => return None,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&answer).lines().next().map(str::to_string)
}

/// While an erasure's compaction swaps its new log in (held there by a
/// failpoint that never lets go), queries still answer: the state's write
/// lock is taken only to replace the state, after the swap. (Held under the
/// write lock, as an earlier proviso did, the query got no answer.)
#[test]
fn queries_answer_while_an_erasure_rewrites_the_log() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start_with(
        &data,
        &[
            ("PROVISO_PSEUDONYM_KEY", KEY_HEX),
            ("PROVISO_ERASURE_COMPACTION_SECONDS", "0"),
            ("PROVISO_FAILPOINTS", "compact.before_swap=pause"),
        ],
    );
    let now = common::now_ms();
    let lines: Vec<String> =
        (0..3).map(|k| format!(r#"{{"type":"session","ts":{now},"phone":"{}","device":"d{k}"}}"#, phone(k))).collect();
    assert_eq!(server.ingest(&lines.join("\n"))["accepted"], 3);
    let on = day(now);
    assert_eq!(active(&server, &on), 3);
    let subject = server.subject(&phone(1));
    // The erasure waits for its compaction (a zero bound), which pauses.
    let erase = format!("/v1/subjects/{subject}/erase");
    let eraser = {
        let base = server.base.clone();
        std::thread::spawn(move || raw_status(&base, "POST", &erase, SUBJECT, std::time::Duration::from_secs(60)))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.stderr().contains("failpoint compact.before_swap: pause") {
        assert!(std::time::Instant::now() < deadline, "the compaction never reached the swap:\n{}", server.stderr());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let query = format!("/v1/metrics/active?from={on}&to={on}&window=1");
    let status = raw_status(&server.base, "GET", &query, ANALYST, std::time::Duration::from_secs(10));
    assert!(status.as_deref().is_some_and(|line| line.contains(" 200 ")), "no answer during the rewrite: {status:?}");
    drop(server);
    let _ = eraser.join();
}

/// An erasure's compaction no longer holds the writer: with a compaction
/// held inside its rewrite of the log's copy (a failpoint that never lets
/// go), batches are still acknowledged and answered, the erasure included;
/// a `kill -9` there loses none of them, and the next start compacts the
/// person away with every batch acknowledged meanwhile still counted. (With
/// the compaction on the writer, as before, the second batch got no answer.)
#[test]
fn batches_are_acknowledged_while_an_erasure_is_compacted_and_a_crash_there_loses_none() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let env = [("PROVISO_PSEUDONYM_KEY", KEY_HEX), ("PROVISO_ERASURE_COMPACTION_SECONDS", "1")];
    let held = [env[0], env[1], ("PROVISO_FAILPOINTS", "compact.rebuild=pause")];
    let server = Server::start_with(&data, &held);
    let now = common::now_ms();
    let sessions = |ks: std::ops::Range<u32>| -> String {
        ks.map(|k| format!(r#"{{"type":"session","ts":{now},"phone":"{}","device":"d{k}"}}"#, phone(k)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(server.ingest(&sessions(0..3))["accepted"], 3);
    let on = day(now);
    let target = server.subject(&phone(1));
    let (status, erased) = server.post(&format!("/v1/subjects/{target}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!(status, 200, "{erased}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.stderr().contains("failpoint compact.rebuild: pause") {
        assert!(std::time::Instant::now() < deadline, "the compaction never started:\n{}", server.stderr());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The compaction is under way, held: the writer still commits.
    assert_eq!(server.ingest(&sessions(10..14))["accepted"], 4);
    assert_eq!(active(&server, &on), 6, "two of the first three and the four since");
    let edge = Edge::new(PseudonymKey::from_hex(KEY_HEX).expect("key"), proviso::contract::Region(*b"US"));
    let (pseudonym, _) = edge.resolve_phone(&phone(1), None).expect("phone");
    assert!(!traces(&data, &[pseudonym.as_bytes()]).is_empty(), "not compacted yet: the log still holds them");
    assert_eq!(erasures_pending(&server).as_deref(), Some("1"), "the gauge counts the erasure under way");
    server.kill();

    let server = Server::start_with(&data, &env);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server.stderr().contains("Log compacted") {
        assert!(std::time::Instant::now() < deadline, "no compaction after the restart:\n{}", server.stderr());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(active(&server, &on), 6, "every acknowledged batch is there once");
    assert!(
        server.stderr().contains("snapshot_by=\"compaction\""),
        "the compaction's thread wrote the snapshot:\n{}",
        server.stderr()
    );
    let found = traces(&data, &[pseudonym.as_bytes()]);
    assert!(found.is_empty(), "{found:#?}");
    for leftover in ["log.new", "log.compact-source", "log.old", "state/snapshot.compacted.bin"] {
        assert!(!data.join(leftover).exists(), "{leftover} left behind");
    }
    // The old log is removed beside the writer, right after the swap.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while data.join("log.removing").exists() {
        assert!(std::time::Instant::now() < deadline, "the old log was never removed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The gauge is set by the writer's next round, right after the log line.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while erasures_pending(&server).as_deref() != Some("0") {
        assert!(std::time::Instant::now() < deadline, "still pending: {:?}", erasures_pending(&server));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `proviso_erasures_pending` as `/metrics` renders it.
fn erasures_pending(server: &Server) -> Option<String> {
    let (_, metrics) = server.get_text("/metrics");
    metrics.lines().find_map(|line| line.strip_prefix("proviso_erasures_pending ")).map(|v| v.trim().to_string())
}

/// The gauge `proviso_erasures_pending` counts an erasure before the
/// erasure is answered: a client that erases and then waits for the gauge
/// to read 0 (as the crash test does) never reads the 0 of before. The
/// writer is held right after answering the erasure (failpoint
/// `writer.after_ack`, at its second group): with the gauge set only at
/// the writer's next round, it read 0 here.
#[test]
fn the_pending_gauge_counts_an_erasure_before_it_is_answered() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let env = [
        ("PROVISO_PSEUDONYM_KEY", KEY_HEX),
        ("PROVISO_ERASURE_COMPACTION_SECONDS", "60"),
        ("PROVISO_FAILPOINTS", "writer.after_ack=pause@2"),
    ];
    let server = Server::start_with(&data, &env);
    let now = common::now_ms();
    let batch = format!(r#"{{"type":"session","ts":{now},"phone":"{}","device":"d"}}"#, phone(1));
    assert_eq!(server.ingest(&batch)["accepted"], 1);
    assert_eq!(erasures_pending(&server).as_deref(), Some("0"), "nothing erased yet");
    let target = server.subject(&phone(1));
    let (status, erased) = server.post(&format!("/v1/subjects/{target}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["compacted"], false, "{erased}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.stderr().contains("failpoint writer.after_ack: pause") {
        assert!(std::time::Instant::now() < deadline, "the writer never paused:\n{}", server.stderr());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(erasures_pending(&server).as_deref(), Some("1"), "the erasure is counted once it is answered");
}
