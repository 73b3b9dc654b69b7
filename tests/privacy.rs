//! End-to-end privacy invariants: no number and no content survives anywhere.

mod common;

use common::{files_under, Server, ANALYST, INGEST, SUBJECT};

/// Distinctive numbers, each written in several forms; the needles are the
/// digit runs that must never appear (E.164 digits and national digits).
const NUMBERS: &[(&str, &str, &str)] = &[
    // (E.164, a national written form with country IN, national digits)
    ("+919876501234", "098765 01234", "9876501234"),
    ("+919876598765", "09876598765", "9876598765"),
    ("+5511976543210", "+55 11 97654-3210", "11976543210"),
];
/// A fixed key makes pseudonyms (and so subject ids) deterministic, so a
/// random hex id can never flake the digit scan.
const KEY: (&str, &str) = ("PROVISO_PSEUDONYM_KEY", "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd");
const CONTENT_CANARY: &str = "CANARY-8e1f-secret-words";
const INVALID_CANARY: &str = "+91 11223 3445";

fn needles() -> Vec<String> {
    let mut needles = vec![CONTENT_CANARY.to_string(), "1122334".to_string()];
    for (e164, written, national) in NUMBERS {
        needles.push(e164.trim_start_matches('+').to_string());
        needles.push(national.to_string());
        needles.push(written.to_string());
    }
    needles
}

fn assert_clean(what: &str, haystack: &[u8]) {
    for needle in needles() {
        let found = haystack.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "{what} contains `{needle}`");
    }
}

/// After ingesting distinctive numbers (in every phone-valued field, in
/// several written forms) and a rejected content canary, none of them appears
/// in any file of the data dir, in the server's debug log, or in any response,
/// across a clean restart (snapshot) and a replay.
#[test]
fn numbers_and_content_never_reach_disk_logs_or_responses() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start_with(&data, &[KEY]);
    let (a, b, c) = (NUMBERS[0], NUMBERS[1], NUMBERS[2]);
    let lines = [
        format!(
            r#"{{"type":"register","ts":1767607200000,"phone":"{}","country":"IN","device":"d1","platform":"ios"}}"#,
            a.1
        ),
        format!(r#"{{"type":"message","ts":1767607200001,"phone":"{}","to":"{}","kind":"text"}}"#, a.0, b.0),
        format!(
            r#"{{"type":"contacts","ts":1767607200002,"phone":"{}","country":"IN","contacts":["{}","{}","{}"]}}"#,
            b.1, a.1, c.1, b.0
        ),
        format!(r#"{{"type":"report","ts":1767607200003,"phone":"{}","target":"{}","reason":"spam"}}"#, c.1, a.0),
        format!(r#"{{"type":"block","ts":1767607200004,"phone":"{}","target":"{}"}}"#, c.0, b.0),
        format!(
            r#"{{"type":"message","ts":1767607200005,"phone":"{}","to":"{}","kind":"text","text":"{CONTENT_CANARY}"}}"#,
            a.0, b.0
        ),
        format!(
            r#"{{"type":"message","ts":1767607200006,"phone":"{}","group":"g1","kind":"text","caption":"{CONTENT_CANARY}"}}"#,
            a.0
        ),
        format!(
            r#"{{"type":"message","ts":1767607200007,"phone":"{}","to":"{}","kind":"text","link_domain":"https://x.com/{CONTENT_CANARY}"}}"#,
            a.0, b.0
        ),
        format!(r#"{{"type":"session","ts":1767607200008,"phone":"{INVALID_CANARY}","device":"d9"}}"#),
        format!(
            r#"{{"type":"report","ts":1767607200009,"phone":"{}","target":"{}","reason":"{CONTENT_CANARY} free text"}}"#,
            a.0, b.0
        ),
    ];
    let mut responses = Vec::new();
    let response = server.ingest(&lines.join("\n"));
    assert_eq!(response["accepted"], 5, "{response}");
    assert_eq!(response["rejected"].as_array().map(Vec::len), Some(5));
    responses.push(response.to_string());

    for (e164, _, _) in NUMBERS {
        let (status, body) = server.post(
            "/v1/subjects/resolve",
            Some(SUBJECT),
            "application/json",
            serde_json::json!({"phone": e164}).to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        let subject = body["subject"].as_str().expect("subject").to_string();
        responses.push(body.to_string());
        responses.push(server.get(&format!("/v1/subjects/{subject}/consent"), Some(SUBJECT)).1.to_string());
    }
    let (status, body) = server.post(
        "/v1/subjects/resolve",
        Some(SUBJECT),
        "application/json",
        serde_json::json!({"phone": INVALID_CANARY}).to_string().as_bytes(),
    );
    assert_eq!(status, 400);
    responses.push(body.to_string());
    let (status, body) = server.post(
        "/v1/subjects/resolve",
        Some(SUBJECT),
        "application/json",
        format!(r#"{{"phone": 5, "x": "{CONTENT_CANARY}"}}"#).as_bytes(),
    );
    assert_eq!(status, 400);
    responses.push(body.to_string());
    responses
        .push(server.get("/v1/metrics/active?from=2026-01-01&to=2026-01-31&by=country", Some(ANALYST)).1.to_string());
    responses.push(server.get_text("/metrics").1);
    responses.push(
        server
            .post(
                "/v1/events",
                Some(INGEST),
                "application/json",
                format!(r#"[{{"type":"message","text":"{CONTENT_CANARY}"}}]"#).as_bytes(),
            )
            .1
            .to_string(),
    );

    let first_log = server.stop();
    // Restart: loads the snapshot; then replay from the log alone.
    let server = Server::start_with(&data, &[KEY]);
    responses.push(server.get("/healthz", None).1.to_string());
    let second_log = server.kill();
    let output = common::command().args(["rebuild", "--data"]).arg(&data).output().expect("rebuild");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    assert!(first_log.contains("DEBUG") || first_log.contains("INFO"), "debug log captured");
    assert_clean("server log", first_log.as_bytes());
    assert_clean("server log after restart", second_log.as_bytes());
    assert_clean("rebuild output", &output.stdout);
    assert_clean("rebuild stderr", &output.stderr);
    for response in &responses {
        assert_clean("a response", response.as_bytes());
    }
    let files = files_under(&data);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "seg")), "log segments exist");
    assert!(files.iter().any(|f| f.ends_with("state/snapshot.bin")), "snapshot exists");
    for file in files {
        let bytes = std::fs::read(&file).expect("read");
        assert_clean(&file.display().to_string(), &bytes);
    }
}

/// The pseudonym key and the generated admin token are private files.
#[cfg(unix)]
#[test]
fn secret_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let mut cmd = common::command();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    // Started (and so done writing both files and saying where the token
    // is) once it prints where it listens.
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if line.starts_with("proviso listening on ") {
                let _ = sender.send(());
            }
        }
    });
    receiver.recv_timeout(std::time::Duration::from_secs(60)).expect("the server starts");
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin.token"), "says where the token is: {stderr}");
    for name in ["admin.token", "pseudonym.key"] {
        let mode = std::fs::metadata(data.join(name)).expect(name).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    let token = std::fs::read_to_string(data.join("admin.token")).expect("token");
    assert!(!stderr.contains(token.trim()), "the token itself is not printed");
}
