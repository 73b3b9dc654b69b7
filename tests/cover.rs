//! A node's cover in process: the writer rebuilds usage for a new cover on
//! a thread while batches keep coming, then copies in what they appended.
//! The usage it ends with is exactly that of a state built from the whole
//! log with that cover, and a restart reads the cover back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proviso::clock::Clock;
use proviso::consent::Policy;
use proviso::contract::Region;
use proviso::edge::{PseudonymKey, Source};
use proviso::pipeline::{Pipeline, PipelineOptions};
use proviso::processors::usage::Grouping;
use proviso::state::{Cover, State};

const NOW: i64 = 1_780_272_000_000;
const DAY_MS: i64 = 86_400_000;

fn open(dir: &std::path::Path) -> Arc<Pipeline> {
    Arc::new(
        Pipeline::open(PipelineOptions {
            data_dir: dir.to_path_buf(),
            pseudonym_key: Some(PseudonymKey::from_bytes([3; 32])),
            default_region: Region::parse("IN").expect("region"),
            policy: Policy::default_policy(),
            segment_bytes: 1 << 16,
            snapshot_every_records: 1_000_000,
            default_partner: "net".to_string(),
            rules_path: None,
            erasure_compaction: Duration::from_secs(3600),
            max_future_skew_ms: 300_000,
            clock: Clock::fixed(NOW),
            idempotency_window: Duration::from_secs(86_400),
            cluster: None,
        })
        .expect("pipeline"),
    )
}

/// A batch of sessions, registers and messages of 400 people over 20 days.
fn batch(round: u64) -> String {
    (0..200u64)
        .map(|k| {
            let person = (round * 37 + k * 13) % 400;
            let phone = format!("+9198765{person:05}");
            let ts = NOW - DAY_MS * ((round + k) % 20) as i64 - 1_000;
            match k % 3 {
                0 => format!(r#"{{"type":"session","ts":{ts},"phone":"{phone}","device":"d"}}"#),
                1 => format!(r#"{{"type":"register","ts":{ts},"phone":"{phone}","device":"d","platform":"ios"}}"#),
                _ => format!(
                    r#"{{"type":"message","ts":{ts},"phone":"{phone}","to":"+9198765{:05}","kind":"text"}}"#,
                    (person + 1) % 400
                ),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ingest(pipeline: &Pipeline, round: u64) {
    let prepared = pipeline.prepare(batch(round).as_bytes(), Source::Service);
    pipeline.commit_blocking(prepared).expect("commit");
}

/// Every usage figure of `state`: 30 days of active counts by platform,
/// 30-day windows, messages, and each acting person's days.
fn figures(state: &State) -> String {
    let today = (NOW / DAY_MS) as i32;
    let daily = state.usage.active_series(today - 29, today, 1, Some(Grouping::Platform));
    let monthly = state.usage.active_series(today - 29, today, 30, None);
    let messages = state.usage.message_series(today - 29, today);
    let days: Vec<(u32, Vec<i32>)> = (0..state.subjects.len() as u32)
        .filter(|index| state.subjects.get(*index).is_some_and(|record| record.has_acted()))
        .map(|index| (index, state.usage.active_days_of(index)))
        .collect();
    format!("{daily:?}\n{monthly:?}\n{messages:?}\n{days:?}")
}

#[test]
fn a_cover_taken_while_batches_come_ends_as_the_log_built_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = open(dir.path());
    for round in 0..150 {
        ingest(&pipeline, round);
    }
    let whole = figures(&pipeline.state());
    let cover = Cover::partitions(7, &[1, 2, 5]);
    pipeline.cover(cover.clone());
    // Batches go on while the writer's thread replays.
    let mut round = 150;
    let started = Instant::now();
    while pipeline.state().cover != cover {
        ingest(&pipeline, round);
        round += 1;
        assert!(started.elapsed() < Duration::from_secs(60), "the cover was never taken");
    }
    for _ in 0..5 {
        ingest(&pipeline, round);
        round += 1;
    }
    let got = figures(&pipeline.state());
    assert_ne!(got, whole, "a share of 3 of 7 partitions holds less than everyone");
    let (mut built, _) = proviso::pipeline::rebuild_state(dir.path(), false).expect("rebuild");
    assert_eq!(built.cover, Cover::All);
    built = rebuilt_with(dir.path(), cover.clone());
    assert_eq!(got, figures(&built), "after {round} batches");
    pipeline.shutdown();
    drop(pipeline);
    // A restart reads the cover and the share back from the snapshot.
    let reopened = open(dir.path());
    assert_eq!(reopened.state().cover, cover);
    assert_eq!(figures(&reopened.state()), got);
}

/// State from the whole log of `dir` with `cover`.
fn rebuilt_with(dir: &std::path::Path, cover: Cover) -> State {
    let mut state = State::covering(cover);
    proviso::pipeline::replay_records(&dir.join("log"), 0, |seq, record| state.apply(seq, &record)).expect("replay");
    state
}
