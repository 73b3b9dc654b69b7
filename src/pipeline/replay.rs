//! Reading the log back as records, in order, for everything that replays
//! it (opening, `proviso rebuild`, compaction's passes, `rules backtest`).
//!
//! Owns: decoding each record, and reporting progress every few thousand.
//! Never: applies a record or writes to the log.

use std::path::Path;

use super::PipelineError;
use crate::contract::decode_record;

/// What long work on the whole log (`proviso rebuild`, `proviso compact`)
/// reports as it goes: the step's name and the sequence number of the record
/// it reached, every [`PROGRESS_EVERY`] records and at the end. The library
/// draws nothing; the command line turns it into a bar.
pub type Progress<'a> = &'a dyn Fn(&'static str, u64);

/// Records between two progress reports.
pub const PROGRESS_EVERY: u64 = 8192;

/// Replays the decoded records of the log in `log_dir` from `from_seq`;
/// the first undecodable record fails the whole replay (after it ends).
pub fn replay_records(
    log_dir: &Path,
    from_seq: u64,
    on_record: impl FnMut(u64, crate::contract::Record),
) -> Result<(), PipelineError> {
    replay_records_reporting(log_dir, from_seq, ("", &|_, _| {}), on_record)
}

/// [`replay_records`], reporting as `step` every [`PROGRESS_EVERY`] records
/// and once at the end.
pub fn replay_records_reporting(
    log_dir: &Path,
    from_seq: u64,
    step: (&'static str, Progress<'_>),
    on_record: impl FnMut(u64, crate::contract::Record),
) -> Result<(), PipelineError> {
    replay_records_until(log_dir, from_seq, u64::MAX, step, on_record)
}

/// [`replay_records_reporting`] of the records before `until_seq` only
/// ([`crate::log::replay_until`]: a log being appended to).
pub fn replay_records_until(
    log_dir: &Path,
    from_seq: u64,
    until_seq: u64,
    (step, progress): (&'static str, Progress<'_>),
    mut on_record: impl FnMut(u64, crate::contract::Record),
) -> Result<(), PipelineError> {
    let mut decode_error = None;
    let mut last = None;
    crate::log::replay_until(log_dir, from_seq, until_seq, |seq, payload| {
        match decode_record(payload) {
            Ok(record) => on_record(seq, record),
            Err(source) => {
                decode_error.get_or_insert(PipelineError::Decode { seq, source });
            }
        }
        if seq.is_multiple_of(PROGRESS_EVERY) {
            progress(step, seq);
        }
        last = Some(seq);
        Ok(())
    })?;
    if let Some(seq) = last.filter(|seq| !seq.is_multiple_of(PROGRESS_EVERY)) {
        progress(step, seq);
    }
    match decode_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
