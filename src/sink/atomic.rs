//! Files that appear under their final name only once complete and durable:
//! written to a hidden temporary name, fsynced, renamed, and the directory fsynced.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name in its final directory.
pub struct AtomicFile {
    dir: PathBuf,
    tmp: PathBuf,
    token: String,
    writer: BufWriter<File>,
}

impl AtomicFile {
    /// Creates `dir/.<prefix>-<token>.<ext>.tmp`; the token keeps concurrent writers apart.
    pub fn create(dir: &Path, prefix: &str, ext: &str) -> std::io::Result<Self> {
        let token = format!("{:x}{:08x}", std::process::id(), rand::random::<u32>());
        let tmp = dir.join(format!(".{prefix}-{token}.{ext}.tmp"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        Ok(AtomicFile {
            dir: dir.to_owned(),
            tmp,
            token,
            writer: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// A short random token unique to this file (for final names that must not collide).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The folder the file is written in (and will be published in).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The writer for the file's content.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.writer
    }

    /// Flushes, fsyncs, renames to `dir/name` **replacing** what is there, and fsyncs the
    /// directory: for files rewritten whole by design (the media table). Data files that must
    /// never be replaced go through [`Self::prepare`] and [`Prepared::publish`].
    pub fn commit(self, name: &str) -> std::io::Result<PathBuf> {
        let prepared = self.prepare(name)?;
        std::fs::rename(&prepared.tmp, &prepared.dest)?;
        sync_dir(prepared.dest.parent().unwrap_or(Path::new(".")))?;
        Ok(prepared.dest)
    }

    /// The first half of [`Self::commit`]: flushes and fsyncs the temporary, and names its final
    /// path, without renaming. Lets a caller journal several files before publishing any.
    pub fn prepare(self, name: &str) -> std::io::Result<Prepared> {
        let file = self.writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        Ok(Prepared {
            dest: self.dir.join(name),
            tmp: self.tmp,
        })
    }
}

/// A complete, fsynced temporary file waiting to be renamed to its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The temporary file.
    pub tmp: PathBuf,
    /// Its final name.
    pub dest: PathBuf,
}

impl Prepared {
    /// Renames the temporary to its final name and fsyncs the directory. Idempotent: when the
    /// temporary is gone and the destination exists (a rename done before a crash), it succeeds.
    pub fn publish(&self) -> std::io::Result<()> {
        publish(&self.tmp, &self.dest)
    }
}

/// Renames `tmp` to `dest` and fsyncs `dest`'s directory; succeeds when this was already done.
///
/// Never replaces a file: when `dest` exists and `tmp` is still there, this fails with
/// [`std::io::ErrorKind::AlreadyExists`] and both files stay as they are.
pub fn publish(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    match rename_noreplace(tmp, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dest.exists() => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(std::io::Error::new(
                e.kind(),
                format!(
                    "{} already exists; refusing to replace a committed file with {}",
                    dest.display(),
                    tmp.display()
                ),
            ))
        }
        Err(e) => return Err(e),
    }
    sync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// `rename` that fails with `AlreadyExists` instead of replacing `dest`.
fn rename_noreplace(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let cstr = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        let (from, to) = (cstr(tmp)?, cstr(dest)?);
        // SAFETY: both paths are NUL-terminated C strings that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        // Filesystems without RENAME_NOREPLACE: fall back to link + unlink below.
        if !matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
        ) {
            return Err(e);
        }
    }
    // A hard link fails when `dest` exists; a crash between link and unlink leaves two names
    // of one file, which the next attempt recognises and finishes.
    match std::fs::hard_link(tmp, dest) {
        Ok(()) => std::fs::remove_file(tmp),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && same_file(tmp, dest) => {
            std::fs::remove_file(tmp)
        }
        Err(e) => Err(e),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Fsyncs a directory so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `create_dir_all` whose new folders survive a crash: each folder it creates is fsynced into
/// its parent (a file renamed into a folder whose own entry was lost would be lost with it).
pub fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => sync_dir(
            dir.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        ),
        // Created meanwhile by another writer, who fsyncs it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes temporaries left directly in `dir` by sinks of this crate that were killed: files
/// named `.part-<token>.<ext>.tmp` or `.dead-<token>.<ext>.tmp` whose token names a process
/// that is no longer running. Committed files, other files, subfolders and the temporaries of
/// live processes (including this one) are left alone. Returns how many were removed.
///
/// Only for outputs without a commit journal: with a state database, the run's recovery
/// rolls journaled temporaries forward first (see `sink::recover`).
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_owner) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing a temporary of a killed run");
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// The process id in a temporary's name made by [`AtomicFile::create`], if it is one.
fn temporary_owner(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (before_ext, _ext) = stem.rsplit_once('.')?;
    let token = before_ext
        .strip_prefix("part-")
        .or_else(|| before_ext.strip_prefix("dead-"))?;
    if token.len() <= 8 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&token[..token.len() - 8], 16).ok()
}

fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc").join(pid.to_string()).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Without a cheap liveness check, assume alive: never delete another writer's file.
        let _ = pid;
        true
    }
}

impl AtomicFile {
    /// Gives up the file: removes the temporary.
    pub fn abort(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

impl std::fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicFile")
            .field("tmp", &self.tmp)
            .finish()
    }
}

/// `Write` passthrough, so writers that want `impl Write` can take the file.
impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> Prepared {
        let mut f = AtomicFile::create(dir, "part", "parquet").unwrap();
        f.writer().write_all(body.as_bytes()).unwrap();
        f.prepare("part-1-10.parquet").unwrap()
    }

    #[test]
    fn publish_never_replaces_a_committed_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(dir.path(), "first");
        first.publish().unwrap();
        let second = write(dir.path(), "second");
        let err = second.publish().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("part-1-10.parquet"), "{err}");
        assert_eq!(std::fs::read_to_string(&first.dest).unwrap(), "first");
        assert!(second.tmp.exists());
        // Publishing again what was already published still succeeds (crash replay).
        first.publish().unwrap();
    }

    #[test]
    fn new_folders_are_created_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durable(&deep).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("corp_id=ww1");
        std::fs::create_dir(&sub).unwrap();
        // pid 0x7ffffffe cannot be running (above pid_max).
        let stale = [
            dir.path().join(".part-7ffffffe0badf00d.parquet.tmp"),
            dir.path().join(".dead-7ffffffe12345678.jsonl.tmp"),
        ];
        let mine = write(dir.path(), "live").tmp;
        let keep = [
            dir.path().join("part-1-10.parquet"),
            dir.path().join(".notes.tmp"),
            dir.path().join(".part-zz.parquet.tmp"),
            dir.path()
                .join(".retired-dead-1-2-7ffffffe0badf00d.jsonl.tmp"),
            sub.join(".part-7ffffffe0badf00d.parquet.tmp"),
        ];
        for p in stale.iter().chain(&keep) {
            std::fs::write(p, "x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()), 2);
        assert!(stale.iter().all(|p| !p.exists()));
        assert!(keep.iter().all(|p| p.exists()) && mine.exists());
    }
}
