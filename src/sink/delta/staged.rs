//! Rows on their way into one Delta table: one in-memory Parquet file per partition, uploaded and
//! committed as one Delta transaction with the corp's seq.

use std::collections::BTreeMap;

use arrow_array::{Array, BooleanArray, Int64Array, RecordBatch};
use arrow_schema::SchemaRef;
use deltalake_core::kernel::{Action, Add};
use deltalake_core::DeltaTable;
use object_store::path::Path as StorePath;
use object_store::PutPayload;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::location::DeltaTarget;
use super::table::{self, TableKind};
use super::DeltaError;
use crate::sink::parquet::CommittedPart;

struct OpenFile {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
    first: u64,
    last: u64,
}

/// One table of a run: its open files and the corp's floor in it.
pub struct StagedTable {
    kind: TableKind,
    table: DeltaTable,
    schema: SchemaRef,
    props: WriterProperties,
    open: BTreeMap<String, OpenFile>,
    /// Rows at or below this seq are in the table already: a crash fell between this table's
    /// commit and the messages table's, and the run resumed from the messages table's seq.
    floor: Option<u64>,
}

impl StagedTable {
    /// Opens (or creates) the table and reads the corp's version in it.
    pub fn open(
        target: &DeltaTarget,
        kind: TableKind,
        corp_id: &str,
        props: WriterProperties,
    ) -> Result<Self, DeltaError> {
        let table = table::open(target, kind)?;
        let floor = table::txn_version(target, &table, kind, corp_id)?;
        Ok(StagedTable {
            kind,
            table,
            schema: kind.file_schema(),
            props,
            open: BTreeMap::new(),
            floor,
        })
    }

    /// The corp's version in the table when it was opened (or last committed).
    pub fn floor(&self) -> Option<u64> {
        self.floor
    }

    /// Adds rows (whose first column is `seq`) to the partition's open file, leaving out those at
    /// or below the floor.
    pub fn write(&mut self, partition: &str, batch: &RecordBatch) -> Result<(), DeltaError> {
        let fail = |e: String| DeltaError::Encode(self.kind.name(), e);
        let seqs = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| fail("the first column is not seq".into()))?
            .clone();
        let mut batch = self.conform(batch).map_err(fail)?;
        let mut seqs = seqs;
        if let Some(floor) = self
            .floor
            .filter(|&f| seqs.values().iter().any(|&s| s as u64 <= f))
        {
            let keep: BooleanArray = seqs
                .iter()
                .map(|s| Some(s.is_none_or(|s| s as u64 > floor)))
                .collect();
            if keep.true_count() < batch.num_rows() {
                batch = arrow_select::filter::filter_record_batch(&batch, &keep)
                    .map_err(|e| fail(e.to_string()))?;
                seqs = arrow_select::filter::filter(&seqs, &keep)
                    .map_err(|e| fail(e.to_string()))?
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("filtered Int64")
                    .clone();
            }
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.open.contains_key(partition) {
            let writer =
                ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(self.props.clone()))
                    .map_err(|e| fail(e.to_string()))?;
            self.open.insert(
                partition.to_owned(),
                OpenFile {
                    writer,
                    rows: 0,
                    first: u64::MAX,
                    last: 0,
                },
            );
        }
        let f = self.open.get_mut(partition).expect("inserted above");
        f.writer.write(&batch).map_err(|e| fail(e.to_string()))?;
        f.rows += batch.num_rows() as u64;
        for s in seqs.iter().flatten() {
            f.first = f.first.min(s as u64);
            f.last = f.last.max(s as u64);
        }
        Ok(())
    }

    /// The batch in the file schema: partition columns dropped, timestamps in microseconds.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let col = batch
                .column_by_name(field.name())
                .ok_or_else(|| format!("column {} missing", field.name()))?;
            columns.push(if col.data_type() == field.data_type() {
                col.clone()
            } else {
                arrow_cast::cast(col, field.data_type()).map_err(|e| e.to_string())?
            });
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }

    /// Uploads the open files and commits them with the corp's transaction at `seq` (also when
    /// there are none and `always` is set: the messages table's version is the corp's
    /// checkpoint, and a batch of dead letters only must still move it).
    pub fn commit(
        &mut self,
        target: &DeltaTarget,
        corp_id: &str,
        seq: u64,
        always: bool,
    ) -> Result<Vec<CommittedPart>, DeltaError> {
        if self.open.is_empty() && !always {
            return Ok(Vec::new());
        }
        let base = self.table.table_url().clone();
        let mut actions = Vec::new();
        let mut parts = Vec::new();
        for (partition, f) in std::mem::take(&mut self.open) {
            let bytes = f
                .writer
                .into_inner()
                .map_err(|e| DeltaError::Encode(self.kind.name(), e.to_string()))?;
            let dir = match partition.is_empty() {
                true => String::new(),
                false => format!("{partition}/"),
            };
            let file = DataFile {
                dir: &dir,
                partition_values: table::partition_values(&partition),
                rows: f.rows,
                first: f.first,
                last: f.last,
                data_change: true,
            };
            let add = upload(target, &base, self.kind, file, bytes)?;
            let rel = add.path.clone();
            actions.push(Action::Add(add));
            parts.push(CommittedPart {
                path: format!("{base}{rel}").into(),
                rows: f.rows,
                first_seq: f.first,
                last_seq: f.last,
            });
        }
        table::commit_append(target, &mut self.table, self.kind, corp_id, seq, actions)?;
        self.floor = Some(self.floor.map_or(seq, |f| f.max(seq)));
        Ok(parts)
    }
}

/// A data file on its way into a table: where it goes and what its `add` says.
pub(super) struct DataFile<'a> {
    /// Its folder relative to the table (`corp_id=…/date=…/`, or empty).
    pub dir: &'a str,
    /// Its partition values.
    pub partition_values: std::collections::HashMap<String, Option<String>>,
    /// Rows, and the lowest and highest seq among them.
    pub rows: u64,
    pub first: u64,
    pub last: u64,
    /// False for OPTIMIZE's rewrites: the rows are not new.
    pub data_change: bool,
}

/// Uploads `bytes` as a new file of the table at `base` (named by its seq range and a random
/// token, so that writers never collide) and returns its `add` action, with the row count and
/// the seq range as statistics.
pub(super) fn upload(
    target: &DeltaTarget,
    base: &url::Url,
    kind: TableKind,
    file: DataFile<'_>,
    bytes: Vec<u8>,
) -> Result<Add, DeltaError> {
    let rel = format!(
        "{}part-{:020}-{:020}-{}.parquet",
        file.dir,
        file.first,
        file.last,
        uuid::Uuid::new_v4().simple()
    );
    let prefix = base.path().trim_start_matches('/');
    let location = StorePath::parse(format!("{prefix}{rel}"))
        .map_err(|e| DeltaError::Encode(kind.name(), e.to_string()))?;
    let size = bytes.len() as i64;
    target
        .block_on(target.store().put(&location, PutPayload::from(bytes)))
        .map_err(|e| DeltaError::Store {
            action: "uploading",
            path: format!("{base}{rel}"),
            source: e,
        })?;
    if let Ok(url) = base.join(&rel) {
        target.sync_local(&url)?;
    }
    let stats = serde_json::json!({
        "numRecords": file.rows,
        "minValues": {"seq": file.first},
        "maxValues": {"seq": file.last},
    });
    Ok(Add {
        path: rel,
        partition_values: file.partition_values,
        size,
        modification_time: jiff::Timestamp::now().as_millisecond(),
        data_change: file.data_change,
        stats: Some(stats.to_string()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}
