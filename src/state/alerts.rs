//! The alert outbox: findings to alert on, and their delivery to each webhook.
//!
//! ```text
//!  pipeline commit ──(same transaction)──▶ alert            one row per (corp, msgid, rule, rule-set version)
//!  dispatcher pass ──plan──▶ alert_delivery                 one row per (alert, webhook) whose filter it meets
//!                  ──claim──▶ attempts + 1, leased          nobody else sends it while the request runs
//!                  ──POST──▶ receiver
//!                  ──finish──▶ delivered | retry at … | failed
//! ```
//!
//! An alert is written in the transaction that journals the pipeline commit of its message
//! ([`insert_alerts`]), so it exists exactly when its finding is durably committed. Deliveries
//! are planned by the dispatcher per configured webhook, above a per-webhook watermark (the
//! highest alert id already planned): SQLite serializes writers and ids only grow, so no alert
//! is skipped. Every state change is one transaction; a claimed delivery carries a lease
//! (`next_attempt_at` in the future) so that two dispatchers on one database never send the
//! same row at once, and a process that dies mid-request leaves it due again when the lease
//! ends. What the network does is at-least-once: see "Delivery guarantees" in
//! `docs/compliance.md`.

use super::db::{p, placeholders, Db, DbError, Param, Row};
use super::{seq_from_sql, seq_to_sql, StateError, StateStore};
use crate::compliance::rules::Severity;

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    corp_id          TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    msgid            TEXT NOT NULL,
    conversation_id  TEXT,
    msgtime_ms       INTEGER,
    sender           TEXT,
    msgtype          TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    rule_set_version TEXT NOT NULL,
    severity         TEXT NOT NULL,
    terms            TEXT NOT NULL,
    snippet          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    UNIQUE (corp_id, msgid, rule_id, rule_set_version)
);
CREATE TABLE IF NOT EXISTS alert_delivery (
    alert_id        INTEGER NOT NULL,
    webhook         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (webhook, alert_id)
);
CREATE INDEX IF NOT EXISTS alert_delivery_due ON alert_delivery (webhook, status, next_attempt_at);
CREATE TABLE IF NOT EXISTS alert_webhook (
    webhook    TEXT PRIMARY KEY,
    planned_id INTEGER NOT NULL
);
";

/// The rank of a severity in SQL, so that "at or above" is a comparison.
const SEVERITY_RANK: &str = "CASE a.severity WHEN 'critical' THEN 2 WHEN 'warn' THEN 1 ELSE 0 END";

fn rank(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Warn => 1,
        Severity::Critical => 2,
    }
}

/// One finding to alert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The corp.
    pub corp_id: String,
    /// The message's seq.
    pub seq: u64,
    /// The message's msgid.
    pub msgid: String,
    /// Its conversation ([`crate::model::conversation`]), when it has one.
    pub conversation_id: Option<String>,
    /// Its `msgtime`, Unix milliseconds.
    pub msgtime_ms: Option<i64>,
    /// Its sender.
    pub from: Option<String>,
    /// Its msgtype.
    pub msgtype: String,
    /// The rule that fired.
    pub rule_id: String,
    /// The rule set's version (its hash).
    pub rule_set_version: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The matched terms.
    pub terms: Vec<String>,
    /// A short snippet around the first match.
    pub snippet: String,
}

/// An alert as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// Its id in the outbox (grows with each new alert).
    pub id: i64,
    /// When it was stored, Unix seconds.
    pub created_at: i64,
    /// The finding.
    pub alert: NewAlert,
}

/// A delivery claimed for sending: the alert and the attempt this is (1 for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAlert {
    /// The alert.
    pub stored: StoredAlert,
    /// The attempt being made, counting this one.
    pub attempt: u32,
}

/// What becomes of a delivery whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertRetry {
    /// Try again at this Unix second.
    At(i64),
    /// No more attempts: kept as `failed` (`alerts --retry-failed` makes it pending again).
    GiveUp,
}

/// The outbox of one webhook, for `alerts` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookOutbox {
    /// The webhook's name.
    pub webhook: String,
    /// Deliveries waiting (including those waiting for a retry).
    pub pending: u64,
    /// Deliveries the receiver accepted.
    pub delivered: u64,
    /// Deliveries that used up their attempts.
    pub failed: u64,
    /// Attempts made over all deliveries.
    pub attempts: u64,
    /// The earliest Unix second a pending delivery is due.
    pub next_attempt_at: Option<i64>,
    /// The most recent error of a delivery not delivered (never a URL).
    pub last_error: Option<String>,
}

/// Inserts alerts in the caller's transaction; an alert already stored (same corp_id, msgid,
/// rule_id, rule_set_version) is ignored. Returns how many were new.
pub(crate) fn insert_alerts(db: &Db, alerts: &[NewAlert]) -> Result<usize, DbError> {
    if alerts.is_empty() {
        return Ok(0);
    }
    serialize_alert_ids(db)?;
    let now = super::now_unix();
    let mut new = 0;
    for a in alerts {
        let terms = serde_json::to_string(&a.terms).expect("a list of strings always encodes");
        new += db.execute(
            "INSERT INTO alert (corp_id, seq, msgid, conversation_id, msgtime_ms, sender,
                                msgtype, rule_id, rule_set_version, severity, terms,
                                snippet, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT DO NOTHING",
            p![
                a.corp_id,
                seq_to_sql(a.seq),
                a.msgid,
                a.conversation_id,
                a.msgtime_ms,
                a.from,
                a.msgtype,
                a.rule_id,
                a.rule_set_version,
                a.severity.as_str(),
                terms,
                a.snippet,
                now
            ],
        )? as usize;
    }
    Ok(new)
}

/// Key of the PostgreSQL advisory lock that orders alert inserts and delivery planning.
const ALERT_IDS_LOCK: i64 = 0x7765_636f_6d00_0002;

/// Makes alert ids commit in the order they are given out, which the planning watermark needs
/// (see the module doc). SQLite serializes writers already; on PostgreSQL two workers'
/// transactions could otherwise commit ids 6 then 5, and a plan between them would skip 5.
fn serialize_alert_ids(db: &Db) -> Result<(), DbError> {
    if db.is_pg() {
        db.execute("SELECT pg_advisory_xact_lock(?1)", p![ALERT_IDS_LOCK])?;
    }
    Ok(())
}

const ALERT_COLUMNS: &str = "a.id, a.created_at, a.corp_id, a.seq, a.msgid, a.conversation_id,
    a.msgtime_ms, a.sender, a.msgtype, a.rule_id, a.rule_set_version, a.severity, a.terms,
    a.snippet";

fn alert_row(r: &Row<'_, '_>) -> Result<StoredAlert, DbError> {
    let severity: String = r.get(11)?;
    let terms: String = r.get(12)?;
    Ok(StoredAlert {
        id: r.get(0)?,
        created_at: r.get(1)?,
        alert: NewAlert {
            corp_id: r.get(2)?,
            seq: seq_from_sql(r.get(3)?),
            msgid: r.get(4)?,
            conversation_id: r.get(5)?,
            msgtime_ms: r.get(6)?,
            from: r.get(7)?,
            msgtype: r.get(8)?,
            rule_id: r.get(9)?,
            rule_set_version: r.get(10)?,
            severity: Severity::parse(&severity).unwrap_or(Severity::Critical),
            terms: serde_json::from_str(&terms).unwrap_or_else(|_| vec![terms]),
            snippet: r.get(13)?,
        },
    })
}

impl StateStore {
    /// Inserts alerts in their own transaction (as `insert_alerts` does in the caller's). Returns how
    /// many were new.
    pub fn enqueue_alerts(&mut self, alerts: &[NewAlert]) -> Result<usize, StateError> {
        self.db
            .transaction(|tx| insert_alerts(tx, alerts))
            .map_err(|e| self.err(e))
    }

    /// Alerts in the outbox.
    pub fn alert_count(&self) -> Result<u64, StateError> {
        self.db
            .query_one("SELECT count(*) FROM alert", &[], |r| r.get::<i64>(0))
            .map(seq_from_sql)
            .map_err(|e| self.err(e))
    }

    /// Registers the configured webhooks `(name, backfill)` not seen before, in one
    /// transaction. When none was registered yet (the first configuration: the outbox was
    /// filled for them), each starts at the beginning of the outbox. A webhook added beside
    /// registered ones starts after the alerts stored so far, so that a robot added to a
    /// long-running archive is not sent its history, unless its `backfill` is set.
    pub fn register_alert_webhooks(&mut self, webhooks: &[(&str, bool)]) -> Result<(), StateError> {
        self.db
            .transaction(|tx| {
                serialize_alert_ids(tx)?;
                let registered: i64 =
                    tx.query_one("SELECT count(*) FROM alert_webhook", &[], |r| r.get(0))?;
                let top: i64 =
                    tx.query_one("SELECT coalesce(max(id), 0) FROM alert", &[], |r| r.get(0))?;
                for (name, backfill) in webhooks {
                    let start = if registered == 0 || *backfill { 0 } else { top };
                    tx.execute(
                        "INSERT INTO alert_webhook (webhook, planned_id) VALUES (?1, ?2)
                         ON CONFLICT DO NOTHING",
                        p![name, start],
                    )?;
                }
                Ok(())
            })
            .map_err(|e| self.err(e))
    }

    /// Creates the deliveries of `webhook` for the alerts stored since its last planning that
    /// are at or above `min_severity` (pending, due at `now`). Returns how many were created. A
    /// webhook not registered ([`Self::register_alert_webhooks`]) starts at the beginning.
    pub fn plan_alert_deliveries(
        &mut self,
        webhook: &str,
        min_severity: Severity,
        now: i64,
    ) -> Result<usize, StateError> {
        self.db
            .transaction(|tx| {
                serialize_alert_ids(tx)?;
                let planned: i64 = tx
                    .query_opt(
                        "SELECT planned_id FROM alert_webhook WHERE webhook = ?1",
                        p![webhook],
                        |r| r.get(0),
                    )?
                    .unwrap_or(0);
                let top: i64 =
                    tx.query_one("SELECT coalesce(max(id), 0) FROM alert", &[], |r| r.get(0))?;
                if top <= planned {
                    return Ok(0);
                }
                // The casts: PostgreSQL cannot tell the type of a parameter in a SELECT list.
                let new = tx.execute(
                    &format!(
                        "INSERT INTO alert_delivery
                            (alert_id, webhook, status, attempts, next_attempt_at, updated_at)
                         SELECT a.id, CAST(?1 AS TEXT), 'pending', 0, CAST(?4 AS BIGINT),
                                CAST(?4 AS BIGINT)
                         FROM alert a
                         WHERE a.id > ?2 AND a.id <= ?3 AND {SEVERITY_RANK} >= CAST(?5 AS BIGINT)
                         ON CONFLICT DO NOTHING"
                    ),
                    p![webhook, planned, top, now, rank(min_severity)],
                )?;
                tx.execute(
                    "INSERT INTO alert_webhook (webhook, planned_id) VALUES (?1, ?2)
                     ON CONFLICT (webhook) DO UPDATE SET planned_id = excluded.planned_id",
                    p![webhook, top],
                )?;
                Ok(new as usize)
            })
            .map_err(|e| self.err(e))
    }

    /// The pending deliveries of `webhook` due at `now`, oldest alert first, at most `limit`.
    /// Nothing is claimed: see [`StateStore::claim_alert_deliveries`].
    pub fn due_alerts(
        &self,
        webhook: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<StoredAlert>, StateError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM alert_delivery d JOIN alert a ON a.id = d.alert_id
                 WHERE d.webhook = ?1 AND d.status = 'pending' AND d.next_attempt_at <= ?2
                 ORDER BY d.alert_id LIMIT ?3"
                ),
                p![webhook, now, limit as i64],
                alert_row,
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// Claims the deliveries of `webhook` for `ids` that are still pending and due at `now`:
    /// counts the attempt and leases them until `lease_until` (no other dispatcher takes them
    /// meanwhile; if this process dies, they are due again then). One transaction. Returns the
    /// claimed ones, in id order, with the attempt each is on.
    pub fn claim_alert_deliveries(
        &mut self,
        webhook: &str,
        ids: &[i64],
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<ClaimedAlert>, StateError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        self.db
            .transaction(|tx| {
                let mut claimed = Vec::with_capacity(sorted.len());
                for &id in &sorted {
                    let attempt: Option<i64> = tx.query_opt(
                        "UPDATE alert_delivery SET attempts = attempts + 1, next_attempt_at = ?4,
                                updated_at = ?3
                         WHERE webhook = ?1 AND alert_id = ?2 AND status = 'pending'
                           AND next_attempt_at <= ?3
                         RETURNING attempts",
                        p![webhook, id, now, lease_until],
                        |r| r.get(0),
                    )?;
                    if let Some(attempt) = attempt {
                        let stored = tx.query_one(
                            &format!("SELECT {ALERT_COLUMNS} FROM alert a WHERE a.id = ?1"),
                            p![id],
                            alert_row,
                        )?;
                        claimed.push(ClaimedAlert {
                            stored,
                            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                        });
                    }
                }
                Ok(claimed)
            })
            .map_err(|e| self.err(e))
    }

    /// Marks the deliveries of `webhook` for `ids` delivered at `now` (the receiver accepted
    /// them). One transaction.
    pub fn mark_alerts_delivered(
        &mut self,
        webhook: &str,
        ids: &[i64],
        now: i64,
    ) -> Result<(), StateError> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE alert_delivery SET status = 'delivered', delivered_at = ?1, updated_at = ?1,
                    last_error = NULL
             WHERE webhook = ?2 AND alert_id IN ({})",
            placeholders(2, ids.len())
        );
        let values: Vec<&dyn Param> = [&now as &dyn Param, &webhook]
            .into_iter()
            .chain(ids.iter().map(|id| id as &dyn Param))
            .collect();
        self.db
            .execute(&sql, &values)
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records a failed attempt for the deliveries of `webhook`: each is retried when its
    /// [`AlertRetry`] says, or kept as `failed`. `error` must not carry a URL. One transaction.
    pub fn fail_alert_deliveries(
        &mut self,
        webhook: &str,
        outcomes: &[(i64, AlertRetry)],
        error: &str,
        now: i64,
    ) -> Result<(), StateError> {
        self.db
            .transaction(|tx| {
                for &(id, outcome) in outcomes {
                    match outcome {
                        AlertRetry::At(at) => tx.execute(
                            "UPDATE alert_delivery SET next_attempt_at = ?3, last_error = ?4,
                                    updated_at = ?5
                             WHERE webhook = ?1 AND alert_id = ?2 AND status = 'pending'",
                            p![webhook, id, at, error, now],
                        ),
                        AlertRetry::GiveUp => tx.execute(
                            "UPDATE alert_delivery SET status = 'failed', last_error = ?3,
                                    updated_at = ?4
                             WHERE webhook = ?1 AND alert_id = ?2 AND status = 'pending'",
                            p![webhook, id, error, now],
                        ),
                    }?;
                }
                Ok(())
            })
            .map_err(|e| self.err(e))
    }

    /// Makes the `failed` deliveries (of `webhook`, or of every webhook) pending again, due at
    /// `now`, with their attempts reset. Returns how many.
    pub fn retry_failed_alerts(
        &mut self,
        webhook: Option<&str>,
        now: i64,
    ) -> Result<usize, StateError> {
        self.db
            .execute(
                "UPDATE alert_delivery SET status = 'pending', attempts = 0, next_attempt_at = ?2,
                        updated_at = ?2
                 WHERE status = 'failed' AND (CAST(?1 AS TEXT) IS NULL OR webhook = ?1)",
                p![webhook, now],
            )
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// The outbox of each webhook that has deliveries, by name.
    pub fn alert_outboxes(&self) -> Result<Vec<WebhookOutbox>, StateError> {
        let rows = self
            .db
            .query(
                "SELECT webhook,
                        count(CASE WHEN status = 'pending' THEN 1 END),
                        count(CASE WHEN status = 'delivered' THEN 1 END),
                        count(CASE WHEN status = 'failed' THEN 1 END),
                        CAST(sum(attempts) AS BIGINT),
                        min(CASE WHEN status = 'pending' THEN next_attempt_at END),
                        (SELECT last_error FROM alert_delivery e
                         WHERE e.webhook = d.webhook AND e.status != 'delivered'
                           AND e.last_error IS NOT NULL
                         ORDER BY e.updated_at DESC, e.alert_id DESC LIMIT 1)
                 FROM alert_delivery d GROUP BY webhook ORDER BY webhook",
                &[],
                |r| {
                    Ok(WebhookOutbox {
                        webhook: r.get(0)?,
                        pending: seq_from_sql(r.get(1)?),
                        delivered: seq_from_sql(r.get(2)?),
                        failed: seq_from_sql(r.get(3)?),
                        attempts: seq_from_sql(r.get(4)?),
                        next_attempt_at: r.get(5)?,
                        last_error: r.get(6)?,
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// The earliest Unix second a pending delivery of `webhook` is due (`None`: none pending).
    pub fn next_alert_attempt(&self, webhook: &str) -> Result<Option<i64>, StateError> {
        self.db
            .query_one(
                "SELECT min(next_attempt_at) FROM alert_delivery
                 WHERE webhook = ?1 AND status = 'pending'",
                p![webhook],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn alert(msgid: &str, severity: Severity) -> NewAlert {
        NewAlert {
            corp_id: "ww1".into(),
            seq: 7,
            msgid: msgid.into(),
            conversation_id: Some("single:a:b".into()),
            msgtime_ms: Some(1_764_700_000_000),
            from: Some("a".into()),
            msgtype: "text".into(),
            rule_id: "invoice".into(),
            rule_set_version: "v1".into(),
            severity,
            terms: vec!["发票".into()],
            snippet: "开发票".into(),
        }
    }

    #[test]
    fn an_alert_is_stored_once_per_rule_set_version() {
        crate::state::test_backends::each_backend(|s| {
            let a = alert("m1", Severity::Warn);
            assert_eq!(s.enqueue_alerts(&[a.clone(), a.clone()]).unwrap(), 1);
            assert_eq!(s.enqueue_alerts(std::slice::from_ref(&a)).unwrap(), 0);
            let mut v2 = a.clone();
            v2.rule_set_version = "v2".into();
            assert_eq!(s.enqueue_alerts(&[v2]).unwrap(), 1);
            assert_eq!(s.alert_count().unwrap(), 2);
        });
    }

    #[test]
    fn insert_alerts_joins_the_callers_transaction() {
        crate::state::test_backends::each_backend(|s| {
            s.db.begin().unwrap();
            assert_eq!(
                insert_alerts(&s.db, &[alert("m1", Severity::Warn)]).unwrap(),
                1
            );
            s.db.rollback(); // the alert goes with the commit it belonged to
            assert_eq!(s.alert_count().unwrap(), 0);
        });
    }

    #[test]
    fn deliveries_follow_the_filter_claims_and_outcomes() {
        crate::state::test_backends::each_backend(|s| {
            s.enqueue_alerts(&[
                alert("m1", Severity::Warn),
                alert("m2", Severity::Critical),
                alert("m3", Severity::Info),
            ])
            .unwrap();
            assert_eq!(
                s.plan_alert_deliveries("robot", Severity::Critical, 100)
                    .unwrap(),
                1
            );
            assert_eq!(
                s.plan_alert_deliveries("siem", Severity::Info, 100)
                    .unwrap(),
                3
            );
            assert_eq!(
                s.plan_alert_deliveries("siem", Severity::Info, 100)
                    .unwrap(),
                0
            );
            let due = s.due_alerts("siem", 100, 10).unwrap();
            let ids: Vec<i64> = due.iter().map(|a| a.id).collect();
            assert_eq!(due[0].alert, alert("m1", Severity::Warn));

            let claimed = s.claim_alert_deliveries("siem", &ids, 100, 130).unwrap();
            assert_eq!(claimed.len(), 3);
            assert!(claimed.iter().all(|c| c.attempt == 1));
            // Leased: neither due nor claimable by another dispatcher until 130.
            assert!(s.due_alerts("siem", 129, 10).unwrap().is_empty());
            assert!(s
                .claim_alert_deliveries("siem", &ids, 110, 140)
                .unwrap()
                .is_empty());
            {
                // A dispatcher that died mid-request: its lease ends and the deliveries come back,
                // the lost attempt counted.
                let mut other = StateStore::open_in_memory().unwrap();
                other.enqueue_alerts(&[alert("x", Severity::Warn)]).unwrap();
                other.plan_alert_deliveries("h", Severity::Warn, 0).unwrap();
                other.claim_alert_deliveries("h", &[1], 0, 40).unwrap();
                assert!(other.due_alerts("h", 39, 10).unwrap().is_empty());
                assert_eq!(other.due_alerts("h", 40, 10).unwrap().len(), 1);
                let again = other.claim_alert_deliveries("h", &[1], 40, 80).unwrap();
                assert_eq!(again[0].attempt, 2);
            }

            s.mark_alerts_delivered("siem", &ids[..1], 101).unwrap();
            s.fail_alert_deliveries(
                "siem",
                &[(ids[1], AlertRetry::At(105)), (ids[2], AlertRetry::GiveUp)],
                "HTTP 500",
                101,
            )
            .unwrap();
            let out = s.alert_outboxes().unwrap();
            assert_eq!(out.len(), 2);
            let siem = &out[1];
            assert_eq!(
                (
                    siem.webhook.as_str(),
                    siem.pending,
                    siem.delivered,
                    siem.failed,
                    siem.attempts
                ),
                ("siem", 1, 1, 1, 3)
            );
            assert_eq!(siem.next_attempt_at, Some(105));
            assert_eq!(siem.last_error.as_deref(), Some("HTTP 500"));
            assert_eq!(s.due_alerts("siem", 105, 10).unwrap()[0].id, ids[1]);
            assert_eq!(
                s.claim_alert_deliveries("siem", &[ids[1]], 105, 200)
                    .unwrap()[0]
                    .attempt,
                2
            );

            assert_eq!(s.retry_failed_alerts(Some("siem"), 300).unwrap(), 1);
            assert_eq!(s.alert_outboxes().unwrap()[1].failed, 0);
            assert_eq!(s.next_alert_attempt("robot").unwrap(), Some(100));
        });
    }

    #[test]
    fn a_new_webhook_gets_the_outbox_and_later_alerts_are_planned_once() {
        crate::state::test_backends::each_backend(|s| {
            s.enqueue_alerts(&[alert("m1", Severity::Warn)]).unwrap();
            assert_eq!(s.plan_alert_deliveries("a", Severity::Warn, 1).unwrap(), 1);
            s.enqueue_alerts(&[alert("m2", Severity::Warn)]).unwrap();
            assert_eq!(s.plan_alert_deliveries("a", Severity::Warn, 2).unwrap(), 1);
            assert_eq!(s.plan_alert_deliveries("b", Severity::Warn, 2).unwrap(), 2);
        });
    }

    #[test]
    fn webhooks_of_the_first_config_get_the_outbox_and_added_ones_start_now_unless_backfill() {
        crate::state::test_backends::each_backend(|s| {
            s.enqueue_alerts(&[alert("m1", Severity::Warn), alert("m2", Severity::Warn)])
                .unwrap();
            // The first configuration: both webhooks get what was stored for them.
            s.register_alert_webhooks(&[("a", false), ("b", false)])
                .unwrap();
            assert_eq!(s.plan_alert_deliveries("a", Severity::Warn, 1).unwrap(), 2);
            assert_eq!(s.plan_alert_deliveries("b", Severity::Warn, 1).unwrap(), 2);
            // Added later: only what comes after, unless it asks for the history.
            s.register_alert_webhooks(&[("a", false), ("c", false), ("d", true)])
                .unwrap();
            assert_eq!(s.plan_alert_deliveries("c", Severity::Warn, 2).unwrap(), 0);
            assert_eq!(s.plan_alert_deliveries("d", Severity::Warn, 2).unwrap(), 2);
            s.enqueue_alerts(&[alert("m3", Severity::Warn)]).unwrap();
            assert_eq!(s.plan_alert_deliveries("c", Severity::Warn, 3).unwrap(), 1);
            assert_eq!(s.plan_alert_deliveries("a", Severity::Warn, 3).unwrap(), 1);
            assert_eq!(s.due_alerts("a", 2, 10).unwrap().len(), 2);
        });
    }
}
