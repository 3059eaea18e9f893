//! The output layout: every folder and file name of the tree under an output root, stated once.
//!
//! ```text
//! OUT/state.sqlite                                          checkpoints, journal, run history
//! OUT/corp_id=<corp>/date=<YYYY-MM-DD>/part-<first>-<last>.parquet
//! OUT/corp_id=<corp>/dead_letter/dead-<first:020>-<last:020>-<token>.jsonl
//! OUT/corp_id=<corp>/media/<2 hex>/<sha256>.<ext>           downloaded media (+ media/.partial/)
//! OUT/corp_id=<corp>/media_table/media.parquet              message -> media file
//! ```
//!
//! Writers ask this module for names and readers (`inspect`, the media scan) ask it what a name
//! means, so that changing the layout is a change of this file.

use std::path::{Path, PathBuf};

/// The state database's file name under an output root (when the config names none).
pub const STATE_FILE: &str = "state.sqlite";
/// The folder of dead letters, in a corp's folder (or a flat output root).
pub const DEAD_LETTER_DIR: &str = "dead_letter";
/// The folder of downloaded media files, in a corp's folder.
pub const MEDIA_DIR: &str = "media";
/// The folder of the media table, in a corp's folder.
pub const MEDIA_TABLE_DIR: &str = "media_table";
/// The media table's file name.
pub const MEDIA_TABLE_FILE: &str = "media.parquet";
/// Hive's own name for a null partition value (rows without `msgtime`).
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

const CORP_KEY: &str = "corp_id=";
const DATE_KEY: &str = "date=";

/// The state database of the output root `out`.
pub fn state_path(out: &Path) -> PathBuf {
    out.join(STATE_FILE)
}

/// The longest corp id accepted ([`check_corp_id`]).
pub const MAX_CORP_ID_LEN: usize = 64;

/// Checks that `corp_id` can name a folder and nothing else: 1 to 64 characters of
/// `[A-Za-z0-9_-]` (a WeCom corp id is `ww` + 16 hex digits). Anything else (`/`, `..`, spaces)
/// could put files outside the output folder. The error says what is wrong, quoting the id.
pub fn check_corp_id(corp_id: &str) -> Result<(), String> {
    if corp_id.is_empty() || corp_id.len() > MAX_CORP_ID_LEN {
        return Err(format!(
            "corp id {corp_id:?} must be 1 to {MAX_CORP_ID_LEN} characters long"
        ));
    }
    if let Some(c) = corp_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "corp id {corp_id:?} contains {c:?}; only letters, digits, '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// [`check_corp_id`] as a clap value parser.
pub fn parse_corp_id(corp_id: &str) -> Result<String, String> {
    check_corp_id(corp_id).map(|()| corp_id.to_owned())
}

/// A corp's folder: `<out>/corp_id=<corp>`.
pub fn corp_dir(out: &Path, corp_id: &str) -> PathBuf {
    out.join(format!("{CORP_KEY}{corp_id}"))
}

/// A row's partition, relative to the output root: `corp_id=<corp>/date=<day>`, where `day` is
/// the local date of `msgtime` (`None`: [`NULL_PARTITION`]).
pub fn partition(corp_id: &str, day: Option<jiff::civil::Date>) -> String {
    match day {
        Some(d) => format!("{CORP_KEY}{corp_id}/{DATE_KEY}{d}"),
        None => format!("{CORP_KEY}{corp_id}/{DATE_KEY}{NULL_PARTITION}"),
    }
}

/// The `(corp_id, date)` a path lies in, as far as its folders say (empty when they do not).
pub fn partition_of(path: &Path) -> (String, String) {
    let mut corp = String::new();
    let mut date = String::new();
    for c in path.components() {
        let c = c.as_os_str().to_string_lossy();
        if let Some(v) = c.strip_prefix(CORP_KEY) {
            corp = v.to_owned();
        } else if let Some(v) = c.strip_prefix(DATE_KEY) {
            date = v.to_owned();
        }
    }
    (corp, date)
}

/// A Parquet part's file name: `<prefix>-<first seq>-<last seq>.parquet`.
pub fn part_file(prefix: &str, first_seq: u64, last_seq: u64) -> String {
    format!("{prefix}-{first_seq}-{last_seq}.parquet")
}

/// A Parquet part's file name when [`part_file`] is taken:
/// `<prefix>-<first seq>-<last seq>-<token>.parquet` (never replaces the other file).
pub fn part_file_distinct(prefix: &str, first_seq: u64, last_seq: u64, token: &str) -> String {
    format!("{prefix}-{first_seq}-{last_seq}-{token}.parquet")
}

/// A dead-letter file's name: the seq range it covers (zero-padded, so names sort by seq) and a
/// token that keeps two runs' files apart.
pub fn dead_letter_file(seq_range: Option<(u64, u64)>, token: &str) -> String {
    match seq_range {
        Some((f, l)) => format!("dead-{f:020}-{l:020}-{token}.jsonl"),
        None => format!("dead-unknown-{token}.jsonl"),
    }
}

/// Whether `path` is a dead-letter file of this layout.
pub fn is_dead_letter_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "jsonl")
        && path.parent().is_some_and(|p| p.ends_with(DEAD_LETTER_DIR))
}

/// Whether a folder of a corp holds something other than message rows (media files, the media
/// table, dead letters), so that a scan for message Parquet files skips it.
pub fn holds_no_messages(dir_name: &str) -> bool {
    matches!(dir_name, MEDIA_DIR | MEDIA_TABLE_DIR | DEAD_LETTER_DIR)
}

/// Partial media downloads of the corp whose folder is `corp_dir` (same filesystem as the
/// final files, so publishing one is a rename).
pub fn media_partial_dir(corp_dir: &Path) -> PathBuf {
    corp_dir.join(MEDIA_DIR).join(".partial")
}

/// A downloaded file's path relative to its corp's folder: content-addressed by SHA-256, fanned
/// out by the first two hex digits.
pub fn media_rel_path(sha256: &str, ext: &str) -> String {
    format!("{MEDIA_DIR}/{}/{sha256}.{ext}", &sha256[..2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        let out = Path::new("/o");
        let day = jiff::civil::date(2026, 11, 20);
        let part = out
            .join(partition("ww1", Some(day)))
            .join(part_file("part", 3, 9));
        assert_eq!(
            part,
            Path::new("/o/corp_id=ww1/date=2026-11-20/part-3-9.parquet")
        );
        assert_eq!(partition_of(&part), ("ww1".into(), "2026-11-20".into()));
        assert_eq!(
            partition("ww1", None),
            "corp_id=ww1/date=__HIVE_DEFAULT_PARTITION__"
        );
        let dead = corp_dir(out, "ww1")
            .join(DEAD_LETTER_DIR)
            .join(dead_letter_file(Some((1, 20)), "t"));
        assert!(is_dead_letter_file(&dead));
        assert_eq!(
            dead.file_name().unwrap(),
            "dead-00000000000000000001-00000000000000000020-t.jsonl"
        );
        assert!(!is_dead_letter_file(&part));
        assert_eq!(media_rel_path("abcd", "jpg"), "media/ab/abcd.jpg");
        assert!(holds_no_messages("media_table") && !holds_no_messages("date=2026-11-20"));
    }

    #[test]
    fn corp_ids_that_could_leave_the_output_folder_are_refused() {
        for ok in ["ww0123456789abcdef", "wwsim_1", "a-b", &"x".repeat(64)] {
            assert_eq!(check_corp_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../../x",
            "a/b",
            "..",
            "a b",
            "ww1\\x",
            "é",
            &"x".repeat(65),
        ] {
            let err = check_corp_id(bad).unwrap_err();
            assert!(err.contains("corp id"), "{bad}: {err}");
        }
    }
}
