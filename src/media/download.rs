//! The `GetMediaData` loop for one file: chunk by chunk into a temporary file, each chunk fsynced
//! before its progress is recorded, so a crash loses at most the chunk in flight; then verified
//! and published under its content-addressed name by a rename.
//!
//! Invariants:
//! * the state database never claims more bytes than are durable in the temporary file (the
//!   chunk is fsynced first, the progress recorded second; a resumed download truncates the
//!   temporary to the recorded length, dropping a chunk written after the last record);
//! * nothing appears under a final name before it is complete, verified (when an md5 is known)
//!   and fsynced;
//! * retries are bounded: per chunk for 10001–10003 and crashed workers, per file for md5
//!   mismatches; `10005` (bad sdkfileid) is recorded as permanent and never tried again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use super::store;
use crate::source::media::{hex, range_start, ChunkError, MediaChunk, MediaSource};
use crate::state::{MediaFileState, MediaStatus, StateError, StateStore};

/// How hard to try.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Attempts per chunk on retryable errors (10001–10003, a crashed worker).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with jitter, up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Complete downloads of one file whose md5 does not match before the mismatch is accepted
    /// and recorded (WeCom's md5 is known to be wrong now and then, `archive.md` §4).
    pub max_mismatches: u32,
    /// Chunks per file before the source is deemed to loop (10 GiB at 512 KiB).
    pub max_chunks: u64,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            max_attempts: 6,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_mismatches: 3,
            max_chunks: 20_000,
        }
    }
}

/// How the md5 check of a complete file came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Md5Check {
    /// The content matches the message's md5sum.
    Ok,
    /// It does not, in every one of `max_mismatches` downloads.
    Mismatch,
    /// The message has no md5sum (or an empty one).
    Absent,
}

impl Md5Check {
    /// `ok`, `mismatch` or `absent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Md5Check::Ok => "ok",
            Md5Check::Mismatch => "mismatch",
            Md5Check::Absent => "absent",
        }
    }
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Complete under `path` (relative to the corp's directory).
    Done {
        /// The content-addressed path.
        path: String,
        /// Bytes.
        size: u64,
        /// The md5 check.
        md5: Md5Check,
    },
    /// Stopped between two chunks (Ctrl-C / SIGTERM); progress is kept and not counted as a
    /// failure.
    Interrupted,
    /// Not downloaded. Progress is kept; `permanent` failures are never retried.
    Failed {
        /// 10005: WeCom does not know the file.
        permanent: bool,
        /// Why.
        error: String,
    },
}

/// A failure that stops the whole media run (the disk or the state database), naming the file.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Filesystem error.
    #[error("corp {corp_id}: media {sdkfileid}: {path}: {source}")]
    Io {
        /// The corp.
        corp_id: String,
        /// The file's id.
        sdkfileid: String,
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The file is not registered in the state database.
    #[error("corp {corp_id}: media {sdkfileid} is not registered")]
    Unknown {
        /// The corp.
        corp_id: String,
        /// The file's id.
        sdkfileid: String,
    },
    /// The media source cannot serve at all (the SDK library is missing, a bad configuration):
    /// no point trying the other files.
    #[error("corp {corp_id}: media {sdkfileid}: {source}")]
    Source {
        /// The corp.
        corp_id: String,
        /// The file being fetched.
        sdkfileid: String,
        /// The source's error.
        source: ChunkError,
    },
    /// Another media run holds this corp (two runs would write the same partial files).
    #[error("corp {corp_id}: another media download is running for this corp ({lock})")]
    Busy {
        /// The corp.
        corp_id: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// Reading the corp's Parquet files for media references failed.
    #[error("corp {corp_id}: reading messages for media: {detail}")]
    Scan {
        /// The corp.
        corp_id: String,
        /// What went wrong.
        detail: String,
    },
    /// The media table (Delta) could not be read or written.
    #[error("corp {corp_id}: {source}")]
    Delta {
        /// The corp.
        corp_id: String,
        /// The error.
        source: Box<crate::sink::delta::DeltaError>,
    },
}

/// Downloads the files of one corp, one at a time (run several for concurrency).
pub struct Downloader<'a> {
    corp_id: String,
    /// The output root: final paths are relative to it.
    out: PathBuf,
    /// The corp's media folder (partial downloads live in it).
    corp_media: PathBuf,
    store: &'a StateStore,
    options: DownloadOptions,
    sleep: Box<dyn FnMut(Duration) + Send + 'a>,
    on_bytes: Box<dyn FnMut(u64) + Send + 'a>,
    stop: Option<&'a AtomicBool>,
    /// Chunk retries made so far (metrics, tests).
    pub retries: u64,
}

impl<'a> Downloader<'a> {
    /// A downloader writing `corp_id`'s files under the output root `out`
    /// (`<out>/media/corp_id=<corp>/`), recording in `store`.
    pub fn new(corp_id: &str, out: &Path, store: &'a StateStore, options: DownloadOptions) -> Self {
        Downloader {
            corp_id: corp_id.to_owned(),
            out: out.to_owned(),
            corp_media: crate::sink::layout::corp_media(out, corp_id),
            store,
            options,
            sleep: Box::new(std::thread::sleep),
            on_bytes: Box::new(|_| {}),
            stop: None,
            retries: 0,
        }
    }

    /// Replaces the backoff sleep (tests).
    pub fn with_sleep(mut self, sleep: impl FnMut(Duration) + Send + 'a) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    /// Stops between two chunks once `stop` is set.
    pub fn with_stop(mut self, stop: &'a AtomicBool) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Calls `f` with the size of every chunk written (progress display).
    pub fn on_bytes(mut self, f: impl FnMut(u64) + Send + 'a) -> Self {
        self.on_bytes = Box::new(f);
        self
    }

    fn io(&self, sdkfileid: &str, path: &Path) -> impl Fn(std::io::Error) -> MediaError {
        let (corp_id, sdkfileid, path) =
            (self.corp_id.clone(), sdkfileid.to_owned(), path.to_owned());
        move |source| MediaError::Io {
            corp_id: corp_id.clone(),
            sdkfileid: sdkfileid.clone(),
            path: path.clone(),
            source,
        }
    }

    fn state(&self, sdkfileid: &str) -> Result<MediaFileState, MediaError> {
        self.store
            .media_file(&self.corp_id, sdkfileid)?
            .ok_or_else(|| MediaError::Unknown {
                corp_id: self.corp_id.clone(),
                sdkfileid: sdkfileid.to_owned(),
            })
    }

    /// Downloads (or resumes) the registered file `sdkfileid` from `source`.
    pub fn download(
        &mut self,
        source: &mut dyn MediaSource,
        sdkfileid: &str,
    ) -> Result<Outcome, MediaError> {
        loop {
            let state = self.state(sdkfileid)?;
            match state.status {
                MediaStatus::Done => {
                    return Ok(Outcome::Done {
                        path: state.path.unwrap_or_default(),
                        size: state.size.unwrap_or(0),
                        md5: match state.md5_status.as_deref() {
                            Some("ok") => Md5Check::Ok,
                            Some("mismatch") => Md5Check::Mismatch,
                            _ => Md5Check::Absent,
                        },
                    })
                }
                MediaStatus::Permanent => {
                    return Ok(Outcome::Failed {
                        permanent: true,
                        error: state.error.unwrap_or_default(),
                    })
                }
                _ => {}
            }
            let tmp = match self.fetch(source, &state)? {
                Fetched::Complete(tmp) => tmp,
                Fetched::Interrupted => return Ok(Outcome::Interrupted),
                Fetched::Failed(e @ ChunkError::Fatal(_)) => {
                    return Err(MediaError::Source {
                        corp_id: self.corp_id.clone(),
                        sdkfileid: sdkfileid.to_owned(),
                        source: e,
                    })
                }
                Fetched::Failed(e) => {
                    let permanent = e.is_permanent();
                    let error = e.to_string();
                    tracing::warn!(corp = %self.corp_id, sdkfileid, %error, "media download failed");
                    self.store
                        .media_failed(&self.corp_id, sdkfileid, permanent, &error)?;
                    return Ok(Outcome::Failed { permanent, error });
                }
            };
            let (md5, sha256, size) = hash_file(&tmp).map_err(self.io(sdkfileid, &tmp))?;
            let check = match state.md5sum.as_deref().filter(|m| !m.trim().is_empty()) {
                None => Md5Check::Absent,
                Some(want) if want.trim().eq_ignore_ascii_case(&md5) => Md5Check::Ok,
                Some(_) => Md5Check::Mismatch,
            };
            if check == Md5Check::Mismatch && state.mismatches + 1 < self.options.max_mismatches {
                // A corrupted transfer or WeCom's md5 being wrong: only another download tells.
                tracing::warn!(corp = %self.corp_id, sdkfileid, "md5 mismatch; downloading again");
                std::fs::remove_file(&tmp).map_err(self.io(sdkfileid, &tmp))?;
                self.store.media_restart(&self.corp_id, sdkfileid, true)?;
                continue;
            }
            let ext = store::extension(&state.kind, state.ext.as_deref());
            let rel = crate::sink::layout::media_rel_path(&self.corp_id, &sha256, &ext);
            let dest = self.out.join(&rel);
            let dir = dest.parent().expect("final paths have a directory");
            crate::sink::atomic::create_dir_durable(dir).map_err(self.io(sdkfileid, dir))?;
            if dest.exists() {
                // Same content already stored (content addressing deduplicates).
                std::fs::remove_file(&tmp).map_err(self.io(sdkfileid, &tmp))?;
            } else {
                crate::sink::atomic::publish(&tmp, &dest).map_err(self.io(sdkfileid, &dest))?;
            }
            self.store.media_done(
                &self.corp_id,
                sdkfileid,
                &rel,
                size,
                &sha256,
                check.as_str(),
            )?;
            return Ok(Outcome::Done {
                path: rel,
                size,
                md5: check,
            });
        }
    }

    /// The chunk loop; progress so far is kept whatever the outcome.
    fn fetch(
        &mut self,
        source: &mut dyn MediaSource,
        state: &MediaFileState,
    ) -> Result<Fetched, MediaError> {
        let id = state.sdkfileid.as_str();
        let tmp = store::partial_path(&self.corp_media, id);
        let dir = tmp.parent().expect("partial paths have a directory");
        crate::sink::atomic::create_dir_durable(dir).map_err(self.io(id, dir))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&tmp)
            .map_err(self.io(id, &tmp))?;
        let on_disk = file.metadata().map_err(self.io(id, &tmp))?.len();
        let (mut done, mut index) = (state.bytes_done, state.indexbuf.clone());
        if state.status == MediaStatus::Complete && on_disk >= done {
            // Every chunk arrived before a crash: verify and publish what is on disk.
            file.set_len(done).map_err(self.io(id, &tmp))?;
            file.sync_all().map_err(self.io(id, &tmp))?;
            return Ok(Fetched::Complete(tmp));
        }
        let token_agrees = range_start(&index).is_none_or(|s| s == done);
        if state.status == MediaStatus::Pending || on_disk < done || !token_agrees || done == 0 {
            // Nothing trustworthy to resume from: start over.
            (done, index) = (0, String::new());
        } else {
            tracing::info!(corp = %self.corp_id, sdkfileid = id, bytes = done, "resuming media download");
        }
        // Drops whatever was written after the last recorded chunk (a crash in between).
        file.set_len(done).map_err(self.io(id, &tmp))?;
        file.seek(SeekFrom::Start(done))
            .map_err(self.io(id, &tmp))?;
        let mut chunks = 0u64;
        loop {
            if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(Fetched::Interrupted);
            }
            let chunk = match self.chunk_with_retries(source, id, &index) {
                Ok(c) => c,
                Err(e) => return Ok(Fetched::Failed(e)),
            };
            chunks += 1;
            if let Some(e) = check_chunk(&chunk, &index, done, chunks, self.options.max_chunks) {
                return Ok(Fetched::Failed(e));
            }
            file.write_all(&chunk.data).map_err(self.io(id, &tmp))?;
            if chunk.is_finish {
                file.sync_all()
            } else {
                file.sync_data()
            }
            .map_err(self.io(id, &tmp))?;
            done += chunk.data.len() as u64;
            index = chunk.next_index;
            // Only now, with the bytes durable, does the database learn of them.
            self.store
                .media_progress(&self.corp_id, id, done, &index, &tmp, chunk.is_finish)?;
            (self.on_bytes)(chunk.data.len() as u64);
            if chunk.is_finish {
                return Ok(Fetched::Complete(tmp));
            }
        }
    }

    fn chunk_with_retries(
        &mut self,
        source: &mut dyn MediaSource,
        sdkfileid: &str,
        index: &str,
    ) -> Result<MediaChunk, ChunkError> {
        let mut attempt = 0;
        loop {
            match source.chunk(sdkfileid, index) {
                Ok(c) => return Ok(c),
                Err(e) if e.is_retryable() && attempt + 1 < self.options.max_attempts => {
                    let wait = self.backoff(attempt);
                    tracing::debug!(corp = %self.corp_id, sdkfileid, error = %e, attempt = attempt + 1, "retrying chunk");
                    (self.sleep)(wait);
                    self.retries += 1;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.options.base_backoff.as_millis() as u64;
        let capped = base
            .saturating_mul(1u64 << attempt.min(16))
            .min(self.options.max_backoff.as_millis() as u64);
        Duration::from_millis(rand::Rng::gen_range(
            &mut rand::thread_rng(),
            capped / 2..=capped,
        ))
    }
}

/// How the chunk loop ended.
enum Fetched {
    /// The temporary holds the complete file, fsynced.
    Complete(PathBuf),
    /// The source failed (after its retries).
    Failed(ChunkError),
    /// The stop flag was set.
    Interrupted,
}

/// Rejects an answer that cannot be appended as is: one that would loop (no data, no next
/// token, or too many chunks), or whose `Range` token does not continue where its bytes end (a
/// confused server or proxy; appending would corrupt the file, and meeting recordings have no
/// md5 to catch it).
fn check_chunk(
    chunk: &MediaChunk,
    index: &str,
    done: u64,
    chunks: u64,
    max_chunks: u64,
) -> Option<ChunkError> {
    let end = done + chunk.data.len() as u64;
    if chunks > max_chunks {
        return Some(ChunkError::Transient(format!(
            "more than {max_chunks} chunks; giving up at byte {done}"
        )));
    }
    if chunk.is_finish {
        return None;
    }
    if chunk.next_index.is_empty() || (chunk.data.is_empty() && chunk.next_index == index) {
        return Some(ChunkError::Transient(format!(
            "no progress at byte {done}: unfinished chunk without a new outindexbuf"
        )));
    }
    match range_start(&chunk.next_index) {
        Some(next) if next != end => Some(ChunkError::Transient(format!(
            "outindexbuf {:?} does not continue at byte {end}",
            chunk.next_index
        ))),
        _ => None,
    }
}

/// `(md5 hex, sha256 hex, size)` of a file.
fn hash_file(path: &Path) -> std::io::Result<(String, String, u64)> {
    use md5::{Digest, Md5};
    let mut f = File::open(path)?;
    let mut md5 = Md5::new();
    let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&md5.finalize()), hex(sha.finish().as_ref()), size))
}
