//! Corp leases: at most one worker pulls a corp at a time.
//!
//! ```text
//!  claim ──▶ lease(corp_id, holder, expires_at)      granted when free, expired, or already ours
//!  renew ──▶ expires_at moves on                      only while still ours and unexpired
//!  release ─▶ expires_at = now                        the row stays: `status` shows the last holder
//! ```
//!
//! A claim is one `INSERT … ON CONFLICT DO UPDATE … WHERE` statement, so two workers claiming
//! the same corp at once cannot both win: SQLite serializes writers, PostgreSQL locks the row
//! and re-checks the condition on its newest version. Times are the database's clock on
//! PostgreSQL (workers on different machines need not agree on the time) and this machine's on
//! SQLite. Every claim, takeover and release is appended to `lease_log`, the fleet's record of
//! who held what when.
//!
//! `pull_request` is the fleet's queue of pulls asked for by `msgaudit_notify` callbacks, one
//! row per corp (requests coalesce). The worker that stored the callback writes it in the same
//! transaction that marks the event handled; every worker polls for requests of corps that are
//! free or its own; the worker whose claim of the lease succeeds takes the requests made up to
//! then, and its pull answers them.

use super::db::{p, Db, DbError};
use super::{StateError, StateStore};

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lease (
    corp_id    TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    claimed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    released_at INTEGER,
    done_at     INTEGER
);
CREATE TABLE IF NOT EXISTS pull_request (
    corp_id      TEXT PRIMARY KEY,
    requested_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    corp_id TEXT NOT NULL,
    holder  TEXT NOT NULL,
    event   TEXT NOT NULL,
    at      INTEGER NOT NULL
);
";

/// One corp's lease (times in Unix milliseconds of the database's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The corp.
    pub corp_id: String,
    /// The worker holding (or, once expired, last holding) it.
    pub holder: String,
    /// When the holder claimed it.
    pub claimed_at_ms: i64,
    /// When it ends unless renewed; at or before now: free.
    pub expires_at_ms: i64,
    /// When the holder released it (`None`: held, or expired without a release).
    pub released_at_ms: Option<i64>,
    /// When a holder last released it after pulling it to the end (caught up).
    pub done_at_ms: Option<i64>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The lease is ours until `expires_at_ms`.
    Granted {
        /// When it ends unless renewed.
        expires_at_ms: i64,
        /// The previous holder whose lease had expired without a release (a worker that died).
        took_over_from: Option<String>,
    },
    /// Another worker holds it.
    Held(Lease),
}

fn lease_row(r: &super::db::Row<'_, '_>) -> Result<Lease, DbError> {
    Ok(Lease {
        corp_id: r.get(0)?,
        holder: r.get(1)?,
        claimed_at_ms: r.get(2)?,
        expires_at_ms: r.get(3)?,
        released_at_ms: r.get(4)?,
        done_at_ms: r.get(5)?,
    })
}

fn log(db: &Db, corp_id: &str, holder: &str, event: &str, at: i64) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO lease_log (corp_id, holder, event, at) VALUES (?1, ?2, ?3, ?4)",
        p![corp_id, holder, event, at],
    )
    .map(drop)
}

impl StateStore {
    /// Now in Unix milliseconds, by the database's clock on PostgreSQL (one clock for every
    /// worker) and by this machine's on SQLite.
    pub fn db_now_ms(&self) -> Result<i64, StateError> {
        if !self.db.is_pg() {
            return Ok(super::now_unix_ms());
        }
        self.db
            .query_one(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                &[],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Claims `corp_id` for `holder` for `ttl_ms`: granted when nobody holds it, the lease
    /// expired, or `holder` holds it already (then it is renewed).
    pub fn claim_lease(
        &mut self,
        corp_id: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<LeaseClaim, StateError> {
        let now = self.db_now_ms()?;
        let path = self.path.clone();
        self.db
            .transaction(|db| {
                let before = db.query_opt(
                    "SELECT corp_id, holder, claimed_at, expires_at, released_at, done_at FROM lease WHERE corp_id = ?1",
                    p![corp_id],
                    lease_row,
                )?;
                let granted = db.query_opt(
                    "INSERT INTO lease (corp_id, holder, claimed_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (corp_id) DO UPDATE SET
                         holder = excluded.holder,
                         claimed_at = CASE WHEN lease.holder = excluded.holder
                                            AND lease.expires_at > ?3
                                           THEN lease.claimed_at ELSE excluded.claimed_at END,
                         expires_at = excluded.expires_at,
                         released_at = NULL
                     WHERE lease.holder = excluded.holder OR lease.expires_at <= ?3
                     RETURNING expires_at",
                    p![corp_id, holder, now, now + ttl_ms],
                    |r| r.get::<i64>(0),
                )?;
                let Some(expires_at_ms) = granted else {
                    // Lost to a holder; read it as it is now (it may differ from `before`).
                    let held = db.query_one(
                        "SELECT corp_id, holder, claimed_at, expires_at, released_at, done_at FROM lease
                         WHERE corp_id = ?1",
                        p![corp_id],
                        lease_row,
                    )?;
                    return Ok(LeaseClaim::Held(held));
                };
                let took_over_from = before
                    .filter(|b| b.holder != holder && b.released_at_ms.is_none())
                    .filter(|b| b.expires_at_ms <= now)
                    .map(|b| b.holder);
                let event = if took_over_from.is_some() {
                    "takeover"
                } else {
                    "claim"
                };
                log(db, corp_id, holder, event, now)?;
                Ok(LeaseClaim::Granted {
                    expires_at_ms,
                    took_over_from,
                })
            })
            .map_err(|source| StateError { path, source })
    }

    /// Moves `holder`'s lease on `corp_id` to end `ttl_ms` from now. `false`: the lease is no
    /// longer `holder`'s (it expired, perhaps to another worker): stop pulling the corp.
    pub fn renew_lease(
        &self,
        corp_id: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StateError> {
        let now = self.db_now_ms()?;
        self.db
            .execute(
                "UPDATE lease SET expires_at = ?4
                 WHERE corp_id = ?1 AND holder = ?2 AND expires_at > ?3",
                p![corp_id, holder, now, now + ttl_ms],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Ends `holder`'s lease on `corp_id` now (nothing if it is not `holder`'s). The row stays,
    /// so `status` can show the last holder. `caught_up`: the holder pulled the corp to the end
    /// (recorded as `done_at`).
    pub fn release_lease(
        &mut self,
        corp_id: &str,
        holder: &str,
        caught_up: bool,
    ) -> Result<(), StateError> {
        let now = self.db_now_ms()?;
        let path = self.path.clone();
        self.db
            .transaction(|db| {
                let n = db.execute(
                    "UPDATE lease SET expires_at = ?3, released_at = ?3,
                         done_at = CASE WHEN CAST(?4 AS BIGINT) = 1 THEN ?3 ELSE done_at END
                     WHERE corp_id = ?1 AND holder = ?2 AND expires_at > ?3",
                    p![corp_id, holder, now, i64::from(caught_up)],
                )?;
                if n > 0 {
                    log(db, corp_id, holder, "release", now)?;
                }
                Ok(())
            })
            .map_err(|source| StateError { path, source })
    }

    /// Asks the fleet for a pull of `corp_id` (a `msgaudit_notify`), at `at_ms`.
    pub fn request_pull(&self, corp_id: &str, at_ms: i64) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT INTO pull_request (corp_id, requested_at) VALUES (?1, ?2)
                 ON CONFLICT (corp_id) DO UPDATE SET requested_at = excluded.requested_at
                 WHERE excluded.requested_at > pull_request.requested_at",
                p![corp_id, at_ms],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Takes the pull requests of `corp_id` made up to `at_ms` (the caller holds its lease and
    /// is about to pull it).
    pub fn take_pull_requests(&self, corp_id: &str, at_ms: i64) -> Result<(), StateError> {
        self.db
            .execute(
                "DELETE FROM pull_request WHERE corp_id = ?1 AND requested_at <= ?2",
                p![corp_id, at_ms],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The corps with a pull request that `holder` may pull now: free, or held by `holder`.
    pub fn pull_requests_for(&self, holder: &str) -> Result<Vec<String>, StateError> {
        let now = self.db_now_ms()?;
        self.db
            .query(
                "SELECT r.corp_id FROM pull_request r
                 WHERE NOT EXISTS (SELECT 1 FROM lease l WHERE l.corp_id = r.corp_id
                                   AND l.expires_at > ?2 AND l.holder <> ?1)
                 ORDER BY r.requested_at",
                p![holder, now],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// `corp_id`'s lease (current or last), if it ever had one.
    pub fn lease(&self, corp_id: &str) -> Result<Option<Lease>, StateError> {
        self.db
            .query_opt(
                "SELECT corp_id, holder, claimed_at, expires_at, released_at, done_at FROM lease
                 WHERE corp_id = ?1",
                p![corp_id],
                lease_row,
            )
            .map_err(|e| self.err(e))
    }

    /// Every corp's lease (current or last), by corp.
    pub fn leases(&self) -> Result<Vec<Lease>, StateError> {
        self.db
            .query(
                "SELECT corp_id, holder, claimed_at, expires_at, released_at, done_at FROM lease ORDER BY corp_id",
                &[],
                lease_row,
            )
            .map_err(|e| self.err(e))
    }

    /// The lease log of `corp_id`, oldest first: `(holder, event, at_ms)`, event one of
    /// `claim`, `takeover`, `release`.
    pub fn lease_log(&self, corp_id: &str) -> Result<Vec<(String, String, i64)>, StateError> {
        self.db
            .query(
                "SELECT holder, event, at FROM lease_log WHERE corp_id = ?1 ORDER BY id",
                p![corp_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use crate::state::test_backends::each_backend;
    use crate::state::LeaseClaim;

    #[test]
    fn one_holder_at_a_time_and_takeover_after_expiry() {
        each_backend(|s| {
            let a = s.claim_lease("ww1", "worker-a", 60_000).unwrap();
            assert!(
                matches!(
                    a,
                    LeaseClaim::Granted {
                        took_over_from: None,
                        ..
                    }
                ),
                "{a:?}"
            );
            match s.claim_lease("ww1", "worker-b", 60_000).unwrap() {
                LeaseClaim::Held(l) => assert_eq!(l.holder, "worker-a"),
                other => panic!("worker-b got {other:?}"),
            }
            // The holder's own claim renews; another corp is free.
            assert!(matches!(
                s.claim_lease("ww1", "worker-a", 60_000).unwrap(),
                LeaseClaim::Granted { .. }
            ));
            assert!(matches!(
                s.claim_lease("ww2", "worker-b", 60_000).unwrap(),
                LeaseClaim::Granted { .. }
            ));
            assert!(s.renew_lease("ww1", "worker-a", 60_000).unwrap());
            assert!(!s.renew_lease("ww1", "worker-b", 60_000).unwrap());

            // worker-a dies: a lease of 0 ms stands for one that ran out.
            assert!(s.renew_lease("ww1", "worker-a", -1).unwrap());
            match s.claim_lease("ww1", "worker-b", 60_000).unwrap() {
                LeaseClaim::Granted { took_over_from, .. } => {
                    assert_eq!(took_over_from.as_deref(), Some("worker-a"))
                }
                other => panic!("takeover refused: {other:?}"),
            }
            // The dead worker's renewal fails: it must stop.
            assert!(!s.renew_lease("ww1", "worker-a", 60_000).unwrap());

            s.release_lease("ww1", "worker-b", true).unwrap();
            s.release_lease("ww1", "worker-a", true).unwrap(); // not a's: nothing
                                                               // A pull that stopped early releases without marking the corp done.
            s.release_lease("ww2", "worker-b", false).unwrap();
            let got = s.leases().unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].holder, "worker-b");
            assert!(got[0].done_at_ms.is_some(), "{got:?}");
            assert!(
                got[1].released_at_ms.is_some() && got[1].done_at_ms.is_none(),
                "{got:?}"
            );
            assert!(got[0].expires_at_ms <= s.db_now_ms().unwrap());
            let log: Vec<_> = s
                .lease_log("ww1")
                .unwrap()
                .into_iter()
                .map(|(h, e, _)| format!("{h}:{e}"))
                .collect();
            assert_eq!(
                log,
                [
                    "worker-a:claim",
                    "worker-a:claim",
                    "worker-b:takeover",
                    "worker-b:release"
                ]
            );
            // Released: free for anyone at once, and not a takeover.
            assert!(matches!(
                s.claim_lease("ww1", "worker-c", 60_000).unwrap(),
                LeaseClaim::Granted {
                    took_over_from: None,
                    ..
                }
            ));
        });
    }
}
