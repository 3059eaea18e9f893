//! Which message files a rule set has screened: the bookkeeping that makes `scan` idempotent per
//! rule-set version.
//!
//! A file is marked for a version in the same transaction as the journal entry that publishes
//! the findings of that screening (a pipeline commit, a `scan`, a compaction carrying the marks of
//! its inputs over), so a mark exists exactly when those findings are, or will be after a
//! roll-forward, in the `findings` table.

use std::collections::{HashMap, HashSet};

use super::db::{p, Db, DbError};
use super::{StateError, StateStore};

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS findings_screened (
    corp_id          TEXT NOT NULL,
    rule_set_version TEXT NOT NULL,
    file             TEXT NOT NULL,
    PRIMARY KEY (corp_id, rule_set_version, file)
);
";

/// A message file screened by a rule set: `file` is relative to the corp's messages folder
/// (`date=…/part-….parquet`), as in `media_scanned`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Screened {
    /// The rule set's version ([`crate::compliance::rules::RuleSet::version`]).
    pub rule_set_version: String,
    /// The file.
    pub file: String,
}

/// Marks files in the caller's transaction (see the module documentation).
pub(super) fn mark(db: &Db, corp_id: &str, screened: &[Screened]) -> Result<(), DbError> {
    for s in screened {
        db.execute(
            "INSERT INTO findings_screened (corp_id, rule_set_version, file)
             VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            p![corp_id, s.rule_set_version, s.file],
        )?;
    }
    Ok(())
}

/// Moves the marks of renamed files (`(old, new)`) in the caller's transaction.
pub(super) fn rename(db: &Db, corp_id: &str, renamed: &[(String, String)]) -> Result<(), DbError> {
    for (old, new) in renamed {
        // A mark the new name has already stays; the old name's copy of it goes.
        db.execute(
            "UPDATE findings_screened SET file = ?3 WHERE corp_id = ?1 AND file = ?2
             AND NOT EXISTS (SELECT 1 FROM findings_screened f
                             WHERE f.corp_id = ?1 AND f.file = ?3
                               AND f.rule_set_version = findings_screened.rule_set_version)",
            p![corp_id, old, new],
        )?;
    }
    Ok(())
}

impl StateStore {
    /// The files of `corp_id` screened by rule-set version `version`.
    pub fn screened_files(
        &self,
        corp_id: &str,
        version: &str,
    ) -> Result<HashSet<String>, StateError> {
        let rows = self
            .db
            .query(
                "SELECT file FROM findings_screened WHERE corp_id = ?1 AND rule_set_version = ?2",
                p![corp_id, version],
                |r| r.get::<String>(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// Every version each file of `corp_id` was screened by.
    pub fn screened_versions(
        &self,
        corp_id: &str,
    ) -> Result<HashMap<String, HashSet<String>>, StateError> {
        let rows = self
            .db
            .query(
                "SELECT file, rule_set_version FROM findings_screened WHERE corp_id = ?1",
                p![corp_id],
                |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
            )
            .map_err(|e| self.err(e))?;
        let mut out: HashMap<String, HashSet<String>> = HashMap::new();
        for (file, version) in rows {
            out.entry(file).or_default().insert(version);
        }
        Ok(out)
    }
}
