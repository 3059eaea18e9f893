//! Committed dead letters as a [`Source`], to re-run them (`retry-dead-letters`), typically after
//! the private key of a missing `publickey_ver` was added.
//!
//! Entries that hold the encrypted record come back as records; entries that never parsed as a
//! record (only their raw input was kept) come back as the same rejection, so the re-run
//! dead-letters them again instead of losing them.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::file::RawInput;
use super::{InputError, Item, Page, Rejected, Source, SourceError};
use crate::error::{RecordError, RecordErrorKind};
use crate::model::record::{identify, EncryptedRecord};

/// The committed dead-letter files (`dead-*.jsonl`) directly under `dir`, sorted.
pub fn dead_letter_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let p = e?.path();
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with("dead-") && name.ends_with(".jsonl") {
                    files.push(p);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    files.sort();
    Ok(files)
}

/// Reads dead-letter files front to back.
pub struct DeadLetterSource {
    items: VecDeque<Item>,
    files: usize,
}

impl DeadLetterSource {
    /// Loads `files` (dead letters are few: they are held in memory).
    pub fn open(files: &[PathBuf]) -> Result<Self, InputError> {
        let mut items = VecDeque::new();
        for path in files {
            let io = |source| InputError::Io {
                path: path.clone(),
                source,
            };
            let file = std::fs::File::open(path).map_err(io)?;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.map_err(io)?;
                if line.trim().is_empty() {
                    continue;
                }
                items.push_back(entry(&line, i as u64 + 1));
            }
        }
        Ok(DeadLetterSource {
            items,
            files: files.len(),
        })
    }

    /// Entries left to serve.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is nothing to re-run.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn entry(line: &str, line_no: u64) -> Item {
    let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    if let Some(rec) = v.get("record").filter(|r| r.is_object()) {
        if let Ok(rec) = serde_json::from_value::<EncryptedRecord>(rec.clone()) {
            return Ok(rec);
        }
    }
    let (seq, msgid) = identify(&v);
    let error = v
        .get("error")
        .and_then(Value::as_str)
        .map_or_else(|| "unreadable dead letter".to_string(), str::to_owned);
    let raw = match v.get("raw_input").and_then(Value::as_str) {
        Some(r) => RawInput {
            text: r.to_owned(),
            base64: v.get("raw_input_encoding").and_then(Value::as_str) == Some("base64"),
            truncated: v.get("raw_input_truncated").and_then(Value::as_bool) == Some(true),
        },
        None => RawInput::text(line),
    };
    Err(Rejected {
        error: RecordError {
            seq,
            msgid,
            line: v.get("line").and_then(Value::as_u64).or(Some(line_no)),
            kind: RecordErrorKind::Malformed(error),
        },
        raw,
    })
}

impl Source for DeadLetterSource {
    fn describe(&self) -> String {
        format!(
            "{} dead letters from {} files",
            self.items.len(),
            self.files
        )
    }

    fn follows_cursor(&self) -> bool {
        false
    }

    fn fetch(&mut self, _after: u64, limit: u32) -> Result<Page, SourceError> {
        let n = (limit as usize).min(self.items.len());
        Ok(Page {
            items: self.items.drain(..n).collect(),
        })
    }
}
