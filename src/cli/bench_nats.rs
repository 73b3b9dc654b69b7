//! `proviso bench nats-publish`: how fast one JetStream stream takes
//! proviso's messages on this machine (issue 16: the NATS throughput per
//! stream that docs/scale.md sizes a deployment from).
//!
//! Owns: publishing --messages payloads of --bytes each to the cluster event
//! stream (`cluster::stream::EventStream`, the code cluster mode will use)
//! over --partitions partition subjects, with at most --in-flight
//! publishes awaiting their acknowledgement at once, and reporting as JSON
//! the rate, the acknowledgement latency and this process's CPU.
//! Never: starts or configures the NATS server (bench/nats.sh does, with
//! `sync_interval: always`), or decides whether a figure is good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::bench_stats::{process_cpu_s, round3, LatencySummary};

/// Publishes to the cluster event stream of a running NATS server (which
/// must fsync every write: `sync_interval: always`, as bench/nats.sh
/// starts it) and prints the figures as JSON. The stream is created when
/// missing; its messages are left in it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  proviso bench nats-publish --nats nats://127.0.0.1:4222 --messages 20000 --bytes 65536 --in-flight 64")]
pub struct NatsPublishArgs {
    /// The NATS server
    #[arg(long)]
    pub nats: String,
    /// Messages to publish
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Bytes of each message's payload (a batch's framed records for one
    /// partition: about 100 bytes an event)
    #[arg(long, default_value_t = 65_536)]
    pub bytes: usize,
    /// Partition subjects the messages go round
    #[arg(long, default_value_t = 64)]
    pub partitions: u16,
    /// Publishes awaiting their acknowledgement at once
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
}

#[derive(Serialize)]
struct NatsFigures {
    messages: u64,
    bytes_per_message: usize,
    partitions: u16,
    in_flight: usize,
    wall_s: f64,
    messages_per_second: f64,
    megabytes_per_second: f64,
    /// At ~100 bytes a framed event (the 5M file's log: 102).
    events_per_second_at_100_bytes: f64,
    ack_ms: Option<LatencySummary>,
    client_cpu_s: Option<f64>,
}

pub fn nats_publish(args: NatsPublishArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.in_flight > 0, "--in-flight must be at least 1");
    anyhow::ensure!(args.partitions > 0, "--partitions must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let figures = runtime.block_on(publish_all(&args))?;
    println!("{}", serde_json::to_string_pretty(&figures)?);
    Ok(())
}

async fn publish_all(args: &NatsPublishArgs) -> anyhow::Result<NatsFigures> {
    let jetstream = proviso::cluster::connect(&args.nats).await?;
    let events = Arc::new(proviso::cluster::stream::EventStream::open(&jetstream, Duration::from_secs(120)).await?);
    let payload = bytes::Bytes::from(vec![0x5a; args.bytes]);
    // Message ids unique to this run, so a rerun on the same stream is not
    // taken for retries.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let cpu_before = process_cpu_s(std::process::id());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut latencies = Vec::with_capacity(args.messages as usize);
    for n in 0..args.messages {
        if tasks.len() >= args.in_flight {
            if let Some(done) = tasks.join_next().await {
                latencies.push(done.context("a publish task failed")??);
            }
        }
        let (events, payload) = (Arc::clone(&events), payload.clone());
        let partition = (n % u64::from(args.partitions)) as u16;
        tasks.spawn(async move {
            let sent = Instant::now();
            let published = events.publish(partition, &format!("bench-{run}-{n}"), payload).await?;
            anyhow::ensure!(!published.duplicate, "message {n} was taken for a duplicate");
            Ok::<u64, anyhow::Error>(sent.elapsed().as_micros() as u64)
        });
    }
    while let Some(done) = tasks.join_next().await {
        latencies.push(done.context("a publish task failed")??);
    }
    let wall_s = started.elapsed().as_secs_f64();
    let client_cpu_s = cpu_before.zip(process_cpu_s(std::process::id())).map(|(b, a)| round3(a - b));
    let total_bytes = args.messages as f64 * args.bytes as f64;
    Ok(NatsFigures {
        messages: args.messages,
        bytes_per_message: args.bytes,
        partitions: args.partitions,
        in_flight: args.in_flight,
        wall_s: round3(wall_s),
        messages_per_second: (args.messages as f64 / wall_s).round(),
        megabytes_per_second: round3(total_bytes / wall_s / 1e6),
        events_per_second_at_100_bytes: (total_bytes / 100.0 / wall_s).round(),
        ack_ms: LatencySummary::of(latencies),
        client_cpu_s,
    })
}
