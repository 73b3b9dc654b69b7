//! What the bench commands measure the same way: latency summaries and a
//! process's CPU time.
//!
//! Owns: [`LatencySummary`] (percentiles in milliseconds from microsecond
//! samples), [`round3`], [`process_cpu_s`].
//! Never: runs a benchmark.

use serde::Serialize;

#[derive(Serialize)]
pub(super) struct LatencySummary {
    requests: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl LatencySummary {
    /// Milliseconds, from microsecond samples.
    pub(super) fn of(mut micros: Vec<u64>) -> Option<LatencySummary> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let at = |p: f64| {
            let index = ((micros.len() as f64 - 1.0) * p).round() as usize;
            round3(micros[index.min(micros.len() - 1)] as f64 / 1000.0)
        };
        let mean = micros.iter().sum::<u64>() as f64 / micros.len() as f64 / 1000.0;
        Some(LatencySummary {
            requests: micros.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
            mean: round3(mean),
        })
    }
}

pub(super) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// User+system CPU seconds of a process so far, from /proc/PID/stat
/// (fields 14 and 15, in clock ticks of 1/100 s: USER_HZ is 100 on Linux).
pub(super) fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
