//! End-to-end: `proviso audit head` prints the audit chain's head for an
//! operator to keep elsewhere, and `proviso audit verify --head H` proves the
//! log still extends it, which catches a log rewritten from scratch with a
//! valid chain (which `verify` alone cannot).

mod common;

use std::path::Path;

use common::{command, Server, PARTNER};
use proviso::disclose::audit::{AuditLog, AuditRecord, AUDIT_DIR, AUDIT_FILE};

const DAY_MS: i64 = 86_400_000;

fn audit(args: &[&str], data: &Path) -> std::process::Output {
    command().arg("audit").args(args).arg("--data").arg(data).output().expect("run proviso audit")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// `times` suggestion lists disclosed to friendnet, each one audit record.
fn disclose(server: &Server, times: usize) {
    for _ in 0..times {
        let (status, body) = server.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
        assert_eq!(status, 200, "{body}");
    }
}

/// A head kept before more disclosures still verifies; a rewritten or cut log fails against it.
#[test]
fn verify_with_a_kept_head_catches_a_rewritten_chain() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let long_ago = common::now_ms() - 40 * DAY_MS;
    let mut lines = Vec::new();
    for k in 0..3u32 {
        let phone = format!("+9198768{k:05}");
        lines.push(format!(r#"{{"type":"session","ts":{long_ago},"phone":"{phone}","device":"d{k}"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{long_ago},"phone":"{phone}","partner_id":"fn-{k}"}}"#));
    }
    lines.push(
        serde_json::json!({"type": "contacts", "ts": long_ago, "phone": "+919876800000",
            "contacts": ["+919876800001", "+919876800002"]})
        .to_string(),
    );
    server.ingest(&lines.join("\n"));
    disclose(&server, 4);

    // The head names the record count and the last hash.
    let output = audit(&["head"], &data);
    assert!(output.status.success(), "audit head: {}", text(&output.stderr));
    let head = text(&output.stdout).trim().to_string();
    let (count, hash) = head.split_once(':').unwrap_or_else(|| panic!("head is COUNT:HASH, got {head:?}"));
    assert_eq!(count, "4", "{head}");
    assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{head}");

    // More disclosures: the log still extends the kept head.
    disclose(&server, 2);
    server.stop();
    let output = audit(&["verify", "--head", &head], &data);
    assert!(output.status.success(), "verify --head on an extended log: {}", text(&output.stderr));
    assert!(text(&output.stdout).contains("6 records"), "{}", text(&output.stdout));

    // Someone rewrites the log from scratch without record 1, with a valid
    // chain computed by proviso's own code.
    let path = data.join(AUDIT_DIR).join(AUDIT_FILE);
    let records: Vec<AuditRecord> = std::fs::read_to_string(&path)
        .expect("read audit log")
        .lines()
        .map(|line| serde_json::from_str(line).expect("audit record"))
        .collect();
    std::fs::remove_file(&path).expect("remove audit log");
    let forged = AuditLog::open(&data).expect("open a fresh audit log");
    for record in records.into_iter().filter(|record| record.seq != 1) {
        forged
            .append(record.at_ms, &record.recipient, &record.purpose, &record.kind, record.subjects)
            .expect("append forged record");
    }
    drop(forged);

    let output = audit(&["verify"], &data);
    assert!(output.status.success(), "the forged chain is valid on its own: {}", text(&output.stderr));
    let output = audit(&["verify", "--head", &head], &data);
    assert!(!output.status.success(), "verify --head must fail on a rewritten log: {}", text(&output.stdout));
    let message = text(&output.stderr);
    assert!(message.contains("does not extend the head"), "{message}");
    assert!(message.contains("record 3"), "names the record at the head: {message}");

    // A log cut short of the head fails too.
    let lines: Vec<String> = std::fs::read_to_string(&path).expect("read").lines().take(3).map(String::from).collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("truncate");
    let output = audit(&["verify", "--head", &head], &data);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("3 records, fewer than the head's 4"), "{}", text(&output.stderr));

    // A malformed head is a usage error.
    let output = audit(&["verify", "--head", "four:abc"], &data);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("COUNT:HASH"), "{}", text(&output.stderr));
}

/// A broken record while a scrub in place's journal is there: `verify`
/// and `head` say the record may be one an erasure's scrub is rewriting.
#[test]
fn a_broken_record_during_a_scrub_in_place_says_so() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let log = AuditLog::open(&data).expect("open");
    for k in 0..3 {
        log.append(k, "partner:net", "product", "suggestions", vec![format!("r_{:032x}", k)]).expect("append");
    }
    drop(log);
    let path = data.join(AUDIT_DIR).join(AUDIT_FILE);
    let text_before = std::fs::read_to_string(&path).expect("read");
    // Half a handle rewritten: its record no longer matches its hash.
    std::fs::write(&path, text_before.replacen(&format!("r_{:016x}", 0), &format!("d_{:016x}", 7), 1)).expect("tear");
    for args in [&["verify"][..], &["head"][..]] {
        let output = audit(args, &data);
        assert!(!output.status.success());
        let message = text(&output.stderr);
        assert!(message.contains("record 0") && !message.contains("scrub in place"), "{message}");
    }
    std::fs::write(data.join(AUDIT_DIR).join("scrub.journal"), b"").expect("journal");
    for args in [&["verify"][..], &["head"][..]] {
        let output = audit(args, &data);
        assert!(!output.status.success());
        let message = text(&output.stderr);
        assert!(message.contains("scrub in place is under way or was cut short"), "{message}");
    }
}
