//! The wall clock: the one place proviso reads the time of day.
//!
//! Owns: `now_ms`, epoch milliseconds (UTC).
//! Never: decides anything by itself; callers that must be testable take a
//! `fn() -> i64` (see `Edge::with_clock`).

/// Current wall-clock time in epoch milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
