//! `migrate`: moves an output tree written by an earlier release into the layout of
//! [`crate::sink::layout`], losing nothing.
//!
//! The earlier layout kept every table in one Hive tree, which no lake reader could open as a
//! table, and wrote unsigned integer columns (schema version 1):
//!
//! ```text
//! OUT/state.sqlite
//! OUT/corp_id=<corp>/date=<day>/part-<first>-<last>.parquet      (also retry-…, part-…-<token>)
//! OUT/corp_id=<corp>/dead_letter/dead-….jsonl
//! OUT/corp_id=<corp>/media/<2 hex>/<sha256>.<ext>                (+ media/.partial/)
//! OUT/corp_id=<corp>/media_table/media.parquet
//! OUT/part-….parquet, OUT/dead_letter/dead-….jsonl               (`decrypt --out`)
//! ```
//!
//! Each corp moves in one journaled step, like a pipeline commit: its Parquet files are rewritten
//! into the current schema as fsynced temporaries in their new folders, then one journal entry
//! lists every rename (new files published, old files retired to hidden temporaries, dead
//! letters and the media folder moved), then the renames run. A crash anywhere is finished by
//! running `migrate` again (the journal is rolled forward; unjournaled temporaries are
//! deleted). The state database moves last, after its write-ahead log is folded into it.
//!
//! A tree in the current layout whose message files are in an older schema (version 2, before
//! the conversation columns) is upgraded the same way, one journaled step per corp: each old file
//! is rewritten with the new columns (derived from its `raw_json`) beside itself, published under
//! a new name and retired.
//!
//! Every command that opens an output tree calls [`refuse_legacy`] first, so a tree in the old
//! layout or schema is never written to half-way: the error names the command that moves it.

use std::path::{Path, PathBuf};

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::model::message::parse;
use crate::model::schema::{chat_schema, ChatBatchBuilder, SCHEMA_VERSION};
use crate::sink::atomic::{self, AtomicFile};
use crate::sink::layout;
use crate::sink::parquet::{unused_part_name, ParquetOptions};
use crate::sink::recover;
use crate::state::{JournalExtras, Rename, StateError, StateStore};

/// The state database's name in the earlier layout (directly under the output root).
const LEGACY_STATE: &str = "state.sqlite";
/// The dead letters' folder in the earlier layout (in a corp's folder, or the output root).
const LEGACY_DEAD_LETTERS: &str = "dead_letter";
/// The downloaded media's folder in the earlier layout (in a corp's folder).
const LEGACY_MEDIA: &str = "media";
/// The media table's folder in the earlier layout (in a corp's folder).
const LEGACY_MEDIA_TABLE: &str = "media_table";
/// A corp's folder in the earlier layout, directly under the output root.
const LEGACY_CORP_PREFIX: &str = "corp_id=";

/// Test hook: `WECOM_ARCHIVE_FAULT_MIGRATE=<step>` aborts the process at that step of the first
/// corp, as a crash (SIGKILL, power loss) would: `rewritten`, `journaled`, `half-published`,
/// `completed`, `state-closed`. The tests prove that `migrate` run again finishes the job.
pub const FAULT_ENV: &str = "WECOM_ARCHIVE_FAULT_MIGRATE";

fn fault(step: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == step) {
        eprintln!("{FAULT_ENV}: aborting at {step}");
        std::process::abort();
    }
}

/// A failure of the migration (or an output tree that needs one).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The output tree is in the earlier layout: the one command that moves it.
    #[error(
        "{} holds an archive written by an earlier release ({reason}); run `wecom-archive \
         migrate --out {}` once to bring it to the current layout and schema (nothing is lost; \
         see the README's Output section)",
        out.display(),
        out.display()
    )]
    Legacy {
        /// The output root.
        out: PathBuf,
        /// What is out of date.
        reason: String,
    },
    /// Both the earlier and the current state database exist: which one is right is unknown.
    #[error(
        "both {} and {} exist; keep the one that holds this archive's checkpoints, move the \
         other away, and run `wecom-archive migrate` again",
        old.display(),
        new.display()
    )]
    TwoStates {
        /// The earlier layout's state database.
        old: PathBuf,
        /// The current one.
        new: PathBuf,
    },
    /// A file or folder could not be read, written or renamed.
    #[error("migrating {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A Parquet file of the earlier layout could not be read or rewritten.
    #[error("rewriting {path} into the current schema: {detail}")]
    Rewrite {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Rolling an interrupted commit forward failed.
    #[error(transparent)]
    Recover(#[from] recover::RecoverError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether the output root `out` holds anything in the earlier layout, or message files in an
/// older schema.
pub fn is_legacy(out: &Path) -> bool {
    legacy_reason(out).is_some()
}

/// What is out of date in `out`, if anything.
fn legacy_reason(out: &Path) -> Option<String> {
    if out.join(LEGACY_STATE).is_file() || out.join(LEGACY_DEAD_LETTERS).is_dir() {
        return Some(OLD_LAYOUT.into());
    }
    let entries = std::fs::read_dir(out).ok()?;
    let old_layout = entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        (is_dir && name.starts_with(LEGACY_CORP_PREFIX))
            || (!is_dir && !layout::is_hidden(&name) && name.ends_with(".parquet"))
    });
    if old_layout {
        return Some(OLD_LAYOUT.into());
    }
    // Each corp is upgraded in one journaled step, so one file per corp tells.
    upgrade_units(out).ok()?.into_iter().find_map(|unit| {
        let first = first_part_file(&unit.dir)?;
        let version = schema_version(&first).ok()?;
        (version < SCHEMA_VERSION).then(|| {
            format!(
                "{} is in schema version {version}, this release writes version \
                 {SCHEMA_VERSION}",
                first.display()
            )
        })
    })
}

/// Why a tree of the earlier layout is refused.
const OLD_LAYOUT: &str = "every table in one folder, unsigned columns";

/// Fails with [`MigrateError::Legacy`] when `out` is in the earlier layout or schema.
pub fn refuse_legacy(out: &Path) -> Result<(), MigrateError> {
    match legacy_reason(out) {
        Some(reason) => Err(MigrateError::Legacy {
            out: out.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// What a migration moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Corps moved (`""` for a `decrypt` tree without corps).
    pub corps: Vec<String>,
    /// Parquet files rewritten into the current schema.
    pub parquet_files: u64,
    /// Rows in them.
    pub rows: u64,
    /// Dead-letter files moved.
    pub dead_letter_files: u64,
    /// Media folders moved.
    pub media_dirs: u64,
    /// Whether the state database moved to its new place.
    pub state_moved: bool,
}

/// One corp's folder of the earlier layout (or the output root itself for `decrypt` trees).
struct Unit {
    corp_id: Option<String>,
    dir: PathBuf,
}

/// Moves the tree under `out` into the current layout. `state` is the state database when the
/// config names one (it stays where it is); otherwise the earlier `OUT/state.sqlite` moves to
/// [`layout::state_path`]. Safe to run again after a crash, and a no-op on a current tree.
pub fn migrate(out: &Path, state: Option<&Path>) -> Result<MigrateReport, MigrateError> {
    let mut report = MigrateReport::default();
    let new_state = state.map_or_else(|| layout::state_path(out), Path::to_owned);
    let old_state = state.map_or_else(|| out.join(LEGACY_STATE), Path::to_owned);
    let moving_state = state.is_none() && old_state.is_file();
    if moving_state && new_state.exists() {
        return Err(MigrateError::TwoStates {
            old: old_state,
            new: new_state,
        });
    }
    let mut store = StateStore::open(if moving_state { &old_state } else { &new_state })?;
    for unit in legacy_units(out)? {
        migrate_unit(out, &mut store, &unit, &mut report)?;
    }
    for unit in upgrade_units(out)? {
        upgrade_unit(&mut store, &unit, &mut report)?;
    }
    if moving_state {
        store.close_into_one_file()?;
        fault("state-closed");
        let dir = new_state.parent().unwrap_or(out);
        atomic::create_dir_durable(dir).map_err(io(dir))?;
        atomic::publish(&old_state, &new_state).map_err(io(&new_state))?;
        report.state_moved = true;
    }
    // The write-ahead log and shared memory of the earlier file are empty once it was closed
    // into one file; SQLite would recreate them beside the new one.
    if state.is_none() {
        for suffix in ["-wal", "-shm"] {
            let side = out.join(format!("{LEGACY_STATE}{suffix}"));
            if side.exists() && !out.join(LEGACY_STATE).exists() {
                std::fs::remove_file(&side).map_err(io(&side))?;
            }
        }
    }
    Ok(report)
}

/// The folders of the earlier layout under `out`: each `corp_id=` folder, and the root itself
/// when it holds `decrypt` output.
fn legacy_units(out: &Path) -> Result<Vec<Unit>, MigrateError> {
    let mut units = Vec::new();
    let mut root_has_files = out.join(LEGACY_DEAD_LETTERS).is_dir();
    if !out.is_dir() {
        return Ok(units);
    }
    let mut entries: Vec<_> = std::fs::read_dir(out)
        .map_err(io(out))?
        .collect::<Result<_, _>>()
        .map_err(io(out))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().map_err(io(&e.path()))?.is_dir();
        if is_dir {
            if let Some(corp) = name.strip_prefix(LEGACY_CORP_PREFIX) {
                layout::check_corp_id(corp).map_err(|detail| MigrateError::Rewrite {
                    path: e.path(),
                    detail,
                })?;
                units.push(Unit {
                    corp_id: Some(corp.to_owned()),
                    dir: e.path(),
                });
            }
        } else if !layout::is_hidden(&name) && name.ends_with(".parquet") {
            root_has_files = true;
        }
    }
    if root_has_files {
        units.push(Unit {
            corp_id: None,
            dir: out.to_owned(),
        });
    }
    Ok(units)
}

/// Moves one corp's folder (or the flat root) in one journaled step.
fn migrate_unit(
    out: &Path,
    store: &mut StateStore,
    unit: &Unit,
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    let corp = unit.corp_id.as_deref().unwrap_or("");
    // A commit the earlier release journaled but did not finish: finish it in the old tree
    // first, so that the step below sees every committed file.
    // Temporaries of an earlier, interrupted migration that never got journaled are deleted.
    let mut dirs = vec![unit.dir.clone()];
    if let Some(c) = &unit.corp_id {
        dirs.extend([
            layout::corp_messages(out, c),
            layout::corp_dead_letters(out, c),
        ]);
    }
    recover::recover(store, corp, &dirs)?;

    let mut renames = Vec::new();
    let mut retired = Vec::new();
    let mut scanned = Vec::new();
    let mut emptied = Vec::new();
    // Message files: each rewritten into the current schema, under its new name.
    let partitions: Vec<(PathBuf, PathBuf)> = match &unit.corp_id {
        Some(c) => subdirs(&unit.dir)?
            .into_iter()
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("date="))
            })
            .map(|d| {
                let new = layout::corp_messages(out, c).join(d.file_name().expect("a folder"));
                (d, new)
            })
            .collect(),
        None => vec![(unit.dir.clone(), layout::messages_root(out))],
    };
    for (old_dir, new_dir) in &partitions {
        for old in files_with_ext(old_dir, "parquet")? {
            let (tmp, name, rows) = rewrite(&old, new_dir, &renames)?;
            report.parquet_files += 1;
            report.rows += rows;
            if unit.corp_id.is_some() {
                let part = old_dir.file_name().expect("a folder").to_string_lossy();
                let old_name = old.file_name().expect("a file").to_string_lossy();
                scanned.push((format!("{part}/{old_name}"), format!("{part}/{name}")));
            }
            renames.push(Rename {
                tmp,
                dest: new_dir.join(&name),
            });
            retired.push(retire(&old));
        }
        if unit.corp_id.is_some() {
            emptied.push(old_dir.clone());
        }
    }
    // Dead letters: same files, new folder.
    let old_dead = unit.dir.join(LEGACY_DEAD_LETTERS);
    let new_dead = match &unit.corp_id {
        Some(c) => layout::corp_dead_letters(out, c),
        None => layout::dead_letters_root(out),
    };
    for old in files_with_ext(&old_dead, "jsonl")? {
        report.dead_letter_files += 1;
        renames.push(Rename {
            dest: new_dead.join(old.file_name().expect("a file")),
            tmp: old,
        });
    }
    emptied.push(old_dead);
    // Downloaded media (with its partial downloads) moves as one folder; the media table is
    // written again from the state, in its new table.
    if let Some(c) = &unit.corp_id {
        let old_media = unit.dir.join(LEGACY_MEDIA);
        if old_media.is_dir() {
            report.media_dirs += 1;
            renames.push(Rename {
                tmp: old_media,
                dest: layout::corp_media(out, c),
            });
        }
        let table_dir = unit.dir.join(LEGACY_MEDIA_TABLE);
        for old in files_with_ext(&table_dir, "parquet")? {
            retired.push(retire(&old));
        }
        emptied.push(table_dir);
    }
    for r in &renames {
        if let Some(dir) = r.dest.parent() {
            atomic::create_dir_durable(dir).map_err(io(dir))?;
        }
    }
    renames.extend(retired.iter().cloned());
    fault("rewritten");
    if !renames.is_empty() {
        let id = store.journal_maintenance(corp, &renames, &JournalExtras::default())?;
        fault("journaled");
        for (i, r) in renames.iter().enumerate() {
            if i == renames.len() / 2 {
                fault("half-published");
            }
            atomic::publish(&r.tmp, &r.dest).map_err(io(&r.dest))?;
        }
        store.complete_commit(id)?;
        fault("completed");
    }
    for r in &retired {
        let _ = std::fs::remove_file(&r.dest);
    }
    if let Some(c) = &unit.corp_id {
        let corp_media = layout::corp_media(out, c);
        let old_partial = layout::media_partial_dir(&unit.dir.join(LEGACY_MEDIA));
        let new_partial = layout::media_partial_dir(&corp_media);
        store.relocate_media(
            c,
            &layout::media_rel_dir(c),
            &old_partial.to_string_lossy(),
            &new_partial.to_string_lossy(),
            &scanned,
        )?;
        // Also after a crash that came after the old table was retired.
        let rows = store.media_refs(c)?;
        if !rows.is_empty() {
            crate::media::table::write_table(out, c, &rows)
                .map_err(io(&layout::corp_media_files(out, c)))?;
        }
        emptied.push(unit.dir.clone());
    }
    // Folders emptied by the move; one still holding something (a file of the user's) stays.
    for dir in emptied {
        recover::remove_stray_temporaries(&dir);
        let _ = std::fs::remove_dir(&dir);
    }
    report.corps.push(corp.to_owned());
    Ok(())
}

/// The rename that retires `old` ([`layout::retired`]) in a journaled step.
fn retire(old: &Path) -> Rename {
    Rename {
        tmp: old.to_owned(),
        dest: layout::retired(old),
    }
}

/// Rewrites the Parquet file `old` (schema version 1 or 2) into the current messages schema as an
/// fsynced temporary in `new_dir`, named apart from the files `pending` publishes. Returns the
/// temporary, its final name and its row count.
fn rewrite(
    old: &Path,
    new_dir: &Path,
    pending: &[Rename],
) -> Result<(PathBuf, String, u64), MigrateError> {
    let fail = |detail: String| MigrateError::Rewrite {
        path: old.to_owned(),
        detail,
    };
    atomic::create_dir_durable(new_dir).map_err(io(new_dir))?;
    let file = std::fs::File::open(old).map_err(io(old))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| fail(e.to_string()))?;
    let schema = chat_schema();
    let props = ParquetOptions::default()
        .writer_properties()
        .map_err(|e| fail(e.to_string()))?;
    let tmp = AtomicFile::create(new_dir, "part", "parquet").map_err(io(new_dir))?;
    let mut writer =
        ArrowWriter::try_new(tmp, schema.clone(), Some(props)).map_err(|e| fail(e.to_string()))?;
    let (mut rows, mut first, mut last) = (0u64, u64::MAX, 0u64);
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        let mut derived = None;
        for field in schema.fields() {
            let column = match batch.column_by_name(field.name()) {
                Some(c) => c,
                None => {
                    let derived = match &mut derived {
                        Some(d) => d,
                        None => derived.insert(conversation_columns(&batch).map_err(&fail)?),
                    };
                    derived
                        .column_by_name(field.name())
                        .ok_or_else(|| fail(format!("it has no column `{}`", field.name())))?
                }
            };
            // Not `safe`: a value that does not fit fails the file instead of becoming null.
            let options = arrow_cast::CastOptions {
                safe: false,
                ..Default::default()
            };
            let cast = arrow_cast::cast_with_options(column, field.data_type(), &options)
                .map_err(|e| fail(format!("column `{}`: {e}", field.name())))?;
            columns.push(cast);
        }
        let batch =
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| fail(e.to_string()))?;
        let seq = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("seq is Int64 after the cast");
        for s in seq.iter().flatten() {
            first = first.min(s as u64);
            last = last.max(s as u64);
        }
        rows += seq.len() as u64 - seq.null_count() as u64;
        writer.write(&batch).map_err(|e| fail(e.to_string()))?;
    }
    let file = writer.into_inner().map_err(|e| fail(e.to_string()))?;
    // Two old files of one seq range (a dump decrypted twice into one folder) become two names.
    let (first, last) = if rows == 0 { (0, 0) } else { (first, last) };
    let name = unused_part_name(new_dir, first, last, file.token(), |p| {
        pending.iter().any(|r| r.dest == p)
    });
    let prepared = file.prepare(&name).map_err(io(new_dir))?;
    Ok((prepared.tmp, name, rows))
}

/// The conversation columns (schema version 3) of the rows of an older `batch`, derived from
/// each row's `raw_json` as the pipeline derives them from the message it decrypted.
fn conversation_columns(batch: &RecordBatch) -> Result<RecordBatch, String> {
    let raw = batch
        .column_by_name("raw_json")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or("it has no `raw_json` text column to derive the conversation columns from")?;
    let seq = batch.column_by_name("seq");
    let mut builder = ChatBatchBuilder::with_capacity(batch.num_rows());
    for (row, text) in raw.iter().enumerate() {
        let text = text.ok_or_else(|| format!("row {row} has no raw_json"))?;
        let msg = parse(text.as_bytes()).map_err(|e| {
            let seq = seq.map(|c| arrow_cast::display::array_value_to_string(c, row));
            format!(
                "the raw_json of seq {} does not parse ({e}); the file was not written by \
                 wecom-archive, or was damaged",
                seq.and_then(Result::ok)
                    .unwrap_or_else(|| format!("row {row}"))
            )
        })?;
        builder.append(0, 0, "", &msg);
    }
    Ok(builder.finish())
}

/// The folders of message files in the current layout: one per corp under the messages
/// table's root, and the root itself when it holds `decrypt` output.
fn upgrade_units(out: &Path) -> Result<Vec<Unit>, MigrateError> {
    let root = layout::messages_root(out);
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut units = Vec::new();
    for dir in subdirs(&root)? {
        let name = dir
            .file_name()
            .expect("a folder")
            .to_string_lossy()
            .into_owned();
        if let Some(corp) = name.strip_prefix(LEGACY_CORP_PREFIX) {
            units.push(Unit {
                corp_id: Some(corp.to_owned()),
                dir,
            });
        }
    }
    if !files_with_ext(&root, "parquet")?.is_empty() {
        units.push(Unit {
            corp_id: None,
            dir: root,
        });
    }
    Ok(units)
}

/// The first message file of a corp's folder (or of a flat root), in name order.
fn first_part_file(dir: &Path) -> Option<PathBuf> {
    if let Some(f) = files_with_ext(dir, "parquet").ok()?.into_iter().next() {
        return Some(f);
    }
    subdirs(dir)
        .ok()?
        .into_iter()
        .find_map(|d| files_with_ext(&d, "parquet").ok()?.into_iter().next())
}

/// The schema version a message file records (1 when it records none: the first release).
fn schema_version(path: &Path) -> Result<u32, MigrateError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let reader = parquet::file::reader::SerializedFileReader::new(file).map_err(|e| {
        MigrateError::Rewrite {
            path: path.to_owned(),
            detail: e.to_string(),
        }
    })?;
    use parquet::file::reader::FileReader;
    let version = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == layout::SCHEMA_VERSION_KEY))
        .and_then(|k| k.value.as_deref()?.parse().ok());
    Ok(version.unwrap_or(1))
}

/// Rewrites one corp's message files that are in an older schema, in one journaled step: the
/// new files are published under new names and the old ones retired.
fn upgrade_unit(
    store: &mut StateStore,
    unit: &Unit,
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    let corp = unit.corp_id.as_deref().unwrap_or("");
    recover::recover(store, corp, std::slice::from_ref(&unit.dir))?;
    let partitions = match unit.corp_id {
        Some(_) => subdirs(&unit.dir)?,
        None => vec![unit.dir.clone()],
    };
    let (mut renames, mut retired, mut scanned) = (Vec::new(), Vec::new(), Vec::new());
    for dir in &partitions {
        for old in files_with_ext(dir, "parquet")? {
            if schema_version(&old)? >= SCHEMA_VERSION {
                continue;
            }
            // The old file is still on disk, so the new one gets a name of its own.
            let (tmp, name, rows) = rewrite(&old, dir, &renames)?;
            report.parquet_files += 1;
            report.rows += rows;
            let part = dir.file_name().expect("a folder").to_string_lossy();
            let old_name = old.file_name().expect("a file").to_string_lossy();
            scanned.push((format!("{part}/{old_name}"), format!("{part}/{name}")));
            renames.push(Rename {
                tmp,
                dest: dir.join(&name),
            });
            retired.push(retire(&old));
        }
    }
    if renames.is_empty() {
        return Ok(());
    }
    renames.extend(retired.iter().cloned());
    fault("rewritten");
    let extras = JournalExtras {
        renamed: scanned.clone(),
        ..JournalExtras::default()
    };
    let id = store.journal_maintenance(corp, &renames, &extras)?;
    fault("journaled");
    for (i, r) in renames.iter().enumerate() {
        if i == renames.len() / 2 {
            fault("half-published");
        }
        atomic::publish(&r.tmp, &r.dest).map_err(io(&r.dest))?;
    }
    store.complete_commit(id)?;
    fault("completed");
    for r in &retired {
        let _ = std::fs::remove_file(&r.dest);
    }
    report.corps.push(corp.to_owned());
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, MigrateError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        if e.file_type().map_err(io(&e.path()))?.is_dir() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The committed files `*.ext` directly in `dir` (none when it does not exist), sorted.
fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, MigrateError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().map_err(io(&e.path()))?.is_file();
        if is_file && !layout::is_hidden(&name) && name.ends_with(&format!(".{ext}")) {
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
    fn a_current_or_empty_tree_is_not_legacy() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_legacy(dir.path()));
        assert!(!is_legacy(&dir.path().join("missing")));
        std::fs::create_dir_all(layout::corp_messages(dir.path(), "ww1")).unwrap();
        std::fs::create_dir_all(dir.path().join(layout::META_DIR)).unwrap();
        assert!(refuse_legacy(dir.path()).is_ok());
        std::fs::create_dir_all(dir.path().join("corp_id=ww1/date=2026-01-01")).unwrap();
        let err = refuse_legacy(dir.path()).unwrap_err().to_string();
        assert!(err.contains("wecom-archive migrate --out"), "{err}");
    }
}
