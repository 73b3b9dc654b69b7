//! `proviso bench http-load`: a low-CPU HTTP load generator for the `bench/`
//! scripts, with an optional friend-suggestions prober alongside.
//!
//! Owns: reading an NDJSON file into pre-rendered request bodies and
//! headers before anything is timed, posting them over keep-alive
//! connections (one blocking `ureq` agent per thread, an `Idempotency-Key`
//! per batch, a resend under the same key when no answer came), timing each
//! request, and measuring its own CPU and the server's (from /proc).
//! Never: formats or parses events in the timed loop, touches a data dir,
//! or decides whether a figure meets a target (the scripts do).

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::bench_stats::{process_cpu_s, round3, LatencySummary};
use anyhow::Context;
use serde::Serialize;

/// Benchmark clients (used by the scripts in bench/).
#[derive(Debug, clap::Args)]
pub struct BenchCommand {
    #[command(subcommand)]
    pub command: BenchSubcommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchSubcommand {
    /// Post an NDJSON file to a running server's /v1/events in batches, as
    /// fast as it acknowledges them, and print the figures as JSON
    HttpLoad(HttpLoadArgs),
    /// Check the edge's compiled phone matcher against the phonenumber
    /// crate over generated numbers of every region, and time both
    PhoneAgreement(PhoneAgreementArgs),
    /// Hold a data dir's address books in each candidate encoding and
    /// report bytes and speed
    Books(BooksArgs),
    /// Publish to a running NATS server's cluster event stream as fast as
    /// JetStream acknowledges, and print the figures as JSON
    NatsPublish(super::bench_nats::NatsPublishArgs),
    /// Append a long synthetic disclosure history to a data dir's audit
    /// log, to measure what a history costs (start-up, an erasure's scrub)
    AuditHistory(AuditHistoryArgs),
}

/// Appends --records synthetic disclosures to the audit log of --data
/// (stop the server first), each naming --handles record handles drawn from
/// --people made-up people, continuing the log's hash chain, with one fsync
/// at the end. No such person is in the vault, so a `proviso compact`
/// after an erasure that scrubs the whole log scrubs every handle of this
/// history: that is what `bench/audit_scrub.sh` times. Prints a JSON line
/// with the records, bytes and time. The records are made up: the command
/// refuses a log that already holds records unless --onto-existing-log.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  proviso bench audit-history --data bench/out/audit-scrub-data --records 200000")]
pub struct AuditHistoryArgs {
    #[command(flatten)]
    pub options: Box<proviso::config::OptArgs>,
    /// Disclosure records to append
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Handles each record names
    #[arg(long, default_value_t = 40)]
    pub handles: usize,
    /// Made-up people the handles are drawn from
    #[arg(long, default_value_t = 200_000)]
    pub people: u64,
    /// Seed of the draw
    #[arg(long, default_value_t = 3)]
    pub seed: u64,
    /// Then scrub every handle of the log (as a compaction after erasing
    /// everyone would) while appending a disclosure every 5 ms, and report
    /// how long the appends waited. Leaves the log scrubbed
    #[arg(long)]
    pub scrub: bool,
    /// Then erase this many of the made-up people: scrub a copy of the log
    /// whole, and the log itself in place from their handles' keys (as a
    /// compaction after their erasure does); report both times and check
    /// that both leave the same bytes. Leaves the log scrubbed of them
    #[arg(long, conflicts_with = "scrub")]
    pub erase: Option<u64>,
    /// Append to a log that already holds records (real disclosures would
    /// then sit among made-up ones: for a throwaway copy only)
    #[arg(long)]
    pub onto_existing_log: bool,
}

/// Loads the state of --data (snapshot plus log tail; the data dir must be
/// free: stop the server first), then holds its address books in each
/// candidate encoding (the old hash map of u32 lists, a roaring bitmap per
/// owner, the packed books of `books.rs` boxed per owner, and in one arena
/// with skip entries every 16 to 128 contacts or none) and reports, as JSON, the
/// allocator's bytes for each (glibc mallinfo2), the mean time of a
/// membership test over --probes (owner, subject) pairs (half of them
/// members), and the time per contact of iterating every book. The answers
/// of every candidate are checked against the sorted lists.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  proviso bench books --data bench/out/partner-data")]
pub struct BooksArgs {
    #[command(flatten)]
    pub options: Box<proviso::config::OptArgs>,
    /// Membership tests timed per candidate
    #[arg(long, default_value_t = 2_000_000)]
    pub probes: usize,
    /// Seed of the draw of probes
    #[arg(long, default_value_t = 3)]
    pub seed: u64,
}

/// Generates --numbers phone numbers from every region of the metadata
/// (example numbers with digits changed, added or dropped, written in
/// international, spaced, national, national-prefix and 00 forms, plus
/// random digits), parses each with the phonenumber crate, and compares the
/// crate's validity, region and E.164 answers with the edge's compiled
/// matcher. Prints a JSON report; exits 1 on any disagreement. Then times
/// both ways of answering over the first 200,000 numbers. With --dump, also
/// writes every generated number and proviso's answer as NDJSON, for
/// `bench/phone_python.py` to hold against Python's phonenumbers.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  proviso bench phone-agreement --numbers 1000000
  proviso bench phone-agreement --numbers 1000000 --dump bench/out/phone-answers.ndjson")]
pub struct PhoneAgreementArgs {
    /// Numbers to generate and compare
    #[arg(long, default_value_t = 1_000_000)]
    pub numbers: u64,
    /// Seed of the generator
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Also write each generated number (synthetic) with proviso's answer
    /// to this NDJSON file
    #[arg(long, value_name = "FILE")]
    pub dump: Option<std::path::PathBuf>,
}

/// Posts the first --max-lines lines of FILE to `POST /v1/events` in batches
/// of --batch lines over --connections keep-alive connections (one thread
/// each), --passes times. Every batch is cut, and its headers and
/// Idempotency-Key rendered, before the clock starts; the timed loop only
/// sends bytes and reads the small answers. A request that gets no answer is
/// resent with the same key (applied once). Each answer comes after the
/// batch is fsync'd.
///
/// With --suggestions-partner, one more thread asks
/// `GET /v1/partners/P/suggestions/ID?limit=20` back to back (with
/// --suggestions-pause-ms between requests), for accounts linked in FILE
/// (its `partner_account` lines): --suggestions-idle requests before the
/// ingest starts, then for as long as the ingest runs. Their latencies are
/// reported apart.
///
/// CPU: the generator's own user+system seconds during the timed phase, the
/// server's with --server-pid (both from /proc/PID/stat), and the rest of the
/// machine's (from /proc/stat: about 0 on a quiet machine).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  proviso bench http-load events.ndjson --url http://127.0.0.1:7420 --token $PROVISO_INGEST_TOKEN --batch 10000 --connections 4")]
pub struct HttpLoadArgs {
    /// NDJSON file of events (contract v1)
    pub file: PathBuf,
    /// Server base URL, e.g. http://127.0.0.1:7420; several, comma-separated,
    /// for the nodes of a cluster (connection i sends to URL i mod count)
    #[arg(long, value_delimiter = ',', required = true)]
    pub url: Vec<String>,
    /// Bearer token of the ingest role
    #[arg(long)]
    pub token: String,
    /// Lines per request
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Concurrent keep-alive connections, one thread each
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Send at most this many lines of the file
    #[arg(long, default_value_t = 2_000_000)]
    pub max_lines: usize,
    /// Send the batches this many times (each pass under new keys)
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    /// Resends of a batch that got no answer
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Per-request timeout in seconds
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
    /// The server's process id: its CPU seconds during the timed phase are
    /// reported; several, comma-separated, are summed (a cluster's nodes)
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Probe friend suggestions of this partner during the load
    #[arg(long)]
    pub suggestions_partner: Option<String>,
    /// Bearer token of that partner (or admin)
    #[arg(long)]
    pub suggestions_token: Option<String>,
    /// Suggestion requests made before the ingest starts (an idle baseline)
    #[arg(long, default_value_t = 200)]
    pub suggestions_idle: usize,
    /// Pause between two suggestion requests, in milliseconds
    #[arg(long, default_value_t = 2)]
    pub suggestions_pause_ms: u64,
    /// Seed of the draw of suggestion askers
    #[arg(long, default_value_t = 3)]
    pub seed: u64,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command.command {
        BenchSubcommand::HttpLoad(args) => http_load(args),
        BenchSubcommand::PhoneAgreement(args) => phone_agreement(args),
        BenchSubcommand::Books(args) => books(args),
        BenchSubcommand::NatsPublish(args) => super::bench_nats::nats_publish(args),
        BenchSubcommand::AuditHistory(args) => audit_history(args),
    }
}

fn audit_history(args: AuditHistoryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.handles > 0 && args.people > 0, "--handles and --people must be at least 1");
    let config = super::resolve_config(&args.options)?;
    let dir = &config.data_dir;
    proviso::log::fsmode::create_private_dir(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    let _lock = proviso::log::DirLock::acquire(dir).with_context(|| format!("opening data dir {}", dir.display()))?;
    let started = Instant::now();
    let audit = proviso::disclose::audit::AuditLog::open(dir).context("opening the audit log")?;
    let opened_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        audit.records() == 0 || args.onto_existing_log,
        "the audit log of {} already holds {} records: made-up disclosures would sit among them. Use a fresh data \
         dir, or pass --onto-existing-log for a throwaway copy",
        dir.display(),
        audit.records()
    );
    let before = std::fs::metadata(audit.path()).map(|m| m.len()).unwrap_or(0);
    let bar =
        super::counting_bar(args.records, "{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta}", "records appended");
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let people = args.people;
    let handles = args.handles;
    let start_ms = proviso::clock::now_ms();
    let history = (0..args.records).map(move |k| proviso::disclose::audit::HistoryRecord {
        at_ms: start_ms + k as i64,
        recipient: "partner:bench".to_string(),
        purpose: if k % 4 == 0 { "ads" } else { "product" }.to_string(),
        kind: if k % 4 == 0 { "audience_members" } else { "suggestions" }.to_string(),
        subjects: (0..handles).map(|_| made_up_handle(rng.u64(0..people))).collect(),
    });
    let appending = Instant::now();
    let written = audit.append_history(history, &|done| bar.set_position(done)).context("appending the history")?;
    bar.finish_and_clear();
    let append_s = appending.elapsed().as_secs_f64();
    let after = std::fs::metadata(audit.path()).map(|m| m.len()).unwrap_or(0);
    let mut report = serde_json::json!({
        "records_appended": written,
        "bytes_appended": after.saturating_sub(before),
        "audit_log_bytes": after,
        "open_s": round3(opened_s),
        "append_s": round3(append_s),
    });
    if args.scrub {
        report["scrub"] = scrub_under_appends(&audit)?;
    }
    if let Some(erase) = args.erase {
        report["erase"] = erase_made_up(&audit, dir, erase.min(args.people))?;
    }
    println!("{report}");
    Ok(())
}

/// The `r_` handle of made-up person `k` of `proviso bench audit-history`.
fn made_up_handle(k: u64) -> String {
    format!("r_{:032x}", u128::from(k) * 0x9E37_79B9)
}

/// Erases made-up people 0..`erase` from `audit`: a copy of the log is
/// scrubbed whole, the log in place from their keys; both times, and
/// whether both left the same bytes (an error if not).
fn erase_made_up(
    audit: &proviso::disclose::audit::AuditLog,
    dir: &std::path::Path,
    erase: u64,
) -> anyhow::Result<serde_json::Value> {
    let erased: std::collections::HashSet<String> = (0..erase).map(made_up_handle).collect();
    let keys: Vec<[u8; 4]> = erased.iter().map(|handle| proviso::contract::hash_prefix(handle)).collect();
    let keep = |handle: &str| !erased.contains(handle);
    let copy = dir.with_extension("whole-scrub");
    let _ = std::fs::remove_dir_all(&copy);
    audit.copy_to(&copy).context("copying the audit log")?;
    let whole = proviso::disclose::audit::AuditLog::open(&copy).context("opening the copy")?;
    let started = Instant::now();
    let scrubbed_whole = whole.scrub(keep).context("scrubbing the copy whole")?;
    let whole_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let scrubbed_in_place = audit.scrub_keys(&keys, keep).context("scrubbing the log in place")?;
    let in_place_s = started.elapsed().as_secs_f64();
    let same = std::fs::read(audit.path())? == std::fs::read(whole.path())?;
    drop(whole);
    std::fs::remove_dir_all(&copy).with_context(|| format!("removing {}", copy.display()))?;
    anyhow::ensure!(
        same && scrubbed_whole == scrubbed_in_place,
        "the scrub in place ({scrubbed_in_place} handles) and the whole-log scrub ({scrubbed_whole}) left different logs"
    );
    Ok(serde_json::json!({
        "people_erased": erase,
        "handles_scrubbed": scrubbed_in_place,
        "whole_scrub_s": round3(whole_s),
        "in_place_s": round3(in_place_s),
        "whole_over_in_place": round3(whole_s / in_place_s.max(1e-9)),
        "same_bytes": same,
    }))
}

/// Scrubs every handle of `audit` on a thread while appending one
/// disclosure every 5 ms here; the scrub's time and how long each append
/// took meanwhile.
fn scrub_under_appends(audit: &proviso::disclose::audit::AuditLog) -> anyhow::Result<serde_json::Value> {
    let done = AtomicBool::new(false);
    let (scrubbed, scrub_s, mut waits) = std::thread::scope(|scope| {
        let scrubbing = scope.spawn(|| {
            let started = Instant::now();
            let scrubbed = audit.scrub(|_| false);
            done.store(true, Ordering::SeqCst);
            (scrubbed, started.elapsed().as_secs_f64())
        });
        let mut waits = Vec::new();
        let mut k = 0u64;
        while !done.load(Ordering::SeqCst) {
            let started = Instant::now();
            let subjects = vec![format!("r_{:032x}", u128::from(k) + (1 << 100))];
            if audit.append(proviso::clock::now_ms(), "partner:bench", "product", "suggestions", subjects).is_err() {
                break;
            }
            waits.push(started.elapsed().as_secs_f64() * 1e3);
            k += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        let (scrubbed, scrub_s) = scrubbing.join().unwrap_or((Ok(0), 0.0));
        (scrubbed, scrub_s, waits)
    });
    let scrubbed = scrubbed.context("scrubbing the audit log")?;
    waits.sort_by(f64::total_cmp);
    let at = |q: f64| waits.get(((waits.len() as f64 * q) as usize).min(waits.len().saturating_sub(1))).copied();
    Ok(serde_json::json!({
        "handles_scrubbed": scrubbed,
        "scrub_s": round3(scrub_s),
        "appends_meanwhile": waits.len(),
        "append_ms_p50": at(0.5).map(round3),
        "append_ms_p99": at(0.99).map(round3),
        "append_ms_max": waits.last().copied().map(round3),
    }))
}

fn books(args: BooksArgs) -> anyhow::Result<()> {
    let config = super::resolve_config(&args.options)?;
    let dir = &config.data_dir;
    let _lock = proviso::log::DirLock::acquire(dir).with_context(|| format!("opening data dir {}", dir.display()))?;
    let (state, _) = proviso::pipeline::rebuild_state(dir, true)
        .with_context(|| format!("loading the state in {}", dir.display()))?;
    let report =
        proviso::processors::graph::encodings::measure(&state.graph, state.subjects.len(), args.probes, args.seed);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn phone_agreement(args: PhoneAgreementArgs) -> anyhow::Result<()> {
    let bar =
        super::counting_bar(args.numbers, "{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta}", "numbers compared");
    let started = std::time::Instant::now();
    let report = proviso::edge::agreement::check(args.numbers, args.seed, |done| bar.set_position(done));
    bar.finish_and_clear();
    if let Some(path) = &args.dump {
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        proviso::edge::agreement::dump(args.numbers, args.seed, &mut out)
            .and_then(|_| std::io::Write::flush(&mut out))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let timing = proviso::edge::agreement::time_both(args.numbers.min(200_000), args.seed);
    let json = serde_json::json!({
        "report": report,
        "seconds": started.elapsed().as_secs_f64(),
        "timing": timing,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    if report.disagreements > 0 {
        anyhow::bail!("{} of {} parsed numbers got different answers", report.disagreements, report.parsed);
    }
    Ok(())
}

/// The request bodies and one rendered `Idempotency-Key` per request
/// (request `i` sends body `i % bodies.len()`), made before the clock starts.
struct Batches {
    bodies: Vec<Vec<u8>>,
    keys: Vec<String>,
}

/// What one ingest thread saw.
#[derive(Default)]
struct IngestTally {
    accepted: u64,
    rejected: u64,
    requests: u64,
    resends: u64,
    latencies_us: Vec<u64>,
    rejected_by_reason: std::collections::BTreeMap<String, u64>,
    errors: Vec<String>,
}

#[derive(serde::Deserialize)]
struct IngestAnswer {
    accepted: u64,
    rejected: Vec<RejectedLine>,
}

#[derive(serde::Deserialize)]
struct RejectedLine {
    reason: String,
}

#[derive(Serialize)]
struct SuggestionsReport {
    accounts_available: usize,
    idle: Option<LatencySummary>,
    under_ingest: Option<LatencySummary>,
    non_empty_under_ingest: usize,
    status: std::collections::BTreeMap<u16, u64>,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct HttpLoadReport {
    lines: usize,
    bytes: usize,
    batches: usize,
    batch_lines: usize,
    connections: usize,
    passes: usize,
    requests: u64,
    accepted: u64,
    rejected: u64,
    rejected_by_reason: std::collections::BTreeMap<String, u64>,
    resends: u64,
    error_count: usize,
    errors: Vec<String>,
    prepare_s: f64,
    wall_s: f64,
    events_per_second: f64,
    lines_per_second: f64,
    mb_per_second: f64,
    request_latency_ms: Option<LatencySummary>,
    /// The generator's own user+system CPU seconds during the timed phase.
    client_cpu_s: Option<f64>,
    client_cpu_s_per_million_events: Option<f64>,
    server_cpu_s: Option<f64>,
    /// CPU seconds the whole machine was busy during the timed phase, minus
    /// the generator's and (with --server-pid) the server's: other work.
    other_cpu_s: Option<f64>,
    suggestions: Option<SuggestionsReport>,
}

fn http_load(args: HttpLoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batch > 0 && args.connections > 0 && args.passes > 0,
        "--batch, --connections and --passes must be at least 1"
    );
    let prepare_started = Instant::now();
    let (bodies, accounts) = read_batches(&args)?;
    let lines: usize = bodies.iter().map(|body| body.iter().filter(|&&b| b == b'\n').count()).sum();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let run_id = format!("{:016x}", fastrand::u64(..));
    let keys = (0..args.passes)
        .flat_map(|pass| (0..bodies.len()).map(move |index| (pass, index)))
        .map(|(pass, index)| format!("bench-{run_id}-{pass}-{index}"))
        .collect();
    let batches = Batches { bodies, keys };
    let bases: Vec<String> = args.url.iter().map(|url| url.trim_end_matches('/').to_string()).collect();
    let base = bases.first().cloned().unwrap_or_default();
    let events_urls: Vec<String> = bases.iter().map(|base| format!("{base}/v1/events")).collect();
    let auth = format!("Bearer {}", args.token);
    let prepare_s = prepare_started.elapsed().as_secs_f64();
    eprintln!(
        "[bench] {lines} lines in {} batches x {} passes, {bytes} bytes in memory, {} linked accounts; prepared in {prepare_s:.2}s",
        batches.bodies.len(),
        args.passes,
        accounts.len()
    );

    let timeout = Some(Duration::from_secs(args.timeout_seconds));
    let agent = || {
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(timeout).build();
        ureq::Agent::new_with_config(config)
    };

    let ingest_running = AtomicBool::new(false);
    let ingest_done = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let tallies = Mutex::new(Vec::<IngestTally>::new());
    let mut prober_report = None;
    let mut timed = (0.0, None, None, None);

    std::thread::scope(|scope| -> anyhow::Result<()> {
        let prober = match (&args.suggestions_partner, &args.suggestions_token) {
            (Some(partner), Some(token)) if !accounts.is_empty() => {
                let prober = Prober {
                    agent: agent(),
                    urls: accounts
                        .iter()
                        .map(|account| format!("{base}/v1/partners/{partner}/suggestions/{account}?limit=20"))
                        .collect(),
                    auth: format!("Bearer {token}"),
                    pause: Duration::from_millis(args.suggestions_pause_ms),
                };
                let idle = prober.probe_idle(args.suggestions_idle);
                let (ingest_running, ingest_done) = (&ingest_running, &ingest_done);
                Some(scope.spawn(move || prober.probe_under_ingest(idle, ingest_running, ingest_done)))
            }
            (Some(_), _) => {
                anyhow::bail!("--suggestions-partner needs --suggestions-token and linked accounts in the file")
            }
            _ => None,
        };

        let servers_cpu_s = || -> Option<f64> {
            if args.server_pid.is_empty() {
                return None;
            }
            args.server_pid.iter().map(|pid| process_cpu_s(*pid)).sum()
        };
        let server_before = servers_cpu_s();
        let client_before = process_cpu_s(std::process::id());
        let busy_before = machine_busy_cpu_s();
        let started = Instant::now();
        ingest_running.store(true, Ordering::SeqCst);
        let workers: Vec<_> = (0..args.connections)
            .map(|connection| {
                let url = &events_urls[connection % events_urls.len()];
                let (agent, batches, next, auth) = (agent(), &batches, &next, &auth);
                let retries = args.retries;
                scope.spawn(move || ingest_worker(&agent, url, auth, batches, next, retries))
            })
            .collect();
        for worker in workers {
            let tally = worker.join().map_err(|_| anyhow::anyhow!("an ingest thread panicked"))?;
            tallies.lock().unwrap_or_else(|p| p.into_inner()).push(tally);
        }
        let wall_s = started.elapsed().as_secs_f64();
        ingest_done.store(true, Ordering::SeqCst);
        let client_cpu = client_before.zip(process_cpu_s(std::process::id())).map(|(b, a)| a - b);
        let server_cpu = server_before.zip(servers_cpu_s()).map(|(b, a)| a - b);
        let busy = busy_before.zip(machine_busy_cpu_s()).map(|(b, a)| a - b);
        timed = (wall_s, client_cpu, server_cpu, busy);
        if let Some(prober) = prober {
            prober_report = Some(prober.join().map_err(|_| anyhow::anyhow!("the suggestions thread panicked"))?);
        }
        Ok(())
    })?;

    let (wall_s, client_cpu_s, server_cpu_s, busy_cpu_s) = timed;
    let mut total = IngestTally::default();
    for tally in tallies.into_inner().unwrap_or_else(|p| p.into_inner()) {
        total.accepted += tally.accepted;
        total.rejected += tally.rejected;
        total.requests += tally.requests;
        total.resends += tally.resends;
        total.latencies_us.extend(tally.latencies_us);
        for (reason, count) in tally.rejected_by_reason {
            *total.rejected_by_reason.entry(reason).or_default() += count;
        }
        total.errors.extend(tally.errors);
    }
    let per_second = |n: f64| if wall_s > 0.0 { (n / wall_s).round() } else { 0.0 };
    let report = HttpLoadReport {
        lines,
        bytes,
        batches: batches.bodies.len(),
        batch_lines: args.batch,
        connections: args.connections,
        passes: args.passes,
        requests: total.requests,
        accepted: total.accepted,
        rejected: total.rejected,
        rejected_by_reason: total.rejected_by_reason,
        resends: total.resends,
        error_count: total.errors.len(),
        errors: total.errors.iter().take(10).cloned().collect(),
        prepare_s: round3(prepare_s),
        wall_s: round3(wall_s),
        events_per_second: per_second(total.accepted as f64),
        lines_per_second: per_second((total.accepted + total.rejected) as f64),
        mb_per_second: round3(per_second((bytes * args.passes) as f64) / 1e6),
        request_latency_ms: LatencySummary::of(total.latencies_us),
        client_cpu_s: client_cpu_s.map(round3),
        client_cpu_s_per_million_events: client_cpu_s
            .filter(|_| total.accepted > 0)
            .map(|cpu| round3(cpu / (total.accepted as f64 / 1e6))),
        server_cpu_s: server_cpu_s.map(round3),
        other_cpu_s: busy_cpu_s
            .zip(client_cpu_s)
            .map(|(busy, client)| round3(busy - client - server_cpu_s.unwrap_or(0.0))),
        suggestions: prober_report,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    anyhow::ensure!(
        report.error_count == 0,
        "{} batches failed; first: {:?}",
        report.error_count,
        report.errors.first()
    );
    Ok(())
}

/// The file's first --max-lines lines cut into request bodies, and the
/// partner account ids its `partner_account` lines link (drawn in a seeded
/// order, for the suggestions prober).
fn read_batches(args: &HttpLoadArgs) -> anyhow::Result<(Vec<Vec<u8>>, Vec<String>)> {
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut bodies = Vec::new();
    let mut body = Vec::new();
    let mut in_body = 0;
    let mut line = Vec::new();
    let mut accounts = std::collections::BTreeSet::new();
    let want_accounts = args.suggestions_partner.is_some();
    for _ in 0..args.max_lines {
        line.clear();
        if reader.read_until(b'\n', &mut line).with_context(|| format!("reading {}", args.file.display()))? == 0 {
            break;
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        if want_accounts && line.windows(17).any(|w| w == b"\"partner_account\"") {
            if let Some(id) = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|event| event.get("partner_id")?.as_str().map(str::to_string))
            {
                accounts.insert(id);
            }
        }
        body.extend_from_slice(&line);
        in_body += 1;
        if in_body == args.batch {
            bodies.push(std::mem::take(&mut body));
            in_body = 0;
        }
    }
    if in_body > 0 {
        bodies.push(body);
    }
    let mut accounts: Vec<String> = accounts.into_iter().collect();
    fastrand::Rng::with_seed(args.seed).shuffle(&mut accounts);
    Ok((bodies, accounts))
}

/// Takes batches by index until none is left; posts each, resending under
/// the same key when no answer came.
fn ingest_worker(
    agent: &ureq::Agent,
    url: &str,
    auth: &str,
    batches: &Batches,
    next: &AtomicUsize,
    retries: u32,
) -> IngestTally {
    let mut tally = IngestTally::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(key) = batches.keys.get(index) else { return tally };
        let body = &batches.bodies[index % batches.bodies.len()];
        let mut attempt = 0;
        let answer = loop {
            let sent = Instant::now();
            let response = agent
                .post(url)
                .header("Authorization", auth)
                .header("Content-Type", "application/x-ndjson")
                .header("Idempotency-Key", key)
                .send(&body[..]);
            let read = response.and_then(|mut response| {
                let status = response.status().as_u16();
                response.body_mut().with_config().limit(64 << 20).read_to_vec().map(|body| (status, body))
            });
            match read {
                Ok(answer) => {
                    tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                    break Some(answer);
                }
                Err(error) if attempt < retries => {
                    tracing::warn!(batch = index, %error, "No answer to a batch; resending it under the same key.");
                    tally.resends += 1;
                    attempt += 1;
                }
                Err(error) => {
                    tally.errors.push(format!("batch {index}: {error}"));
                    break None;
                }
            }
        };
        let Some((status, body)) = answer else { continue };
        tally.requests += 1;
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
            tally.errors.push(format!("batch {index}: HTTP {status} {text}"));
            continue;
        }
        match serde_json::from_slice::<IngestAnswer>(&body) {
            Ok(answer) => {
                tally.accepted += answer.accepted;
                tally.rejected += answer.rejected.len() as u64;
                for line in answer.rejected {
                    *tally.rejected_by_reason.entry(line.reason).or_default() += 1;
                }
            }
            Err(error) => tally.errors.push(format!("batch {index}: unreadable answer: {error}")),
        }
    }
}

/// Friend suggestion requests, one at a time, for a list of accounts.
struct Prober {
    agent: ureq::Agent,
    urls: Vec<String>,
    auth: String,
    pause: Duration,
}

/// What a probe phase saw.
#[derive(Default)]
struct ProbeTally {
    latencies_us: Vec<u64>,
    non_empty: usize,
    status: std::collections::BTreeMap<u16, u64>,
    errors: Vec<String>,
}

impl Prober {
    fn probe(&self, index: usize, tally: &mut ProbeTally) {
        let url = &self.urls[index % self.urls.len()];
        let sent = Instant::now();
        let answer = self.agent.get(url).header("Authorization", &self.auth).call().and_then(|mut response| {
            let status = response.status().as_u16();
            response.body_mut().read_to_vec().map(|body| (status, body))
        });
        let elapsed = sent.elapsed().as_micros() as u64;
        match answer {
            Ok((status, body)) => {
                tally.latencies_us.push(elapsed);
                *tally.status.entry(status).or_default() += 1;
                if status == 200 && body.len() > 2 {
                    tally.non_empty += 1;
                }
            }
            Err(error) if tally.errors.len() < 10 => tally.errors.push(error.to_string()),
            Err(_) => {}
        }
        std::thread::sleep(self.pause);
    }

    fn probe_idle(&self, requests: usize) -> ProbeTally {
        let mut tally = ProbeTally::default();
        for index in 0..requests {
            self.probe(index, &mut tally);
        }
        tally
    }

    /// Probes from the moment the ingest starts until it ends.
    fn probe_under_ingest(&self, idle: ProbeTally, running: &AtomicBool, done: &AtomicBool) -> SuggestionsReport {
        while !running.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let mut tally = ProbeTally::default();
        let mut index = idle.latencies_us.len();
        while !done.load(Ordering::SeqCst) {
            self.probe(index, &mut tally);
            index += 1;
        }
        let mut status = idle.status;
        for (code, count) in tally.status {
            *status.entry(code).or_default() += count;
        }
        SuggestionsReport {
            accounts_available: self.urls.len(),
            idle: LatencySummary::of(idle.latencies_us),
            under_ingest: LatencySummary::of(tally.latencies_us),
            non_empty_under_ingest: tally.non_empty,
            status,
            errors: idle.errors.into_iter().chain(tally.errors).collect(),
        }
    }
}

/// CPU seconds the machine has been busy (user, nice, system, irq, softirq,
/// steal) since boot, from the `cpu` line of /proc/stat (USER_HZ ticks).
fn machine_busy_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> =
        stat.lines().next()?.split_whitespace().skip(1).map(|field| field.parse().unwrap_or(0.0)).collect();
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    Some(busy / 100.0)
}
