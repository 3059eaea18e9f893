//! Names of media files: the partial download of an `sdkfileid` and a safe extension. Where
//! they live (`media/corp_id=<corp>/<2 hex>/<sha256>.<ext>`, its `.partial/`) is
//! [`crate::sink::layout`]'s.

use std::path::{Path, PathBuf};

use crate::sink::layout;
use crate::source::media::hex;

/// The temporary file of `sdkfileid`: named by a hash of the id (ids are long and arbitrary
/// text), hidden, and never a final name.
/// `corp_media` is the corp's media folder ([`layout::corp_media`]).
pub fn partial_path(corp_media: &Path, sdkfileid: &str) -> PathBuf {
    let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sdkfileid.as_bytes());
    let name = hex(&h.as_ref()[..16]);
    layout::media_partial_dir(corp_media).join(format!(".{name}.part"))
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
        let p = partial_path(Path::new("/o/media/corp_id=ww1"), "id/../x");
        assert!(p.starts_with("/o/media/corp_id=ww1/.partial"));
        assert!(p.file_name().unwrap().to_str().unwrap().starts_with('.'));
    }
}
