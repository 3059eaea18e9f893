//! What an output directory holds: committed Parquet rows and dead letters, by corp, date and
//! msgtype, with the seq coverage (gaps and duplicates), and the findings by rule. Used by `inspect` and by the tests that
//! prove exactly-once delivery.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow_array::{Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::layout;

/// A failure to read an output directory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Filesystem error.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A Parquet file could not be read.
    #[error("reading {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The error.
        source: parquet::errors::ParquetError,
    },
}

/// The contents of an output directory.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Committed Parquet files.
    pub files: u64,
    /// Rows by `(corp_id, date)` partition (empty strings for a flat layout).
    pub by_partition: BTreeMap<(String, String), u64>,
    /// Rows by msgtype.
    pub by_msgtype: BTreeMap<String, u64>,
    /// Seqs of all rows, sorted (one entry per row: duplicates show up twice).
    pub seqs: Vec<u64>,
    /// Dead letters by error kind.
    pub dead_by_kind: BTreeMap<String, u64>,
    /// Seqs of dead letters that name one, sorted.
    pub dead_seqs: Vec<u64>,
    /// Dead letters without a seq (unparseable input).
    pub dead_without_seq: u64,
    /// Uncommitted temporaries lying around (a run is in progress, or crashed).
    pub temporaries: u64,
    /// Findings rows by `(rule_set_version, rule_id, severity)`.
    pub findings: BTreeMap<(String, String, String), u64>,
}

impl Inventory {
    /// Rows in total.
    pub fn rows(&self) -> u64 {
        self.seqs.len() as u64
    }

    /// Seqs that occur more than once across rows and dead letters.
    pub fn duplicate_seqs(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.seqs.iter().chain(&self.dead_seqs).copied().collect();
        all.sort_unstable();
        let mut dups: Vec<u64> = all
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        dups.dedup();
        dups
    }

    /// Ranges `(first, last)` of seqs missing between the lowest and highest seq seen in rows
    /// or dead letters. WeCom's seqs are per corp and need not be dense, so a gap is a hint to
    /// check, not proof of loss.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut all: Vec<u64> = self.seqs.iter().chain(&self.dead_seqs).copied().collect();
        all.sort_unstable();
        all.dedup();
        all.windows(2)
            .filter(|w| w[1] > w[0] + 1)
            .map(|w| (w[0] + 1, w[1] - 1))
            .collect()
    }
}

/// Reads every committed Parquet file of the messages table and every dead letter under the
/// output root `out` (both tables are optional: a run may not have written one yet).
pub fn scan(out: &Path) -> Result<Inventory, InventoryError> {
    let mut inv = scan_dirs(&[layout::messages_root(out), layout::dead_letters_root(out)])?;
    let findings = layout::findings_root(out);
    if findings.is_dir() {
        walk(&findings, &mut inv, Table::Findings)?;
    }
    Ok(inv)
}

/// Which table a walk reads.
#[derive(Clone, Copy)]
enum Table {
    Messages,
    Findings,
}

/// [`scan`] restricted to one corp's folders.
pub fn scan_corp(out: &Path, corp_id: &str) -> Result<Inventory, InventoryError> {
    scan_dirs(&[
        layout::corp_messages(out, corp_id),
        layout::corp_dead_letters(out, corp_id),
    ])
}

fn scan_dirs(dirs: &[PathBuf]) -> Result<Inventory, InventoryError> {
    let mut inv = Inventory::default();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        walk(dir, &mut inv, Table::Messages)?;
    }
    inv.seqs.sort_unstable();
    inv.dead_seqs.sort_unstable();
    Ok(inv)
}

fn walk(dir: &Path, inv: &mut Inventory, table: Table) -> Result<(), InventoryError> {
    let io = |source| InventoryError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if layout::is_temporary(&name) {
            inv.temporaries += 1;
        } else if layout::is_hidden(&name) {
            // Readers skip these; so does the inventory.
        } else if e.file_type().map_err(io)?.is_dir() {
            walk(&path, inv, table)?;
        } else if name.ends_with(".parquet") {
            match table {
                Table::Messages => read_parquet(&path, inv)?,
                Table::Findings => read_findings(&path, inv)?,
            }
        } else if layout::is_dead_letter_file(&path) {
            read_dead_letters(&path, inv)?;
        }
    }
    Ok(())
}

fn read_parquet(path: &Path, inv: &mut Inventory) -> Result<(), InventoryError> {
    let pq = |source| InventoryError::Parquet {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| InventoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let schema = builder.parquet_schema();
    let wanted: Vec<usize> = ["seq", "msgtype"]
        .iter()
        .filter_map(|n| schema.columns().iter().position(|c| c.name() == *n))
        .collect();
    let mask = ProjectionMask::leaves(schema, wanted);
    let reader = builder.with_projection(mask).build().map_err(pq)?;
    inv.files += 1;
    let partition = layout::partition_of(path);
    for batch in reader {
        let batch = batch.map_err(|e| pq(e.into()))?;
        let seq = batch.column_by_name("seq");
        let msgtype = batch
            .column_by_name("msgtype")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        // Files of earlier releases (UInt64) are never here: commands refuse such trees until
        // `migrate` has rewritten them.
        if let Some(seq) = seq.and_then(|c| c.as_any().downcast_ref::<Int64Array>()) {
            inv.seqs.extend(seq.iter().flatten().map(|s| s as u64));
        }
        if let Some(t) = msgtype {
            for v in t.iter() {
                *inv.by_msgtype
                    .entry(v.unwrap_or("").to_owned())
                    .or_default() += 1;
            }
        }
        *inv.by_partition.entry(partition.clone()).or_default() += batch.num_rows() as u64;
    }
    Ok(())
}

fn read_findings(path: &Path, inv: &mut Inventory) -> Result<(), InventoryError> {
    let pq = |source| InventoryError::Parquet {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| InventoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let mask = ProjectionMask::columns(
        builder.parquet_schema(),
        ["rule_set_version", "rule_id", "severity"],
    );
    for batch in builder.with_projection(mask).build().map_err(pq)? {
        let batch = batch.map_err(|e| pq(e.into()))?;
        let col = |n: &str| {
            batch
                .column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
        };
        let (Some(version), Some(rule), Some(severity)) =
            (col("rule_set_version"), col("rule_id"), col("severity"))
        else {
            continue;
        };
        for i in 0..batch.num_rows() {
            let key = (
                version.value(i).to_owned(),
                rule.value(i).to_owned(),
                severity.value(i).to_owned(),
            );
            *inv.findings.entry(key).or_default() += 1;
        }
    }
    Ok(())
}

fn read_dead_letters(path: &Path, inv: &mut Inventory) -> Result<(), InventoryError> {
    let io = |source| InventoryError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let kind = v
            .get("error_kind")
            .and_then(|k| k.as_str())
            .unwrap_or("unreadable_dead_letter");
        *inv.dead_by_kind.entry(kind.to_owned()).or_default() += 1;
        match v.get("seq").and_then(|s| s.as_u64()) {
            Some(s) => inv.dead_seqs.push(s),
            None => inv.dead_without_seq += 1,
        }
    }
    Ok(())
}
