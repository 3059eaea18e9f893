//! `manifest.json`: what an export holds, each file with its SHA-256, and the query that made
//! it; and [`HashedFile`], the temporary every exported file is written through, hashed as it
//! is written and renamed to its final name only once complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{io, ExportError, ExportedConversation, Query, MANIFEST_FILE};
use crate::sink::atomic::{self, AtomicFile};

/// The manifest's own format version (bumped if a field changes meaning; fields are only added).
pub const MANIFEST_VERSION: u32 = 1;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file of the export, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestFile {
    /// Relative to the export folder, `/`-separated.
    pub path: String,
    /// SHA-256 of its bytes, lower-case hex (as `sha256sum` prints it).
    pub sha256: String,
}

/// The manifest (see docs/compliance.md for an example).
#[derive(Debug, Serialize)]
pub struct Manifest<'a> {
    /// [`MANIFEST_VERSION`].
    pub manifest_version: u32,
    /// `wecom-archive`.
    pub tool: &'static str,
    /// The crate's version.
    pub tool_version: &'static str,
    /// When the export was written, UTC, RFC 3339 (set by [`Manifest::write`]).
    pub created_at: String,
    /// The query.
    pub query: &'a Query,
    /// Messages exported.
    pub message_count: u64,
    /// Transcripts written.
    pub conversation_count: usize,
    /// The transcripts.
    pub conversations: &'a [ExportedConversation],
    /// Media files copied.
    pub media_files: u64,
    /// Media references whose file was not downloaded.
    pub media_missing: u64,
    /// Every file of the export but the manifest itself, sorted by path.
    pub files: Vec<ManifestFile>,
}

impl<'a> Manifest<'a> {
    /// A manifest of `files` (sorted here).
    pub fn new(
        query: &'a Query,
        conversations: &'a [ExportedConversation],
        message_count: u64,
        media_files: u64,
        media_missing: u64,
        mut files: Vec<ManifestFile>,
    ) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            manifest_version: MANIFEST_VERSION,
            tool: "wecom-archive",
            tool_version: env!("CARGO_PKG_VERSION"),
            created_at: String::new(),
            query,
            message_count,
            conversation_count: conversations.len(),
            conversations,
            media_files,
            media_missing,
            files,
        }
    }

    /// Writes `dir/manifest.json` (temporary, fsync, rename); returns its SHA-256 and the time
    /// it records.
    pub fn write(mut self, dir: &Path) -> Result<(String, String), ExportError> {
        let now = jiff::Timestamp::now();
        self.created_at = jiff::Timestamp::from_second(now.as_second())
            .unwrap_or(now)
            .to_string();
        let mut json = serde_json::to_vec_pretty(&self).expect("a manifest serializes");
        json.push(b'\n');
        let mut file = HashedFile::create(dir, "json")?;
        file.write_all(&json).map_err(io(dir))?;
        let sha = file.publish(MANIFEST_FILE)?;
        Ok((sha, self.created_at))
    }
}

/// A file of the export being written: a hidden temporary in its final folder, hashed as it is
/// written; [`HashedFile::publish`] gives it its final name (never replacing a file).
pub struct HashedFile {
    file: AtomicFile,
    digest: aws_lc_rs::digest::Context,
    dir: PathBuf,
}

impl HashedFile {
    /// A new temporary in `dir` (`.export-<token>.<ext>.tmp`).
    pub fn create(dir: &Path, ext: &str) -> Result<Self, ExportError> {
        let file = AtomicFile::create(dir, "export", ext).map_err(io(dir))?;
        Ok(HashedFile {
            file,
            digest: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            dir: dir.to_owned(),
        })
    }

    /// The folder it is written in (for errors).
    pub fn tmp_path(&self) -> &Path {
        &self.dir
    }

    /// Flushes, fsyncs and renames it to `dir/name`; returns the SHA-256 of what was written.
    pub fn publish(self, name: &str) -> Result<String, ExportError> {
        let sha = hex(self.digest.finish().as_ref());
        let dest = self.dir.join(name);
        let prepared = self.file.prepare(name).map_err(io(&dest))?;
        atomic::publish(&prepared.tmp, &prepared.dest).map_err(io(&dest))?;
        Ok(sha)
    }
}

impl Write for HashedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.writer().write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.writer().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_file_appears_complete_with_the_hash_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = HashedFile::create(dir.path(), "txt").unwrap();
        f.write_all(b"hello ").unwrap();
        // Nothing under a final name until published.
        let names = || -> Vec<String> {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert!(names().iter().all(|n| n.starts_with('.')), "{:?}", names());
        f.write_all(b"world").unwrap();
        let sha = f.publish("a.txt").unwrap();
        assert_eq!(sha, sha256_hex(b"hello world"));
        assert_eq!(names(), ["a.txt"]);
        // Never replaces a file.
        let f = HashedFile::create(dir.path(), "txt").unwrap();
        assert!(f.publish("a.txt").is_err());
    }
}
