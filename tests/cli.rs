//! End-to-end tests of the command line: ingest, query, simulate, config errors.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::command;

fn run(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = command()
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn proviso");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// `proviso ingest` keeps valid lines, summarises rejections by reason,
/// writes bad lines to --rejects, and `proviso query` then reads the counts.
#[test]
fn ingest_then_query_from_the_data_dir() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let rejects = temp.path().join("rejects.ndjson");
    let input = [
        r#"{"type":"session","ts":"2026-01-02T10:00:00Z","phone":"+919812345678","device":"d1"}"#,
        r#"{"type":"session","ts":"2026-01-02T11:00:00Z","phone":"+5511987654321","device":"d2"}"#,
        r#"{"type":"message","ts":"2026-01-03T11:00:00Z","phone":"+5511987654321","to":"+919812345678","kind":"text","body":"x"}"#,
        r#"{"type":"message","ts":"2026-01-03T11:00:00Z","phone":"+5511987654321","to":"+919812345678","kind":"call"}"#,
        r#"{"type":"session","ts":"2026-01-03T11:00:00Z","phone":"+1","device":"d2"}"#,
    ]
    .join("\n");
    let data_arg = data.to_str().expect("utf8");
    let output = run(
        &["ingest", "-", "--data", data_arg, "--rejects", rejects.to_str().expect("utf8"), "--json"],
        Some(input.as_bytes()),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json summary");
    assert_eq!(summary["accepted"], 3);
    assert_eq!(summary["rejected"], 2);
    assert_eq!(summary["rejected_by_reason"]["content"], 1);
    assert_eq!(summary["rejected_by_reason"]["invalid_phone"], 1);
    assert!(summary["first_errors"][0].as_str().expect("error").starts_with("line 3:"));
    let kept = std::fs::read_to_string(&rejects).expect("rejects file");
    assert_eq!(kept.lines().count(), 2);
    assert!(kept.lines().next().expect("line").contains(r#""body":"x""#));

    let output =
        run(&["query", "active", "--data", data_arg, "--from", "2026-01-02", "--to", "2026-01-03", "--json"], None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let active: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(active["series"][0]["active"], 2);
    assert_eq!(active["series"][1]["active"], 1);

    let output = run(
        &["query", "messages", "--data", data_arg, "--from", "2026-01-03", "--to", "2026-01-03", "--by", "kind"],
        None,
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("2026-01-03") && table.contains("call=1"), "{table}");
}

/// The simulator is deterministic: the same seed gives the same bytes, and
/// every line it writes passes the privacy edge.
#[test]
fn simulate_is_deterministic_and_its_output_is_accepted() {
    let args = ["simulate", "--subjects", "300", "--events", "5000", "--seed", "11"];
    let first = run(&args, None);
    let second = run(&args, None);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(first.stdout, second.stdout);
    let other = run(&["simulate", "--subjects", "300", "--events", "5000", "--seed", "12"], None);
    assert_ne!(first.stdout, other.stdout);

    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let output = run(&["ingest", "-", "--data", data.to_str().expect("utf8"), "--json"], Some(&first.stdout));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let lines = first.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    assert_eq!(summary["rejected"], 0, "{summary}");
    assert_eq!(summary["accepted"].as_u64(), Some(lines));
}

/// A bad configuration lists every problem and exits non-zero before opening
/// anything.
#[test]
fn bad_configuration_lists_every_problem_and_opens_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = temp.path().join("proviso.toml");
    std::fs::write(&config, "max_request_bytes = 1\nlisten_addr = \"x\"\n").expect("write");
    let data = temp.path().join("data");
    let output =
        run(&["serve", "--data", data.to_str().expect("utf8"), "--config", config.to_str().expect("utf8")], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `listen_addr`"), "{stderr}");
    assert!(!data.exists(), "nothing opened");

    std::fs::write(&config, "max_request_bytes = 1\n").expect("write");
    let output = command()
        .args([
            "serve",
            "--data",
            data.to_str().expect("utf8"),
            "--config",
            config.to_str().expect("utf8"),
            "--default-region",
            "XX9",
        ])
        .env("PROVISO_INGEST_TOKEN", "short")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_request_bytes must be at least 1024"), "{stderr}");
    assert!(stderr.contains("default_region"), "{stderr}");
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
    assert!(!data.exists(), "nothing opened");
}

/// A broken abuse rules file given to `serve` is reported like any other
/// bad setting, with every problem in it, and nothing is opened.
#[test]
fn serve_with_a_broken_rules_file_lists_its_problems_and_opens_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let rules = temp.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"x\"\nwhen = \"nonsense\"\n").expect("write");
    let data = temp.path().join("data");
    let output = run(
        &[
            "serve",
            "--data",
            data.to_str().expect("utf8"),
            "--rules",
            rules.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
        ],
        None,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: invalid configuration:\n  - rules: invalid abuse rules in "), "{stderr}");
    assert!(stderr.contains("rule `x`: when: column 1: unknown feature `nonsense`"), "{stderr}");
    assert!(stderr.contains("rule `x`: reason: missing"), "{stderr}");
    assert!(!data.exists(), "nothing opened");
}

/// `proviso config show` prints the options in force with each layer in
/// its place (default < file < env < flag) and never a secret in clear,
/// whichever layer the secret came from.
#[test]
fn config_show_prints_every_layer_and_masks_secrets() {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = temp.path().join("proviso.toml");
    let file_secret = "file-secret-token-0123456789";
    let env_secret = "env-secret-token-0123456789";
    let flag_secret = "flag-secret-token-0123456789";
    let key_secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    std::fs::write(
        &config,
        format!(
            "snapshot_every_records = 1234\nmax_connections = 7\nmax_live_streams_per_token = 5\n\
             [[tokens]]\nname = \"ops\"\nrole = \"analyst\"\ntoken = \"{file_secret}\"\n\
             [[partners]]\nname = \"friendnet\"\npurposes = [\"security\"]\ntokens = [\"{file_secret}-p\"]\n"
        ),
    )
    .expect("write");
    let output = command()
        .args(["config", "show", "--config", config.to_str().expect("utf8")])
        .args(["--max-live-streams-per-token", "9", "--reviewer-token", flag_secret])
        .env("PROVISO_MAX_CONNECTIONS", "8")
        .env("PROVISO_MAX_LIVE_STREAMS_PER_TOKEN", "6")
        .env("PROVISO_ADMIN_TOKEN", env_secret)
        .env("PROVISO_PSEUDONYM_KEY", key_secret)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for secret in [file_secret, env_secret, flag_secret, key_secret] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret printed:\n{stdout}\n{stderr}");
    }
    let shown: toml::Table = toml::from_str(&stdout).expect("config show prints TOML");
    let value = |key: &str| shown.get(key).unwrap_or_else(|| panic!("{key} missing from\n{stdout}")).clone();
    assert_eq!(value("segment_bytes").as_integer(), Some(256 << 20), "default");
    assert_eq!(value("snapshot_every_records").as_integer(), Some(1234), "file over default");
    assert_eq!(value("max_connections").as_integer(), Some(8), "env over file");
    assert_eq!(value("max_live_streams_per_token").as_integer(), Some(9), "flag over env and file");
    for secret_key in ["admin_token", "reviewer_token", "pseudonym_key"] {
        assert_eq!(value(secret_key).as_str(), Some("***"), "{secret_key}");
    }
    let tokens = value("tokens");
    assert_eq!(tokens[0]["name"].as_str(), Some("ops"));
    assert_eq!(tokens[0]["token"].as_str(), Some("***"));
    assert_eq!(value("partners")[0]["tokens"][0].as_str(), Some("***"));
}

/// `--help` teaches: the top level lists the subcommands with examples.
#[test]
fn help_lists_subcommands_and_examples() {
    let output = run(&["--help"], None);
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in ["serve", "ingest", "query", "simulate", "demo", "rebuild", "proviso demo"] {
        assert!(help.contains(needle), "{needle} in {help}");
    }
    // A subcommand's `--help` is its whole description, `-h` its one line.
    for (command, long_only) in [("ingest", "survives a crash"), ("soak", "per minute"), ("serve", "replays only what")]
    {
        let long = String::from_utf8_lossy(&run(&[command, "--help"], None).stdout).to_string();
        let short = String::from_utf8_lossy(&run(&[command, "-h"], None).stdout).to_string();
        assert!(long.contains(long_only), "{command} --help lacks {long_only:?}: {long}");
        assert!(!short.contains(long_only), "{command} -h has the whole description: {short}");
        assert!(long.len() > short.len(), "{command} --help is no longer than -h: {long}");
    }
}

/// `proviso demo` starts a server on its own data dir, streams the simulator
/// into it, shows live figures and stops cleanly with every line accepted.
#[test]
fn demo_streams_the_simulator_into_a_live_server() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("demo");
    let output = run(
        &[
            "demo",
            "--data",
            data.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "3",
            "--subjects",
            "2000",
            "--events",
            "20000",
            "--rate",
            "20000",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("proviso demo listening on http://127.0.0.1:"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("events ") && l.contains("DAU")), "{stdout}");
    let summary = stdout.lines().find(|l| l.starts_with("streamed ")).expect("summary line");
    let numbers: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
    assert!(numbers[0] > 0, "{summary}");
    assert_eq!(numbers[0], numbers[1], "every streamed line accepted: {summary}");
    assert_eq!(numbers[2], 0, "{summary}");
    assert!(data.join("log").is_dir());
}

/// After its catch-up `proviso demo` keeps streaming in real time: the
/// server's event count keeps growing and today has active people. SIGTERM
/// then stops the stream, the partner and the server in that order: exit 0,
/// every line accepted, no error on stderr.
#[test]
fn demo_streams_live_after_the_catch_up_and_stops_cleanly_on_sigterm() {
    use std::io::BufRead;
    use std::process::Command;
    use std::time::{Duration, Instant};

    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("demo");
    let stderr_path = temp.path().join("demo.stderr.log");
    let mut child = command()
        .args(["demo", "--listen", "127.0.0.1:0", "--subjects", "300", "--days", "3", "--events", "3000"])
        .args(["--live-rate", "300", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn proviso demo");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let pid = child.id().to_string();
    let mut printed = Vec::new();
    let mut next_line_with = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            printed.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        let _ = Command::new("kill").arg("-KILL").arg(&pid).status();
        panic!("no {needle:?} in:\n{}", printed.join("\n"));
    };
    let base = next_line_with("proviso demo listening on ").replace("proviso demo listening on ", "");
    let admin = next_line_with("admin token:");
    let token = admin.split_whitespace().nth(2).expect("admin token").to_string();
    next_line_with("caught up; streaming live at 300 events/s");

    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(10))).build(),
    );
    let get = |path: &str| -> serde_json::Value {
        let mut response = agent
            .get(format!("{base}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.body_mut().read_json().expect("json")
    };
    let events = || get("/healthz")["events"].as_u64().expect("events");
    let caught_up = events();
    std::thread::sleep(Duration::from_secs(4));
    let later = events();
    assert!(later >= caught_up + 300, "events {caught_up} then {later} four seconds later");
    let today = time::OffsetDateTime::now_utc().date();
    let today = format!("{:04}-{:02}-{:02}", today.year(), u8::from(today.month()), today.day());
    let active = get(&format!("/v1/metrics/active?from={today}&to={today}&window=1"));
    assert!(active["series"][0]["active"].as_u64().unwrap_or(0) > 0, "nobody active today: {active}");

    let stopping = Instant::now();
    assert!(Command::new("kill").arg("-TERM").arg(&pid).status().expect("kill").success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if stopping.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the demo did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    assert!(!stderr.to_lowercase().contains("error"), "stderr:\n{stderr}");
    let summary = next_line_with("streamed ");
    let numbers: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
    assert_eq!(numbers[0], numbers[1], "every streamed line accepted: {summary}");
    assert_eq!(numbers[2], 0, "{summary}");
    assert!(numbers[4] > 0, "live lines: {summary}");
}
