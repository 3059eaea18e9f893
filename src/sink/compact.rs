//! Compaction: merges a partition's small Parquet files into files of about a target size,
//! rows sorted by seq, journaled like a commit.
//!
//! ```text
//! lock corp -> recover (roll journals forward, delete stray temporaries)
//!   per partition with >= 2 files below the target size:
//!     merge them by seq into fsynced temporaries            (crash: temporaries deleted)
//!     journal: new temporaries -> final names,
//!              old files -> .retired-<name>.tmp             (crash: rolled forward)
//!     publish the new files, retire the old ones, complete the journal (no checkpoint moves)
//!     delete the retired temporaries                        (crash: deleted as strays)
//! ```
//!
//! So after a crash at any point, the next start of `compact` or `pull` leaves every row
//! exactly once on disk. Between publishing the new files and retiring the old ones a reader
//! listing the folder may see both for an instant; plain Parquet has no way to swap several
//! files at once.
//!
//! Memory stays bounded by the writer's row group and one batch per open input: the inputs are
//! merged as sorted streams, each opened when the merge reaches its lowest seq and closed when
//! read, so the files of consecutive seq ranges that pulls write are read one at a time. Only an
//! input whose own rows are not in seq order (none that this tool writes) is read whole to sort
//! it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, Int64Array, RecordBatch};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use serde::Serialize;

use super::atomic::{AtomicFile, Prepared};
use super::layout;
use super::lock::{CorpLock, LockError};
use super::parquet::{unused_part_name, ParquetOptions};
use crate::model::schema::chat_schema;
use crate::state::{JournalExtras, Rename, Screened, StateError, StateStore};

/// The environment variable that makes `compact` abort at a named step (tests of crash
/// recovery): `written`, `journaled`, `published`, `retired-one`, `completed`.
pub const FAULT_ENV: &str = "WECOM_ARCHIVE_FAULT_COMPACT";

/// Rows per batch read from an input file.
const READ_BATCH_ROWS: usize = 8192;

/// What to compact and how.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// The size a compacted file aims at; files at least this large are left alone.
    pub target_file_bytes: u64,
    /// Only partitions of days before this one (`None`: every partition, including rows
    /// without `msgtime`).
    pub before: Option<jiff::civil::Date>,
    /// The Parquet writer's settings (the same as the pipeline's).
    pub parquet: ParquetOptions,
}

/// The default target size of a compacted file, in MiB.
pub const DEFAULT_TARGET_FILE_MB: u64 = 128;

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_file_bytes: DEFAULT_TARGET_FILE_MB << 20,
            before: None,
            parquet: ParquetOptions::default(),
        }
    }
}

/// What compaction did to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionCompaction {
    /// The corp.
    pub corp_id: String,
    /// The `date=` value.
    pub date: String,
    /// Committed Parquet files before.
    pub files_before: usize,
    /// Committed Parquet files after.
    pub files_after: usize,
    /// Rows merged (rows of the files that were rewritten).
    pub rows: u64,
    /// Bytes of the files that were rewritten.
    pub bytes_before: u64,
    /// Bytes of the files that replaced them.
    pub bytes_after: u64,
}

/// What compaction did to one corp.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactStats {
    /// The corp.
    pub corp_id: String,
    /// Partitions looked at.
    pub partitions_seen: usize,
    /// Partitions rewritten.
    pub partitions: Vec<PartitionCompaction>,
    /// Partitions left alone because a file in them is not of this release's schema (run
    /// `migrate`), with the reason.
    pub skipped: Vec<String>,
}

impl CompactStats {
    /// Files before and after, over every partition rewritten.
    pub fn files(&self) -> (usize, usize) {
        self.partitions
            .iter()
            .fold((0, 0), |(b, a), p| (b + p.files_before, a + p.files_after))
    }
}

/// Why a compaction failed; every variant names the corp or file.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Another process writes the corp.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Recovering an earlier crash failed.
    #[error("corp {corp_id}: recovering an interrupted commit: {source}")]
    Recover {
        /// The corp.
        corp_id: String,
        /// The error.
        source: super::recover::RecoverError,
    },
    /// A file or folder could not be read, written or renamed.
    #[error("compacting {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A Parquet file could not be read or written.
    #[error("compacting {}: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The error.
        source: parquet::errors::ParquetError,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CompactError + '_ {
    move |source| CompactError::Io {
        path: path.to_owned(),
        source,
    }
}

fn pq(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> CompactError + '_ {
    move |source| CompactError::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// The corps that have messages under the output root `out` (`corp_id=` folders), sorted.
pub fn corps_in(out: &Path) -> Result<Vec<String>, CompactError> {
    let root = layout::messages_root(out);
    let mut corps = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(corps);
    };
    for e in entries {
        let e = e.map_err(io(&root))?;
        if e.file_type().map_err(io(&root))?.is_dir() {
            let (corp, _) = layout::partition_of(Path::new(&e.file_name()));
            if !corp.is_empty() && layout::check_corp_id(&corp).is_ok() {
                corps.push(corp);
            }
        }
    }
    corps.sort();
    Ok(corps)
}

/// Compacts `corp_id`'s partitions under the output root `out`, with the state database at
/// `state_path` (created if missing). Takes the corp's writer lock for the whole run and first
/// finishes whatever a crashed pull or compaction left half done. `on_partition` sees each
/// partition as it is rewritten.
pub fn compact_corp(
    out: &Path,
    state_path: &Path,
    corp_id: &str,
    options: &CompactOptions,
    on_partition: &dyn Fn(&PartitionCompaction),
) -> Result<CompactStats, CompactError> {
    let _lock = CorpLock::acquire(out, corp_id)?;
    let mut store = StateStore::open(state_path)?;
    let corp_dir = layout::corp_messages(out, corp_id);
    super::recover::recover(
        &mut store,
        corp_id,
        &[corp_dir.clone(), layout::corp_dead_letters(out, corp_id)],
    )
    .map_err(|e| CompactError::Recover {
        corp_id: corp_id.to_owned(),
        source: e,
    })?;
    let mut stats = CompactStats {
        corp_id: corp_id.to_owned(),
        ..CompactStats::default()
    };
    for (date, dir) in partitions(&corp_dir, options.before)? {
        stats.partitions_seen += 1;
        match compact_partition(&mut store, corp_id, &corp_dir, &date, &dir, options)? {
            Done::Rewritten(p) => {
                on_partition(&p);
                stats.partitions.push(p);
            }
            Done::Skipped(why) => {
                tracing::warn!(corp_id, date, "{why}");
                stats.skipped.push(why);
            }
            Done::Nothing => {}
        }
    }
    Ok(stats)
}

/// The `date=` folders of a corp (value, path), sorted, restricted to days before `before`.
fn partitions(
    corp_dir: &Path,
    before: Option<jiff::civil::Date>,
) -> Result<Vec<(String, PathBuf)>, CompactError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(corp_dir) else {
        return Ok(out);
    };
    for e in entries {
        let e = e.map_err(io(corp_dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if layout::is_hidden(&name) || !e.file_type().map_err(io(corp_dir))?.is_dir() {
            continue;
        }
        let (_, date) = layout::partition_of(Path::new(&name));
        if date.is_empty() {
            continue;
        }
        // A day is closed once `before` is past it; rows without `msgtime` never close.
        let wanted = match before {
            None => true,
            Some(b) => layout::partition_day(&date).is_some_and(|d| d < b),
        };
        if wanted {
            out.push((date, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

enum Done {
    Nothing,
    Rewritten(PartitionCompaction),
    Skipped(String),
}

/// One input file, as the pre-pass over its `seq` column found it.
struct InputFile {
    path: PathBuf,
    bytes: u64,
    rows: u64,
    /// Its lowest seq (`i64::MAX` when empty).
    first: i64,
    /// Its rows are in seq order (every file this tool writes).
    sorted: bool,
}

fn compact_partition(
    store: &mut StateStore,
    corp_id: &str,
    corp_dir: &Path,
    date: &str,
    dir: &Path,
    options: &CompactOptions,
) -> Result<Done, CompactError> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if layout::is_part_file(&name) && e.file_type().map_err(io(dir))?.is_file() {
            let bytes = e.metadata().map_err(io(dir))?.len();
            names.push((name, bytes));
        }
    }
    names.sort();
    let files_before = names.len();
    // Files already about the target size stay as they are: compacting a day again after a
    // late file arrived rewrites only the small ones.
    let small: Vec<_> = names
        .into_iter()
        .filter(|(_, bytes)| *bytes < options.target_file_bytes)
        .collect();
    if small.len() < 2 {
        return Ok(Done::Nothing);
    }
    let mut inputs = Vec::with_capacity(small.len());
    for (name, bytes) in small {
        let path = dir.join(name);
        match survey(&path, bytes)? {
            Ok(input) => inputs.push(input),
            Err(why) => return Ok(Done::Skipped(why)),
        }
    }
    let rows: u64 = inputs.iter().map(|i| i.rows).sum();
    let bytes_before: u64 = inputs.iter().map(|i| i.bytes).sum();
    tracing::info!(
        corp_id,
        date,
        files = inputs.len(),
        rows,
        bytes = bytes_before,
        "compacting a partition"
    );
    let outputs = bytes_before
        .div_ceil(options.target_file_bytes.max(1))
        .max(1);
    let rows_per_output = rows.div_ceil(outputs).max(1);

    let written = merge(&inputs, dir, rows_per_output, options)?;
    fault("written");
    let bytes_after = written
        .iter()
        .map(|p| std::fs::metadata(&p.tmp).map(|m| m.len()).unwrap_or(0))
        .sum();
    let retired: Vec<Rename> = inputs
        .iter()
        .map(|i| Rename {
            dest: layout::retired(&i.path),
            tmp: i.path.clone(),
        })
        .collect();
    let mut renames: Vec<Rename> = written
        .iter()
        .map(|p| Rename {
            tmp: p.tmp.clone(),
            dest: p.dest.clone(),
        })
        .collect();
    renames.extend(retired.iter().cloned());
    let extras = JournalExtras {
        screened: screened_by_all(store, corp_id, corp_dir, &inputs, &written)?,
        ..JournalExtras::default()
    };
    let journal = store.journal_maintenance(corp_id, &renames, &extras)?;
    fault("journaled");
    for (i, r) in renames.iter().enumerate() {
        super::atomic::publish(&r.tmp, &r.dest).map_err(io(&r.dest))?;
        if i + 1 == written.len() {
            fault("published");
        } else if i == written.len() {
            fault("retired-one");
        }
    }
    store.complete_commit(journal)?;
    fault("completed");
    for r in &retired {
        let _ = std::fs::remove_file(&r.dest);
    }
    mark_scanned(store, corp_id, corp_dir, &inputs, &written)?;
    let p = PartitionCompaction {
        corp_id: corp_id.to_owned(),
        date: date.to_owned(),
        files_before,
        files_after: files_before - inputs.len() + written.len(),
        rows,
        bytes_before,
        bytes_after,
    };
    tracing::debug!(
        corp_id,
        date,
        files_before = p.files_before,
        files_after = p.files_after,
        rows,
        "compacted a partition"
    );
    Ok(Done::Rewritten(p))
}

/// The media scan reads each Parquet file once (`media_scanned`): a merged file whose inputs
/// were all read holds no reference it has not seen, so it is marked read too.
fn mark_scanned(
    store: &StateStore,
    corp_id: &str,
    corp_dir: &Path,
    inputs: &[InputFile],
    written: &[Prepared],
) -> Result<(), CompactError> {
    let rel = |p: &Path| {
        p.strip_prefix(corp_dir)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let scanned = store.media_scanned_files(corp_id)?;
    if inputs.iter().all(|i| scanned.contains(&rel(&i.path))) {
        for w in written {
            store.mark_media_scanned(corp_id, &rel(&w.dest))?;
        }
    }
    Ok(())
}

/// A merged file holds the rows of its inputs, so it is screened by every rule-set version that
/// screened all of them (and `scan` under such a version skips it, as it skipped the inputs).
fn screened_by_all(
    store: &StateStore,
    corp_id: &str,
    corp_dir: &Path,
    inputs: &[InputFile],
    written: &[Prepared],
) -> Result<Vec<Screened>, CompactError> {
    let rel = |p: &Path| {
        p.strip_prefix(corp_dir)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let marks = store.screened_versions(corp_id)?;
    let none = Default::default();
    let mut common: Option<std::collections::HashSet<String>> = None;
    for i in inputs {
        let versions = marks.get(&rel(&i.path)).unwrap_or(&none);
        common = Some(match common {
            None => versions.clone(),
            Some(c) => c.intersection(versions).cloned().collect(),
        });
    }
    let mut out = Vec::new();
    for version in common.unwrap_or_default() {
        for w in written {
            out.push(Screened {
                rule_set_version: version.clone(),
                file: rel(&w.dest),
            });
        }
    }
    Ok(out)
}

/// Aborts the process when [`FAULT_ENV`] names `step`: a crash at a known point, for tests.
fn fault(step: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == step) {
        eprintln!("{FAULT_ENV}={step}: aborting");
        std::process::abort();
    }
}

/// Reads `path`'s `seq` column: rows, and whether they are in seq order. `Ok(Err(why))` when
/// the file is not of this release's schema.
fn survey(path: &Path, bytes: u64) -> Result<Result<InputFile, String>, CompactError> {
    let builder = open(path)?;
    if builder.schema().fields() != chat_schema().fields() {
        return Ok(Err(format!(
            "{} is not in this release's schema; run `wecom-archive migrate` on the output \
             first (partition left as it is)",
            path.display()
        )));
    }
    let parquet_schema = builder.parquet_schema();
    let seq = parquet_schema
        .columns()
        .iter()
        .position(|c| c.name() == "seq")
        .expect("chat_schema has seq");
    let mask = ProjectionMask::leaves(parquet_schema, [seq]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(pq(path))?;
    let (mut rows, mut sorted, mut last, mut first) = (0u64, true, i64::MIN, i64::MAX);
    for batch in reader {
        let batch = batch.map_err(|e| pq(path)(e.into()))?;
        for s in seqs(&batch).values() {
            sorted &= *s >= last;
            first = first.min(*s);
            last = *s;
        }
        rows += batch.num_rows() as u64;
    }
    Ok(Ok(InputFile {
        path: path.to_owned(),
        bytes,
        rows,
        first,
        sorted,
    }))
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, CompactError> {
    let file = File::open(path).map_err(io(path))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq(path))
}

fn seqs(batch: &RecordBatch) -> &Int64Array {
    batch
        .column_by_name("seq")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .expect("the schema was checked: seq is Int64")
}

/// One input as a stream of rows in seq order.
enum Stream {
    /// A sorted file, read batch by batch.
    Reading {
        reader: ParquetRecordBatchReader,
        path: PathBuf,
        batch: Option<RecordBatch>,
        batch_id: u64,
        row: usize,
    },
    /// An unsorted file, read whole: `order` lists (batch, row) by seq.
    Sorted {
        batches: Vec<RecordBatch>,
        order: Vec<(usize, usize)>,
        next: usize,
    },
}

/// The row a stream is at: its batch, a number that identifies the batch, its row, its seq.
struct Head<'a> {
    batch: &'a RecordBatch,
    batch_id: u64,
    row: usize,
    seq: i64,
}

impl Stream {
    fn open(input: &InputFile) -> Result<Self, CompactError> {
        let path = &input.path;
        let reader = open(path)?
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(pq(path))?;
        if input.sorted {
            let mut s = Stream::Reading {
                reader,
                path: path.clone(),
                batch: None,
                batch_id: 0,
                row: 0,
            };
            s.refill()?;
            return Ok(s);
        }
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pq(path)(e.into()))?;
        let mut order: Vec<(usize, usize)> = batches
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
            .collect();
        order.sort_by_key(|&(b, r)| seqs(&batches[b]).value(r));
        Ok(Stream::Sorted {
            batches,
            order,
            next: 0,
        })
    }

    /// Moves past exhausted batches of a reading stream.
    fn refill(&mut self) -> Result<(), CompactError> {
        if let Stream::Reading {
            reader,
            path,
            batch,
            batch_id,
            row,
        } = self
        {
            while batch.as_ref().is_none_or(|b| *row >= b.num_rows()) {
                match reader.next() {
                    Some(next) => {
                        *batch = Some(next.map_err(|e| pq(path)(e.into()))?);
                        *batch_id += 1;
                        *row = 0;
                    }
                    None => {
                        *batch = None;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn head(&self) -> Option<Head<'_>> {
        match self {
            Stream::Reading {
                batch: Some(batch),
                batch_id,
                row,
                ..
            } => Some(Head {
                batch,
                batch_id: *batch_id,
                row: *row,
                seq: seqs(batch).value(*row),
            }),
            Stream::Reading { batch: None, .. } => None,
            Stream::Sorted {
                batches,
                order,
                next,
            } => order.get(*next).map(|&(b, row)| Head {
                batch: &batches[b],
                batch_id: b as u64,
                row,
                seq: seqs(&batches[b]).value(row),
            }),
        }
    }

    fn advance(&mut self) -> Result<(), CompactError> {
        match self {
            Stream::Reading { row, .. } => *row += 1,
            Stream::Sorted { next, .. } => *next += 1,
        }
        self.refill()
    }
}

/// A run of consecutive rows of one batch, written with one slice.
struct Run {
    batch: RecordBatch,
    key: (usize, u64),
    start: usize,
    len: usize,
}

/// An output file being written.
struct Output {
    writer: ArrowWriter<AtomicFile>,
    rows: u64,
    first: i64,
    last: i64,
}

/// Merges `inputs` by seq into temporaries in `dir` of `rows_per_output` rows each; returns
/// them fsynced, with their final names (not yet taken by any file).
fn merge(
    inputs: &[InputFile],
    dir: &Path,
    rows_per_output: u64,
    options: &CompactOptions,
) -> Result<Vec<Prepared>, CompactError> {
    // Inputs are opened only when the merge reaches their lowest seq, and closed when read:
    // files of consecutive seq ranges (what pulls write) are then read one at a time, however
    // many there are.
    let mut unopened: Vec<usize> = (0..inputs.len()).collect();
    unopened.sort_by_key(|&i| Reverse((inputs[i].first, i)));
    let mut streams: Vec<Option<Stream>> = inputs.iter().map(|_| None).collect();
    // Min-heap of (seq, stream): ties keep the inputs' order, so the result is deterministic.
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut done = Vec::new();
    let mut output: Option<Output> = None;
    let mut run: Option<Run> = None;
    loop {
        while let Some(&next) = unopened.last() {
            if heap
                .peek()
                .is_some_and(|Reverse((seq, _))| inputs[next].first > *seq)
            {
                break;
            }
            unopened.pop();
            let stream = Stream::open(&inputs[next])?;
            if let Some(h) = stream.head() {
                heap.push(Reverse((h.seq, next)));
                streams[next] = Some(stream);
            }
        }
        let Some(Reverse((_, i))) = heap.pop() else {
            break;
        };
        let stream = streams[i].as_mut().expect("a stream in the heap is open");
        let head = stream.head().expect("a stream in the heap has a row");
        let key = (i, head.batch_id);
        let extends = run
            .as_ref()
            .is_some_and(|r| r.key == key && r.start + r.len == head.row);
        if !extends {
            if let Some(r) = run.take() {
                write_run(&mut output, r, dir, options)?;
            }
            run = Some(Run {
                batch: head.batch.clone(),
                key,
                start: head.row,
                len: 0,
            });
        }
        let seq = head.seq;
        run.as_mut().expect("set above").len += 1;
        let out = match &mut output {
            Some(o) => o,
            None => output.insert(new_output(dir, options, seq)?),
        };
        out.rows += 1;
        out.first = out.first.min(seq);
        out.last = out.last.max(seq);
        if out.rows >= rows_per_output {
            if let Some(r) = run.take() {
                write_run(&mut output, r, dir, options)?;
            }
            let full = output.take().expect("set above");
            done.push(finish(full, dir, &done)?);
        }
        let stream = streams[i].as_mut().expect("still open");
        stream.advance()?;
        match stream.head() {
            Some(h) => heap.push(Reverse((h.seq, i))),
            None => streams[i] = None,
        }
    }
    if let Some(r) = run.take() {
        write_run(&mut output, r, dir, options)?;
    }
    if let Some(o) = output.take() {
        done.push(finish(o, dir, &done)?);
    }
    Ok(done)
}

fn new_output(dir: &Path, options: &CompactOptions, seq: i64) -> Result<Output, CompactError> {
    let file = AtomicFile::create(dir, "part", "parquet").map_err(io(dir))?;
    let props = options.parquet.writer_properties().map_err(pq(dir))?;
    let writer = ArrowWriter::try_new(file, chat_schema(), Some(props)).map_err(pq(dir))?;
    Ok(Output {
        writer,
        rows: 0,
        first: seq,
        last: seq,
    })
}

fn write_run(
    output: &mut Option<Output>,
    run: Run,
    dir: &Path,
    options: &CompactOptions,
) -> Result<(), CompactError> {
    let slice = run.batch.slice(run.start, run.len);
    let out = match output {
        Some(o) => o,
        None => output.insert(new_output(dir, options, seqs(&slice).value(0))?),
    };
    out.writer.write(&slice).map_err(pq(dir))
}

fn finish(output: Output, dir: &Path, before: &[Prepared]) -> Result<Prepared, CompactError> {
    let file = output.writer.into_inner().map_err(pq(dir))?;
    let (first, last) = (output.first.max(0) as u64, output.last.max(0) as u64);
    // Taken by an input (a partition holding one seq range twice) or by an earlier output (one
    // seq repeated across the split).
    let name = unused_part_name(dir, first, last, file.token(), |p| {
        before.iter().any(|b| b.dest == p)
    });
    file.prepare(&name).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_before_a_day_leave_open_days_and_null_rows_alone() {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "date=2026-11-20",
            "date=2026-11-21",
            "date=__HIVE_DEFAULT_PARTITION__",
            ".hidden",
        ] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let all: Vec<_> = partitions(dir.path(), None)
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(
            all,
            ["2026-11-20", "2026-11-21", "__HIVE_DEFAULT_PARTITION__"]
        );
        let closed: Vec<_> = partitions(dir.path(), Some(jiff::civil::date(2026, 11, 21)))
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(closed, ["2026-11-20"]);
    }

    #[test]
    fn corps_are_found_by_their_folders() {
        let dir = tempfile::tempdir().unwrap();
        assert!(corps_in(dir.path()).unwrap().is_empty());
        for c in ["ww2", "ww1"] {
            std::fs::create_dir_all(layout::corp_messages(dir.path(), c)).unwrap();
        }
        std::fs::create_dir_all(layout::messages_root(dir.path()).join("stray")).unwrap();
        assert_eq!(corps_in(dir.path()).unwrap(), ["ww1", "ww2"]);
    }
}
