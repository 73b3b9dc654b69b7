//! The API fuzzed from its own OpenAPI document with schemathesis, against
//! the real binary: no 5xx, every response (status, headers, body, each
//! `/v1/live` event) matches the document, every schema-valid request is
//! accepted and every schema-violating one refused, every 4xx carries the
//! standard error body.
//!
//! The server holds seeded test data (`proviso simulate`). schemathesis
//! runs twice: each operation with the token of the role it is for, then
//! everything with the admin token. Each run's config (written below) gives
//! half or more of the path parameters known ids (subjects, partner
//! `friendnet`, its account ids, businesses), so the operations get past
//! 401/403/404 to their own logic: every operation must answer 2xx at least
//! once per run. `tests/schemathesis/hooks.py` adds the text serializers
//! and one check (see there).
//!
//! schemathesis comes from PyPI, pinned: `.ci/run` installs it into
//! `target/venv`; elsewhere set `SCHEMATHESIS` to an `st` executable.
//! `FUZZ_SEED` and `FUZZ_MAX_EXAMPLES` change the runs (defaults: seed 13,
//! 30 examples per operation; both runs in about 70 seconds on 2 cores).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, ADMIN, ADVERTISER, ANALYST, INGEST, PARTNER, REVIEWER, SUBJECT};

/// The schemathesis release the run is written for (`.ci/run` installs it).
const PINNED: &str = "4.32.5";

/// The longest one run may take before the test fails, per example per
/// operation, counting at least 30 (150 s for the default 30; a run takes
/// 25 to 40 s on 2 cores).
const DEADLINE_PER_EXAMPLE: Duration = Duration::from_secs(5);

fn install_hint() -> String {
    format!(
        "install it with: python3 -m venv target/venv && target/venv/bin/pip install schemathesis=={PINNED} \
         (on Debian/Ubuntu first: apt-get install python3-venv), or set SCHEMATHESIS to an `st` executable"
    )
}

/// The `st` executable: `$SCHEMATHESIS`, else `target/venv/bin/st`.
fn schemathesis() -> PathBuf {
    let path = match std::env::var_os("SCHEMATHESIS") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/st"),
    };
    let version = Command::new(&path).arg("--version").output();
    match version {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout).to_string();
            assert!(
                text.contains(PINNED),
                "{} is {text:?}, not schemathesis {PINNED}; {}",
                path.display(),
                install_hint()
            );
            path
        }
        _ => panic!("schemathesis is not installed at {} (this test needs it); {}", path.display(), install_hint()),
    }
}

/// Every operation: path, the token of the role it is for.
const OPERATIONS: &[(&str, &str)] = &[
    ("/v1/events", INGEST),
    ("/v1/metrics/active", ANALYST),
    ("/v1/metrics/messages", ANALYST),
    ("/v1/live", ANALYST),
    ("/v1/subjects/resolve", SUBJECT),
    ("/v1/subjects/{subject}/consent", SUBJECT),
    ("/v1/subjects/{subject}/consent/{purpose}", SUBJECT),
    ("/v1/subjects/{subject}/report", SUBJECT),
    ("/v1/subjects/{subject}/erase", SUBJECT),
    ("/v1/abuse/actions", REVIEWER),
    ("/v1/abuse/subjects/{subject}", REVIEWER),
    ("/v1/abuse/subjects/{subject}/decision", REVIEWER),
    ("/v1/abuse/rules", ADMIN),
    ("/v1/admin/backup", ADMIN),
    ("/v1/partners/{partner}/feeds/{purpose}", PARTNER),
    ("/v1/partners/{partner}/suggestions/{partner_id}", PARTNER),
    ("/v1/partners/{partner}/audiences/{business}", PARTNER),
    ("/v1/audiences/{business}", ADVERTISER),
    ("/healthz", ""),
    ("/metrics", ""),
    ("/openapi.json", ""),
];

/// Operations whose schema-valid requests may be refused with 400 for the
/// one reason no schema can say (held to that reason by the hooks' check).
const UNSCHEMABLE: &[&str] = &["/v1/metrics/active", "/v1/metrics/messages", "/v1/subjects/resolve", "/v1/abuse/rules"];

/// Seeded data: ids the run may use in paths and bodies.
struct TestData {
    phones: Vec<String>,
    subjects: Vec<String>,
    /// Subjects only erase may use (so the others stay known), one set per
    /// run.
    erasable: [Vec<String>; 2],
    partner_ids: Vec<String>,
    businesses: Vec<String>,
}

fn seed(server: &Server, dir: &Path) -> TestData {
    let events = dir.join("events.ndjson");
    let status = common::command()
        .args(["simulate", "--seed", "7", "--subjects", "200", "--days", "10", "--events", "5000", "--out"])
        .arg(&events)
        .stderr(Stdio::null())
        .status()
        .expect("run proviso simulate");
    assert!(status.success(), "proviso simulate failed");
    let text = std::fs::read_to_string(&events).expect("events");
    let lines: Vec<&str> = text.lines().collect();
    for chunk in lines.chunks(1000) {
        let response = server.ingest(&chunk.join("\n"));
        assert_eq!(response["accepted"], chunk.len(), "seeding: {response}");
    }
    let mut data = TestData {
        phones: Vec::new(),
        subjects: Vec::new(),
        erasable: [Vec::new(), Vec::new()],
        partner_ids: Vec::new(),
        businesses: Vec::new(),
    };
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).expect("simulated event");
        let text = |key: &str| event[key].as_str().unwrap_or_default().to_string();
        match event["type"].as_str() {
            Some("session") => {
                let phone = text("phone");
                let e164 = phone.starts_with('+') && phone[1..].bytes().all(|b| b.is_ascii_digit());
                if e164 && !data.phones.contains(&phone) && data.phones.len() < 16 {
                    data.phones.push(phone);
                }
            }
            Some("partner_account") if data.partner_ids.len() < 20 => data.partner_ids.push(text("partner_id")),
            Some("business_message") if !data.businesses.contains(&text("business")) => {
                data.businesses.push(text("business"))
            }
            _ => {}
        }
    }
    let subjects: Vec<String> = data.phones.iter().map(|phone| server.subject(phone)).collect();
    data.erasable = [subjects[10..13].to_vec(), subjects[13..].to_vec()];
    data.subjects = subjects[..10].to_vec();
    data.phones.truncate(10);
    assert!(
        data.partner_ids.len() >= 10 && !data.businesses.is_empty(),
        "the simulation links accounts and businesses"
    );
    data
}

fn list(values: &[String]) -> String {
    serde_json::to_string(values).expect("json")
}

/// Which token an operation is called with, given its role's.
type TokenFor = fn(&'static str) -> &'static str;

/// A run's schemathesis.toml: each operation called with `token_for` its
/// role's token, erase with the `run`-th set of erasable subjects.
fn config(data: &TestData, token_for: TokenFor, run: usize) -> String {
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/hooks.py");
    let mut out = format!(
        "hooks = {hooks:?}\ncolor = false\n\n[cache]\nenabled = false\n\n[generation]\ndatabase = \":memory:\"\n\n\
         [dictionaries.phones]\nvalues = {}\n[dictionaries.subjects]\nvalues = {}\n[dictionaries.erasable]\nvalues = {}\n\
         [dictionaries.partners]\nvalues = [\"friendnet\"]\n[dictionaries.partner_ids]\nvalues = {}\n\
         [dictionaries.businesses]\nvalues = {}\n",
        list(&data.phones),
        list(&data.subjects),
        list(&data.erasable[run]),
        list(&data.partner_ids),
        list(&data.businesses),
    );
    for (path, token) in OPERATIONS {
        if token.is_empty() {
            // Public: nothing to set.
            continue;
        }
        out.push_str(&format!("\n[[operations]]\ninclude-path = {path:?}\n"));
        out.push_str(&format!("headers = {{ Authorization = \"Bearer {}\" }}\n", token_for(token)));
        if *path == "/v1/live" {
            // An endless stream: check its first update (sent at once),
            // then hang up (a second one may be a minute away).
            out.push_str("max-stream-events = 1\n");
        }
        if path.ends_with("/erase") {
            // Only the subjects set aside for it: not ids schemathesis picks
            // up from other answers (it would erase the known subjects the
            // other operations need).
            out.push_str(
                "[operations.phases.coverage.extra-data-sources]\nresponses = false\n\
                 [operations.phases.fuzzing.extra-data-sources]\nresponses = false\n",
            );
        }
        if *path == "/v1/events" {
            // A key schemathesis reuses with another body is refused (422,
            // held to `idempotency_key_reused` by the hooks' check).
            out.push_str(
                "[operations.checks.positive_data_acceptance]\n\
                 expected-statuses = [\"2xx\", \"401\", \"403\", \"404\", \"409\", \"422\", \"429\"]\n",
            );
        }
        if UNSCHEMABLE.contains(path) {
            out.push_str(
                "[operations.checks.positive_data_acceptance]\n\
                 expected-statuses = [\"2xx\", \"400\", \"401\", \"403\", \"404\", \"429\"]\n",
            );
        }
        let mut parameters = Vec::new();
        if path.contains("{subject}") {
            let dictionary = if path.ends_with("/erase") { "erasable" } else { "subjects" };
            parameters.push(format!("\"path.subject\" = {{ dictionary = \"{dictionary}\", probability = 0.5 }}"));
        }
        if path.contains("{partner}") {
            parameters.push("\"path.partner\" = { dictionary = \"partners\", probability = 0.8 }".to_string());
        }
        if path.contains("{partner_id}") {
            parameters.push("\"path.partner_id\" = { dictionary = \"partner_ids\", probability = 0.6 }".to_string());
        }
        if path.contains("{business}") {
            parameters.push("\"path.business\" = { dictionary = \"businesses\", probability = 0.6 }".to_string());
        }
        if *path == "/v1/subjects/resolve" {
            parameters.push("\"body.phone\" = { dictionary = \"phones\", probability = 0.5 }".to_string());
        }
        if !parameters.is_empty() {
            out.push_str(&format!("[operations.parameters]\n{}\n", parameters.join("\n")));
        }
    }
    out
}

/// What one schemathesis run left: its exit status (`None`: killed at the
/// deadline), its output, and the statuses each operation was answered.
struct Run {
    status: Option<std::process::ExitStatus>,
    output: String,
    statuses: BTreeMap<String, BTreeMap<u16, u64>>,
    elapsed: Duration,
}

fn run(st: &Path, server: &Server, dir: &Path, name: &str, config_text: &str, seed: &str, examples: &str) -> Run {
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config_text).expect("config");
    let output_path = dir.join(format!("{name}.out"));
    let events_path = dir.join(format!("{name}.ndjson"));
    let output = std::fs::File::create(&output_path).expect("output file");
    let deadline = DEADLINE_PER_EXAMPLE * examples.parse::<u32>().expect("FUZZ_MAX_EXAMPLES is a number").max(30);
    let started = Instant::now();
    let mut child = Command::new(st)
        .arg("--config-file")
        .arg(&config_path)
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args(["--seed", seed, "--max-examples", examples, "--request-timeout", "10"])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&events_path)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("output"))
        .stderr(output)
        .spawn()
        .expect("start schemathesis");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let elapsed = started.elapsed();
    let mut statuses: BTreeMap<String, BTreeMap<u16, u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(&events_path).unwrap_or_default().lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let recorder = &event["ScenarioFinished"]["recorder"];
        let Some(label) = recorder["label"].as_str() else { continue };
        let by_status = statuses.entry(label.to_string()).or_default();
        for interaction in recorder["interactions"].as_object().into_iter().flat_map(|i| i.values()) {
            if let Some(status) = interaction["response"]["status_code"].as_u64() {
                *by_status.entry(status as u16).or_default() += 1;
            }
        }
    }
    Run { status, output: std::fs::read_to_string(&output_path).unwrap_or_default(), statuses, elapsed }
}

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let st = schemathesis();
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let data = seed(&server, temp.path());
    let seed = std::env::var("FUZZ_SEED").unwrap_or_else(|_| "13".to_string());
    let examples = std::env::var("FUZZ_MAX_EXAMPLES").unwrap_or_else(|_| "30".to_string());
    // Each operation with its own role's token, then everything as admin
    // (admitted everywhere, acting for any partner).
    let runs: [(&str, TokenFor); 2] = [("roles", |token| token), ("admin", |_| ADMIN)];
    for (index, (name, token_for)) in runs.into_iter().enumerate() {
        let config_text = config(&data, token_for, index);
        let run = run(&st, &server, temp.path(), name, &config_text, &seed, &examples);
        let report = &run.output;
        let summary = report.lines().rev().find(|line| line.contains(" in ") && line.starts_with('=')).unwrap_or("");
        eprintln!("schemathesis, {name} (seed {seed}, {examples} examples) took {:?}: {summary}", run.elapsed);
        for (operation, statuses) in &run.statuses {
            eprintln!("  {operation}: {statuses:?}");
        }
        let status = run.status.unwrap_or_else(|| panic!("schemathesis ran longer than {:?}:\n{report}", run.elapsed));
        assert!(
            status.success() && !report.contains("FAILURES") && !report.contains("ERRORS"),
            "schemathesis ({name}) found failures (status {status}); config:\n{config_text}\n{report}\nserver errors:\n{}",
            server.stderr().lines().filter(|l| l.contains("ERROR")).collect::<Vec<_>>().join("\n")
        );
        // Every operation but /openapi.json (the schema itself, which
        // schemathesis leaves out) ran, and each got past 401/403/404 to a
        // 2xx at least once: the seeded data reaches the partner routes.
        let operations = OPERATIONS.len() - 1;
        assert!(report.contains(&format!("Tested: {operations}")), "{report}");
        assert_eq!(run.statuses.len(), operations, "{:?}", run.statuses.keys());
        for (operation, statuses) in &run.statuses {
            assert!(
                statuses.keys().any(|s| (200..300).contains(s)),
                "{name}: {operation} never answered 2xx: {statuses:?}"
            );
        }
    }
}
