//! End-to-end: the promise holds when a caller lies (issue 11). Each test
//! plays one adversary against the real binary with plain HTTP requests:
//! a partner claiming people, future-dated times, identifiers that are
//! really phone numbers, and lookups that would reveal an address book.

mod common;

use common::{Server, INGEST, PARTNER, REVIEWER, SUBJECT};
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

fn phone(k: u32) -> String {
    format!("+9198765{k:05}")
}

fn account(k: u32) -> String {
    format!("fn-{k}")
}

fn post_as(server: &Server, token: &str, lines: &[String]) -> Value {
    let (status, body) = server.post("/v1/events", Some(token), "application/x-ndjson", lines.join("\n").as_bytes());
    assert_eq!(status, 200, "{body}");
    body
}

fn reasons(body: &Value) -> Vec<(u64, String)> {
    body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| (r["line"].as_u64().expect("line"), r["reason"].as_str().expect("reason").to_string()))
        .collect()
}

/// Person `k` uses the service, the service attests `fn-k`, and a reviewer
/// bans them (shared with the partner's security feed). Their subject id.
fn link_and_ban(server: &Server, k: u32, ts: i64) -> String {
    let p = phone(k);
    let lines = [
        format!(r#"{{"type":"session","ts":{ts},"phone":"{p}","device":"dev-{k}"}}"#),
        format!(r#"{{"type":"partner_account","ts":{ts},"phone":"{p}","partner_id":"fn-{k}"}}"#),
    ];
    assert_eq!(post_as(server, INGEST, &lines)["rejected"], json!([]));
    let subject = server.subject(&p);
    let (status, view) = server.post(
        &format!("/v1/abuse/subjects/{subject}/decision"),
        Some(REVIEWER),
        "application/json",
        br#"{"action":"ban","note":"confirmed"}"#,
    );
    assert_eq!(status, 200, "{view}");
    subject
}

fn resolve_status(server: &Server, phone: &str) -> u16 {
    let body = json!({ "phone": phone }).to_string();
    server.post("/v1/subjects/resolve", Some(SUBJECT), "application/json", body.as_bytes()).0
}

/// §1: a partner's `partner_account` is a claim that shares nothing; only
/// the service's attestation makes a link; a claim never back-dates notice;
/// flags and friendships about unlinked accounts are refused; either side's
/// unlinking ends the link.
#[test]
fn a_partner_cannot_claim_anyone() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_AUDIENCE_K", "10")]);
    // 12 people in India (opt-out; first seen 40 days ago, so the notice is
    // over), person 0's address book holds 1..=3, 1..=11 wrote to `shop`.
    let long_ago = common::now_ms() - 40 * DAY_MS;
    let recent = common::now_ms() - 60_000;
    let mut lines = Vec::new();
    for k in 0..12u32 {
        let p = phone(k);
        lines.push(format!(r#"{{"type":"session","ts":{long_ago},"phone":"{p}","device":"dev-{k}"}}"#));
        if k > 0 {
            lines.push(format!(
                r#"{{"type":"business_message","ts":{recent},"phone":"{p}","business":"shop","direction":"out"}}"#
            ));
        }
    }
    let book: Vec<String> = (1..=3).map(phone).collect();
    lines.push(json!({"type": "contacts", "ts": long_ago, "phone": phone(0), "contacts": book}).to_string());
    assert_eq!(server.ingest(&lines.join("\n"))["rejected"], json!([]));

    // The partner claims everyone (and someone who never used the service),
    // dated 40 days back.
    let mut claims: Vec<String> = (0..12u32)
        .map(|k| {
            format!(
                r#"{{"type":"partner_account","ts":{long_ago},"phone":"{}","partner_id":"{}"}}"#,
                phone(k),
                account(k)
            )
        })
        .collect();
    claims
        .push(format!(r#"{{"type":"partner_account","ts":{long_ago},"phone":"{}","partner_id":"fn-99"}}"#, phone(99)));
    assert_eq!(post_as(&server, PARTNER, &claims)["rejected"], json!([]), "claims are accepted as claims");

    // Nothing flows on a claim: no suggestions, no audience, no security records.
    let (status, body) = server.get(&format!("/v1/partners/friendnet/suggestions/{}", account(0)), Some(PARTNER));
    assert_eq!(status, 404, "a claimed account is not linked: {body}");
    let (_, audience) = server.get("/v1/partners/friendnet/audiences/shop?days=7", Some(PARTNER));
    assert_eq!(audience["members"].as_array().map(Vec::len).unwrap_or(0), 0, "{audience}");
    // The claimed stranger is not a person proviso answers for.
    assert_eq!(resolve_status(&server, &phone(99)), 404);

    // A flag about an account the partner has not linked is refused and
    // puts nobody into review, whoever its phone field names.
    let flag = format!(
        r#"{{"type":"partner_flag","ts":{recent},"phone":"{}","partner_id":"fn-5","reason":"spam"}}"#,
        phone(5)
    );
    let friend = format!(
        r#"{{"type":"partner_friend","ts":{recent},"phone":"{}","partner_id":"fn-0","friend":"fn-1","state":"added"}}"#,
        phone(0)
    );
    let body = post_as(&server, PARTNER, &[flag.clone(), friend]);
    assert_eq!(reasons(&body), vec![(1, "not_linked".to_string()), (2, "not_linked".to_string())], "{body}");
    assert!(body["rejected"][0]["error"].as_str().expect("error").contains("partner_id"), "{body}");
    let subject5 = server.subject(&phone(5));
    let (_, view) = server.get(&format!("/v1/abuse/subjects/{subject5}"), Some(REVIEWER));
    assert_ne!(view["status"], "review", "an unlinked flag has no effect: {view}");
    // The person sees the claim held about them, and that it links nothing.
    let (_, report) = server.get(&format!("/v1/subjects/{subject5}/report"), Some(SUBJECT));
    assert_eq!(report["partners"], json!([]), "{report}");
    assert_eq!(report["partner_claims"], json!([{"partner": "friendnet", "account": "fn-5"}]), "{report}");

    // A person who registers today and whom the partner claims with a
    // 40-day-old time: the notice runs from the service's own event.
    let fresh = phone(50);
    server.ingest(&format!(r#"{{"type":"session","ts":{recent},"phone":"{fresh}","device":"dev-50"}}"#));
    post_as(
        &server,
        PARTNER,
        &[format!(r#"{{"type":"partner_account","ts":{long_ago},"phone":"{fresh}","partner_id":"fn-50"}}"#)],
    );
    let fresh_subject = server.subject(&fresh);
    let (_, consent) = server.get(&format!("/v1/subjects/{fresh_subject}/consent"), Some(SUBJECT));
    assert_eq!(consent["purposes"]["product"]["state"], "pending", "{consent}");

    // The service attests 0..=3 (the people linked the accounts in the app).
    let attest: Vec<String> = (0..=3u32)
        .map(|k| {
            format!(
                r#"{{"type":"partner_account","ts":{recent},"phone":"{}","partner_id":"{}"}}"#,
                phone(k),
                account(k)
            )
        })
        .collect();
    assert_eq!(post_as(&server, INGEST, &attest)["rejected"], json!([]));
    let (status, suggested) = server.get(&format!("/v1/partners/friendnet/suggestions/{}", account(0)), Some(PARTNER));
    assert_eq!(status, 200, "{suggested}");
    let ids: Vec<&str> = suggested.as_array().expect("list").iter().filter_map(|s| s["partner_id"].as_str()).collect();
    assert_eq!(ids, vec!["fn-1", "fn-2", "fn-3"], "only attested people are suggested");

    // Now linked, the flag is accepted and takes effect.
    assert_eq!(post_as(&server, PARTNER, &[flag.replace("fn-5", "fn-2")])["rejected"], json!([]));
    let subject2 = server.subject(&phone(2));
    let (_, view) = server.get(&format!("/v1/abuse/subjects/{subject2}"), Some(REVIEWER));
    assert_eq!(view["status"], "review", "{view}");

    // The partner unlinks fn-3 (whatever phone its line names): the link ends.
    let unlink = format!(
        r#"{{"type":"partner_account","ts":{recent},"phone":"{}","partner_id":"fn-3","state":"unlinked"}}"#,
        phone(7)
    );
    assert_eq!(post_as(&server, PARTNER, &[unlink])["rejected"], json!([]));
    let (status, _) = server.get(&format!("/v1/partners/friendnet/suggestions/{}", account(3)), Some(PARTNER));
    assert_eq!(status, 404, "unlinked by the partner");
    // A new claim does not bring it back.
    post_as(
        &server,
        PARTNER,
        &[format!(r#"{{"type":"partner_account","ts":{recent},"phone":"{}","partner_id":"fn-3"}}"#, phone(3))],
    );
    let (status, _) = server.get(&format!("/v1/partners/friendnet/suggestions/{}", account(3)), Some(PARTNER));
    assert_eq!(status, 404, "a claim after unlinking shares nothing");
}

/// §2: an event time beyond the allowed skew is refused for every event
/// type; a consent change takes effect at its acknowledgement whatever its
/// `ts` (ahead within the skew, or back-dated behind an earlier grant).
#[test]
fn refusals_take_effect_when_acknowledged() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_MAX_FUTURE_SKEW_SECONDS", "300")]);
    let now = common::now_ms();
    let p = phone(1);
    server.ingest(&format!(r#"{{"type":"session","ts":{},"phone":"{p}","device":"dev-1"}}"#, now - 60_000));
    let subject = server.subject(&p);

    // An hour ahead: refused, whatever the type.
    let hour = now + 3_600_000;
    let ahead = [
        format!(r#"{{"type":"session","ts":{hour},"phone":"{p}","device":"dev-1"}}"#),
        format!(r#"{{"type":"consent","ts":{hour},"phone":"{p}","purpose":"ads","granted":false}}"#),
        format!(r#"{{"type":"partner_account","ts":{hour},"phone":"{p}","partner_id":"fn-1"}}"#),
        format!(r#"{{"type":"delete_account","ts":{hour},"phone":"{p}"}}"#),
    ];
    let body = post_as(&server, INGEST, &ahead);
    assert_eq!(body["accepted"], 0, "{body}");
    assert!(reasons(&body).iter().all(|(_, reason)| reason == "invalid_timestamp"), "{body}");
    assert!(body["rejected"][0]["error"].as_str().expect("error").contains("ahead"), "{body}");

    // A grant now, then a refusal dated two hours back: the refusal was
    // acknowledged last, so it is in force.
    let grant =
        format!(r#"{{"type":"consent","ts":{},"phone":"{p}","purpose":"product","granted":true}}"#, now - 1_000);
    let back_dated =
        format!(r#"{{"type":"consent","ts":{},"phone":"{p}","purpose":"product","granted":false}}"#, now - 7_200_000);
    server.ingest(&grant);
    server.ingest(&back_dated);
    let (_, consent) = server.get(&format!("/v1/subjects/{subject}/consent"), Some(SUBJECT));
    assert_eq!(consent["purposes"]["product"]["state"], "denied", "{consent}");

    // A grant then a refusal four minutes ahead (within the skew): the
    // refusal is in force at once, not in four minutes.
    let grant = format!(r#"{{"type":"consent","ts":{},"phone":"{p}","purpose":"ads","granted":true}}"#, now - 1_000);
    let ahead_refusal =
        format!(r#"{{"type":"consent","ts":{},"phone":"{p}","purpose":"ads","granted":false}}"#, now + 240_000);
    server.ingest(&grant);
    assert_eq!(server.ingest(&ahead_refusal)["accepted"], 1);
    let (_, consent) = server.get(&format!("/v1/subjects/{subject}/consent"), Some(SUBJECT));
    assert_eq!(consent["purposes"]["ads"]["state"], "denied", "{consent}");
    let since = consent["purposes"]["ads"]["since"].as_str().expect("since");
    let since = time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339).expect("rfc3339");
    assert!((since.unix_timestamp_nanos() / 1_000_000) as i64 <= common::now_ms(), "in force from arrival: {consent}");
}

/// §5: ids that are really phone numbers or e-mail addresses, and a
/// `link_domain` that is not a domain, are refused; a reviewer's note has
/// them masked before it is logged.
#[test]
fn identifiers_cannot_carry_numbers_or_addresses() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let ts = common::now_ms() - 60_000;
    let p = phone(1);
    let lines = [
        format!(r#"{{"type":"register","ts":{ts},"phone":"{p}","device":"+14155550199","platform":"ios"}}"#),
        format!(r#"{{"type":"session","ts":{ts},"phone":"{p}","device":"dev-415-555-0199"}}"#),
        format!(
            r#"{{"type":"business_message","ts":{ts},"phone":"{p}","business":"jane.doe@example.com","direction":"out"}}"#
        ),
        format!(r#"{{"type":"message","ts":{ts},"phone":"{p}","group":"g.98123.45678","kind":"text"}}"#),
        format!(
            r#"{{"type":"message","ts":{ts},"phone":"{p}","group":"g-1","kind":"text","link_domain":"see.you.at.9"}}"#
        ),
        format!(r#"{{"type":"session","ts":{ts},"phone":"{p}","device":"dev-1"}}"#),
    ];
    let body = post_as(&server, INGEST, &lines);
    assert_eq!(body["accepted"], 1, "{body}");
    let got = reasons(&body);
    assert_eq!(
        got,
        vec![
            (1, "invalid_value".to_string()),
            (2, "invalid_value".to_string()),
            (3, "invalid_value".to_string()),
            (4, "invalid_value".to_string()),
            (5, "content".to_string())
        ],
        "{body}"
    );
    for rejection in body["rejected"].as_array().expect("rejected") {
        let error = rejection["error"].as_str().expect("error");
        assert!(!error.contains("0199") && !error.contains("jane"), "never echoed: {error}");
    }

    // The reviewer's note: masked before it is logged.
    let subject = server.subject(&p);
    let note = "called him at +1 415 555 0142, wrote to jane.doe@example.com: spam ring";
    let (status, view) = server.post(
        &format!("/v1/abuse/subjects/{subject}/decision"),
        Some(REVIEWER),
        "application/json",
        json!({"action": "ban", "note": note}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{view}");
    let text = view.to_string();
    assert!(text.contains("spam ring") && text.contains("[removed]"), "{view}");
    let log = server.stop();
    for secret in ["4155550142", "555 0142", "jane.doe@example.com", "4155550199", "9812345678"] {
        assert!(!log.contains(secret), "server log holds {secret}");
        for file in common::files_under(&data) {
            let bytes = std::fs::read(&file).expect("read");
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{} holds {secret}", file.display());
        }
    }
}

/// §6: a number only in other people's address books answers as unknown;
/// a person's region is their number's, whatever their first event is.
#[test]
fn lookups_do_not_reveal_address_books_and_regions_come_from_numbers() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let ts = common::now_ms() - 60_000;
    let german = "+4915112345603";
    let saved_only = "+4915112345604";
    let book = json!({"type": "contacts", "ts": ts, "phone": phone(1), "contacts": [german, saved_only]});
    server.ingest(&book.to_string());
    assert_eq!(resolve_status(&server, saved_only), 404, "saved by someone, never used the service");
    assert_eq!(resolve_status(&server, german), 404);
    // The German person's first own event is a consent change (product,
    // granted): their region is DE, so ads stay opt-in.
    server.ingest(&format!(r#"{{"type":"consent","ts":{ts},"phone":"{german}","purpose":"product","granted":true}}"#));
    let subject = server.subject(german);
    let (_, consent) = server.get(&format!("/v1/subjects/{subject}/consent"), Some(SUBJECT));
    assert_eq!(consent["region"], "DE", "{consent}");
    assert_eq!(consent["purposes"]["ads"]["basis"], "opt_in_required", "{consent}");
}

/// §3: erasure sticks. After erasure and compaction, the same number
/// registering again is a new person: an empty report, and a partner sees a
/// different handle (identifiers are derived from a per-person secret that
/// erasure destroyed).
#[test]
fn erasure_cuts_every_link_to_a_later_life() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start_with(&data, &[("PROVISO_ERASURE_COMPACTION_SECONDS", "0")]);
    let p = phone(7);
    let life = |server: &Server, ts: i64| link_and_ban(server, 7, ts);
    let security_handles = |server: &Server| -> Vec<String> {
        let (status, feed) = server.get("/v1/partners/friendnet/feeds/security", Some(PARTNER));
        assert_eq!(status, 200, "{feed}");
        feed["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["handle"].as_str().map(str::to_string))
            .filter(|h| !h.is_empty())
            .collect()
    };
    let subject = life(&server, common::now_ms() - 60_000);
    let first = security_handles(&server);
    assert_eq!(first.len(), 1, "{first:?}");
    let (_, report) = server.get(&format!("/v1/subjects/{subject}/report"), Some(SUBJECT));
    assert!(!report["disclosures"].as_array().expect("disclosures").is_empty(), "{report}");

    // The audit log names the person by `r_` handles only.
    let audit = std::fs::read_to_string(data.join("audit").join("disclosures.log")).expect("audit log");
    let old_handles: Vec<String> =
        audit.split('"').filter(|part| part.starts_with("r_") && part.len() == 34).map(str::to_string).collect();
    assert!(!old_handles.is_empty(), "{audit}");

    let (status, erased) =
        server.post(&format!("/v1/subjects/{subject}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!((status, erased["compacted"].as_bool()), (200, Some(true)), "{erased}");
    assert_eq!(resolve_status(&server, &p), 404);

    // The same number comes back: a new person.
    let again = life(&server, common::now_ms() - 1_000);
    let (_, report) = server.get(&format!("/v1/subjects/{again}/report"), Some(SUBJECT));
    assert_eq!(report["disclosures"], json!([]), "the old life's disclosures are not the new one's: {report}");
    let second = security_handles(&server);
    assert!(second.iter().all(|h| !first.contains(h)), "a new handle for the new life: {first:?} {second:?}");
    assert_eq!(second.len(), 1, "{second:?}");
    // No byte of the old life's handles remains anywhere, the audit log
    // included (its records stay, and the chain still verifies). A new
    // dir's vault lists every erased handle's key, so the scrub rewrote
    // only the records that may name them, in place (and /metrics says so).
    let (_, metrics) = server.get_text("/metrics");
    let scrubbed = |way: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("proviso_audit_handles_scrubbed_total{{way=\"{way}\"}} ")))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert!(scrubbed("in_place").is_some_and(|n| n >= 1) && scrubbed("whole_log").is_none(), "{metrics}");
    let stderr = server.stop();
    let line = stderr.lines().find(|l| l.contains("Audit log scrubbed in place")).unwrap_or_default();
    assert!(line.contains("scrubbed=") && !line.contains("scrubbed=0"), "{stderr}");
    assert!(!stderr.contains("scrubbing it whole"), "{stderr}");
    for file in common::files_under(&data) {
        let bytes = std::fs::read(&file).expect("read");
        for handle in old_handles.iter().chain(&first) {
            assert!(!bytes.windows(handle.len()).any(|w| w == handle.as_bytes()), "{} holds {handle}", file.display());
        }
    }
    let verify = common::command().args(["audit", "verify", "--data"]).arg(&data).output().expect("verify");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}

/// §4: compaction keeps every feed's cursors: a partner resuming its
/// security feed after an erasure and compaction misses nothing, also
/// after a restart.
#[test]
fn security_feed_cursors_survive_compaction() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let env = [("PROVISO_ERASURE_COMPACTION_SECONDS", "0")];
    let server = Server::start_with(&data, &env);
    let ts = common::now_ms() - 60_000;
    let ban = |server: &Server, k: u32| link_and_ban(server, k, ts);
    let read = |server: &Server, after: Option<u64>| -> (Vec<(u64, String)>, Option<u64>) {
        let query = after.map(|a| format!("?after={a}")).unwrap_or_default();
        let (status, page) = server.get(&format!("/v1/partners/friendnet/feeds/security{query}"), Some(PARTNER));
        assert_eq!(status, 200, "{page}");
        let records = page["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| (r["cursor"].as_u64().expect("cursor"), r["partner_id"].as_str().expect("id").to_string()))
            .collect();
        (records, page["next"].as_u64())
    };
    let erased = ban(&server, 1);
    ban(&server, 2);
    let (records, next) = read(&server, None);
    assert_eq!(records, vec![(0, "fn-1".to_string()), (1, "fn-2".to_string())]);
    let (status, body) = server.post(&format!("/v1/subjects/{erased}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!((status, body["compacted"].as_bool()), (200, Some(true)), "{body}");
    ban(&server, 3);
    // Resuming where it stopped: exactly the new record, at a new cursor.
    assert_eq!(read(&server, next).0, vec![(2, "fn-3".to_string())]);
    // From the start: the erased person's cursor is a gap, the rest unmoved.
    assert_eq!(read(&server, None).0, vec![(1, "fn-2".to_string()), (2, "fn-3".to_string())]);
    server.stop();
    // A restart (snapshot) and a rebuild from the log keep them too.
    let server = Server::start_with(&data, &env);
    assert_eq!(read(&server, None).0, vec![(1, "fn-2".to_string()), (2, "fn-3".to_string())]);
    server.stop();
    std::fs::remove_dir_all(data.join("state")).expect("drop the snapshot");
    let server = Server::start_with(&data, &env);
    assert_eq!(read(&server, None).0, vec![(1, "fn-2".to_string()), (2, "fn-3".to_string())]);
    ban(&server, 4);
    assert_eq!(read(&server, Some(2)).0, vec![(3, "fn-4".to_string())]);
}

/// §3, crash in the middle: an erasure logged but killed before the secret's
/// tombstone reached the vault is finished at the next start: the number's
/// next life still gets a new secret.
#[test]
fn an_erasure_interrupted_before_shredding_is_finished_at_start() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let security_handle = |server: &Server| -> String {
        let (_, feed) = server.get("/v1/partners/friendnet/feeds/security", Some(PARTNER));
        feed["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["handle"].as_str())
            .rfind(|h| !h.is_empty())
            .expect("a handle")
            .to_string()
    };
    let server = Server::start(&data);
    let subject = link_and_ban(&server, 8, common::now_ms() - 60_000);
    let first = security_handle(&server);
    server.stop();
    let vault = data.join("vault").join("secrets.bin");
    let with_secret = std::fs::read(&vault).expect("vault");
    assert_eq!(with_secret.len(), 48, "one person's secret");

    let server = Server::start(&data);
    let (status, _) = server.post(&format!("/v1/subjects/{subject}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!(status, 200);
    server.kill();
    // As if killed after the deletion reached the log, before the tombstone.
    std::fs::write(&vault, &with_secret).expect("undo the tombstone");

    let server = Server::start(&data);
    assert!(std::fs::read(&vault).expect("vault").len() > 48, "the tombstone is written at start");
    link_and_ban(&server, 8, common::now_ms() - 1_000);
    assert_ne!(security_handle(&server), first, "the next life does not reuse the erased secret");
}
