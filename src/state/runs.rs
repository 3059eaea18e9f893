//! Run history: one row per finished (or failed) pipeline run, for `inspect` and operators.

use super::db::{p, DbError, Row};
use super::{seq_from_sql, seq_to_sql, StateError, StateStore};

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
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
";

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

impl StateStore {
    /// Appends a run to the history.
    pub fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT INTO run (corp_id, started_at, finished_at, from_seq, to_seq, written,
                                  dead_lettered, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                p![
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
        self.db
            .query(
                "SELECT corp_id, started_at, finished_at, from_seq, to_seq, written, dead_lettered,
                        outcome
                 FROM run WHERE corp_id = ?1 ORDER BY id DESC LIMIT ?2",
                p![corp_id, limit as i64],
                run_row,
            )
            .map_err(|e| self.err(e))
    }

    /// The newest run of `corp_id` that ended with `outcome`.
    pub fn last_run_with_outcome(
        &self,
        corp_id: &str,
        outcome: &str,
    ) -> Result<Option<RunRecord>, StateError> {
        self.db
            .query_opt(
                "SELECT corp_id, started_at, finished_at, from_seq, to_seq, written, dead_lettered,
                        outcome
                 FROM run WHERE corp_id = ?1 AND outcome = ?2 ORDER BY id DESC LIMIT 1",
                p![corp_id, outcome],
                run_row,
            )
            .map_err(|e| self.err(e))
    }

    /// The records of `corp_id` dead-lettered over its run history.
    pub fn dead_lettered_total(&self, corp_id: &str) -> Result<u64, StateError> {
        self.db
            .query_one(
                "SELECT CAST(coalesce(sum(dead_lettered), 0) AS BIGINT) FROM run
                 WHERE corp_id = ?1",
                p![corp_id],
                |r| r.get::<i64>(0),
            )
            .map(seq_from_sql)
            .map_err(|e| self.err(e))
    }
}

fn run_row(r: &Row<'_, '_>) -> Result<RunRecord, DbError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_listed_per_corp_newest_first() {
        crate::state::test_backends::each_backend(|s| {
            let run = |corp_id: &str, to_seq| RunRecord {
                corp_id: corp_id.into(),
                started_at: 1,
                finished_at: 2,
                from_seq: 0,
                to_seq,
                written: to_seq,
                dead_lettered: 0,
                outcome: "ok".into(),
            };
            for r in [run("ww1", 10), run("ww2", 5), run("ww1", 20)] {
                s.record_run(&r).unwrap();
            }
            assert_eq!(
                s.runs("ww1", 10).unwrap(),
                vec![run("ww1", 20), run("ww1", 10)]
            );
            assert_eq!(s.runs("ww1", 1).unwrap(), vec![run("ww1", 20)]);
            assert!(s.runs("ww3", 10).unwrap().is_empty());
        });
    }
}
