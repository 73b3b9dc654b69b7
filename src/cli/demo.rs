//! `proviso demo`: a live server fed by the simulator, with its three pages
//! (dashboard, privacy center, review queue), a partner reading its feeds,
//! and figures in the terminal.
//!
//! Owns: the demo's data dir and tokens, the stream (the simulator's
//! catch-up of past days, then its live continuation in real time), the
//! simulated partner, the figures, and the order of a stop.
//! Never: stops the server before the stream, the partner and the figures
//! have stopped (so a stop is clean and exits 0), or sends a line before
//! its event time has come.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use proviso::cluster::local::LocalNats;
use proviso::config::{Config, Opt, Partner, Secret, TokenConfig};
use proviso::contract::Purpose;
use proviso::server;
use proviso::sim::{SimConfig, Simulator};

/// Start a server on a demo data dir and stream the simulator into it live
///
/// The stream starts with a catch-up: `--days` past days (ending yesterday:
/// proviso refuses event times in the future) of `--events` events among
/// `--subjects` people, sent at up to `--rate` events per second. Then it
/// goes live and keeps going until the demo stops: event times are now, at
/// about `--live-rate` events per second (default 1,000; 0 ends the stream
/// after the catch-up). The same people stay active, and every 20 seconds
/// or so an abuser arrives (a fresh account bursting messages to strangers,
/// a phisher, an account many people report, a device farm, a slow link
/// spammer on fresh domains no list holds) or a legitimate heavy sender
/// acts (a busy business, a group admin, a festive greeter, a popular link
/// sharer, a shop), each kind in turn, the first a burst sender. Burst
/// senders are caught within minutes, device farms within the hour, the
/// slower kinds over hours, as in the catch-up.
///
/// The demo prints the addresses of its three pages, each with a token for
/// its role in the link: the dashboard (analyst), the privacy center
/// (subject-service; try one of the simulated numbers it prints) and the
/// abuse review queue (reviewer). A simulated partner network, `friendnet`,
/// reads its security, product and ads feeds every two seconds, so the
/// disclosures it receives show in the dashboard and in each person's
/// report. Tokens are new on every run.
///
/// With `--nodes N` (2 or more) the demo runs a cluster instead: it starts
/// a local nats-server (`$NATS_SERVER`, else `target/nats/nats-server` as
/// `bash .ci/run` installs it, else `nats-server` on PATH) with its store
/// in <data>/nats, and N nodes in <data>/node1.. on consecutive ports from
/// `--listen`, sharing one fresh pseudonym key and tokens; the simulator
/// sends its batches to the nodes in turn, and the pages and figures read
/// node 1. See docs/scale.md for what cluster mode does and does not do yet.
///
/// The demo data dir is wiped at start. Ctrl-C or SIGTERM (or the end of
/// `--duration`) stops the stream and the partner, then the server, and
/// exits 0; a second Ctrl-C exits at once.
///
/// Example:
///   cargo run --release -- demo
///   cargo run --release -- demo --live-rate 5000
///   curl -H "Authorization: Bearer $(cat proviso-demo/admin.token)" \
///     "http://127.0.0.1:7420/v1/metrics/active?from=2026-01-01&to=2026-01-30&window=7"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DemoCommand {
    /// Demo data dir (wiped at start)
    #[arg(long, default_value = "./proviso-demo")]
    pub data: PathBuf,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:7420")]
    pub listen: std::net::SocketAddr,
    /// Simulated subjects
    #[arg(long, default_value_t = 20_000)]
    pub subjects: u32,
    /// Days of the catch-up (ending yesterday: proviso refuses event times in the future)
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Events of the catch-up
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Events per second of the catch-up
    #[arg(long, default_value_t = 50_000)]
    pub rate: u64,
    /// Events per second once caught up, with event times now (0 = stop streaming after the catch-up)
    #[arg(long, default_value_t = 1_000)]
    pub live_rate: u64,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM)
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Random seed
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Nodes: 1 runs one embedded server; 2 or more run a cluster of that
    /// many nodes on a local nats-server (see above)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,
}

/// Events per HTTP batch.
const BATCH: usize = 2_000;

pub fn run(command: DemoCommand) -> anyhow::Result<()> {
    if command.data.exists() {
        let is_data_dir =
            |dir: &std::path::Path| dir.join(proviso::edge::KEY_FILE).exists() || dir.join("LOG").exists();
        let ours = is_data_dir(&command.data) || is_data_dir(&command.data.join("node1"));
        let empty = std::fs::read_dir(&command.data).map(|mut d| d.next().is_none()).unwrap_or(false);
        anyhow::ensure!(
            ours || empty,
            "{} exists and is not a proviso data dir; choose another --data",
            command.data.display()
        );
        std::fs::remove_dir_all(&command.data).with_context(|| format!("wiping {}", command.data.display()))?;
    }
    let tokens = DemoTokens::new()?;
    let runtime = super::runtime()?;
    // A cluster: a local nats-server, then one config per node (its own data
    // dir and port; one key and one set of tokens for all).
    let nats = match command.nodes {
        1 => None,
        // Its own process group: a Ctrl-C stops the nodes first, then it.
        _ => Some(LocalNats::start_detached(&command.data.join("nats")).context("starting the demo's nats-server")?),
    };
    let mut configs = Vec::new();
    for node in 0..command.nodes {
        let mut opt = Opt { data: command.data.clone(), listen: command.listen, ..Opt::default() };
        if let Some(nats) = &nats {
            opt.data = command.data.join(format!("node{}", node + 1));
            // Port 0 (any free port) stays 0 for every node.
            if command.listen.port() != 0 {
                opt.listen.set_port(command.listen.port().checked_add(node).context("--listen port too high")?);
            }
            opt.nats = Some(nats.url().to_string());
            opt.pseudonym_key = Some(Secret::new(tokens.pseudonym_key.clone()));
            opt.admin_token = Some(Secret::new(tokens.admin.clone()));
        }
        // The demo's own settings and the built-in defaults: no config
        // file, no environment (its tokens are made fresh above).
        let mut config = Config::from_opt(opt)?;
        tokens.install(&mut config);
        configs.push(config);
    }
    let mut servers = Vec::new();
    for config in &configs {
        servers.push(runtime.block_on(server::start(config)).context("starting the demo server")?);
    }
    let bases: Vec<String> = servers.iter().map(|(running, _, _)| format!("http://{}", running.addr)).collect();
    let base = bases[0].clone();
    let token = servers[0].0.admin_token.clone();
    let config = &configs[0];
    // Two flags, set in this order: `stop` (a signal, or the end of
    // --duration) ends the stream, the partner and the figures; the servers
    // stop only at `server_stop`, once they have, so none of them sees
    // a server go away first.
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = Arc::new(AtomicBool::new(false));
    let server_tasks: Vec<_> = servers
        .into_iter()
        .map(|(_, listener, app)| runtime.spawn(server::serve(listener, app, wait_for(server_stop.clone()))))
        .collect();
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            server::shutdown_signal().await;
            stop.store(true, Ordering::Relaxed);
            server::shutdown_signal().await;
            eprintln!("second signal: stopping at once");
            std::process::exit(130);
        });
    }
    println!("proviso demo listening on {base}");
    if let Some(nats) = &nats {
        println!("nats-server at {} (store in {})", nats.url(), nats.dir().join("js").display());
        for (node, base) in bases.iter().enumerate().skip(1) {
            println!("proviso demo node {} listening on {base}", node + 1);
        }
    }

    let today = proviso::contract::day_of(super::simulate::now_ms());
    // The window ends yesterday: the edge refuses event times in the future.
    let start_day = today - command.days as i32;
    let sim_config = SimConfig {
        seed: command.seed,
        subjects: command.subjects,
        days: command.days,
        start_ms: i64::from(start_day) * proviso::contract::DAY_MS,
        target_events: command.events,
        ..SimConfig::default()
    };
    let simulator = Simulator::new(sim_config);
    let people = simulator.sample_people(3);
    let caught_up = Arc::new(AtomicBool::new(false));
    let streamer = spawn_streamer(simulator, &bases, &token, &command, stop.clone(), caught_up.clone());
    let partner = spawn_partner_reader(&base, &tokens.partner, stop.clone());
    let client = super::http::Client::new(&base, &token);
    // The pages are worth opening once the first hundred people are in.
    wait_until_populated(&client, &stop, &caught_up);
    println!();
    println!("dashboard:      {base}/#token={}", tokens.analyst);
    println!("privacy center: {base}/privacy#token={}", tokens.subject_service);
    println!("review queue:   {base}/review#token={}", tokens.reviewer);
    println!("  try these simulated numbers in the privacy center: {}", people.join(", "));
    match &nats {
        None => {
            println!("admin token:    {token}  (also in {})", config.data_dir.join(server::ADMIN_TOKEN_FILE).display())
        }
        Some(_) => println!("admin token:    {token}  (every node)"),
    }
    println!("  curl -H 'Authorization: Bearer {token}' '{base}/v1/metrics/active?from=...&to=...&window=30'");
    println!();

    let shown = show_figures(&client, &command, start_day, &stop, &caught_up, &streamer);
    // Stop in order: the stream and the partner first, then the server.
    stop.store(true, Ordering::Relaxed);
    let streamed = streamer.join();
    let _ = partner.join();
    server_stop.store(true, Ordering::Relaxed);
    let mut served = Ok(Ok(()));
    for task in server_tasks {
        let result = runtime.block_on(task);
        if served.as_ref().is_ok_and(|inner| inner.is_ok()) {
            served = result;
        }
    }
    // The nodes have stopped; their background tasks (leases, the log's
    // follower, their NATS connections) go with the runtime, and only then
    // their NATS server (else each client logs the server going away).
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(nats);
    match streamed {
        Ok(Ok(stats)) => println!(
            "streamed {} events: {} accepted, {} rejected ({} in the catch-up, {} live; {} arrivals)",
            stats.sent,
            stats.accepted,
            stats.rejected,
            stats.caught_up,
            stats.sent - stats.caught_up,
            stats.arrivals,
        ),
        Ok(Err(error)) => eprintln!("streaming stopped: {error:#}"),
        Err(_) => eprintln!("streaming thread panicked"),
    }
    served.context("server task")??;
    shown
}

/// What the streamer sent: all of it, how much of it in the catch-up, and
/// how many abusers and heavy senders arrived live.
struct Streamed {
    sent: u64,
    accepted: u64,
    rejected: u64,
    caught_up: u64,
    arrivals: usize,
}

/// The stream: the catch-up at `--rate`, then (unless `--live-rate` is 0)
/// live lines as they fall due, until `stop`. Sets `caught_up` between the
/// two.
fn spawn_streamer(
    mut simulator: Simulator,
    bases: &[String],
    token: &str,
    command: &DemoCommand,
    stop: Arc<AtomicBool>,
    caught_up: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<Streamed>> {
    // One client per node: batches go to the nodes in turn.
    let clients: Vec<_> = bases.iter().map(|base| super::http::Client::new(base, token)).collect();
    let (rate, live_rate) = (command.rate, command.live_rate);
    std::thread::spawn(move || -> anyhow::Result<Streamed> {
        let mut keys = super::simulate::BatchKeys::new()?;
        let mut turn = 0usize;
        let mut send = |body: &[u8]| -> anyhow::Result<(u64, u64)> {
            turn += 1;
            let client = &clients[turn % clients.len()];
            let response = super::simulate::send_with_retries(client, body, &keys.next())?;
            Ok((response["accepted"].as_u64().unwrap_or(0), response["rejected"].as_array().map_or(0, Vec::len) as u64))
        };
        let catch_up = super::simulate::stream(&mut simulator, BATCH, rate, &mut send, Some(&stop))?;
        let mut streamed = Streamed {
            sent: catch_up.sent,
            accepted: catch_up.accepted,
            rejected: catch_up.rejected,
            caught_up: catch_up.sent,
            arrivals: 0,
        };
        if stop.load(Ordering::Relaxed) || live_rate == 0 {
            caught_up.store(true, Ordering::Relaxed);
            return Ok(streamed);
        }
        simulator.go_live(super::simulate::now_ms(), live_rate);
        caught_up.store(true, Ordering::Relaxed);
        let mut body = Vec::with_capacity(BATCH * 200);
        let mut line = Vec::with_capacity(4096);
        while !stop.load(Ordering::Relaxed) {
            let now = super::simulate::now_ms();
            let mut lines = 0;
            while lines < BATCH && simulator.next_live_line(now, &mut line).is_some() {
                body.extend_from_slice(&line);
                body.push(b'\n');
                line.clear();
                lines += 1;
            }
            if lines > 0 {
                let (accepted, rejected) = send(&body)?;
                body.clear();
                streamed.sent += lines as u64;
                streamed.accepted += accepted;
                streamed.rejected += rejected;
            }
            if lines < BATCH {
                std::thread::sleep(LIVE_TICK);
            }
        }
        streamed.arrivals = simulator.live_arrivals();
        Ok(streamed)
    })
}

/// How often the live stream sends what fell due.
const LIVE_TICK: Duration = Duration::from_millis(200);

/// Shows a line of figures every second until `stop` or the end of
/// `--duration`. An error reading them while stopping is no error.
fn show_figures(
    client: &super::http::Client,
    command: &DemoCommand,
    start_day: i32,
    stop: &AtomicBool,
    caught_up: &AtomicBool,
    streamer: &std::thread::JoinHandle<anyhow::Result<Streamed>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let live = std::io::stdout().is_terminal();
    let mut last_events = 0u64;
    let mut last_tick = Instant::now();
    let mut said_caught_up = false;
    let mut said_done = false;
    let from = proviso::disclose::metrics::format_day(start_day);
    loop {
        sleep_unless(Duration::from_secs(1), stop);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Up to today (the live stream may run past midnight).
        let to = proviso::disclose::metrics::format_day(proviso::contract::day_of(super::simulate::now_ms()));
        let figures = (|| -> anyhow::Result<String> {
            let health = client.get_json("/healthz")?;
            let daily = client.get_json(&format!("/v1/metrics/active?from={from}&to={to}&window=1"))?;
            let monthly = client.get_json(&format!("/v1/metrics/active?from={from}&to={to}&window=30"))?;
            let events = health["events"].as_u64().unwrap_or(0);
            let rate = (events - last_events.min(events)) as f64 / last_tick.elapsed().as_secs_f64();
            last_events = events;
            last_tick = Instant::now();
            // Show the latest day that has activity so far: a day of the
            // catch-up, then today.
            let latest = daily["series"]
                .as_array()
                .and_then(|series| series.iter().rposition(|item| item["active"].as_u64().unwrap_or(0) > 0))
                .unwrap_or(0);
            Ok(format!(
                "events {:>10}  {:>8.0}/s  subjects {:>8}  day {}  DAU {:>7}  MAU {:>7}",
                events,
                rate,
                health["subjects"].as_u64().unwrap_or(0),
                daily["series"][latest]["day"].as_str().unwrap_or("-"),
                daily["series"][latest]["active"].as_u64().unwrap_or(0),
                monthly["series"][latest]["active"].as_u64().unwrap_or(0),
            ))
        })();
        let line = match figures {
            Ok(line) => line,
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(error) => return Err(error.context("reading the demo's figures")),
        };
        if live {
            print!("\r{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
        if !said_caught_up && caught_up.load(Ordering::Relaxed) {
            said_caught_up = true;
            if live {
                println!();
            }
            if command.live_rate > 0 && !streamer.is_finished() {
                println!(
                    "caught up; streaming live at {} events/s, abusers arriving now and then (Ctrl-C to stop)",
                    command.live_rate
                );
            } else {
                println!("caught up; the server keeps running (Ctrl-C to stop)");
            }
        }
        if !said_done && streamer.is_finished() && command.live_rate > 0 {
            said_done = true;
            if live {
                println!();
            }
            println!("the stream stopped; the server keeps running (Ctrl-C to stop)");
        }
        if command.duration.is_some_and(|d| started.elapsed() >= Duration::from_secs(d)) {
            break;
        }
    }
    if live {
        println!();
    }
    Ok(())
}

/// Sleeps for `duration`, or less if `stop` is set meanwhile.
fn sleep_unless(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// One fresh token per role the demo's pages and partner use (and, for a
/// cluster, the admin token and pseudonym key every node shares).
struct DemoTokens {
    admin: String,
    pseudonym_key: String,
    analyst: String,
    subject_service: String,
    reviewer: String,
    partner: String,
}

impl DemoTokens {
    fn new() -> anyhow::Result<DemoTokens> {
        let fresh = |role: &str| {
            proviso::edge::random_token(&format!("demo-{role}-"), 12)
                .map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))
        };
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
        Ok(DemoTokens {
            admin: fresh("admin")?,
            pseudonym_key: key.iter().map(|b| format!("{b:02x}")).collect(),
            analyst: fresh("analyst")?,
            subject_service: fresh("subjects")?,
            reviewer: fresh("reviewer")?,
            partner: fresh("friendnet")?,
        })
    }

    /// Adds the role tokens and the partner `friendnet` (security, product
    /// and ads) to the demo's config.
    fn install(&self, config: &mut Config) {
        for (role, token) in
            [("analyst", &self.analyst), ("subject-service", &self.subject_service), ("reviewer", &self.reviewer)]
        {
            config.tokens.push(TokenConfig {
                name: format!("demo {role}"),
                role: role.to_string(),
                token: Secret::new(token.clone()),
            });
        }
        config.partners.push(Partner {
            name: DEMO_PARTNER.to_string(),
            purposes: vec![Purpose::Security, Purpose::Product, Purpose::Ads],
            tokens: vec![Secret::new(self.partner.clone())],
            pseudonym_key: None,
        });
    }
}

/// The demo's partner network (the simulator's partner events name none,
/// so they are its).
const DEMO_PARTNER: &str = "friendnet";

/// Waits (at most 30 s, and no longer than the catch-up) until the server
/// holds a first batch of people, so the printed pages have something to
/// show.
fn wait_until_populated(client: &super::http::Client, stop: &AtomicBool, caught_up: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && !caught_up.load(Ordering::Relaxed) {
        let subjects = client.get_json("/healthz").ok().and_then(|h| h["subjects"].as_u64()).unwrap_or(0);
        if subjects >= 100 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The partner `friendnet` reading its three feeds every two seconds, as a
/// real partner would; each read is a disclosure the audit log records.
fn spawn_partner_reader(base: &str, token: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let client = super::http::Client::new(base, token);
    std::thread::spawn(move || {
        let mut cursors = [("security", None::<u64>), ("product", None), ("ads", None)];
        while !stop.load(Ordering::Relaxed) {
            for (feed, cursor) in &mut cursors {
                loop {
                    let after = cursor.map(|c| format!("&after={c}")).unwrap_or_default();
                    let path = format!("/v1/partners/{DEMO_PARTNER}/feeds/{feed}?limit=1000{after}");
                    let Ok(page) = client.get_json(&path) else { break };
                    let Some(next) = page["next"].as_u64() else { break };
                    *cursor = Some(next);
                    if page["records"].as_array().is_none_or(Vec::is_empty) {
                        break;
                    }
                }
            }
            for _ in 0..20 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

async fn wait_for(flag: Arc<AtomicBool>) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
