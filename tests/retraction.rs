//! End-to-end: what a partner was given is withdrawn when a person changes
//! their mind. Suggestions and audience memberships disclosed to a partner
//! appear in its product / ads feed; a refusal, a ban, an unlinking or an
//! account deletion appends a retraction before it is acknowledged, and no
//! later output includes the person.

mod common;

use std::process::Stdio;

use common::{command, Server, OTHER_PARTNER, PARTNER, REVIEWER, SUBJECT};
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

fn phone(k: u32) -> String {
    format!("+9198765{k:05}")
}

fn account(k: u32) -> String {
    format!("fn-{k}")
}

fn resolve(server: &Server, k: u32) -> String {
    server.subject(&phone(k))
}

fn feed(server: &Server, purpose: &str) -> Vec<Value> {
    let (status, page) = server.get(&format!("/v1/partners/friendnet/feeds/{purpose}?limit=1000"), Some(PARTNER));
    assert_eq!(status, 200, "{page}");
    page["records"].as_array().expect("records").clone()
}

fn retractions(records: &[Value]) -> Vec<(u64, String)> {
    records
        .iter()
        .filter(|r| r["op"] == "retract")
        .map(|r| (r["retracts"].as_u64().expect("cursor"), r["reason"].as_str().expect("reason").to_string()))
        .collect()
}

/// The full cycle over the real server, including a refusal ingested while
/// the server was down (reconciled at start).
#[test]
fn refusals_bans_unlinks_and_deletions_retract_earlier_disclosures() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start_with(&data, &[("PROVISO_AUDIENCE_K", "10")]);
    // 12 people in India (opt-out, notice over: first seen 40 days ago), all
    // on friendnet; person 0's address book holds 1..=3; 1..=11 wrote to
    // the business.
    let long_ago = common::now_ms() - 40 * DAY_MS;
    let recent = common::now_ms() - 60_000;
    let mut lines = Vec::new();
    for k in 0..12u32 {
        let (p, a) = (phone(k), account(k));
        lines.push(format!(r#"{{"type":"session","ts":{long_ago},"phone":"{p}","device":"d{k}"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{long_ago},"phone":"{p}","partner_id":"{a}"}}"#));
        if k > 0 {
            lines.push(format!(
                r#"{{"type":"business_message","ts":{recent},"phone":"{p}","business":"shop","direction":"out"}}"#
            ));
        }
    }
    let book: Vec<String> = (1..=3).map(phone).collect();
    lines.push(json!({"type": "contacts", "ts": long_ago, "phone": phone(0), "contacts": book}).to_string());
    assert_eq!(server.ingest(&lines.join("\n"))["rejected"], json!([]));

    // Disclose: suggestions for person 0, audience members of the shop.
    let (_, suggested) = server.get(&format!("/v1/partners/friendnet/suggestions/{}", account(0)), Some(PARTNER));
    let suggested: Vec<&str> =
        suggested.as_array().expect("list").iter().filter_map(|s| s["partner_id"].as_str()).collect();
    assert_eq!(suggested, vec!["fn-1", "fn-2", "fn-3"]);
    let (_, audience) = server.get("/v1/partners/friendnet/audiences/shop?days=7", Some(PARTNER));
    assert_eq!(audience["members"].as_array().expect("members").len(), 11, "{audience}");
    let product = feed(&server, "product");
    assert_eq!(product.len(), 3);
    assert!(product.iter().all(|r| r["op"] == "add" && r.get("subjects").is_none()), "no subject ids in a feed");
    // Cursors of the adds, read while they are live: a withdrawn add reads
    // as a tombstone later (cursor and op kept, nothing that identifies).
    let mut add_cursors: std::collections::HashMap<(String, String), u64> = std::collections::HashMap::new();
    for record in product.iter().chain(feed(&server, "ads").iter()) {
        for key in ["suggested", "partner_id"] {
            if let Some(value) = record[key].as_str() {
                add_cursors
                    .entry((key.to_string(), value.to_string()))
                    .or_insert(record["cursor"].as_u64().expect("cursor"));
            }
        }
    }
    let cursor_of = |_: &[Value], key: &str, value: &str| -> u64 {
        *add_cursors.get(&(key.to_string(), value.to_string())).expect("add read while live")
    };

    // Partner isolation: othernet reads nothing of friendnet's, and its own
    // outputs never carry friendnet's ids.
    for path in [
        "/v1/partners/friendnet/suggestions/fn-0",
        "/v1/partners/friendnet/audiences/shop?days=7",
        "/v1/partners/friendnet/feeds/product",
        "/v1/partners/friendnet/feeds/ads",
    ] {
        let (status, body) = server.get(path, Some(OTHER_PARTNER));
        assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{path}: {body}");
    }
    for path in ["/v1/partners/othernet/suggestions/fn-0", "/v1/partners/othernet/feeds/security"] {
        let (_, body) = server.get(path, Some(OTHER_PARTNER));
        assert!(!body.to_string().contains("fn-"), "{path}: {body}");
    }

    // 1. Person 2 refuses product: retracted before the PUT returns.
    let subject2 = resolve(&server, 2);
    let (status, _) =
        server.put(&format!("/v1/subjects/{subject2}/consent/product"), Some(SUBJECT), &json!({"granted": false}));
    assert_eq!(status, 200);
    let product = feed(&server, "product");
    assert_eq!(retractions(&product), vec![(cursor_of(&product, "suggested", "fn-2"), "refused".to_string())]);
    // Read again from cursor 0, the refused person is named nowhere: the
    // withdrawn add and its retraction carry no identifier.
    let withdrawn = &product[cursor_of(&product, "suggested", "fn-2") as usize];
    assert_eq!((withdrawn["op"].as_str(), withdrawn["withdrawn"].as_bool()), (Some("add"), Some(true)), "{withdrawn}");
    assert!(!Value::Array(product.clone()).to_string().contains("fn-2"), "{product:?}");
    let (_, again) = server.get(&format!("/v1/partners/friendnet/suggestions/{}", account(0)), Some(PARTNER));
    assert!(!again.to_string().contains("fn-2"), "no later output includes the refuser: {again}");
    // The ads membership of person 2 is untouched (product was refused).
    assert!(retractions(&feed(&server, "ads")).is_empty());

    // 2. Person 4 unlinks, 5 is banned, 6 deletes the account: ads retractions.
    let unlink = format!(
        r#"{{"type":"partner_account","ts":{recent},"phone":"{}","partner_id":"{}","state":"unlinked"}}"#,
        phone(4),
        account(4)
    );
    server.ingest(&unlink);
    let subject5 = resolve(&server, 5);
    let (status, _) = server.post(
        &format!("/v1/abuse/subjects/{subject5}/decision"),
        Some(REVIEWER),
        "application/json",
        br#"{"action":"ban","note":"test"}"#,
    );
    assert_eq!(status, 200);
    server.ingest(&format!(r#"{{"type":"delete_account","ts":{recent},"phone":"{}"}}"#, phone(6)));
    let ads = feed(&server, "ads");
    let mut got = retractions(&ads);
    got.sort();
    let mut expected = vec![
        (cursor_of(&ads, "partner_id", "fn-4"), "unlinked".to_string()),
        (cursor_of(&ads, "partner_id", "fn-5"), "banned".to_string()),
        (cursor_of(&ads, "partner_id", "fn-6"), "deleted".to_string()),
    ];
    expected.sort();
    assert_eq!(got, expected);
    let (_, audience) = server.get("/v1/partners/friendnet/audiences/shop?days=7", Some(PARTNER));
    let members = audience["members"].to_string();
    assert!(!members.contains("fn-4") && !members.contains("fn-5"), "{members}");

    // 3. A refusal ingested while the server is down is reconciled at start.
    server.stop();
    let refusal = format!(
        r#"{{"type":"consent","ts":{},"phone":"{}","purpose":"product","granted":false}}"#,
        common::now_ms(),
        phone(3)
    );
    let mut ingest = command()
        .args(["ingest", "-", "--data"])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ingest");
    std::io::Write::write_all(&mut ingest.stdin.take().expect("stdin"), refusal.as_bytes()).expect("write");
    assert!(ingest.wait().expect("wait").success());
    let server = Server::start_with(&data, &[("PROVISO_AUDIENCE_K", "10")]);
    let product = feed(&server, "product");
    let reconciled: Vec<(u64, String)> =
        retractions(&product).into_iter().filter(|(_, reason)| reason == "no_longer_allowed").collect();
    assert_eq!(reconciled, vec![(cursor_of(&product, "suggested", "fn-3"), "no_longer_allowed".to_string())]);
    // Every add about a person who is no longer allowed has a retraction.
    let retracted: Vec<u64> = retractions(&product).iter().map(|(cursor, _)| *cursor).collect();
    let live: Vec<&str> = product
        .iter()
        .filter(|r| r["op"] == "add" && !retracted.contains(&r["cursor"].as_u64().expect("cursor")))
        .filter_map(|r| r["suggested"].as_str())
        .collect();
    assert_eq!(live, vec!["fn-1"]);
}
