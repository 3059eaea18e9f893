//! Maintenance of Delta tables: OPTIMIZE (bin-packing small files, `dataChange = false`) and
//! VACUUM (deleting files no commit references any more).
//!
//! Both are safe while a pull is writing. OPTIMIZE only removes files it read, and an append
//! never conflicts with that; its new files hold exactly the rows of the files it removes. VACUUM
//! deletes only files older than the retention period, so a file uploaded for a commit that is
//! still being made is left alone as long as the retention is longer than a commit takes.

use std::collections::BTreeMap;

use std::future::IntoFuture;

use bytes::Bytes;
use deltalake_core::kernel::{Action, Add};
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::DeltaOperation;
use object_store::path::Path as StorePath;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::location::DeltaTarget;
use super::staged::{upload, DataFile};
use super::table::{self, TableKind};
use super::DeltaError;

/// What OPTIMIZE did to one table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OptimizeReport {
    /// The table.
    pub table: &'static str,
    /// Files merged (removed with `dataChange = false`).
    pub files_removed: usize,
    /// Files written in their place.
    pub files_added: usize,
    /// Rows moved.
    pub rows: u64,
    /// The table version of the OPTIMIZE commit, if one was made.
    pub version: Option<i64>,
}

struct Candidate {
    add: Add,
    name: String,
}

/// Merges the files of each partition that are smaller than `target_size` bytes into files of
/// about that size, in seq order, as one commit per table.
pub fn optimize(
    target: &DeltaTarget,
    kind: TableKind,
    target_size: i64,
    props: &WriterProperties,
) -> Result<OptimizeReport, DeltaError> {
    let mut report = OptimizeReport {
        table: kind.name(),
        ..OptimizeReport::default()
    };
    let mut table = table::open(target, kind)?;
    let url = table.table_url().clone();
    let prefix = url.path().trim_start_matches('/').to_owned();
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::table(kind, &url, e))?;
    // Partition → small files, ordered by name (the first seq leads the name).
    let mut groups: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for view in state.log_data().iter() {
        if view.size() >= target_size {
            continue;
        }
        // The whole action: its partition values and size go into the `remove` and the new `add`.
        #[allow(deprecated)]
        let add = view.add_action();
        let key = serde_json::to_string(&add.partition_values.iter().collect::<BTreeMap<_, _>>())
            .unwrap_or_default();
        let name = add.path.rsplit('/').next().unwrap_or_default().to_owned();
        groups.entry(key).or_default().push(Candidate { add, name });
    }
    let mut actions = Vec::new();
    let now = jiff::Timestamp::now().as_millisecond();
    for (_, mut files) in groups {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        // Bins of consecutive files up to the target size; a bin of one file stays as it is.
        let mut bins: Vec<Vec<Candidate>> = vec![Vec::new()];
        let mut size = 0;
        for f in files {
            if size + f.add.size > target_size && !bins.last().expect("one bin").is_empty() {
                bins.push(Vec::new());
                size = 0;
            }
            size += f.add.size;
            bins.last_mut().expect("one bin").push(f);
        }
        for bin in bins.into_iter().filter(|b| b.len() > 1) {
            let (bytes, rows, first, last) = merge(target, kind, &prefix, &bin, props)?;
            let dir = bin[0]
                .add
                .path
                .rsplit_once('/')
                .map(|(d, _)| format!("{d}/"))
                .unwrap_or_default();
            let file = DataFile {
                dir: &dir,
                partition_values: bin[0].add.partition_values.clone(),
                rows,
                first,
                last,
                data_change: false,
            };
            actions.push(Action::Add(upload(target, &url, kind, file, bytes)?));
            report.files_added += 1;
            report.files_removed += bin.len();
            report.rows += rows;
            for f in &bin {
                actions.push(Action::Remove(deltalake_core::kernel::Remove {
                    path: f.add.path.clone(),
                    data_change: false,
                    deletion_timestamp: Some(now),
                    extended_file_metadata: Some(true),
                    partition_values: Some(f.add.partition_values.clone()),
                    size: Some(f.add.size),
                    tags: None,
                    deletion_vector: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                }));
            }
        }
    }
    if !actions.is_empty() {
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size,
        };
        report.version = Some(table::commit(
            target, &mut table, kind, None, actions, operation,
        )?);
    }
    Ok(report)
}

/// Reads the files of a bin in order and writes their rows as one file: its bytes, rows, and
/// first and last seq.
fn merge(
    target: &DeltaTarget,
    kind: TableKind,
    prefix: &str,
    bin: &[Candidate],
    props: &WriterProperties,
) -> Result<(Vec<u8>, u64, u64, u64), DeltaError> {
    let fail = |e: String| DeltaError::Encode(kind.name(), e);
    let schema = kind.file_schema();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props.clone()))
        .map_err(|e| fail(e.to_string()))?;
    let (mut rows, mut first, mut last) = (0u64, u64::MAX, 0u64);
    for f in bin {
        let decoded = percent_encoding::percent_decode_str(&f.add.path).decode_utf8_lossy();
        let location =
            StorePath::parse(format!("{prefix}{decoded}")).map_err(|e| fail(e.to_string()))?;
        let bytes: Bytes = target
            .block_on(async {
                let got = target.store().get(&location).await?;
                got.bytes().await
            })
            .map_err(|e| DeltaError::Store {
                action: "reading",
                path: f.add.path.clone(),
                source: e,
            })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| fail(format!("reading {}: {e}", f.add.path)))?;
        for batch in reader {
            let batch = batch.map_err(|e| fail(format!("reading {}: {e}", f.add.path)))?;
            let batch = arrow_array::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(|e| fail(format!("{}: {e}", f.add.path)))?;
            if let Some(seqs) = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
            {
                for s in seqs.iter().flatten() {
                    first = first.min(s as u64);
                    last = last.max(s as u64);
                }
            }
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(|e| fail(e.to_string()))?;
        }
    }
    let bytes = writer.into_inner().map_err(|e| fail(e.to_string()))?;
    Ok((bytes, rows, first, last))
}

/// What VACUUM did to one table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VacuumReport {
    /// The table.
    pub table: &'static str,
    /// Files deleted (relative to the table).
    pub files_deleted: Vec<String>,
}

/// Deletes the files of `kind` that no commit references any more (merged by OPTIMIZE, or left
/// by a run that crashed before its commit) and that are older than `retain_hours`.
pub fn vacuum(
    target: &DeltaTarget,
    kind: TableKind,
    retain_hours: u64,
) -> Result<VacuumReport, DeltaError> {
    let table = table::open(target, kind)?;
    let url = table.table_url().clone();
    let (_, metrics) = target
        .block_on(
            table
                .vacuum()
                .with_mode(VacuumMode::Full)
                .with_retention_period(chrono::Duration::hours(retain_hours as i64))
                .with_enforce_retention_duration(false)
                .with_dry_run(false)
                .into_future(),
        )
        .map_err(|e| DeltaError::table(kind, &url, e))?;
    Ok(VacuumReport {
        table: kind.name(),
        files_deleted: metrics.files_deleted,
    })
}
