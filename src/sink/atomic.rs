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
        let file = self.writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let dest = self.dir.join(name);
        std::fs::rename(&self.tmp, &dest)?;
        sync_dir(&self.dir)?;
        Ok(dest)
    }
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
