//! `proviso demo`: a live server fed by the simulator, with its three pages
//! (dashboard, privacy center, review queue), a partner reading its feeds,
//! and figures in the terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use proviso::config::{Config, Opt, Partner, Secret, TokenConfig};
use proviso::contract::Purpose;
use proviso::server;
use proviso::sim::{SimConfig, Simulator};

/// Start a server on a fresh demo data dir, stream the simulator into it
/// over HTTP in real time, and show live figures.
///
/// The demo prints the addresses of its three pages, each with a token for
/// its role in the link: the dashboard (analyst), the privacy center
/// (subject-service; try one of the simulated numbers it prints) and the
/// abuse review queue (reviewer). A simulated partner network, `friendnet`,
/// reads its security, product and ads feeds every two seconds, so the
/// disclosures it receives show in the dashboard and in each person's
/// report. Tokens are new on every run.
///
/// The demo data dir is wiped at start. The server keeps running after the
/// stream ends so you can query it; stop with Ctrl-C.
///
/// Example:
///   cargo run --release -- demo
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
    /// Simulated days (ending yesterday: proviso refuses event times in the future)
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Simulated events
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Events per second streamed into the server
    #[arg(long, default_value_t = 50_000)]
    pub rate: u64,
    /// Stop after this many seconds (default: run until Ctrl-C)
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Random seed
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn run(command: DemoCommand) -> anyhow::Result<()> {
    if command.data.exists() {
        let ours = command.data.join(proviso::edge::KEY_FILE).exists() || command.data.join("LOG").exists();
        let empty = std::fs::read_dir(&command.data).map(|mut d| d.next().is_none()).unwrap_or(false);
        anyhow::ensure!(
            ours || empty,
            "{} exists and is not a proviso data dir; choose another --data",
            command.data.display()
        );
        std::fs::remove_dir_all(&command.data).with_context(|| format!("wiping {}", command.data.display()))?;
    }
    // The demo's own settings and the built-in defaults: no config file, no
    // environment (its tokens are made fresh below).
    let mut config = Config::from_opt(Opt { data: command.data.clone(), listen: command.listen, ..Opt::default() })?;
    let tokens = DemoTokens::new()?;
    tokens.install(&mut config);
    let runtime = super::runtime()?;
    let (running, listener, app) = runtime.block_on(server::start(&config)).context("starting the demo server")?;
    let base = format!("http://{}", running.addr);
    let token = running.admin_token.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = stop.clone();
    let server_task = runtime.spawn(server::serve(listener, app, async move {
        tokio::select! {
            _ = server::shutdown_signal() => {},
            _ = wait_for(server_stop) => {},
        }
    }));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            server::shutdown_signal().await;
            stop.store(true, Ordering::Relaxed);
        });
    }
    println!("proviso demo listening on {base}");

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
    let mut simulator = Simulator::new(sim_config);
    let people = simulator.sample_people(3);
    let streamer = {
        let stop = stop.clone();
        let base = base.clone();
        let token = token.clone();
        std::thread::spawn(move || -> anyhow::Result<super::simulate::StreamStats> {
            let client = super::http::Client::new(&base, &token);
            super::simulate::stream(
                &mut simulator,
                2_000,
                command.rate,
                |body| {
                    let response = client.post_events(body)?;
                    Ok((
                        response["accepted"].as_u64().unwrap_or(0),
                        response["rejected"].as_array().map_or(0, Vec::len) as u64,
                    ))
                },
                Some(&stop),
            )
        })
    };

    let partner = spawn_partner_reader(&base, &tokens.partner, stop.clone());
    // The pages are worth opening once the first hundred people are in.
    wait_until_populated(&super::http::Client::new(&base, &token), &stop);
    println!();
    println!("dashboard:      {base}/#token={}", tokens.analyst);
    println!("privacy center: {base}/privacy#token={}", tokens.subject_service);
    println!("review queue:   {base}/review#token={}", tokens.reviewer);
    println!("  try these simulated numbers in the privacy center: {}", people.join(", "));
    println!("admin token:    {token}  (also in {})", config.data_dir.join(server::ADMIN_TOKEN_FILE).display());
    println!("  curl -H 'Authorization: Bearer {token}' '{base}/v1/metrics/active?from=...&to=...&window=30'");
    println!();

    let started = Instant::now();
    let client = super::http::Client::new(&base, &token);
    let live = std::io::stdout().is_terminal();
    let mut last_events = 0u64;
    let mut last_tick = Instant::now();
    let mut stream_done = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let health = client.get_json("/healthz")?;
        let events = health["events"].as_u64().unwrap_or(0);
        let rate = (events - last_events.min(events)) as f64 / last_tick.elapsed().as_secs_f64();
        last_events = events;
        last_tick = Instant::now();
        // The simulator streams its 30 days in event-time order: show the
        // latest simulated day that has activity so far.
        let (from, to) =
            (proviso::disclose::metrics::format_day(start_day), proviso::disclose::metrics::format_day(today));
        let daily = client.get_json(&format!("/v1/metrics/active?from={from}&to={to}&window=1"))?;
        let monthly = client.get_json(&format!("/v1/metrics/active?from={from}&to={to}&window=30"))?;
        let latest = daily["series"]
            .as_array()
            .and_then(|series| series.iter().rposition(|item| item["active"].as_u64().unwrap_or(0) > 0))
            .unwrap_or(0);
        let line = format!(
            "events {:>10}  {:>8.0}/s  subjects {:>8}  day {}  DAU {:>7}  MAU {:>7}",
            events,
            rate,
            health["subjects"].as_u64().unwrap_or(0),
            daily["series"][latest]["day"].as_str().unwrap_or("-"),
            daily["series"][latest]["active"].as_u64().unwrap_or(0),
            monthly["series"][latest]["active"].as_u64().unwrap_or(0),
        );
        if live {
            print!("\r{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
        if !stream_done && streamer.is_finished() {
            stream_done = true;
            if live {
                println!();
            }
            println!("simulator finished; the server keeps running (Ctrl-C to stop)");
        }
        // Stop only after this round of queries: the server shuts down as
        // soon as the flag is set.
        if command.duration.is_some_and(|d| started.elapsed() >= Duration::from_secs(d)) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if live {
        println!();
    }
    match streamer.join() {
        Ok(Ok(stats)) => {
            println!("streamed {} events: {} accepted, {} rejected", stats.sent, stats.accepted, stats.rejected)
        }
        Ok(Err(error)) => eprintln!("streaming stopped: {error:#}"),
        Err(_) => eprintln!("streaming thread panicked"),
    }
    let _ = partner.join();
    runtime.block_on(server_task).context("server task")??;
    Ok(())
}

/// One fresh token per role the demo's pages and partner use.
struct DemoTokens {
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
        Ok(DemoTokens {
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

/// Waits (at most 30 s) until the server holds a first batch of people, so
/// the printed pages have something to show.
fn wait_until_populated(client: &super::http::Client, stop: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
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
