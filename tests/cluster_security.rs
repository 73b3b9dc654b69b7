//! Who may write into a cluster: anything that can publish to the cluster's
//! subjects writes records into every node's state, past the edge, and
//! anything that can read them sees pseudonyms and events. So a node
//! connects to NATS with a user and password or a token, and over TLS
//! when told the certificate authority; these tests run a real
//! `nats-server` with authorization and TLS, and check that a node without
//! the credentials (or without the CA) is refused, saying why, while one
//! with them joins and takes writes.

mod common;

use std::path::Path;

use common::nats::Nats;
use common::Server;

const KEY: &str = "5be1c0ffee5be1c0ffee5be1c0ffee5be1c0ffee5be1c0ffee5be1c0ffee0042";

/// Runs `proviso serve` on `nats` expecting it to fail; returns stderr.
fn refused(data: &Path, nats: &str, env: &[(&str, &str)]) -> String {
    let mut command = common::command();
    command.args(["serve", "--listen", "127.0.0.1:0", "--data"]).arg(data);
    command.env("PROVISO_NATS", nats).env("PROVISO_PSEUDONYM_KEY", KEY);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.stdin(std::process::Stdio::null()).output().expect("run proviso serve");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "a node joined that should not have: {stderr}");
    stderr
}

fn joins(data: &Path, nats: &str, env: &[(&str, &str)]) -> Server {
    let mut all = vec![("PROVISO_NATS", nats), ("PROVISO_PSEUDONYM_KEY", KEY)];
    all.extend_from_slice(env);
    let server = Server::start_with(data, &all);
    let now = common::now_ms() - 60_000;
    let line = format!(r#"{{"type":"register","ts":{now},"phone":"+14155550199","device":"d","platform":"ios"}}"#);
    assert_eq!(server.ingest(&line)["accepted"], 1, "the node takes writes");
    server
}

/// A server with users: a node with no credentials, or a wrong password,
/// is refused and says what to set (never repeating a password); one with
/// the user's password joins. A server with a token: the same with
/// `nats_token`. A password in the URL is refused before any connection.
#[test]
fn nats_with_authorization_takes_only_nodes_that_have_the_credentials() {
    let temp = tempfile::tempdir().expect("tempdir");
    let password = "a-long-nats-password-0123456789";
    // The nodes' user may use the cluster's subjects, JetStream's API and
    // the bucket, and nothing more (what docs/scale.md tells operators).
    let allowed = r#"["proviso.>", "$JS.>", "$KV.proviso_cluster.>", "$KV.proviso_leases.>", "_INBOX.>"]"#;
    let nats = Nats::start_with_config(
        &temp.path().join("users"),
        &format!(
            r#"authorization {{ users = [ {{ user: "proviso", password: "{password}", permissions: {{ publish: {allowed}, subscribe: {allowed} }} }} ] }}"#
        ),
    );
    let data = temp.path().join("node");
    let stderr = refused(&data, &nats.url, &[]);
    assert!(stderr.contains("authorization violation") && stderr.contains("nats_user"), "{stderr}");
    let stderr = refused(&data, &nats.url, &[("PROVISO_NATS_USER", "proviso"), ("PROVISO_NATS_PASSWORD", "wrong-one")]);
    assert!(stderr.contains("authorization violation"), "{stderr}");
    assert!(!stderr.contains("wrong-one"), "the password is not repeated: {stderr}");
    let node = joins(&data, &nats.url, &[("PROVISO_NATS_USER", "proviso"), ("PROVISO_NATS_PASSWORD", password)]);
    assert!(!node.stderr().contains(password), "nor logged");
    // Those rights are enough for the partition leases too: the one node
    // holds every partition.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, health) = node.get("/healthz", None);
        if health["partitions_held"].as_array().map(Vec::len) == Some(64) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the node holds no leases: {health}\n{}", node.stderr());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(node);

    let in_url = nats.url.replace("nats://", &format!("nats://proviso:{password}@"));
    let stderr = refused(&temp.path().join("other"), &in_url, &[]);
    assert!(stderr.contains("not in the URL"), "{stderr}");
    assert!(!stderr.contains(password), "{stderr}");

    let token = "a-long-nats-token-0123456789abcdef";
    let nats = Nats::start_with_config(&temp.path().join("token"), &format!(r#"authorization {{ token: "{token}" }}"#));
    let data = temp.path().join("token-node");
    let stderr = refused(&data, &nats.url, &[]);
    assert!(stderr.contains("authorization violation"), "{stderr}");
    drop(joins(&data, &nats.url, &[("PROVISO_NATS_TOKEN", token)]));
}

/// `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A certificate authority (`name`-ca.pem) and, when `server`, a server
/// certificate for 127.0.0.1 it signed (`name`-cert.pem, `name`-key.pem).
fn authority(dir: &Path, name: &str, server: bool) {
    let ca_key = format!("{name}-ca-key.pem");
    let ca = format!("{name}-ca.pem");
    let subject = format!("/CN=proviso test CA {name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj",
            &subject,
        ],
    );
    if !server {
        return;
    }
    let key = format!("{name}-key.pem");
    let csr = format!("{name}.csr");
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write san.ext");
    let cert = format!("{name}-cert.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// A server that requires TLS: a node given the CA that signed its
/// certificate joins and takes writes; one given another CA, or none, is
/// refused, and the one with the wrong CA says TLS failed.
#[test]
fn nats_over_tls_takes_only_nodes_that_trust_its_certificate() {
    let temp = tempfile::tempdir().expect("tempdir");
    let certs = temp.path().join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    authority(&certs, "good", true);
    authority(&certs, "other", false);
    let nats = Nats::start_with_config(
        &temp.path().join("nats"),
        &format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}",
            certs.join("good-cert.pem").display(),
            certs.join("good-key.pem").display()
        ),
    );
    let data = temp.path().join("node");
    let other = certs.join("other-ca.pem");
    let stderr = refused(&data, &nats.url, &[("PROVISO_NATS_CA", other.to_str().expect("utf8"))]);
    assert!(stderr.contains("TLS failed"), "{stderr}");
    refused(&data, &nats.url, &[]);
    let good = certs.join("good-ca.pem");
    drop(joins(&data, &nats.url, &[("PROVISO_NATS_CA", good.to_str().expect("utf8"))]));
}
