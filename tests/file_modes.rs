//! End-to-end: the data dir, every directory in it and every file proviso
//! writes there are readable by their owner only (0700 / 0600), whichever
//! path wrote them (log, snapshot, key, admin token, audit log, feeds), and
//! so is the `proviso ingest --rejects` file. A data dir left with looser
//! modes is tightened when it is opened.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{command, Server, PARTNER, SUBJECT};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Every directory (the root included) and file under `root` with a mode
/// other than 0700 / 0600, as `path mode` lines.
fn loose_entries(root: &Path) -> Vec<String> {
    let mut loose = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).expect("metadata");
        let expected = if metadata.is_dir() { 0o700 } else { 0o600 };
        if mode(&path) != expected {
            loose.push(format!("{} {:o}", path.display(), mode(&path)));
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(entry.expect("entry").path());
            }
        }
    }
    loose
}

fn files(root: &Path) -> Vec<PathBuf> {
    common::files_under(root).into_iter().map(|p| p.strip_prefix(root).expect("under root").to_path_buf()).collect()
}

fn phone(k: u32) -> String {
    format!("+9198766{k:05}")
}

/// Events, a disclosure, a refusal (retraction written to the feed), a feed
/// read and a clean stop (snapshot): every file that results is 0600.
#[test]
fn every_file_and_directory_in_the_data_dir_is_owner_only() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start_with(&data, &[("PROVISO_AUDIENCE_K", "10")]);
    let long_ago = common::now_ms() - 40 * DAY_MS;
    let mut lines = Vec::new();
    for k in 0..4u32 {
        let p = phone(k);
        lines.push(format!(r#"{{"type":"session","ts":{long_ago},"phone":"{p}","device":"d{k}"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{long_ago},"phone":"{p}","partner_id":"fn-{k}"}}"#));
    }
    let book: Vec<String> = (1..=3).map(phone).collect();
    lines.push(json!({"type": "contacts", "ts": long_ago, "phone": phone(0), "contacts": book}).to_string());
    assert_eq!(server.ingest(&lines.join("\n"))["rejected"], json!([]));
    let (status, suggested) = server.get("/v1/partners/friendnet/suggestions/fn-0", Some(PARTNER));
    assert_eq!((status, suggested.as_array().map(Vec::len)), (200, Some(3)), "{suggested}");
    let refuser = server.subject(&phone(2));
    let (status, _) =
        server.put(&format!("/v1/subjects/{refuser}/consent/product"), Some(SUBJECT), &json!({"granted": false}));
    assert_eq!(status, 200);
    let (status, feed) = server.get("/v1/partners/friendnet/feeds/product?limit=100", Some(PARTNER));
    assert_eq!(status, 200, "{feed}");
    assert!(feed.to_string().contains("retract"), "the refusal retracted a suggestion: {feed}");
    server.stop();

    let written = files(&data);
    for expected in ["state/snapshot.bin", "audit/disclosures.log", "feeds/friendnet.product.ndjson", "pseudonym.key"] {
        assert!(written.iter().any(|p| p == Path::new(expected)), "{expected} missing from {written:?}");
    }
    assert!(written.iter().any(|p| p.starts_with("log")), "no log segment in {written:?}");
    assert_eq!(loose_entries(&data), Vec::<String>::new(), "entries looser than 0700/0600");
}

/// A data dir and files made with a permissive umask (0755 / 0644) are
/// tightened to 0700 / 0600 when the server opens it again.
#[test]
fn a_loose_data_dir_is_tightened_when_opened() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let server = Server::start(&data);
    server.ingest(&format!(r#"{{"type":"session","ts":{},"phone":"{}","device":"d"}}"#, common::now_ms(), phone(9)));
    server.stop();
    let mut stack = vec![data.clone()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(entry.expect("entry").path());
            }
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod file");
        }
    }
    assert!(!loose_entries(&data).is_empty(), "the test loosened the modes");

    let server = Server::start(&data);
    assert_eq!(loose_entries(&data), Vec::<String>::new(), "entries left looser than 0700/0600 after opening");
    server.stop();
}

/// `proviso ingest --rejects FILE` writes the rejected lines (which may hold
/// numbers) owner-only, even over an existing world-readable file; the data
/// dir it creates is owner-only too.
#[test]
fn ingest_rejects_file_is_owner_only() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let rejects = temp.path().join("rejects.ndjson");
    for existing in [false, true] {
        if existing {
            std::fs::write(&rejects, "old\n").expect("write");
            std::fs::set_permissions(&rejects, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        } else {
            let _ = std::fs::remove_file(&rejects);
        }
        let mut child = command()
            .args(["ingest", "-", "--data"])
            .arg(&data)
            .arg("--rejects")
            .arg(&rejects)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ingest");
        let input = format!(
            "{}\n{{\"type\":\"session\",\"ts\":1,\"phone\":\"{}\",\"text\":\"hello\"}}\n",
            json!({"type": "session", "ts": common::now_ms(), "phone": phone(1), "device": "d"}),
            phone(2)
        );
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), input.as_bytes()).expect("write stdin");
        let output = child.wait_with_output().expect("ingest runs");
        assert!(output.status.success(), "ingest failed: {}", String::from_utf8_lossy(&output.stderr));
        assert!(std::fs::read_to_string(&rejects).expect("rejects").contains("hello"), "the bad line is kept");
        assert_eq!(format!("{:o}", mode(&rejects)), "600", "rejects file (existing before: {existing})");
        assert_eq!(loose_entries(&data), Vec::<String>::new(), "entries looser than 0700/0600");
    }
}
