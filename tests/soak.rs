//! The soak, for two minutes (CI): `proviso soak` starts the real server,
//! measures its most events/s, then ingests at half of it while partners
//! read feeds and suggestions, a dashboard holds `/v1/live`, reviewers
//! decide and refusals and erasures arrive; it fails unless every
//! acknowledged event is counted (before and after a restart), no request
//! failed, and RSS and descriptors stay within tolerance after the warm-up
//! minute. The full run is `proviso soak --minutes 30` (docs/reliability.md).

mod common;

#[test]
fn a_two_minute_soak_loses_nothing_and_stays_flat() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("soak-data");
    let output = common::command()
        .args(["soak", "--minutes", "2", "--warmup-minutes", "1", "--calibrate-seconds", "5", "--people", "500"])
        // A quarter of the maximum leaves the shared CI cores some room; one
        // erasure compaction runs (at about a minute), so the totals are
        // checked across one.
        .args(["--fraction", "0.25", "--erasure-compaction-seconds", "60"])
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run proviso soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let server_log = std::fs::read_to_string(data.with_extension("server.log")).unwrap_or_default();
    // The table (shown with `cargo test --test soak -- --nocapture`).
    println!("{stdout}");
    assert!(output.status.success(), "soak failed:\n{stdout}\n{stderr}\nserver log:\n{server_log}");
    // One row per minute, and the verdict.
    let rows = stdout.lines().filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit())).count();
    assert!(rows >= 2, "{stdout}");
    assert!(stdout.contains("soak passed"), "{stdout}");
}
