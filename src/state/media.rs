//! Media downloads: the references from messages to media files, and each file's durable
//! download progress, so a killed run resumes every file from its last fsynced chunk.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::db::{p, Db, DbError, Row};
use super::{now_unix, seq_from_sql, seq_to_sql, StateError, StateStore};

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS media_file (
    corp_id    TEXT NOT NULL,
    sdkfileid  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    ext        TEXT,
    md5sum     TEXT,
    size_hint  INTEGER,
    status     TEXT NOT NULL,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    indexbuf   TEXT NOT NULL DEFAULT '',
    tmp_path   TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    mismatches INTEGER NOT NULL DEFAULT 0,
    md5_status TEXT,
    path       TEXT,
    size       INTEGER,
    sha256     TEXT,
    error      TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (corp_id, sdkfileid)
);
CREATE TABLE IF NOT EXISTS media_ref (
    corp_id    TEXT NOT NULL,
    msgid      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    item_index INTEGER NOT NULL,
    sdkfileid  TEXT NOT NULL,
    PRIMARY KEY (corp_id, msgid, item_index, sdkfileid)
);
CREATE TABLE IF NOT EXISTS media_scanned (
    corp_id TEXT NOT NULL,
    file    TEXT NOT NULL,
    PRIMARY KEY (corp_id, file)
);
";

/// Where a media file's download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaStatus {
    /// Known, not started.
    Pending,
    /// Started: `bytes_done` bytes are durable in the temporary file, `indexbuf` asks for the rest.
    Downloading,
    /// Every chunk is durable in the temporary file; not yet verified and published (a crash
    /// came in between).
    Complete,
    /// Complete under its final, content-addressed name.
    Done,
    /// Failed after its retries; tried again at the next run.
    Failed,
    /// Never retried (`10005`: WeCom does not know the sdkfileid).
    Permanent,
}

impl MediaStatus {
    /// The name stored in the database and in the media table.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaStatus::Pending => "pending",
            MediaStatus::Downloading => "downloading",
            MediaStatus::Complete => "complete",
            MediaStatus::Done => "done",
            MediaStatus::Failed => "failed",
            MediaStatus::Permanent => "failed_permanent",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "downloading" => MediaStatus::Downloading,
            "complete" => MediaStatus::Complete,
            "done" => MediaStatus::Done,
            "failed" => MediaStatus::Failed,
            "failed_permanent" => MediaStatus::Permanent,
            _ => MediaStatus::Pending,
        }
    }
}

/// A media reference found in a message, to register with [`StateStore::add_media_refs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMediaRef {
    /// The message.
    pub msgid: String,
    /// Its seq.
    pub seq: u64,
    /// Item of a `mixed`/`chatrecord` message, `None` for the message's own media.
    pub item_index: Option<u32>,
    /// The media id.
    pub sdkfileid: String,
    /// `image`, `voice`, … ([`crate::model::message::MediaKind::as_str`]).
    pub kind: String,
    /// File extension without the dot, when known.
    pub ext: Option<String>,
    /// The md5sum the message announces (`None`: absent or empty).
    pub md5sum: Option<String>,
    /// The size the message announces.
    pub size: Option<u64>,
}

/// One media file's download state (one per corp and sdkfileid, however many messages share it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFileState {
    /// The corp.
    pub corp_id: String,
    /// The media id.
    pub sdkfileid: String,
    /// Kind name.
    pub kind: String,
    /// Extension without the dot.
    pub ext: Option<String>,
    /// Expected md5 (from the message).
    pub md5sum: Option<String>,
    /// Announced size.
    pub size_hint: Option<u64>,
    /// Where the download stands.
    pub status: MediaStatus,
    /// Bytes durable in the temporary file.
    pub bytes_done: u64,
    /// The `indexbuf` for the next `GetMediaData` call (`""` = from the start).
    pub indexbuf: String,
    /// The temporary file.
    pub tmp_path: Option<PathBuf>,
    /// Runs that ended in failure.
    pub attempts: u32,
    /// Complete downloads whose md5 did not match.
    pub mismatches: u32,
    /// `ok`, `mismatch` or `absent` once done.
    pub md5_status: Option<String>,
    /// Final path, relative to the corp's directory.
    pub path: Option<String>,
    /// Final size.
    pub size: Option<u64>,
    /// SHA-256 of the content (its name on disk).
    pub sha256: Option<String>,
    /// The last error.
    pub error: Option<String>,
}

/// One row of the media table: a reference from a message to a file, with the file's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRefState {
    /// The message.
    pub msgid: String,
    /// Its seq.
    pub seq: u64,
    /// Item index inside `mixed`/`chatrecord`.
    pub item_index: Option<u32>,
    /// The file.
    pub file: MediaFileState,
}

const MEDIA_COLUMNS: &str = "corp_id, sdkfileid, kind, ext, md5sum, size_hint, status, bytes_done,
    indexbuf, tmp_path, attempts, mismatches, md5_status, path, size, sha256, error";

/// Renames scanned files (`(old, new)` names relative to the corp's messages folder) in the
/// caller's transaction.
pub(super) fn rename_scanned(
    db: &Db,
    corp_id: &str,
    scanned: &[(String, String)],
) -> Result<(), DbError> {
    for (old, new) in scanned {
        // A new name scanned already keeps its mark; the old name's goes with its file.
        db.execute(
            "UPDATE media_scanned SET file = ?3 WHERE corp_id = ?1 AND file = ?2
             AND NOT EXISTS (SELECT 1 FROM media_scanned m WHERE m.corp_id = ?1 AND m.file = ?3)",
            p![corp_id, old, new],
        )?;
    }
    Ok(())
}

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn media_row(r: &Row<'_, '_>, at: usize) -> Result<MediaFileState, DbError> {
    Ok(MediaFileState {
        corp_id: r.get(at)?,
        sdkfileid: r.get(at + 1)?,
        kind: r.get(at + 2)?,
        ext: r.get(at + 3)?,
        md5sum: r.get(at + 4)?,
        size_hint: opt_u64(r.get(at + 5)?),
        status: MediaStatus::parse(&r.get::<String>(at + 6)?),
        bytes_done: seq_from_sql(r.get(at + 7)?),
        indexbuf: r.get(at + 8)?,
        tmp_path: r.get::<Option<String>>(at + 9)?.map(PathBuf::from),
        attempts: count(r.get(at + 10)?),
        mismatches: count(r.get(at + 11)?),
        md5_status: r.get(at + 12)?,
        path: r.get(at + 13)?,
        size: opt_u64(r.get(at + 14)?),
        sha256: r.get(at + 15)?,
        error: r.get(at + 16)?,
    })
}

impl StateStore {
    /// Registers media references (idempotent): a new sdkfileid becomes a pending download; a
    /// known one only gains the reference.
    pub fn add_media_refs(
        &mut self,
        corp_id: &str,
        refs: &[NewMediaRef],
    ) -> Result<(), StateError> {
        self.db
            .transaction(|tx| {
                let now = now_unix();
                for r in refs {
                    tx.execute(
                        "INSERT INTO media_file
                        (corp_id, sdkfileid, kind, ext, md5sum, size_hint, status, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7) ON CONFLICT DO NOTHING",
                        p![
                            corp_id,
                            r.sdkfileid,
                            r.kind,
                            r.ext,
                            r.md5sum,
                            r.size.map(seq_to_sql),
                            now
                        ],
                    )?;
                    tx.execute(
                        "INSERT INTO media_ref (corp_id, msgid, seq, item_index, sdkfileid)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                        p![
                            corp_id,
                            r.msgid,
                            seq_to_sql(r.seq),
                            r.item_index.map_or(-1, i64::from),
                            r.sdkfileid
                        ],
                    )?;
                }
                Ok(())
            })
            .map_err(|e| self.err(e))
    }

    /// The Parquet files of `corp_id` already scanned for media references (paths relative to
    /// the corp's directory).
    pub fn media_scanned_files(&self, corp_id: &str) -> Result<HashSet<String>, StateError> {
        let rows = self
            .db
            .query(
                "SELECT file FROM media_scanned WHERE corp_id = ?1",
                p![corp_id],
                |r| r.get::<String>(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// Records that `file` was scanned for media references.
    pub fn mark_media_scanned(&self, corp_id: &str, file: &str) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT INTO media_scanned (corp_id, file) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                p![corp_id, file],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Moves `corp_id`'s media bookkeeping to a new output layout (`migrate`): final paths of
    /// the form `media/<2 hex>/…` (relative to the corp's old folder) become `new_prefix/<2
    /// hex>/…` (relative to the output root); temporary paths starting with `old_partial` start
    /// with `new_partial`; scanned Parquet files are renamed as `scanned` says. Idempotent: a
    /// path already moved is left alone. One transaction.
    pub fn relocate_media(
        &mut self,
        corp_id: &str,
        new_prefix: &str,
        old_partial: &str,
        new_partial: &str,
        scanned: &[(String, String)],
    ) -> Result<(), StateError> {
        self.db
            .transaction(|tx| {
                tx.execute(
                    // The casts: PostgreSQL cannot tell the parameters' type from `||`.
                    "UPDATE media_file SET path = CAST(?2 AS TEXT) || substr(path, 7)
                     WHERE corp_id = ?1 AND path LIKE 'media/%'
                       AND substr(path, 1, length(CAST(?2 AS TEXT))) != CAST(?2 AS TEXT)",
                    p![corp_id, format!("{new_prefix}/")],
                )?;
                tx.execute(
                    "UPDATE media_file
                     SET tmp_path = CAST(?3 AS TEXT) || substr(tmp_path, length(CAST(?2 AS TEXT)) + 1)
                     WHERE corp_id = ?1
                       AND substr(tmp_path, 1, length(CAST(?2 AS TEXT))) = CAST(?2 AS TEXT)",
                    p![corp_id, old_partial, new_partial],
                )?;
                rename_scanned(tx, corp_id, scanned)
            })
            .map_err(|e| self.err(e))
    }

    /// The state of one media file.
    pub fn media_file(
        &self,
        corp_id: &str,
        sdkfileid: &str,
    ) -> Result<Option<MediaFileState>, StateError> {
        self.db
            .query_opt(
                &format!(
                    "SELECT {MEDIA_COLUMNS} FROM media_file WHERE corp_id = ?1 AND sdkfileid = ?2"
                ),
                p![corp_id, sdkfileid],
                |r| media_row(r, 0),
            )
            .map_err(|e| self.err(e))
    }

    /// Every media file of `corp_id`, by sdkfileid.
    pub fn media_files(&self, corp_id: &str) -> Result<Vec<MediaFileState>, StateError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {MEDIA_COLUMNS} FROM media_file WHERE corp_id = ?1 ORDER BY sdkfileid"
                ),
                p![corp_id],
                |r| media_row(r, 0),
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// The media files of `corp_id` still to download (neither done nor failed for good), by
    /// sdkfileid.
    pub fn media_todo(&self, corp_id: &str) -> Result<Vec<MediaFileState>, StateError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {MEDIA_COLUMNS} FROM media_file
                 WHERE corp_id = ?1 AND status NOT IN ('done', 'failed_permanent')
                 ORDER BY sdkfileid"
                ),
                p![corp_id],
                |r| media_row(r, 0),
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// Records durable progress of a download: `bytes_done` bytes are fsynced in `tmp_path`, and
    /// `indexbuf` asks for what follows; `finished`: that was the last chunk.
    pub fn media_progress(
        &self,
        corp_id: &str,
        sdkfileid: &str,
        bytes_done: u64,
        indexbuf: &str,
        tmp_path: &Path,
        finished: bool,
    ) -> Result<(), StateError> {
        let status = if finished {
            MediaStatus::Complete
        } else {
            MediaStatus::Downloading
        };
        self.db
            .execute(
                "UPDATE media_file SET status = ?7, bytes_done = ?3, indexbuf = ?4,
                        tmp_path = ?5, updated_at = ?6
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                p![
                    corp_id,
                    sdkfileid,
                    seq_to_sql(bytes_done),
                    indexbuf,
                    tmp_path.to_string_lossy().into_owned(),
                    now_unix(),
                    status.as_str()
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Starts a file over (its content did not match its md5): counts the mismatch.
    pub fn media_restart(
        &self,
        corp_id: &str,
        sdkfileid: &str,
        count_mismatch: bool,
    ) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE media_file SET status = 'pending', bytes_done = 0, indexbuf = '',
                        mismatches = mismatches + ?3, updated_at = ?4
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                p![corp_id, sdkfileid, i64::from(count_mismatch), now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks a file complete under `path` (relative to the corp's directory).
    #[allow(clippy::too_many_arguments)]
    pub fn media_done(
        &self,
        corp_id: &str,
        sdkfileid: &str,
        path: &str,
        size: u64,
        sha256: &str,
        md5_status: &str,
    ) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE media_file SET status = 'done', path = ?3, size = ?4, sha256 = ?5,
                        md5_status = ?6, bytes_done = ?4, tmp_path = NULL, error = NULL,
                        updated_at = ?7
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                p![
                    corp_id,
                    sdkfileid,
                    path,
                    seq_to_sql(size),
                    sha256,
                    md5_status,
                    now_unix()
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records a failed download run. The durable progress is kept, so the next run resumes;
    /// `permanent` failures are never tried again.
    pub fn media_failed(
        &self,
        corp_id: &str,
        sdkfileid: &str,
        permanent: bool,
        error: &str,
    ) -> Result<(), StateError> {
        let status = if permanent {
            MediaStatus::Permanent
        } else {
            MediaStatus::Failed
        };
        self.db
            .execute(
                "UPDATE media_file SET status = ?3, attempts = attempts + 1, error = ?4,
                        updated_at = ?5
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                p![corp_id, sdkfileid, status.as_str(), error, now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Every reference of `corp_id` with its file's state, by seq (the rows of the media table).
    pub fn media_refs(&self, corp_id: &str) -> Result<Vec<MediaRefState>, StateError> {
        let cols: String = MEDIA_COLUMNS
            .split(',')
            .map(|c| format!("f.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT r.msgid, r.seq, r.item_index, {cols}
                 FROM media_ref r JOIN media_file f
                   ON f.corp_id = r.corp_id AND f.sdkfileid = r.sdkfileid
                 WHERE r.corp_id = ?1 ORDER BY r.seq, r.item_index, r.sdkfileid"
                ),
                p![corp_id],
                |r| {
                    Ok(MediaRefState {
                        msgid: r.get(0)?,
                        seq: seq_from_sql(r.get(1)?),
                        item_index: u32::try_from(r.get::<i64>(2)?).ok(),
                        file: media_row(r, 3)?,
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_refs_register_once_and_track_progress() {
        crate::state::test_backends::each_backend(|s| {
            let r = |msgid: &str, seq, id: &str| NewMediaRef {
                msgid: msgid.into(),
                seq,
                item_index: None,
                sdkfileid: id.into(),
                kind: "image".into(),
                ext: Some("jpg".into()),
                md5sum: Some("abc".into()),
                size: Some(10),
            };
            s.add_media_refs(
                "ww1",
                &[r("m1", 1, "f1"), r("m2", 2, "f1"), r("m3", 3, "f2")],
            )
            .unwrap();
            // Registering again changes nothing.
            s.add_media_refs("ww1", &[r("m1", 1, "f1")]).unwrap();
            assert_eq!(s.media_files("ww1").unwrap().len(), 2);
            assert_eq!(s.media_refs("ww1").unwrap().len(), 3);
            s.media_progress("ww1", "f1", 5, "Range:bytes=5-9", Path::new("/t"), false)
                .unwrap();
            let f = s.media_file("ww1", "f1").unwrap().unwrap();
            assert_eq!(
                (f.status, f.bytes_done, f.indexbuf.as_str()),
                (MediaStatus::Downloading, 5, "Range:bytes=5-9")
            );
            assert_eq!(s.media_todo("ww1").unwrap().len(), 2);
            s.media_failed("ww1", "f1", false, "net").unwrap();
            let f = s.media_file("ww1", "f1").unwrap().unwrap();
            assert_eq!(
                (f.status, f.attempts, f.bytes_done),
                (MediaStatus::Failed, 1, 5)
            );
            s.media_done("ww1", "f1", "media/ab/abcd.jpg", 10, "abcd", "ok")
                .unwrap();
            let refs = s.media_refs("ww1").unwrap();
            assert_eq!(refs[1].msgid, "m2");
            assert_eq!(refs[1].file.status, MediaStatus::Done);
            assert_eq!(refs[1].file.path.as_deref(), Some("media/ab/abcd.jpg"));
            assert_eq!(s.media_todo("ww1").unwrap()[0].sdkfileid, "f2");
            s.media_failed("ww1", "f2", true, "10005").unwrap();
            assert!(s.media_todo("ww1").unwrap().is_empty());
            s.add_media_refs("ww1", &[r("m4", 4, "f1")]).unwrap();
            assert_eq!(
                s.media_file("ww1", "f1").unwrap().unwrap().status,
                MediaStatus::Done
            );
        });
    }
}
