//! End-to-end: subjects, consent policy, consent changes through API and ingest.

mod common;

use common::{Server, SUBJECT};

fn resolve(server: &Server, phone: &str) -> (u16, serde_json::Value) {
    server.post(
        "/v1/subjects/resolve",
        Some(SUBJECT),
        "application/json",
        serde_json::json!({"phone": phone}).to_string().as_bytes(),
    )
}

/// Opt-out regions are pending during the notice period and granted after it;
/// opt-in regions are denied until granted; refusals through the API and
/// through ingest are both recorded, with history; essential purposes cannot
/// be refused.
#[test]
fn consent_follows_policy_and_changes_through_api_and_ingest() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let day = 86_400_000i64;
    let old_in = "+919812345601";
    let new_in = "+919812345602";
    let german = "+4915112345603";
    server.ingest(
        &[
            format!(r#"{{"type":"session","ts":{},"phone":"{old_in}","device":"d"}}"#, common::now_ms() - 40 * day),
            format!(r#"{{"type":"session","ts":{},"phone":"{new_in}","device":"d"}}"#, common::now_ms() - 10 * day),
            format!(r#"{{"type":"session","ts":{},"phone":"{german}","device":"d"}}"#, common::now_ms() - 40 * day),
        ]
        .join("\n"),
    );

    let old = server.subject(old_in);
    let (_, view) = server.get(&format!("/v1/subjects/{old}/consent"), Some(SUBJECT));
    assert_eq!(view["region"], "IN");
    assert_eq!(view["purposes"]["ads"]["state"], "granted", "{view}");
    assert_eq!(view["purposes"]["ads"]["basis"], "opt_out_notice");
    assert_eq!(view["purposes"]["security"]["state"], "granted");
    assert_eq!(view["purposes"]["security"]["refusable"], false);

    let new = server.subject(new_in);
    let (_, view) = server.get(&format!("/v1/subjects/{new}/consent"), Some(SUBJECT));
    assert_eq!(view["purposes"]["product"]["state"], "pending", "{view}");
    assert!(view["purposes"]["product"]["until"].is_string());

    let de = server.subject(german);
    let (_, view) = server.get(&format!("/v1/subjects/{de}/consent"), Some(SUBJECT));
    assert_eq!(view["purposes"]["ads"]["state"], "denied");
    assert_eq!(view["purposes"]["ads"]["basis"], "opt_in_required");

    // Refuse through the API.
    let (status, view) =
        server.put(&format!("/v1/subjects/{old}/consent/ads"), Some(SUBJECT), &serde_json::json!({"granted": false}));
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["purposes"]["ads"]["state"], "denied");
    assert_eq!(view["purposes"]["ads"]["basis"], "consent_refused");
    assert_eq!(view["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(view["purposes"]["product"]["state"], "granted", "other purposes unaffected");

    // Grant through the API in an opt-in region.
    let (_, view) =
        server.put(&format!("/v1/subjects/{de}/consent/ads"), Some(SUBJECT), &serde_json::json!({"granted": true}));
    assert_eq!(view["purposes"]["ads"]["state"], "granted");

    // Refuse through ingest.
    let response = server.ingest(&format!(
        r#"{{"type":"consent","ts":{},"phone":"{old_in}","purpose":"product","granted":false}}"#,
        common::now_ms()
    ));
    assert_eq!(response["accepted"], 1, "{response}");
    let (_, view) = server.get(&format!("/v1/subjects/{old}/consent"), Some(SUBJECT));
    assert_eq!(view["purposes"]["product"]["state"], "denied");
    assert_eq!(view["history"].as_array().map(Vec::len), Some(2));

    // Essential purposes cannot be refused; unknown purposes are named.
    let (status, body) = server.put(
        &format!("/v1/subjects/{old}/consent/security"),
        Some(SUBJECT),
        &serde_json::json!({"granted": false}),
    );
    assert_eq!((status, body["code"].as_str()), (400, Some("essential_purpose")), "{body}");
    // Nor set at all: an essential purpose is always on.
    let (status, body) = server.put(
        &format!("/v1/subjects/{old}/consent/analytics"),
        Some(SUBJECT),
        &serde_json::json!({"granted": true}),
    );
    assert_eq!((status, body["code"].as_str()), (400, Some("essential_purpose")), "{body}");
    let (status, body) = server.put(
        &format!("/v1/subjects/{old}/consent/marketing"),
        Some(SUBJECT),
        &serde_json::json!({"granted": false}),
    );
    assert_eq!((status, body["code"].as_str()), (400, Some("unknown_purpose")));

    // Unknown and invalid numbers, malformed ids.
    let (status, body) = resolve(&server, "+919812345699");
    assert_eq!((status, body["code"].as_str()), (404, Some("subject_not_found")));
    let (status, body) = resolve(&server, "12");
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_phone")));
    let (status, body) = server.get("/v1/subjects/not-an-id/consent", Some(SUBJECT));
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_subject")));
    let (status, body) = server.get("/v1/subjects/s_00000000000000000000000000000000/consent", Some(SUBJECT));
    assert_eq!((status, body["code"].as_str()), (404, Some("subject_not_found")));
}
