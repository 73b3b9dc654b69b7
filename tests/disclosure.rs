//! The disclosure layer in process: a stored feed record is released again
//! when it is read, so a withdrawal whose retraction was never written
//! (a failed write, a crash before it) still names nobody; the next start
//! writes the retraction.

use std::sync::Arc;

use proviso::clock::Clock;
use proviso::consent::Policy;
use proviso::contract::{Purpose, Region};
use proviso::disclose::partners::FeedPage;
use proviso::disclose::{AudiencePolicy, Disclosure, PartnerSettings};
use proviso::edge::{PseudonymKey, Source};
use proviso::pipeline::{Pipeline, PipelineOptions};

const ASKER: &str = "+919876500001";
const FRIEND: &str = "+919876500002";

fn open(dir: &std::path::Path, clock: &Clock) -> (Arc<Pipeline>, Arc<Disclosure>) {
    let pipeline = Arc::new(
        Pipeline::open(PipelineOptions {
            data_dir: dir.to_path_buf(),
            pseudonym_key: Some(PseudonymKey::from_bytes([3; 32])),
            default_region: Region::parse("IN").expect("region"),
            policy: Policy::default_policy(),
            segment_bytes: 1 << 20,
            snapshot_every_records: 1_000_000,
            default_partner: "net".to_string(),
            rules_path: None,
            erasure_compaction: std::time::Duration::from_secs(3600),
            max_future_skew_ms: 300_000,
            clock: clock.clone(),
            idempotency_window: std::time::Duration::from_secs(86_400),
            cluster: None,
        })
        .expect("pipeline"),
    );
    let partners = vec![PartnerSettings {
        name: "net".to_string(),
        purposes: vec![Purpose::Security, Purpose::Product, Purpose::Ads],
        handle_key: PseudonymKey::from_bytes([4; 32]),
    }];
    let audience = AudiencePolicy { k: 1, epsilon: 1.0, daily_epsilon: 3.0, noise_required: false };
    let disclosure = Disclosure::open(Arc::clone(&pipeline), partners, audience).expect("disclosure");
    (pipeline, disclosure)
}

fn ingest(pipeline: &Pipeline, lines: &[String]) {
    let body = lines.join("\n");
    let prepared = pipeline.prepare(body.as_bytes(), Source::Service);
    pipeline.commit_blocking(prepared).expect("commit");
}

fn product_feed(disclosure: &Disclosure) -> serde_json::Value {
    match disclosure.feed("net", Purpose::Product, None, 100).expect("feed") {
        FeedPage::Purpose(page) => serde_json::to_value(&page).expect("json"),
        FeedPage::Security(_) => panic!("product feed expected"),
    }
}

/// A refusal whose retraction never reached the feed: the stored `add`
/// reads as withdrawn at once (the gate is asked again at read time), and
/// the next start writes the retraction.
#[test]
fn a_feed_record_is_released_again_when_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One fixed clock for the edge, the write path and the disclosures.
    let now = 1_780_272_000_000;
    let clock = Clock::fixed(now);
    let at = now - 3_600_000;
    let mut lines = Vec::new();
    for (phone, account) in [(ASKER, "acct-asker"), (FRIEND, "acct-friend")] {
        lines.push(format!(
            r#"{{"type":"register","ts":{at},"phone":"{phone}","device":"d-{account}","platform":"android"}}"#
        ));
        lines.push(format!(r#"{{"type":"partner_account","ts":{at},"phone":"{phone}","partner_id":"{account}"}}"#));
        lines.push(format!(r#"{{"type":"consent","ts":{at},"phone":"{phone}","purpose":"product","granted":true}}"#));
    }
    lines.push(format!(r#"{{"type":"contacts","ts":{at},"phone":"{ASKER}","contacts":["{FRIEND}"]}}"#));
    {
        let (pipeline, disclosure) = open(dir.path(), &clock);
        ingest(&pipeline, &lines);
        let suggestions =
            serde_json::to_value(disclosure.suggestions("net", "acct-asker", 20).expect("suggest")).expect("json");
        assert_eq!(suggestions[0]["partner_id"], "acct-friend", "{suggestions}");
        let feed = product_feed(&disclosure);
        assert_eq!(feed["records"][0]["suggested"], "acct-friend", "{feed}");

        // The retraction write is lost (as if its fsync failed): the
        // refusal is acknowledged, the feed file still holds a live add.
        pipeline.set_revocation_hook(Arc::new(|_| {}));
        let refusal = format!(
            r#"{{"type":"consent","ts":{},"phone":"{FRIEND}","purpose":"product","granted":false}}"#,
            now - 1000
        );
        ingest(&pipeline, &[refusal]);
        assert_eq!(disclosure.feeds().live().expect("live").len(), 1, "no retraction was written");
        let feed = product_feed(&disclosure);
        let record = &feed["records"][0];
        assert_eq!(record["withdrawn"], true, "read again through the gate: {feed}");
        assert!(record.get("suggested").is_none() && record.get("partner_id").is_none(), "{feed}");
        pipeline.shutdown();
    }
    // The next start, a minute later, reconciles: the retraction is written,
    // stamped by the one clock the process was given.
    clock.set(now + 60_000);
    let (pipeline, disclosure) = open(dir.path(), &clock);
    assert!(disclosure.feeds().live().expect("live").is_empty(), "reconciled at start");
    let feed = product_feed(&disclosure);
    assert_eq!(feed["records"][1]["op"], "retract", "{feed}");
    assert_eq!(feed["records"][1]["reason"], "no_longer_allowed", "{feed}");
    assert_eq!(feed["records"][1]["at"], "2026-06-01T00:01:00Z", "{feed}");
    pipeline.shutdown();
}
