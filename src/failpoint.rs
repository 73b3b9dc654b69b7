//! Failpoints: named places on the write paths where a test can crash the
//! process, fail the disk, or hold the process still to kill it there.
//!
//! Owns: the list of stages ([`STAGES`]), reading `PROVISO_FAILPOINTS` once,
//! and acting on it. Debug builds only: in a release build every function
//! here is an empty inline that the optimiser removes, and the variable is
//! never read.
//! Never: changes what a stage does when no failpoint names it.
//!
//! `PROVISO_FAILPOINTS` is a `;`-separated list of `stage=action[@n]`:
//! - `exit`: write `failpoint STAGE: exit` to stderr and end the process at
//!   once (no destructors, no buffered writes flushed: what `kill -9` leaves);
//! - `torn`: on a stage that writes bytes, write the first half, then exit;
//! - `pause`: write `failpoint STAGE: pause` to stderr and wait forever, so a
//!   test can `kill -9` the process exactly there;
//! - `enospc`, `eio`: the stage fails with that error (the disk is full, or
//!   broken), every time from then on;
//! - `slow`: wait 300 ms at the stage, every time from then on (a node of a
//!   cluster that lags behind the others);
//! - `@n`: act from the n-th time the stage is reached (1 = the first).

use std::io;

/// Every named stage, in data-path order. A test that crashes "at every
/// stage" iterates this list; a stage not listed here is a bug.
pub const STAGES: &[&str] = &[
    // Group commit: the group's bytes written, then fsynced, then applied.
    "log.write",
    "log.fsync",
    "writer.before_apply",
    "writer.before_ack",
    "writer.after_ack",
    // Snapshot: the temporary file written, then renamed over the old one.
    "snapshot.write",
    "snapshot.rename",
    // Compaction after an erasure: the new log written (before the
    // rebuild on the compaction's thread, or the swap on the writer), then
    // between the two renames of the swap.
    "compact.rebuild",
    "compact.before_swap",
    "compact.mid_swap",
    "compact.after_swap",
    // A rules reload: before its control record is committed, and after.
    "rules.before_commit",
    "rules.after_commit",
    // The audit log: one disclosure's line written, then fsynced.
    "audit.write",
    "audit.fsync",
    // The vault: new secrets (or erasure tombstones) written and fsynced;
    // an erased handle's key listed for the audit scrub.
    "vault.write",
    "vault.scrub_owed",
    // A scrub of the audit log in place: its journal on disk, half of the
    // log's bytes rewritten.
    "audit.scrub_in_place",
    // A partner feed: records written, then fsynced.
    "feed.write",
    "feed.fsync",
    // A refusal or erasure: logged, and between its retractions.
    "consent.before_retractions",
    "consent.mid_retractions",
];

/// Stages of cluster mode only (an embedded server never reaches them, so
/// the crash test over [`STAGES`] leaves them out; the cluster tests arm them).
pub const CLUSTER_STAGES: &[&str] = &[
    // A part of a batch over one message sent to JetStream, before the next
    // (the batch is not committed yet).
    "cluster.batch_part",
    // A message of the cluster's log read, before this node hands it to its writer.
    "follower.apply",
    // A group applied and in the node's log, before its partner outputs are written.
    "outputs.write",
    // Its partner outputs written, before the outputs mark says so.
    "outputs.mark",
];

/// The variable that arms failpoints (debug builds only).
pub const VARIABLE: &str = "PROVISO_FAILPOINTS";

/// Exit status of a process ended by an `exit` or `torn` failpoint.
pub const EXIT_STATUS: i32 = 86;

/// Reached `stage`: crash, pause or fail as the environment says.
#[cfg(debug_assertions)]
pub fn check(stage: &'static str) -> io::Result<()> {
    match armed::act(stage) {
        Some(armed::Action::Enospc) => Err(io::Error::from_raw_os_error(28)),
        Some(armed::Action::Eio) => Err(io::Error::from_raw_os_error(5)),
        Some(armed::Action::Torn) => armed::exit(stage, "exit"),
        _ => Ok(()),
    }
}

/// Reached `stage` where only a crash or a pause makes sense (no I/O of
/// its own): error actions are ignored.
#[cfg(debug_assertions)]
pub fn reach(stage: &'static str) {
    if let Some(armed::Action::Torn) = armed::act(stage) {
        armed::exit(stage, "exit")
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn reach(_stage: &'static str) {}

/// Writes `bytes` to `out` at `stage`: a `torn` failpoint writes half of
/// them and exits; an error failpoint fails before writing anything.
#[cfg(debug_assertions)]
pub fn write_all(stage: &'static str, out: &mut impl io::Write, bytes: &[u8]) -> io::Result<()> {
    match armed::act(stage) {
        Some(armed::Action::Enospc) => Err(io::Error::from_raw_os_error(28)),
        Some(armed::Action::Eio) => Err(io::Error::from_raw_os_error(5)),
        Some(armed::Action::Torn) => {
            out.write_all(&bytes[..bytes.len() / 2])?;
            out.flush()?;
            armed::exit(stage, "torn")
        }
        _ => out.write_all(bytes),
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn check(_stage: &'static str) -> io::Result<()> {
    Ok(())
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn write_all(_stage: &'static str, out: &mut impl io::Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)
}

#[cfg(debug_assertions)]
mod armed {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(super) enum Action {
        Exit,
        Torn,
        Pause,
        Enospc,
        Eio,
        Slow,
    }

    struct Armed {
        action: Action,
        from: u64,
        reached: u64,
    }

    fn table() -> &'static Mutex<HashMap<&'static str, Armed>> {
        static TABLE: OnceLock<Mutex<HashMap<&'static str, Armed>>> = OnceLock::new();
        TABLE.get_or_init(|| Mutex::new(parse(&std::env::var(super::VARIABLE).unwrap_or_default())))
    }

    fn parse(spec: &str) -> HashMap<&'static str, Armed> {
        let mut table = HashMap::new();
        for item in spec.split(';').map(str::trim).filter(|item| !item.is_empty()) {
            let Some((name, rest)) = item.split_once('=') else {
                eprintln!("failpoint: ignoring {item:?} (expected stage=action)");
                continue;
            };
            let Some(stage) = super::STAGES.iter().chain(super::CLUSTER_STAGES).find(|stage| **stage == name.trim())
            else {
                eprintln!("failpoint: no stage named {name:?}; stages: {}", super::STAGES.join(", "));
                continue;
            };
            let (action, from) = match rest.split_once('@') {
                Some((action, from)) => (action, from.trim().parse().unwrap_or(1)),
                None => (rest, 1),
            };
            let action = match action.trim() {
                "exit" => Action::Exit,
                "torn" => Action::Torn,
                "pause" => Action::Pause,
                "enospc" => Action::Enospc,
                "eio" => Action::Eio,
                "slow" => Action::Slow,
                other => {
                    eprintln!("failpoint: unknown action {other:?} for {stage}");
                    continue;
                }
            };
            table.insert(*stage, Armed { action, from, reached: 0 });
        }
        table
    }

    /// Counts the visit and returns the action due now, after doing the
    /// ones that never return (exit, pause).
    pub(super) fn act(stage: &'static str) -> Option<Action> {
        let action = {
            let mut table = table().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let armed = table.get_mut(stage)?;
            armed.reached += 1;
            (armed.reached >= armed.from).then_some(armed.action)?
        };
        match action {
            Action::Exit => exit(stage, "exit"),
            Action::Pause => {
                let _ = writeln!(std::io::stderr(), "failpoint {stage}: pause");
                loop {
                    std::thread::park();
                }
            }
            Action::Slow => {
                std::thread::sleep(std::time::Duration::from_millis(300));
                Some(Action::Slow)
            }
            other => Some(other),
        }
    }

    pub(super) fn exit(stage: &str, how: &str) -> ! {
        let _ = writeln!(std::io::stderr(), "failpoint {stage}: {how}");
        std::process::exit(super::EXIT_STATUS)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_stages_actions_and_counts_and_skips_the_rest() {
            let table = parse("log.fsync=exit@3; audit.write=enospc;nope=exit;feed.write=sing;x");
            assert_eq!(table.len(), 2);
            assert_eq!(table["log.fsync"].action, Action::Exit);
            assert_eq!(table["log.fsync"].from, 3);
            assert_eq!(table["audit.write"].action, Action::Enospc);
            assert_eq!(table["audit.write"].from, 1);
        }
    }
}
