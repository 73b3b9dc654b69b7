//! End-to-end: `POST /v1/events` on the real binary.

mod common;

use common::{Server, INGEST};

/// A batch of good and bad lines keeps exactly the good ones and names each
/// bad line with its number and field.
#[test]
fn mixed_batch_keeps_valid_lines_and_reports_each_bad_one() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let body = [
        r#"{"type":"register","ts":"2026-01-02T10:00:00Z","phone":"+919812345678","device":"d1","platform":"android"}"#,
        r#"{"type":"message","ts":"2026-01-02T10:01:00Z","phone":"+919812345678","to":"+5511987654321","kind":"text","text":"hi there"}"#,
        "",
        r#"{"type":"session","ts":"2026-01-02T10:02:00Z","phone":"+919812345678"}"#,
        r#"{"type":"message","ts":"2026-01-02T10:03:00Z","phone":"+919812345678","to":"+5511987654321","kind":"voice"}"#,
        r#"{"type":"sessions","ts":"2026-01-02T10:02:00Z","phone":"+919812345678","device":"d1"}"#,
        r#"not json"#,
        r#"{"type":"session","ts":"2026-01-02T10:02:00Z","phone":"+91981","device":"d1"}"#,
        r#"{"type":"consent","ts":"2026-01-02T10:02:00Z","phone":"+919812345678","purpose":"analytics","granted":false}"#,
        r#"{"type":"business_message","ts":"2026-01-02T10:05:00Z","phone":"+919812345678","business":"b1","direction":"out"}"#,
    ]
    .join("\n");
    let response = server.ingest(&body);
    assert_eq!(response["accepted"], 3, "{response}");
    let rejected = response["rejected"].as_array().expect("rejected");
    let lines: Vec<u64> = rejected.iter().map(|r| r["line"].as_u64().expect("line")).collect();
    assert_eq!(lines, vec![2, 4, 6, 7, 8, 9]);
    let errors: Vec<&str> = rejected.iter().map(|r| r["error"].as_str().expect("error")).collect();
    assert!(
        errors[0].starts_with("line 2: ") && errors[0].contains("message content is never accepted"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("missing field `device`"), "{}", errors[1]);
    assert!(
        errors[2].contains("unknown event type, expected one of") && !errors[2].contains("sessions"),
        "the sent type is not echoed: {}",
        errors[2]
    );
    assert!(errors[3].contains("not a JSON object"), "{}", errors[3]);
    assert!(errors[4].contains("field `phone`") && errors[4].contains("ending 81"), "{}", errors[4]);
    assert!(errors[5].contains("essential"), "{}", errors[5]);
    let reasons: Vec<&str> = rejected.iter().map(|r| r["reason"].as_str().expect("reason")).collect();
    assert_eq!(
        reasons,
        vec!["content", "missing_field", "unknown_type", "invalid_json", "invalid_phone", "essential_refusal"]
    );
    assert!(!response.to_string().contains("hi there"));

    let (status, health) = server.get("/healthz", None);
    assert_eq!(status, 200);
    assert_eq!(health["events"], 3);

    // The Prometheus endpoint counts the same outcome.
    let (_, metrics) = server.get_text("/metrics");
    assert!(metrics.contains("proviso_events_accepted_total 3"), "{metrics}");
    assert!(metrics.contains("proviso_events_rejected_total{reason=\"content\"} 1"), "{metrics}");
    assert!(metrics.contains("proviso_ingest_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("proviso_log_size_bytes"), "{metrics}");
    assert!(metrics.contains("proviso_subjects 1"), "{metrics}");
}

/// A JSON array body works like NDJSON; element numbers stand in for lines.
#[test]
fn json_array_body_is_accepted_with_element_numbers() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let body = serde_json::json!([
        {"type": "session", "ts": 1767607200000i64, "phone": "+919812345678", "device": "d1"},
        {"type": "session", "ts": 1767607200000i64, "phone": "+919812345678", "device": "d1", "caption": "x"},
    ]);
    let (status, response) = server.post("/v1/events", Some(INGEST), "application/json", body.to_string().as_bytes());
    assert_eq!(status, 200);
    assert_eq!(response["accepted"], 1);
    assert_eq!(response["rejected"][0]["line"], 2);
    assert_eq!(response["rejected"][0]["reason"], "content");
}

/// Bodies over the configured size get 413 with the standard error shape,
/// and nothing from them is stored.
#[test]
fn oversized_body_gets_413_and_stores_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_MAX_REQUEST_BYTES", "2048")]);
    let line = r#"{"type":"session","ts":1767607200000,"phone":"+919812345678","device":"d1"}"#;
    let body = vec![line; 100].join("\n");
    let (status, response) = server.post("/v1/events", Some(INGEST), "application/x-ndjson", body.as_bytes());
    assert_eq!(status, 413, "{response}");
    assert_eq!(response["code"], "payload_too_large");
    assert_eq!(response["type"], "invalid_request");
    assert_eq!(server.get("/healthz", None).1["events"], 0);
}

/// A second process on the same data dir is refused with a clear message.
#[test]
fn second_process_on_same_data_dir_is_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let _server = Server::start(&data);
    let output = common::command()
        .args(["ingest", "-", "--data"])
        .arg(&data)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ingest");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another proviso process holds the lock"), "{stderr}");
}
