//! Where we are: the state database. Only this module knows SQL.
//!
//! Two backends hold the same tables behind the same API (see [`db`]): SQLite, embedded (bundled)
//! and the default, one file beside the output; and PostgreSQL (`state = "postgres://…"`), which
//! many workers on many machines share (see "Many workers" below).
//!
//! One [`StateStore`] (one connection) keeps these areas, each in its own file with its tables:
//! - `commits`: per-corp checkpoints and the commit journal (see "Exactly once" below);
//! - `runs`: the history of pipeline runs;
//! - `screened`: which message files each rule-set version has screened (for `scan`);
//! - `media`: media references and each file's download progress;
//! - `exports`: the audit log of evidence exports;
//! - `wecom`: the WeCom-facing side: suite tickets, authorized corps and their permanent codes,
//!   callback dedupe keys, access tokens and small named values;
//! - `alerts`: the alert outbox and each alert's delivery to each webhook.
//!
//! - `leases`: which worker pulls which corp, until when.
//!
//! [`SharedState`] shares one store between tokio tasks.
//!
//! Every write is one transaction, durable when it returns (SQLite with `synchronous=FULL`;
//! PostgreSQL's commit), so what a method returned `Ok` for survives a power cut.
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

mod alerts;
mod commits;
pub(crate) mod db;
mod exports;
mod leases;
mod media;
mod postgres_url;
mod runs;
mod screened;
mod shared_state;
mod wecom;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use db::Db;
pub use db::DbError;

// Called inside the transaction that journals a pipeline commit (the findings of that commit).
pub use alerts::{AlertRetry, ClaimedAlert, NewAlert, StoredAlert, WebhookOutbox};
pub use commits::{JournalExtras, PendingCommit, Rename};
pub use exports::ExportAudit;
pub use leases::{Lease, LeaseClaim};
pub use media::{MediaFileState, MediaRefState, MediaStatus, NewMediaRef};
pub use postgres_url::is_postgres_url;
pub use runs::RunRecord;
pub use screened::Screened;
pub use shared_state::SharedState;
pub use wecom::{
    AuthCorp, NewCallbackEvent, StoredCallbackEvent, StoredSuiteTickets,
    SUITE_TICKET_MAX_FUTURE_SECS,
};

/// A failure of the state database.
#[derive(Debug, thiserror::Error)]
#[error("state database {}: {source}", path.display())]
pub struct StateError {
    /// The database file (`:memory:` for an in-memory store), or the PostgreSQL URL without
    /// its password.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: DbError,
}

/// The state database.
pub struct StateStore {
    db: Db,
    path: PathBuf,
    /// The PostgreSQL URL as configured (it may hold the password): to open more connections.
    url: Option<crate::secret::Secret>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Each area's tables, created in this order when missing. `IF NOT EXISTS` leaves an existing
/// database untouched, so the table and column names are the on-disk format: never rename them.
///
/// The text is SQLite's; PostgreSQL gets it through [`postgres_url::pg_schema`] (64-bit
/// integers, identity columns). Appending an entry is a schema migration: both backends apply
/// the ones they lack when a store opens, and PostgreSQL records the count in
/// `schema_version`.
const SCHEMA: [&str; 8] = [
    commits::SCHEMA,
    runs::SCHEMA,
    media::SCHEMA,
    wecom::SCHEMA,
    screened::SCHEMA,
    alerts::SCHEMA,
    exports::SCHEMA,
    leases::SCHEMA,
];

/// SQLite stores INTEGER as i64; seqs are u64 but stay far below 2^63 in practice. The cast is
/// checked so a corrupt value shows up as an error instead of a wrapped cursor.
fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Creates `path` if missing, and makes it readable and writable by its owner only (0600).
///
/// An existing file is changed by path, never opened: closing any descriptor of a database
/// file drops every POSIX lock this process holds on it, under another open connection.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // New: no connection can have it open yet. The umask cannot widen 0600.
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StateStore {
    /// Opens (creating if needed) the database at `path`, or connects to the PostgreSQL
    /// database when `path` is a `postgres://` URL (creating the tables it lacks).
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(url) = path.to_str().filter(|p| is_postgres_url(p)) {
            let (client, label) = postgres_url::connect(url)?;
            let mut store = Self::init(Db::Pg(db::PgClient::new(client)), label)?;
            store.url = Some(crate::secret::Secret::new(url.to_owned()));
            return Ok(store);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let err = |source| StateError {
            path: path.to_owned(),
            source,
        };
        // It holds the suite_ticket, permanent codes and access tokens in clear: owner only,
        // from the first byte (created here, before SQLite would create it with the umask).
        owner_only(path).map_err(|e| StateError {
            path: path.to_owned(),
            source: DbError::Open(format!("cannot make it owner-only: {e}")),
        })?;
        let conn = rusqlite::Connection::open(path).map_err(|e| err(DbError::Sqlite(e)))?;
        let store = Self::init(Db::Sqlite(conn), path.to_owned())?;
        // SQLite gives -wal/-shm the main file's mode; set it anyway in case they predate it.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            if side.exists() {
                owner_only(&side).map_err(|e| StateError {
                    path: side.clone(),
                    source: DbError::Open(format!("cannot make it owner-only: {e}")),
                })?;
            }
        }
        Ok(store)
    }

    /// An in-memory database (tests, one-shot runs).
    pub fn open_in_memory() -> Result<Self, StateError> {
        let conn = rusqlite::Connection::open_in_memory().map_err(|e| StateError {
            path: ":memory:".into(),
            source: DbError::Sqlite(e),
        })?;
        Self::init(Db::Sqlite(conn), ":memory:".into())
    }

    fn init(db: Db, path: PathBuf) -> Result<Self, StateError> {
        let store = StateStore {
            db,
            path,
            url: None,
        };
        match &store.db {
            Db::Sqlite(conn) => {
                let sqlite = |e| store.err(DbError::Sqlite(e));
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(sqlite)?;
                // WAL lets `inspect` read while a pull writes; FULL makes each commit durable.
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(sqlite)?;
                conn.pragma_update(None, "synchronous", "FULL")
                    .map_err(sqlite)?;
                for tables in SCHEMA {
                    conn.execute_batch(tables).map_err(sqlite)?;
                }
            }
            Db::Pg(_) => postgres_url::migrate(&store.db, &SCHEMA).map_err(|e| store.err(e))?,
        }
        Ok(store)
    }

    fn err(&self, source: DbError) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes everything in the write-ahead log into the database file and empties the log, then
    /// closes: afterwards the one file holds all of the state and may be moved (`migrate`).
    /// PostgreSQL has no file: nothing to do.
    pub fn close_into_one_file(self) -> Result<(), StateError> {
        let Db::Sqlite(conn) = self.db else {
            return Ok(());
        };
        let path = self.path;
        let err = |source| StateError {
            path: path.clone(),
            source: DbError::Sqlite(source),
        };
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(err)?;
        conn.close().map_err(|(_, source)| err(source))
    }

    /// A second connection to the same PostgreSQL database (`None` for SQLite, or when it cannot
    /// connect: said in the log).
    pub fn reconnect(&self) -> Option<StateStore> {
        let url = self.url.as_ref()?;
        match StateStore::open(Path::new(url.expose())) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a second connection to the state database");
                None
            }
        }
    }

    /// Whether this store is PostgreSQL (shared by workers) rather than an embedded file.
    pub fn is_shared(&self) -> bool {
        self.db.is_pg()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside one transaction (one fsync for everything it writes): committed if `f`
    /// returns, rolled back if committing fails. The event handler applies a whole batch of
    /// callbacks this way.
    pub fn in_transaction<R>(&mut self, f: impl FnOnce(&Self) -> R) -> Result<R, StateError> {
        self.db.begin().map_err(|e| self.err(e))?;
        let r = f(self);
        self.db.commit().map_err(|e| self.err(e))?;
        Ok(r)
    }

    /// Runs `f` inside one transaction that is committed only if `f` returns `Ok`: an error
    /// rolls back everything `f` wrote.
    pub fn try_transaction<R>(
        &mut self,
        f: impl FnOnce(&Self) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        self.db.begin().map_err(|e| self.err(e))?;
        let r = match f(self) {
            Ok(r) => r,
            Err(e) => {
                self.db.rollback();
                return Err(e);
            }
        };
        self.db.commit().map_err(|e| self.err(e))?;
        Ok(r)
    }
}

#[cfg(test)]
#[path = "../../tests/support/pg_server.rs"]
pub(crate) mod pg_server;

/// The state suite runs on both backends: each test body through [`test_backends::each_backend`].
#[cfg(test)]
pub(crate) mod test_backends {
    use super::StateStore;

    /// Runs `f` on a fresh in-memory SQLite store, then on a fresh PostgreSQL schema (when the
    /// test server is available; see `tests/support/pg_server.rs`).
    pub fn each_backend(mut f: impl FnMut(&mut StateStore)) {
        let mut s = StateStore::open_in_memory().unwrap();
        f(&mut s);
        if let Some(url) = super::pg_server::fresh_url() {
            let mut s = StateStore::open(std::path::Path::new(&url))
                .unwrap_or_else(|e| panic!("opening {url}: {e}"));
            assert!(s.is_shared());
            eprintln!("now on PostgreSQL");
            f(&mut s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[cfg(unix)]
    #[test]
    fn state_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let s = StateStore::open(&path).unwrap();
        s.put_value("k", "v").unwrap();
        assert_eq!(mode(&path), 0o600, "state.sqlite");
        for side in ["state.sqlite-wal", "state.sqlite-shm"] {
            let p = dir.path().join(side);
            assert!(p.exists(), "{side} exists in WAL mode");
            assert_eq!(mode(&p), 0o600, "{side}");
        }
        drop(s);
        // A database created 0644 by an older version is tightened when opened.
        let old = dir.path().join("old.sqlite");
        drop(StateStore::open(&old).unwrap());
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(StateStore::open(&old).unwrap());
        assert_eq!(mode(&old), 0o600, "old.sqlite");
    }

    /// The table and column names are the on-disk format: a database written by an older
    /// version must keep opening, so this list only ever grows.
    #[test]
    fn on_disk_schema_is_unchanged() {
        let s = StateStore::open_in_memory().unwrap();
        let Db::Sqlite(conn) = &s.db else {
            unreachable!("in memory is SQLite")
        };
        let mut stmt = conn
            .prepare(
                "SELECT m.name, group_concat(p.name, ',')
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                 GROUP BY m.name ORDER BY m.name",
            )
            .unwrap();
        let tables: Vec<String> = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}({})",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tables,
            [
                "alert(id,corp_id,seq,msgid,conversation_id,msgtime_ms,sender,msgtype,rule_id,\
                 rule_set_version,severity,terms,snippet,created_at)",
                "alert_delivery(alert_id,webhook,status,attempts,next_attempt_at,delivered_at,\
                 last_error,updated_at)",
                "alert_webhook(webhook,planned_id)",
                "auth_corp(corp_id,suite_id,corp_name,permanent_code,enabled,updated_at)",
                "callback_event(id,dedupe_key,route,receiveid,payload,received_at,handled_at)",
                "callback_seen(key,expires_at)",
                "checkpoint(corp_id,last_seq,updated_at)",
                "commit_journal(id,corp_id,last_seq,renames)",
                "export_audit(id,time,corp_id,query,format,export_dir,messages,manifest_sha256,\
                 tool_version,os_user)",
                "findings_screened(corp_id,rule_set_version,file)",
                "kv(key,value,updated_at)",
                "lease(corp_id,holder,claimed_at,expires_at,released_at,done_at)",
                "lease_log(id,corp_id,holder,event,at)",
                "media_file(corp_id,sdkfileid,kind,ext,md5sum,size_hint,status,bytes_done,indexbuf,\
                 tmp_path,attempts,mismatches,md5_status,path,size,sha256,error,updated_at)",
                "media_ref(corp_id,msgid,seq,item_index,sdkfileid)",
                "media_scanned(corp_id,file)",
                "pull_request(corp_id,requested_at)",
                "run(id,corp_id,started_at,finished_at,from_seq,to_seq,written,dead_lettered,\
                 outcome)",
                "suite_ticket(suite_id,ticket,timestamp,received_at)",
                "token(key,value,expires_at)",
            ]
        );
    }
}
