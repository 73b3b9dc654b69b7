//! `proviso simulate`: a deterministic workload, to a file or a live server.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use proviso::sim::{SimConfig, Simulator};

/// Generate a deterministic, realistic workload (contract v1 NDJSON).
///
/// Power-law activity, mostly one-to-one messages, clustered reciprocal
/// contact books, businesses, labelled spammers (ground truth goes to
/// --labels), partner accounts and friendships, and some consent refusals.
/// The same options always give the same bytes.
///
/// Examples:
///   proviso simulate --subjects 100000 --events 5000000 --out events.ndjson --labels labels.ndjson
///   proviso simulate --server http://127.0.0.1:7420 --token $TOKEN --rate 20000
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SimulateCommand {
    /// Random seed; the same seed gives the same output
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of subjects (accounts)
    #[arg(long, default_value_t = 10_000)]
    pub subjects: u32,
    /// Days of activity
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Approximate number of events to generate
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// First day (YYYY-MM-DD, UTC) [default: 2026-01-01; with --server: `days` days ending yesterday]
    #[arg(long)]
    pub start: Option<String>,
    /// Output file, or `-` for stdout (ignored with --server)
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
    /// Write the ground-truth spam labels (NDJSON) to this file
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Stream to a running server instead of writing a file
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for --server (ingest or admin)
    #[arg(long, env = proviso::config::env::PROVISO_TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// Events per second when streaming (0 = as fast as the server takes them)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Events per HTTP batch when streaming
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
}

impl SimulateCommand {
    pub fn sim_config(&self, default_start_ms: i64) -> anyhow::Result<SimConfig> {
        let start_ms = match &self.start {
            Some(day) => {
                i64::from(
                    proviso::disclose::metrics::parse_day(day, "start").map_err(|e| anyhow::anyhow!(e.to_string()))?,
                ) * proviso::contract::DAY_MS
            }
            None => default_start_ms,
        };
        Ok(SimConfig {
            seed: self.seed,
            subjects: self.subjects,
            days: self.days,
            start_ms,
            target_events: self.events,
            ..SimConfig::default()
        })
    }
}

pub fn run(command: SimulateCommand) -> anyhow::Result<()> {
    let default_start = if command.server.is_some() {
        let today = proviso::contract::day_of(now_ms());
        // Ends yesterday: proviso refuses event times in the future.
        i64::from(today - command.days as i32) * proviso::contract::DAY_MS
    } else {
        SimConfig::default().start_ms
    };
    let mut simulator = Simulator::new(command.sim_config(default_start)?);
    if let Some(path) = &command.labels {
        std::fs::write(path, simulator.labels_ndjson())
            .with_context(|| format!("writing labels to {}", path.display()))?;
    }
    match &command.server {
        Some(server) => {
            let token = command.token.as_deref().context("--server needs --token (or PROVISO_TOKEN)")?;
            let client = super::http::Client::new(server, token);
            let mut keys = BatchKeys::new()?;
            let stats = stream(
                &mut simulator,
                command.batch,
                command.rate,
                |body| {
                    let response = send_with_retries(&client, body, &keys.next())?;
                    Ok((
                        response["accepted"].as_u64().unwrap_or(0),
                        response["rejected"].as_array().map_or(0, Vec::len) as u64,
                    ))
                },
                None,
            )?;
            eprintln!("streamed {} events: {} accepted, {} rejected", stats.sent, stats.accepted, stats.rejected);
        }
        None => {
            let progress = super::progress_bar(None, "simulating");
            let mut out: Box<dyn Write> = if command.out.as_os_str() == "-" {
                Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock()))
            } else {
                Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(&command.out)
                        .with_context(|| format!("creating {}", command.out.display()))?,
                ))
            };
            let mut line = Vec::with_capacity(4096);
            let mut lines = 0u64;
            while simulator.next_line(&mut line).is_some() {
                line.push(b'\n');
                out.write_all(&line).context("writing events")?;
                progress.inc(line.len() as u64);
                line.clear();
                lines += 1;
            }
            out.flush().context("writing events")?;
            progress.finish_and_clear();
            eprintln!("wrote {lines} events");
        }
    }
    Ok(())
}

/// A fresh `Idempotency-Key` per batch: a random run id and the batch
/// number, so two runs never share a key.
pub(super) struct BatchKeys {
    run: String,
    batches: u64,
}

impl BatchKeys {
    pub(super) fn new() -> anyhow::Result<BatchKeys> {
        let mut run = [0u8; 16];
        getrandom::fill(&mut run).map_err(|error| anyhow::anyhow!("reading random bytes: {error}"))?;
        Ok(BatchKeys { run: proviso::contract::prefixed_hex("sim-", &run), batches: 0 })
    }

    pub(super) fn next(&mut self) -> String {
        self.batches += 1;
        format!("{}-{}", self.run, self.batches)
    }
}

/// Most sends of one batch before giving up.
const MAX_ATTEMPTS: u32 = 8;

/// Sends one batch under `key`, resending it with the same key after no
/// answer or an answer that may pass (5xx, 408, 429): the server applies a
/// keyed batch once, so a resend of a batch that was written before the
/// answer was lost is answered, not applied again.
pub(super) fn send_with_retries(
    client: &super::http::Client,
    body: &[u8],
    key: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut wait = Duration::from_millis(250);
    for attempt in 1..=MAX_ATTEMPTS {
        let failure = match client.post_events_keyed(body, key) {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err((status, message))) if status >= 500 || status == 408 || status == 429 => {
                format!("server answered {status}: {message}")
            }
            Ok(Err((status, message))) => anyhow::bail!("server answered {status}: {message}"),
            Err(error) => format!("{error:#}"),
        };
        if attempt == MAX_ATTEMPTS {
            anyhow::bail!("{failure} (gave up after {MAX_ATTEMPTS} sends of one batch)");
        }
        eprintln!("{failure}; resending the batch with the same Idempotency-Key in {wait:?}");
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    anyhow::bail!("no send of the batch was attempted")
}

pub struct StreamStats {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// Sends the simulator's lines in batches through `send`, pacing to `rate`
/// events per second (0 = unpaced). `stop` ends the stream early when set.
pub fn stream(
    simulator: &mut Simulator,
    batch: usize,
    rate: u64,
    mut send: impl FnMut(&[u8]) -> anyhow::Result<(u64, u64)>,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> anyhow::Result<StreamStats> {
    let started = Instant::now();
    let mut stats = StreamStats { sent: 0, accepted: 0, rejected: 0 };
    let mut body = Vec::with_capacity(batch * 200);
    let mut line = Vec::with_capacity(4096);
    let mut in_batch = 0;
    loop {
        let more = simulator.next_line(&mut line).is_some();
        if more {
            body.extend_from_slice(&line);
            body.push(b'\n');
            line.clear();
            in_batch += 1;
        }
        if in_batch == batch.max(1) || (!more && in_batch > 0) {
            let (accepted, rejected) = send(&body)?;
            stats.sent += in_batch as u64;
            stats.accepted += accepted;
            stats.rejected += rejected;
            body.clear();
            in_batch = 0;
            if rate > 0 {
                let due = Duration::from_secs_f64(stats.sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        if !more || stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            return Ok(stats);
        }
    }
}

pub use proviso::clock::now_ms;
