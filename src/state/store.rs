//! The embedded state database (SQLite, bundled): per-corp checkpoints, the commit journal that
//! makes a crash between "files renamed" and "checkpoint moved" harmless, and run history.
//!
//! Only this module knows SQL. Every write is one transaction with `synchronous=FULL`, so what a
//! method returned `Ok` for survives a power cut.
//!
//! ## Exactly once
//! A commit of the pipeline goes through three durable steps:
//! 1. the files of the batch are written and fsynced under temporary names;
//! 2. [`StateStore::journal_commit`] records the intent: the temp → final renames and the seq the
//!    checkpoint will move to;
//! 3. the files are renamed, then [`StateStore::complete_commit`] moves the checkpoint and clears
//!    the journal entry, in one transaction.
//!
//! A crash before 2 leaves only temporaries (deleted at the next start); after 2 the next start
//! rolls the journal forward ([`StateStore::pending_commits`]). Either way each seq ends up in the
//! output exactly once.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::auth::secret::Secret;

/// A failure of the state database.
#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {source}")]
pub struct StateError {
    /// The database file (`:memory:` for an in-memory store).
    pub path: PathBuf,
    /// The SQLite error.
    #[source]
    pub source: rusqlite::Error,
}

/// One rename of a journaled commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// The fsynced temporary file.
    pub tmp: PathBuf,
    /// Its final name.
    pub dest: PathBuf,
}

/// A commit recorded in the journal but not yet completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommit {
    /// Journal id.
    pub id: i64,
    /// The corp.
    pub corp_id: String,
    /// The checkpoint after this commit.
    pub last_seq: u64,
    /// The renames that publish the commit's files.
    pub renames: Vec<Rename>,
}

/// One finished (or failed) run, for `inspect` and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The corp.
    pub corp_id: String,
    /// Unix seconds at start.
    pub started_at: i64,
    /// Unix seconds at the end.
    pub finished_at: i64,
    /// Checkpoint before the run.
    pub from_seq: u64,
    /// Checkpoint after the run.
    pub to_seq: u64,
    /// Rows written.
    pub written: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// `ok`, or the error that stopped the run.
    pub outcome: String,
}

/// A corp that authorized the suite (third-party / 代开发), as recorded from `create_auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCorp {
    /// The authorizing corp.
    pub corp_id: String,
    /// The suite it authorized.
    pub suite_id: String,
    /// Its short name, as WeCom reported it.
    pub corp_name: String,
    /// The permanent code (for 代开发 apps: the app secret); `None` after `cancel_auth`.
    pub permanent_code: Option<Secret>,
    /// Whether the corp's pulls run (`false` after `cancel_auth`).
    pub enabled: bool,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// The state database.
pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoint (
    corp_id    TEXT PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS commit_journal (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    corp_id   TEXT NOT NULL,
    last_seq  INTEGER NOT NULL,
    renames   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    corp_id       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    from_seq      INTEGER NOT NULL,
    to_seq        INTEGER NOT NULL,
    written       INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL,
    outcome       TEXT NOT NULL
);
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
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS suite_ticket (
    suite_id    TEXT PRIMARY KEY,
    ticket      TEXT NOT NULL,
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_corp (
    corp_id        TEXT PRIMARY KEY,
    suite_id       TEXT NOT NULL,
    corp_name      TEXT NOT NULL,
    permanent_code TEXT,
    enabled        INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS callback_seen (
    key        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS token (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// SQLite stores INTEGER as i64; seqs are u64 but stay far below 2^63 in practice. The cast is
/// checked so a corrupt value shows up as an error instead of a wrapped cursor.
fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StateStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let err = |source| StateError {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        Self::init(conn, path.to_owned())
    }

    /// An in-memory database (tests, one-shot runs).
    pub fn open_in_memory() -> Result<Self, StateError> {
        let conn = Connection::open_in_memory().map_err(|source| StateError {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, ":memory:".into())
    }

    fn init(conn: Connection, path: PathBuf) -> Result<Self, StateError> {
        let store = StateStore { conn, path };
        store
            .conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| store.err(e))?;
        // WAL lets `inspect` read while a pull writes; FULL makes each commit durable.
        store
            .conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| store.err(e))?;
        store
            .conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| store.err(e))?;
        store.conn.execute_batch(SCHEMA).map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last committed seq of `corp_id` (`None`: nothing committed yet).
    pub fn checkpoint(&self, corp_id: &str) -> Result<Option<u64>, StateError> {
        self.conn
            .query_row(
                "SELECT last_seq FROM checkpoint WHERE corp_id = ?1",
                [corp_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map(seq_from_sql))
            .map_err(|e| self.err(e))
    }

    /// Sets the checkpoint of `corp_id` by hand (`pull --since-seq`): the next pull starts after
    /// `seq`.
    pub fn set_checkpoint(&self, corp_id: &str, seq: u64) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO checkpoint (corp_id, last_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(corp_id) DO UPDATE SET last_seq = ?2, updated_at = ?3",
                params![corp_id, seq_to_sql(seq), now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Step 2 of a commit: records the renames and the next checkpoint. Returns the journal id.
    pub fn journal_commit(
        &self,
        corp_id: &str,
        last_seq: u64,
        renames: &[Rename],
    ) -> Result<i64, StateError> {
        let json = serde_json::to_string(renames).expect("paths serialise");
        self.conn
            .execute(
                "INSERT INTO commit_journal (corp_id, last_seq, renames) VALUES (?1, ?2, ?3)",
                params![corp_id, seq_to_sql(last_seq), json],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Step 3 of a commit: moves the checkpoint (never backwards) and clears the journal entry.
    pub fn complete_commit(&mut self, id: i64) -> Result<(), StateError> {
        let path = self.path.clone();
        let err = |source| StateError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let (corp_id, last_seq): (String, i64) = tx
            .query_row(
                "SELECT corp_id, last_seq FROM commit_journal WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        tx.execute(
            "INSERT INTO checkpoint (corp_id, last_seq, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(corp_id) DO UPDATE SET last_seq = max(last_seq, ?2), updated_at = ?3",
            params![corp_id, last_seq, now_unix()],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM commit_journal WHERE id = ?1", [id])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Journaled commits not yet completed (after a crash), oldest first.
    pub fn pending_commits(&self, corp_id: &str) -> Result<Vec<PendingCommit>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, last_seq, renames FROM commit_journal WHERE corp_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([corp_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, last_seq, json) = row.map_err(|e| self.err(e))?;
            let renames: Vec<Rename> = serde_json::from_str(&json).map_err(|e| {
                self.err(rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                ))
            })?;
            out.push(PendingCommit {
                id,
                corp_id: corp_id.to_owned(),
                last_seq: seq_from_sql(last_seq),
                renames,
            });
        }
        Ok(out)
    }

    /// Appends a run to the history.
    pub fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO run (corp_id, started_at, finished_at, from_seq, to_seq, written,
                                  dead_lettered, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    run.corp_id,
                    run.started_at,
                    run.finished_at,
                    seq_to_sql(run.from_seq),
                    seq_to_sql(run.to_seq),
                    seq_to_sql(run.written),
                    seq_to_sql(run.dead_lettered),
                    run.outcome
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The most recent runs of `corp_id`, newest first.
    pub fn runs(&self, corp_id: &str, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT corp_id, started_at, finished_at, from_seq, to_seq, written, dead_lettered,
                        outcome
                 FROM run WHERE corp_id = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![corp_id, limit as i64], |r| {
                Ok(RunRecord {
                    corp_id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    from_seq: seq_from_sql(r.get(3)?),
                    to_seq: seq_from_sql(r.get(4)?),
                    written: seq_from_sql(r.get(5)?),
                    dead_lettered: seq_from_sql(r.get(6)?),
                    outcome: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every corp with a checkpoint, with its last seq.
    pub fn checkpoints(&self) -> Result<Vec<(String, u64)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT corp_id, last_seq FROM checkpoint ORDER BY corp_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, seq_from_sql(r.get(1)?)))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A small named value (tokens, tickets and other state of the WeCom-facing side).
    pub fn get_value(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores a small named value.
    pub fn put_value(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = ?2, updated_at = ?3",
                params![key, value, now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Offers a pushed `suite_ticket`: stored only if its push `TimeStamp` is newer than the
    /// stored one (pushes may arrive out of order, WxJava#1991). Returns whether it was stored.
    pub fn offer_suite_ticket(
        &self,
        suite_id: &str,
        ticket: &Secret,
        timestamp: i64,
    ) -> Result<bool, StateError> {
        // One statement, so two concurrent offers cannot both pass a read-then-write check.
        self.conn
            .execute(
                "INSERT INTO suite_ticket (suite_id, ticket, timestamp, received_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(suite_id) DO UPDATE SET ticket = ?2, timestamp = ?3, received_at = ?4
                 WHERE excluded.timestamp > suite_ticket.timestamp",
                params![suite_id, ticket.expose(), timestamp, now_unix()],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// The newest stored `suite_ticket` of `suite_id` with its push `TimeStamp` (the caller
    /// decides whether it is still valid).
    pub fn suite_ticket(&self, suite_id: &str) -> Result<Option<(Secret, i64)>, StateError> {
        self.conn
            .query_row(
                "SELECT ticket, timestamp FROM suite_ticket WHERE suite_id = ?1",
                [suite_id],
                |r| Ok((Secret::new(r.get::<_, String>(0)?), r.get::<_, i64>(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records (or replaces) an authorized corp and its permanent code, enabled.
    pub fn put_auth_corp(
        &self,
        corp_id: &str,
        suite_id: &str,
        corp_name: &str,
        permanent_code: &Secret,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO auth_corp (corp_id, suite_id, corp_name, permanent_code, enabled, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)
                 ON CONFLICT(corp_id) DO UPDATE SET suite_id = ?2, corp_name = ?3,
                     permanent_code = ?4, enabled = 1, updated_at = ?5",
                params![corp_id, suite_id, corp_name, permanent_code.expose(), now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Disables an authorized corp (`cancel_auth`, or a permanent code WeCom rejects) and, with
    /// `forget_code`, drops its permanent code. Returns whether the corp was known.
    pub fn disable_auth_corp(&self, corp_id: &str, forget_code: bool) -> Result<bool, StateError> {
        let sql = if forget_code {
            "UPDATE auth_corp SET enabled = 0, permanent_code = NULL, updated_at = ?2 WHERE corp_id = ?1"
        } else {
            "UPDATE auth_corp SET enabled = 0, updated_at = ?2 WHERE corp_id = ?1"
        };
        self.conn
            .execute(sql, params![corp_id, now_unix()])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Updates the name of an authorized corp (after `change_auth`).
    pub fn rename_auth_corp(&self, corp_id: &str, corp_name: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE auth_corp SET corp_name = ?2, updated_at = ?3 WHERE corp_id = ?1",
                params![corp_id, corp_name, now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// One authorized corp.
    pub fn auth_corp(&self, corp_id: &str) -> Result<Option<AuthCorp>, StateError> {
        self.conn
            .query_row(
                "SELECT corp_id, suite_id, corp_name, permanent_code, enabled, updated_at
                 FROM auth_corp WHERE corp_id = ?1",
                [corp_id],
                auth_corp_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every authorized corp, enabled or not, by corp id.
    pub fn auth_corps(&self) -> Result<Vec<AuthCorp>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT corp_id, suite_id, corp_name, permanent_code, enabled, updated_at
                 FROM auth_corp ORDER BY corp_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], auth_corp_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Runs `f` inside one transaction (one fsync for everything it writes): committed if `f`
    /// returns, rolled back if committing fails. The event handler applies a whole batch of
    /// callbacks this way.
    pub fn in_transaction<R>(&mut self, f: impl FnOnce(&Self) -> R) -> Result<R, StateError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let r = f(self);
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(self.err(e));
        }
        Ok(r)
    }

    /// Claims callback dedupe keys: for each key, `true` if it was new (now remembered until
    /// `now + ttl_secs`), `false` if it was already seen and not expired (a WeCom retry).
    /// Expired keys are purged on the way. Call it inside [`Self::in_transaction`] to pay one
    /// fsync for a whole batch.
    pub fn claim_callback_keys(
        &self,
        keys: &[&str],
        now: i64,
        ttl_secs: i64,
    ) -> Result<Vec<bool>, StateError> {
        self.conn
            .execute("DELETE FROM callback_seen WHERE expires_at <= ?1", [now])
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO callback_seen (key, expires_at) VALUES (?1, ?2)
                 ON CONFLICT(key) DO NOTHING",
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(
                stmt.execute(params![key, now + ttl_secs])
                    .map_err(|e| self.err(e))?
                    > 0,
            );
        }
        Ok(out)
    }

    /// A stored token ([`crate::auth::token::TokenStore`] on SQLite): value and expiry.
    pub fn token(&self, key: &str) -> Result<Option<(Secret, i64)>, StateError> {
        self.conn
            .query_row(
                "SELECT value, expires_at FROM token WHERE key = ?1",
                [key],
                |r| Ok((Secret::new(r.get::<_, String>(0)?), r.get::<_, i64>(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores a token unless the stored one expires later (an older response must not
    /// overwrite a newer token).
    pub fn save_token(&self, key: &str, value: &Secret, expires_at: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO token (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = ?2, expires_at = ?3
                 WHERE excluded.expires_at >= token.expires_at",
                params![key, value.expose(), expires_at],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets a token, only if it is still `rejected`.
    pub fn remove_token(&self, key: &str, rejected: &Secret) -> Result<(), StateError> {
        self.conn
            .execute(
                "DELETE FROM token WHERE key = ?1 AND value = ?2",
                params![key, rejected.expose()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

fn auth_corp_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuthCorp> {
    Ok(AuthCorp {
        corp_id: r.get(0)?,
        suite_id: r.get(1)?,
        corp_name: r.get(2)?,
        permanent_code: r.get::<_, Option<String>>(3)?.map(Secret::new),
        enabled: r.get::<_, i64>(4)? != 0,
        updated_at: r.get(5)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Media downloads
// ---------------------------------------------------------------------------------------------

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

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn media_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<MediaFileState> {
    Ok(MediaFileState {
        corp_id: r.get(at)?,
        sdkfileid: r.get(at + 1)?,
        kind: r.get(at + 2)?,
        ext: r.get(at + 3)?,
        md5sum: r.get(at + 4)?,
        size_hint: opt_u64(r.get(at + 5)?),
        status: MediaStatus::parse(&r.get::<_, String>(at + 6)?),
        bytes_done: seq_from_sql(r.get(at + 7)?),
        indexbuf: r.get(at + 8)?,
        tmp_path: r.get::<_, Option<String>>(at + 9)?.map(PathBuf::from),
        attempts: r.get(at + 10)?,
        mismatches: r.get(at + 11)?,
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
        let path = self.path.clone();
        let err = |source| StateError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut file = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO media_file
                        (corp_id, sdkfileid, kind, ext, md5sum, size_hint, status, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)",
                )
                .map_err(err)?;
            let mut reference = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO media_ref (corp_id, msgid, seq, item_index, sdkfileid)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            let now = now_unix();
            for r in refs {
                file.execute(params![
                    corp_id,
                    r.sdkfileid,
                    r.kind,
                    r.ext,
                    r.md5sum,
                    r.size.map(seq_to_sql),
                    now
                ])
                .map_err(err)?;
                reference
                    .execute(params![
                        corp_id,
                        r.msgid,
                        seq_to_sql(r.seq),
                        r.item_index.map_or(-1, i64::from),
                        r.sdkfileid
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The Parquet files of `corp_id` already scanned for media references (paths relative to
    /// the corp's directory).
    pub fn media_scanned_files(
        &self,
        corp_id: &str,
    ) -> Result<std::collections::HashSet<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT file FROM media_scanned WHERE corp_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([corp_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records that `file` was scanned for media references.
    pub fn mark_media_scanned(&self, corp_id: &str, file: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO media_scanned (corp_id, file) VALUES (?1, ?2)",
                [corp_id, file],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The state of one media file.
    pub fn media_file(
        &self,
        corp_id: &str,
        sdkfileid: &str,
    ) -> Result<Option<MediaFileState>, StateError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {MEDIA_COLUMNS} FROM media_file WHERE corp_id = ?1 AND sdkfileid = ?2"
                ),
                [corp_id, sdkfileid],
                |r| media_row(r, 0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every media file of `corp_id`, by sdkfileid.
    pub fn media_files(&self, corp_id: &str) -> Result<Vec<MediaFileState>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {MEDIA_COLUMNS} FROM media_file WHERE corp_id = ?1 ORDER BY sdkfileid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([corp_id], |r| media_row(r, 0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The media files of `corp_id` still to download (neither done nor failed for good), by
    /// sdkfileid.
    pub fn media_todo(&self, corp_id: &str) -> Result<Vec<MediaFileState>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {MEDIA_COLUMNS} FROM media_file
                 WHERE corp_id = ?1 AND status NOT IN ('done', 'failed_permanent')
                 ORDER BY sdkfileid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([corp_id], |r| media_row(r, 0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
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
        self.conn
            .execute(
                "UPDATE media_file SET status = ?7, bytes_done = ?3, indexbuf = ?4,
                        tmp_path = ?5, updated_at = ?6
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                params![
                    corp_id,
                    sdkfileid,
                    seq_to_sql(bytes_done),
                    indexbuf,
                    tmp_path.to_string_lossy(),
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
        self.conn
            .execute(
                "UPDATE media_file SET status = 'pending', bytes_done = 0, indexbuf = '',
                        mismatches = mismatches + ?3, updated_at = ?4
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                params![corp_id, sdkfileid, i64::from(count_mismatch), now_unix()],
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
        self.conn
            .execute(
                "UPDATE media_file SET status = 'done', path = ?3, size = ?4, sha256 = ?5,
                        md5_status = ?6, bytes_done = ?4, tmp_path = NULL, error = NULL,
                        updated_at = ?7
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                params![
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
        self.conn
            .execute(
                "UPDATE media_file SET status = ?3, attempts = attempts + 1, error = ?4,
                        updated_at = ?5
                 WHERE corp_id = ?1 AND sdkfileid = ?2",
                params![corp_id, sdkfileid, status.as_str(), error, now_unix()],
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
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT r.msgid, r.seq, r.item_index, {cols}
                 FROM media_ref r JOIN media_file f
                   ON f.corp_id = r.corp_id AND f.sdkfileid = r.sdkfileid
                 WHERE r.corp_id = ?1 ORDER BY r.seq, r.item_index, r.sdkfileid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([corp_id], |r| {
                Ok(MediaRefState {
                    msgid: r.get(0)?,
                    seq: seq_from_sql(r.get(1)?),
                    item_index: u32::try_from(r.get::<_, i64>(2)?).ok(),
                    file: media_row(r, 3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_ticket_keeps_the_newest_push() {
        let s = StateStore::open_in_memory().unwrap();
        assert!(s.suite_ticket("ws").unwrap().is_none());
        assert!(s.offer_suite_ticket("ws", &Secret::new("t2"), 200).unwrap());
        // An older push arriving late is ignored, so is a replay of the same push.
        assert!(!s.offer_suite_ticket("ws", &Secret::new("t1"), 100).unwrap());
        assert!(!s.offer_suite_ticket("ws", &Secret::new("t2"), 200).unwrap());
        assert!(s.offer_suite_ticket("ws", &Secret::new("t3"), 300).unwrap());
        let (t, ts) = s.suite_ticket("ws").unwrap().unwrap();
        assert_eq!((t.expose(), ts), ("t3", 300));
        assert!(s.suite_ticket("other").unwrap().is_none());
    }

    #[test]
    fn auth_corps_are_stored_disabled_and_reenabled() {
        let s = StateStore::open_in_memory().unwrap();
        s.put_auth_corp("wwc", "ws", "Corp", &Secret::new("pc1"))
            .unwrap();
        let c = s.auth_corp("wwc").unwrap().unwrap();
        assert!(c.enabled);
        assert_eq!(c.permanent_code.unwrap().expose(), "pc1");
        assert!(s.disable_auth_corp("wwc", true).unwrap());
        let c = s.auth_corp("wwc").unwrap().unwrap();
        assert!(!c.enabled && c.permanent_code.is_none());
        assert!(!s.disable_auth_corp("unknown", true).unwrap());
        s.put_auth_corp("wwc", "ws", "Corp 2", &Secret::new("pc2"))
            .unwrap();
        assert_eq!(s.auth_corps().unwrap()[0].corp_name, "Corp 2");
        assert!(s.auth_corps().unwrap()[0].enabled);
    }

    #[test]
    fn callback_keys_are_claimed_once_until_they_expire() {
        let mut s = StateStore::open_in_memory().unwrap();
        let claimed = s
            .in_transaction(|s| s.claim_callback_keys(&["a", "b", "a"], 1000, 60))
            .unwrap()
            .unwrap();
        assert_eq!(claimed, vec![true, true, false]);
        assert_eq!(
            s.claim_callback_keys(&["b"], 1059, 60).unwrap(),
            vec![false]
        );
        // Expired: a new delivery with the same key is new again.
        assert_eq!(s.claim_callback_keys(&["b"], 1060, 60).unwrap(), vec![true]);
    }

    #[test]
    fn tokens_keep_the_later_expiry_and_remove_only_the_rejected_one() {
        let s = StateStore::open_in_memory().unwrap();
        s.save_token("k", &Secret::new("new"), 200).unwrap();
        s.save_token("k", &Secret::new("old"), 100).unwrap();
        assert_eq!(s.token("k").unwrap().unwrap().0.expose(), "new");
        s.remove_token("k", &Secret::new("old")).unwrap();
        assert!(s.token("k").unwrap().is_some());
        s.remove_token("k", &Secret::new("new")).unwrap();
        assert!(s.token("k").unwrap().is_none());
    }

    #[test]
    fn journal_then_complete_moves_checkpoint() {
        let mut s = StateStore::open_in_memory().unwrap();
        assert_eq!(s.checkpoint("ww1").unwrap(), None);
        let r = vec![Rename {
            tmp: "a.tmp".into(),
            dest: "a".into(),
        }];
        let id = s.journal_commit("ww1", 10, &r).unwrap();
        assert_eq!(s.checkpoint("ww1").unwrap(), None);
        let pending = s.pending_commits("ww1").unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].renames, r);
        assert_eq!(pending[0].last_seq, 10);
        assert!(s.pending_commits("ww2").unwrap().is_empty());
        s.complete_commit(id).unwrap();
        assert_eq!(s.checkpoint("ww1").unwrap(), Some(10));
        assert!(s.pending_commits("ww1").unwrap().is_empty());
    }

    #[test]
    fn checkpoint_never_moves_backwards_on_commit() {
        let mut s = StateStore::open_in_memory().unwrap();
        let a = s.journal_commit("ww1", 20, &[]).unwrap();
        let b = s.journal_commit("ww1", 10, &[]).unwrap();
        s.complete_commit(a).unwrap();
        s.complete_commit(b).unwrap();
        assert_eq!(s.checkpoint("ww1").unwrap(), Some(20));
    }

    #[test]
    fn media_refs_register_once_and_track_progress() {
        let mut s = StateStore::open_in_memory().unwrap();
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
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        {
            let s = StateStore::open(&path).unwrap();
            s.set_checkpoint("ww1", 42).unwrap();
            s.put_value("k", "v").unwrap();
            s.record_run(&RunRecord {
                corp_id: "ww1".into(),
                started_at: 1,
                finished_at: 2,
                from_seq: 0,
                to_seq: 42,
                written: 40,
                dead_lettered: 2,
                outcome: "ok".into(),
            })
            .unwrap();
        }
        let s = StateStore::open(&path).unwrap();
        assert_eq!(s.checkpoint("ww1").unwrap(), Some(42));
        assert_eq!(s.get_value("k").unwrap().as_deref(), Some("v"));
        assert_eq!(s.runs("ww1", 10).unwrap()[0].written, 40);
        assert_eq!(s.checkpoints().unwrap(), vec![("ww1".to_string(), 42)]);
    }
}
