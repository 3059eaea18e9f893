//! Typed errors. A record-level error names the record (seq / msgid) it concerns, and never
//! carries key material or plaintext.

use crate::crypto::message::DecryptError;
use crate::crypto::unwrap::UnwrapError;
use crate::model::message::ParseError;

/// Why one record could not be turned into a row. The record goes to the dead letters.
#[derive(Debug)]
pub struct RecordError {
    /// The record's seq, when known.
    pub seq: Option<u64>,
    /// The record's msgid, when known.
    pub msgid: Option<String>,
    /// 1-based line of the input, for inputs read line by line.
    pub line: Option<u64>,
    /// What went wrong.
    pub kind: RecordErrorKind,
}

/// The failing step of a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordErrorKind {
    /// The input entry is not a valid `chatdata` record (malformed JSON, missing field).
    #[error("malformed chatdata record: {0}")]
    Malformed(String),
    /// The input entry is longer than the reader's limit (`--max-record-bytes`); only its
    /// beginning is kept.
    #[error("entry longer than {limit} bytes (raise --max-record-bytes to read it)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The input could not be read on from here (truncated gzip, trailing garbage, I/O error).
    #[error("{0}")]
    Damaged(String),
    /// `encrypt_random_key` could not be unwrapped.
    #[error("{0}")]
    Unwrap(#[from] UnwrapError),
    /// `DecryptData` failed.
    #[error("DecryptData failed (SDK {code}): {0}", code = .0.code())]
    Decrypt(#[from] DecryptError),
    /// The plaintext is not a chat message (not UTF-8 / not JSON): with no MAC in the cipher, a
    /// wrong key yields garbage about once in 256, so this is treated as a decrypt failure.
    #[error("decrypted plaintext is not a chat message: {0}")]
    Plaintext(#[from] ParseError),
}

impl RecordErrorKind {
    /// A short stable name for the error class, used in dead letters and summaries.
    pub fn name(&self) -> &'static str {
        match self {
            RecordErrorKind::Malformed(_) => "malformed_record",
            RecordErrorKind::TooLarge { .. } => "record_too_large",
            RecordErrorKind::Damaged(_) => "input_damaged",
            RecordErrorKind::Unwrap(e) => e.kind(),
            RecordErrorKind::Decrypt(e) => e.kind(),
            RecordErrorKind::Plaintext(_) => "plaintext_not_json",
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(s) => write!(f, "record seq {s}")?,
            None => write!(f, "record seq ?")?,
        }
        if let Some(m) = &self.msgid {
            write!(f, " msgid {m}")?;
        }
        if let Some(l) = self.line {
            write!(f, " (input line {l})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}
