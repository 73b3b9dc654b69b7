//! The clock: the one source of "now" in proviso.
//!
//! Owns: [`Clock`], handed to the pipeline at open and from there to the
//! edge (arrival times), the write path (control records), the disclosure
//! layer and the API, so every part of one process reads the same clock;
//! and [`now_ms`], the system clock, for the binary's own messages.
//! Never: decides anything by itself. A fixed clock exists for tests; a
//! release never picks one on its own.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Current wall-clock time in epoch milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Where a process reads the time: the system clock, or (tests) a fixed
/// instant that moves only when told. Cheap to clone; clones share the
/// instant.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock (what `proviso serve` uses).
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock stopped at `at_ms` until [`Clock::set`] moves it.
    pub fn fixed(at_ms: i64) -> Clock {
        Clock { fixed: Some(Arc::new(AtomicI64::new(at_ms))) }
    }

    /// Moves a fixed clock (and every clone of it) to `at_ms`; the system
    /// clock cannot be set, and is left alone.
    pub fn set(&self, at_ms: i64) {
        if let Some(fixed) = &self.fixed {
            fixed.store(at_ms, Ordering::SeqCst);
        }
    }

    /// Epoch milliseconds, now.
    pub fn now_ms(&self) -> i64 {
        match &self.fixed {
            Some(fixed) => fixed.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_set_and_clones_share_it() {
        let clock = Clock::fixed(1_000);
        let clone = clock.clone();
        assert_eq!(clone.now_ms(), 1_000);
        clock.set(2_000);
        assert_eq!(clone.now_ms(), 2_000);
        let system = Clock::system();
        system.set(5);
        assert!(system.now_ms() > 1_700_000_000_000, "the system clock is not settable");
    }
}
