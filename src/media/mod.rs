//! Media download: the files that image, voice, video, file, emotion, meeting_voice_call,
//! voip_doc_share, `mixed` and `chatrecord` messages point at, fetched with `GetMediaData`.
//!
//! * [`MediaSource`] (one `GetMediaData` call) and the simulator's media live with the other
//!   sources, in [`crate::source::media`];
//! * [`download`]: the resumable, verified chunk loop for one file;
//! * [`store`]: content-addressed paths, `corp_id=<corp>/media/<2 hex>/<sha256>.<ext>`;
//! * [`table`]: the media table joining messages to files (a Parquet file per corp, or the
//!   corp's partition of the `media_files` Delta table).
//!
//! [`run_corp`] ties them together: it finds the media references in a corp's committed
//! message rows (re-parsing `raw_json`, so items inside `mixed`/`chatrecord` count too),
//! registers them in the state database, downloads what is missing with a few workers, and
//! rewrites the media table. Progress per file is in the state database ([`crate::state`]), so a
//! run that is killed resumes each file from its last durable chunk.

pub mod download;
pub mod store;
pub mod table;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int32Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

pub use crate::source::media::{ChunkError, MediaChunk, MediaSource};
pub use download::{DownloadOptions, Downloader, Md5Check, MediaError, Outcome};

use crate::sink::delta::{read as delta_read, DeltaError, DeltaTarget, TableKind};
use crate::state::{NewMediaRef, StateStore};

/// Where a corp's message rows are read and its media table is written. The downloaded files
/// themselves always go to a local folder (the `out` of [`run_corp`]).
#[derive(Debug, Clone, Copy)]
pub enum Tables<'a> {
    /// Parquet files under the output root.
    Parquet,
    /// Delta tables (`format = "delta"`).
    Delta(&'a DeltaTarget),
}

/// What to download.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// Only these kinds (`image`, `file`, …; `None`: all).
    pub types: Option<BTreeSet<String>>,
    /// Skip files announced larger than this many bytes (files without a size are fetched).
    pub max_size: Option<u64>,
    /// Parallel downloads (each with its own source, i.e. its own SDK worker).
    pub concurrency: usize,
    /// Retries and verification.
    pub download: DownloadOptions,
}

impl Default for MediaOptions {
    fn default() -> Self {
        MediaOptions {
            types: None,
            max_size: None,
            concurrency: 2,
            download: DownloadOptions::default(),
        }
    }
}

/// Media kinds a `types` filter accepts.
pub const KINDS: &[&str] = &[
    "image",
    "voice",
    "video",
    "emotion",
    "file",
    "meeting_voice_call",
    "voip_doc_share",
    "other",
];

impl MediaOptions {
    /// Options from filters (a command line's, else a `[media]` section's): `types` checked
    /// against [`KINDS`], `concurrency` clamped to 1..=64 (default 2).
    pub fn build(
        types: Option<&Vec<String>>,
        max_size: Option<u64>,
        concurrency: Option<usize>,
    ) -> Result<Self, String> {
        let types = match types {
            None => None,
            Some(t) => {
                let set: BTreeSet<String> = t.iter().map(|s| s.trim().to_owned()).collect();
                if let Some(bad) = set.iter().find(|k| !KINDS.contains(&k.as_str())) {
                    return Err(format!(
                        "media types: unknown media kind {bad:?}; known: {}",
                        KINDS.join(", ")
                    ));
                }
                Some(set)
            }
        };
        Ok(MediaOptions {
            types,
            max_size,
            concurrency: concurrency.unwrap_or(2).clamp(1, 64),
            ..MediaOptions::default()
        })
    }
}

/// What a media run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Media references found in messages not scanned before.
    pub new_references: u64,
    /// Files attempted in this run.
    pub attempted: u64,
    /// Files complete (in this run) with a matching md5.
    pub verified: u64,
    /// Files complete without an md5 to check.
    pub unverified: u64,
    /// Files complete whose md5 never matched.
    pub mismatched: u64,
    /// Files that failed this run (retried next run).
    pub failed: u64,
    /// Files that failed for good (10005).
    pub permanent: u64,
    /// Files skipped by `types` / `max_size`.
    pub skipped: u64,
    /// Bytes downloaded in this run.
    pub bytes: u64,
    /// Elapsed time.
    pub elapsed: Duration,
}

impl MediaStats {
    /// The one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{} new media references, {} files tried: {} verified, {} without md5, {} md5 mismatch, \
             {} failed, {} failed permanently, {} skipped; {:.1} MiB in {:.2} s",
            self.new_references,
            self.attempted,
            self.verified,
            self.unverified,
            self.mismatched,
            self.failed,
            self.permanent,
            self.skipped,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Registers the media references of `corp_id`'s committed message files (Parquet files under
/// the output root `out`, or the live files of the Delta `messages` table) that were not scanned
/// before (committed files never change, so each is read once); returns how many references the
/// new files held.
pub fn register_references(
    store: &mut StateStore,
    corp_id: &str,
    out: &Path,
    tables: Tables<'_>,
) -> Result<u64, MediaError> {
    let seen = store.media_scanned_files(corp_id)?;
    let mut found = 0;
    let mut register = |key: String, refs: Vec<NewMediaRef>| {
        // References first, then the file as scanned: a crash in between rescans (harmless).
        store.add_media_refs(corp_id, &refs)?;
        store.mark_media_scanned(corp_id, &key)?;
        found += refs.len() as u64;
        Ok(())
    };
    match tables {
        Tables::Parquet => scan_parquet(corp_id, out, &seen, &mut register)?,
        Tables::Delta(target) => scan_delta(corp_id, target, &seen, &mut register)?,
    }
    Ok(found)
}

/// What a scan hands on for each message file not scanned before: its key and its references.
type Register<'a> = dyn FnMut(String, Vec<NewMediaRef>) -> Result<(), MediaError> + 'a;

fn scan_error(corp_id: &str, detail: String) -> MediaError {
    MediaError::Scan {
        corp_id: corp_id.to_owned(),
        detail,
    }
}

/// The corp's Parquet files under `out`, keyed by their path relative to the corp's folder.
fn scan_parquet(
    corp_id: &str,
    out: &Path,
    seen: &std::collections::HashSet<String>,
    register: &mut Register<'_>,
) -> Result<(), MediaError> {
    let corp_dir = &crate::sink::layout::corp_messages(out, corp_id);
    let mut files = Vec::new();
    collect_parquet(corp_dir, &mut files).map_err(|e| scan_error(corp_id, e.to_string()))?;
    for f in files {
        let rel = f
            .strip_prefix(corp_dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        if seen.contains(&rel) {
            continue;
        }
        let mut refs = Vec::new();
        let read = std::fs::File::open(&f)
            .map_err(|e| e.to_string())
            .and_then(|file| read_refs(file, &mut refs));
        if let Err(detail) = read {
            if !f.exists() {
                // Compacted away since it was listed: the file that replaced it holds its rows
                // and is scanned in its turn.
                continue;
            }
            return Err(scan_error(corp_id, format!("{}: {detail}", f.display())));
        }
        register(rel, refs)?;
    }
    Ok(())
}

/// The corp's live files of the Delta `messages` table, keyed `delta:<path in the log>` (unique
/// in the table, and apart from a Parquet tree's keys in the same state database).
fn scan_delta(
    corp_id: &str,
    target: &DeltaTarget,
    seen: &std::collections::HashSet<String>,
    register: &mut Register<'_>,
) -> Result<(), MediaError> {
    let delta = |source| MediaError::Delta {
        corp_id: corp_id.to_owned(),
        source: Box::new(source),
    };
    let view = delta_read::view(target, TableKind::Messages).map_err(delta)?;
    let ours = Some(corp_id.to_owned());
    for f in view.files {
        let key = format!("delta:{}", f.path);
        if f.partition.get("corp_id") != Some(&ours) || seen.contains(&key) {
            continue;
        }
        let bytes = match delta_read::read_file(target, TableKind::Messages, &f) {
            Ok(b) => b,
            // Merged by OPTIMIZE and vacuumed since the listing: the merged file holds its rows
            // and is scanned in its turn.
            Err(DeltaError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => continue,
            Err(e) => return Err(delta(e)),
        };
        let mut refs = Vec::new();
        read_refs(bytes, &mut refs).map_err(|d| scan_error(corp_id, format!("{}: {d}", f.path)))?;
        register(key, refs)?;
    }
    Ok(())
}

/// Every media reference in `corp_id`'s committed Parquet rows under the output root `out`.
pub fn scan_references(corp_id: &str, out: &Path) -> Result<Vec<NewMediaRef>, MediaError> {
    let corp_dir = &crate::sink::layout::corp_messages(out, corp_id);
    let mut files = Vec::new();
    collect_parquet(corp_dir, &mut files).map_err(|e| MediaError::Scan {
        corp_id: corp_id.to_owned(),
        detail: e.to_string(),
    })?;
    let mut out = Vec::new();
    for f in files {
        let read = std::fs::File::open(&f)
            .map_err(|e| e.to_string())
            .and_then(|file| read_refs(file, &mut out));
        read.map_err(|detail| MediaError::Scan {
            corp_id: corp_id.to_owned(),
            detail: format!("{}: {detail}", f.display()),
        })?;
    }
    Ok(out)
}

fn collect_parquet(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::sink::layout::is_hidden(&name) {
            continue;
        }
        if e.file_type()?.is_dir() {
            collect_parquet(&e.path(), out)?;
        } else if name.ends_with(".parquet") {
            out.push(e.path());
        }
    }
    Ok(())
}

fn read_refs<R: parquet::file::reader::ChunkReader + 'static>(
    input: R,
    out: &mut Vec<NewMediaRef>,
) -> Result<(), String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(input).map_err(|e| e.to_string())?;
    let schema = builder.parquet_schema();
    let wanted: Vec<usize> = ["seq", "msgid", "media_count", "raw_json"]
        .iter()
        .filter_map(|n| schema.columns().iter().position(|c| c.name() == *n))
        .collect();
    if wanted.len() < 4 {
        return Err("not a messages file (no seq/msgid/media_count/raw_json)".into());
    }
    let mask = ProjectionMask::leaves(schema, wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let col = |n: &str| batch.column_by_name(n).ok_or(format!("no column {n}"));
        let seq = col("seq")?.as_any().downcast_ref::<Int64Array>();
        let msgid = col("msgid")?.as_any().downcast_ref::<StringArray>();
        let count = col("media_count")?.as_any().downcast_ref::<Int32Array>();
        let raw = col("raw_json")?.as_any().downcast_ref::<StringArray>();
        let (Some(seq), Some(msgid), Some(count), Some(raw)) = (seq, msgid, count, raw) else {
            return Err(
                "unexpected column types (a file of an earlier release? run `wecom-archive migrate`)"
                    .into(),
            );
        };
        for i in 0..batch.num_rows() {
            if count.is_null(i) || count.value(i) <= 0 || raw.is_null(i) {
                continue;
            }
            // The row was parsed when it was written; a failure now would be a bug, not data.
            let Ok(msg) = crate::model::message::parse(raw.value(i).as_bytes()) else {
                continue;
            };
            for m in msg.media() {
                out.push(NewMediaRef {
                    msgid: msgid.value(i).to_owned(),
                    seq: seq.value(i) as u64,
                    item_index: m.item_index,
                    sdkfileid: m.sdkfileid,
                    kind: m.kind.as_str().to_owned(),
                    ext: m.ext,
                    md5sum: m.md5sum,
                    size: m.size,
                });
            }
        }
    }
    Ok(())
}

/// An exclusive lock on the corp's media directory for the length of a run: two runs (a
/// `pull --follow --media` and a manual `media`) would otherwise append to the same partial
/// files. The kernel drops it when the process dies, so a killed run never leaves it stale.
pub fn lock_corp(corp_id: &str, out: &Path) -> Result<std::fs::File, MediaError> {
    let dir =
        crate::sink::layout::media_partial_dir(&crate::sink::layout::corp_media(out, corp_id));
    let path = dir.join(".lock");
    match crate::sink::lock::try_lock(&path) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(MediaError::Busy {
            corp_id: corp_id.to_owned(),
            lock: path,
        }),
        Err(source) => Err(MediaError::Io {
            corp_id: corp_id.to_owned(),
            sdkfileid: String::new(),
            path,
            source,
        }),
    }
}

/// Downloads the media of one corp: registers the references found in its message rows, fetches
/// every file not yet complete (resuming partial ones; files that failed permanently are not
/// tried again) into the local folder `out`, and rewrites the media table (a Parquet file under
/// `out`, or the corp's partition of the Delta table).
///
/// `make_source` makes one source per worker; `on_bytes` sees every chunk's size (progress).
/// Setting `stop` ends the run after the chunks in flight (progress is durable per chunk).
#[allow(clippy::too_many_arguments)]
pub fn run_corp(
    state_path: &Path,
    corp_id: &str,
    out: &Path,
    tables: Tables<'_>,
    options: &MediaOptions,
    make_source: &(dyn Fn() -> Result<Box<dyn MediaSource>, ChunkError> + Sync),
    on_bytes: &(dyn Fn(u64) + Sync),
    stop: &AtomicBool,
) -> Result<MediaStats, MediaError> {
    let started = Instant::now();
    let _lock = lock_corp(corp_id, out)?;
    let mut store = StateStore::open(state_path)?;
    let mut stats = MediaStats {
        new_references: register_references(&mut store, corp_id, out, tables)?,
        ..MediaStats::default()
    };
    let mut todo = Vec::new();
    for f in store.media_todo(corp_id)? {
        let wanted = options.types.as_ref().is_none_or(|t| t.contains(&f.kind))
            && options
                .max_size
                .is_none_or(|max| f.size_hint.is_none_or(|s| s <= max));
        if wanted {
            todo.push(f.sdkfileid);
        } else {
            stats.skipped += 1;
        }
    }
    let queue = Mutex::new(todo.into_iter());
    let stats = Mutex::new(stats);
    let fatal: Mutex<Option<MediaError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency.max(1) {
            scope.spawn(|| {
                let result = worker(
                    state_path,
                    corp_id,
                    out,
                    options,
                    make_source,
                    on_bytes,
                    stop,
                    &queue,
                    &stats,
                );
                if let Err(e) = result {
                    // Stop the other workers too: the disk or the database is failing.
                    queue.lock().expect("queue lock").by_ref().for_each(drop);
                    fatal.lock().expect("fatal lock").get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = fatal.into_inner().expect("fatal lock") {
        return Err(e);
    }
    let rows = store.media_refs(corp_id)?;
    match tables {
        Tables::Parquet => {
            table::write_table(out, corp_id, &rows).map_err(|source| MediaError::Io {
                corp_id: corp_id.to_owned(),
                sdkfileid: String::new(),
                path: crate::sink::layout::corp_media_files(out, corp_id),
                source,
            })?;
        }
        Tables::Delta(target) => {
            write_delta(target, corp_id, &rows).map_err(|source| MediaError::Delta {
                corp_id: corp_id.to_owned(),
                source: Box::new(source),
            })?
        }
    }
    let mut stats = stats.into_inner().expect("stats lock");
    stats.elapsed = started.elapsed();
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn worker(
    state_path: &Path,
    corp_id: &str,
    out: &Path,
    options: &MediaOptions,
    make_source: &(dyn Fn() -> Result<Box<dyn MediaSource>, ChunkError> + Sync),
    on_bytes: &(dyn Fn(u64) + Sync),
    stop: &AtomicBool,
    queue: &Mutex<std::vec::IntoIter<String>>,
    stats: &Mutex<MediaStats>,
) -> Result<(), MediaError> {
    // Each worker has its own connection (SQLite in WAL mode serialises the writes).
    let store = StateStore::open(state_path)?;
    let mut source: Option<Box<dyn MediaSource>> = None;
    let mut dl = Downloader::new(corp_id, out, &store, options.download.clone())
        .with_stop(stop)
        .on_bytes(|n| {
            on_bytes(n);
            stats.lock().expect("stats lock").bytes += n;
        });
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(id) = queue.lock().expect("queue lock").next() else {
            return Ok(());
        };
        let src = match &mut source {
            Some(s) => s,
            None => match make_source() {
                Ok(s) => source.insert(s),
                Err(source) => {
                    return Err(MediaError::Source {
                        corp_id: corp_id.to_owned(),
                        sdkfileid: id,
                        source,
                    })
                }
            },
        };
        let outcome = dl.download(src.as_mut(), &id)?;
        let mut s = stats.lock().expect("stats lock");
        s.attempted += 1;
        match outcome {
            Outcome::Done { md5, .. } => match md5 {
                Md5Check::Ok => s.verified += 1,
                Md5Check::Absent => s.unverified += 1,
                Md5Check::Mismatch => s.mismatched += 1,
            },
            Outcome::Failed {
                permanent: true, ..
            } => s.permanent += 1,
            Outcome::Failed { .. } => s.failed += 1,
            Outcome::Interrupted => s.attempted -= 1,
        }
    }
}

/// Writes the media table of `corp_id` as its partition of the Delta `media_files` table under
/// `target` (replacing the partition's rows in one commit).
fn write_delta(
    target: &DeltaTarget,
    corp_id: &str,
    rows: &[crate::state::MediaRefState],
) -> Result<(), DeltaError> {
    let props = crate::sink::parquet::ParquetOptions::default()
        .writer_properties()
        .map_err(|e| DeltaError::Encode(TableKind::MediaFiles.name(), e.to_string()))?;
    let batch = table::media_batch(rows);
    crate::sink::delta::replace_corp(target, TableKind::MediaFiles, corp_id, &batch, &props)?;
    Ok(())
}
