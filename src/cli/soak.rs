//! `proviso soak`: a bounded soak of the real server on loopback.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Soak the real server: start `proviso serve` on a fresh data dir on
/// loopback, measure the most events/s it acknowledges, then for --minutes
/// ingest at half that rate while partners read their feeds and
/// suggestions, a dashboard holds `/v1/live` open, reviewers decide the
/// review queue, and refusals and erasures arrive.
///
/// Prints one row per minute: events acknowledged and their rate, p50/p99
/// of ingest acknowledgement and of partner reads, the server's RSS and
/// open descriptors (/proc/PID), and the other work done. At the end the
/// totals are checked against the sender's count (the server's
/// proviso_events_accepted_total, and the messages metric, before and after
/// a clean restart), and RSS and descriptors at the end against their level
/// after the warm-up. Exits non-zero when a total disagrees, a request
/// failed, or RSS or descriptors grew beyond the tolerance.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  proviso soak --minutes 30                    # the full soak (build with --release)
  proviso soak --minutes 2 --warmup-minutes 1  # what CI runs (tests/soak.rs)")]
pub struct SoakCommand {
    /// How long to soak after the calibration, in minutes
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
    /// Minutes at the start whose RSS and descriptors are not held to the
    /// tolerance; the levels at their end are the baseline
    #[arg(long, default_value_t = 5)]
    pub warmup_minutes: u64,
    /// Ingest rate in events/s (default: --fraction of the measured maximum)
    #[arg(long)]
    pub rate: Option<u64>,
    /// Fraction of the measured maximum to ingest at
    #[arg(long, default_value_t = 0.5)]
    pub fraction: f64,
    /// Seconds spent measuring the maximum rate
    #[arg(long, default_value_t = 10)]
    pub calibrate_seconds: u64,
    /// People in the simulated population (at most 99999)
    #[arg(long, default_value_t = 2000)]
    pub people: u32,
    /// RSS may end at most this many percent above the baseline...
    #[arg(long, default_value_t = 25.0)]
    pub rss_tolerance_percent: f64,
    /// ...plus this many MiB
    #[arg(long, default_value_t = 32)]
    pub rss_slack_mib: u64,
    /// Open descriptors may end at most this many above the baseline
    #[arg(long, default_value_t = 16)]
    pub fd_tolerance: u64,
    /// The server's erasure compaction bound (erasure_compaction_seconds;
    /// the server's default, so a 30-minute soak applies erasures but
    /// compacts none: a compaction rewrites the whole log while the writer
    /// and every reader wait, and rebuilds state from the new log)
    #[arg(long, default_value_t = 3600)]
    pub erasure_compaction_seconds: u64,
    /// Run the built-in abuse rules as they are (windows up to 3 days)
    /// instead of the same rules with every window cut to 20 seconds; the
    /// windows then grow until the longest is full, which a soak shorter
    /// than it reports as growth
    #[arg(long)]
    pub default_rules: bool,
    /// Data dir for the server (default: a new one under the temp dir,
    /// removed at the end unless --keep)
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Keep the data dir at the end
    #[arg(long)]
    pub keep: bool,
    /// Only ingest (no partners, dashboard, reviewer or subject service):
    /// to tell what grows with ingest from what grows with the rest
    #[arg(long)]
    pub ingest_only: bool,
}

const ADMIN: &str = "soak-admin-token-0123456789";
const INGEST: &str = "soak-ingest-token-0123456789";
const ANALYST: &str = "soak-analyst-token-0123456789";
const SUBJECT: &str = "soak-subject-token-0123456789";
const REVIEWER: &str = "soak-reviewer-token-0123456789";
const PARTNER: &str = "soak-partner-friendnet-0123456789";
const DAY_MS: i64 = 86_400_000;
const SENDERS: u64 = 2;

/// The built-in rules with every window cut to 20 seconds (and the
/// phishing rule, which needs its list file, left out: the soak sends no
/// links). The abuse windows then hold at most 20 seconds of events, so
/// state reaches its steady size well within a one-minute warm-up (with
/// one-minute windows it was still filling at the end of that minute, and
/// a window's doubling capacity showed as RSS growth after the warm-up).
const SOAK_RULES: &str = r#"
[partner_flags]
ban_reasons = []
default = "review"

[[rule]]
name = "fresh_account_burst"
when = "account_age < 1h and messages_sent[20s] >= 30 and non_contact_recipients[20s] > 0.8 * distinct_recipients[20s]"
effects = ["ban", "share"]
reason = "spam"

[[rule]]
name = "mass_reported"
when = "distinct_reporters[20s] >= 10"
effects = ["review", "share"]
reason = "abuse"

[[rule]]
name = "device_farm"
when = "device_registrations[20s] >= 5 and messages_sent[20s] >= 3"
effects = ["ban", "share"]
reason = "fake_account"
"#;

fn phone(k: u32) -> String {
    format!("+9198766{k:05}")
}

/// The population: the first 90% ("stable") send messages and are never
/// erased; the rest ("ephemeral") only hold sessions and are the ones
/// erased, so every message acknowledged stays counted.
#[derive(Clone, Copy)]
struct People {
    all: u32,
    stable: u32,
}

impl People {
    fn new(all: u32) -> People {
        let all = all.clamp(20, 99_999);
        People { all, stable: all * 9 / 10 }
    }

    fn stable(&self) -> u32 {
        fastrand::u32(0..self.stable)
    }

    fn ephemeral(&self) -> u32 {
        fastrand::u32(self.stable..self.all)
    }

    fn linked_stable(&self) -> u32 {
        loop {
            let k = self.stable();
            if !k.is_multiple_of(5) {
                return k;
            }
        }
    }
}

/// Counters and this minute's latencies, shared by every worker.
#[derive(Default)]
struct Stats {
    events: AtomicU64,
    messages: AtomicU64,
    rejected: AtomicU64,
    ingest_micros: Mutex<Vec<u64>>,
    /// The longest acknowledgement so far (microseconds).
    longest_ack: AtomicU64,
    read_micros: Mutex<Vec<u64>>,
    live_figures: AtomicU64,
    live_reconnects: AtomicU64,
    decisions: AtomicU64,
    refusals: AtomicU64,
    erasures: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Stats {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < 20 {
            first.push(what);
        }
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(base: &str, timeout: Option<Duration>) -> Client {
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(timeout).build();
        Client { agent: ureq::Agent::new_with_config(config), base: base.to_string() }
    }

    /// (status, body) or `Err` when no answer came.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<(u16, String), String> {
        let url = format!("{}{}", self.base, path);
        let auth = format!("Bearer {token}");
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("POST", Some((kind, bytes))) => {
                self.agent.post(&url).header("Authorization", &auth).header("Content-Type", kind).send(bytes)
            }
            ("PUT", Some((kind, bytes))) => {
                self.agent.put(&url).header("Authorization", &auth).header("Content-Type", kind).send(bytes)
            }
            ("POST", None) => self.agent.post(&url).header("Authorization", &auth).send_empty(),
            _ => return Err(format!("{method} {path}: unsupported")),
        };
        let mut response = response.map_err(|error| format!("{method} {path}: {error}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default();
        Ok((status, text))
    }

    fn json(&self, path: &str, token: &str) -> anyhow::Result<serde_json::Value> {
        let (status, text) = self.call("GET", path, token, None).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {text}");
        Ok(serde_json::from_str(&text)?)
    }
}

/// The server under test, started as its own process.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    fn start(
        data: &Path,
        log: &Path,
        erasure_compaction_seconds: u64,
        rules: Option<&Path>,
    ) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("finding the proviso binary")?;
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let mut command = Command::new(exe);
        for (key, _) in std::env::vars() {
            if key.starts_with("PROVISO_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg("--partners")
            .arg(format!("friendnet:security,product,ads:{PARTNER}"))
            .env("PROVISO_ADMIN_TOKEN", ADMIN)
            .env("PROVISO_INGEST_TOKEN", INGEST)
            .env("PROVISO_ANALYST_TOKEN", ANALYST)
            .env("PROVISO_SUBJECT_SERVICE_TOKEN", SUBJECT)
            .env("PROVISO_REVIEWER_TOKEN", REVIEWER)
            .env("PROVISO_ERASURE_COMPACTION_SECONDS", erasure_compaction_seconds.to_string())
            .env("PROVISO_LOG", "warn")
            .envs(rules.map(|path| ("PROVISO_RULES", path.as_os_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("starting proviso serve")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("proviso listening on ") {
                    let _ = sender.send(addr.to_string());
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => Ok(ServerProcess { child, base }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("the server did not start; see {}", log.display())
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (at most a minute) for a clean exit.
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the server exited with {status} on SIGTERM");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        anyhow::bail!("the server did not stop within five minutes of SIGTERM")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// RSS in KiB and open descriptors of a process, from /proc.
fn resources(pid: u32) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:").and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            })
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|entries| entries.count() as u64).unwrap_or(0);
    (rss, fds)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

/// One streamed batch of `size` events happening now; returns the NDJSON
/// and how many are messages.
fn stream_batch(people: People, size: u64) -> (String, u64) {
    let now = proviso::clock::now_ms();
    let kinds = ["text", "media", "voice", "call", "other"];
    let mut lines = Vec::with_capacity(size as usize);
    let mut messages = 0;
    for _ in 0..size {
        let roll = fastrand::u32(0..100);
        let line = if roll < 80 {
            let from = people.stable();
            let mut to = people.stable();
            if to == from {
                to = (to + 1) % people.stable;
            }
            messages += 1;
            let kind = kinds[fastrand::usize(0..kinds.len())];
            format!(r#"{{"type":"message","ts":{now},"phone":"{}","to":"{}","kind":"{kind}"}}"#, phone(from), phone(to))
        } else if roll < 90 {
            let k = fastrand::u32(0..people.all);
            format!(r#"{{"type":"session","ts":{now},"phone":"{}","device":"dev{k}"}}"#, phone(k))
        } else if roll < 94 {
            format!(
                r#"{{"type":"business_message","ts":{now},"phone":"{}","business":"shop{}","direction":"out"}}"#,
                phone(people.stable()),
                fastrand::u32(0..4)
            )
        } else if roll < 95 {
            // A few people are reported by many: the mass_reported rule
            // fills the review queue.
            format!(
                r#"{{"type":"report","ts":{now},"phone":"{}","target":"{}","reason":"spam"}}"#,
                phone(people.stable()),
                phone(fastrand::u32(0..20))
            )
        } else {
            let k = people.stable();
            let book: Vec<String> = (0..15).map(|_| phone(fastrand::u32(0..people.all))).collect();
            serde_json::json!({"type": "contacts", "ts": now, "phone": phone(k), "contacts": book}).to_string()
        };
        lines.push(line);
    }
    (lines.join("\n"), messages)
}

/// Registers everyone 40 days ago (so product and ads are allowed by
/// default), links 80% at the partner, and gives each an address book.
fn setup(client: &Client, people: People, stats: &Stats) -> anyhow::Result<()> {
    let old = proviso::clock::now_ms() - 40 * DAY_MS;
    let mut lines = Vec::new();
    let flush = |lines: &mut Vec<String>| -> anyhow::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let body = lines.join("\n");
        let (status, text) = client
            .call("POST", "/v1/events", INGEST, Some(("application/x-ndjson", body.as_bytes())))
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(status == 200, "setup batch: {status} {text}");
        let answer: serde_json::Value = serde_json::from_str(&text)?;
        anyhow::ensure!(answer["rejected"].as_array().is_none_or(Vec::is_empty), "setup lines rejected: {text}");
        stats.events.fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::SeqCst);
        lines.clear();
        Ok(())
    };
    for k in 0..people.all {
        let p = phone(k);
        let platform = ["android", "ios", "web"][(k % 3) as usize];
        lines.push(format!(
            r#"{{"type":"register","ts":{old},"phone":"{p}","device":"dev{k}","platform":"{platform}"}}"#
        ));
        if k % 5 != 0 {
            lines.push(format!(r#"{{"type":"partner_account","ts":{old},"phone":"{p}","partner_id":"fn-{k}"}}"#));
        }
        let book: Vec<String> = (0..15).map(|_| phone(fastrand::u32(0..people.all))).collect();
        lines.push(serde_json::json!({"type": "contacts", "ts": old, "phone": p, "contacts": book}).to_string());
        if lines.len() >= 600 {
            flush(&mut lines)?;
        }
    }
    flush(&mut lines)
}

/// Sends one batch and records its acknowledgement latency.
fn send(client: &Client, people: People, size: u64, stats: &Stats) {
    let (body, messages) = stream_batch(people, size);
    let started = Instant::now();
    match client.call("POST", "/v1/events", INGEST, Some(("application/x-ndjson", body.as_bytes()))) {
        Ok((200, text)) => {
            let micros = started.elapsed().as_micros() as u64;
            stats.ingest_micros.lock().unwrap_or_else(|p| p.into_inner()).push(micros);
            stats.longest_ack.fetch_max(micros, Ordering::Relaxed);
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let accepted = answer["accepted"].as_u64().unwrap_or(0);
            let rejected = answer["rejected"].as_array().map_or(0, Vec::len) as u64;
            if rejected > 0 {
                stats.rejected.fetch_add(rejected, Ordering::SeqCst);
                stats.error(format!("POST /v1/events: {rejected} lines rejected: {text}"));
            }
            stats.events.fetch_add(accepted, Ordering::SeqCst);
            stats.messages.fetch_add(if rejected == 0 { messages } else { 0 }, Ordering::SeqCst);
        }
        Ok((status, text)) => stats.error(format!("POST /v1/events: {status} {text}")),
        Err(error) => stats.error(error),
    }
}

/// Sends as fast as `threads` senders can for `seconds`; returns events/s.
fn calibrate(base: &str, people: People, seconds: u64, stats: &Arc<Stats>) -> f64 {
    let before = stats.events.load(Ordering::SeqCst);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stats, base) = (Arc::clone(stats), base.to_string());
            std::thread::spawn(move || {
                let client = Client::new(&base, Some(Duration::from_secs(60)));
                while Instant::now() < until {
                    send(&client, people, 200, &stats);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    // The calibration's latencies are not the soak's.
    stats.ingest_micros.lock().unwrap_or_else(|p| p.into_inner()).clear();
    stats.longest_ack.store(0, Ordering::Relaxed);
    (stats.events.load(Ordering::SeqCst) - before) as f64 / started.elapsed().as_secs_f64()
}

fn partner_reader(client: Client, people: People, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    let mut cursors: [Option<u64>; 3] = [None, None, None];
    let feeds = ["product", "ads", "security"];
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let (path, feed) = if turn.is_multiple_of(2) {
            (format!("/v1/partners/friendnet/suggestions/fn-{}?limit=20", people.linked_stable()), None)
        } else {
            let which = (turn / 2) % 3;
            let after = cursors[which].map(|c| format!("&after={c}")).unwrap_or_default();
            (format!("/v1/partners/friendnet/feeds/{}?limit=500{after}", feeds[which]), Some(which))
        };
        let started = Instant::now();
        match client.call("GET", &path, PARTNER, None) {
            // A suggested person may be banned or unlinked since: 404 is an answer.
            Ok((status @ (200 | 404), text)) => {
                let micros = started.elapsed().as_micros() as u64;
                stats.read_micros.lock().unwrap_or_else(|p| p.into_inner()).push(micros);
                if status == 404 && feed.is_some() {
                    stats.error(format!("GET {path}: 404 {text}"));
                }
                if let (Some(which), Ok(page)) = (feed, serde_json::from_str::<serde_json::Value>(&text)) {
                    if let Some(next) = page["next"].as_u64() {
                        cursors[which] = Some(next);
                    }
                }
            }
            Ok((status, text)) => stats.error(format!("GET {path}: {status} {text}")),
            Err(error) => stats.error(error),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn dashboard(base: String, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    let client = Client::new(&base, None);
    while !stop.load(Ordering::Relaxed) {
        let response = client
            .agent
            .get(format!("{base}/v1/live?interval_ms=1000"))
            .header("Authorization", format!("Bearer {ANALYST}"))
            .call();
        match response {
            Ok(response) if response.status().as_u16() == 200 => {
                let reader = std::io::BufReader::new(response.into_body().into_reader());
                for line in reader.lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("event: figures") {
                        stats.live_figures.fetch_add(1, Ordering::Relaxed);
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
            Ok(response) => stats.error(format!("GET /v1/live: {}", response.status())),
            Err(error) => stats.error(format!("GET /v1/live: {error}")),
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        stats.live_reconnects.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn reviewer(client: Client, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    while !stop.load(Ordering::Relaxed) {
        match client.json("/v1/abuse/actions?status=review&open=true&limit=20", REVIEWER) {
            Ok(page) => {
                for action in page["actions"].as_array().into_iter().flatten() {
                    let Some(subject) = action["subject"].as_str() else { continue };
                    let verdict = if fastrand::u32(0..10) == 0 { "ban" } else { "clear" };
                    let body = serde_json::json!({"action": verdict, "note": "soak"}).to_string();
                    let path = format!("/v1/abuse/subjects/{subject}/decision");
                    match client.call("POST", &path, REVIEWER, Some(("application/json", body.as_bytes()))) {
                        Ok((200, _)) => {
                            stats.decisions.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, text)) => stats.error(format!("POST decision: {status} {text}")),
                        Err(error) => stats.error(error),
                    }
                }
            }
            Err(error) => stats.error(error.to_string()),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The subject id of person `k`, or `None` when proviso does not know them
/// (an ephemeral person erased and not seen since).
fn resolve(client: &Client, k: u32, stats: &Stats) -> Option<String> {
    let body = serde_json::json!({ "phone": phone(k) }).to_string();
    match client.call("POST", "/v1/subjects/resolve", SUBJECT, Some(("application/json", body.as_bytes()))) {
        Ok((200, text)) => serde_json::from_str::<serde_json::Value>(&text).ok()?["subject"].as_str().map(String::from),
        Ok((404, _)) => None,
        Ok((status, text)) => {
            stats.error(format!("POST /v1/subjects/resolve: {status} {text}"));
            None
        }
        Err(error) => {
            stats.error(error);
            None
        }
    }
}

/// Refusals (and grants back) twice a second; an erasure every five seconds.
fn subject_service(client: Client, people: People, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick += 1;
        if let Some(subject) = resolve(&client, fastrand::u32(0..people.all), &stats) {
            let purpose = if fastrand::bool() { "product" } else { "ads" };
            let body = serde_json::json!({ "granted": fastrand::u32(0..3) == 0 }).to_string();
            let path = format!("/v1/subjects/{subject}/consent/{purpose}");
            match client.call("PUT", &path, SUBJECT, Some(("application/json", body.as_bytes()))) {
                Ok((200, _)) => {
                    stats.refusals.fetch_add(1, Ordering::Relaxed);
                }
                // Erased between the two calls.
                Ok((404, _)) => {}
                Ok((status, text)) => stats.error(format!("PUT consent: {status} {text}")),
                Err(error) => stats.error(error),
            }
        }
        if tick.is_multiple_of(10) {
            if let Some(subject) = resolve(&client, people.ephemeral(), &stats) {
                let path = format!("/v1/subjects/{subject}/erase");
                match client.call("POST", &path, SUBJECT, None) {
                    Ok((200, _)) => {
                        stats.erasures.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((404, _)) => {}
                    Ok((status, text)) => stats.error(format!("POST erase: {status} {text}")),
                    Err(error) => stats.error(error),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `proviso_events_accepted_total` from the server's /metrics.
fn accepted_total(client: &Client) -> anyhow::Result<u64> {
    let (status, text) = client.call("GET", "/metrics", ADMIN, None).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(status == 200, "GET /metrics: {status}");
    let total: f64 = text
        .lines()
        .filter(|line| line.starts_with("proviso_events_accepted_total"))
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    Ok(total as u64)
}

/// A gauge or counter from the server's /metrics (summed over its labels).
fn metric(client: &Client, name: &str) -> Option<f64> {
    let (status, text) = client.call("GET", "/metrics", ADMIN, None).ok()?;
    if status != 200 {
        return None;
    }
    let values: Vec<f64> = text
        .lines()
        .filter(|line| line.split([' ', '{']).next() == Some(name))
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The messages metric summed over every day the soak could have touched.
fn messages_total(client: &Client, started_ms: i64) -> anyhow::Result<u64> {
    let day = |ms: i64| proviso::disclose::rfc3339(ms).chars().take(10).collect::<String>();
    let path =
        format!("/v1/metrics/messages?from={}&to={}", day(started_ms - DAY_MS), day(proviso::clock::now_ms() + DAY_MS));
    let page = client.json(&path, ANALYST)?;
    Ok(page["series"].as_array().into_iter().flatten().map(|d| d["messages"].as_u64().unwrap_or(0)).sum())
}

pub fn run(command: SoakCommand) -> anyhow::Result<()> {
    anyhow::ensure!(command.minutes > command.warmup_minutes, "--minutes must be more than --warmup-minutes");
    let people = People::new(command.people);
    let (data, temporary) = match &command.data {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("proviso-soak-{}", std::process::id())), true),
    };
    anyhow::ensure!(!data.exists(), "{} exists: the soak starts from an empty data dir", data.display());
    if let Some(parent) = data.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let log = data.with_extension("server.log");
    let result = soak(&command, people, &data, &log);
    if temporary && !command.keep {
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(data.with_extension("rules.toml"));
        if result.is_ok() {
            let _ = std::fs::remove_file(&log);
        }
    }
    result
}

fn soak(command: &SoakCommand, people: People, data: &Path, log: &Path) -> anyhow::Result<()> {
    let started_ms = proviso::clock::now_ms();
    let rules = data.with_extension("rules.toml");
    std::fs::write(&rules, SOAK_RULES).context("writing the soak's rules")?;
    let rules = (!command.default_rules).then_some(rules);
    let server = ServerProcess::start(data, log, command.erasure_compaction_seconds, rules.as_deref())?;
    let pid = server.pid();
    let base = server.base.clone();
    println!("soak: server pid {pid} at {base}, data {}, server log {}", data.display(), log.display());
    let stats = Arc::new(Stats::default());
    let client = Client::new(&base, Some(Duration::from_secs(120)));
    setup(&client, people, &stats)?;
    let measured = calibrate(&base, people, command.calibrate_seconds, &stats);
    let rate = command.rate.unwrap_or(((measured * command.fraction) as u64).max(1));
    // Each sender sends about 20 batches a second.
    let batch = (rate / (SENDERS * 20)).clamp(1, 1000);
    let interval = Duration::from_secs_f64(batch as f64 * SENDERS as f64 / rate as f64);
    println!(
        "soak: measured {measured:.0} events/s at most; ingesting {rate} events/s ({SENDERS} senders, batches of {batch}) \
         for {} minutes ({} of warm-up), {} people",
        command.minutes, command.warmup_minutes, people.all
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..SENDERS {
        let (stop, stats, base) = (Arc::clone(&stop), Arc::clone(&stats), base.clone());
        workers.push(std::thread::spawn(move || {
            let client = Client::new(&base, Some(Duration::from_secs(120)));
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                send(&client, people, batch, &stats);
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > Duration::from_secs(1) {
                    // Far behind (a pause): do not burst to catch up.
                    next = now;
                }
            }
        }));
    }
    let others = if command.ingest_only { 0 } else { 1 };
    for _ in 0..2 * others {
        let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
        let client = Client::new(&base, Some(Duration::from_secs(120)));
        workers.push(std::thread::spawn(move || partner_reader(client, people, stop, stats)));
    }
    for _ in 0..others {
        let (stop_reviewer, stats_reviewer) = (Arc::clone(&stop), Arc::clone(&stats));
        let client = Client::new(&base, Some(Duration::from_secs(120)));
        workers.push(std::thread::spawn(move || reviewer(client, stop_reviewer, stats_reviewer)));
        let (stop_service, stats_service) = (Arc::clone(&stop), Arc::clone(&stats));
        let client = Client::new(&base, Some(Duration::from_secs(120)));
        workers.push(std::thread::spawn(move || subject_service(client, people, stop_service, stats_service)));
    }
    // The dashboard's stream ends with the server; it is not joined.
    if !command.ingest_only {
        let (stop, stats, base) = (Arc::clone(&stop), Arc::clone(&stats), base.clone());
        std::thread::spawn(move || dashboard(base, stop, stats));
    }

    println!(
        "{:>3} {:>9} {:>7} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>6} {:>5} {:>5} {:>5} {:>6} {:>5} {:>5}",
        "min",
        "events",
        "ev/s",
        "ack p50",
        "ack p99",
        "ack max",
        "reads",
        "read p50",
        "read p99",
        "RSS MiB",
        "state",
        "fds",
        "live",
        "decis",
        "refuse",
        "erase",
        "errs"
    );
    let soak_started = Instant::now();
    let mut previous_events = stats.events.load(Ordering::SeqCst);
    let mut rows: Vec<Row> = Vec::new();
    for minute in 1..=command.minutes {
        let minute_end = soak_started + Duration::from_secs(60 * minute);
        let mut max_rss = 0;
        let mut max_fds = 0;
        while Instant::now() < minute_end {
            let (rss, fds) = resources(pid);
            max_rss = max_rss.max(rss);
            max_fds = max_fds.max(fds);
            std::thread::sleep(Duration::from_secs(5).min(minute_end.saturating_duration_since(Instant::now())));
        }
        let (rss, fds) = resources(pid);
        let mut ingest = std::mem::take(&mut *stats.ingest_micros.lock().unwrap_or_else(|p| p.into_inner()));
        let mut reads = std::mem::take(&mut *stats.read_micros.lock().unwrap_or_else(|p| p.into_inner()));
        ingest.sort_unstable();
        reads.sort_unstable();
        let events = stats.events.load(Ordering::SeqCst);
        let row = Row {
            events: events - previous_events,
            ingest_p50: percentile(&ingest, 0.5),
            ingest_p99: percentile(&ingest, 0.99),
            reads: reads.len() as u64,
            read_p50: percentile(&reads, 0.5),
            read_p99: percentile(&reads, 0.99),
            rss_end: rss,
            rss_max: max_rss.max(rss),
            fds_end: fds,
            fds_max: max_fds.max(fds),
        };
        previous_events = events;
        println!(
            "{minute:>3} {:>9} {:>7.0} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>6.1} {:>5} {:>5} {:>5} {:>6} {:>5} {:>5}",
            row.events,
            row.events as f64 / 60.0,
            row.ingest_p50,
            row.ingest_p99,
            percentile(&ingest, 1.0),
            row.reads,
            row.read_p50,
            row.read_p99,
            row.rss_max as f64 / 1024.0,
            metric(&client, "proviso_state_heap_bytes").unwrap_or(0.0) / (1024.0 * 1024.0),
            row.fds_max,
            stats.live_figures.load(Ordering::Relaxed),
            stats.decisions.load(Ordering::Relaxed),
            stats.refusals.load(Ordering::Relaxed),
            stats.erasures.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
        );
        rows.push(row);
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.join();
    }
    let target = rate as f64 * 60.0;
    let short =
        rows.iter().skip(command.warmup_minutes as usize).filter(|row| (row.events as f64) < 0.9 * target).count();
    if short > 0 {
        println!("note: {short} minutes after warm-up ingested under 90% of the target rate (the senders wait for each acknowledgement: the server, or this machine, was saturated)");
    }
    verdict(command, &stats, &rows, &client, started_ms, server, data, log, rules.as_deref())
}

/// One minute of the soak.
struct Row {
    events: u64,
    ingest_p50: f64,
    ingest_p99: f64,
    reads: u64,
    read_p50: f64,
    read_p99: f64,
    rss_end: u64,
    rss_max: u64,
    fds_end: u64,
    fds_max: u64,
}

#[allow(clippy::too_many_arguments)]
fn verdict(
    command: &SoakCommand,
    stats: &Stats,
    rows: &[Row],
    client: &Client,
    started_ms: i64,
    server: ServerProcess,
    data: &Path,
    log: &Path,
    rules: Option<&Path>,
) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    let sent = stats.events.load(Ordering::SeqCst);
    let messages = stats.messages.load(Ordering::SeqCst);
    let accepted = accepted_total(client)?;
    let counted = messages_total(client, started_ms)?;
    println!("totals: the senders had {sent} events acknowledged ({messages} messages); the server counts {accepted} accepted and {counted} messages");
    if accepted != sent {
        failures.push(format!("proviso_events_accepted_total is {accepted}, the senders had {sent} acknowledged"));
    }
    if counted != messages {
        failures.push(format!("the messages metric holds {counted}, the senders had {messages} acknowledged"));
    }
    let live = stats.live_figures.load(Ordering::Relaxed);
    println!(
        "work: {} reviewer decisions, {} consent changes, {} erasures, {live} live figures ({} reconnects), {} lines rejected, {} failed requests",
        stats.decisions.load(Ordering::Relaxed),
        stats.refusals.load(Ordering::Relaxed),
        stats.erasures.load(Ordering::Relaxed),
        stats.live_reconnects.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed)
    );
    if stats.errors.load(Ordering::Relaxed) > 0 {
        let first = stats.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        failures.push(format!(
            "{} requests failed; first: {}",
            stats.errors.load(Ordering::Relaxed),
            first.join(" | ")
        ));
    }
    if live == 0 && !command.ingest_only {
        failures.push("the dashboard stream delivered no figures".to_string());
    }

    // Resources: the levels at the end of the warm-up against the last minute.
    let warm = command.warmup_minutes.max(1) as usize;
    if let (Some(base), Some(last)) = (rows.get(warm - 1), rows.last()) {
        let allowed =
            base.rss_end as f64 * (1.0 + command.rss_tolerance_percent / 100.0) + (command.rss_slack_mib * 1024) as f64;
        println!(
            "resources: RSS {:.1} MiB after warm-up, {:.1} MiB at most in the last minute (allowed {:.1}); descriptors {} then {} (allowed {})",
            base.rss_end as f64 / 1024.0,
            last.rss_max as f64 / 1024.0,
            allowed / 1024.0,
            base.fds_end,
            last.fds_max,
            base.fds_end + command.fd_tolerance
        );
        if last.rss_max as f64 > allowed {
            failures.push(format!(
                "RSS grew from {:.1} MiB to {:.1} MiB, beyond {}% + {} MiB",
                base.rss_end as f64 / 1024.0,
                last.rss_max as f64 / 1024.0,
                command.rss_tolerance_percent,
                command.rss_slack_mib
            ));
        }
        if last.fds_max > base.fds_end + command.fd_tolerance {
            failures.push(format!("open descriptors grew from {} to {}", base.fds_end, last.fds_max));
        }
        let after: Vec<&Row> = rows.iter().skip(warm).collect();
        let worst = after.iter().map(|row| row.ingest_p99).fold(0.0, f64::max);
        let worst_read = after.iter().map(|row| row.read_p99).fold(0.0, f64::max);
        println!(
            "latency after warm-up: ingest p99 {:.1} ms at the end of warm-up, worst minute {worst:.1} ms; partner reads p99 {:.1} then worst {worst_read:.1} ms; longest acknowledgement {:.1} s",
            base.ingest_p99,
            base.read_p99,
            stats.longest_ack.load(Ordering::Relaxed) as f64 / 1e6
        );
        let stalled = after.iter().filter(|row| row.events == 0).count();
        if stalled > 0 {
            println!("note: {stalled} minutes after warm-up acknowledged nothing (a stall: an erasure compaction holds the writer and the state lock while it rewrites the log)");
        }
    }

    // Nothing lost across a clean restart either.
    server.stop()?;
    let restarted = ServerProcess::start(data, log, command.erasure_compaction_seconds, rules)?;
    let client = Client::new(&restarted.base, Some(Duration::from_secs(120)));
    let after_restart = messages_total(&client, started_ms)?;
    println!("after a clean restart the messages metric holds {after_restart}");
    if after_restart != messages {
        failures.push(format!("after a restart the messages metric holds {after_restart}, the senders had {messages}"));
    }
    restarted.stop()?;

    if failures.is_empty() {
        println!("soak passed");
        Ok(())
    } else {
        for failure in &failures {
            println!("FAILED: {failure}");
        }
        anyhow::bail!("the soak failed: {}", failures.join("; "))
    }
}
