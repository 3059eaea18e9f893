//! Delta Lake output (`format = "delta"`): the `messages`, `dead_letters` and `findings` tables as
//! Delta tables, on a local disk or on S3-compatible object storage, through delta-rs.
//!
//! Exactly once through the Delta log: every commit of a run is one Delta transaction per table
//! carrying `txn {appId: "wecom-archive/<corp_id>", version: <last seq>}`. The tables are
//! committed dead letters, findings, then messages; the messages table's version is the corp's
//! checkpoint, and the other two tables leave out rows at or below their own version, so a crash
//! between two of the commits neither loses nor repeats a row. Data files are uploaded before the
//! commit that references them; a crash in between leaves unreferenced files, which `vacuum`
//! removes.

mod dead_letters;
mod location;
pub mod maintain;
pub mod read;
mod replace;
mod staged;
pub mod table;

use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::file::properties::WriterProperties;

pub use dead_letters::DeadLetterRows;
pub use location::{is_delta_tree, is_url, DeltaTarget};
pub use replace::replace_corp;
pub use table::{app_id, TableKind};

use crate::sink::dead_letter::DeadLetter;
use crate::sink::parquet::CommittedPart;
use staged::StagedTable;

/// A failure of the Delta output.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The output location is not usable.
    #[error("Delta output {out}: {why}")]
    Location {
        /// The location as given.
        out: String,
        /// What is wrong with it.
        why: String,
    },
    /// A table could not be opened, read or committed.
    #[error("Delta table {table} at {url}: {source}")]
    Table {
        /// The table's name.
        table: &'static str,
        /// Its URL.
        url: String,
        /// The error.
        source: Box<deltalake_core::DeltaTableError>,
    },
    /// A schema could not be expressed in Delta.
    #[error("Delta schema of {0}: {1}")]
    Schema(&'static str, String),
    /// Rows could not be encoded as Parquet.
    #[error("encoding Parquet for the Delta table {0}: {1}")]
    Encode(&'static str, String),
    /// A data file could not be uploaded or read.
    #[error("{action} {path}: {source}")]
    Store {
        /// `uploading` or `reading`.
        action: &'static str,
        /// The file's URL.
        path: String,
        /// The error.
        source: deltalake_core::ObjectStoreError,
    },
    /// A file written to a local disk could not be made durable.
    #[error("making {path} durable (fsync): {source}")]
    Sync {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Another writer committed this corp first: this run's batch is discarded whole (its files
    /// stay unreferenced), and a new run resumes after the other writer's seq.
    #[error(
        "another writer committed corp {corp_id} to the Delta table {table} first (its seq {}, this \
         batch up to {ours}); this batch is discarded, nothing is duplicated: run again to resume \
         after the other writer's commit ({conflict})",
        theirs.map_or("none".to_owned(), |t| t.to_string())
    )]
    Superseded {
        /// The table whose commit lost.
        table: &'static str,
        /// The corp.
        corp_id: String,
        /// The last seq of the discarded batch.
        ours: u64,
        /// The corp's version in the table now.
        theirs: Option<u64>,
        /// delta-rs's description of the conflict.
        conflict: String,
    },
}

impl DeltaError {
    fn table(
        kind: TableKind,
        url: &url::Url,
        source: impl Into<deltalake_core::DeltaTableError>,
    ) -> Self {
        DeltaError::Table {
            table: kind.name(),
            url: url.to_string(),
            source: Box::new(source.into()),
        }
    }
}

/// The files of one commit to the three tables.
#[derive(Debug, Default)]
pub struct Committed {
    /// Files added to `messages`.
    pub messages: Vec<CommittedPart>,
    /// Files added to `findings`.
    pub findings: Vec<CommittedPart>,
    /// Files added to `dead_letters`.
    pub dead_letters: Vec<CommittedPart>,
}

/// The tables a run of one corp writes, with the rows waiting for the next commit.
pub struct DeltaTables {
    target: Arc<DeltaTarget>,
    corp_id: String,
    messages: StagedTable,
    dead_letters: StagedTable,
    dead_rows: DeadLetterRows,
    findings: Option<StagedTable>,
}

impl DeltaTables {
    /// Opens (or creates) the tables of `corp_id` under `target`; `findings` when rules screen
    /// the run.
    pub fn open(
        target: Arc<DeltaTarget>,
        corp_id: &str,
        findings: bool,
        props: WriterProperties,
    ) -> Result<Self, DeltaError> {
        let open = |kind| StagedTable::open(&target, kind, corp_id, props.clone());
        Ok(DeltaTables {
            messages: open(TableKind::Messages)?,
            dead_letters: open(TableKind::DeadLetters)?,
            findings: if findings {
                Some(open(TableKind::Findings)?)
            } else {
                None
            },
            dead_rows: DeadLetterRows::default(),
            corp_id: corp_id.to_owned(),
            target,
        })
    }

    /// The corp's checkpoint: its version in the messages table (committed last).
    pub fn checkpoint(&self) -> Option<u64> {
        self.messages.floor()
    }

    /// Adds message rows of one partition (`corp_id=…/date=…`).
    pub fn write_messages(
        &mut self,
        partition: &str,
        batch: &RecordBatch,
    ) -> Result<(), DeltaError> {
        self.messages.write(partition, batch)
    }

    /// Adds findings rows of one partition.
    pub fn write_findings(
        &mut self,
        partition: &str,
        batch: &RecordBatch,
    ) -> Result<(), DeltaError> {
        match &mut self.findings {
            Some(f) => f.write(partition, batch),
            None => Ok(()),
        }
    }

    /// Adds a dead letter.
    pub fn dead_letter(&mut self, d: &DeadLetter<'_>) {
        self.dead_rows.push(d);
    }

    /// Commits everything added since the last commit, up to `seq`: dead letters, findings, then
    /// messages (whose version is the checkpoint).
    pub fn commit(&mut self, seq: u64) -> Result<Committed, DeltaError> {
        if !self.dead_rows.is_empty() {
            let batch = self.dead_rows.finish();
            let partition = crate::sink::layout::corp_folder(&self.corp_id);
            self.dead_letters.write(&partition, &batch)?;
        }
        let target = self.target.clone();
        let dead_letters = self
            .dead_letters
            .commit(&target, &self.corp_id, seq, false)?;
        let findings = match &mut self.findings {
            Some(f) => f.commit(&target, &self.corp_id, seq, false)?,
            None => Vec::new(),
        };
        let messages = self.messages.commit(&target, &self.corp_id, seq, true)?;
        Ok(Committed {
            messages,
            findings,
            dead_letters,
        })
    }
}

/// The corp's checkpoint in the tables under `target` (its version in `messages`), creating the
/// table when it does not exist.
pub fn corp_checkpoint(target: &DeltaTarget, corp_id: &str) -> Result<Option<u64>, DeltaError> {
    Ok(corp_checkpoints(target, &[corp_id])?.pop().flatten())
}

/// [`corp_checkpoint`] of each of `corp_ids`, from one open of the table (`status`).
pub fn corp_checkpoints(
    target: &DeltaTarget,
    corp_ids: &[&str],
) -> Result<Vec<Option<u64>>, DeltaError> {
    let table = table::open(target, TableKind::Messages)?;
    corp_ids
        .iter()
        .map(|corp_id| table::txn_version(target, &table, TableKind::Messages, corp_id))
        .collect()
}
