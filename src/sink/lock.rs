//! Advisory file locks (`flock`, non-blocking) that keep two writers of one corp apart.
//!
//! The kernel drops a lock when its holder dies, so a killed run never leaves one stale; the
//! lock file itself stays (it is empty and harmless).
//!
//! Two locks use this:
//! * the corp's **writer lock** ([`CorpLock`], `OUT/_wecom_archive/locks/<corp>.lock`), held by
//!   a pull (the whole pipeline run) and by a compaction: a pull's start-up recovery deletes
//!   unjournaled temporaries, which would be a running compaction's, and a compaction retires
//!   files that a pull's recovery may be rolling forward;
//! * the media lock of `media::lock_corp` (two media runs would append to one partial file).

use std::fs::File;
use std::path::{Path, PathBuf};

use super::layout;

/// Takes an exclusive, non-blocking `flock` on `path` (created, with its folder, if missing).
/// `Ok(None)`: another holder has it. The lock lasts as long as the returned file is open.
pub fn try_lock(path: &Path) -> std::io::Result<Option<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own, kept open as long as the returned File.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e),
            };
        }
    }
    Ok(Some(file))
}

/// Why a corp's writer lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (a pull, `serve`, a compaction) writes this corp now.
    #[error(
        "corp {corp_id}: another process writes it (a pull, serve or compact holds {}); wait \
         for it to finish, or stop it, and run again",
        path.display()
    )]
    Busy {
        /// The corp.
        corp_id: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("corp {corp_id}: cannot lock {}: {source}", path.display())]
    Io {
        /// The corp.
        corp_id: String,
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A corp's writer lock, held until dropped.
#[derive(Debug)]
pub struct CorpLock {
    _file: File,
    path: PathBuf,
}

impl CorpLock {
    /// Takes the writer lock of `corp_id` under the output root `out`, or says who has it.
    pub fn acquire(out: &Path, corp_id: &str) -> Result<Self, LockError> {
        let path = layout::corp_lock(out, corp_id);
        match try_lock(&path) {
            Ok(Some(file)) => Ok(CorpLock { _file: file, path }),
            Ok(None) => Err(LockError::Busy {
                corp_id: corp_id.to_owned(),
                path,
            }),
            Err(source) => Err(LockError::Io {
                corp_id: corp_id.to_owned(),
                path,
                source,
            }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = CorpLock::acquire(dir.path(), "ww1").unwrap();
        assert!(first.path().ends_with("_wecom_archive/locks/ww1.lock"));
        let err = CorpLock::acquire(dir.path(), "ww1").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Busy { .. }), "{text}");
        assert!(text.contains("ww1") && text.contains("ww1.lock"), "{text}");
        // Other corps are independent.
        let _other = CorpLock::acquire(dir.path(), "ww2").unwrap();
        drop(first);
        CorpLock::acquire(dir.path(), "ww1").unwrap();
    }
}
