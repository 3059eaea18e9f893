//! Reading the tables back as a reader of their current version sees them: the live files of the
//! log, and their rows (`inspect`, and the tests' exactly-once checks).

use std::collections::HashMap;

use arrow_array::{Array, Int64Array, RecordBatch};
use bytes::Bytes;
use object_store::path::Path as StorePath;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::location::DeltaTarget;
use super::table::{self, TableKind};
use super::DeltaError;

/// Partition values of a file (null: the value is missing).
pub type PartitionValues = HashMap<String, Option<String>>;

/// A data file the table's current version references.
#[derive(Debug, Clone)]
pub struct LiveFile {
    /// Path relative to the table, as in the log (percent-encoded).
    pub path: String,
    /// Partition values.
    pub partition: PartitionValues,
    /// Bytes.
    pub size: i64,
}

/// What a table holds now: its version, live files, and each corp's transaction version.
#[derive(Debug, Clone, Default)]
pub struct TableView {
    /// The table's version (`None`: no table).
    pub version: Option<i64>,
    /// The live files.
    pub files: Vec<LiveFile>,
}

/// The current version of `kind` under `target` (empty when there is no such table).
pub fn view(target: &DeltaTarget, kind: TableKind) -> Result<TableView, DeltaError> {
    let Some(table) = table::load(target, kind)? else {
        return Ok(TableView::default());
    };
    let url = table.table_url().clone();
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::table(kind, &url, e))?;
    let files = state
        .log_data()
        .iter()
        .map(|f| {
            // The partition values as a map, which the Arrow view does not offer.
            #[allow(deprecated)]
            let add = f.add_action();
            LiveFile {
                path: add.path,
                partition: add.partition_values,
                size: add.size,
            }
        })
        .collect();
    Ok(TableView {
        version: table.version(),
        files,
    })
}

/// Reads every row of the live files of `kind`, with the partition values of its file.
pub fn read_rows(
    target: &DeltaTarget,
    kind: TableKind,
) -> Result<Vec<(PartitionValues, RecordBatch)>, DeltaError> {
    let view = view(target, kind)?;
    let mut out = Vec::new();
    for f in view.files {
        let fail = |e: String| DeltaError::Encode(kind.name(), format!("reading {}: {e}", f.path));
        let reader = ParquetRecordBatchReaderBuilder::try_new(read_file(target, kind, &f)?)
            .and_then(|b| b.build())
            .map_err(|e| fail(e.to_string()))?;
        for batch in reader {
            out.push((f.partition.clone(), batch.map_err(|e| fail(e.to_string()))?));
        }
    }
    Ok(out)
}

/// The bytes of one live file of `kind`.
pub fn read_file(target: &DeltaTarget, kind: TableKind, f: &LiveFile) -> Result<Bytes, DeltaError> {
    let base = target.table_url(kind.name());
    let prefix = base.path().trim_start_matches('/');
    let decoded = percent_encoding::percent_decode_str(&f.path).decode_utf8_lossy();
    let location = StorePath::parse(format!("{prefix}{decoded}"))
        .map_err(|e| DeltaError::Encode(kind.name(), format!("reading {}: {e}", f.path)))?;
    target
        .block_on(async { target.store().get(&location).await?.bytes().await })
        .map_err(|e| DeltaError::Store {
            action: "reading",
            path: format!("{base}{}", f.path),
            source: e,
        })
}

/// The `seq` of every row of `kind`, per corp (rows without a seq are left out).
pub fn seqs_by_corp(
    target: &DeltaTarget,
    kind: TableKind,
) -> Result<HashMap<String, Vec<u64>>, DeltaError> {
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for (partition, batch) in read_rows(target, kind)? {
        let corp = partition
            .get("corp_id")
            .cloned()
            .flatten()
            .unwrap_or_default();
        let Some(seqs) = batch
            .column_by_name("seq")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        else {
            continue;
        };
        let v = out.entry(corp).or_default();
        v.extend(
            (0..seqs.len())
                .filter(|&i| seqs.is_valid(i))
                .map(|i| seqs.value(i) as u64),
        );
    }
    Ok(out)
}
