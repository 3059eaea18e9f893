//! Records from `GetChatData` dumps: a response object (`{"chatdata":[...]}`), several of them,
//! or JSON Lines of single `chatdata` records (or of whole responses); plain or gzip; a file or
//! stdin (`-`).
//!
//! JSON Lines are read line by line so that one corrupt line becomes a dead letter and the rest
//! still flows. A multi-line JSON document cannot be resynchronised after a syntax error: the
//! records before the error are kept and the error itself is reported as a dead letter.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{RecordError, RecordErrorKind};
use crate::model::record::{identify, EncryptedRecord};

/// A failure to open or read the input as a whole (not a bad record).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Opening or reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The input (`-` for stdin).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// The raw input kept with a dead letter, at most this many bytes (the dump itself stays the
/// full record of an unreadable tail).
const MAX_RAW: usize = 1 << 20;

/// An input entry that is not a usable record: the error, and the raw text to keep with it.
#[derive(Debug)]
pub struct Rejected {
    /// What is wrong, naming the entry.
    pub error: RecordError,
    /// The entry as it appeared in the input (truncated to 1 MiB).
    pub raw: String,
}

/// Streams [`EncryptedRecord`]s from a dump, in input order.
pub struct DumpReader {
    input: Box<dyn BufRead + Send>,
    path: PathBuf,
    mode: Mode,
    line_no: u64,
    pending: VecDeque<Result<EncryptedRecord, Rejected>>,
    /// Pages whose `errcode` was not 0: (errcode, errmsg).
    pub page_errors: Vec<(i64, String)>,
}

enum Mode {
    /// Not decided yet: the first line tells.
    Start,
    /// One JSON value per line.
    Lines,
    /// One or more JSON values spanning lines; fully buffered (dumps of this form are pages of
    /// at most 1000 records each).
    Document(Option<String>),
    Done,
}

impl DumpReader {
    /// Opens a file (`-` = stdin). Gzip is detected by its magic bytes, whatever the name.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        let io_err = |source| InputError::Io {
            path: path.to_owned(),
            source,
        };
        let raw: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(io_err)?)
        };
        let mut buffered = BufReader::with_capacity(1 << 20, raw);
        let is_gzip = buffered
            .fill_buf()
            .map_err(io_err)?
            .starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn BufRead + Send> = if is_gzip {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        Ok(Self::from_reader(input, path))
    }

    /// Reads from any buffered reader; `path` only names it in errors.
    pub fn from_reader(input: Box<dyn BufRead + Send>, path: &Path) -> Self {
        DumpReader {
            input,
            path: path.to_owned(),
            mode: Mode::Start,
            line_no: 0,
            pending: VecDeque::new(),
            page_errors: Vec::new(),
        }
    }

    fn read_line(&mut self) -> Result<Option<String>, InputError> {
        let mut line = String::new();
        match self.input.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => {
                self.line_no += 1;
                Ok(Some(line))
            }
            Err(source) => Err(InputError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Queues the records of one top-level JSON value (a page or a single record).
    fn push_value(&mut self, v: Value, line: Option<u64>) {
        let is_page = v.get("chatdata").is_some();
        if !is_page {
            self.push_record(v, line);
            return;
        }
        let errcode = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if errcode != 0 {
            let errmsg = v
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            tracing::warn!(errcode, %errmsg, "dump holds a GetChatData error response");
            self.page_errors.push((errcode, errmsg));
        }
        match v {
            Value::Object(mut map) => match map.remove("chatdata") {
                Some(Value::Array(items)) => {
                    for item in items {
                        self.push_record(item, line);
                    }
                }
                Some(other) => self.malformed(
                    line,
                    format!("\"chatdata\" is not an array but {}", json_kind(&other)),
                    other.to_string(),
                ),
                None => {}
            },
            _ => unreachable!("only objects have a chatdata key"),
        }
    }

    fn push_record(&mut self, v: Value, line: Option<u64>) {
        use serde::Deserialize;
        // Deserialize from a borrow so the raw entry is still there for a dead letter.
        let item = EncryptedRecord::deserialize(&v).map_err(|e| {
            let (seq, msgid) = identify(&v);
            Rejected {
                error: RecordError {
                    seq,
                    msgid,
                    line,
                    kind: RecordErrorKind::Malformed(e.to_string()),
                },
                raw: v.to_string(),
            }
        });
        self.pending.push_back(item);
    }

    fn malformed(&mut self, line: Option<u64>, what: String, mut raw: String) {
        if raw.len() > MAX_RAW {
            let mut cut = MAX_RAW;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            raw.truncate(cut);
        }
        self.pending.push_back(Err(Rejected {
            error: RecordError {
                seq: None,
                msgid: None,
                line,
                kind: RecordErrorKind::Malformed(what),
            },
            raw,
        }));
    }

    /// Fills `pending` with at least one item, or returns false at the end of input.
    fn fill(&mut self) -> Result<bool, InputError> {
        while self.pending.is_empty() {
            match std::mem::replace(&mut self.mode, Mode::Done) {
                Mode::Done => return Ok(false),
                Mode::Start => {
                    let Some(first) = self.read_line()? else {
                        return Ok(false);
                    };
                    if first.trim().is_empty() {
                        self.mode = Mode::Start;
                        continue;
                    }
                    match serde_json::from_str::<Value>(&first) {
                        Ok(v) => {
                            self.mode = Mode::Lines;
                            self.push_value(v, Some(self.line_no));
                        }
                        Err(_) => self.mode = Mode::Document(Some(first)),
                    }
                }
                Mode::Lines => {
                    self.mode = Mode::Lines;
                    let Some(line) = self.read_line()? else {
                        self.mode = Mode::Done;
                        return Ok(false);
                    };
                    let text = line.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let no = Some(self.line_no);
                    match serde_json::from_str::<Value>(text) {
                        Ok(v) => self.push_value(v, no),
                        Err(e) => self.malformed(no, format!("invalid JSON: {e}"), text.to_owned()),
                    }
                }
                Mode::Document(first) => {
                    let mut text = first.unwrap_or_default();
                    self.input
                        .read_to_string(&mut text)
                        .map_err(|source| InputError::Io {
                            path: self.path.clone(),
                            source,
                        })?;
                    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
                    loop {
                        let at = stream.byte_offset();
                        match stream.next() {
                            None => break,
                            Some(Ok(v)) => self.push_value(v, None),
                            Some(Err(e)) => {
                                self.malformed(
                                    Some(e.line() as u64),
                                    format!(
                                        "invalid JSON, the rest of the input is unreadable: {e}"
                                    ),
                                    text[at..].trim_start().to_owned(),
                                );
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(true)
    }
}

impl Iterator for DumpReader {
    type Item = Result<Result<EncryptedRecord, Rejected>, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.fill() {
            Ok(true) => self.pending.pop_front().map(Ok),
            Ok(false) => None,
            Err(e) => {
                self.mode = Mode::Done;
                Some(Err(e))
            }
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Result<EncryptedRecord, Rejected>> {
        let input = Box::new(io::Cursor::new(text.as_bytes().to_vec()));
        DumpReader::from_reader(input, Path::new("t"))
            .map(|r| r.unwrap())
            .collect()
    }

    const REC: &str = r#"{"seq":1,"msgid":"m1","publickey_ver":1,"encrypt_random_key":"k","encrypt_chat_msg":"c"}"#;

    #[test]
    fn reads_a_pretty_printed_page() {
        let text = format!(
            "{{\n \"errcode\": 0,\n \"chatdata\": [\n{REC},\n{}\n]\n}}\n",
            REC.replace("\"seq\":1", "\"seq\":2")
        );
        let got = read(&text);
        let seqs: Vec<u64> = got.iter().map(|r| r.as_ref().unwrap().seq).collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn jsonl_bad_line_is_a_dead_letter_and_reading_goes_on() {
        let text = format!(
            "{REC}\n{{not json\n\n{}\n{{\"seq\":9,\"msgid\":\"x\"}}\n",
            REC.replace("\"seq\":1", "\"seq\":3")
        );
        let got = read(&text);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap().seq, 1);
        let bad = got[1].as_ref().unwrap_err();
        assert_eq!(bad.error.line, Some(2));
        assert_eq!(bad.raw, "{not json");
        assert_eq!(got[2].as_ref().unwrap().seq, 3);
        let missing = &got[3].as_ref().unwrap_err().error;
        assert_eq!(
            (missing.seq, missing.msgid.as_deref()),
            (Some(9), Some("x"))
        );
        assert!(missing.to_string().contains("missing field"), "{missing}");
    }

    #[test]
    fn jsonl_of_pages_and_error_pages() {
        let text = format!("{{\"chatdata\":[{REC}]}}\n{{\"errcode\":48002,\"errmsg\":\"api forbidden\",\"chatdata\":[]}}\n");
        let input = Box::new(io::Cursor::new(text.into_bytes()));
        let mut r = DumpReader::from_reader(input, Path::new("t"));
        let got: Vec<_> = r.by_ref().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(r.page_errors, vec![(48002, "api forbidden".to_string())]);
    }

    #[test]
    fn truncated_document_keeps_records_before_the_error() {
        let text = format!("{{\n\"chatdata\":[{REC}]}}\n{{\n\"chatdata\": [ {REC}");
        let got = read(&text);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        let bad = got[1].as_ref().unwrap_err();
        assert!(bad.error.to_string().contains("invalid JSON"));
        assert!(bad.raw.starts_with("{\n\"chatdata\": ["), "{}", bad.raw);
    }

    #[test]
    fn gzip_is_detected_by_magic() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dump.bin");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        writeln!(gz, "{REC}").unwrap();
        gz.finish().unwrap();
        let got: Vec<_> = DumpReader::open(&p).unwrap().collect();
        assert_eq!(got.len(), 1);
    }
}
