//! Dead letters: every record that could not become a row, with its raw input and its error.
//!
//! Nothing is dropped: a record that fails to unwrap, decrypt or parse is written here with the
//! untouched encrypted record, so that it can be replayed later (for example once the missing
//! private key has been added). One JSON object per line:
//!
//! ```json
//! {"seq":12,"msgid":"...","line":null,"error_kind":"unknown_key_version",
//!  "error":"record seq 12 msgid ...: no private key for publickey_ver 3 ...",
//!  "record":{"seq":12,"msgid":"...","publickey_ver":3,"encrypt_random_key":"...","encrypt_chat_msg":"..."},
//!  "raw_input":null}
//! ```
//!
//! An entry that did not parse keeps its raw input whole up to the reader's record limit;
//! `"raw_input_truncated":true` says it was cut there, and `"raw_input_encoding":"base64"` that
//! the bytes were not UTF-8 and are kept as base64.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::atomic::{AtomicFile, Prepared};
use super::layout;
use crate::error::RecordError;
use crate::model::record::EncryptedRecord;
use crate::source::file::RawInput;

/// One line of a dead-letter file.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// The record's seq, when known.
    pub seq: Option<u64>,
    /// The record's msgid, when known.
    pub msgid: Option<&'a str>,
    /// 1-based input line, for line-oriented inputs.
    pub line: Option<u64>,
    /// Stable error class (see [`crate::error::RecordErrorKind::name`]).
    pub error_kind: &'static str,
    /// Human-readable error, naming the record.
    pub error: String,
    /// The encrypted record, when the input parsed as one.
    pub record: Option<&'a EncryptedRecord>,
    /// The raw input, when it did not parse as a record: the whole entry up to the reader's
    /// record limit (see `raw_input_truncated`), as text, or as base64 when it was not UTF-8.
    pub raw_input: Option<&'a str>,
    /// `"base64"` when `raw_input` is the base64 of bytes that were not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_input_encoding: Option<&'static str>,
    /// True when the entry was longer than the limit and `raw_input` holds only its beginning
    /// (the dump itself still holds it whole).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub raw_input_truncated: bool,
}

impl<'a> DeadLetter<'a> {
    /// A dead letter for `error`, keeping the record or the raw input.
    pub fn new(
        error: &'a RecordError,
        record: Option<&'a EncryptedRecord>,
        raw_input: Option<&'a RawInput>,
    ) -> Self {
        DeadLetter {
            seq: error.seq,
            msgid: error.msgid.as_deref(),
            line: error.line,
            error_kind: error.kind.name(),
            error: error.to_string(),
            record,
            raw_input: raw_input.map(|r| r.text.as_str()),
            raw_input_encoding: raw_input.filter(|r| r.base64).map(|_| "base64"),
            raw_input_truncated: raw_input.is_some_and(|r| r.truncated),
        }
    }
}

/// Writes dead letters to `DIR/dead_letter/dead-<first>-<last>.jsonl`, committed atomically.
pub struct DeadLetterSink {
    dir: PathBuf,
    open: Option<OpenFile>,
    total: u64,
    committed: Vec<PathBuf>,
}

struct OpenFile {
    file: AtomicFile,
    first: Option<u64>,
    last: Option<u64>,
    count: u64,
}

impl DeadLetterSink {
    /// Dead letters will go in the folder `dir` (see `pipeline::Layout::dead_letter_dir`).
    pub fn new(dir: &Path) -> Self {
        DeadLetterSink {
            dir: dir.to_owned(),
            open: None,
            total: 0,
            committed: Vec::new(),
        }
    }

    /// Appends one dead letter (buffered until [`Self::commit`]).
    pub fn push(&mut self, letter: &DeadLetter<'_>) -> std::io::Result<()> {
        if self.open.is_none() {
            super::atomic::create_dir_durable(&self.dir)?;
            self.open = Some(OpenFile {
                file: AtomicFile::create(&self.dir, "dead", "jsonl")?,
                first: None,
                last: None,
                count: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        serde_json::to_writer(open.file.writer(), letter)?;
        open.file.writer().write_all(b"\n")?;
        if let Some(seq) = letter.seq {
            open.first = Some(open.first.map_or(seq, |f| f.min(seq)));
            open.last = Some(open.last.map_or(seq, |l| l.max(seq)));
        }
        open.count += 1;
        self.total += 1;
        Ok(())
    }

    /// Makes everything pushed so far durable under its final name.
    pub fn commit(&mut self) -> std::io::Result<Option<PathBuf>> {
        let Some(prepared) = self.prepare()? else {
            return Ok(None);
        };
        prepared.publish()?;
        self.mark_committed(prepared.dest.clone());
        Ok(Some(prepared.dest))
    }

    /// Fsyncs what was pushed under a temporary name, without renaming (see
    /// [`super::atomic::AtomicFile::prepare`]); the caller publishes it, then calls
    /// [`Self::mark_committed`].
    pub fn prepare(&mut self) -> std::io::Result<Option<Prepared>> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let name = layout::dead_letter_file(open.first.zip(open.last), open.file.token());
        open.file.prepare(&name).map(Some)
    }

    /// Records a file published by the caller.
    pub fn mark_committed(&mut self, path: PathBuf) {
        self.committed.push(path);
    }

    /// Dead letters pushed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Files committed so far.
    pub fn committed(&self) -> &[PathBuf] {
        &self.committed
    }
}

use std::io::Write as _;
