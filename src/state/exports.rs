//! The export audit log: one row per evidence export (`wecom-archive export`), written after the
//! export's manifest, so that who exported what, when and with which hash can be shown later.

use super::db::p;
use super::{seq_from_sql, seq_to_sql, StateError, StateStore};

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS export_audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    time            TEXT NOT NULL,
    corp_id         TEXT NOT NULL,
    query           TEXT NOT NULL,
    format          TEXT NOT NULL,
    export_dir      TEXT NOT NULL,
    messages        INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    tool_version    TEXT NOT NULL,
    os_user         TEXT
);
";

/// One export, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportAudit {
    /// The entry's id (ignored by [`StateStore::record_export`], which assigns it).
    pub id: i64,
    /// When the export finished, UTC, RFC 3339.
    pub time: String,
    /// The corp.
    pub corp_id: String,
    /// The query as JSON (the manifest's `query`).
    pub query: String,
    /// `html`, `csv` or `jsonl`.
    pub format: String,
    /// The export folder, as given (made absolute when possible).
    pub export_dir: String,
    /// Messages exported.
    pub messages: u64,
    /// SHA-256 of `manifest.json`, hex.
    pub manifest_sha256: String,
    /// The tool's version.
    pub tool_version: String,
    /// The operating-system user who ran it (`$USER`), when known.
    pub os_user: Option<String>,
}

impl StateStore {
    /// Appends an export to the audit log; returns its id.
    pub fn record_export(&self, e: &ExportAudit) -> Result<i64, StateError> {
        self.db
            .query_one(
                "INSERT INTO export_audit (time, corp_id, query, format, export_dir, messages,
                                           manifest_sha256, tool_version, os_user)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                p![
                    e.time,
                    e.corp_id,
                    e.query,
                    e.format,
                    e.export_dir,
                    seq_to_sql(e.messages),
                    e.manifest_sha256,
                    e.tool_version,
                    e.os_user
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The most recent exports of `corp_id`, newest first.
    pub fn exports(&self, corp_id: &str, limit: usize) -> Result<Vec<ExportAudit>, StateError> {
        self.db
            .query(
                "SELECT id, time, corp_id, query, format, export_dir, messages, manifest_sha256,
                        tool_version, os_user
                 FROM export_audit WHERE corp_id = ?1 ORDER BY id DESC LIMIT ?2",
                p![corp_id, limit as i64],
                |r| {
                    Ok(ExportAudit {
                        id: r.get(0)?,
                        time: r.get(1)?,
                        corp_id: r.get(2)?,
                        query: r.get(3)?,
                        format: r.get(4)?,
                        export_dir: r.get(5)?,
                        messages: seq_from_sql(r.get(6)?),
                        manifest_sha256: r.get(7)?,
                        tool_version: r.get(8)?,
                        os_user: r.get(9)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_listed_per_corp_newest_first() {
        crate::state::test_backends::each_backend(|s| {
            let e = |corp: &str, n| ExportAudit {
                id: 0,
                time: "2026-12-03T01:00:00Z".into(),
                corp_id: corp.into(),
                query: "{}".into(),
                format: "html".into(),
                export_dir: "/x".into(),
                messages: n,
                manifest_sha256: "ab".into(),
                tool_version: "0.1.0".into(),
                os_user: Some("root".into()),
            };
            let a = s.record_export(&e("ww1", 1)).unwrap();
            s.record_export(&e("ww2", 2)).unwrap();
            let c = s.record_export(&e("ww1", 3)).unwrap();
            let got = s.exports("ww1", 10).unwrap();
            assert_eq!(got.iter().map(|g| g.id).collect::<Vec<_>>(), [c, a]);
            assert_eq!(
                got[0],
                ExportAudit {
                    id: c,
                    ..e("ww1", 3)
                }
            );
        });
    }
}
