use std::collections::{HashMap, HashSet};

use fastrand::Rng;
use phonenumber::country::Id;
use serde_json::Value;

use super::phones::{self, REGIONS};
use super::*;

fn small() -> SimConfig {
    SimConfig { seed: 7, subjects: 3_000, days: 10, target_events: 60_000, median_contacts: 40, ..SimConfig::default() }
}

fn collect(cfg: SimConfig) -> (Simulator, Vec<(String, i64)>) {
    let mut sim = Simulator::new(cfg);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    while let Some(ts) = sim.next_line(&mut line) {
        lines.push((String::from_utf8(line.clone()).expect("utf8"), ts));
        line.clear();
    }
    (sim, lines)
}

fn region_id(code: &str) -> Id {
    code.parse().expect("known region")
}

/// Parses a written phone the way the contract does: national forms in the
/// line's `country` (default US).
fn to_e164(written: &str, region: Option<&str>) -> String {
    let id = region_id(region.unwrap_or("US"));
    let n = phonenumber::parse(Some(id), written).unwrap_or_else(|e| panic!("parse {written:?} in {id:?}: {e:?}"));
    assert!(phonenumber::is_valid(&n), "invalid {written:?} in {id:?}");
    n.format().mode(phonenumber::Mode::E164).to_string()
}

#[test]
fn deterministic_per_seed() {
    let cfg = SimConfig { subjects: 800, days: 5, target_events: 10_000, ..small() };
    let (_, a) = collect(cfg.clone());
    let (_, b) = collect(cfg.clone());
    assert_eq!(a, b);
    let (_, c) = collect(SimConfig { seed: 8, ..cfg });
    assert_ne!(a, c);
}

#[test]
fn lines_follow_contract() {
    let cfg = small();
    let (sim, lines) = collect(cfg.clone());
    let n = lines.len() as f64;
    let target = cfg.target_events as f64;
    assert!((n - target).abs() / target < 0.10, "{n} lines vs target {target}");
    let est = sim.estimated_lines() as f64;
    assert!((n - est).abs() / est < 0.10, "{n} lines vs estimate {est}");

    let allowed: HashMap<&str, &[&str]> = HashMap::from([
        ("register", &["device", "platform"][..]),
        ("session", &["device"][..]),
        ("message", &["to", "group", "kind", "link_domain"][..]),
        ("contacts", &["contacts"][..]),
        ("business_message", &["business", "direction"][..]),
        ("report", &["target", "reason"][..]),
        ("block", &["target"][..]),
        ("consent", &["purpose", "granted"][..]),
        ("delete_account", &[][..]),
        ("partner_account", &["partner_id"][..]),
        ("partner_friend", &["partner_id", "friend", "state"][..]),
        ("partner_flag", &["partner_id", "reason"][..]),
    ]);
    let (lo, hi) = (cfg.start_ms, cfg.start_ms + i64::from(cfg.days) * DAY_MS);
    let opaque = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    };
    let mut types: HashMap<String, usize> = HashMap::new();
    let mut prev = i64::MIN;
    let mut late = 0usize;
    let mut checked_phones = 0usize;
    for (k, (l, ts)) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad json {l}: {e}"));
        let o = v.as_object().expect("object");
        let ty = o["type"].as_str().expect("type");
        *types.entry(ty.to_string()).or_default() += 1;
        let extra = allowed.get(ty).unwrap_or_else(|| panic!("unknown type {ty}"));
        for key in o.keys() {
            assert!(
                ["type", "ts", "phone", "country"].contains(&key.as_str()) || extra.contains(&key.as_str()),
                "field {key} not allowed in {l}"
            );
        }
        // ts: RFC 3339 or epoch millis, equal to the returned ts.
        let parsed = ts_ms_of(&o["ts"]);
        assert_eq!(parsed, *ts);
        assert!((lo..hi).contains(ts), "ts out of range: {l}");
        if *ts < prev {
            late += 1;
            assert!(prev - ts <= 2 * DAY_MS + DAY_MS, "too late: {l}");
        }
        prev = prev.max(*ts);
        let country = o.get("country").map(|c| c.as_str().expect("country str"));
        match ty {
            "register" => {
                assert!(["android", "ios", "web", "other"].contains(&o["platform"].as_str().expect("platform")));
                assert!(opaque(o["device"].as_str().expect("device")));
            }
            "session" => assert!(opaque(o["device"].as_str().expect("device"))),
            "message" => {
                assert!(o.contains_key("to") ^ o.contains_key("group"), "{l}");
                if let Some(g) = o.get("group") {
                    assert!(opaque(g.as_str().expect("group")));
                }
                assert!(["text", "media", "voice", "call", "other"].contains(&o["kind"].as_str().expect("kind")));
                if let Some(d) = o.get("link_domain") {
                    let d = d.as_str().expect("domain");
                    assert!(d.contains('.') && !d.contains('/') && !d.contains(':'));
                }
            }
            "business_message" => {
                assert!(opaque(o["business"].as_str().expect("business")));
                assert!(["in", "out"].contains(&o["direction"].as_str().expect("direction")));
            }
            "report" | "partner_flag" => assert!(opaque(o["reason"].as_str().expect("reason"))),
            "consent" => {
                assert!(["product", "ads"].contains(&o["purpose"].as_str().expect("purpose")));
                assert!(o["granted"].is_boolean());
            }
            "partner_friend" => {
                assert!(opaque(o["friend"].as_str().expect("friend")));
                assert!(["added", "removed"].contains(&o["state"].as_str().expect("state")));
            }
            _ => {}
        }
        if let Some(p) = o.get("partner_id") {
            assert!(opaque(p.as_str().expect("partner_id")));
        }
        // Phone fields: check every line's acting phone, and all phone
        // fields on a sample of lines (parsing is slow).
        let acting = to_e164(o["phone"].as_str().expect("phone"), country);
        if let Some(c) = country {
            let n = phonenumber::parse(None, &acting).expect("e164");
            assert_eq!(n.country().id(), Some(region_id(c)), "country must be the number's region: {l}");
        }
        if k % 7 == 0 {
            for key in ["to", "target"] {
                if let Some(t) = o.get(key) {
                    to_e164(t.as_str().expect("phone"), country);
                    checked_phones += 1;
                }
            }
            if let Some(cs) = o.get("contacts") {
                for c in cs.as_array().expect("array") {
                    to_e164(c.as_str().expect("phone"), country);
                    checked_phones += 1;
                }
            }
        }
    }
    assert!(checked_phones > 1000);
    let late_share = late as f64 / n;
    assert!(late_share > 0.002 && late_share < 0.03, "late share {late_share}");
    for ty in allowed.keys() {
        assert!(types.contains_key(*ty), "no {ty} events: {types:?}");
    }
}

#[test]
fn written_forms_map_to_same_number() {
    let sim = Simulator::new(SimConfig { subjects: 2_000, target_events: 1_000, ..small() });
    let mut seen = HashSet::new();
    for s in &sim.subjects {
        let e164 = sim.form_str(s, phones::F_E164).to_string();
        assert!(seen.insert(e164.clone()), "duplicate number {e164}");
        let region = &REGIONS[usize::from(s.region)];
        assert_eq!(to_e164(&e164, None), e164);
        assert_eq!(to_e164(sim.form_str(s, phones::F_SPACED), None), e164);
        assert_eq!(to_e164(sim.form_str(s, phones::F_NATIONAL), Some(region.code)), e164);
        // "00" forms are readable from any region whose IDD is 00.
        for r in REGIONS.iter().filter(|r| r.idd00) {
            assert_eq!(to_e164(sim.form_str(s, phones::F_IDD), Some(r.code)), e164);
        }
    }
}

#[test]
fn number_draws_are_mostly_valid() {
    let mut rng = Rng::with_seed(1);
    for (r, region) in REGIONS.iter().enumerate() {
        let mut ok = 0;
        for _ in 0..300 {
            let nsn = phones::draw_nsn(&mut rng, r);
            ok += usize::from(phones::is_valid_e164(&phones::forms(r, &nsn)[phones::F_E164], r));
        }
        assert!(ok > 150, "{}: only {ok}/300 valid draws", region.code);
    }
}

#[test]
fn contact_books_reciprocal_and_sized() {
    let cfg = SimConfig { subjects: 5_000, target_events: 1_000, median_contacts: 60, ..small() };
    let sim = Simulator::new(cfg);
    let mut sizes = Vec::new();
    let (mut recip, mut total) = (0usize, 0usize);
    for (i, s) in sim.subjects.iter().enumerate() {
        if s.is_spam() {
            continue;
        }
        let book = &sim.contacts[i];
        sizes.push(book.len());
        for &j in book {
            total += 1;
            recip += usize::from(sim.contacts[j as usize].binary_search(&(i as u32)).is_ok());
        }
    }
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2] as f64;
    let share = recip as f64 / total as f64;
    assert!(share > 0.7, "reciprocity {share}");
    assert!((median - 60.0).abs() / 60.0 < 0.2, "median book {median}");
}

#[test]
fn labels_match_population() {
    let cfg = small();
    let (sim, lines) = collect(cfg.clone());
    let labels = sim.labels_ndjson();
    let mut phones_seen = HashSet::new();
    for (l, _) in &lines {
        let v: Value = serde_json::from_str(l).expect("json");
        let c = v.get("country").and_then(Value::as_str);
        phones_seen.insert(to_e164(v["phone"].as_str().expect("phone"), c));
    }
    let mut spam = 0usize;
    let mut behaviours = HashSet::new();
    for l in labels.lines() {
        let v: Value = serde_json::from_str(l).expect("label json");
        let phone = v["phone"].as_str().expect("phone");
        assert!(phones_seen.contains(phone), "labelled {phone} never acts");
        behaviours.insert(v["behaviour"].as_str().expect("behaviour").to_string());
        match v["label"].as_str() {
            Some("spam") => {
                spam += 1;
                let t = v["first_abuse_ts"].as_i64().expect("spam has first_abuse_ts");
                assert!(t >= cfg.start_ms);
            }
            Some("ham") => assert!(v["first_abuse_ts"].is_null()),
            other => panic!("bad label {other:?}"),
        }
    }
    let expected = cfg.spammer_share * f64::from(cfg.subjects);
    assert!((spam as f64 - expected).abs() <= expected * 0.1 + 1.0, "{spam} spammers vs {expected}");
    for b in BEHAVIOUR_NAMES[1..].iter() {
        assert!(behaviours.contains(*b), "missing behaviour {b}");
    }
}

#[test]
fn timestamp_format() {
    let mut f = render::TsFmt::new();
    let mut out = Vec::new();
    f.push(&mut out, 1_767_225_600_000 + 4 * DAY_MS + 13 * HOUR + 4 * MINUTE + 11_123);
    assert_eq!(out, b"\"2026-01-05T13:04:11.123Z\"");
    out.clear();
    render::push_i64(&mut out, -12_340);
    assert_eq!(out, b"-12340");
}

/// The `phonenumber` crate strips the *parsing* region's national prefix even
/// after an explicit country code, so every drawn number must survive being
/// read from every region a line may carry (and the US default).
#[test]
fn numbers_survive_every_parsing_region() {
    let mut rng = Rng::with_seed(3);
    let mut failures = Vec::new();
    for (r, region) in REGIONS.iter().enumerate() {
        let mut drawn = 0;
        while drawn < 400 {
            let nsn = phones::draw_nsn(&mut rng, r);
            let f = phones::forms(r, &nsn);
            if !phones::is_valid_e164(&f[phones::F_E164], r) {
                continue;
            }
            drawn += 1;
            for parse_in in REGIONS.iter() {
                let mut forms = vec![phones::F_E164, phones::F_SPACED];
                if parse_in.idd00 {
                    forms.push(phones::F_IDD);
                }
                for form in forms {
                    let id = region_id(parse_in.code);
                    let ok = phonenumber::parse(Some(id), &f[form]).is_ok_and(|n| {
                        phonenumber::is_valid(&n)
                            && n.format().mode(phonenumber::Mode::E164).to_string() == f[phones::F_E164]
                    });
                    if !ok {
                        failures.push(format!("{} read in {}: {}", region.code, parse_in.code, f[form]));
                    }
                }
            }
        }
    }
    let mut by_pair: HashMap<String, usize> = HashMap::new();
    for f in &failures {
        *by_pair.entry(f.split(':').next().unwrap_or_default().to_string()).or_default() += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failures: {by_pair:?}, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

#[test]
fn tiny_and_odd_configs_do_not_panic() {
    let base = SimConfig { days: 2, target_events: 500, ..SimConfig::default() };
    for cfg in [
        SimConfig { subjects: 0, ..base.clone() },
        SimConfig { subjects: 1, ..base.clone() },
        SimConfig { subjects: 5, spammer_share: 0.5, ..base.clone() },
        SimConfig { subjects: 50, days: 1, median_contacts: 0, ..base.clone() },
        SimConfig {
            subjects: 300,
            days: 0,
            spammer_share: 0.2,
            partner_share: 1.0,
            refusal_share: 1.0,
            ..base.clone()
        },
    ] {
        let (_, lines) = collect(cfg.clone());
        for (l, _) in &lines {
            let v: Value = serde_json::from_str(l).expect("json");
            assert!(v["type"].is_string());
        }
        if cfg.subjects == 0 {
            assert!(lines.is_empty());
        }
    }
}

#[test]
fn one_register_per_subject_and_device_farms_share_devices() {
    let (_, lines) = collect(small());
    let mut registers: HashMap<String, usize> = HashMap::new();
    let mut per_device: HashMap<String, usize> = HashMap::new();
    for (l, _) in &lines {
        let v: Value = serde_json::from_str(l).expect("json");
        if v["type"] == "register" {
            let phone = to_e164(v["phone"].as_str().expect("phone"), v["country"].as_str());
            *registers.entry(phone).or_default() += 1;
            *per_device.entry(v["device"].as_str().expect("device").to_string()).or_default() += 1;
        }
    }
    assert!(registers.values().all(|&c| c == 1), "a subject registered twice");
    assert!(per_device.values().any(|&c| c >= 5), "no device farm");
}

/// A small run, caught up, then live from 09:30 UTC the day after its window.
fn live_sim(rate: u64) -> (Simulator, i64) {
    let cfg = SimConfig { subjects: 3_000, days: 4, target_events: 20_000, median_contacts: 40, ..small() };
    let start = cfg.start_ms + i64::from(cfg.days) * DAY_MS + 9 * HOUR + 30 * MINUTE;
    let mut sim = Simulator::new(cfg);
    let mut line = Vec::new();
    while sim.next_line(&mut line).is_some() {
        line.clear();
    }
    sim.go_live(start, rate);
    (sim, start)
}

/// Reads the live lines a clock ticking one second at a time from `start`
/// gets over `seconds`: (line, event time, the clock when handed out).
fn live_lines(sim: &mut Simulator, start: i64, seconds: i64) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    for second in 0..=seconds {
        let now = start + second * 1000;
        while let Some(ts) = sim.next_live_line(now, &mut line) {
            out.push((String::from_utf8(line.clone()).expect("utf8"), ts, now));
            line.clear();
        }
    }
    out
}

/// Live: within fifteen simulated minutes an arrival of every kind is
/// planned (each abuser with abuse to come, each hard negative an existing
/// one), burst senders already burst, no line is handed out before its
/// event time has come or carries a time before the live start, and the
/// people keep the asked rate.
#[test]
fn live_brings_every_kind_and_never_runs_ahead_of_the_clock() {
    let rate = 200;
    let (mut sim, start) = live_sim(rate);
    let lines = live_lines(&mut sim, start, 15 * 60);
    for (l, ts, now) in &lines {
        assert!(ts <= now, "handed out at {now} before its time: {l}");
        assert!(*ts >= start, "before the live start: {l}");
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad json {l}: {e}"));
        let parsed = ts_ms_of(&v["ts"]);
        assert_eq!(parsed, *ts, "{l}");
    }
    // The rate, once the first windows' messages have caught up with their
    // sessions (five minutes in).
    let steady = lines.iter().filter(|(_, ts, _)| *ts >= start + 5 * 60_000).count() as f64 / 600.0;
    assert!((steady - rate as f64).abs() < 0.3 * rate as f64, "{steady} events/s for a rate of {rate}");

    let live = sim.live.as_ref().expect("live");
    for kind in live::ARRIVAL_KINDS {
        let arrivals: Vec<_> = live.arrivals.iter().filter(|a| a.behaviour == kind).collect();
        let name = BEHAVIOUR_NAMES[usize::from(kind)];
        assert!(!arrivals.is_empty(), "no {name} arrived");
        for arrival in &arrivals {
            // The last window built may reach past the clock.
            assert!(
                arrival.at >= start && arrival.at < start + 15 * 60_000 + live::WINDOW_MS,
                "{name} at {}",
                arrival.at
            );
            assert!(!arrival.subjects.is_empty(), "{name} brought nobody");
            for &subj in &arrival.subjects {
                assert_eq!(sim.subjects[subj as usize].behaviour, kind);
            }
        }
        if is_spam_behaviour(kind) {
            let planned = arrivals
                .iter()
                .flat_map(|a| &a.subjects)
                .any(|&subj| sim.labels.iter().any(|l| l.subj == subj && l.first_abuse.is_some_and(|t| t >= start)));
            assert!(planned, "no {name} arrival has abuse planned");
        }
    }
    assert_eq!(live.arrivals[0].behaviour, B_FRESH_BURST, "the first arrival is a burst sender");
    // Burst senders burst at once: their messages are already out.
    let bursters: HashSet<&str> = live
        .arrivals
        .iter()
        .filter(|a| a.behaviour == B_FRESH_BURST)
        .flat_map(|a| &a.subjects)
        .flat_map(|&subj| (0..4).map(move |f| (subj, f)))
        .map(|(subj, f)| sim.form_str(&sim.subjects[subj as usize], f))
        .collect();
    let burst_messages = lines
        .iter()
        .filter(|(l, _, _)| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["type"] == "message" && v["phone"].as_str().is_some_and(|p| bursters.contains(p))
        })
        .count();
    assert!(burst_messages >= 100, "{burst_messages} burst messages");
    // New numbers are valid and nobody else's.
    let mut seen = HashSet::new();
    for s in &sim.subjects {
        assert!(seen.insert(sim.form_str(s, phones::F_E164).to_string()), "duplicate number");
    }
    for arrival in live.arrivals.iter().filter(|a| is_spam_behaviour(a.behaviour)).take(5) {
        let s = &sim.subjects[arrival.subjects[0] as usize];
        let e164 = sim.form_str(s, phones::F_E164);
        assert_eq!(to_e164(e164, None), e164);
    }
}

/// Live lines are a pure function of the config, the live start and the rate.
#[test]
fn live_is_deterministic() {
    let (mut a, start) = live_sim(100);
    let (mut b, _) = live_sim(100);
    assert_eq!(live_lines(&mut a, start, 120), live_lines(&mut b, start, 120));
}

/// An event's `ts` in epoch milliseconds: RFC 3339 text or epoch millis.
fn ts_ms_of(ts: &Value) -> i64 {
    match ts {
        Value::Number(n) => n.as_i64().expect("int ts"),
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("rfc3339");
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        }
        other => panic!("bad ts {other}"),
    }
}
