//! End-to-end: the dashboard's live stream reports the same DAU as the
//! metrics API and moves within 2 s of new events.

mod common;

use std::time::{Duration, Instant};

use common::{Server, ANALYST};

#[test]
fn live_figures_match_the_api_and_move_within_two_seconds() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let session = |k: u32| format!(r#"{{"type":"session","ts":{now},"phone":"+9198767{k:05}","device":"d"}}"#);
    let mut first_batch: Vec<String> = (0..5).map(session).collect();
    first_batch
        .push(format!(r#"{{"type":"consent","ts":{now},"phone":"+919876700000","purpose":"ads","granted":false}}"#));
    server.ingest(&first_batch.join("\n"));
    let mut stream = server.stream("/v1/live?interval_ms=200", ANALYST);
    let first = common::next_event_data(&mut stream);
    let day = first["day"].as_str().expect("day").to_string();
    let (_, api) = server.get(&format!("/v1/metrics/active?from={day}&to={day}&window=1"), Some(ANALYST));
    assert_eq!(first["dau"], api["series"][0]["active"], "{first}");
    assert_eq!(first["dau"], 5);
    assert_eq!(first["subjects"], 5);
    // Refusal rates: one of the five people in IN refused ads.
    assert_eq!(first["subjects_by_region"]["IN"], 5, "{first}");
    assert_eq!(first["refusals"]["ads"]["IN"], 1, "{first}");
    assert_eq!(first["refusal_rates"]["ads"]["IN"], 0.2, "{first}");
    assert!(first["refusal_rates"].get("product").is_none(), "{first}");
    // Abuse actions per day: 14 days ending on the latest day, none yet.
    let days = first["abuse_actions"].as_array().expect("abuse_actions");
    assert_eq!(days.len(), 14, "{first}");
    assert_eq!(days[13]["day"], day.as_str());
    assert!(days.iter().all(|d| d["banned"] == 0 && d["review"] == 0), "{first}");

    let mut batch: Vec<String> = (5..8).map(session).collect();
    batch.push(r#"{"type":"session","ts":1,"phone":"+919876700099","device":"d"}"#.to_string());
    // A partner flags a linked account: one review action today.
    batch.push(format!(r#"{{"type":"partner_account","ts":{now},"phone":"+919876700001","partner_id":"fn-1"}}"#));
    batch.push(format!(
        r#"{{"type":"partner_flag","ts":{now},"phone":"+919876700001","partner_id":"fn-1","reason":"spam"}}"#
    ));
    server.ingest(&batch.join("\n"));
    let sent = Instant::now();
    loop {
        let figures = common::next_event_data(&mut stream);
        if figures["dau"] == 8 {
            assert_eq!(figures["rejected"]["invalid_timestamp"], 1, "{figures}");
            assert_eq!(figures["abuse_actions"][13]["review"], 1, "{figures}");
            assert_eq!(figures["abuse"]["review"], 1, "{figures}");
            break;
        }
        assert!(sent.elapsed() < Duration::from_secs(2), "DAU did not move within 2 s: {figures}");
    }
    assert!(sent.elapsed() < Duration::from_secs(2));
    // Each update's cost is on /metrics.
    let computed = figures_computed(&server);
    assert!(computed >= 2, "updates computed: {computed}");
    let (status, body) = server.get("/v1/live?interval_ms=5", Some(ANALYST));
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")));

    // An open stream does not hold up a graceful shutdown.
    let stopping = Instant::now();
    let log = server.stop();
    assert!(stopping.elapsed() < Duration::from_secs(5), "shutdown waited for the stream:\n{log}");
    drop(stream);
}

/// The three pages and every asset they reference are served from the
/// binary itself (no other web server, nothing fetched from elsewhere), and
/// every page's controls are labelled.
#[test]
fn pages_and_their_assets_are_embedded() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    for (page, assets) in [("/", 5), ("/privacy", 3), ("/review", 3)] {
        let (status, html) = server.get_text(page);
        assert_eq!(status, 200, "{page}");
        // Nothing from another host, never framed, the address (which may
        // carry a token fragment) never sent on.
        let response = ureq::get(format!("{}{page}", server.base)).call().expect("GET page");
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{page}");
        assert!(html.contains("<label for=\"token\">"), "{page}: the token field is labelled");
        for input in html.split("<input").skip(1) {
            let id = input.split("id=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("input id");
            assert!(html.contains(&format!("<label for=\"{id}\"")), "{page}: input #{id} has a label");
        }
        assert!(html.contains("name=\"viewport\""), "{page}: phone-width layout");
        let referenced: Vec<&str> = html.split(['"', '\'']).filter(|part| part.starts_with("/assets/")).collect();
        assert_eq!(referenced.len(), assets, "{page}: {referenced:?}");
        for path in referenced {
            let (status, body) = server.get_text(path);
            assert_eq!(status, 200, "{path}");
            assert!(body.len() > 100, "{path}");
            assert!(!body.contains("http://") && !body.contains("https://") || path.contains("uPlot"), "{path}");
        }
        assert!(!html.contains("http://") && !html.contains("https://"), "{page}: no external resources");
    }
    let (status, license) = server.get_text("/assets/uPlot.LICENSE");
    assert_eq!(status, 200);
    assert!(license.contains("MIT License"));
    assert_eq!(server.get_text("/assets/nothing.js").0, 404);
}

/// `proviso_live_figures_seconds_count` from `/metrics`.
fn figures_computed(server: &Server) -> u64 {
    let (_, metrics) = server.get_text("/metrics");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("proviso_live_figures_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Three dashboards open at once share one computation of the figures per
/// 200 ms instead of each making their own, and each still gets its own
/// updates and its own events/s.
#[test]
fn open_streams_share_one_computation() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let now = common::now_ms();
    server.ingest(&format!(r#"{{"type":"session","ts":{now},"phone":"+919876700001","device":"d"}}"#));
    let before = figures_computed(&server);
    let started = Instant::now();
    let mut streams: Vec<_> = (0..3).map(|_| server.stream("/v1/live?interval_ms=200", ANALYST)).collect();
    let mut received = 0;
    for stream in &mut streams {
        for _ in 0..6 {
            let figures = common::next_event_data(stream.as_mut());
            assert_eq!(figures["dau"], 1, "{figures}");
            assert!(figures["events_per_second"].as_f64().is_some_and(|r| r >= 0.0), "{figures}");
            received += 1;
        }
    }
    let computed = figures_computed(&server) - before;
    let ticks = started.elapsed().as_millis() as u64 / 200 + 1;
    // Unshared, three streams would compute about 3 × ticks times.
    assert!(computed <= ticks * 3 / 2 + 2, "{computed} computations for {ticks} ticks of 3 streams ({received} read)");
    assert!(computed >= 1);
}
