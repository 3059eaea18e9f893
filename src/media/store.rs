//! Where media files live: content-addressed under the corp's directory,
//! `corp_id=<corp>/media/<first 2 hex>/<sha256>.<ext>`, with partial downloads in
//! `media/.partial/` (same filesystem, so publishing is a rename).

use std::path::{Path, PathBuf};

use crate::source::media::hex;

/// The directory of a corp's output: `<out>/corp_id=<corp>`.
pub fn corp_dir(out: &Path, corp_id: &str) -> PathBuf {
    out.join(format!("corp_id={corp_id}"))
}

/// Partial downloads of the corp whose directory is `corp_dir`.
pub fn partial_dir(corp_dir: &Path) -> PathBuf {
    corp_dir.join("media").join(".partial")
}

/// The temporary file of `sdkfileid`: named by a hash of the id (ids are long and arbitrary
/// text), hidden, and never a final name.
pub fn partial_path(corp_dir: &Path, sdkfileid: &str) -> PathBuf {
    let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sdkfileid.as_bytes());
    let name = hex(&h.as_ref()[..16]);
    partial_dir(corp_dir).join(format!(".{name}.part"))
}

/// The final path of content with SHA-256 `sha256`, relative to the corp's directory.
pub fn final_rel_path(sha256: &str, ext: &str) -> String {
    format!("media/{}/{sha256}.{ext}", &sha256[..2])
}

/// A safe extension for a file of `kind` announced with `ext`: the announced one when it is
/// short and alphanumeric (it comes from a message, so it is untrusted), else the kind's usual
/// one, else `bin`.
pub fn extension(kind: &str, ext: Option<&str>) -> String {
    let announced = ext
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 10 && e.bytes().all(|b| b.is_ascii_alphanumeric()));
    announced.unwrap_or_else(|| {
        match kind {
            "image" => "jpg",
            "voice" => "amr",
            "video" => "mp4",
            "emotion" => "gif",
            // The recording's container is undocumented (archive.md §3.2).
            _ => "bin",
        }
        .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_safe() {
        assert_eq!(extension("file", Some("PDF")), "pdf");
        assert_eq!(extension("file", Some("../../etc")), "bin");
        assert_eq!(extension("image", None), "jpg");
        assert_eq!(extension("voice", Some("")), "amr");
        assert_eq!(extension("emotion", Some("png")), "png");
        assert_eq!(final_rel_path("abcdef", "jpg"), "media/ab/abcdef.jpg");
        let p = partial_path(Path::new("/o/corp_id=ww1"), "id/../x");
        assert!(p.starts_with("/o/corp_id=ww1/media/.partial"));
        assert!(p.file_name().unwrap().to_str().unwrap().starts_with('.'));
    }
}
