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

    /// The writer for the file's content.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.writer
    }

    /// Flushes, fsyncs, renames to `dir/name` and fsyncs the directory.
    pub fn commit(self, name: &str) -> std::io::Result<PathBuf> {
        let prepared = self.prepare(name)?;
        prepared.publish()?;
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
pub fn publish(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    match std::fs::rename(tmp, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dest.exists() => {}
        Err(e) => return Err(e),
    }
    sync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
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
