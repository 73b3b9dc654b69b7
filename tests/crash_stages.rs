//! Crashes at the worst moments (issue 13): the real server is killed many
//! times while a careful client works it, each time at a moment chosen
//! among the write paths: a group commit under concurrent batches, a
//! snapshot, the compaction swap after an erasure, a rules reload, an audit
//! and a feed append, a refusal with its retractions. A round either arms
//! one failpoint (`PROVISO_FAILPOINTS=stage=exit|torn@n`, debug builds) or
//! sends SIGKILL at a random time. The client sends every batch with an
//! `Idempotency-Key` and resends what got no answer after the restart.
//!
//! After each restart: (1) every batch is counted exactly once; (2) `proviso
//! audit verify` passes; (3) no feed holds an `add` naming a person whose
//! refusal or erasure was acknowledged; (4) no feed holds the same add
//! twice; (5) the state equals a `proviso rebuild` of the same log.
//!
//! `PROVISO_CRASH_KILLS=N` sets the number of rounds (default: one per
//! stage in `proviso::failpoint::STAGES` plus three random-time kills);
//! `PROVISO_CRASH_SEED=S` replays a run (the seed is printed);
//! `PROVISO_CRASH_ONLY=stage,stage` arms only those stages. The long run:
//! `PROVISO_CRASH_KILLS=100 cargo test --test crash_stages -- --nocapture`.
//! Failpoints exist only in debug builds: in a release build every round is
//! a random-time SIGKILL.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{day_name, ts, Server, ADMIN, ANALYST, INGEST, PARTNER, SUBJECT};
use proviso::failpoint::{EXIT_STATUS, STAGES};
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;
/// Messages in one January batch (distinct senders).
const BATCH: u64 = 40;
/// People in one world group.
const PEOPLE: u32 = 12;

/// The server settings of every round: snapshots often, erasures compacted
/// before they are acknowledged (the main test also runs with a bound of a
/// second: [`BESIDE_THE_WRITER`]), audiences of 10 released.
const ENV: &[(&str, &str)] = &[
    ("PROVISO_PSEUDONYM_KEY", KEY_HEX),
    ("PROVISO_SNAPSHOT_EVERY_RECORDS", "300"),
    ("PROVISO_ERASURE_COMPACTION_SECONDS", "0"),
    ("PROVISO_AUDIENCE_K", "10"),
];

/// The pseudonym key of every server here, so the test can compute the
/// erased people's pseudonyms and look for them on disk.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Files under `data` holding a byte of an erased person's pseudonym (the
/// log, the snapshot, the vault's records and tombstones...).
fn pseudonym_traces(data: &Path, erased: &HashSet<String>) -> Vec<String> {
    let edge = proviso::edge::Edge::new(
        proviso::edge::PseudonymKey::from_hex(KEY_HEX).expect("key"),
        proviso::contract::Region(*b"US"),
    );
    let pseudonyms: HashSet<[u8; 16]> = erased
        .iter()
        .map(|account| {
            let mut parts = account.trim_start_matches("fn-").split('-').map(|n| n.parse::<u32>().expect("number"));
            let (group, person) = (parts.next().expect("group"), parts.next().expect("person"));
            *edge.resolve_phone(&world_phone(group, person), None).expect("phone").0.as_bytes()
        })
        .collect();
    let mut found = Vec::new();
    for path in common::files_under(data) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(16).any(|window| pseudonyms.contains(window)) {
            found.push(path.display().to_string());
        }
    }
    found
}

/// A client of one running server that may die under it: every call
/// returns `Err` when no answer came.
#[derive(Clone)]
struct Client {
    base: String,
    agent: ureq::Agent,
}

type Answer = Result<(u16, Value), String>;

impl Client {
    fn of(server: &Server) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Client { base: server.base.clone(), agent: ureq::Agent::new_with_config(config) }
    }

    fn send(&self, method: &str, path: &str, token: &str, key: Option<&str>, body: Option<&[u8]>) -> Answer {
        let url = format!("{}{}", self.base, path);
        let auth = format!("Bearer {token}");
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (method, body) => {
                let mut request = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                }
                .header("Authorization", &auth)
                .header("Content-Type", if path == "/v1/events" { "application/x-ndjson" } else { "application/json" });
                if let Some(key) = key {
                    request = request.header("Idempotency-Key", key);
                }
                request.send(body.unwrap_or_default())
            }
        };
        let mut response = response.map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let text = response.body_mut().with_config().limit(64 << 20).read_to_string().map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, token, None, None)
    }

    /// A GET that must be answered 200 (checks run on a healthy server).
    fn must_get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, token).unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn resolve(&self, phone: &str) -> Answer {
        let body = json!({ "phone": phone }).to_string();
        self.send("POST", "/v1/subjects/resolve", SUBJECT, None, Some(body.as_bytes()))
    }
}

/// One keyed batch of `POST /v1/events`.
#[derive(Clone)]
struct Batch {
    key: String,
    body: String,
    /// January batches: the day (0..30) its BATCH messages are on.
    day: Option<u64>,
}

/// A write the client sent and got no answer to: resent after the restart.
#[derive(Clone)]
enum Unanswered {
    Batch(Batch),
    Refuse { group: u32, person: u32 },
    Erase { group: u32, person: u32 },
    Rules(String),
}

/// What the client knows: every batch it sent, what is still unanswered,
/// and the people whose refusal or erasure was acknowledged.
#[derive(Default)]
struct Ledger {
    batches: Vec<Batch>,
    unanswered: Vec<Unanswered>,
    refused_product: HashSet<String>,
    erased: HashSet<String>,
    next_batch: u64,
    next_group: u32,
    next_rules: u64,
    /// Operations answered, by kind (for the report).
    answered: BTreeMap<&'static str, u64>,
    /// Whether the server compacts an erasure before answering it (a zero
    /// `erasure_compaction_seconds`).
    compacts_before_answer: bool,
    /// A pause after each batch and world group. An erasure answered before
    /// its compaction no longer slows the actors down, and unpaced they
    /// grew the log tenfold in the seconds a compaction stage takes to be
    /// reached, each round slower than the one before.
    pace: Duration,
}

impl Ledger {
    fn answered(&mut self, kind: &'static str) {
        *self.answered.entry(kind).or_default() += 1;
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

fn world_phone(group: u32, person: u32) -> String {
    format!("+91986{group:04}{person:03}")
}

fn account(group: u32, person: u32) -> String {
    format!("fn-{group}-{person}")
}

fn business(group: u32) -> String {
    format!("shop{group}")
}

/// Batch `n` of January: BATCH messages from distinct senders on day n % 30.
fn january_batch(n: u64) -> Batch {
    let day = n % 30;
    let body = (0..BATCH)
        .map(|i| {
            format!(
                r#"{{"type":"message","ts":{},"phone":"+9197{:08}","to":"+919899999999","kind":"text"}}"#,
                ts(day as i64, i as i64),
                n * BATCH + i
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Batch { key: format!("january-{n}"), body, day: Some(day) }
}

/// The events of world group `group` (as in tests/retraction.rs): 12
/// people in India first seen 40 days ago, all on friendnet; person 0's
/// address book holds 1..=3; 1..=11 wrote to the group's business.
fn world_batch(group: u32, now_ms: i64) -> Batch {
    let long_ago = now_ms - 40 * DAY_MS;
    let recent = now_ms - 60_000;
    let mut lines = Vec::new();
    for k in 0..PEOPLE {
        let (p, a) = (world_phone(group, k), account(group, k));
        lines.push(format!(r#"{{"type":"session","ts":{long_ago},"phone":"{p}","device":"d{k}"}}"#));
        lines.push(format!(r#"{{"type":"session","ts":{recent},"phone":"{p}","device":"d{k}"}}"#));
        lines.push(format!(r#"{{"type":"partner_account","ts":{long_ago},"phone":"{p}","partner_id":"{a}"}}"#));
        if k > 0 {
            lines.push(format!(
                r#"{{"type":"business_message","ts":{recent},"phone":"{p}","business":"{}","direction":"out"}}"#,
                business(group)
            ));
        }
    }
    let book: Vec<String> = (1..=3).map(|k| world_phone(group, k)).collect();
    lines.push(
        json!({"type": "contacts", "ts": long_ago, "phone": world_phone(group, 0), "contacts": book}).to_string(),
    );
    Batch { key: format!("world-{group}"), body: lines.join("\n"), day: None }
}

fn rules_text(n: u64) -> String {
    format!(
        "[[rule]]\nname = \"chatty\"\nwhen = \"messages_sent[1h] >= {}\"\neffects = [\"review\"]\nreason = \"spam\"\n",
        1000 + n
    )
}

/// Sends a batch once; `false` when no answer came (it is then owed).
fn send_batch(client: &Client, ledger: &Shared, batch: Batch) -> bool {
    match client.send("POST", "/v1/events", INGEST, Some(&batch.key), Some(batch.body.as_bytes())) {
        Ok((200, _)) => {
            lock(ledger).answered("batch");
            true
        }
        Ok((status, body)) => panic!("batch {} refused: {status} {body}", batch.key),
        Err(_) => {
            lock(ledger).unanswered.push(Unanswered::Batch(batch));
            false
        }
    }
}

/// Streams January batches until told to stop or the server dies.
fn ingest_actor(client: Client, ledger: Shared, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let batch = {
            let mut ledger = lock(&ledger);
            let batch = january_batch(ledger.next_batch);
            ledger.next_batch += 1;
            ledger.batches.push(batch.clone());
            batch
        };
        if !send_batch(&client, &ledger, batch) {
            return;
        }
        std::thread::sleep(lock(&ledger).pace);
    }
}

/// Builds world groups and works them until told to stop or the server
/// dies: ingest the group, disclose (suggestions: audit and product feed;
/// audience: audit and ads feed), refuse product for person 2 (retractions),
/// erase person 1 (retractions in both feeds, compaction), reload rules.
fn world_actor(client: Client, ledger: Shared, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let group = {
            let mut ledger = lock(&ledger);
            ledger.next_group += 1;
            ledger.next_group
        };
        let batch = world_batch(group, common::now_ms());
        lock(&ledger).batches.push(batch.clone());
        if !send_batch(&client, &ledger, batch) {
            return;
        }
        let suggestions = format!("/v1/partners/friendnet/suggestions/{}", account(group, 0));
        let audience = format!("/v1/partners/friendnet/audiences/{}?days=7", business(group));
        for path in [&suggestions, &audience] {
            match client.get(path, PARTNER) {
                Ok((200, _)) => lock(&ledger).answered("disclosure"),
                Ok((status, body)) => panic!("GET {path}: {status} {body}"),
                Err(_) => return,
            }
        }
        if !refuse(&client, &ledger, group, 2) || !erase(&client, &ledger, group, 1) {
            return;
        }
        let text = {
            let mut ledger = lock(&ledger);
            ledger.next_rules += 1;
            rules_text(ledger.next_rules)
        };
        if !post_rules(&client, &ledger, text) {
            return;
        }
        std::thread::sleep(lock(&ledger).pace);
    }
}

/// Refuses product for a person; `false` when no answer came.
fn refuse(client: &Client, ledger: &Shared, group: u32, person: u32) -> bool {
    let subject = match client.resolve(&world_phone(group, person)) {
        Ok((200, body)) => body["subject"].as_str().expect("subject").to_string(),
        Ok((status, body)) => panic!("resolve {group}/{person}: {status} {body}"),
        Err(_) => {
            lock(ledger).unanswered.push(Unanswered::Refuse { group, person });
            return false;
        }
    };
    let body = json!({"granted": false}).to_string();
    match client.send("PUT", &format!("/v1/subjects/{subject}/consent/product"), SUBJECT, None, Some(body.as_bytes())) {
        Ok((200, _)) => {
            let mut ledger = lock(ledger);
            ledger.refused_product.insert(account(group, person));
            ledger.answered("refusal");
            true
        }
        Ok((status, body)) => panic!("refusal {group}/{person}: {status} {body}"),
        Err(_) => {
            lock(ledger).unanswered.push(Unanswered::Refuse { group, person });
            false
        }
    }
}

/// Erases a person; `false` when no answer came. A 404 from resolving is
/// an erasure done before (only possible on a resend).
fn erase(client: &Client, ledger: &Shared, group: u32, person: u32) -> bool {
    let subject = match client.resolve(&world_phone(group, person)) {
        Ok((200, body)) => body["subject"].as_str().expect("subject").to_string(),
        Ok((404, _)) => {
            let mut ledger = lock(ledger);
            ledger.erased.insert(account(group, person));
            ledger.answered("erasure");
            return true;
        }
        Ok((status, body)) => panic!("resolve {group}/{person}: {status} {body}"),
        Err(_) => {
            lock(ledger).unanswered.push(Unanswered::Erase { group, person });
            return false;
        }
    };
    match client.send("POST", &format!("/v1/subjects/{subject}/erase"), SUBJECT, None, Some(b"")) {
        Ok((200, body)) => {
            let mut ledger = lock(ledger);
            if ledger.compacts_before_answer {
                assert_eq!(body["compacted"], true, "{body}");
            }
            ledger.erased.insert(account(group, person));
            ledger.answered("erasure");
            true
        }
        Ok((status, body)) => panic!("erasure {group}/{person}: {status} {body}"),
        Err(_) => {
            lock(ledger).unanswered.push(Unanswered::Erase { group, person });
            false
        }
    }
}

fn post_rules(client: &Client, ledger: &Shared, text: String) -> bool {
    match client.send("POST", "/v1/abuse/rules", ADMIN, None, Some(text.as_bytes())) {
        Ok((200, _)) => {
            lock(ledger).answered("rules");
            true
        }
        Ok((status, body)) => panic!("rules: {status} {body}"),
        Err(_) => {
            lock(ledger).unanswered.push(Unanswered::Rules(text));
            false
        }
    }
}

/// After a restart: resends every unanswered write until it is answered.
fn resend(client: &Client, ledger: &Shared) {
    let owed = std::mem::take(&mut lock(ledger).unanswered);
    for write in owed {
        let answered = match write {
            Unanswered::Batch(batch) => send_batch(client, ledger, batch),
            Unanswered::Refuse { group, person } => refuse(client, ledger, group, person),
            Unanswered::Erase { group, person } => erase(client, ledger, group, person),
            Unanswered::Rules(text) => post_rules(client, ledger, text),
        };
        assert!(answered, "a resend to a healthy server got no answer");
    }
}

/// Every record of a partner feed, read as the partner (paged).
fn feed(client: &Client, purpose: &str) -> Vec<Value> {
    let mut records = Vec::new();
    loop {
        let after = records.last().map(|r: &Value| format!("&after={}", r["cursor"])).unwrap_or_default();
        let page = client.must_get(&format!("/v1/partners/friendnet/feeds/{purpose}?limit=1000{after}"), PARTNER);
        let got = page["records"].as_array().expect("records").clone();
        if got.is_empty() {
            return records;
        }
        records.extend(got);
    }
}

/// The answers that must equal a rebuild's: usage metrics over January (the
/// batches) and over the world's days, and the log position.
fn answers(client: &Client, world_from: &str, world_to: &str) -> Vec<Value> {
    let (from, to) = (day_name(0), day_name(29));
    let mut out = Vec::new();
    for window in [1, 7] {
        out.push(client.must_get(&format!("/v1/metrics/active?from={from}&to={to}&window={window}"), ANALYST));
        out.push(client.must_get(
            &format!("/v1/metrics/active?from={world_from}&to={world_to}&window={window}&by=country"),
            ANALYST,
        ));
    }
    out.push(client.must_get(&format!("/v1/metrics/messages?from={from}&to={to}&by=kind"), ANALYST));
    out.push(client.must_get(&format!("/v1/metrics/messages?from={world_from}&to={world_to}"), ANALYST));
    out.push(client.must_get("/healthz", ANALYST));
    out
}

/// Checks (1), (3) and (4) on a server just restarted and caught up.
fn check_outputs(client: &Client, ledger: &Shared, round: usize) {
    let ledger = lock(ledger);
    // (1) Every January batch (all answered now) counted exactly once.
    let mut expected = [0u64; 30];
    for batch in &ledger.batches {
        if let Some(day) = batch.day {
            expected[day as usize] += BATCH;
        }
    }
    let body = client.must_get(&format!("/v1/metrics/messages?from={}&to={}", day_name(0), day_name(29)), ANALYST);
    for (day, want) in expected.iter().enumerate() {
        let got = body["series"][day]["messages"].as_u64().unwrap_or_else(|| panic!("no count: {body}"));
        assert_eq!(got, *want, "round {round}: messages on January day {day}: got {got}, acknowledged {want}");
    }
    // (3) and (4): no live add names a person who refused (product) or was
    // erased (any feed), and no add is there twice.
    for purpose in ["product", "ads"] {
        let mut seen = HashSet::new();
        for record in feed(client, purpose) {
            if record["op"] != "add" || record["partner_id"].as_str().unwrap_or("").is_empty() {
                continue;
            }
            let named: Vec<&str> =
                ["partner_id", "suggested"].iter().filter_map(|field| record[*field].as_str()).collect();
            for name in &named {
                assert!(
                    !ledger.erased.contains(*name),
                    "round {round}: {purpose} feed holds an add naming erased {name}: {record}"
                );
                assert!(
                    purpose != "product" || !ledger.refused_product.contains(*name),
                    "round {round}: product feed holds an add naming {name}, who refused: {record}"
                );
            }
            let key = (
                record["about"].clone(),
                record["partner_id"].clone(),
                record["suggested"].clone(),
                record["business"].clone(),
            );
            assert!(seen.insert(key.clone()), "round {round}: {purpose} feed holds the same add twice: {key:?}");
        }
    }
}

/// Waits until the server has compacted every erasure it applied (the
/// gauge `proviso_erasures_pending` is 0): at once with a zero bound,
/// within a bound of a second and the compaction's time otherwise.
fn wait_compacted(server: &Server, round: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = server.get_text("/metrics");
        let pending = metrics
            .lines()
            .find_map(|line| line.strip_prefix("proviso_erasures_pending "))
            .map(|value| value.trim().to_string());
        if pending.as_deref() == Some("0") {
            return;
        }
        assert!(Instant::now() < deadline, "round {round}: erasures still pending after 60 s: {pending:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After an acknowledged erasure no feed file holds the person's partner
/// account id (withdrawn adds are redacted with the log's compaction).
fn check_no_traces(data: &Path, ledger: &Shared, round: usize) {
    let ledger = lock(ledger);
    for path in common::files_under(&data.join("feeds")) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for erased in &ledger.erased {
            assert!(
                !text.contains(&format!("\"{erased}\"")),
                "round {round}: {} still names erased {erased} after the erasure was acknowledged",
                path.display()
            );
        }
    }
}

/// `proviso audit verify` on the stopped server's data dir (check 2).
fn audit_verify(data: &Path, round: usize) {
    let output = common::command()
        .args(["audit", "verify", "--data"])
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .expect("audit verify");
    assert!(
        output.status.success(),
        "round {round}: audit verify failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `proviso rebuild` on the stopped server's data dir (check 5 compares
/// the answers of the next start with the ones before).
fn rebuild(data: &Path, round: usize) {
    let output =
        common::command().args(["rebuild", "--data"]).arg(data).stdin(Stdio::null()).output().expect("rebuild");
    assert!(output.status.success(), "round {round}: rebuild failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// How one round ends the server.
#[derive(Clone, Debug)]
enum Kill {
    /// `stage=action@n`.
    Failpoint { stage: &'static str, action: &'static str, nth: u64 },
    /// SIGKILL after this long.
    Signal(Duration),
}

/// The rounds: one per stage (each armed once, in a shuffled order) while
/// they last, then random: a random stage, or a SIGKILL at a random time.
fn plan(rounds: usize, only: &[&'static str], rng: &mut fastrand::Rng) -> Vec<Kill> {
    let armable = cfg!(debug_assertions);
    let pool: &[&'static str] = if only.is_empty() { STAGES } else { only };
    let mut stages: Vec<&'static str> = if armable { pool.to_vec() } else { Vec::new() };
    rng.shuffle(&mut stages);
    let arm = |stage: &'static str, rng: &mut fastrand::Rng| {
        // How often a round reaches the stage bounds the n of `@n`.
        let most = match stage {
            "log.write" | "log.fsync" | "writer.before_apply" | "writer.before_ack" | "writer.after_ack" => 20,
            "audit.write" | "audit.fsync" | "feed.write" | "feed.fsync" => 4,
            "snapshot.write" | "snapshot.rename" | "consent.before_retractions" => 3,
            _ => 2,
        };
        let action = if rng.bool() { "exit" } else { "torn" };
        Kill::Failpoint { stage, action, nth: rng.u64(1..=most) }
    };
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        if round < stages.len() {
            out.push(arm(stages[round], rng));
        } else if armable && (rng.bool() || !only.is_empty()) {
            let stage = pool[rng.usize(..pool.len())];
            out.push(arm(stage, rng));
        } else {
            out.push(Kill::Signal(Duration::from_millis(rng.u64(100..3000))));
        }
    }
    out
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

/// `erasure_compaction_seconds` of the second run: erasures are answered at
/// once and compacted by the compaction's thread a second later, beside
/// the writer (the default's way, with the default's hour cut short).
const BESIDE_THE_WRITER: &str = "1";

#[test]
fn crashes_at_every_stage_lose_nothing_and_duplicate_nothing() {
    crash_rounds("0");
}

#[test]
fn crashes_at_every_stage_lose_nothing_with_erasures_compacted_beside_the_writer() {
    crash_rounds(BESIDE_THE_WRITER);
}

/// The rounds of both tests above, with erasures compacted within `bound`
/// seconds.
fn crash_rounds(bound: &'static str) {
    let seed = env_number("PROVISO_CRASH_SEED").unwrap_or_else(|| fastrand::u64(..));
    let default_rounds = if cfg!(debug_assertions) { STAGES.len() + 3 } else { 10 };
    let rounds = env_number("PROVISO_CRASH_KILLS").map_or(default_rounds, |n| n as usize);
    eprintln!("crash_stages: seed {seed} (PROVISO_CRASH_SEED={seed} replays it), {rounds} kills");
    // PROVISO_CRASH_ONLY=stage,stage: arm only these (to chase one bug).
    let only: Vec<&'static str> = std::env::var("PROVISO_CRASH_ONLY")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| *STAGES.iter().find(|stage| **stage == name).unwrap_or_else(|| panic!("no stage {name}")))
        .collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    let plan = plan(rounds, &only, &mut rng);

    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    // PROVISO_CRASH_KEEP=1 keeps the data dir and the servers' stderr.
    let _temp = if std::env::var_os("PROVISO_CRASH_KEEP").is_some() {
        eprintln!("crash_stages: keeping {}", temp.keep().display());
        None
    } else {
        Some(temp)
    };
    let now = common::now_ms();
    let world_from = proviso_day(now - 45 * DAY_MS);
    let world_to = proviso_day(now + DAY_MS);
    let at_once = bound == "0";
    let pace = if at_once { Duration::ZERO } else { Duration::from_millis(25) };
    let ledger: Shared = Arc::new(Mutex::new(Ledger { compacts_before_answer: at_once, pace, ..Ledger::default() }));
    let base_env = base_env(bound);
    let started = Instant::now();
    let mut expected_answers: Option<Vec<Value>> = None;
    let mut reached: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut signals = 0;

    for (round, kill) in plan.iter().enumerate() {
        eprintln!("crash_stages: round {round}: {kill:?}");
        let mut env: Vec<(&str, String)> = base_env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if let Kill::Failpoint { stage, action, nth } = kill {
            env.push(("PROVISO_FAILPOINTS", format!("{stage}={action}@{nth}")));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut server = Server::start_with(&data, &env);
        let client = Client::of(&server);
        // (5) The answers before the last stop equal those after `proviso
        // rebuild` (this start loaded the rebuild's snapshot).
        if let Some(expected) = expected_answers.take() {
            assert_eq!(
                answers(&client, &world_from, &world_to),
                expected,
                "round {round}: state differs from a rebuild"
            );
        }

        let stop = Arc::new(AtomicBool::new(false));
        let mut actors = Vec::new();
        for _ in 0..2 {
            let (client, ledger, stop) = (client.clone(), ledger.clone(), stop.clone());
            actors.push(std::thread::spawn(move || ingest_actor(client, ledger, stop)));
        }
        {
            let (client, ledger, stop) = (client.clone(), ledger.clone(), stop.clone());
            actors.push(std::thread::spawn(move || world_actor(client, ledger, stop)));
        }
        match kill {
            Kill::Failpoint { stage, .. } => {
                let deadline = Instant::now() + Duration::from_secs(90);
                let status = loop {
                    if let Some(status) = server.child.try_wait().expect("try_wait") {
                        break status;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: {kill:?} never reached (seed {seed}); stderr:\n{}",
                        tail(&server.stderr())
                    );
                    std::thread::sleep(Duration::from_millis(5));
                };
                let stderr = server.stderr();
                assert_eq!(
                    status.code(),
                    Some(EXIT_STATUS),
                    "round {round}: {kill:?} (seed {seed}): the server ended otherwise:\n{}",
                    tail(&stderr)
                );
                assert!(stderr.contains(&format!("failpoint {stage}:")), "round {round}: {}", tail(&stderr));
                *reached.entry(stage).or_default() += 1;
            }
            Kill::Signal(after) => {
                std::thread::sleep(*after);
                let _ = server.child.kill();
                let _ = server.child.wait();
                signals += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for actor in actors {
            if let Err(panic) = actor.join() {
                std::panic::resume_unwind(panic);
            }
        }
        drop(server);

        // Restart, catch up like a careful client, and check.
        let server = Server::start_with(&data, &base_env);
        let client = Client::of(&server);
        resend(&client, &ledger);
        wait_compacted(&server, round);
        check_outputs(&client, &ledger, round);
        check_no_traces(&data, &ledger, round);
        let answered = answers(&client, &world_from, &world_to);
        let stderr = server.stop();
        assert!(!stderr.contains("panicked"), "round {round}: the server panicked:\n{}", tail(&stderr));
        audit_verify(&data, round);
        rebuild(&data, round);
        expected_answers = Some(answered);
        eprintln!("crash_stages: round {round} ok ({:.1}s)", started.elapsed().as_secs_f64());
    }

    // A last start after the last rebuild: same answers, same outputs.
    let server = Server::start_with(&data, &base_env);
    let client = Client::of(&server);
    assert_eq!(
        Some(answers(&client, &world_from, &world_to)),
        expected_answers,
        "state differs from a rebuild after the last round"
    );
    wait_compacted(&server, rounds);
    check_outputs(&client, &ledger, rounds);
    let _ = server.stop();
    // No byte of any erased person's pseudonym is left anywhere.
    let found = pseudonym_traces(&data, &lock(&ledger).erased);
    assert!(found.is_empty(), "erased pseudonyms are still in {found:?} (seed {seed})");
    if cfg!(debug_assertions) && rounds >= STAGES.len() && only.is_empty() {
        let missed: Vec<&&str> = STAGES.iter().filter(|stage| !reached.contains_key(**stage)).collect();
        assert!(missed.is_empty(), "stages never crashed at: {missed:?}");
    }
    let ledger = lock(&ledger);
    eprintln!(
        "crash_stages: seed {seed}: {rounds} kills ({} at failpoints over {} stages, {signals} SIGKILL) in {:.1}s; \
         answered {:?}",
        reached.values().sum::<u64>(),
        reached.len(),
        started.elapsed().as_secs_f64(),
        ledger.answered
    );
}

/// [`ENV`] with erasures compacted within `bound` seconds.
fn base_env(bound: &'static str) -> Vec<(&'static str, &'static str)> {
    ENV.iter().map(|&(k, v)| (k, if k == "PROVISO_ERASURE_COMPACTION_SECONDS" { bound } else { v })).collect()
}

/// YYYY-MM-DD of epoch milliseconds.
fn proviso_day(ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).expect("time").date();
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// The last lines of a server's stderr.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Regression: a crash in or after the compaction swap left the snapshot of
/// the old log beside the new one, removed only after the swap. The next
/// start loaded it over the new log: the erased person came back (their
/// number resolved again) and the records replayed from the snapshot's
/// position in the new numbering skipped as many records as the erasure
/// removed. The snapshot now goes before the swap.
///
/// And: the compaction's outputs (the vault without the destroyed secrets,
/// the feeds and audit log redacted) were rewritten only after the swap,
/// and nothing redid them after a crash (the new log holds no erasure to
/// compact), so the erased person's partner id stayed in the feed files and
/// their pseudonym in the vault. A mark made before the swap now has the
/// next start finish them.
#[test]
fn a_crash_in_the_compaction_swap_leaves_no_stale_snapshot_and_finishes_the_outputs() {
    for stage in ["compact.mid_swap", "compact.after_swap"] {
        let temp = tempfile::tempdir().expect("tempdir");
        let data = temp.path().join("data");
        let failpoint = format!("{stage}=exit");
        let mut env = ENV.to_vec();
        let unarmed = env.clone();
        env.push(("PROVISO_FAILPOINTS", &failpoint));
        let mut server = Server::start_with(&data, &env);
        let client = Client::of(&server);
        let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
        assert!(send_batch(&client, &ledger, world_batch(1, common::now_ms())));
        for path in ["/v1/partners/friendnet/suggestions/fn-1-0", "/v1/partners/friendnet/audiences/shop1?days=7"] {
            assert_eq!(client.get(path, PARTNER).expect("disclosure").0, 200, "{path}");
        }
        // Past the snapshot interval (300 records) with the person in it,
        // then well past it again, so the new log is longer than the
        // snapshot's position.
        for n in 0..13 {
            let batch = january_batch(n);
            lock(&ledger).batches.push(batch.clone());
            assert!(send_batch(&client, &ledger, batch));
        }
        let person: HashSet<String> = ["fn-1-1".to_string()].into();
        assert!(!pseudonym_traces(&data, &person).is_empty(), "the log holds the person before the erasure");
        assert!(!erase(&client, &ledger, 1, 1), "{stage}: the erasure is not answered");
        let status = server.child.wait().expect("wait");
        assert_eq!(status.code(), Some(EXIT_STATUS), "{stage}: {}", server.stderr());
        drop(server);

        let server = Server::start_with(&data, &unarmed);
        let client = Client::of(&server);
        let (status, body) = client.resolve(&world_phone(1, 1)).expect("resolve");
        assert_eq!(status, 404, "{stage}: the erased person is back after the crash: {body}");
        resend(&client, &ledger);
        assert!(lock(&ledger).erased.contains("fn-1-1"));
        check_outputs(&client, &ledger, 0);
        check_no_traces(&data, &ledger, 0);
        let found = pseudonym_traces(&data, &person);
        assert!(found.is_empty(), "{stage}: the erased pseudonym is still in {found:?}");
        let _ = server.stop();
    }
}

/// Regression: a crash that tore the write of a group commit kept the
/// group's first records and lost the rest, the batch's key record (written
/// last) among them; the client's resend with the same key was then applied
/// in full, and the kept events counted twice. A torn group is now cut whole.
#[test]
fn a_torn_group_commit_is_not_applied_twice_on_resend() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let mut env = ENV.to_vec();
    env.push(("PROVISO_FAILPOINTS", "log.write=torn@2"));
    let mut server = Server::start_with(&data, &env);
    let client = Client::of(&server);
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    for n in 0..2 {
        let batch = january_batch(n);
        lock(&ledger).batches.push(batch.clone());
        assert_eq!(send_batch(&client, &ledger, batch), n == 0, "the second write is torn");
    }
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(EXIT_STATUS), "{}", server.stderr());
    drop(server);

    let server = Server::start_with(&data, ENV);
    let client = Client::of(&server);
    resend(&client, &ledger);
    check_outputs(&client, &ledger, 0);
    let _ = server.stop();
}

/// A disk error while writing a refusal's retractions (`feed.write=eio` on
/// the third feed write: the suggestions' adds, the audience's, then the
/// refusal's retraction). The refusal is acknowledged (it is in the log and
/// in force), the retraction is not in the file; but the feed as the partner
/// reads it never names the person again (each add is released again
/// through the gate when read), and the next start writes the retraction.
#[test]
fn a_refusal_whose_retractions_fail_never_reaches_the_partner() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let mut env = ENV.to_vec();
    env.push(("PROVISO_FAILPOINTS", "feed.write=eio@3"));
    let server = Server::start_with(&data, &env);
    let client = Client::of(&server);
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    assert!(send_batch(&client, &ledger, world_batch(1, common::now_ms())));
    for path in ["/v1/partners/friendnet/suggestions/fn-1-0", "/v1/partners/friendnet/audiences/shop1?days=7"] {
        assert_eq!(client.get(path, PARTNER).expect("disclosure").0, 200, "{path}");
    }
    let subject = client.resolve(&world_phone(1, 2)).expect("resolve").1["subject"].as_str().expect("id").to_string();
    let body = json!({"granted": false}).to_string();
    let (status, answer) = client
        .send("PUT", &format!("/v1/subjects/{subject}/consent/product"), SUBJECT, None, Some(body.as_bytes()))
        .expect("an answer");
    let live =
        feed(&client, "product").into_iter().any(|record| record["op"] == "add" && record["suggested"] == "fn-1-2");
    assert!(
        status != 200 || !live,
        "the refusal was acknowledged ({status} {answer}) while the product feed still names the person"
    );
    let _ = server.kill();

    let server = Server::start_with(&data, ENV);
    let client = Client::of(&server);
    assert!(refuse(&client, &ledger, 1, 2));
    check_outputs(&client, &ledger, 0);
    let retracted = feed(&client, "product").iter().filter(|record| record["op"] == "retract").count();
    assert_eq!(retracted, 1, "the start wrote the retraction the disk error kept from the file");
    let _ = server.stop();
}

/// An erasure logged, then a crash before its retractions
/// (`consent.before_retractions`). The next start retracts what the person
/// was disclosed in (the reconciliation) and compacts the log for the
/// replayed erasure; the retractions copy the adds they withdraw, partner
/// ids included, and must not stay in the feed files. (Whether the writer's
/// compaction runs before or after the disclosure layer has set its hooks
/// is a race this test does not force; the start now covers both orders.)
#[test]
fn retractions_written_at_start_for_an_erasure_are_redacted() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let mut env = ENV.to_vec();
    env.push(("PROVISO_FAILPOINTS", "consent.before_retractions=exit"));
    let mut server = Server::start_with(&data, &env);
    let client = Client::of(&server);
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    assert!(send_batch(&client, &ledger, world_batch(1, common::now_ms())));
    for path in ["/v1/partners/friendnet/suggestions/fn-1-0", "/v1/partners/friendnet/audiences/shop1?days=7"] {
        assert_eq!(client.get(path, PARTNER).expect("disclosure").0, 200, "{path}");
    }
    assert!(!erase(&client, &ledger, 1, 1), "the erasure is not answered");
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(EXIT_STATUS), "{}", server.stderr());
    drop(server);

    let server = Server::start_with(&data, ENV);
    let client = Client::of(&server);
    resend(&client, &ledger);
    assert!(lock(&ledger).erased.contains("fn-1-1"));
    check_outputs(&client, &ledger, 0);
    check_no_traces(&data, &ledger, 0);
    let _ = server.stop();
}
