//! `scan`: applies a rule set to what is already archived, writing its findings without moving
//! the pull checkpoint.
//!
//! Idempotent per rule-set version: each message file is screened once per version, and the
//! state records it (`findings_screened`) in the same transaction as the journal entry that
//! publishes the findings. The pipeline marks the files it writes under its own rule set, and
//! compaction carries the marks over, so a scan under the version a pull already used finds
//! nothing to do, and a scan run again after a crash does only what is left.
//!
//! Each partition (day) is one journaled step: its findings files are published and its message
//! files marked together.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;

use crate::compliance::findings::{findings_schema, screen, FindingsBatchBuilder};
use crate::compliance::rules::RuleSet;
use crate::model::message::parse;
use crate::sink::layout;
use crate::sink::lock::{CorpLock, LockError};
use crate::sink::parquet::{ParquetOptions, ParquetSink, SinkError};
use crate::sink::recover::{self, RecoverError};
use crate::state::{JournalExtras, Rename, Screened, StateError, StateStore};

/// Test hook: `WECOM_ARCHIVE_FAULT_SCAN=<step>` aborts the process at that step of the first
/// day scanned, as a crash would: `written` (findings fsynced, not journaled), `journaled`,
/// `published` (renamed, journal entry not completed).
pub const FAULT_ENV: &str = "WECOM_ARCHIVE_FAULT_SCAN";

fn fault(step: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == step) {
        eprintln!("{FAULT_ENV}: aborting at {step}");
        std::process::abort();
    }
}

/// Which days of a corp to scan (local dates of the `date=` partitions, inclusive).
#[derive(Debug, Clone, Default)]
pub struct ScanRange {
    /// First day; `None`: from the first.
    pub from: Option<jiff::civil::Date>,
    /// Last day; `None`: to the last.
    pub to: Option<jiff::civil::Date>,
}

impl ScanRange {
    /// Whether the partition folder `date=<day>` is in the range. Rows without a time
    /// (`__HIVE_DEFAULT_PARTITION__`) are scanned only without bounds.
    fn contains(&self, folder: &str) -> bool {
        let (_, date) = layout::partition_of(Path::new(folder));
        match layout::partition_day(&date) {
            Some(day) => self.from.is_none_or(|f| day >= f) && self.to.is_none_or(|t| day <= t),
            None => self.from.is_none() && self.to.is_none(),
        }
    }
}

/// What a scan of one corp did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    /// The corp.
    pub corp_id: String,
    /// The rule set's version.
    pub rule_set_version: String,
    /// Message files screened now.
    pub files_scanned: u64,
    /// Message files in range already screened by this version (skipped).
    pub files_already: u64,
    /// Messages read.
    pub messages: u64,
    /// Rows whose `raw_json` did not parse (not screened; named in the log).
    pub unparsed: u64,
    /// Findings rows written.
    pub findings: u64,
    /// Findings files written.
    pub findings_files: Vec<PathBuf>,
}

/// A failure that stops a scan (what was committed before it stays).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Another process writes this corp.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Finishing an interrupted step failed.
    #[error(transparent)]
    Recover(#[from] RecoverError),
    /// Writing findings failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A message file could not be read.
    #[error("reading {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Publishing a findings file failed.
    #[error("publishing {path}: {source}")]
    Publish {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Screens `corp_id`'s archived messages under `out` in `range` with `rules`, for the files not
/// yet screened by this rule-set version. Holds the corp's writer lock throughout.
pub fn scan_corp(
    out: &Path,
    store: &mut StateStore,
    corp_id: &str,
    rules: &Arc<RuleSet>,
    range: &ScanRange,
) -> Result<ScanStats, ScanError> {
    let _lock = CorpLock::acquire(out, corp_id)?;
    let messages = layout::corp_messages(out, corp_id);
    recover::recover(
        store,
        corp_id,
        &[
            messages.clone(),
            layout::corp_dead_letters(out, corp_id),
            layout::corp_findings(out, corp_id),
        ],
    )?;
    let version = rules.version().to_owned();
    let done = store.screened_files(corp_id, &version)?;
    let mut stats = ScanStats {
        corp_id: corp_id.to_owned(),
        rule_set_version: version.clone(),
        ..ScanStats::default()
    };
    let mut sink = ParquetSink::with_schema(
        &layout::findings_root(out),
        findings_schema(),
        ParquetOptions::default(),
    )?;
    for (date, dir) in partitions(&messages)? {
        if !range.contains(&date) {
            continue;
        }
        let partition = format!("{}/{date}", layout::corp_folder(corp_id));
        let mut screened = Vec::new();
        for file in part_files(&dir)? {
            let rel = format!(
                "{date}/{}",
                file.file_name().expect("a file").to_string_lossy()
            );
            if done.contains(&rel) {
                stats.files_already += 1;
                continue;
            }
            screen_file(&file, rules, &partition, &mut sink, &mut stats)?;
            stats.files_scanned += 1;
            screened.push(Screened {
                rule_set_version: version.clone(),
                file: rel,
            });
        }
        if screened.is_empty() {
            continue;
        }
        // One journaled step per day: its findings and its marks.
        let parts = sink.prepare()?;
        let renames: Vec<Rename> = parts
            .iter()
            .map(|p| Rename {
                tmp: p.file.tmp.clone(),
                dest: p.file.dest.clone(),
            })
            .collect();
        let extras = JournalExtras {
            screened,
            ..JournalExtras::default()
        };
        fault("written");
        let id = store.journal_maintenance(corp_id, &renames, &extras)?;
        fault("journaled");
        for r in &renames {
            crate::sink::atomic::publish(&r.tmp, &r.dest).map_err(|source| ScanError::Publish {
                path: r.dest.clone(),
                source,
            })?;
        }
        fault("published");
        store.complete_commit(id)?;
        for p in parts {
            stats.findings += p.part.rows;
            stats.findings_files.push(p.part.path);
        }
    }
    Ok(stats)
}

/// Screens one message file into `sink`'s `partition`.
fn screen_file(
    file: &Path,
    rules: &RuleSet,
    partition: &str,
    sink: &mut ParquetSink,
    stats: &mut ScanStats,
) -> Result<(), ScanError> {
    let read = |detail: String| ScanError::Read {
        path: file.to_owned(),
        detail,
    };
    let f = std::fs::File::open(file).map_err(|e| read(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| read(e.to_string()))?;
    let mask =
        parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), ["seq", "raw_json"]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(4096)
        .build()
        .map_err(|e| read(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| read(e.to_string()))?;
        let (seqs, raw) = columns(&batch).ok_or_else(|| {
            read("it has no Int64 `seq` and text `raw_json` columns: not a messages file".into())
        })?;
        // Parsing and matching on every core; the rows keep their order.
        let screened: Vec<_> = (0..batch.num_rows())
            .into_par_iter()
            .map(|i| {
                let seq = seqs.value(i);
                match parse(raw.value(i).as_bytes()) {
                    Ok(msg) => {
                        let found = screen(rules, &msg);
                        Ok((seq, msg, found))
                    }
                    Err(e) => Err((seq, e)),
                }
            })
            .collect();
        let mut out = FindingsBatchBuilder::default();
        let (mut first, mut last) = (u64::MAX, 0);
        for row in screened {
            stats.messages += 1;
            match row {
                Ok((seq, msg, found)) => {
                    if !found.is_empty() {
                        out.append(rules, seq as u64, &msg, &found);
                        first = first.min(seq as u64);
                        last = last.max(seq as u64);
                    }
                }
                Err((seq, e)) => {
                    stats.unparsed += 1;
                    tracing::warn!(file = %file.display(), seq, error = %e,
                        "raw_json does not parse; not screened");
                }
            }
        }
        if !out.is_empty() {
            sink.write_to(partition, &out.finish(), first, last)?;
        }
    }
    Ok(())
}

fn columns(batch: &RecordBatch) -> Option<(&Int64Array, &StringArray)> {
    let seq = batch.column_by_name("seq")?.as_any().downcast_ref()?;
    let raw = batch.column_by_name("raw_json")?.as_any().downcast_ref()?;
    Some((seq, raw))
}

fn io_read(path: &Path) -> impl Fn(std::io::Error) -> ScanError + '_ {
    move |e| ScanError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// The `date=` folders of a corp's messages, sorted: `(folder name, path)`.
fn partitions(messages: &Path) -> Result<Vec<(String, PathBuf)>, ScanError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(messages) else {
        return Ok(out);
    };
    for e in entries {
        let e = e.map_err(io_read(messages))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().map_err(io_read(messages))?.is_dir() && !layout::is_hidden(&name) {
            out.push((name, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The committed message files of a partition folder, sorted.
fn part_files(dir: &Path) -> Result<Vec<PathBuf>, ScanError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_read(dir))? {
        let e = e.map_err(io_read(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().map_err(io_read(dir))?.is_file() && layout::is_part_file(&name) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_selects_days_inclusively_and_the_null_day_only_unbounded() {
        let d = |s: &str| Some(s.parse().unwrap());
        let r = ScanRange {
            from: d("2026-11-02"),
            to: d("2026-11-03"),
        };
        assert!(!r.contains("date=2026-11-01"));
        assert!(r.contains("date=2026-11-02"));
        assert!(r.contains("date=2026-11-03"));
        assert!(!r.contains("date=2026-11-04"));
        assert!(!r.contains(&format!("date={}", layout::NULL_PARTITION)));
        assert!(ScanRange::default().contains(&format!("date={}", layout::NULL_PARTITION)));
    }
}
