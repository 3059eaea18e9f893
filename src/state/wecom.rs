//! The WeCom-facing side's state: small named values, pushed suite tickets, authorized corps
//! with their permanent codes, callback dedupe keys and cached access tokens; and the auth
//! traits ([`TokenStore`], [`SuiteTicketSource`]) implemented on it.

use std::sync::Arc;

use super::db::{p, DbError, Row};
use super::{now_unix, SharedState, StateError, StateStore};
use crate::auth::providers::{SuiteTicketSource, SUITE_TICKET_TTL_SECS};
use crate::auth::token::{StoredToken, TokenStore};
use crate::clock::Clock;
use crate::secret::Secret;

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS callback_event (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key  TEXT NOT NULL,
    route       TEXT NOT NULL,
    receiveid   TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    handled_at  INTEGER
);
CREATE INDEX IF NOT EXISTS callback_event_unhandled ON callback_event (id) WHERE handled_at IS NULL;
CREATE TABLE IF NOT EXISTS token (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

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

/// A received callback to record ([`StateStore::record_callback_events`]).
#[derive(Debug, Clone, Copy)]
pub struct NewCallbackEvent<'a> {
    /// Dedupe key (WeCom retries carry the same plaintext).
    pub dedupe_key: &'a str,
    /// Which URL it came to (`app`, `suite_command`, `suite_data`).
    pub route: &'a str,
    /// The authenticated receiveid.
    pub receiveid: &'a str,
    /// The decrypted plaintext (may hold an auth code or ticket: the file is 0600).
    pub payload: &'a str,
    /// The corp a `msgaudit_notify` asks to pull. On a PostgreSQL state the request is stored
    /// with the event, in its transaction, for whichever worker holds or next claims the corp.
    pub pull_corp: Option<&'a str>,
}

/// A recorded callback event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCallbackEvent {
    /// Row id, in arrival order.
    pub id: i64,
    /// Dedupe key.
    pub dedupe_key: String,
    /// Which URL it came to.
    pub route: String,
    /// The authenticated receiveid.
    pub receiveid: String,
    /// The decrypted plaintext.
    pub payload: Secret,
    /// Unix seconds it was recorded.
    pub received_at: i64,
    /// Unix seconds it was handled; `None` while it still has to be.
    pub handled_at: Option<i64>,
}

impl StateStore {
    /// Records a batch of received callbacks durably, in one transaction (one fsync): for
    /// each, `Some(row id)` if it is new, `None` if its dedupe key was seen within `ttl_secs`
    /// (a WeCom retry, not recorded again). All or nothing: on `Err` nothing was recorded or
    /// claimed, so a retry of any of them is new. Handled rows older than `ttl_secs` are
    /// purged on the way.
    pub fn record_callback_events(
        &mut self,
        events: &[NewCallbackEvent<'_>],
        now: i64,
        ttl_secs: i64,
    ) -> Result<Vec<Option<i64>>, StateError> {
        self.try_transaction(|store| {
            let keys: Vec<&str> = events.iter().map(|e| e.dedupe_key).collect();
            let fresh = store.claim_callback_keys(&keys, now, ttl_secs)?;
            store
                .db
                .execute(
                    "DELETE FROM callback_event WHERE handled_at IS NOT NULL AND handled_at <= ?1",
                    p![now.saturating_sub(ttl_secs)],
                )
                .map_err(|e| store.err(e))?;
            let mut out = Vec::with_capacity(events.len());
            for (e, fresh) in events.iter().zip(fresh) {
                if !fresh {
                    out.push(None);
                    continue;
                }
                let id = store
                    .db
                    .query_one(
                        "INSERT INTO callback_event
                             (dedupe_key, route, receiveid, payload, received_at)
                         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                        p![e.dedupe_key, e.route, e.receiveid, e.payload, now],
                        |r| r.get::<i64>(0),
                    )
                    .map_err(|e| store.err(e))?;
                if let (Some(corp), true) = (e.pull_corp, store.is_shared()) {
                    store.request_pull(corp, store.db_now_ms()?)?;
                }
                out.push(Some(id));
            }
            Ok(out)
        })
    }

    /// Marks a recorded callback handled.
    pub fn mark_callback_handled(&self, id: i64, now: i64) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE callback_event SET handled_at = ?2 WHERE id = ?1",
                p![id, now],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The recorded callbacks not yet handled, in arrival order (handled at start after a
    /// crash).
    pub fn unhandled_callback_events(&self) -> Result<Vec<StoredCallbackEvent>, StateError> {
        self.callback_events_where("WHERE handled_at IS NULL")
    }

    /// Every recorded callback still kept, in arrival order.
    pub fn callback_events(&self) -> Result<Vec<StoredCallbackEvent>, StateError> {
        self.callback_events_where("")
    }

    fn callback_events_where(&self, filter: &str) -> Result<Vec<StoredCallbackEvent>, StateError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT id, dedupe_key, route, receiveid, payload, received_at, handled_at
                 FROM callback_event {filter} ORDER BY id"
                ),
                &[],
                |r| {
                    Ok(StoredCallbackEvent {
                        id: r.get(0)?,
                        dedupe_key: r.get(1)?,
                        route: r.get(2)?,
                        receiveid: r.get(3)?,
                        payload: Secret::new(r.get::<String>(4)?),
                        received_at: r.get(5)?,
                        handled_at: r.get(6)?,
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// A small named value (tokens, tickets and other state of the WeCom-facing side).
    pub fn get_value(&self, key: &str) -> Result<Option<String>, StateError> {
        self.db
            .query_opt("SELECT value FROM kv WHERE key = ?1", p![key], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Stores a small named value.
    pub fn put_value(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = ?2, updated_at = ?3",
                p![key, value, now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Offers a pushed `suite_ticket`: stored only if its push `TimeStamp` is newer than the
    /// stored one (pushes may arrive out of order, WxJava#1991). Returns whether it was stored.
    ///
    /// A `TimeStamp` more than [`SUITE_TICKET_MAX_FUTURE_SECS`] after `now` is refused: stored,
    /// it would win over every later push and never expire. A stored one from that far in the
    /// future (written before this check) is replaced by any push.
    pub fn offer_suite_ticket(
        &self,
        suite_id: &str,
        ticket: &Secret,
        timestamp: i64,
        now: i64,
    ) -> Result<bool, StateError> {
        let latest_plausible = now.saturating_add(SUITE_TICKET_MAX_FUTURE_SECS);
        if timestamp > latest_plausible {
            return Ok(false);
        }
        // One statement, so two concurrent offers cannot both pass a read-then-write check.
        self.db
            .execute(
                "INSERT INTO suite_ticket (suite_id, ticket, timestamp, received_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(suite_id) DO UPDATE SET ticket = ?2, timestamp = ?3, received_at = ?4
                 WHERE excluded.timestamp > suite_ticket.timestamp
                    OR suite_ticket.timestamp > ?5",
                p![
                    suite_id,
                    ticket.expose(),
                    timestamp,
                    now_unix(),
                    latest_plausible
                ],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// The newest stored `suite_ticket` of `suite_id` with its push `TimeStamp` (the caller
    /// decides whether it is still valid).
    pub fn suite_ticket(&self, suite_id: &str) -> Result<Option<(Secret, i64)>, StateError> {
        self.db
            .query_opt(
                "SELECT ticket, timestamp FROM suite_ticket WHERE suite_id = ?1",
                p![suite_id],
                |r| Ok((Secret::new(r.get::<String>(0)?), r.get::<i64>(1)?)),
            )
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
        self.db
            .execute(
                "INSERT INTO auth_corp (corp_id, suite_id, corp_name, permanent_code, enabled, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)
                 ON CONFLICT(corp_id) DO UPDATE SET suite_id = ?2, corp_name = ?3,
                     permanent_code = ?4, enabled = 1, updated_at = ?5",
                p![corp_id, suite_id, corp_name, permanent_code.expose(), now_unix()],
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
        self.db
            .execute(sql, p![corp_id, now_unix()])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Updates the name of an authorized corp (after `change_auth`).
    pub fn rename_auth_corp(&self, corp_id: &str, corp_name: &str) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE auth_corp SET corp_name = ?2, updated_at = ?3 WHERE corp_id = ?1",
                p![corp_id, corp_name, now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// One authorized corp.
    pub fn auth_corp(&self, corp_id: &str) -> Result<Option<AuthCorp>, StateError> {
        self.db
            .query_opt(
                "SELECT corp_id, suite_id, corp_name, permanent_code, enabled, updated_at
                 FROM auth_corp WHERE corp_id = ?1",
                p![corp_id],
                auth_corp_row,
            )
            .map_err(|e| self.err(e))
    }

    /// Every authorized corp, enabled or not, by corp id.
    pub fn auth_corps(&self) -> Result<Vec<AuthCorp>, StateError> {
        let rows = self
            .db
            .query(
                "SELECT corp_id, suite_id, corp_name, permanent_code, enabled, updated_at
                 FROM auth_corp ORDER BY corp_id",
                &[],
                auth_corp_row,
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
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
        self.db
            .execute("DELETE FROM callback_seen WHERE expires_at <= ?1", p![now])
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let n = self
                .db
                .execute(
                    "INSERT INTO callback_seen (key, expires_at) VALUES (?1, ?2)
                     ON CONFLICT(key) DO NOTHING",
                    p![key, now + ttl_secs],
                )
                .map_err(|e| self.err(e))?;
            out.push(n > 0);
        }
        Ok(out)
    }

    /// A stored token ([`crate::auth::token::TokenStore`] on SQLite): value and expiry.
    pub fn token(&self, key: &str) -> Result<Option<(Secret, i64)>, StateError> {
        self.db
            .query_opt(
                "SELECT value, expires_at FROM token WHERE key = ?1",
                p![key],
                |r| Ok((Secret::new(r.get::<String>(0)?), r.get::<i64>(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// Stores a token unless the stored one expires later (an older response must not
    /// overwrite a newer token).
    pub fn save_token(&self, key: &str, value: &Secret, expires_at: i64) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT INTO token (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = ?2, expires_at = ?3
                 WHERE excluded.expires_at >= token.expires_at",
                p![key, value.expose(), expires_at],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets a token, only if it is still `rejected`.
    pub fn remove_token(&self, key: &str, rejected: &Secret) -> Result<(), StateError> {
        self.db
            .execute(
                "DELETE FROM token WHERE key = ?1 AND value = ?2",
                p![key, rejected.expose()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

impl StateStore {
    /// Holds `key`'s token-fetch lock, shared by every worker on this PostgreSQL database, until
    /// this connection closes: a session advisory lock on the key's hash.
    pub fn lock_token_fetch(&mut self, key: &str) -> Result<(), StateError> {
        self.db
            .execute(
                "SELECT pg_advisory_lock(?1, hashtext(CAST(?2 AS TEXT)))",
                p![TOKEN_LOCK_SPACE, key],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

/// The first key of the token-fetch advisory locks (the second is the token key's hash).
const TOKEN_LOCK_SPACE: i32 = 0x7763_0003;

fn auth_corp_row(r: &Row<'_, '_>) -> Result<AuthCorp, DbError> {
    Ok(AuthCorp {
        corp_id: r.get(0)?,
        suite_id: r.get(1)?,
        corp_name: r.get(2)?,
        permanent_code: r.get::<Option<String>>(3)?.map(Secret::new),
        enabled: r.get::<i64>(4)? != 0,
        updated_at: r.get(5)?,
    })
}

/// Tokens persisted in the state database: survive restarts, and the later expiry wins.
impl TokenStore for SharedState {
    fn load(&self, key: &str) -> Option<StoredToken> {
        match self.lock().token(key) {
            Ok(t) => t.map(|(value, expires_at_unix)| StoredToken {
                value,
                expires_at_unix,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a token from the state database");
                None
            }
        }
    }

    fn save(&self, key: &str, token: &StoredToken) {
        if let Err(e) = self
            .lock()
            .save_token(key, &token.value, token.expires_at_unix)
        {
            // Costs one extra fetch after a restart, no more.
            tracing::warn!(error = %e, "cannot save a token to the state database");
        }
    }

    fn remove(&self, key: &str, rejected: &Secret) {
        if let Err(e) = self.lock().remove_token(key, rejected) {
            tracing::warn!(error = %e, "cannot remove a token from the state database");
        }
    }

    fn lock_fetch(&self, key: &str) -> Option<Box<dyn std::any::Any + Send>> {
        // Its own connection: waiting for another worker must not hold the shared one.
        let mut own = self.lock().reconnect()?;
        match own.lock_token_fetch(key) {
            Ok(()) => Some(Box::new(own)),
            Err(e) => {
                // Without the lock a second worker may fetch too: one extra call, no harm.
                tracing::warn!(error = %e, "cannot take the fleet's token lock; fetching anyway");
                None
            }
        }
    }
}

/// The newest pushed `suite_ticket`, from the state database, while it is valid
/// ([`SUITE_TICKET_TTL_SECS`] after its push `TimeStamp`).
#[derive(Debug, Clone)]
pub struct StoredSuiteTickets {
    state: SharedState,
    clock: Arc<dyn Clock>,
}

impl StoredSuiteTickets {
    /// Tickets from `state`, aged on `clock`.
    pub fn new(state: SharedState, clock: Arc<dyn Clock>) -> Self {
        StoredSuiteTickets { state, clock }
    }
}

impl SuiteTicketSource for StoredSuiteTickets {
    fn latest(&self, suite_id: &str) -> Option<Secret> {
        let stored = match self.state.lock().suite_ticket(suite_id) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(suite = suite_id, error = %e, "cannot read the suite_ticket");
                None
            }
        };
        let now = self.clock.now_unix();
        stored
            .filter(|(_, ts)| suite_ticket_valid(now, *ts))
            .map(|(t, _)| t)
    }
}

/// How far after now a `suite_ticket`'s push `TimeStamp` may be (clock skew) and still count.
pub const SUITE_TICKET_MAX_FUTURE_SECS: i64 = 300;

/// Whether a ticket pushed at `ts` is valid at `now`: younger than [`SUITE_TICKET_TTL_SECS`]
/// and not from the absurd future. Saturating, so no `ts` wraps into validity.
fn suite_ticket_valid(now: i64, ts: i64) -> bool {
    ts <= now.saturating_add(SUITE_TICKET_MAX_FUTURE_SECS)
        && now.saturating_sub(ts) < SUITE_TICKET_TTL_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn suite_ticket_keeps_the_newest_push() {
        crate::state::test_backends::each_backend(|s| {
            assert!(s.suite_ticket("ws").unwrap().is_none());
            assert!(s
                .offer_suite_ticket("ws", &Secret::new("t2"), 200, 300)
                .unwrap());
            // An older push arriving late is ignored, so is a replay of the same push.
            assert!(!s
                .offer_suite_ticket("ws", &Secret::new("t1"), 100, 300)
                .unwrap());
            assert!(!s
                .offer_suite_ticket("ws", &Secret::new("t2"), 200, 300)
                .unwrap());
            assert!(s
                .offer_suite_ticket("ws", &Secret::new("t3"), 300, 300)
                .unwrap());
            let (t, ts) = s.suite_ticket("ws").unwrap().unwrap();
            assert_eq!((t.expose(), ts), ("t3", 300));
            assert!(s.suite_ticket("other").unwrap().is_none());
        });
    }

    #[test]
    fn suite_ticket_from_the_far_future_is_refused_and_never_kept_forever() {
        let now = 1_700_000_000;
        let s = StateStore::open_in_memory().unwrap();
        assert!(s
            .offer_suite_ticket("ws", &Secret::new("t1"), now, now)
            .unwrap());
        // Stored, i64::MAX would win over every later push and never expire.
        assert!(!s
            .offer_suite_ticket("ws", &Secret::new("evil"), i64::MAX, now)
            .unwrap());
        assert!(!s
            .offer_suite_ticket("ws", &Secret::new("evil"), now + 301, now)
            .unwrap());
        assert_eq!(s.suite_ticket("ws").unwrap().unwrap().1, now);
        // Within the skew it is a normal push.
        assert!(s
            .offer_suite_ticket("ws", &Secret::new("t2"), now + 300, now)
            .unwrap());
        // A far-future row already on disk (written before the check) is replaced.
        s.db.execute("UPDATE suite_ticket SET timestamp = ?1", p![i64::MAX])
            .unwrap();
        assert!(s
            .offer_suite_ticket("ws", &Secret::new("t3"), now + 10, now)
            .unwrap());
        assert_eq!(s.suite_ticket("ws").unwrap().unwrap().0.expose(), "t3");
    }

    #[test]
    fn stored_ticket_validity_does_not_overflow() {
        let now = 1_700_000_000;
        assert!(suite_ticket_valid(now, now));
        assert!(suite_ticket_valid(now, now + 300));
        assert!(!suite_ticket_valid(now, now - SUITE_TICKET_TTL_SECS));
        assert!(!suite_ticket_valid(now, i64::MAX));
        assert!(!suite_ticket_valid(now, i64::MIN));
        assert!(!suite_ticket_valid(now, now + 301));
    }

    #[test]
    fn auth_corps_are_stored_disabled_and_reenabled() {
        crate::state::test_backends::each_backend(|s| {
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
        });
    }

    #[test]
    fn callback_keys_are_claimed_once_until_they_expire() {
        crate::state::test_backends::each_backend(|s| {
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
        });
    }

    #[test]
    fn callback_events_are_recorded_once_and_marked_handled() {
        crate::state::test_backends::each_backend(|s| {
            let ev = |k| NewCallbackEvent {
                dedupe_key: k,
                route: "app",
                receiveid: "ww1",
                payload: "<xml/>",
                pull_corp: None,
            };
            let ids = s
                .record_callback_events(&[ev("a"), ev("b"), ev("a")], 1000, 60)
                .unwrap();
            assert!(ids[0].is_some() && ids[1].is_some() && ids[2].is_none());
            assert_eq!(
                s.record_callback_events(&[ev("b")], 1001, 60).unwrap(),
                [None]
            );
            assert_eq!(s.unhandled_callback_events().unwrap().len(), 2);
            s.mark_callback_handled(ids[0].unwrap(), 1002).unwrap();
            let left = s.unhandled_callback_events().unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(
                (left[0].id, left[0].dedupe_key.as_str()),
                (ids[1].unwrap(), "b")
            );
            // Handled rows are purged once their dedupe key has expired.
            s.record_callback_events(&[], 1062, 60).unwrap();
            assert_eq!(s.callback_events().unwrap().len(), 1);
        });
    }

    #[test]
    fn a_failed_record_claims_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let mut s = StateStore::open(&path).unwrap();
        let crate::state::db::Db::Sqlite(conn) = &s.db else {
            unreachable!("a file store is SQLite")
        };
        conn.busy_timeout(std::time::Duration::from_millis(10))
            .unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ev = NewCallbackEvent {
            dedupe_key: "k",
            route: "app",
            receiveid: "ww1",
            payload: "<xml/>",
            pull_corp: None,
        };
        assert!(s.record_callback_events(&[ev], 1000, 60).is_err());
        other.execute_batch("ROLLBACK").unwrap();
        assert!(s.record_callback_events(&[ev], 1000, 60).unwrap()[0].is_some());
    }

    #[test]
    fn tokens_keep_the_later_expiry_and_remove_only_the_rejected_one() {
        crate::state::test_backends::each_backend(|s| {
            s.save_token("k", &Secret::new("new"), 200).unwrap();
            s.save_token("k", &Secret::new("old"), 100).unwrap();
            assert_eq!(s.token("k").unwrap().unwrap().0.expose(), "new");
            s.remove_token("k", &Secret::new("old")).unwrap();
            assert!(s.token("k").unwrap().is_some());
            s.remove_token("k", &Secret::new("new")).unwrap();
            assert!(s.token("k").unwrap().is_none());
        });
    }

    #[test]
    fn tickets_expire_after_30_minutes_and_tokens_round_trip() {
        let state = SharedState::new(StateStore::open_in_memory().unwrap());
        let clock = Arc::new(ManualClock::new(10_000));
        let tickets = StoredSuiteTickets::new(state.clone(), clock.clone());
        assert!(tickets.latest("ws").is_none());
        state
            .lock()
            .offer_suite_ticket("ws", &Secret::new("t"), 10_000, 10_000)
            .unwrap();
        assert_eq!(tickets.latest("ws").unwrap().expose(), "t");
        clock.advance(SUITE_TICKET_TTL_SECS);
        assert!(tickets.latest("ws").is_none());

        let tok = StoredToken {
            value: Secret::new("v"),
            expires_at_unix: 5,
        };
        state.save("k", &tok);
        assert_eq!(state.load("k"), Some(tok));
        state.remove("k", &Secret::new("v"));
        assert_eq!(state.load("k"), None);
    }
}
