//! Hot backups, end to end with the real binary: a backup taken while
//! events stream in holds exactly the log up to the position it reports
//! (every batch acknowledged before it was asked for, and nothing torn),
//! answers exactly as a server fed the same events, keeps a verifiable audit
//! log and feeds that are prefixes of the source's; and a person erased
//! after the backup does not come back through `proviso restore`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{command, files_under, Server, ADMIN, ANALYST, INGEST, PARTNER, REVIEWER, SUBJECT};
use proviso::edge::{Edge, PseudonymKey};
use serde_json::{json, Value};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY_ENV: &[(&str, &str)] = &[("PROVISO_PSEUDONYM_KEY", KEY_HEX)];
const DAY_MS: i64 = 86_400_000;
/// Events per batch of the concurrent sender.
const BATCH: u64 = 20;

fn phone(k: u32) -> String {
    format!("+9198766{k:05}")
}

fn start(data: &Path) -> Server {
    Server::start_with(data, &[("PROVISO_PSEUDONYM_KEY", KEY_HEX), ("PROVISO_ERASURE_COMPACTION_SECONDS", "0")])
}

fn day(ts: i64) -> String {
    let days = ts.div_euclid(DAY_MS);
    let date = time::Date::from_julian_day(2_440_588 + days as i32).expect("date");
    format!("{}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// Six linked people who hold each other in their address books; person 1
/// messages, is messaged, reported, shops and allows ads.
fn setup_lines(old: i64, today: i64) -> Vec<String> {
    let mut lines = Vec::new();
    for k in 0..6u32 {
        let p = phone(k);
        lines.push(format!(r#"{{"type":"register","ts":{old},"phone":"{p}","device":"dev{k}","platform":"ios"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{old},"phone":"{p}","partner_id":"fn-{k}"}}"#));
        lines.push(format!(r#"{{"type":"session","ts":{today},"phone":"{p}","device":"dev{k}"}}"#));
        let book: Vec<String> = (0..6).filter(|j| *j != k).map(phone).collect();
        lines.push(json!({"type": "contacts", "ts": old, "phone": p, "contacts": book}).to_string());
    }
    let t = phone(1);
    lines.push(format!(r#"{{"type":"message","ts":{today},"phone":"{t}","to":"{}","kind":"text"}}"#, phone(2)));
    lines.push(format!(r#"{{"type":"message","ts":{today},"phone":"{}","to":"{t}","kind":"voice"}}"#, phone(3)));
    lines.push(format!(r#"{{"type":"report","ts":{today},"phone":"{}","target":"{t}","reason":"spam"}}"#, phone(4)));
    lines.push(format!(
        r#"{{"type":"business_message","ts":{today},"phone":"{t}","business":"shop","direction":"out"}}"#
    ));
    lines.push(format!(r#"{{"type":"consent","ts":{today},"phone":"{t}","purpose":"ads","granted":true}}"#));
    lines
}

/// Batch `i` of the concurrent sender: [`BATCH`] messages on one of five days.
fn batch(i: u64, today: i64) -> String {
    let kinds = ["text", "media", "voice", "call", "other"];
    (0..BATCH)
        .map(|j| {
            let from = phone(((i + j) % 6) as u32);
            let to = phone(((i + j + 1) % 6) as u32);
            let ts = today - ((i % 5) as i64) * DAY_MS - j as i64;
            let kind = kinds[((i + j) % 5) as usize];
            format!(r#"{{"type":"message","ts":{ts},"phone":"{from}","to":"{to}","kind":"{kind}"}}"#)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn events(server: &Server) -> u64 {
    let (status, health) = server.get("/healthz", None);
    assert_eq!(status, 200, "{health}");
    health["events"].as_u64().expect("events")
}

/// Runs `proviso` with `args`; returns (success, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = command();
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd.output().expect("run proviso");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Asks the server for a backup named as `dir`'s last component (`dir` must
/// be in its default backup_dir, `<data>-backups`).
fn backup_via(server: &Server, dir: &Path) -> u64 {
    let name = dir.file_name().and_then(|name| name.to_str()).expect("a name");
    let (ok, stdout, stderr) = run(&["backup", name, "--server", &server.base, "--token", ADMIN], &[]);
    assert!(ok, "backup failed: {stdout}{stderr}");
    assert!(stdout.contains(&dir.display().to_string()), "the server says where: {stdout}");
    let position = stdout.split("log position ").nth(1).and_then(|rest| rest.split_whitespace().next());
    position.and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no position in {stdout}"))
}

fn audit_verifies(data: &Path) {
    let (ok, stdout, stderr) = run(&["audit", "verify", "--data", data.to_str().expect("utf8")], &[]);
    assert!(ok, "audit verify on {}: {stdout}{stderr}", data.display());
}

/// Every answer the test compares between two servers.
fn answers(server: &Server, from: &str, to: &str, subject: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (path, token) in [
        (format!("/v1/metrics/active?from={from}&to={to}&window=1&by=country"), ANALYST),
        (format!("/v1/metrics/active?from={from}&to={to}&window=30&by=platform"), ANALYST),
        (format!("/v1/metrics/messages?from={from}&to={to}&by=kind"), ANALYST),
        (format!("/v1/subjects/{subject}/consent"), SUBJECT),
        ("/v1/abuse/actions?status=review".to_string(), REVIEWER),
        (format!("/v1/abuse/subjects/{subject}"), REVIEWER),
        ("/v1/partners/friendnet/suggestions/fn-3".to_string(), PARTNER),
        ("/v1/partners/friendnet/feeds/security".to_string(), PARTNER),
        ("/v1/audiences/shop?days=30".to_string(), ADMIN),
    ] {
        let (status, body) = server.get(&path, Some(token));
        out.push((format!("{path} -> {status}"), body));
    }
    out
}

fn is_prefix(short: &Path, long: &Path) -> bool {
    let (short, long) = (std::fs::read(short).expect("read"), std::fs::read(long).expect("read"));
    long.starts_with(&short)
}

#[test]
fn a_backup_under_ingest_holds_exactly_its_position() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = start(&data);
    let old = common::now_ms() - 40 * DAY_MS;
    let today = common::now_ms() - 60_000;
    let setup = setup_lines(old, today);
    assert_eq!(server.ingest(&setup.join("\n"))["rejected"], json!([]));
    let (status, suggestions) = server.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    assert_eq!(status, 200, "{suggestions}");
    let start_position = events(&server);

    // One sender, batches in order, each acknowledged before the next; a
    // partner reading suggestions and feeds all along (audit and feeds grow).
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let agent = ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build());
    let sender = {
        let (stop, acked, agent, base) = (stop.clone(), acked.clone(), agent.clone(), server.base.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let response = agent
                    .post(format!("{base}/v1/events"))
                    .header("Authorization", format!("Bearer {INGEST}"))
                    .header("Content-Type", "application/x-ndjson")
                    .send(batch(i, today).as_bytes())
                    .expect("POST");
                assert_eq!(response.status().as_u16(), 200);
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
        })
    };
    let reader = {
        let (stop, agent, base) = (stop.clone(), agent.clone(), server.base.clone());
        std::thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                for path in [
                    format!("/v1/partners/friendnet/suggestions/fn-{}", k % 6),
                    "/v1/partners/friendnet/feeds/product".into(),
                ] {
                    let response = agent
                        .get(format!("{base}{path}"))
                        .header("Authorization", format!("Bearer {PARTNER}"))
                        .call()
                        .expect("GET");
                    assert_eq!(response.status().as_u16(), 200);
                }
                k += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    let acked_before = acked.load(Ordering::SeqCst);
    let backup = temp.path().join("data-backups").join("backup");
    let position = backup_via(&server, &backup);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender");
    reader.join().expect("reader");
    let sent = acked.load(Ordering::SeqCst);
    assert!(acked_before > 0 && sent > acked_before, "ingest ran across the backup: {acked_before} then {sent}");

    // A whole number of batches, at least every one acknowledged before.
    let batches = (position - start_position) / BATCH;
    assert_eq!(start_position + batches * BATCH, position, "the backup ends between two batches");
    assert!(batches >= acked_before, "{batches} batches in the backup, {acked_before} acknowledged before it");
    assert!(batches <= sent);

    // A backup asked of a data dir a server holds, without --server, is refused.
    let (ok, _, stderr) = run(
        &["backup", temp.path().join("b2").to_str().expect("utf8"), "--data", data.to_str().expect("utf8")],
        KEY_ENV,
    );
    assert!(!ok && stderr.contains("--server"), "{stderr}");
    // So is an existing destination.
    let (ok, stdout, stderr) = run(&["backup", "backup", "--server", &server.base, "--token", ADMIN], &[]);
    assert!(!ok && stderr.contains("409") && stderr.contains("exists"), "{stdout}{stderr}");
    // A request names a backup, never a path: the server writes nowhere but
    // its backup_dir.
    let outside = temp.path().join("elsewhere");
    for body in [
        json!({ "name": "../elsewhere" }),
        json!({ "name": ".hidden" }),
        json!({ "name": "a/b" }),
        json!({ "dir": outside.to_str().expect("utf8") }),
    ] {
        let (status, answer) =
            server.post("/v1/admin/backup", Some(ADMIN), "application/json", body.to_string().as_bytes());
        assert_eq!((status, &answer["code"]), (400, &json!("invalid_body")), "{body}: {answer}");
    }
    assert!(!outside.exists() && !temp.path().join("data-backups").join(".hidden").exists());
    let (ok, _, stderr) =
        run(&["backup", outside.to_str().expect("utf8"), "--server", &server.base, "--token", ADMIN], &[]);
    assert!(!ok && stderr.contains("give the backup a name"), "{stderr}");

    // Audit log and feeds: whole-record prefixes of the source's, verified.
    audit_verifies(&backup);
    let audit = Path::new("audit/disclosures.log");
    assert!(is_prefix(&backup.join(audit), &data.join(audit)));
    let feed = Path::new("feeds/friendnet.product.ndjson");
    assert!(backup.join(feed).exists() && is_prefix(&backup.join(feed), &data.join(feed)));
    let source_subject = server.subject(&phone(1));
    drop(server);

    // The backup serves exactly what a server fed the same batches answers.
    let restored = start(&backup);
    assert_eq!(events(&restored), position);
    let reference_dir = temp.path().join("reference");
    let reference = start(&reference_dir);
    reference.ingest(&setup.join("\n"));
    reference.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    for i in 0..batches {
        reference.ingest(&batch(i, today));
    }
    assert_eq!(events(&reference), position);
    let (from, to) = (day(today - 40 * DAY_MS), day(today));
    let subject = restored.subject(&phone(1));
    assert_eq!(subject, source_subject);
    let (got, want) = (answers(&restored, &from, &to, &subject), answers(&reference, &from, &to, &subject));
    for ((path, got), (_, want)) in got.iter().zip(&want) {
        assert_eq!(got, want, "{path}");
    }
    let (_, messages) = restored.get(&format!("/v1/metrics/messages?from={from}&to={to}"), Some(ANALYST));
    let total: u64 =
        messages["series"].as_array().expect("series").iter().map(|d| d["messages"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, 2 + batches * BATCH, "{messages}");
    restored.stop();
    reference.stop();
}

/// Scans every file under the data dir for each needle.
fn traces(data: &Path, needles: &[&[u8]]) -> Vec<String> {
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
fn a_person_erased_after_the_backup_stays_erased_on_restore() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = start(&data);
    let old = common::now_ms() - 40 * DAY_MS;
    let today = common::now_ms() - 60_000;
    assert_eq!(server.ingest(&setup_lines(old, today).join("\n"))["rejected"], json!([]));
    let (_, suggestions) = server.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    assert!(suggestions.to_string().contains("fn-1"), "the target is disclosed: {suggestions}");
    let target = phone(1);
    let subject = server.subject(&target);
    let on = day(today);
    let (_, active) = server.get(&format!("/v1/metrics/active?from={on}&to={on}&window=1"), Some(ANALYST));
    let before = active["series"][0]["active"].as_u64().expect("active");

    let backup = temp.path().join("data-backups").join("backup");
    backup_via(&server, &backup);
    let edge = Edge::new(PseudonymKey::from_hex(KEY_HEX).expect("key"), proviso::contract::Region(*b"US"));
    let (pseudonym, _) = edge.resolve_phone(&target, None).expect("phone");
    assert!(!traces(&backup, &[pseudonym.as_bytes()]).is_empty(), "the backup holds the person");

    let (status, erased) =
        server.post(&format!("/v1/subjects/{subject}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!((status, &erased["compacted"]), (200, &json!(true)), "{erased}");
    let digits = target.trim_start_matches('+').to_string();
    let needles: [&[u8]; 4] = [pseudonym.as_bytes(), subject.as_bytes(), digits.as_bytes(), b"\"fn-1\""];
    assert!(traces(&data, &needles).is_empty(), "the live dir's ledger names nobody");
    let ledger = std::fs::read(data.join("vault/erasures.bin")).expect("ledger");
    assert_eq!(ledger.len(), 16, "one mark for one erasure");

    // A restore that names no ledger is refused.
    let restored = temp.path().join("restored");
    let (backup_arg, restored_arg) = (backup.to_str().expect("utf8"), restored.to_str().expect("utf8"));
    let (ok, _, stderr) = run(&["restore", backup_arg, "--into", restored_arg], KEY_ENV);
    assert!(!ok && stderr.contains("--erasures-from"), "{stderr}");
    assert!(!restored.exists());
    // With the live dir's ledger, the person is erased again.
    let (ok, stdout, stderr) =
        run(&["restore", backup_arg, "--into", restored_arg, "--erasures-from", data.to_str().expect("utf8")], KEY_ENV);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("1 people erased"), "{stdout}");
    let found = traces(&restored, &needles);
    assert!(found.is_empty(), "{found:#?}");
    audit_verifies(&restored);

    let server_restored = start(&restored);
    let body = json!({ "phone": target }).to_string();
    let (status, _) = server_restored.post("/v1/subjects/resolve", Some(SUBJECT), "application/json", body.as_bytes());
    assert_eq!(status, 404);
    assert_eq!(server_restored.get(&format!("/v1/subjects/{subject}/report"), Some(SUBJECT)).0, 404);
    let (_, active) = server_restored.get(&format!("/v1/metrics/active?from={on}&to={on}&window=1"), Some(ANALYST));
    assert_eq!(active["series"][0]["active"].as_u64(), Some(before - 1), "{active}");
    let (_, again) = server_restored.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    assert!(!again.to_string().contains("fn-1"), "{again}");
    let (_, feed) = server_restored.get("/v1/partners/friendnet/feeds/product", Some(PARTNER));
    assert!(!feed.to_string().contains("fn-1"), "{feed}");
    assert!(
        feed["records"].as_array().expect("records").iter().any(|r| r["op"] == "retract" && r["reason"] == "deleted"),
        "the partner is told: {feed}"
    );
    // Everyone else is intact.
    assert_eq!(server_restored.subject(&phone(3)), server.subject(&phone(3)));
    assert!(traces(&restored, &needles).is_empty(), "nor after serving it");
    server_restored.stop();

    // The restored dir keeps the mark: a restore from it honours it too.
    assert_eq!(std::fs::read(restored.join("vault/erasures.bin")).expect("ledger").len(), 16);

    // Offline: with the server stopped, the CLI backs the data dir up itself.
    server.stop();
    let offline = temp.path().join("offline");
    let (ok, stdout, stderr) = run(
        &["backup", offline.to_str().expect("utf8"), "--data", data.to_str().expect("utf8")],
        &[("PROVISO_PSEUDONYM_KEY", KEY_HEX)],
    );
    assert!(ok, "{stdout}{stderr}");
    let served = start(&offline);
    assert_eq!(served.subject(&phone(3)), server_restored_subject(&phone(3)));
    served.stop();
}

fn server_restored_subject(number: &str) -> String {
    let edge = Edge::new(PseudonymKey::from_hex(KEY_HEX).expect("key"), proviso::contract::Region(*b"US"));
    edge.resolve_phone(number, None).expect("phone").0.subject_id()
}

/// An erasure still waiting for its compaction when the backup is asked for
/// is compacted first: the backup holds no trace of the person.
#[test]
fn a_backup_holds_no_erasure_still_waiting_for_compaction() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start_with(
        &data,
        &[("PROVISO_PSEUDONYM_KEY", KEY_HEX), ("PROVISO_ERASURE_COMPACTION_SECONDS", "3600")],
    );
    let old = common::now_ms() - 40 * DAY_MS;
    let today = common::now_ms() - 60_000;
    assert_eq!(server.ingest(&setup_lines(old, today).join("\n"))["rejected"], json!([]));
    server.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    let target = phone(1);
    let subject = server.subject(&target);
    let (status, erased) =
        server.post(&format!("/v1/subjects/{subject}/erase"), Some(SUBJECT), "application/json", b"");
    assert_eq!((status, &erased["compacted"]), (200, &json!(false)), "{erased}");
    let edge = Edge::new(PseudonymKey::from_hex(KEY_HEX).expect("key"), proviso::contract::Region(*b"US"));
    let (pseudonym, _) = edge.resolve_phone(&target, None).expect("phone");
    assert!(!traces(&data, &[pseudonym.as_bytes()]).is_empty(), "the live log still holds them");
    let backup = temp.path().join("data-backups").join("backup");
    backup_via(&server, &backup);
    let digits = target.trim_start_matches('+').to_string();
    let needles: [&[u8]; 4] = [pseudonym.as_bytes(), subject.as_bytes(), digits.as_bytes(), b"\"fn-1\""];
    let found = traces(&backup, &needles);
    assert!(found.is_empty(), "{found:#?}");
    assert!(traces(&data, &needles).is_empty(), "the source was compacted too");
    audit_verifies(&backup);
}
