//! Starts and stops the real `proviso` binary for end-to-end tests.
#![allow(dead_code)]

pub mod nats;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const INGEST: &str = "test-ingest-token-0123456789";
pub const ANALYST: &str = "test-analyst-token-0123456789";
pub const SUBJECT: &str = "test-subject-token-0123456789";
pub const REVIEWER: &str = "test-reviewer-token-0123456789";
pub const ADVERTISER: &str = "test-advertiser-token-0123456789";
/// Token of partner `friendnet` (security, product and ads).
pub const PARTNER: &str = "test-partner-friendnet-0123456789";
/// Token of partner `othernet` (security only).
pub const OTHER_PARTNER: &str = "test-partner-othernet-0123456789";

/// The config every test server starts with: two partners. `friendnet`
/// comes first, so the service's partner events naming no partner are its.
pub const PARTNERS_CONFIG: &str = r#"
[[partners]]
name = "friendnet"
purposes = ["security", "product", "ads"]
tokens = ["test-partner-friendnet-0123456789"]

[[partners]]
name = "othernet"
purposes = ["security"]
tokens = ["test-partner-othernet-0123456789"]
"#;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_proviso")
}

/// A `proviso` command with a clean environment (no inherited PROVISO_*).
pub fn command() -> Command {
    let mut command = Command::new(bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("PROVISO_") {
            command.env_remove(key);
        }
    }
    command
}

/// A running server on a loopback port, killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data: PathBuf,
    pub stderr_path: PathBuf,
    agent: ureq::Agent,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with_config(data, env, "")
    }

    /// Like [`Server::start_with`], with `extra_config` (top-level keys and
    /// `[[tokens]]` tables) placed before [`PARTNERS_CONFIG`] in the config file.
    pub fn start_with_config(data: &Path, env: &[(&str, &str)], extra_config: &str) -> Server {
        Server::start_listening(data, "127.0.0.1:0", env, extra_config)
    }

    /// Like [`Server::start_with_config`], listening on `listen` (e.g. the
    /// port an earlier server of the same test used).
    pub fn start_listening(data: &Path, listen: &str, env: &[(&str, &str)], extra_config: &str) -> Server {
        let (mut cmd, stderr_path) = Server::serve_command(data, listen, env, extra_config);
        let mut child = cmd.spawn().expect("spawn proviso serve");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("proviso listening on ") {
                    let _ = sender.send(addr.to_string());
                }
            }
        });
        let base = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "proviso serve did not start: status {status:?}\nstderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        let server =
            Server { child, base, data: data.to_path_buf(), stderr_path, agent: ureq::Agent::new_with_config(config) };
        let health = server.get("/healthz", None);
        assert_eq!(health.0, 200, "healthz: {:?}", health.1);
        server
    }

    /// Runs `proviso serve` as [`Server::start_with`] would, expecting it to
    /// stop by itself before it listens (a failpoint on its way up): its
    /// exit status and stderr, once it has exited (at most 60 s).
    pub fn run_to_exit(data: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        let (mut cmd, stderr_path) = Server::serve_command(data, "127.0.0.1:0", env, "");
        let mut child = cmd.stdout(Stdio::null()).spawn().expect("spawn proviso serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("proviso serve did not stop:\n{}", std::fs::read_to_string(&stderr_path).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, std::fs::read_to_string(&stderr_path).unwrap_or_default())
    }

    /// The `proviso serve` command of a test server, and where its stderr goes.
    fn serve_command(data: &Path, listen: &str, env: &[(&str, &str)], extra_config: &str) -> (Command, PathBuf) {
        let stderr_path = data.with_extension(format!(
            "stderr.{}.log",
            std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64
        ));
        let stderr_path = unique(stderr_path);
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let config_path = unique(data.with_extension("config.toml"));
        std::fs::write(&config_path, format!("{extra_config}\n{PARTNERS_CONFIG}")).expect("config file");
        let mut cmd = command();
        cmd.args(["serve", "--listen", listen, "--data"])
            .arg(data)
            .arg("--config")
            .arg(&config_path)
            .env("PROVISO_ADMIN_TOKEN", ADMIN)
            .env("PROVISO_INGEST_TOKEN", INGEST)
            .env("PROVISO_ANALYST_TOKEN", ANALYST)
            .env("PROVISO_SUBJECT_SERVICE_TOKEN", SUBJECT)
            .env("PROVISO_REVIEWER_TOKEN", REVIEWER)
            .env("PROVISO_ADVERTISER_TOKEN", ADVERTISER)
            .env("PROVISO_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, value) in env {
            cmd.env(key, value);
        }
        (cmd, stderr_path)
    }

    pub fn post(&self, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let mut request = self.agent.post(format!("{}{}", self.base, path)).header("Content-Type", content_type);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        read(request.send(body).expect("POST"))
    }

    /// POSTs NDJSON to `/v1/events` with `token` and, when given, an
    /// `Idempotency-Key`; an `Err` when no answer came (the server died).
    pub fn try_post_events(
        &self,
        token: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<(u16, serde_json::Value), String> {
        let mut request = self
            .agent
            .post(format!("{}/v1/events", self.base))
            .header("Content-Type", "application/x-ndjson")
            .header("Authorization", format!("Bearer {token}"));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send(body).map(read).map_err(|error| error.to_string())
    }

    pub fn put(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let mut request = self.agent.put(format!("{}{}", self.base, path)).header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        read(request.send(body.to_string().as_bytes()).expect("PUT"))
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.agent.get(format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        read(request.call().expect("GET"))
    }

    /// GETs and returns only the status (for streaming endpoints).
    pub fn get_status(&self, path: &str, token: Option<&str>) -> u16 {
        let mut request = self.agent.get(format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.call().expect("GET").status().as_u16()
    }

    /// Opens a server-sent-event stream; returns a reader of its lines.
    pub fn stream(&self, path: &str, token: &str) -> Box<dyn BufRead + Send> {
        let response = self
            .agent
            .get(format!("{}{}", self.base, path))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("GET stream");
        assert_eq!(response.status().as_u16(), 200);
        Box::new(BufReader::new(response.into_body().into_reader()))
    }

    pub fn get_text(&self, path: &str) -> (u16, String) {
        let mut response = self.agent.get(format!("{}{}", self.base, path)).call().expect("GET");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    }

    /// The subject id of a number (role subject-service); panics unless 200.
    pub fn subject(&self, phone: &str) -> String {
        let body = serde_json::json!({ "phone": phone }).to_string();
        let (status, value) = self.post("/v1/subjects/resolve", Some(SUBJECT), "application/json", body.as_bytes());
        assert_eq!(status, 200, "resolving a number: {value}");
        value["subject"].as_str().expect("subject").to_string()
    }

    /// POSTs NDJSON events with the ingest token; panics unless 200.
    pub fn ingest(&self, ndjson: &str) -> serde_json::Value {
        let (status, body) = self.post("/v1/events", Some(INGEST), "application/x-ndjson", ndjson.as_bytes());
        assert_eq!(status, 200, "ingest failed: {body}");
        body
    }

    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM and wait: the clean shutdown path.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique(path: PathBuf) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_extension(format!("{n}.stderr.log"))
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.body_mut().with_config().limit(64 << 20).read_to_string().expect("body");
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// The JSON data of the next server-sent event on `lines`.
pub fn next_event_data(lines: &mut dyn BufRead) -> serde_json::Value {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(lines.read_line(&mut line).expect("read stream") > 0, "stream ended");
        if let Some(data) = line.strip_prefix("data:") {
            return serde_json::from_str(data.trim()).expect("event data is JSON");
        }
    }
}

/// Epoch milliseconds of `day` days after 2026-01-01 plus `ms`.
pub fn ts(day: i64, ms: i64) -> i64 {
    1_767_225_600_000 + day * 86_400_000 + ms
}

/// YYYY-MM-DD of `day` days after 2026-01-01.
pub fn day_name(day: i64) -> String {
    let date = time::Date::from_calendar_date(2026, time::Month::January, 1).expect("date") + time::Duration::days(day);
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(entry.expect("entry").path());
            }
        } else {
            out.push(path);
        }
    }
    out
}
