//! Parquet output: zstd-compressed files named by the seq range they hold,
//! `part-<first_seq>-<last_seq>.parquet`, that appear only once complete and fsynced.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::atomic::AtomicFile;
use crate::model::schema::chat_schema;

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

/// Writes chat batches into seq-ranged Parquet files under one directory.
pub struct ParquetSink {
    dir: PathBuf,
    options: ParquetOptions,
    open: Option<OpenPart>,
    committed: Vec<CommittedPart>,
}

struct OpenPart {
    writer: ArrowWriter<AtomicFile>,
    first_seq: u64,
    last_seq: u64,
    rows: u64,
}

impl ParquetSink {
    /// A sink writing under `dir` (created if missing).
    pub fn new(dir: &Path, options: ParquetOptions) -> Result<Self, SinkError> {
        std::fs::create_dir_all(dir).map_err(|source| SinkError::Io {
            dir: dir.to_owned(),
            source,
        })?;
        Ok(ParquetSink {
            dir: dir.to_owned(),
            options,
            open: None,
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

    /// Appends a batch whose rows have seqs in `first_seq..=last_seq`. The rows become durable
    /// only at the next [`Self::commit`] (or when the file fills up and is committed).
    pub fn write(
        &mut self,
        batch: &RecordBatch,
        first_seq: u64,
        last_seq: u64,
    ) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.is_none() {
            let file = AtomicFile::create(&self.dir, "part", "parquet").map_err(|e| self.io(e))?;
            let level = ZstdLevel::try_new(self.options.zstd_level).map_err(|e| self.pq(e))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(level))
                .set_max_row_group_size(self.options.row_group_rows)
                .set_created_by(format!("wecom-archive {}", env!("CARGO_PKG_VERSION")))
                .build();
            let writer =
                ArrowWriter::try_new(file, chat_schema(), Some(props)).map_err(|e| self.pq(e))?;
            self.open = Some(OpenPart {
                writer,
                first_seq,
                last_seq,
                rows: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.writer
            .write(batch)
            .map_err(|source| SinkError::Parquet {
                dir: self.dir.clone(),
                source,
            })?;
        open.first_seq = open.first_seq.min(first_seq);
        open.last_seq = open.last_seq.max(last_seq);
        open.rows += batch.num_rows() as u64;
        if open.rows >= self.options.rows_per_file as u64 {
            self.commit()?;
        }
        Ok(())
    }

    /// Closes the open file, fsyncs it and renames it to its final name.
    pub fn commit(&mut self) -> Result<Option<CommittedPart>, SinkError> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let file = open.writer.into_inner().map_err(|e| self.pq(e))?;
        let name = format!("part-{}-{}.parquet", open.first_seq, open.last_seq);
        let path = file.commit(&name).map_err(|e| self.io(e))?;
        let part = CommittedPart {
            path,
            rows: open.rows,
            first_seq: open.first_seq,
            last_seq: open.last_seq,
        };
        self.committed.push(part.clone());
        Ok(Some(part))
    }

    /// Files committed so far.
    pub fn committed(&self) -> &[CommittedPart] {
        &self.committed
    }
}
