//! `proviso ingest`: bulk load through the same edge and log as the server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::contract::KeyedAnswer;
use proviso::log::fsmode;
use proviso::pipeline::{Committed, Pipeline, Prepared, Rejection};

/// Load NDJSON events into a data dir.
///
/// Every line goes through the privacy edge; valid lines are logged durably
/// (fsync) and applied, invalid ones are counted and reported by line number.
/// When the command returns, every accepted event survives a crash.
///
/// The input is cut into chunks, and each chunk is logged with an
/// idempotency key made of the input's name, the chunk's byte offset and a
/// hash of its bytes. After a crash or Ctrl-C, run the same command with
/// `--resume`: chunks already in the log are skipped (counted, not applied
/// again) and the rest is loaded. Keys are kept for the idempotency window
/// (24 h by default). An input whose first chunk is already in the log is
/// refused unless `--resume` (skip it) or `--again` (load it a second time).
///
/// Examples:
///   proviso ingest events.ndjson
///   proviso ingest events.ndjson --resume
///   proviso simulate --events 100000 | proviso ingest - --rejects bad.ndjson
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct IngestCommand {
    /// NDJSON file to load, or `-` for stdin
    pub input: PathBuf,
    #[command(flatten)]
    pub options: OptArgs,
    /// Write every rejected line, unchanged, to this file, created with mode
    /// 0600 (it may hold the numbers or content that caused the rejection)
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Bytes per batch handed to the edge workers
    #[arg(long, default_value_t = 4 << 20, hide = true)]
    pub chunk_bytes: usize,
    /// Edge worker threads [default: available cores]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
    /// Skip the chunks of this input already in the log (a run that crashed
    /// or was stopped); load the rest
    #[arg(long, conflicts_with = "again")]
    pub resume: bool,
    /// Load the input even though it was loaded before (its events count
    /// twice)
    #[arg(long)]
    pub again: bool,
}

/// A piece of the input: whole lines, and the number of its first line.
struct Chunk {
    /// Position in the file, for submitting in order.
    index: u64,
    /// Byte offset of the chunk in the input.
    offset: u64,
    first_line: usize,
    bytes: Vec<u8>,
}

/// One rejected line, from the edge now or from a skipped chunk's answer.
struct Rejected {
    line: usize,
    reason: String,
    error: String,
}

struct Done {
    accepted: u64,
    rejected: Vec<Rejected>,
    rejected_lines: Vec<Vec<u8>>,
    bytes: u64,
    /// The chunk was already in the log: answered, not applied again.
    skipped: bool,
    result: Result<(), String>,
}

/// The idempotency key of one chunk: what the input is called (`run` is
/// empty unless `--again`), where the chunk starts, and what it holds.
fn chunk_digest(input: &str, run: &str, chunk: &Chunk) -> [u8; 16] {
    let content = blake3::hash(&chunk.bytes);
    let key = format!("{input}\u{0}{run}\u{0}{}\u{0}{}", chunk.offset, content.to_hex());
    proviso::pipeline::idempotency_digest("proviso ingest", &key)
}

fn rejected_from_edge(rejections: Vec<Rejection>) -> Vec<Rejected> {
    rejections
        .into_iter()
        .map(|r| Rejected { line: r.line, reason: r.reason.as_str().to_string(), error: r.error })
        .collect()
}

fn rejected_from_answer(answer: &KeyedAnswer) -> Vec<Rejected> {
    answer
        .rejected
        .iter()
        .map(|r| Rejected {
            line: usize::try_from(r.line).unwrap_or(usize::MAX),
            reason: r.reason.clone(),
            error: r.error.clone(),
        })
        .collect()
}

#[derive(serde::Serialize)]
struct Summary {
    accepted: u64,
    rejected: u64,
    /// Chunks already in the log (`--resume`), and the events they held.
    skipped_chunks: u64,
    skipped_events: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    first_errors: Vec<String>,
    seconds: f64,
    events_per_second: f64,
}

/// Creates (or truncates) the `--rejects` file owner-only (0600): rejected
/// lines may hold the very numbers or content that got them rejected.
fn create_rejects_file(path: &Path) -> anyhow::Result<std::fs::File> {
    let file = fsmode::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    fsmode::restrict(path).with_context(|| format!("making {} private", path.display()))?;
    Ok(file)
}

/// A chunk through the edge (or found already in the log), waiting for its
/// turn to go to the writer.
enum Parsed {
    Ready {
        prepared: Prepared,
        done: Done,
    },
    /// `--resume`: already in the log; only its answer is reported.
    Skipped(Done),
}

/// Parsed chunks waiting for the ones before them, by chunk index.
#[derive(Default)]
struct Reorder {
    /// The index of the chunk to hand over next.
    next: u64,
    waiting: BTreeMap<u64, Parsed>,
}

impl Reorder {
    /// The chunk due next, once it is parsed.
    fn take_next(&mut self) -> Option<Parsed> {
        let parsed = self.waiting.remove(&self.next)?;
        self.next += 1;
        Some(parsed)
    }
}

/// Chunks each edge worker may have handed to the writer and not yet seen
/// acknowledged. The writer's queue holds 256 batches (right for HTTP's small
/// ones); 256 chunks of 4 MiB would let the edge run a gigabyte ahead of the
/// writer on two cores, paying for fresh pages and evicting the writer's
/// tables from the cache, for no gain: both share the same cores.
const CHUNKS_IN_FLIGHT_PER_WORKER: usize = 2;

/// How many chunks are with the writer; [`InFlight::take`] waits for room.
struct InFlight {
    count: std::sync::Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
    limit: usize,
}

/// One chunk's place with the writer, given back when dropped.
struct InFlightSlot(std::sync::Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>);

impl InFlight {
    fn new(limit: usize) -> InFlight {
        InFlight { count: Default::default(), limit: limit.max(1) }
    }

    fn take(&self) -> InFlightSlot {
        let (count, freed) = &*self.count;
        let mut count = count.lock().unwrap_or_else(|p| p.into_inner());
        while *count >= self.limit {
            count = freed.wait(count).unwrap_or_else(|p| p.into_inner());
        }
        *count += 1;
        InFlightSlot(std::sync::Arc::clone(&self.count))
    }
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        let (count, freed) = &*self.0;
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        freed.notify_one();
    }
}

pub fn run(command: IngestCommand) -> anyhow::Result<()> {
    let config = super::resolve_config(&command.options)?;
    let (input, total_bytes): (Box<dyn Read + Send>, Option<u64>) = if command.input.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file =
            std::fs::File::open(&command.input).with_context(|| format!("opening {}", command.input.display()))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    let mut rejects_file = match &command.rejects {
        Some(path) => Some(std::io::BufWriter::new(create_rejects_file(path)?)),
        None => None,
    };
    let keep_rejected_lines = rejects_file.is_some();
    let pipeline = Pipeline::open(config.pipeline_options())
        .with_context(|| format!("opening data dir {}", config.data_dir.display()))?;
    pipeline.refuse_cluster_copy()?;

    let progress = super::progress_bar(total_bytes, "ingesting");
    let started = Instant::now();
    let workers = command.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
    let (chunk_sender, chunk_receiver) = mpsc::sync_channel::<Chunk>(workers * 2);
    let chunk_receiver = std::sync::Mutex::new(chunk_receiver);
    let (done_sender, done_receiver) = mpsc::channel::<Done>();

    let mut summary = Summary {
        accepted: 0,
        rejected: 0,
        skipped_chunks: 0,
        skipped_events: 0,
        rejected_by_reason: BTreeMap::new(),
        first_errors: Vec::new(),
        seconds: 0.0,
        events_per_second: 0.0,
    };
    let mut failure: Option<String> = None;
    let mut all_rejections: Vec<(Rejected, Vec<u8>)> = Vec::new();
    let input_name = if command.input.as_os_str() == "-" {
        "-".to_string()
    } else {
        std::fs::canonicalize(&command.input).unwrap_or_else(|_| command.input.clone()).display().to_string()
    };
    // `--again`: a run name no earlier run had, so no chunk matches one.
    let run = if command.again {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("again-{}-{nanos}", std::process::id())
    } else {
        String::new()
    };
    let (resume, input_name, run) = (command.resume, &input_name, &run);

    // Chunks are parsed in parallel but handed to the log in file order, so
    // the log (and every "latest wins" state: address books, links,
    // consent at equal times) follows the file, whatever the scheduling. A
    // worker that finishes a chunk before the one ahead of it leaves it in
    // `reorder` and parses the next instead of waiting; whoever completes
    // the chunk due next hands over every chunk ready in order.
    let reorder = (std::sync::Mutex::new(Reorder::default()), std::sync::Condvar::new());
    let in_flight = InFlight::new(workers * CHUNKS_IN_FLIGHT_PER_WORKER);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..workers {
            let reorder = &reorder;
            let in_flight = &in_flight;
            let receiver = &chunk_receiver;
            let pipeline = &pipeline;
            let done_sender = done_sender.clone();
            scope.spawn(move || loop {
                let chunk = match receiver.lock().map(|r| r.recv()) {
                    Ok(Ok(chunk)) => chunk,
                    _ => return,
                };
                let digest = chunk_digest(input_name, run, &chunk);
                let bytes = chunk.bytes.len() as u64;
                let skip = if resume { pipeline.recent_answer(&digest) } else { None };
                let work = match skip {
                    Some(answer) => {
                        let rejected = rejected_from_answer(&answer);
                        let rejected_lines = if keep_rejected_lines { lines_of(&chunk, &rejected) } else { Vec::new() };
                        Parsed::Skipped(Done {
                            accepted: answer.accepted,
                            rejected,
                            rejected_lines,
                            bytes,
                            skipped: true,
                            result: Ok(()),
                        })
                    }
                    None => {
                        let mut prepared = Prepared::default();
                        proviso::pipeline::prepare_lines(
                            pipeline.edge(),
                            &chunk.bytes,
                            chunk.first_line,
                            &mut prepared,
                            proviso::edge::Source::Service,
                        );
                        let accepted = prepared.accepted() as u64;
                        prepared.keyed(digest, None, pipeline.clock().now_ms());
                        let rejected = rejected_from_edge(std::mem::take(&mut prepared.rejected));
                        let rejected_lines = if keep_rejected_lines { lines_of(&chunk, &rejected) } else { Vec::new() };
                        Parsed::Ready {
                            prepared,
                            done: Done { accepted, rejected, rejected_lines, bytes, skipped: false, result: Ok(()) },
                        }
                    }
                };
                let index = chunk.index;
                drop(chunk);
                let (order, moved) = reorder;
                let mut order = order.lock().unwrap_or_else(|p| p.into_inner());
                // A worker far ahead of a slow chunk waits rather than pile
                // up parsed chunks.
                while order.waiting.len() >= workers * 2 && order.next != index {
                    order = moved.wait(order).unwrap_or_else(|p| p.into_inner());
                }
                order.waiting.insert(index, work);
                while let Some(work) = order.take_next() {
                    match work {
                        Parsed::Skipped(done) => {
                            let _ = done_sender.send(done);
                        }
                        Parsed::Ready { prepared, done } => {
                            let slot = in_flight.take();
                            let done_sender = done_sender.clone();
                            pipeline.submit_keyed(prepared, move |result| {
                                drop(slot);
                                let done = match result {
                                    Ok(Committed::Applied { .. }) => done,
                                    Ok(Committed::Replayed(answer)) => Done {
                                        accepted: answer.accepted,
                                        rejected: rejected_from_answer(&answer),
                                        skipped: true,
                                        ..done
                                    },
                                    Err(error) => Done { result: Err(error.to_string()), ..done },
                                };
                                let _ = done_sender.send(done);
                            });
                        }
                    }
                }
                moved.notify_all();
            });
        }
        drop(done_sender);

        // Reader: cut the input into chunks of whole lines. Refuses an input
        // whose first chunk is already in the log, unless told what to do.
        let pipeline = &pipeline;
        let reader_result = scope.spawn(move || -> anyhow::Result<()> {
            let mut reader = BufReader::with_capacity(1 << 20, input);
            let mut next_line = 1usize;
            let mut index = 0u64;
            let mut offset = 0u64;
            loop {
                let mut bytes = Vec::with_capacity(command.chunk_bytes + 4096);
                while bytes.len() < command.chunk_bytes {
                    if reader.read_until(b'\n', &mut bytes)? == 0 {
                        break;
                    }
                }
                if bytes.is_empty() {
                    return Ok(());
                }
                let lines = bytes.iter().filter(|b| **b == b'\n').count() + usize::from(bytes.last() != Some(&b'\n'));
                let chunk = Chunk { index, offset, first_line: next_line, bytes };
                if index == 0 && !resume && run.is_empty() {
                    if let Some(answer) = pipeline.recent_answer(&chunk_digest(input_name, run, &chunk)) {
                        anyhow::bail!(
                            "{input_name} was already ingested into this data dir (its first chunk, {} events, is in \
                             the log); nothing was loaded. Use --resume to load only what is not in the log yet, \
                             or --again to load it a second time.",
                            answer.accepted
                        );
                    }
                }
                index += 1;
                offset += chunk.bytes.len() as u64;
                next_line += lines;
                if chunk_sender.send(chunk).is_err() {
                    return Ok(());
                }
            }
        });

        for done in done_receiver.iter() {
            progress.inc(done.bytes);
            if let Err(error) = done.result {
                failure.get_or_insert(error);
                continue;
            }
            if done.skipped {
                summary.skipped_chunks += 1;
                summary.skipped_events += done.accepted;
            }
            summary.accepted += done.accepted;
            let mut lines = done.rejected_lines.into_iter();
            for rejection in done.rejected {
                let line = lines.next().unwrap_or_default();
                all_rejections.push((rejection, line));
            }
            progress.set_message(format!("{} accepted, {} rejected", summary.accepted, all_rejections.len()));
        }
        reader_result
            .join()
            .map_err(|_| anyhow::anyhow!("input reader thread panicked"))?
            .context("reading the input")?;
        Ok(())
    })?;
    pipeline.shutdown();
    progress.finish_and_clear();
    if let Some(error) = failure {
        anyhow::bail!("ingest failed, some batches were not stored: {error}");
    }

    all_rejections.sort_by_key(|(rejection, _)| rejection.line);
    for (rejection, line) in &all_rejections {
        *summary.rejected_by_reason.entry(rejection.reason.clone()).or_default() += 1;
        if summary.first_errors.len() < 10 {
            summary.first_errors.push(rejection.error.clone());
        }
        if let Some(file) = rejects_file.as_mut() {
            file.write_all(line).and_then(|_| file.write_all(b"\n")).context("writing rejects file")?;
        }
    }
    if let Some(mut file) = rejects_file {
        file.flush().context("writing rejects file")?;
    }
    summary.rejected = all_rejections.len() as u64;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.events_per_second = (summary.accepted + summary.rejected) as f64 / summary.seconds.max(1e-9);
    if command.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "accepted {} events, rejected {} lines in {:.2}s ({:.0} lines/s)",
            summary.accepted, summary.rejected, summary.seconds, summary.events_per_second
        );
        if summary.skipped_chunks > 0 {
            println!(
                "  resumed: {} chunks ({} events) were already in the log and were not applied again",
                summary.skipped_chunks, summary.skipped_events
            );
        }
        for (reason, count) in &summary.rejected_by_reason {
            println!("  rejected {reason}: {count}");
        }
        if !summary.first_errors.is_empty() {
            println!("first errors:");
            for error in &summary.first_errors {
                println!("  {error}");
            }
        }
    }
    Ok(())
}

/// The raw text of each rejected line of a chunk, in rejection order.
fn lines_of(chunk: &Chunk, rejected: &[Rejected]) -> Vec<Vec<u8>> {
    let lines: Vec<&[u8]> = chunk.bytes.split(|b| *b == b'\n').collect();
    rejected
        .iter()
        .map(|r| {
            lines
                .get(r.line - chunk.first_line)
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::InFlight;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_chunk_waits_for_room_with_the_writer_and_gets_it_when_one_is_acknowledged() {
        let in_flight = InFlight::new(2);
        let first = in_flight.take();
        let _second = in_flight.take();
        let third_taken = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _third = in_flight.take();
                third_taken.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(100));
            assert!(!third_taken.load(Ordering::SeqCst), "a third chunk went to the writer past the limit of two");
            drop(first);
        });
        assert!(third_taken.load(Ordering::SeqCst), "the third chunk never got the room the first gave back");
    }
}
