//! Parquet output: zstd-compressed files named by the seq range they hold
//! ([`layout::part_file`]), that appear only once complete and fsynced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::atomic::{AtomicFile, Prepared};
use super::layout;
use crate::model::schema::{chat_schema, SCHEMA_VERSION};

/// Tuning of the Parquet output.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Rows per file before a new file is started.
    pub rows_per_file: usize,
    /// Rows per row group (memory held per open file grows with it).
    pub row_group_rows: usize,
    /// zstd level (1..=22).
    pub zstd_level: i32,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            rows_per_file: 1_000_000,
            row_group_rows: 64 * 1024,
            zstd_level: 3,
        }
    }
}

impl ParquetOptions {
    /// The writer properties of every Parquet file the tool writes (messages, compacted parts,
    /// the media table): zstd, row groups of [`Self::row_group_rows`], the tool as `created_by`,
    /// and the schema version in the key-value metadata.
    pub fn writer_properties(&self) -> Result<WriterProperties, parquet::errors::ParquetError> {
        let level = ZstdLevel::try_new(self.zstd_level)?;
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_size(self.row_group_rows)
            .set_created_by(format!("wecom-archive {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                layout::SCHEMA_VERSION_KEY.to_owned(),
                SCHEMA_VERSION.to_string(),
            )]))
            .build())
    }
}

/// The name of a new part holding seqs `first..=last` in `dir`: [`layout::part_file`], or
/// [`layout::part_file_distinct`] with the file's `token` when that name is taken, on disk or by
/// `pending` (a file of the same journaled step, not yet published). Publishing never replaces
/// a file, so two files of one seq range (a dump decrypted twice into one folder, a seq repeated
/// across a compaction's outputs) must get two names before the step is journaled.
pub fn unused_part_name(
    dir: &Path,
    first: u64,
    last: u64,
    token: &str,
    pending: impl Fn(&Path) -> bool,
) -> String {
    let name = layout::part_file(first, last);
    let path = dir.join(&name);
    if path.exists() || pending(&path) {
        layout::part_file_distinct(first, last, token)
    } else {
        name
    }
}

/// A failure of the Parquet sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Filesystem error.
    #[error("writing Parquet under {dir}: {source}")]
    Io {
        /// The output directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Parquet encoder error.
    #[error("encoding Parquet under {dir}: {source}")]
    Parquet {
        /// The output directory.
        dir: PathBuf,
        /// The error.
        source: parquet::errors::ParquetError,
    },
}

/// A file that has been committed: durable under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedPart {
    /// Final path.
    pub path: PathBuf,
    /// Rows in the file.
    pub rows: u64,
    /// Lowest seq in the file.
    pub first_seq: u64,
    /// Highest seq in the file.
    pub last_seq: u64,
}

/// Writes chat batches into seq-ranged Parquet files, one open file per partition directory.
///
/// A partition is a directory relative to the sink's root (`""` for the root itself, or a Hive
/// path such as `corp_id=ww1/date=2026-11-26`).
pub struct ParquetSink {
    dir: PathBuf,
    schema: SchemaRef,
    options: ParquetOptions,
    open: BTreeMap<String, OpenPart>,
    committed: Vec<CommittedPart>,
}

struct OpenPart {
    writer: ArrowWriter<AtomicFile>,
    first_seq: u64,
    last_seq: u64,
    rows: u64,
}

/// A Parquet file complete and fsynced under a temporary name, waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPart {
    /// The temporary and final paths.
    pub file: Prepared,
    /// What the file holds.
    pub part: CommittedPart,
}

impl ParquetSink {
    /// A sink writing `messages` rows under `dir` (created if missing).
    pub fn new(dir: &Path, options: ParquetOptions) -> Result<Self, SinkError> {
        Self::with_schema(dir, chat_schema(), options)
    }

    /// A sink writing rows of `schema` under `dir` (created if missing).
    pub fn with_schema(
        dir: &Path,
        schema: SchemaRef,
        options: ParquetOptions,
    ) -> Result<Self, SinkError> {
        super::atomic::create_dir_durable(dir).map_err(|source| SinkError::Io {
            dir: dir.to_owned(),
            source,
        })?;
        Ok(ParquetSink {
            dir: dir.to_owned(),
            schema,
            options,
            open: BTreeMap::new(),
            committed: Vec::new(),
        })
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    fn pq(&self, source: parquet::errors::ParquetError) -> SinkError {
        SinkError::Parquet {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Appends a batch whose rows have seqs in `first_seq..=last_seq` to the root partition.
    /// The rows become durable only at the next [`Self::commit`] (or when the file fills up).
    pub fn write(
        &mut self,
        batch: &RecordBatch,
        first_seq: u64,
        last_seq: u64,
    ) -> Result<(), SinkError> {
        if self.write_to("", batch, first_seq, last_seq)? {
            self.commit()?;
        }
        Ok(())
    }

    /// Appends a batch to `partition`. Returns true when the partition's file reached
    /// `rows_per_file` and should be committed.
    pub fn write_to(
        &mut self,
        partition: &str,
        batch: &RecordBatch,
        first_seq: u64,
        last_seq: u64,
    ) -> Result<bool, SinkError> {
        if batch.num_rows() == 0 {
            return Ok(false);
        }
        if !self.open.contains_key(partition) {
            let dir = self.dir.join(partition);
            super::atomic::create_dir_durable(&dir).map_err(|e| self.io(e))?;
            let file = AtomicFile::create(&dir, "part", "parquet").map_err(|e| self.io(e))?;
            let props = self.options.writer_properties().map_err(|e| self.pq(e))?;
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(props))
                .map_err(|e| self.pq(e))?;
            self.open.insert(
                partition.to_owned(),
                OpenPart {
                    writer,
                    first_seq,
                    last_seq,
                    rows: 0,
                },
            );
        }
        let dir = self.dir.clone();
        let open = self.open.get_mut(partition).expect("opened above");
        open.writer
            .write(batch)
            .map_err(|source| SinkError::Parquet { dir, source })?;
        open.first_seq = open.first_seq.min(first_seq);
        open.last_seq = open.last_seq.max(last_seq);
        open.rows += batch.num_rows() as u64;
        Ok(open.rows >= self.options.rows_per_file as u64)
    }

    /// Rows buffered in open files (not yet committed).
    pub fn open_rows(&self) -> u64 {
        self.open.values().map(|o| o.rows).sum()
    }

    /// Closes every open file and fsyncs it under its temporary name; nothing is renamed yet.
    /// The caller publishes the files (after journaling them) and then calls
    /// [`Self::mark_committed`].
    pub fn prepare(&mut self) -> Result<Vec<PreparedPart>, SinkError> {
        let open = std::mem::take(&mut self.open);
        let mut out = Vec::with_capacity(open.len());
        for (_, part) in open {
            let file = part.writer.into_inner().map_err(|e| self.pq(e))?;
            // One open file per partition folder: no two of this commit share a folder.
            let name = unused_part_name(
                file.dir(),
                part.first_seq,
                part.last_seq,
                file.token(),
                |_| false,
            );
            let prepared = file.prepare(&name).map_err(|e| self.io(e))?;
            out.push(PreparedPart {
                part: CommittedPart {
                    path: prepared.dest.clone(),
                    rows: part.rows,
                    first_seq: part.first_seq,
                    last_seq: part.last_seq,
                },
                file: prepared,
            });
        }
        Ok(out)
    }

    /// Records parts published by the caller (see [`Self::prepare`]).
    pub fn mark_committed(&mut self, parts: impl IntoIterator<Item = CommittedPart>) {
        self.committed.extend(parts);
    }

    /// Closes the open files, fsyncs them and renames them to their final names.
    pub fn commit(&mut self) -> Result<Vec<CommittedPart>, SinkError> {
        let prepared = self.prepare()?;
        for p in &prepared {
            p.file.publish().map_err(|e| self.io(e))?;
        }
        let parts: Vec<CommittedPart> = prepared.into_iter().map(|p| p.part).collect();
        self.committed.extend(parts.iter().cloned());
        Ok(parts)
    }

    /// Files committed so far.
    pub fn committed(&self) -> &[CommittedPart] {
        &self.committed
    }
}
