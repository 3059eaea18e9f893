//! One Delta table of the archive: its schema and partitions, opening (or creating) it, reading
//! a corp's application-transaction version, and committing files with that version.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{Action, StructType, Transaction};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError};

use super::location::DeltaTarget;
use super::DeltaError;
use crate::sink::layout;

/// Commits between two Delta log checkpoints (`delta.checkpointInterval`): opening a long-lived
/// table reads the last checkpoint and at most this many JSON commits.
pub const CHECKPOINT_INTERVAL: u32 = 20;

/// Attempts of one commit that loses a race to another writer's commit of another corp (an
/// append never conflicts with an append; delta-rs rebases it and tries the next version).
const COMMIT_RETRIES: usize = 50;

/// The application-transaction id of a corp: each commit carries `txn {appId, version}` with
/// the highest seq it covers, so that the table itself holds the corp's checkpoint.
pub fn app_id(corp_id: &str) -> String {
    format!("wecom-archive/{corp_id}")
}

/// The tables of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Decrypted messages (`messages`).
    Messages,
    /// Records that could not become rows (`dead_letters`).
    DeadLetters,
    /// Rule matches (`findings`).
    Findings,
    /// Message → media file references and their downloads (`media_files`), one file per corp,
    /// replaced after every media run.
    MediaFiles,
}

impl TableKind {
    /// Every table of an archive.
    pub const ALL: [TableKind; 4] = [
        TableKind::Messages,
        TableKind::DeadLetters,
        TableKind::Findings,
        TableKind::MediaFiles,
    ];

    /// The table's folder under the root.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Messages => layout::MESSAGES,
            TableKind::DeadLetters => layout::DEAD_LETTERS,
            TableKind::Findings => layout::FINDINGS,
            TableKind::MediaFiles => layout::MEDIA_FILES,
        }
    }

    /// The partition columns, in path order.
    pub fn partition_columns(self) -> &'static [&'static str] {
        match self {
            TableKind::Messages | TableKind::Findings => &["corp_id", "date"],
            TableKind::DeadLetters | TableKind::MediaFiles => &["corp_id"],
        }
    }

    /// The schema of the data files (no partition columns; Delta's microsecond timestamps).
    pub fn file_schema(self) -> SchemaRef {
        let base = match self {
            TableKind::Messages => crate::model::schema::chat_schema(),
            TableKind::Findings => crate::compliance::findings::findings_schema(),
            TableKind::DeadLetters => super::dead_letters::schema(),
            TableKind::MediaFiles => crate::media::table::media_schema(),
        };
        let fields: Vec<Field> = base
            .fields()
            .iter()
            .filter(|f| !self.partition_columns().contains(&f.name().as_str()))
            .map(|f| match f.data_type() {
                DataType::Timestamp(_, tz) => f
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(TimeUnit::Microsecond, tz.clone())),
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The table's schema: the file columns, then the partition columns.
    fn table_schema(self) -> Result<StructType, DeltaError> {
        let mut fields: Vec<Field> = self
            .file_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for p in self.partition_columns() {
            let ty = if *p == "date" {
                DataType::Date32
            } else {
                DataType::Utf8
            };
            fields.push(Field::new(*p, ty, true));
        }
        let schema = Schema::new(fields);
        (&schema)
            .try_into_kernel()
            .map_err(|e| DeltaError::Schema(self.name(), e.to_string()))
    }
}

/// The table `kind` under `target`, not loaded yet.
fn handle(target: &DeltaTarget, kind: TableKind) -> Result<DeltaTable, DeltaError> {
    let url = target.table_url(kind.name());
    DeltaTableBuilder::from_url(url.clone())
        .and_then(|b| b.with_storage_backend(target.store(), url.clone()).build())
        .map_err(|e| DeltaError::table(kind, &url, e))
}

/// Loads the table `kind` under `target`, or `None` when there is none.
pub fn load(target: &DeltaTarget, kind: TableKind) -> Result<Option<DeltaTable>, DeltaError> {
    let mut table = handle(target, kind)?;
    let url = table.table_url().clone();
    let err = |e: DeltaTableError| DeltaError::table(kind, &url, e);
    target.block_on(async {
        if !table.verify_deltatable_existence().await.map_err(err)? {
            return Ok(None);
        }
        table.load().await.map_err(err)?;
        Ok(Some(table))
    })
}

/// Opens the table `kind` under `target`, creating it when it does not exist yet. Two writers
/// creating it at once both end up with the one table.
pub fn open(target: &DeltaTarget, kind: TableKind) -> Result<DeltaTable, DeltaError> {
    let mut table = handle(target, kind)?;
    let url = table.table_url().clone();
    let err = |e: DeltaTableError| DeltaError::table(kind, &url, e);
    target.block_on(async {
        if table.verify_deltatable_existence().await.map_err(err)? {
            table.load().await.map_err(err)?;
            return Ok(table);
        }
        let created = table
            .create()
            .with_table_name(kind.name())
            .with_columns(kind.table_schema()?.fields().cloned())
            .with_partition_columns(kind.partition_columns().iter().copied())
            .with_configuration_property(
                deltalake_core::TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL.to_string()),
            )
            .with_save_mode(SaveMode::Ignore)
            // Version 0 or nothing: a retry would commit the metadata again on top of another
            // writer's creation, and every writer's next commit would then conflict with it.
            .with_commit_properties(CommitProperties::default().with_max_retries(0))
            .await;
        match created {
            Ok(t) => Ok(t),
            // Another writer created it first: use theirs.
            Err(_) if table.verify_deltatable_existence().await.map_err(err)? => {
                table.load().await.map_err(err)?;
                Ok(table)
            }
            Err(e) => Err(err(e)),
        }
    })
}

/// The version of the corp's application transaction in the table's current state: the highest
/// seq committed for it, or `None` before its first commit.
pub fn txn_version(
    target: &DeltaTarget,
    table: &DeltaTable,
    kind: TableKind,
    corp_id: &str,
) -> Result<Option<u64>, DeltaError> {
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::table(kind, table.table_url(), e))?;
    let v = target
        .block_on(state.transaction_version(table.log_store().as_ref(), app_id(corp_id)))
        .map_err(|e| DeltaError::table(kind, table.table_url(), e))?;
    Ok(v.map(|v| v.max(0) as u64))
}

/// Commits `actions` to `table` as one append with the corp's transaction at `seq`. A race with
/// another corp's writer is retried by delta-rs; a race with a commit of the **same** corp (a
/// second writer of it) fails with [`DeltaError::Superseded`], and nothing of ours is in the
/// table.
pub fn commit_append(
    target: &DeltaTarget,
    table: &mut DeltaTable,
    kind: TableKind,
    corp_id: &str,
    seq: u64,
    actions: Vec<Action>,
) -> Result<i64, DeltaError> {
    commit(
        target,
        table,
        kind,
        Some((corp_id, seq)),
        actions,
        DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(
                kind.partition_columns()
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            predicate: None,
        },
    )
}

/// Commits `actions` as `operation`, with the corp's transaction when given, and moves `table` to
/// the new version.
pub fn commit(
    target: &DeltaTarget,
    table: &mut DeltaTable,
    kind: TableKind,
    txn: Option<(&str, u64)>,
    actions: Vec<Action>,
    operation: DeltaOperation,
) -> Result<i64, DeltaError> {
    commit_from(target, table, kind, txn, actions, operation, 3)
}

/// [`commit`] without a transaction and without trying a conflicting commit again: for commits
/// whose actions must be made anew from the table as it is now (a `remove` of a file another
/// writer removed first would fail again).
pub(super) fn commit_once(
    target: &DeltaTarget,
    table: &mut DeltaTable,
    kind: TableKind,
    actions: Vec<Action>,
    operation: DeltaOperation,
) -> Result<i64, DeltaError> {
    commit_from(target, table, kind, None, actions, operation, 0)
}

/// True when `e` is a commit that lost a race with another writer's commit.
pub(super) fn is_conflict(e: &DeltaError) -> bool {
    matches!(
        e,
        DeltaError::Table { source, .. } if matches!(
            source.as_ref(),
            DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
            }
        )
    )
}

fn commit_from(
    target: &DeltaTarget,
    table: &mut DeltaTable,
    kind: TableKind,
    txn: Option<(&str, u64)>,
    actions: Vec<Action>,
    operation: DeltaOperation,
    attempts_left: u32,
) -> Result<i64, DeltaError> {
    let (actions_again, operation_again) = (actions.clone(), operation.clone());
    let url = table.table_url().clone();
    let mut props = CommitProperties::default()
        .with_create_checkpoint(true)
        .with_max_retries(COMMIT_RETRIES);
    if let Some((corp, seq)) = txn {
        props = props.with_application_transaction(Transaction::new(app_id(corp), seq as i64));
    }
    let snapshot = table
        .snapshot()
        .map_err(|e| DeltaError::table(kind, &url, e))?
        .clone();
    let result = target.block_on(
        CommitBuilder::from(props)
            .with_actions(actions)
            .build(Some(&snapshot), table.log_store(), operation)
            .into_future(),
    );
    match result {
        Ok(done) => {
            let version = done.version();
            sync_log(target, &url, version)?;
            target
                .block_on(table.update_incremental(Some(version)))
                .map_err(|e| DeltaError::table(kind, &url, e))?;
            Ok(version)
        }
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(conflict),
        }) => {
            let before = match txn {
                Some((corp, _)) => txn_version(target, table, kind, corp)?,
                None => None,
            };
            target
                .block_on(table.update_state())
                .map_err(|e| DeltaError::table(kind, &url, e))?;
            match txn {
                // Another writer of this corp moved its transaction: our batch overlaps theirs.
                Some((corp, ours)) if txn_version(target, table, kind, corp)? != before => {
                    Err(DeltaError::Superseded {
                        table: kind.name(),
                        corp_id: corp.to_owned(),
                        ours,
                        theirs: txn_version(target, table, kind, corp)?,
                        conflict: conflict.to_string(),
                    })
                }
                // Anything else (a change of the table's metadata, an OPTIMIZE that removed
                // files this commit removes too) is tried again on the table as it is now.
                _ if attempts_left > 0 => commit_from(
                    target,
                    table,
                    kind,
                    txn,
                    actions_again,
                    operation_again,
                    attempts_left - 1,
                ),
                _ => Err(DeltaError::table(
                    kind,
                    &url,
                    DeltaTableError::Transaction {
                        source: TransactionError::CommitConflict(conflict),
                    },
                )),
            }
        }
        Err(e) => Err(DeltaError::table(kind, &url, e)),
    }
}

/// Makes the log entry of `version` durable on a local disk, with the checkpoint written after it
/// (every [`CHECKPOINT_INTERVAL`] versions): the commit is only done once it survives a power loss.
fn sync_log(target: &DeltaTarget, table_url: &url::Url, version: i64) -> Result<(), DeltaError> {
    if table_url.scheme() != "file" {
        return Ok(());
    }
    let log = |name: String| table_url.join(&format!("_delta_log/{name}"));
    let mut files = vec![log(format!("{version:020}.json"))];
    if version > 0 && version % i64::from(CHECKPOINT_INTERVAL) == 0 {
        files.push(log(format!("{version:020}.checkpoint.parquet")));
        files.push(log("_last_checkpoint".to_owned()));
    }
    for url in files.into_iter().flatten() {
        // A checkpoint that delta-rs did not write (it is an optimisation) is not an error.
        let exists = url.to_file_path().is_ok_and(|p| p.exists());
        if exists {
            target.sync_local(&url)?;
        }
    }
    Ok(())
}

/// Partition values of a Hive partition path (`corp_id=ww1/date=2026-11-20`); the Hive default
/// partition is a null value.
pub fn partition_values(partition: &str) -> HashMap<String, Option<String>> {
    partition
        .split('/')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = (v != layout::NULL_PARTITION).then(|| v.to_owned());
            (k.to_owned(), v)
        })
        .collect()
}
