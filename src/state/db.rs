//! The two backends of the state database behind one small SQL interface: SQLite (embedded, the
//! default) and PostgreSQL (shared by many workers).
//!
//! The areas write their SQL once, in the dialect both accept: `?N` placeholders (rewritten to
//! `$N` for PostgreSQL), `INSERT … ON CONFLICT … DO NOTHING | DO UPDATE`, `RETURNING id` instead
//! of `last_insert_rowid()`, `CAST(… AS BIGINT)` around aggregates whose PostgreSQL type would
//! otherwise be `NUMERIC`. Every integer column is 64 bits on both sides (`INTEGER` in SQLite,
//! `BIGINT` in PostgreSQL), so every integer parameter and result is an `i64`.

use std::cell::RefCell;
use std::fmt;

/// A parameter both backends can bind.
pub(crate) trait Param: Sync {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Param for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync) {
        self
    }
}

/// A column type both backends can read.
pub(crate) trait Column: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Self>;
    fn from_pg(row: &postgres::Row, idx: usize) -> Result<Self, postgres::Error>;
}

impl<T> Column for T
where
    T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>,
{
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Self> {
        row.get(idx)
    }
    fn from_pg(row: &postgres::Row, idx: usize) -> Result<Self, postgres::Error> {
        row.try_get(idx)
    }
}

/// One result row of either backend.
pub(crate) enum Row<'a, 'b> {
    Sqlite(&'a rusqlite::Row<'b>),
    Pg(&'a postgres::Row),
}

impl Row<'_, '_> {
    /// Column `idx` (0-based).
    pub fn get<T: Column>(&self, idx: usize) -> Result<T, DbError> {
        match self {
            Row::Sqlite(r) => T::from_sqlite(r, idx).map_err(DbError::Sqlite),
            Row::Pg(r) => T::from_pg(r, idx).map_err(DbError::Pg),
        }
    }
}

/// An error of either backend, or of the state layer above them (a value that does not decode, a
/// missing row, a database that cannot be opened as configured).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[source] rusqlite::Error),
    /// PostgreSQL failed (the server's message, with its SQLSTATE, when it sent one).
    #[error("{}", pg_message(.0))]
    Pg(#[source] postgres::Error),
    /// A stored value is not what this version writes.
    #[error("a stored value does not decode: {0}")]
    Decode(String),
    /// A query that must return a row returned none.
    #[error("no row for: {0}")]
    NoRow(String),
    /// The database could not be opened as configured (the URL, the password file, the file's
    /// mode, a schema newer than this version); the message says what to fix.
    #[error("{0}")]
    Open(String),
}

fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        // Connection errors: the client's own text ("error connecting to server: …").
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// A connection to one of the backends.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    // `postgres::Client` wants `&mut self`; the store's methods take `&self` like rusqlite's.
    Pg(PgClient),
}

/// A PostgreSQL connection, usable from any thread, inside an async runtime too.
///
/// The `postgres` client drives its connection on a runtime of its own, which tokio forbids
/// starting on a thread that runs async tasks (`serve` reaches the state from those). There,
/// each call runs on a short-lived thread of its own; elsewhere (the pipeline, the CLI) on the
/// caller's.
pub(crate) struct PgClient(RefCell<Option<postgres::Client>>);

fn in_async_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Runs `op` where the `postgres` client may block (see [`PgClient`]).
pub(crate) fn off_runtime<T: Send>(op: impl FnOnce() -> T + Send) -> T {
    if in_async_runtime() {
        std::thread::scope(|s| s.spawn(op).join().expect("a state query does not panic"))
    } else {
        op()
    }
}

impl PgClient {
    /// Wraps a connected client.
    pub fn new(client: postgres::Client) -> Self {
        PgClient(RefCell::new(Some(client)))
    }

    fn call<T: Send>(
        &self,
        op: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, DbError> {
        let mut guard = self.0.borrow_mut();
        let client = guard.as_mut().expect("open until dropped");
        off_runtime(|| op(client)).map_err(DbError::Pg)
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        // Closing blocks on the client's runtime too.
        if let Some(client) = self.0.get_mut().take() {
            off_runtime(move || drop(client));
        }
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Db::Sqlite(_) => "Db::Sqlite",
            Db::Pg(_) => "Db::Pg",
        })
    }
}

/// `?N` → `$N` (placeholders only: the areas' SQL has no `?` inside string literals).
fn pg_sql(sql: &str) -> String {
    sql.replace('?', "$")
}

fn sqlite_params<'a>(params: &'a [&'a dyn Param]) -> Vec<&'a dyn rusqlite::ToSql> {
    params.iter().map(|p| p.sqlite()).collect()
}

fn pg_params<'a>(params: &'a [&'a dyn Param]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p.pg()).collect()
}

/// The first `limit` rows of a SQLite query, each mapped by `f`.
fn sqlite_rows<T>(
    c: &rusqlite::Connection,
    sql: &str,
    params: &[&dyn Param],
    limit: usize,
    mut f: impl FnMut(&Row<'_, '_>) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    let mut stmt = c.prepare(sql).map_err(DbError::Sqlite)?;
    let mut rows = stmt
        .query(sqlite_params(params).as_slice())
        .map_err(DbError::Sqlite)?;
    let mut out = Vec::new();
    while out.len() < limit {
        match rows.next().map_err(DbError::Sqlite)? {
            Some(r) => out.push(f(&Row::Sqlite(r))?),
            None => break,
        }
    }
    Ok(out)
}

impl Db {
    /// Whether this is the PostgreSQL backend.
    pub fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(c) => c
                .execute(sql, sqlite_params(params).as_slice())
                .map(|n| n as u64)
                .map_err(DbError::Sqlite),
            Db::Pg(c) => {
                let sql = pg_sql(sql);
                c.call(|client| client.execute(sql.as_str(), &pg_params(params)))
            }
        }
    }

    /// Runs several statements without parameters.
    pub fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => c.execute_batch(sql).map_err(DbError::Sqlite),
            Db::Pg(c) => c.call(|client| client.batch_execute(sql)),
        }
    }

    /// Every row of a query, each mapped by `f`.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_, '_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        match self {
            Db::Sqlite(c) => sqlite_rows(c, sql, params, usize::MAX, f),
            Db::Pg(c) => {
                let sql = pg_sql(sql);
                let rows = c.call(|client| client.query(sql.as_str(), &pg_params(params)))?;
                rows.iter().map(|r| f(&Row::Pg(r))).collect()
            }
        }
    }

    /// The first row of a query, if any, mapped by `f`.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_, '_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        match self {
            Db::Sqlite(c) => Ok(sqlite_rows(c, sql, params, 1, f)?.pop()),
            Db::Pg(c) => {
                let sql = pg_sql(sql);
                let row = c.call(|client| client.query_opt(sql.as_str(), &pg_params(params)))?;
                row.map(|r| f(&Row::Pg(&r))).transpose()
            }
        }
    }

    /// The one row a query must return, mapped by `f`.
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnMut(&Row<'_, '_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| DbError::NoRow(sql.trim().to_owned()))
    }

    /// Starts a transaction that takes the write lock at once (SQLite `BEGIN IMMEDIATE`), so
    /// that it cannot fail later on a lock upgrade.
    pub fn begin(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE"),
            Db::Pg(_) => self.batch("BEGIN"),
        }
    }

    /// Commits the open transaction; on failure rolls it back.
    pub fn commit(&self) -> Result<(), DbError> {
        self.batch("COMMIT").inspect_err(|_| {
            let _ = self.batch("ROLLBACK");
        })
    }

    /// Rolls the open transaction back.
    pub fn rollback(&self) {
        let _ = self.batch("ROLLBACK");
    }

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    pub fn transaction<R>(&self, f: impl FnOnce(&Db) -> Result<R, DbError>) -> Result<R, DbError> {
        self.begin()?;
        match f(self) {
            Ok(r) => self.commit().map(|()| r),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }
}

/// `?1, ?2, … ?n` starting after `from` (for `IN (…)` lists).
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from + 1..=from + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The parameters of one statement: `p![a, b]` is `&[&a, &b]` as [`Param`]s.
macro_rules! p {
    ($($x:expr),* $(,)?) => {
        &[$(&$x as &dyn $crate::state::db::Param),*] as &[&dyn $crate::state::db::Param]
    };
}
pub(crate) use p;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_for_postgres() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
        assert_eq!(placeholders(2, 3), "?3, ?4, ?5");
    }
}
