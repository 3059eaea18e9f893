//! Per-corp checkpoints and the commit journal: steps 2 and 3 of a pipeline commit (see
//! "Exactly once" in [`crate::state`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::db::{p, DbError};
use super::{now_unix, seq_from_sql, seq_to_sql, StateError, StateStore};

/// The tables of this area (created when missing; their names are the on-disk format).
pub(super) const SCHEMA: &str = "
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
";

/// Bookkeeping stored in the same transaction as a journal entry, so that it holds exactly when
/// the entry's files are (or, after a roll-forward, will be) published.
#[derive(Debug, Clone, Default)]
pub struct JournalExtras {
    /// Message files screened by a rule set in this step.
    pub screened: Vec<super::screened::Screened>,
    /// Message files renamed by this step (`(old, new)`, relative to the corp's messages folder):
    /// their marks (screened by rules, scanned for media) follow them.
    pub renamed: Vec<(String, String)>,
    /// Alerts on this step's findings: they exist exactly when the findings do.
    pub alerts: Vec<super::NewAlert>,
}

/// `last_seq` of a journal entry that moves no checkpoint (seqs are never negative).
const MAINTENANCE: i64 = -1;

/// One rename of a journaled commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// The fsynced temporary file.
    #[serde(with = "journal_path")]
    pub tmp: PathBuf,
    /// Its final name.
    #[serde(with = "journal_path")]
    pub dest: PathBuf,
}

/// Paths in the journal, losslessly: a JSON string when the path is UTF-8 (the format of older
/// journals, which stay readable), `{"b64": "<standard base64 of the bytes>"}` otherwise.
mod journal_path {
    use std::path::{Path, PathBuf};

    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Encoded {
        Text(String),
        Bytes { b64: String },
    }

    pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        match path.to_str() {
            Some(t) => Encoded::Text(t.to_owned()),
            None => Encoded::Bytes {
                b64: STANDARD.encode(bytes(path)),
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        match Encoded::deserialize(d)? {
            Encoded::Text(t) => Ok(PathBuf::from(t)),
            Encoded::Bytes { b64 } => {
                let raw = STANDARD.decode(b64).map_err(serde::de::Error::custom)?;
                from_bytes(raw).map_err(serde::de::Error::custom)
            }
        }
    }

    #[cfg(unix)]
    fn bytes(path: &Path) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    }

    #[cfg(unix)]
    fn from_bytes(raw: Vec<u8>) -> Result<PathBuf, String> {
        use std::os::unix::ffi::OsStringExt;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(raw)))
    }

    #[cfg(not(unix))]
    fn bytes(path: &Path) -> Vec<u8> {
        path.to_string_lossy().into_owned().into_bytes()
    }

    #[cfg(not(unix))]
    fn from_bytes(raw: Vec<u8>) -> Result<PathBuf, String> {
        String::from_utf8(raw)
            .map(PathBuf::from)
            .map_err(|e| e.to_string())
    }
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

impl StateStore {
    /// The last committed seq of `corp_id` (`None`: nothing committed yet).
    pub fn checkpoint(&self, corp_id: &str) -> Result<Option<u64>, StateError> {
        self.db
            .query_opt(
                "SELECT last_seq FROM checkpoint WHERE corp_id = ?1",
                p![corp_id],
                |r| r.get::<i64>(0),
            )
            .map(|v| v.map(seq_from_sql))
            .map_err(|e| self.err(e))
    }

    /// Sets the checkpoint of `corp_id` by hand (`pull --since-seq`): the next pull starts after
    /// `seq`.
    pub fn set_checkpoint(&self, corp_id: &str, seq: u64) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT INTO checkpoint (corp_id, last_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(corp_id) DO UPDATE SET last_seq = ?2, updated_at = ?3",
                p![corp_id, seq_to_sql(seq), now_unix()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Every corp with a checkpoint, with its last seq.
    pub fn checkpoints(&self) -> Result<Vec<(String, u64)>, StateError> {
        self.db
            .query(
                "SELECT corp_id, last_seq FROM checkpoint ORDER BY corp_id",
                &[],
                |r| Ok((r.get::<String>(0)?, seq_from_sql(r.get(1)?))),
            )
            .map_err(|e| self.err(e))
    }

    /// Step 2 of a commit: records the renames and the next checkpoint, with `extras`, in one
    /// transaction. Returns the journal id.
    pub fn journal_commit(
        &mut self,
        corp_id: &str,
        last_seq: u64,
        renames: &[Rename],
        extras: &JournalExtras,
    ) -> Result<i64, StateError> {
        self.journal(corp_id, seq_to_sql(last_seq), renames, extras)
    }

    /// Journals a maintenance step (migration, compaction, scan): renames that publish new files
    /// and retire old ones, rolled forward after a crash like a commit's, but moving no
    /// checkpoint. Returns the journal id, for [`Self::complete_commit`].
    pub fn journal_maintenance(
        &mut self,
        corp_id: &str,
        renames: &[Rename],
        extras: &JournalExtras,
    ) -> Result<i64, StateError> {
        self.journal(corp_id, MAINTENANCE, renames, extras)
    }

    fn journal(
        &mut self,
        corp_id: &str,
        last_seq: i64,
        renames: &[Rename],
        extras: &JournalExtras,
    ) -> Result<i64, StateError> {
        // Cannot fail: every path has an encoding (see `journal_path`).
        let json = serde_json::to_string(renames).expect("journal paths always encode");
        self.db
            .transaction(|tx| {
                let id = tx.query_one(
                    "INSERT INTO commit_journal (corp_id, last_seq, renames) VALUES (?1, ?2, ?3)
                     RETURNING id",
                    p![corp_id, last_seq, json],
                    |r| r.get::<i64>(0),
                )?;
                super::screened::rename(tx, corp_id, &extras.renamed)?;
                super::media::rename_scanned(tx, corp_id, &extras.renamed)?;
                super::alerts::insert_alerts(tx, &extras.alerts)?;
                super::screened::mark(tx, corp_id, &extras.screened)?;
                Ok(id)
            })
            .map_err(|e| self.err(e))
    }

    /// Step 3 of a commit: moves the checkpoint (never backwards) and clears the journal entry.
    /// For a maintenance entry it only clears the entry.
    pub fn complete_commit(&mut self, id: i64) -> Result<(), StateError> {
        self.db
            .transaction(|tx| {
                let (corp_id, last_seq): (String, i64) = tx.query_one(
                    "SELECT corp_id, last_seq FROM commit_journal WHERE id = ?1",
                    p![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if last_seq != MAINTENANCE {
                    tx.execute(
                        "INSERT INTO checkpoint (corp_id, last_seq, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(corp_id) DO UPDATE SET
                             last_seq = CASE WHEN checkpoint.last_seq > excluded.last_seq
                                             THEN checkpoint.last_seq ELSE excluded.last_seq END,
                             updated_at = excluded.updated_at",
                        p![corp_id, last_seq, now_unix()],
                    )?;
                }
                tx.execute("DELETE FROM commit_journal WHERE id = ?1", p![id])?;
                Ok(())
            })
            .map_err(|e| self.err(e))
    }

    /// Journaled commits not yet completed (after a crash), oldest first.
    pub fn pending_commits(&self, corp_id: &str) -> Result<Vec<PendingCommit>, StateError> {
        let rows = self
            .db
            .query(
                "SELECT id, last_seq, renames FROM commit_journal WHERE corp_id = ?1 ORDER BY id",
                p![corp_id],
                |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?)),
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (id, last_seq, json) in rows {
            let renames: Vec<Rename> = serde_json::from_str(&json).map_err(|e| {
                self.err(DbError::Decode(format!(
                    "commit journal entry {id} of corp {corp_id}: {e}"
                )))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_then_complete_moves_checkpoint() {
        crate::state::test_backends::each_backend(|s| {
            assert_eq!(s.checkpoint("ww1").unwrap(), None);
            let r = vec![Rename {
                tmp: "a.tmp".into(),
                dest: "a".into(),
            }];
            let id = s
                .journal_commit("ww1", 10, &r, &JournalExtras::default())
                .unwrap();
            assert_eq!(s.checkpoint("ww1").unwrap(), None);
            let pending = s.pending_commits("ww1").unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].renames, r);
            assert_eq!(pending[0].last_seq, 10);
            assert!(s.pending_commits("ww2").unwrap().is_empty());
            s.complete_commit(id).unwrap();
            assert_eq!(s.checkpoint("ww1").unwrap(), Some(10));
            assert!(s.pending_commits("ww1").unwrap().is_empty());
        });
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_are_journaled_losslessly_and_old_journals_read() {
        use std::os::unix::ffi::OsStrExt;
        crate::state::test_backends::each_backend(|s| {
            let odd = PathBuf::from(std::ffi::OsStr::from_bytes(
                b"/out/\xff\xfe/part-1-2.parquet",
            ));
            let r = vec![Rename {
                tmp: odd.with_file_name(".part-x.parquet.tmp"),
                dest: odd,
            }];
            s.journal_commit("ww1", 2, &r, &JournalExtras::default())
                .unwrap();
            // A journal written before this encoding: plain strings.
            s.db.execute(
                "INSERT INTO commit_journal (corp_id, last_seq, renames) VALUES ('ww1', 3, ?1)",
                p![r#"[{"tmp":"/o/.a.tmp","dest":"/o/a"}]"#],
            )
            .unwrap();
            let pending = s.pending_commits("ww1").unwrap();
            assert_eq!(pending[0].renames, r);
            assert_eq!(pending[1].renames[0].dest, PathBuf::from("/o/a"));
            let _ = s.complete_commit(pending[0].id);
        });
    }

    #[test]
    fn maintenance_entries_roll_forward_without_moving_a_checkpoint() {
        crate::state::test_backends::each_backend(|s| {
            let r = vec![Rename {
                tmp: "a.tmp".into(),
                dest: "a".into(),
            }];
            let c = s
                .journal_commit("ww1", 7, &[], &JournalExtras::default())
                .unwrap();
            s.complete_commit(c).unwrap();
            let m = s
                .journal_maintenance("ww1", &r, &JournalExtras::default())
                .unwrap();
            let n = s
                .journal_maintenance("ww2", &r, &JournalExtras::default())
                .unwrap();
            assert_eq!(s.pending_commits("ww1").unwrap()[0].renames, r);
            s.complete_commit(m).unwrap();
            s.complete_commit(n).unwrap();
            assert_eq!(s.checkpoint("ww1").unwrap(), Some(7));
            assert_eq!(s.checkpoint("ww2").unwrap(), None);
            assert!(s.pending_commits("ww1").unwrap().is_empty());
        });
    }

    #[test]
    fn checkpoint_never_moves_backwards_on_commit() {
        crate::state::test_backends::each_backend(|s| {
            let a = s
                .journal_commit("ww1", 20, &[], &JournalExtras::default())
                .unwrap();
            let b = s
                .journal_commit("ww1", 10, &[], &JournalExtras::default())
                .unwrap();
            s.complete_commit(a).unwrap();
            s.complete_commit(b).unwrap();
            assert_eq!(s.checkpoint("ww1").unwrap(), Some(20));
        });
    }
}
