//! End-to-end in a real browser: headless Chromium (Debian's, driven by
//! playwright-core from `tests/browser/`) against the real binary on
//! loopback. Needs `/usr/bin/chromium` (or `$CHROMIUM`), Node.js and
//! `tests/browser/node_modules`; `.ci/run` installs them. Missing pieces fail
//! the test with the command to run; it never skips.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{day_name, ts, Server};

/// How long one script may run before it is killed and the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Screenshots (also `FAILED-<script>.png` of a failing run) go here.
fn artifacts() -> PathBuf {
    repo_root().join("target").join("browser-artifacts")
}

/// Panics with what to run when the browser, Node.js or playwright-core is missing.
fn check_prerequisites() -> String {
    let install = "install them with `bash .ci/run` (which installs what the browser tests need), \
                   or `apt-get install -y chromium && npm ci --prefix tests/browser`";
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    assert!(Path::new(&chromium).exists(), "browser tests need Chromium at {chromium} (or set $CHROMIUM): {install}");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
    let major = node.as_deref().ok().and_then(|v| v.trim().strip_prefix('v')?.split('.').next()?.parse::<u32>().ok());
    assert!(
        major.is_some_and(|major| major >= 20),
        "browser tests need Node.js 20 or later as `node` on PATH (found {node:?}); then {install}"
    );
    let playwright = repo_root().join("tests/browser/node_modules/playwright-core");
    assert!(playwright.exists(), "browser tests need {}: {install}", playwright.display());
    chromium
}

/// One browser test at a time: each measures latencies (the dashboard's 2 s)
/// that a demo streaming beside it on 2 cores would distort.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `node tests/browser/<script>` against `server` and asserts it exits 0.
fn run_script(script: &str, server: &Server, extra_env: &[(&str, &str)]) {
    run_script_at(script, &server.base, extra_env, &|| server.stderr());
}

/// Runs `node tests/browser/<script>` against the server at `base`; on
/// failure prints `server_log()` too.
fn run_script_at(script: &str, base: &str, extra_env: &[(&str, &str)], server_log: &dyn Fn() -> String) {
    let chromium = check_prerequisites();
    let mut command = Command::new("node");
    command
        .arg(Path::new("tests/browser").join(script))
        .current_dir(repo_root())
        .env("PROVISO_BASE", base)
        .env("PROVISO_ADMIN_TOKEN", common::ADMIN)
        .env("PROVISO_INGEST_TOKEN", common::INGEST)
        .env("PROVISO_ANALYST_TOKEN", common::ANALYST)
        .env("PROVISO_SUBJECT_SERVICE_TOKEN", common::SUBJECT)
        .env("PROVISO_REVIEWER_TOKEN", common::REVIEWER)
        .env("PROVISO_ADVERTISER_TOKEN", common::ADVERTISER)
        .env("PROVISO_PARTNER_TOKEN", common::PARTNER)
        .env("PROVISO_ARTIFACTS", artifacts())
        .env("CHROMIUM", chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn node");
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
    let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    println!("{script} ({:.1} s):\n{stdout}{stderr}", started.elapsed().as_secs_f64());
    let outcome = match status {
        Some(status) if status.success() => return,
        Some(status) => format!("exited with {status}"),
        None => format!("was killed after {} s", SCRIPT_TIMEOUT.as_secs()),
    };
    panic!(
        "browser script {script} {outcome} (screenshots in {})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        artifacts().display(),
        server_log()
    );
}

#[test]
fn dashboard_dau_matches_the_api_and_moves_within_two_seconds() {
    let _serial = serial();
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let phone = |k: u32| format!("+9198765{k:05}");
    let event = |kind: &str, day: i64, k: u32| {
        let extra = if kind == "register" { r#","platform":"android""# } else { "" };
        format!(
            r#"{{"type":"{kind}","ts":{},"phone":"{}","device":"d{k}"{extra}}}"#,
            ts(day, i64::from(k) * 60_000),
            phone(k)
        )
    };
    // Day 40: 20 subjects register and open a session. Day 41 (the latest):
    // 17 subjects are active, 7 of them new.
    let mut lines: Vec<String> = Vec::new();
    lines.extend((0..20).flat_map(|k| [event("register", 40, k), event("session", 40, k)]));
    lines.extend((20..27).map(|k| event("register", 41, k)));
    lines.extend((10..27).map(|k| event("session", 41, k)));
    let response = server.ingest(&lines.join("\n"));
    assert_eq!(response["accepted"], lines.len(), "{response}");

    let day = day_name(41);
    run_script("dashboard.mjs", &server, &[("EXPECT_DAY", &day), ("EXPECT_DAU", "17")]);
}

/// A number looked up in the privacy center leaves no trace: neither its
/// written form, nor its digits, nor its last ten digits are in any file of
/// the data dir or in the server's log.
fn assert_no_trace(number: &str, data: &Path, log: &str) {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let needles = [number.to_string(), digits.clone(), digits[digits.len().saturating_sub(10)..].to_string()];
    let mut places: Vec<(String, Vec<u8>)> = common::files_under(data)
        .into_iter()
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap_or_default()))
        .collect();
    places.push(("the server log".to_string(), log.as_bytes().to_vec()));
    for (place, bytes) in &places {
        for needle in &needles {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{place} contains `{needle}`");
        }
    }
}

#[test]
fn privacy_center_refuses_ads_downloads_the_report_and_erases() {
    let _serial = serial();
    let temp = tempfile::tempdir().expect("tempdir");
    // A fixed key: no random hex can look like the number's digits.
    let key = ("PROVISO_PSEUDONYM_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_AUDIENCE_K", "10"), key]);
    // Twelve people linked to friendnet who message shop-1 and allow ads
    // and product: an ads audience above k = 10.
    let yesterday = common::now_ms() - 86_400_000;
    let mut lines = Vec::new();
    for k in 0..12 {
        let phone = format!("+9198766{k:05}");
        let at = yesterday + i64::from(k) * 1_000;
        lines
            .push(format!(r#"{{"type":"register","ts":{at},"phone":"{phone}","device":"d{k}","platform":"android"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{at},"phone":"{phone}","partner_id":"fn-{k}"}}"#));
        lines.push(format!(
            r#"{{"type":"business_message","ts":{},"phone":"{phone}","business":"shop-1","direction":"out"}}"#,
            at + 100
        ));
        for purpose in ["ads", "product"] {
            lines.push(format!(
                r#"{{"type":"consent","ts":{},"phone":"{phone}","purpose":"{purpose}","granted":true}}"#,
                at + 200
            ));
        }
    }
    let response = server.ingest(&lines.join("\n"));
    assert_eq!(response["accepted"], lines.len(), "{response}");
    run_script(
        "privacy.mjs",
        &server,
        &[("PRIVACY_NUMBER", "+91 98766 00003"), ("PRIVACY_PARTNER_ID", "fn-3"), ("PRIVACY_BUSINESS", "shop-1")],
    );
    // Neither the person's number nor the unknown one tried first.
    for number in ["+91 98766 00003", "+91 98766 99999"] {
        assert_no_trace(number, &server.data, &server.stderr());
    }
}

#[test]
fn review_queue_decisions_change_the_subjects_status() {
    let _serial = serial();
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    // friendnet flags two linked accounts: both go to review.
    let at = common::now_ms() - 60_000;
    let mut lines = Vec::new();
    for k in 0..2 {
        let phone = format!("+9198767{k:05}");
        lines.push(format!(r#"{{"type":"register","ts":{at},"phone":"{phone}","device":"d{k}","platform":"ios"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{at},"phone":"{phone}","partner_id":"fn-{k}"}}"#));
        lines.push(format!(
            r#"{{"type":"partner_flag","ts":{},"phone":"{phone}","partner_id":"fn-{k}","reason":"spam"}}"#,
            at + 1_000
        ));
    }
    let response = server.ingest(&lines.join("\n"));
    assert_eq!(response["accepted"], lines.len(), "{response}");
    let (to_ban, to_clear) = (server.subject("+919876700000"), server.subject("+919876700001"));
    run_script("review.mjs", &server, &[("REVIEW_BAN", &to_ban), ("REVIEW_CLEAR", &to_clear)]);
}

/// `proviso demo` prints links to its three pages (tokens in the fragment)
/// and simulated numbers; opened in the browser, each page is populated.
#[test]
fn demo_pages_open_populated_from_the_printed_links() {
    let _serial = serial();
    use std::io::BufRead;
    let temp = tempfile::tempdir().expect("tempdir");
    let stderr_path = temp.path().join("demo.stderr.log");
    let mut child = common::command()
        .args(["demo", "--listen", "127.0.0.1:0", "--duration", "150", "--subjects", "5000"])
        .args(["--events", "400000", "--rate", "20000", "--data"])
        .arg(temp.path().join("demo"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn proviso demo");
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let _child = KillOnDrop(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Wait for the links; the catch-up takes about 20 s, then the stream
    // goes on live.
    while !printed.lines().any(|line| line.starts_with("admin token:")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => {
                printed.push_str(&line);
                printed.push('\n');
            }
            Err(_) => panic!(
                "the demo printed no links:\n{printed}\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            ),
        }
    }
    let after = |label: &str| -> String {
        let line = printed
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{label} in {printed}"));
        line.trim_start()[label.len()..].trim().to_string()
    };
    let dashboard = after("dashboard:");
    let privacy = after("privacy center:");
    let review = after("review queue:");
    for (link, page) in [
        (&dashboard, "/#token=demo-analyst-"),
        (&privacy, "/privacy#token=demo-subjects-"),
        (&review, "/review#token=demo-reviewer-"),
    ] {
        assert!(link.starts_with("http://127.0.0.1:") && link.contains(page), "{link}");
    }
    let base = dashboard.split("/#").next().expect("base").to_string();
    let numbers = after("try these simulated numbers in the privacy center:");
    let number = numbers.split(", ").next().expect("a number").to_string();
    assert!(number.starts_with('+'), "{numbers}");
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    run_script_at(
        "demo.mjs",
        &base,
        &[
            ("DEMO_DASHBOARD", &dashboard),
            ("DEMO_PRIVACY", &privacy),
            ("DEMO_REVIEW", &review),
            ("DEMO_NUMBER", &number),
        ],
        &log,
    );
}
