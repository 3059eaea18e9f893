//! The output layout: every folder and file name of the tree under an output root, stated once.
//!
//! ```text
//! OUT/messages/corp_id=<corp>/date=<YYYY-MM-DD>/part-<first:020>-<last:020>.parquet
//! OUT/dead_letters/corp_id=<corp>/dead-<first:020>-<last:020>-<token>.jsonl
//! OUT/findings/corp_id=<corp>/date=<YYYY-MM-DD>/part-<first:020>-<last:020>.parquet  rule matches
//! OUT/media_files/corp_id=<corp>/media_files.parquet      message -> media file
//! OUT/media/corp_id=<corp>/<2 hex>/<sha256>.<ext>         downloaded media (+ .partial/)
//! OUT/_wecom_archive/state.sqlite                         checkpoints, journal, run history
//! ```
//!
//! Each table has a root of its own that holds nothing but that table's files, so a reader given
//! the root (`OUT/messages`) sees one Hive-partitioned table. Folders and files that start with
//! `_` or `.` are skipped by every common reader (Spark, pyarrow, DuckDB, Polars): the state
//! folder and the temporaries rely on it.
//!
//! `decrypt --out DIR` has no corps: `DIR/messages/part-….parquet`, `DIR/dead_letters/dead-….jsonl`,
//! `DIR/findings/part-….parquet`.
//!
//! Writers ask this module for names and readers (`inspect`, the media scan, compaction) ask it
//! what a name means, so that changing the layout is a change of this file. The layout of earlier
//! releases is named in [`crate::migrate`], which moves such a tree into this one.

use std::path::{Path, PathBuf};

/// The messages table's root folder.
pub const MESSAGES: &str = "messages";
/// The dead letters' root folder.
pub const DEAD_LETTERS: &str = "dead_letters";
/// The media table's root folder.
pub const MEDIA_FILES: &str = "media_files";
/// The findings table's root folder (rule matches, partitioned like the messages).
pub const FINDINGS: &str = "findings";
/// The root folder of downloaded media files.
pub const MEDIA: &str = "media";
/// The folder of the tool's own files (state database, locks); `_` so that engines skip it.
pub const META_DIR: &str = "_wecom_archive";
/// The state database's file name in [`META_DIR`] (when the config names none).
pub const STATE_FILE: &str = "state.sqlite";
/// The media table's one file in a corp's partition (rewritten whole after every media run).
pub const MEDIA_FILES_FILE: &str = "media_files.parquet";
/// Hive's own name for a null partition value (rows without `msgtime`).
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";
/// The key-value metadata key under which every Parquet file records its schema version.
pub const SCHEMA_VERSION_KEY: &str = "wecom_archive.schema_version";

const CORP_KEY: &str = "corp_id=";
const DATE_KEY: &str = "date=";
const PART_PREFIX: &str = "part-";
const DEAD_PREFIX: &str = "dead-";

/// The state database of the output root `out`.
pub fn state_path(out: &Path) -> PathBuf {
    out.join(META_DIR).join(STATE_FILE)
}

/// A corp's writer lock: `<out>/_wecom_archive/locks/<corp>.lock`, held by a pull and by a
/// compaction of the corp (see `sink::lock`).
pub fn corp_lock(out: &Path, corp_id: &str) -> PathBuf {
    out.join(META_DIR)
        .join("locks")
        .join(format!("{corp_id}.lock"))
}

/// The messages table's root under `out`.
pub fn messages_root(out: &Path) -> PathBuf {
    out.join(MESSAGES)
}

/// The dead letters' root under `out`.
pub fn dead_letters_root(out: &Path) -> PathBuf {
    out.join(DEAD_LETTERS)
}

/// The findings table's root under `out`.
pub fn findings_root(out: &Path) -> PathBuf {
    out.join(FINDINGS)
}

/// A corp's findings: `<out>/findings/corp_id=<corp>`.
pub fn corp_findings(out: &Path, corp_id: &str) -> PathBuf {
    findings_root(out).join(corp_folder(corp_id))
}

/// The media table's root under `out`.
pub fn media_files_root(out: &Path) -> PathBuf {
    out.join(MEDIA_FILES)
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

/// A corp's folder name in any table: `corp_id=<corp>`.
pub fn corp_folder(corp_id: &str) -> String {
    format!("{CORP_KEY}{corp_id}")
}

/// A corp's messages: `<out>/messages/corp_id=<corp>`.
pub fn corp_messages(out: &Path, corp_id: &str) -> PathBuf {
    messages_root(out).join(corp_folder(corp_id))
}

/// A corp's dead letters: `<out>/dead_letters/corp_id=<corp>`.
pub fn corp_dead_letters(out: &Path, corp_id: &str) -> PathBuf {
    dead_letters_root(out).join(corp_folder(corp_id))
}

/// A corp's media table partition: `<out>/media_files/corp_id=<corp>`.
pub fn corp_media_files(out: &Path, corp_id: &str) -> PathBuf {
    media_files_root(out).join(corp_folder(corp_id))
}

/// A corp's downloaded media: `<out>/media/corp_id=<corp>`.
pub fn corp_media(out: &Path, corp_id: &str) -> PathBuf {
    out.join(media_rel_dir(corp_id))
}

/// A row's partition, relative to the messages root: `corp_id=<corp>/date=<day>`, where `day`
/// is the local date of `msgtime` in the configured time zone (`None`: [`NULL_PARTITION`]).
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

/// The day of a `date=` partition value (`None` for [`NULL_PARTITION`] or anything else).
pub fn partition_day(date: &str) -> Option<jiff::civil::Date> {
    date.parse().ok()
}

/// A Parquet part's file name: `part-<first seq>-<last seq>.parquet`, both zero-padded to 20
/// digits so that names sort by seq.
pub fn part_file(first_seq: u64, last_seq: u64) -> String {
    format!("{PART_PREFIX}{first_seq:020}-{last_seq:020}.parquet")
}

/// A Parquet part's file name when [`part_file`] is taken:
/// `part-<first seq>-<last seq>-<token>.parquet` (never replaces the other file).
pub fn part_file_distinct(first_seq: u64, last_seq: u64, token: &str) -> String {
    format!("{PART_PREFIX}{first_seq:020}-{last_seq:020}-{token}.parquet")
}

/// Whether `name` is a committed Parquet part of the messages table.
pub fn is_part_file(name: &str) -> bool {
    name.starts_with(PART_PREFIX) && name.ends_with(".parquet")
}

/// A dead-letter file's name: the seq range it covers (zero-padded, so names sort by seq) and a
/// token that keeps two runs' files apart.
pub fn dead_letter_file(seq_range: Option<(u64, u64)>, token: &str) -> String {
    match seq_range {
        Some((f, l)) => format!("{DEAD_PREFIX}{f:020}-{l:020}-{token}.jsonl"),
        None => format!("{DEAD_PREFIX}unknown-{token}.jsonl"),
    }
}

/// Whether `path` is a committed dead-letter file of this layout.
pub fn is_dead_letter_file(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with(DEAD_PREFIX)
        && name.ends_with(".jsonl")
        && path
            .ancestors()
            .any(|a| a.file_name().is_some_and(|n| n == DEAD_LETTERS))
}

/// Whether a file or folder name is hidden from readers: temporaries (`.…`) and the tool's own
/// files (`_…`). Every common engine skips these names; so do our own scans.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// The hidden name a committed file is renamed to when a journaled step retires it
/// (`.retired-<name>.tmp`, beside it): a temporary, so recovery deletes it if a crash comes
/// before the step does.
pub fn retired(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".retired-{name}.tmp"))
}

/// Whether `name` is a temporary that a commit or compaction left behind (`.….tmp`).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Partial media downloads of the corp whose media folder is `corp_media` (same filesystem as
/// the final files, so publishing one is a rename).
pub fn media_partial_dir(corp_media: &Path) -> PathBuf {
    corp_media.join(".partial")
}

/// A downloaded file's path relative to the output root: content-addressed by SHA-256, fanned
/// out by the first two hex digits (`media/corp_id=<corp>/ab/ab….jpg`). The media table's `path`
/// column holds this, so `OUT/<path>` is the file.
pub fn media_rel_path(corp_id: &str, sha256: &str, ext: &str) -> String {
    format!("{}/{}/{sha256}.{ext}", media_rel_dir(corp_id), &sha256[..2])
}

/// A corp's media folder relative to the output root: `media/corp_id=<corp>`.
pub fn media_rel_dir(corp_id: &str) -> String {
    format!("{MEDIA}/{}", corp_folder(corp_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        let out = Path::new("/o");
        let day = jiff::civil::date(2026, 11, 20);
        let part = messages_root(out)
            .join(partition("ww1", Some(day)))
            .join(part_file(3, 1001));
        assert_eq!(
            part,
            Path::new(
                "/o/messages/corp_id=ww1/date=2026-11-20/\
                 part-00000000000000000003-00000000000000001001.parquet"
            )
        );
        assert!(is_part_file(&part_file(3, 9)) && is_part_file(&part_file_distinct(3, 9, "t")));
        // Zero padding: names sort as seqs do.
        assert!(part_file(201, 300) < part_file(1001, 1100));
        assert_eq!(partition_of(&part), ("ww1".into(), "2026-11-20".into()));
        assert_eq!(partition_day("2026-11-20"), Some(day));
        assert_eq!(partition_day(NULL_PARTITION), None);
        assert_eq!(
            partition("ww1", None),
            "corp_id=ww1/date=__HIVE_DEFAULT_PARTITION__"
        );
        let dead = corp_dead_letters(out, "ww1").join(dead_letter_file(Some((1, 20)), "t"));
        assert!(is_dead_letter_file(&dead));
        assert_eq!(
            dead,
            Path::new(
                "/o/dead_letters/corp_id=ww1/dead-00000000000000000001-00000000000000000020-t.jsonl"
            )
        );
        let flat_dead = dead_letters_root(out).join(dead_letter_file(None, "t"));
        assert!(is_dead_letter_file(&flat_dead));
        assert!(!is_dead_letter_file(&part));
        assert!(!is_dead_letter_file(Path::new("/o/messages/x.jsonl")));
        assert_eq!(
            media_rel_path("ww1", "abcd", "jpg"),
            "media/corp_id=ww1/ab/abcd.jpg"
        );
        assert_eq!(state_path(out), Path::new("/o/_wecom_archive/state.sqlite"));
        assert_eq!(
            corp_media_files(out, "ww1").join(MEDIA_FILES_FILE),
            Path::new("/o/media_files/corp_id=ww1/media_files.parquet")
        );
        assert!(is_hidden(META_DIR) && is_hidden(".part-x.parquet.tmp"));
        assert!(is_temporary(".part-x.parquet.tmp") && !is_temporary(&part_file(1, 2)));
        let retired = retired(&part);
        assert_eq!(retired.parent(), part.parent());
        assert!(is_temporary(
            &retired.file_name().unwrap().to_string_lossy()
        ));
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
