//! End-to-end: usage metrics equal an independent count made in the test.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use common::{day_name, ts, Server, ANALYST};

const DAYS: i64 = 40;

struct Subject {
    phone: String,
    country: &'static str,
}

fn population() -> Vec<Subject> {
    let mut subjects = Vec::new();
    for i in 0..15 {
        subjects.push(Subject { phone: format!("+9198123456{i:02}"), country: "IN" });
        subjects.push(Subject { phone: format!("+55119876543{i:02}"), country: "BR" });
        subjects.push(Subject { phone: format!("+120255501{i:02}"), country: "US" });
        subjects.push(Subject { phone: format!("+49151123456{i:02}"), country: "DE" });
    }
    subjects
}

/// Generated events plus what the test expects from them.
struct Workload {
    lines: Vec<String>,
    /// (subject, day) pairs that count as active.
    active: HashSet<(usize, i64)>,
    /// First register (ts, platform) per subject.
    first_register: HashMap<usize, (i64, &'static str)>,
    messages: BTreeMap<(i64, &'static str), u64>,
}

fn workload(seed: u64) -> Workload {
    let subjects = population();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut work = Workload {
        lines: Vec::new(),
        active: HashSet::new(),
        first_register: HashMap::new(),
        messages: BTreeMap::new(),
    };
    let platforms = ["android", "ios", "web", "other"];
    let kinds = ["text", "media", "voice", "call", "other"];
    let mut unique_ms = 0;
    for _ in 0..3000 {
        let who = rng.usize(..subjects.len());
        // Skewed activity: low indexes are busier.
        let who = who.min(rng.usize(..subjects.len()));
        let day = rng.i64(0..DAYS);
        unique_ms += 1;
        let at = ts(day, unique_ms);
        let phone = &subjects[who].phone;
        let line = match rng.u8(..10) {
            0 => {
                let platform = platforms[rng.usize(..platforms.len())];
                let entry = work.first_register.entry(who).or_insert((at, platform));
                if at < entry.0 {
                    *entry = (at, platform);
                }
                work.active.insert((who, day));
                format!(
                    r#"{{"type":"register","ts":{at},"phone":"{phone}","device":"d{who}","platform":"{platform}"}}"#
                )
            }
            1 | 2 => {
                work.active.insert((who, day));
                format!(r#"{{"type":"session","ts":{at},"phone":"{phone}","device":"d{who}"}}"#)
            }
            3..=6 => {
                let kind = kinds[rng.usize(..kinds.len())];
                let to = &subjects[rng.usize(..subjects.len())].phone;
                work.active.insert((who, day));
                *work.messages.entry((day, kind)).or_default() += 1;
                format!(r#"{{"type":"message","ts":{at},"phone":"{phone}","to":"{to}","kind":"{kind}"}}"#)
            }
            7 => {
                let out = rng.bool();
                if out {
                    work.active.insert((who, day));
                }
                let direction = if out { "out" } else { "in" };
                format!(
                    r#"{{"type":"business_message","ts":{at},"phone":"{phone}","business":"shop1","direction":"{direction}"}}"#
                )
            }
            8 => {
                let target = &subjects[rng.usize(..subjects.len())].phone;
                format!(r#"{{"type":"report","ts":{at},"phone":"{phone}","target":"{target}","reason":"spam"}}"#)
            }
            _ => {
                let contact = &subjects[rng.usize(..subjects.len())].phone;
                format!(r#"{{"type":"contacts","ts":{at},"phone":"{phone}","contacts":["{contact}"]}}"#)
            }
        };
        work.lines.push(line);
    }
    // Arrival order is shuffled: late and out-of-order events everywhere.
    rng.shuffle(&mut work.lines);
    work
}

fn expected_active(work: &Workload, day: i64, window: i64) -> HashSet<usize> {
    work.active.iter().filter(|(_, d)| *d <= day && *d > day - window).map(|(s, _)| *s).collect()
}

/// Active-subject series for windows 1, 7 and 30, plain and split by country
/// and platform, equal a HashSet count over the same shuffled events; message
/// counts by kind likewise.
#[test]
fn metrics_equal_an_independent_count_over_shuffled_events() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let work = workload(7);
    for batch in work.lines.chunks(250) {
        let response = server.ingest(&batch.join("\n"));
        assert_eq!(response["accepted"].as_u64(), Some(batch.len() as u64), "{response}");
    }
    let subjects = population();
    let from = day_name(0);
    let to = day_name(DAYS - 1);
    for window in [1i64, 7, 30] {
        let (status, plain) =
            server.get(&format!("/v1/metrics/active?from={from}&to={to}&window={window}"), Some(ANALYST));
        assert_eq!(status, 200, "{plain}");
        assert_eq!(plain["window"], window);
        let (_, by_country) =
            server.get(&format!("/v1/metrics/active?from={from}&to={to}&window={window}&by=country"), Some(ANALYST));
        let (_, by_platform) =
            server.get(&format!("/v1/metrics/active?from={from}&to={to}&window={window}&by=platform"), Some(ANALYST));
        for day in 0..DAYS {
            let expected = expected_active(&work, day, window);
            let index = day as usize;
            assert_eq!(plain["series"][index]["day"], day_name(day));
            assert_eq!(
                plain["series"][index]["active"].as_u64(),
                Some(expected.len() as u64),
                "window {window} day {day}"
            );
            assert!(plain["series"][index].get("groups").is_none());

            let mut countries: BTreeMap<String, u64> = BTreeMap::new();
            let mut platforms: BTreeMap<String, u64> = BTreeMap::new();
            for subject in &expected {
                *countries.entry(subjects[*subject].country.to_string()).or_default() += 1;
                let platform = work.first_register.get(subject).map_or("unknown", |(_, p)| p);
                *platforms.entry(platform.to_string()).or_default() += 1;
            }
            let got: BTreeMap<String, u64> =
                serde_json::from_value(by_country["series"][index]["groups"].clone()).expect("groups");
            assert_eq!(got, countries, "country window {window} day {day}");
            let got: BTreeMap<String, u64> =
                serde_json::from_value(by_platform["series"][index]["groups"].clone()).expect("groups");
            assert_eq!(got, platforms, "platform window {window} day {day}");
        }
    }
    let (_, messages) = server.get(&format!("/v1/metrics/messages?from={from}&to={to}&by=kind"), Some(ANALYST));
    for day in 0..DAYS {
        let point = &messages["series"][day as usize];
        let mut total = 0;
        for kind in ["text", "media", "voice", "call", "other"] {
            let expected = work.messages.get(&(day, kind)).copied().unwrap_or(0);
            assert_eq!(point["kinds"][kind].as_u64(), Some(expected), "day {day} kind {kind}");
            total += expected;
        }
        assert_eq!(point["messages"].as_u64(), Some(total));
    }
}

/// Read-your-writes: a query right after POST returns reflects the batch.
#[test]
fn queries_reflect_each_batch_as_soon_as_post_returns() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let day = day_name(3);
    for i in 0..20 {
        server.ingest(&format!(r#"{{"type":"session","ts":{},"phone":"+9198123456{i:02}","device":"d"}}"#, ts(3, i)));
        let (_, body) = server.get(&format!("/v1/metrics/active?from={day}&to={day}"), Some(ANALYST));
        assert_eq!(body["series"][0]["active"].as_u64(), Some(i as u64 + 1));
    }
}

/// Bad query strings get 400 with the standard error body.
#[test]
fn bad_metric_queries_are_refused_with_invalid_query() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    for query in [
        "/v1/metrics/active?from=2026-01-05&to=2026-01-01",
        "/v1/metrics/active?from=2026-13-01&to=2026-01-01",
        "/v1/metrics/active?from=2026-01-01&to=2026-01-02&window=0",
        "/v1/metrics/active?from=2026-01-01&to=2026-01-02&by=city",
        "/v1/metrics/active?from=2026-01-01&to=2026-01-02&colour=red",
        "/v1/metrics/active?to=2026-01-02",
        "/v1/metrics/messages?from=2026-01-01&to=2026-01-02&by=country",
    ] {
        let (status, body) = server.get(query, Some(ANALYST));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "invalid_query", "{query}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}
