//! Start-of-run recovery: finish what a crashed run left half done.
//!
//! * Journaled commits whose files were (maybe) not all renamed are rolled forward: each
//!   temporary that still exists is renamed, then the checkpoint moves. The files were fsynced
//!   before they were journaled, so they are complete.
//! * Temporaries that were never journaled belong to a commit that never happened: the records
//!   in them are after the checkpoint and will be fetched again, so the files are deleted.

use std::path::{Path, PathBuf};

use super::atomic::publish;
use crate::state::{StateError, StateStore};

/// A failure to finish what a crash left half done.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A journaled file could not be published.
    #[error("publishing {path}: {source}")]
    Publish {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Rolls `corp_id`'s journal forward and removes stray temporaries under each of `dirs` (the
/// corp's folders in the tables it writes).
pub fn recover(
    store: &mut StateStore,
    corp_id: &str,
    dirs: &[PathBuf],
) -> Result<(), RecoverError> {
    for pending in store.pending_commits(corp_id)? {
        tracing::info!(
            corp_id,
            last_seq = pending.last_seq,
            files = pending.renames.len(),
            "rolling forward a commit interrupted by a crash"
        );
        for r in &pending.renames {
            if r.tmp.exists() || !r.dest.exists() {
                publish(&r.tmp, &r.dest).map_err(|source| RecoverError::Publish {
                    path: r.dest.clone(),
                    source,
                })?;
            }
        }
        store.complete_commit(pending.id)?;
    }
    for dir in dirs {
        remove_stray_temporaries(dir);
    }
    Ok(())
}

/// Deletes `.*.tmp` files (never-journaled commits, retired files) anywhere under `dir`.
pub fn remove_stray_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match entry.file_type() {
            Ok(t) if t.is_dir() => remove_stray_temporaries(&path),
            Ok(_) if crate::sink::layout::is_temporary(&name) => {
                tracing::debug!(path = %path.display(), "removing an uncommitted temporary");
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
}
