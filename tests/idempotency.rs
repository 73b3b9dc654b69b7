//! Exactly once from a client that retries (issue 13): a batch resent with
//! the `Idempotency-Key` it was first sent with is not applied again and
//! gets the first answer back, across restarts, `kill -9`, and a crash
//! between the fsync and the acknowledgement.

mod common;

use common::{day_name, ts, Server, ANALYST, INGEST};
use serde_json::Value;

/// Three messages on day 0 from one sender (`n` makes each batch's sender
/// distinct) and one line the edge rejects.
fn batch(n: u64) -> String {
    let mut lines: Vec<String> = (0..3)
        .map(|i| {
            format!(
                r#"{{"type":"message","ts":{},"phone":"+91981{:07}","to":"+919899999999","kind":"text"}}"#,
                ts(0, i),
                n
            )
        })
        .collect();
    lines.push(r#"{"type":"message","ts":1767225600000,"phone":"+919810000001","surprise":1}"#.to_string());
    lines.join("\n")
}

/// Messages counted on day 0.
fn messages(server: &Server) -> u64 {
    let day = day_name(0);
    let (status, body) = server.get(&format!("/v1/metrics/messages?from={day}&to={day}"), Some(ANALYST));
    assert_eq!(status, 200, "{body}");
    body["series"][0]["messages"].as_u64().unwrap_or_else(|| panic!("no count: {body}"))
}

fn send(server: &Server, key: Option<&str>, body: &str) -> Value {
    let (status, answer) = server.try_post_events(INGEST, key, body.as_bytes()).expect("an answer");
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The same key twice: the second answer equals the first (accepted count
/// and rejected lines) and the messages count once; a new key applies again.
#[test]
fn same_key_twice_is_applied_once_and_answered_the_same() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let first = send(&server, Some("batch-0001"), &batch(1));
    assert_eq!(first["accepted"], 3, "{first}");
    assert_eq!(first["rejected"].as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(messages(&server), 3);

    let again = send(&server, Some("batch-0001"), &batch(1));
    assert_eq!(again, first, "a resend gets the first answer");
    assert_eq!(messages(&server), 3, "a resend is not applied again");

    let other = send(&server, Some("batch-0002"), &batch(1));
    assert_eq!(other, first);
    assert_eq!(messages(&server), 6, "another key is another batch");

    let unkeyed = send(&server, None, &batch(1));
    assert_eq!(unkeyed, first);
    assert_eq!(messages(&server), 9, "without a key every request is applied");
}

/// Concurrent resends with one key: however the requests interleave (in the
/// handler or inside one group commit), the batch is applied once and every
/// request gets the same answer.
#[test]
fn concurrent_requests_with_one_key_apply_it_once() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = std::sync::Arc::new(Server::start(&temp.path().join("data")));
    let answers: Vec<Value> = (0..8)
        .map(|_| {
            let server = server.clone();
            std::thread::spawn(move || send(&server, Some("same-key"), &batch(7)))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().expect("thread"))
        .collect();
    assert!(answers.iter().all(|answer| *answer == answers[0]), "{answers:?}");
    assert_eq!(messages(&server), 3);
}

/// A key is remembered after a clean stop (snapshot) and after `kill -9`
/// once the 200 was received (log replay).
#[test]
fn key_survives_restart_and_kill() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let first = send(&server, Some("before-stop"), &batch(1));
    let _ = server.stop();

    let server = Server::start(&data);
    assert_eq!(send(&server, Some("before-stop"), &batch(1)), first);
    assert_eq!(messages(&server), 3, "not applied again after a clean restart");
    let second = send(&server, Some("before-kill"), &batch(2));
    assert_eq!(messages(&server), 6);
    let _ = server.kill();

    let server = Server::start(&data);
    assert_eq!(send(&server, Some("before-kill"), &batch(2)), second);
    assert_eq!(send(&server, Some("before-stop"), &batch(1)), first);
    assert_eq!(messages(&server), 6, "not applied again after kill -9 and replay");
    let _ = server.stop();

    // And once more from the snapshot the clean stop just wrote.
    let server = Server::start(&data);
    assert_eq!(send(&server, Some("before-kill"), &batch(2)), second);
    assert_eq!(messages(&server), 6);
}

/// A different body under a used key is a client bug, not a resend: 422
/// `idempotency_key_reused`, nothing applied, and the same after a `kill -9`
/// (log replay) and a clean restart (snapshot); the first body is still
/// answered as a resend.
#[test]
fn a_different_body_under_a_used_key_is_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let first = send(&server, Some("mine"), &batch(1));
    let check = |server: &Server| {
        let (status, body) = server.try_post_events(INGEST, Some("mine"), batch(2).as_bytes()).expect("an answer");
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "idempotency_key_reused", "{body}");
        assert_eq!(messages(server), 3, "nothing applied");
        assert_eq!(send(server, Some("mine"), &batch(1)), first, "the first body is still a resend");
    };
    check(&server);
    let _ = server.kill();
    let server = Server::start(&data);
    check(&server);
    let _ = server.stop();
    let server = Server::start(&data);
    check(&server);
}

/// The crash window itself: the batch is on disk but the server dies before
/// answering (a debug-build hook exits right after the fsync). The client
/// saw no answer and resends; the resend is answered, not applied twice.
#[test]
fn batch_written_but_not_acknowledged_is_not_applied_twice() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let mut server = Server::start_with(&data, &[("PROVISO_FAILPOINTS", "writer.before_ack=exit")]);
    let lost = server.try_post_events(INGEST, Some("crash-window"), batch(3).as_bytes());
    assert!(lost.is_err(), "the server must die before answering: {lost:?}");
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(86), "exited by the hook: {}", server.stderr());
    drop(server);

    let server = Server::start(&data);
    assert_eq!(messages(&server), 3, "the batch was durable before the crash");
    let answer = send(&server, Some("crash-window"), &batch(3));
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["rejected"].as_array().map(Vec::len), Some(1), "{answer}");
    assert_eq!(messages(&server), 3, "the resend is not applied again");
}

/// A key that is empty, too long or not visible ASCII gets 400
/// `invalid_idempotency_key` with the standard body, never quoting the key,
/// and nothing is applied.
#[test]
fn invalid_key_is_refused_without_echo() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let long = "k".repeat(256);
    for key in ["", "has space 4155552671", "tab\there", long.as_str()] {
        let (status, body) = server.try_post_events(INGEST, Some(key), batch(1).as_bytes()).expect("an answer");
        assert_eq!(status, 400, "{key:?}: {body}");
        assert_eq!(body["code"], "invalid_idempotency_key", "{body}");
        assert_eq!(body["type"], "invalid_request", "{body}");
        let object = body.as_object().expect("object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "message", "type"]);
        let message = body["message"].as_str().expect("message");
        if !key.is_empty() {
            assert!(!message.contains(key), "the key is echoed: {message}");
        }
        assert!(!message.contains("4155552671") && !message.contains("kkkkk"), "{message}");
    }
    let longest = "k".repeat(255);
    assert_eq!(send(&server, Some(&longest), &batch(1))["accepted"], 3, "255 visible characters are accepted");
    assert_eq!(messages(&server), 3, "only the valid request was applied");
}

/// Keys are per caller: another token sending the same key is another
/// batch, applied and answered on its own.
#[test]
fn same_key_from_another_token_is_another_batch() {
    const SECOND: &str = "test-second-ingest-token-0123456789";
    let temp = tempfile::tempdir().expect("tempdir");
    let tokens = format!("[[tokens]]\nname = \"second-ingest\"\nrole = \"ingest\"\ntoken = \"{SECOND}\"\n");
    let server = Server::start_with_config(&temp.path().join("data"), &[], &tokens);
    let first = send(&server, Some("shared-key"), &batch(1));
    let (status, other) = server.try_post_events(SECOND, Some("shared-key"), batch(2).as_bytes()).expect("answer");
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["accepted"], 3, "{other}");
    assert_eq!(messages(&server), 6, "two callers, two batches");
    assert_eq!(send(&server, Some("shared-key"), &batch(1)), first);
    assert_eq!(messages(&server), 6);
}

/// `proviso simulate --server` resends a batch that got no answer with the
/// key it first sent: the server dies after writing the first batch and
/// before answering, comes back on the same port, and every simulated event
/// is applied exactly once.
/// A crash that tears the group's write (half its bytes on disk, as power
/// loss mid-`write` leaves it): the batch's first records are complete on
/// disk but its key record is not. The group marker drops the group whole,
/// so the resend applies the batch once, not its first records twice.
#[test]
fn a_torn_group_is_dropped_whole_and_the_resend_applies_once() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start(&data);
    send(&server, Some("before"), &batch(1));
    drop(server);

    let mut server = Server::start_with(&data, &[("PROVISO_FAILPOINTS", "log.write=torn")]);
    let big: String = (2..40).map(batch).collect::<Vec<_>>().join("\n");
    let lost = server.try_post_events(INGEST, Some("torn"), big.as_bytes());
    assert!(lost.is_err(), "the server must die mid-write: {lost:?}");
    assert_eq!(server.child.wait().expect("wait").code(), Some(86), "{}", server.stderr());
    drop(server);

    let server = Server::start(&data);
    assert_eq!(messages(&server), 3, "none of the torn group is kept");
    let answer = send(&server, Some("torn"), &big);
    assert_eq!(answer["accepted"], 38 * 3, "{answer}");
    assert_eq!(messages(&server), 3 + 38 * 3);
    assert_eq!(send(&server, Some("torn"), &big), answer, "a second resend is answered, not applied");
    assert_eq!(messages(&server), 3 + 38 * 3);
}

#[test]
fn simulate_resends_an_unanswered_batch_with_its_key() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start_listening(&data, &listen, &[("PROVISO_FAILPOINTS", "writer.before_ack=exit")], "");
    let simulate = common::command()
        .args(["simulate", "--subjects", "50", "--events", "600", "--days", "2", "--batch", "100", "--server"])
        .arg(&server.base)
        .args(["--token", INGEST])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn simulate");
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(86), "exited by the hook after the first batch: {}", server.stderr());
    drop(server);

    let server = Server::start_listening(&data, &listen, &[], "");
    let output = simulate.wait_with_output().expect("simulate");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "simulate failed: {report}");
    assert!(report.contains("resending the batch with the same Idempotency-Key"), "{report}");
    // "streamed {sent} events: {accepted} accepted, ..."
    let number_after = |marker: &str| -> u64 {
        report
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count after {marker:?} in: {report}"))
    };
    let (sent, accepted) = (number_after("streamed "), number_after("events: "));
    assert!(accepted > 0, "{report}");
    // The log holds each accepted event and one key record per batch.
    let batches = sent.div_ceil(100);
    let records = server.get("/healthz", None).1["events"].as_u64().expect("log records");
    assert_eq!(records, accepted + batches, "each simulated batch applied once: {report}");
}
