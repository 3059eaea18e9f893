//! Replacing one corp's partition of a table whole, in one commit: the `media_files` table, which
//! a media run rewrites from the state database rather than appending to.

use deltalake_core::kernel::{Action, Remove};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use arrow_array::{Array, Int64Array, RecordBatch};

use super::location::DeltaTarget;
use super::staged::{upload, DataFile};
use super::table::{self, TableKind};
use super::DeltaError;
use crate::sink::layout;

/// Attempts at a replacement that loses races with other writers' commits (each is made anew
/// from the table as it is then).
const ATTEMPTS: usize = 10;

/// Makes `rows` the whole content of `corp_id`'s partition of `kind`: one new file, and a
/// `remove` of every file the partition held, in one commit. Readers see the old rows or the new
/// ones, never both; a crash before the commit leaves only an unreferenced file for `vacuum`.
/// Returns the table version.
pub fn replace_corp(
    target: &DeltaTarget,
    kind: TableKind,
    corp_id: &str,
    rows: &RecordBatch,
    props: &WriterProperties,
) -> Result<i64, DeltaError> {
    let encode = |e: parquet::errors::ParquetError| DeltaError::Encode(kind.name(), e.to_string());
    let mut writer = ArrowWriter::try_new(Vec::new(), kind.file_schema(), Some(props.clone()))
        .map_err(encode)?;
    writer.write(rows).map_err(encode)?;
    let bytes = writer.into_inner().map_err(encode)?;
    let (first, last) = seq_range(rows);
    let partition = layout::corp_folder(corp_id);
    let mut table = table::open(target, kind)?;
    let url = table.table_url().clone();
    let add = upload(
        target,
        &url,
        kind,
        DataFile {
            dir: &format!("{partition}/"),
            partition_values: table::partition_values(&partition),
            rows: rows.num_rows() as u64,
            first,
            last,
            data_change: true,
        },
        bytes,
    )?;
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(vec!["corp_id".to_owned()]),
        predicate: Some(format!("corp_id = '{}'", corp_id.replace('\'', "''"))),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let now = jiff::Timestamp::now().as_millisecond();
        let snapshot = table
            .snapshot()
            .map_err(|e| DeltaError::table(kind, &url, e))?;
        let mut actions: Vec<Action> = Vec::new();
        for view in snapshot.log_data().iter() {
            // The whole action: its partition values go into the `remove`.
            #[allow(deprecated)]
            let old = view.add_action();
            if old.partition_values.get("corp_id") != Some(&Some(corp_id.to_owned())) {
                continue;
            }
            actions.push(Action::Remove(Remove {
                path: old.path,
                data_change: true,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(old.partition_values),
                size: Some(old.size),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            }));
        }
        actions.push(Action::Add(add.clone()));
        match table::commit_once(target, &mut table, kind, actions, operation.clone()) {
            Err(e) if table::is_conflict(&e) && attempt < ATTEMPTS => {
                // `commit_once` has moved the table to its newest version: list its files again.
                continue;
            }
            other => return other,
        }
    }
}

/// The lowest and highest `seq` of `rows` (0, 0 without any).
fn seq_range(rows: &RecordBatch) -> (u64, u64) {
    let Some(seqs) = rows
        .column_by_name("seq")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
    else {
        return (0, 0);
    };
    let valid = (0..seqs.len())
        .filter(|&i| seqs.is_valid(i))
        .map(|i| seqs.value(i) as u64);
    valid
        .fold(None, |acc: Option<(u64, u64)>, s| {
            Some(acc.map_or((s, s), |(a, z)| (a.min(s), z.max(s))))
        })
        .unwrap_or((0, 0))
}
