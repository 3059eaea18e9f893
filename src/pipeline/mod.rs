//! Moves records from a source through the parallel decrypt to the sinks.
//!
//! ```text
//! reader thread ──chunks──▶ decrypt (rayon, order kept) ──chunks──▶ writer thread
//!   (parse input)     bounded      (unwrap, DecryptData, parse)    bounded   (Arrow, Parquet, dead letters)
//! ```
//!
//! The channels are bounded, so memory stays flat whatever the input size, and reading and
//! writing overlap with decryption. Output order is input order.

pub mod transform;

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::crypto::keyring::Keyring;
use crate::error::RecordError;
use crate::model::record::EncryptedRecord;
use crate::model::schema::ChatBatchBuilder;
use crate::sink::dead_letter::{DeadLetter, DeadLetterSink};
use crate::sink::parquet::{CommittedPart, ParquetOptions, ParquetSink, SinkError};
use crate::source::file::{InputError, Rejected};
use transform::{decode, Decoded};

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Records decrypted together (one rayon fan-out, one Arrow batch).
    pub chunk_records: usize,
    /// Chunks in flight between stages.
    pub queue_chunks: usize,
    /// Parquet settings.
    pub parquet: ParquetOptions,
    /// How often progress is reported.
    pub progress_every: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            chunk_records: 4096,
            queue_chunks: 4,
            parquet: ParquetOptions::default(),
            progress_every: Duration::from_secs(2),
        }
    }
}

/// Counts of a run, reported as progress and as the final summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// Input entries seen (records and malformed entries).
    pub records_in: u64,
    /// Rows written to Parquet.
    pub written: u64,
    /// Entries sent to the dead letters.
    pub dead_lettered: u64,
    /// Bytes of plaintext decrypted.
    pub plaintext_bytes: u64,
    /// Lowest and highest seq written.
    pub seq_range: Option<(u64, u64)>,
    /// Wall time so far.
    pub elapsed: Duration,
    /// Parquet files committed.
    pub files: Vec<CommittedPart>,
    /// Dead-letter files committed.
    pub dead_letter_files: Vec<std::path::PathBuf>,
}

impl RunStats {
    /// Input entries per second.
    pub fn msgs_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.records_in as f64 / s
        } else {
            0.0
        }
    }
}

/// A failure that stops the run (as opposed to a bad record, which is dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The input could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The Parquet output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The dead-letter output failed: stop rather than lose records.
    #[error("writing dead letters: {0}")]
    DeadLetter(std::io::Error),
}

type Item = Result<EncryptedRecord, Rejected>;

enum Outcome {
    Row(Decoded),
    Failed(EncryptedRecord, RecordError),
    Rejected(Rejected),
}

/// Runs records from `input` through the decrypt into `out_dir`, calling `progress` from time
/// to time. Everything written is committed (fsynced and renamed) before this returns `Ok`.
pub fn run<I>(
    input: I,
    keyring: &Keyring,
    out_dir: &Path,
    options: &RunOptions,
    progress: &(dyn Fn(&RunStats) + Sync),
) -> Result<RunStats, RunError>
where
    I: Iterator<Item = Result<Item, InputError>> + Send,
{
    let start = Instant::now();
    let sink = ParquetSink::new(out_dir, options.parquet.clone())?;
    let dead = DeadLetterSink::new(out_dir);
    let (raw_tx, raw_rx) = sync_channel::<Result<Vec<Item>, InputError>>(options.queue_chunks);
    let (done_tx, done_rx) = sync_channel::<Vec<Outcome>>(options.queue_chunks);
    let chunk = options.chunk_records.max(1);

    std::thread::scope(|s| {
        s.spawn(move || read_chunks(input, chunk, raw_tx));
        let writer = s.spawn(move || write_chunks(done_rx, sink, dead, start, options, progress));
        let mut input_error = None;
        for msg in raw_rx {
            match msg {
                Ok(items) => {
                    let outcomes = decrypt_chunk(keyring, items);
                    if done_tx.send(outcomes).is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    input_error = Some(e);
                    break;
                }
            }
        }
        drop(done_tx);
        let stats = writer.join().expect("writer thread panicked")?;
        match input_error {
            Some(e) => Err(e.into()),
            None => Ok(stats),
        }
    })
}

fn read_chunks<I>(input: I, chunk: usize, tx: SyncSender<Result<Vec<Item>, InputError>>)
where
    I: Iterator<Item = Result<Item, InputError>>,
{
    let mut buf = Vec::with_capacity(chunk);
    for item in input {
        match item {
            Ok(it) => {
                buf.push(it);
                if buf.len() == chunk
                    && tx
                        .send(Ok(std::mem::replace(&mut buf, Vec::with_capacity(chunk))))
                        .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Ok(std::mem::take(&mut buf)));
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
    if !buf.is_empty() {
        let _ = tx.send(Ok(buf));
    }
}

/// Decrypts a chunk on every core; `collect` on an indexed parallel iterator keeps order.
fn decrypt_chunk(keyring: &Keyring, items: Vec<Item>) -> Vec<Outcome> {
    items
        .into_par_iter()
        .map(|item| match item {
            Ok(rec) => match decode(keyring, &rec) {
                Ok(row) => Outcome::Row(row),
                Err(e) => Outcome::Failed(rec, e),
            },
            Err(rejected) => Outcome::Rejected(rejected),
        })
        .collect()
}

fn write_chunks(
    rx: Receiver<Vec<Outcome>>,
    mut sink: ParquetSink,
    mut dead: DeadLetterSink,
    start: Instant,
    options: &RunOptions,
    progress: &(dyn Fn(&RunStats) + Sync),
) -> Result<RunStats, RunError> {
    let mut stats = RunStats::default();
    let mut builder = ChatBatchBuilder::with_capacity(options.chunk_records);
    let mut last_report = Instant::now();
    for outcomes in rx {
        let mut range: Option<(u64, u64)> = None;
        for outcome in outcomes {
            stats.records_in += 1;
            match outcome {
                Outcome::Row(row) => {
                    builder.append(row.seq, row.publickey_ver, &row.plaintext, &row.message);
                    stats.plaintext_bytes += row.plaintext.len() as u64;
                    range = Some(range.map_or((row.seq, row.seq), |(a, b)| {
                        (a.min(row.seq), b.max(row.seq))
                    }));
                }
                Outcome::Failed(rec, err) => {
                    dead.push(&DeadLetter::new(&err, Some(&rec), None))
                        .map_err(RunError::DeadLetter)?;
                    stats.dead_lettered += 1;
                }
                Outcome::Rejected(r) => {
                    dead.push(&DeadLetter::new(&r.error, None, Some(&r.raw)))
                        .map_err(RunError::DeadLetter)?;
                    stats.dead_lettered += 1;
                }
            }
        }
        if let Some((first, last)) = range {
            let batch = builder.finish();
            stats.written += batch.num_rows() as u64;
            sink.write(&batch, first, last)?;
            stats.seq_range = Some(
                stats
                    .seq_range
                    .map_or((first, last), |(a, b)| (a.min(first), b.max(last))),
            );
        }
        if last_report.elapsed() >= options.progress_every {
            stats.elapsed = start.elapsed();
            progress(&stats);
            last_report = Instant::now();
        }
    }
    // Dead letters first: a record is never only in a file that might not be committed.
    dead.commit().map_err(RunError::DeadLetter)?;
    sink.commit()?;
    stats.files = sink.committed().to_vec();
    stats.dead_letter_files = dead.committed().to_vec();
    stats.elapsed = start.elapsed();
    Ok(stats)
}
