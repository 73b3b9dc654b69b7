//! Snapshot tests (insta) of the documents people and pages read: the
//! transparency report, the consent view, a reviewer's subject view, one
//! update of the live figures, and the OpenAPI document itself. A change to any shape shows up as a diff in
//! `tests/snapshots/`; accept it deliberately (`INSTA_UPDATE=always cargo
//! test --test api_shapes`, then review the diff) or fix the change.

mod common;

use common::{Server, ANALYST, PARTNER, REVIEWER, SUBJECT};

/// A fixed key: subject ids and handles are the same on every run.
const KEY: (&str, &str) = ("PROVISO_PSEUDONYM_KEY", "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed");

/// 2026-01-05T10:00:00Z plus `ms` (long past any notice period).
fn at(ms: i64) -> i64 {
    1_767_607_200_000 + ms
}

/// One person with a bit of everything, a contact, and a partner flag on a
/// second linked account.
fn population(server: &Server) {
    let lines = [
        format!(r#"{{"type":"register","ts":{},"phone":"+919876511111","device":"d1","platform":"android"}}"#, at(0)),
        format!(r#"{{"type":"register","ts":{},"phone":"+919876522222","device":"d2","platform":"ios"}}"#, at(1)),
        format!(r#"{{"type":"session","ts":{},"phone":"+919876511111","device":"d1"}}"#, at(86_400_000)),
        format!(r#"{{"type":"message","ts":{},"phone":"+919876511111","to":"+919876522222","kind":"text"}}"#, at(2)),
        format!(r#"{{"type":"contacts","ts":{},"phone":"+919876522222","contacts":["+919876511111"]}}"#, at(3)),
        format!(
            r#"{{"type":"business_message","ts":{},"phone":"+919876511111","business":"shop-1","direction":"out"}}"#,
            at(4)
        ),
        format!(r#"{{"type":"partner_account","ts":{},"phone":"+919876511111","partner_id":"fn-1"}}"#, at(5)),
        format!(r#"{{"type":"partner_account","ts":{},"phone":"+919876522222","partner_id":"fn-2"}}"#, at(6)),
        format!(r#"{{"type":"consent","ts":{},"phone":"+919876511111","purpose":"ads","granted":false}}"#, at(7)),
        format!(
            r#"{{"type":"partner_flag","ts":{},"phone":"+919876522222","partner_id":"fn-2","reason":"spam"}}"#,
            at(8)
        ),
    ];
    let response = server.ingest(&lines.join("\n"));
    assert_eq!(response["accepted"], lines.len(), "{response}");
}

#[test]
fn documents_keep_their_shape() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(&temp.path().join("data"), &[KEY]);
    population(&server);
    let person = server.subject("+919876511111");
    let flagged = server.subject("+919876522222");
    // The partner reads its security feed: a disclosure in the report.
    let (status, _) = server.get("/v1/partners/friendnet/feeds/security", Some(PARTNER));
    assert_eq!(status, 200);

    let (status, report) = server.get(&format!("/v1/subjects/{person}/report"), Some(SUBJECT));
    assert_eq!(status, 200, "{report}");
    insta::assert_json_snapshot!("report", report, { ".generated_at" => "[now]" });

    let (status, consent) = server.get(&format!("/v1/subjects/{flagged}/consent"), Some(SUBJECT));
    assert_eq!(status, 200, "{consent}");
    insta::assert_json_snapshot!("consent", consent);

    let (status, abuse) = server.get(&format!("/v1/abuse/subjects/{flagged}"), Some(REVIEWER));
    assert_eq!(status, 200, "{abuse}");
    insta::assert_json_snapshot!("abuse_subject", abuse);

    let mut stream = server.stream("/v1/live?interval_ms=1000", ANALYST);
    let figures = common::next_event_data(&mut stream);
    insta::assert_json_snapshot!("live_figures", figures, { ".at" => "[now]" });
}

/// The served OpenAPI document: what every client is promised (fuzzed
/// against the server by tests/schemathesis.rs).
#[test]
fn the_openapi_document_keeps_its_shape() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let (status, document) = server.get("/openapi.json", None);
    assert_eq!(status, 200, "{document}");
    insta::assert_json_snapshot!("openapi", document, { ".info.version" => "[version]" });
}
