//! Criterion benchmarks of proviso's hot paths: the edge per line, log
//! append with fsync, applying events to state, and the gate.
//!
//! Settings: 50 samples, 3 s measurement, noise threshold 5%, significance
//! 0.05. Run with `cargo bench --bench hot_paths`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use proviso::consent::Policy;
use proviso::contract::{Purpose, Region};
use proviso::edge::{Edge, PseudonymKey};
use proviso::log::{frame, Log, DEFAULT_SEGMENT_BYTES};
use proviso::state::State;

fn lines(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i % 4 {
            0 => format!(r#"{{"type":"session","ts":"2026-01-05T10:{:02}:00Z","phone":"+9198123{:05}","device":"d{i}"}}"#, i % 60, i % 5000),
            1 => format!(r#"{{"type":"message","ts":1767607200{:03},"phone":"+9198123{:05}","to":"+9198123{:05}","kind":"text"}}"#, i % 1000, i % 5000, (i * 7) % 5000),
            2 => format!(r#"{{"type":"business_message","ts":1767607200000,"phone":"+9198123{:05}","business":"b{}","direction":"out"}}"#, i % 5000, i % 50),
            _ => format!(r#"{{"type":"register","ts":1767607200000,"phone":"+9198123{:05}","device":"d{i}","platform":"android"}}"#, i % 5000),
        })
        .collect()
}

fn edge_benches(c: &mut Criterion) {
    let edge = Edge::new(PseudonymKey::from_bytes([1; 32]), Region(*b"US"));
    let input = lines(20_000);
    // Warm the phone cache: steady state, where numbers repeat.
    for line in &input {
        let _ = edge.accept_line(line.as_bytes());
    }
    let mut group = c.benchmark_group("edge");
    group.throughput(Throughput::Elements(input.len() as u64));
    // edge/accept_line_warm: parse, validate, pseudonymise 20k mixed lines with a warm cache.
    group.bench_function("accept_line_warm", |b| {
        b.iter(|| {
            for line in &input {
                let _ = std::hint::black_box(edge.accept_line(line.as_bytes()));
            }
        })
    });
    group.finish();
}

fn log_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("log");
    let payload = [7u8; 100];
    let mut framed = Vec::new();
    for _ in 0..10_000 {
        frame(&payload, &mut framed);
    }
    group.throughput(Throughput::Elements(10_000));
    // log/append_10k_fsync: one group commit of 10k 100-byte records.
    group.bench_function("append_10k_fsync", |b| {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(temp.path(), DEFAULT_SEGMENT_BYTES).expect("log");
        b.iter(|| log.append_framed(&framed, 10_000).expect("append"))
    });
    group.finish();
}

fn state_benches(c: &mut Criterion) {
    let edge = Edge::new(PseudonymKey::from_bytes([1; 32]), Region(*b"US"));
    let events: Vec<_> = lines(20_000).iter().filter_map(|l| edge.accept_line(l.as_bytes()).ok()).collect();
    let mut group = c.benchmark_group("state");
    group.throughput(Throughput::Elements(events.len() as u64));
    // state/apply_20k: apply 20k events to a fresh state (subjects, bitmaps).
    group.bench_function("apply_20k", |b| {
        b.iter_batched(
            State::default,
            |mut state| {
                for (seq, event) in events.iter().enumerate() {
                    state.apply_event(seq as u64, event);
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    let mut state = State::default();
    for (seq, event) in events.iter().enumerate() {
        state.apply_event(seq as u64, event);
    }
    let policy = Policy::default_policy();
    let subjects = state.subjects.len() as u32;
    group.throughput(Throughput::Elements(u64::from(subjects)));
    // state/gate_allow_ads: one ads decision per known subject.
    group.bench_function("gate_allow_ads", |b| {
        b.iter(|| {
            for subject in 0..subjects {
                std::hint::black_box(proviso::gate::allow(&state, &policy, subject, Purpose::Ads, 1_767_607_200_000));
            }
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .measurement_time(Duration::from_secs(3))
        .noise_threshold(0.05)
        .significance_level(0.05)
}

criterion_group!(name = benches; config = config(); targets = edge_benches, log_benches, state_benches);
criterion_main!(benches);
