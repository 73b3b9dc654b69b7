//! End-to-end tests of cross-service abuse fighting: the default rules
//! against labelled simulated history, partner security feeds, partner
//! flags, feed isolation, reviewer decisions and rules hot reload.

mod common;

use std::process::Stdio;

use common::{command, Server, ADMIN, INGEST, OTHER_PARTNER, PARTNER, REVIEWER, SUBJECT};
use serde_json::Value;

fn run(args: &[&str]) -> std::process::Output {
    command().args(args).stdin(Stdio::null()).output().expect("run proviso")
}

fn default_rules_path() -> String {
    format!("{}/src/processors/abuse/default_rules.toml", env!("CARGO_MANIFEST_DIR"))
}

/// On a seed the rules were not tuned on (tuning used seeds 11 and, for the
/// link rules, 1), the shipped default rules reach precision >= 0.95,
/// recall >= 0.90, a median detection delay <= 60 s of event time for the
/// burst kinds (fresh bursts, device farms) and <= 6 h for slow link spam,
/// with no hard negative (busy businesses, group admins, festive senders,
/// link sharers, shops) caught. Runs the real `simulate`, `ingest` and
/// `rules backtest` commands. (The overall median delay is no longer
/// asserted: since slow link spam joined the mix it measures the mix of
/// kinds more than how fast any kind is caught.)
/// Simulates (`simulate_args`, plus the output files), ingests and
/// backtests the built-in rules against the simulator's labels; the JSON
/// report.
fn backtest_default_rules(simulate_args: &[&str]) -> Value {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = |name: &str| temp.path().join(name).to_str().expect("utf8").to_string();
    let (events, labels, data) = (dir("events.ndjson"), dir("labels.ndjson"), dir("data"));
    let mut args = vec!["simulate"];
    args.extend_from_slice(simulate_args);
    args.extend_from_slice(&["--out", &events, "--labels", &labels]);
    let output = run(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = run(&["ingest", &events, "--data", &data, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = run(&["rules", "backtest", &default_rules_path(), "--labels", &labels, "--data", &data, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("json report")
}

#[test]
fn default_rules_meet_precision_recall_and_delay_on_an_untuned_seed() {
    let report = backtest_default_rules(&[
        "--seed",
        "2026",
        "--subjects",
        "20000",
        "--days",
        "14",
        "--events",
        "300000",
        "--start",
        "2026-03-01",
    ]);
    let figure = |name: &str| report[name].as_f64().unwrap_or_else(|| panic!("{name} in {report}"));
    assert!(report["labelled_spam"].as_u64().expect("count") >= 150, "{report}");
    assert!(figure("precision") >= 0.95, "{report:#}");
    assert!(figure("recall") >= 0.90, "{report:#}");
    for behaviour in report["by_behaviour"].as_array().expect("behaviours") {
        let delay = behaviour["delay_p50_seconds"].as_f64().expect("delay");
        match behaviour["behaviour"].as_str() {
            Some("fresh_burst" | "device_farm") => assert!(delay <= 60.0, "{behaviour}"),
            Some("slow_link_unlisted") => assert!(delay <= 6.0 * 3_600.0, "{behaviour}"),
            _ => {}
        }
        if behaviour["spam"] == false {
            assert_eq!(behaviour["detected"], 0, "hard negative caught: {behaviour}");
        }
    }
}

/// A burst from a fresh account, as the messaging service would send it.
fn burst(phone: &str, start_ms: i64, messages: usize) -> String {
    let mut lines = vec![format!(
        r#"{{"type":"register","ts":{start_ms},"phone":"{phone}","device":"dev-burst","platform":"android"}}"#
    )];
    for k in 0..messages {
        let to = format!("+9198111{:05}", 10_000 + k);
        let ts = start_ms + 60_000 + k as i64 * 500;
        lines.push(format!(r#"{{"type":"message","ts":{ts},"phone":"{phone}","to":"{to}","kind":"text"}}"#));
    }
    lines.join("\n")
}

const T0: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

/// A spammer detected here shows up in the linked partner's security feed
/// with that partner's own account id; an unlinked spammer appears in no
/// feed; partner A cannot read partner B's feed; a partner's flag leads to
/// the configured action (review) and a reviewer's ban is shared.
#[test]
fn detections_reach_only_the_linked_partners_feed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let linked = "+919876500111";
    let unlinked = "+919876500222";
    let flagged = "+919876500333";
    // The partner claims two of its accounts through its own token.
    let links = [
        format!(r#"{{"type":"partner_account","ts":{T0},"phone":"{linked}","partner_id":"fn-account-1"}}"#),
        format!(r#"{{"type":"partner_account","ts":{T0},"phone":"{flagged}","partner_id":"fn-account-3"}}"#),
    ]
    .join("\n");
    let (status, body) = server.post("/v1/events", Some(PARTNER), "application/x-ndjson", links.as_bytes());
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(2)), "{body}");
    // othernet links the same person under its own id.
    let other = format!(r#"{{"type":"partner_account","ts":{T0},"phone":"{linked}","partner_id":"on-account-1"}}"#);
    let (status, _) = server.post("/v1/events", Some(OTHER_PARTNER), "application/x-ndjson", other.as_bytes());
    assert_eq!(status, 200);
    // Claims share nothing until the messaging service attests them (the
    // people linked the accounts in the app).
    let attest = [
        (linked, "friendnet", "fn-account-1"),
        (flagged, "friendnet", "fn-account-3"),
        (linked, "othernet", "on-account-1"),
    ]
    .iter()
    .map(|(phone, partner, account)| {
        format!(
            r#"{{"type":"partner_account","ts":{T0},"phone":"{phone}","partner":"{partner}","partner_id":"{account}"}}"#
        )
    })
    .collect::<Vec<_>>()
    .join("\n");
    assert_eq!(server.ingest(&attest)["accepted"], 3);
    // A partner may not send the service's events.
    let session = format!(r#"{{"type":"session","ts":{T0},"phone":"{linked}","device":"x"}}"#);
    let (_, body) = server.post("/v1/events", Some(PARTNER), "application/x-ndjson", session.as_bytes());
    assert_eq!(body["rejected"][0]["reason"], "not_allowed", "{body}");

    let body = server.ingest(&format!("{}\n{}", burst(linked, T0, 40), burst(unlinked, T0, 40)));
    assert_eq!(body["accepted"], 82, "{body}");

    let (status, feed) = server.get("/v1/partners/friendnet/feeds/security", Some(PARTNER));
    assert_eq!(status, 200, "{feed}");
    let records = feed["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "only the linked spammer: {feed}");
    assert_eq!(records[0]["partner_id"], "fn-account-1");
    assert_eq!(records[0]["action"], "ban");
    assert_eq!(records[0]["reason"], "spam");
    let feed_text = feed.to_string();
    assert!(!feed_text.contains("9876500"), "no phone number in a feed");
    assert!(!feed_text.contains(&server.subject(linked)), "no subject id in a feed");

    // Resumable: nothing after the last cursor.
    let next = feed["next"].as_u64().expect("cursor");
    let (_, page) = server.get(&format!("/v1/partners/friendnet/feeds/security?after={next}"), Some(PARTNER));
    assert!(page["records"].as_array().expect("records").is_empty(), "{page}");

    // Isolation: othernet cannot read friendnet's feed; its own carries only
    // its own id for the person, and a handle friendnet never sees.
    let (status, body) = server.get("/v1/partners/friendnet/feeds/security", Some(OTHER_PARTNER));
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = server.get("/v1/partners/othernet/feeds/security", Some(OTHER_PARTNER));
    assert_eq!(status, 200);
    let other_records = body["records"].as_array().expect("records");
    assert_eq!(other_records.len(), 1, "{body}");
    assert_eq!(other_records[0]["partner_id"], "on-account-1");
    assert!(!body.to_string().contains("fn-account"), "no friendnet id in othernet's feed");
    let (friend_handle, other_handle) = (records[0]["handle"].as_str(), other_records[0]["handle"].as_str());
    assert!(friend_handle.is_some_and(|h| h.starts_with("h_") && h.len() == 34), "{feed}");
    assert_ne!(friend_handle, other_handle, "no identifier shared across partners");
    // othernet may not receive product at all.
    let (status, _) = server.get("/v1/partners/othernet/feeds/product", Some(OTHER_PARTNER));
    assert_eq!(status, 403);

    // The reviewer sees both detections with evidence.
    let (status, actions) = server.get("/v1/abuse/actions?status=banned", Some(REVIEWER));
    assert_eq!(status, 200, "{actions}");
    let actions = actions["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["by"], "fresh_account_burst");
    assert_eq!(actions[0]["evidence"]["messages_sent[1m]"], 30.0);

    // A partner flag (default policy: review) puts its subject in review.
    let flag = format!(
        r#"{{"type":"partner_flag","ts":{},"phone":"{flagged}","partner_id":"fn-account-3","reason":"spam"}}"#,
        T0 + 1_000
    );
    let (status, _) = server.post("/v1/events", Some(PARTNER), "application/x-ndjson", flag.as_bytes());
    assert_eq!(status, 200);
    let subject = server.subject(flagged);
    let (_, view) = server.get(&format!("/v1/abuse/subjects/{subject}"), Some(REVIEWER));
    assert_eq!(view["status"], "review", "{view}");
    assert_eq!(view["history"][0]["origin"], "partner_flag");
    assert_eq!(view["partners"][0], "friendnet");
    // A second flag: two actions set review, the open queue holds the
    // subject once, with the latest.
    let flag = format!(
        r#"{{"type":"partner_flag","ts":{},"phone":"{flagged}","partner_id":"fn-account-3","reason":"scam"}}"#,
        T0 + 2_000
    );
    let (status, _) = server.post("/v1/events", Some(PARTNER), "application/x-ndjson", flag.as_bytes());
    assert_eq!(status, 200);
    let (_, all) = server.get("/v1/abuse/actions?status=review", Some(REVIEWER));
    assert_eq!(all["actions"].as_array().map(Vec::len), Some(2), "{all}");
    let (status, open) = server.get("/v1/abuse/actions?status=review&open=true", Some(REVIEWER));
    assert_eq!(status, 200, "{open}");
    let open = open["actions"].as_array().expect("actions");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!((open[0]["subject"].as_str(), open[0]["note"].as_str()), (Some(subject.as_str()), Some("scam")));
    // The reviewer bans: shared with the linked partner.
    let (status, view) = server.post(
        &format!("/v1/abuse/subjects/{subject}/decision"),
        Some(REVIEWER),
        "application/json",
        br#"{"action":"ban","note":"confirmed by review"}"#,
    );
    assert_eq!((status, view["status"].as_str()), (200, Some("banned")), "{view}");
    // Decided: no longer open, still listed among actions that set review.
    let (_, open) = server.get("/v1/abuse/actions?status=review&open=true", Some(REVIEWER));
    assert_eq!(open["actions"], serde_json::json!([]), "{open}");
    let (_, all) = server.get("/v1/abuse/actions?status=review", Some(REVIEWER));
    assert_eq!(all["actions"].as_array().map(Vec::len), Some(2), "{all}");
    let (_, banned) = server.get("/v1/abuse/actions?status=banned&open=true", Some(REVIEWER));
    assert!(
        banned["actions"].as_array().expect("actions").iter().any(|a| a["subject"] == subject.as_str()),
        "{banned}"
    );
    let (_, feed) = server.get("/v1/partners/friendnet/feeds/security", Some(PARTNER));
    let ids: Vec<&str> =
        feed["records"].as_array().expect("records").iter().filter_map(|r| r["partner_id"].as_str()).collect();
    assert_eq!(ids, vec!["fn-account-1", "fn-account-3"]);

    // The person's report shows the links, the ban and every disclosure to
    // a partner, and no one else's number or id.
    let linked_subject = server.subject(linked);
    let (status, report) = server.get(&format!("/v1/subjects/{linked_subject}/report"), Some(SUBJECT));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["abuse"]["status"], "banned");
    assert_eq!(report["abuse"]["actions"][0]["reason"], "spam");
    let partners: Vec<&str> =
        report["partners"].as_array().expect("partners").iter().filter_map(|p| p["partner"].as_str()).collect();
    assert_eq!(partners.len(), 2, "{report}");
    let recipients: Vec<&str> =
        report["disclosures"].as_array().expect("disclosures").iter().filter_map(|d| d["recipient"].as_str()).collect();
    assert!(recipients.contains(&"partner:friendnet") && recipients.contains(&"partner:othernet"), "{report}");
    assert_eq!(report["held"]["active_days"]["count"], 1);
    let text = report.to_string();
    assert!(!text.contains("9198111") && !text.contains("9876500"), "no numbers in a report: {text}");

    // `proviso report` prints the same document from the data dir.
    let data_dir = server.data.to_str().expect("utf8").to_string();
    let output = run(&["report", "--subject", &linked_subject, "--data", &data_dir]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("json report");
    for key in ["subject", "region", "held", "partners", "disclosures", "abuse"] {
        assert_eq!(printed[key], report[key], "{key}");
    }

    // Every disclosure is in the audit log, whose chain verifies; a tampered
    // record is named.
    let data_arg = server.data.to_str().expect("utf8").to_string();
    let output = run(&["audit", "verify", "--data", &data_arg]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("chain intact"));

    // Survives a restart: actions are derived from the log, decisions included.
    let data = server.data.clone();
    server.stop();
    let server = Server::start(&data);
    let (_, again) = server.get("/v1/partners/friendnet/feeds/security", Some(PARTNER));
    assert_eq!(again["records"], feed["records"]);
    let (_, view) = server.get(&format!("/v1/abuse/subjects/{subject}"), Some(REVIEWER));
    assert_eq!(view["status"], "banned");
    let audit = server.data.join("audit").join("disclosures.log");
    let original = std::fs::read_to_string(&audit).expect("audit log");
    assert!(original.lines().count() >= 4, "{original}");
    std::fs::write(&audit, original.replacen("security_feed", "suggestions", 1)).expect("tamper");
    let output = run(&["audit", "verify", "--data", &data_arg]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("record 0 was altered"), "{stderr}");
}

/// A broken rules file is refused with every problem named and the old rules
/// keep running; a good one replaces them while batches keep flowing, and
/// no acknowledged event is lost.
#[test]
fn rules_reload_under_load_loses_nothing_and_refuses_broken_files() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let broken =
        b"[[rule]]\nname = \"x\"\nwhen = \"mesages_sent[1m] > 5 and\"\neffects = [\"nuke\"]\nreason = \"spam\"\n";
    let (status, body) = server.post("/v1/abuse/rules", Some(ADMIN), "application/toml", broken);
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_rules")), "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("messages_sent"), "suggests the feature: {message}");
    assert!(message.contains("effects"), "names the field: {message}");
    // A request that lost its body does not remove every rule.
    let (status, body) = server.post("/v1/abuse/rules", Some(ADMIN), "application/toml", b"");
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_rules")), "{body}");

    let strict =
        b"[[rule]]\nname = \"chatty\"\nwhen = \"messages_sent[1h] >= 3\"\neffects = [\"review\"]\nreason = \"spam\"\n";
    let base = server.base.clone();
    let writer = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut acknowledged = 0u64;
        for batch in 0..40i64 {
            let lines: Vec<String> = (0..250i64)
                .map(|k| {
                    let ts = T0 + batch * 1_000 + k;
                    format!(r#"{{"type":"session","ts":{ts},"phone":"+9198770{:05}","device":"d"}}"#, batch * 250 + k)
                })
                .collect();
            let mut response = agent
                .post(&format!("{base}/v1/events"))
                .header("Authorization", &format!("Bearer {INGEST}"))
                .header("Content-Type", "application/x-ndjson")
                .send(lines.join("\n"))
                .expect("post");
            let body: Value = response.body_mut().read_json().expect("json");
            acknowledged += body["accepted"].as_u64().expect("accepted");
        }
        acknowledged
    });
    let (status, body) = server.post("/v1/abuse/rules", Some(ADMIN), "application/toml", strict);
    assert_eq!((status, body["changed"].as_bool()), (200, Some(true)), "{body}");
    let acknowledged = writer.join().expect("writer");
    assert_eq!(acknowledged, 10_000);
    let (_, health) = server.get("/healthz", None);
    assert_eq!(health["subjects"], 10_000, "{health}");

    // The new rules are in force: three messages within the hour is "chatty".
    let lines: Vec<String> = (0..3)
        .map(|k| {
            format!(
                r#"{{"type":"message","ts":{},"phone":"+919877988001","to":"+919877988002","kind":"text"}}"#,
                T0 + k
            )
        })
        .collect();
    server.ingest(&lines.join("\n"));
    let (_, actions) = server.get("/v1/abuse/actions?status=review", Some(REVIEWER));
    assert_eq!(actions["actions"][0]["by"], "chatty", "{actions}");
}

/// A rules file given with `--rules` is reloaded when it changes on disk; a
/// broken edit is refused (logged) and the rules in force keep running.
#[test]
fn rules_file_changes_are_picked_up() {
    let temp = tempfile::tempdir().expect("tempdir");
    let rules = temp.path().join("rules.toml");
    std::fs::write(&rules, "# nothing yet\n").expect("write");
    let rules_arg = rules.to_str().expect("utf8").to_string();
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_RULES", &rules_arg)]);
    std::fs::write(&rules, "[[rule]]\nname = \"broken\"\nwhen = \"nonsense\"\n").expect("write");
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"two_messages\"\nwhen = \"messages_sent[1h] >= 2\"\neffects = [\"review\"]\nreason = \"spam\"\n",
    )
    .expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut fired = false;
    let mut k = 0;
    while std::time::Instant::now() < deadline && !fired {
        k += 1;
        let line = format!(
            r#"{{"type":"message","ts":{},"phone":"+919877970{:03}","to":"+919877988002","kind":"text"}}"#,
            T0,
            k / 2
        );
        server.ingest(&line);
        let (_, actions) = server.get("/v1/abuse/actions", Some(REVIEWER));
        fired = actions["actions"].as_array().is_some_and(|a| a.iter().any(|x| x["by"] == "two_messages"));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(fired, "the edited rules file was not picked up");
    let log = server.stop();
    assert!(log.contains("Abuse rules refused"), "the broken edit is reported:\n{log}");
}

/// Issue 15: slow link spam from a domain no list holds. A small untuned
/// seed (tuning used seed 1) through the real `simulate`, `ingest` and
/// `rules backtest`: the default rules catch at least 90% of the slow
/// unlisted-domain link spammers and flag none of the legitimate heavy
/// senders (link sharers, shops, group admins, festive senders, busy
/// business repliers).
#[test]
fn default_rules_catch_slow_unlisted_link_spam_and_spare_heavy_senders() {
    let report = backtest_default_rules(&["--seed", "7", "--subjects", "6000", "--days", "10", "--events", "60000"]);
    let behaviours = report["by_behaviour"].as_array().expect("behaviours");
    let slow = behaviours.iter().find(|b| b["behaviour"] == "slow_link_unlisted").expect("slow link spammers");
    let (subjects, detected) = (slow["subjects"].as_u64().expect("n"), slow["detected"].as_u64().expect("n"));
    assert!(subjects >= 10, "{slow}");
    assert!(detected as f64 >= 0.9 * subjects as f64, "{report:#}");
    let mut hard_negatives = 0;
    for behaviour in behaviours.iter().filter(|b| b["spam"] == false) {
        hard_negatives += 1;
        assert_eq!(behaviour["detected"], 0, "legitimate heavy sender flagged: {behaviour}");
    }
    assert_eq!(hard_negatives, 5, "{report:#}");
}

/// A ring of young accounts spraying a fresh domain at strangers: the
/// domain lands on the derived list and the review queue shows why (the
/// domain, when, how many strangers, which senders as subject ids), never
/// a phone number.
#[test]
fn review_queue_shows_the_evidence_of_a_derived_suspicious_domain() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let ring = ["+919876511001", "+919876511002", "+919876511003", "+919876511004"];
    let mut lines = Vec::new();
    for (k, phone) in ring.iter().enumerate() {
        let ts = T0 + k as i64 * 1_000;
        lines.push(format!(
            r#"{{"type":"register","ts":{ts},"phone":"{phone}","device":"dev-ring-{k}","platform":"android"}}"#
        ));
    }
    // Three link messages each, twenty minutes apart: far below any burst.
    for round in 0..3i64 {
        for (k, phone) in ring.iter().enumerate() {
            let ts = T0 + 3_600_000 + round * 1_200_000 + k as i64 * 60_000;
            let to = format!("+9198222{:05}", 10_000 + round * 10 + k as i64);
            lines.push(format!(
                r#"{{"type":"message","ts":{ts},"phone":"{phone}","to":"{to}","kind":"text","link_domain":"lucky-gift4821.top"}}"#
            ));
        }
    }
    assert_eq!(server.ingest(&lines.join("\n"))["accepted"], 16);
    let (status, open) = server.get("/v1/abuse/actions?status=review&open=true", Some(REVIEWER));
    assert_eq!(status, 200, "{open}");
    let actions = open["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), ring.len(), "every ring member is in review: {open:#}");
    let ring_subjects: Vec<String> = ring.iter().map(|phone| server.subject(phone)).collect();
    for action in actions {
        assert_eq!(action["by"], "suspicious_domain_links", "{action}");
        let domain = &action["domains"][0];
        assert_eq!(domain["domain"], "lucky-gift4821.top", "{action}");
        assert!(domain["stranger_recipients"].as_u64().expect("count") >= 10, "{action}");
        assert!(domain["young_senders"].as_u64().expect("count") >= 3, "{action}");
        for sender in domain["young_sender_subjects"].as_array().expect("senders") {
            assert!(ring_subjects.iter().any(|s| s == sender), "{sender} is a ring member");
        }
        assert!(domain["suspicious_since"].as_str().is_some_and(|t| t.starts_with("2026-03-01T")), "{action}");
    }
    assert!(!open.to_string().contains("98765110"), "no phone number in the review queue");
}

/// Issue 15 poisoning, end to end: 24 established people share a popular
/// news domain with their contacts every morning for six days (eight of
/// them also with two people they do not know), then four accounts
/// registered that day spray it at 40 strangers within 20 minutes (a burst
/// that meets every `[suspicious_domains]` threshold), and the people go on
/// sharing it that afternoon. The domain's history outweighs the burst: the
/// built-in `suspicious_domain_links` flags nobody (before the fix it put
/// the eight who also sent it to strangers in review and shared them with
/// the partner), while the sprayers themselves are caught by
/// `stranger_link_spray`.
#[test]
fn a_burst_of_young_accounts_cannot_get_ordinary_sharers_of_a_popular_domain_flagged() {
    const DAY: i64 = 86_400_000;
    const MINUTE: i64 = 60_000;
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let person = |i: usize| format!("+91983301{i:04}");
    let friend = |i: usize, j: usize| format!("+91983302{:04}", i * 10 + j);
    let stranger = |n: usize| format!("+91983303{n:04}");
    let mut lines: Vec<(i64, String)> = Vec::new();
    let mut message = |ts: i64, from: &str, to: &str| {
        let line = format!(
            r#"{{"type":"message","ts":{ts},"phone":"{from}","to":"{to}","kind":"text","link_domain":"dailynews.example"}}"#
        );
        lines.push((ts, line));
    };
    let mut strangers = 0usize;
    // Ordinary sharing: three contacts each (mornings, then the afternoon
    // of the burst day), and two strangers each for the first eight.
    let share = |message: &mut dyn FnMut(i64, &str, &str), strangers: &mut usize, start: i64| {
        for i in 0..24 {
            let at = start + i as i64 * 5 * MINUTE;
            for j in 0..3 {
                message(at + j as i64 * MINUTE, &person(i), &friend(i, j));
            }
            if i < 8 {
                for k in 0..2 {
                    *strangers += 1;
                    message(at + (3 + k) * MINUTE, &person(i), &stranger(*strangers));
                }
            }
        }
    };
    for day in 0..6 {
        share(&mut message, &mut strangers, T0 + day * DAY + 8 * 3_600_000);
    }
    // Day 6, noon: four accounts registered at 11:50 send it to ten
    // strangers each, one every half minute between them.
    let burst = T0 + 6 * DAY + 12 * 3_600_000;
    let ring: Vec<String> = (0..4).map(|k| format!("+91983304{k:04}")).collect();
    for k in 0..40 {
        strangers += 1;
        message(burst + k as i64 * 30_000, &ring[k % 4], &stranger(strangers));
    }
    share(&mut message, &mut strangers, burst + 2 * 3_600_000);
    for (k, phone) in ring.iter().enumerate() {
        let ts = burst - 10 * MINUTE;
        let line = format!(
            r#"{{"type":"register","ts":{ts},"phone":"{phone}","device":"dev-poison-{k}","platform":"android"}}"#
        );
        lines.push((ts, line));
    }
    for i in 0..24 {
        let book: Vec<String> = (0..6).map(|j| format!("\"{}\"", friend(i, j))).collect();
        let line =
            format!(r#"{{"type":"contacts","ts":{T0},"phone":"{}","contacts":[{}]}}"#, person(i), book.join(","));
        lines.push((T0 - 1, line));
    }
    lines.sort_by_key(|(ts, _)| *ts);
    let total = lines.len();
    let ndjson: Vec<String> = lines.into_iter().map(|(_, line)| line).collect();
    assert_eq!(server.ingest(&ndjson.join("\n"))["accepted"], total);

    let (status, page) = server.get("/v1/abuse/actions?limit=1000", Some(REVIEWER));
    assert_eq!(status, 200, "{page}");
    let actions = page["actions"].as_array().expect("actions");
    let people: Vec<String> = (0..24).map(|i| server.subject(&person(i))).collect();
    let through_domain: Vec<&Value> = actions.iter().filter(|a| a["by"] == "suspicious_domain_links").collect();
    let sharers_acted_on: Vec<&Value> = actions.iter().filter(|a| people.iter().any(|p| *p == a["subject"])).collect();
    assert!(
        through_domain.is_empty() && sharers_acted_on.is_empty(),
        "{} actions through the poisoned domain, {} on ordinary sharers: {page:#}",
        through_domain.len(),
        sharers_acted_on.len()
    );
    let ring_subjects: Vec<String> = ring.iter().map(|phone| server.subject(phone)).collect();
    for subject in &ring_subjects {
        assert!(
            actions.iter().any(|a| a["subject"] == *subject && a["by"] == "stranger_link_spray"),
            "sprayer {subject} caught by the per-sender rule: {page:#}"
        );
    }
}
