//! Records from `GetChatData` dumps: a response object (`{"chatdata":[...]}`), several of them,
//! a bare JSON array of `chatdata` records, or JSON Lines of single records (or of whole
//! responses); plain or gzip; a file or stdin (`-`); a leading UTF-8 BOM is skipped.
//!
//! Nothing is held whole: JSON Lines are read line by line, and a multi-line document is split
//! into its records by a small structural scanner (strings and brackets only), so memory is
//! bounded by the largest record, itself bounded by [`ReaderOptions::max_record_bytes`].
//!
//! Damage is contained to what it touches. A bad line of JSON Lines (invalid UTF-8, bad JSON,
//! too long) becomes its own dead letter naming the line, and reading goes on at the next line.
//! A bad record inside a document becomes its own dead letter. An input that cannot be read on
//! (a truncated gzip, garbage after a gzip stream, an I/O error) ends the input: every record
//! before the fault is delivered, then one dead letter names the byte offset of the fault, and
//! [`DamageReport`] tells the caller so that it can exit with a status that says so.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::error::{RecordError, RecordErrorKind};
use crate::model::record::{identify, EncryptedRecord};

/// A failure to open the input (not a bad record, not damage found while reading).
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

/// The default of [`ReaderOptions::max_record_bytes`]: far above any real record, low enough
/// that a runaway line cannot exhaust memory.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 8 << 20;

/// How a dump is read.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// A line (JSON Lines) or a record (documents) longer than this is dead-lettered, naming
    /// its line, with its first `max_record_bytes` bytes kept; it is never held whole.
    pub max_record_bytes: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// The raw input kept with a dead letter: the whole entry up to the record limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawInput {
    /// The text; base64 of the bytes when they are not UTF-8 (see [`Self::base64`]).
    pub text: String,
    /// Whether `text` is the standard base64 of the bytes (the input was not UTF-8).
    pub base64: bool,
    /// Whether the entry was longer than the limit and `text` holds only its beginning.
    pub truncated: bool,
}

impl RawInput {
    /// Whole UTF-8 text.
    pub fn text(text: impl Into<String>) -> Self {
        RawInput {
            text: text.into(),
            base64: false,
            truncated: false,
        }
    }

    /// Bytes as they were read: text when UTF-8, base64 otherwise (lossless either way).
    pub fn bytes(bytes: Vec<u8>, truncated: bool) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => RawInput {
                text,
                base64: false,
                truncated,
            },
            Err(e) => {
                let bytes = e.into_bytes();
                // A cut in the middle of a UTF-8 sequence is not a reason to switch encoding.
                if truncated {
                    if let Err(u) = std::str::from_utf8(&bytes) {
                        if u.error_len().is_none() {
                            let mut bytes = bytes;
                            bytes.truncate(u.valid_up_to());
                            return RawInput {
                                text: String::from_utf8(bytes).expect("valid up to here"),
                                base64: false,
                                truncated,
                            };
                        }
                    }
                }
                RawInput {
                    text: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        &bytes,
                    ),
                    base64: true,
                    truncated,
                }
            }
        }
    }
}

impl From<String> for RawInput {
    fn from(text: String) -> Self {
        RawInput::text(text)
    }
}

impl From<&str> for RawInput {
    fn from(text: &str) -> Self {
        RawInput::text(text)
    }
}

impl std::ops::Deref for RawInput {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// An input entry that is not a usable record: the error, and the raw input to keep with it.
#[derive(Debug)]
pub struct Rejected {
    /// What is wrong, naming the entry.
    pub error: RecordError,
    /// The entry as it appeared in the input (up to the record limit; see [`RawInput`]).
    pub raw: RawInput,
}

/// Whether the input was found damaged while reading (shared with the caller, who keeps a
/// clone while the reader is moved into a source).
#[derive(Debug, Clone, Default)]
pub struct DamageReport(Arc<Mutex<Option<String>>>);

impl DamageReport {
    /// What was damaged and where, once the reader met damage.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, what: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(what);
    }
}

/// Counts the bytes a gzip decoder takes from the file, to name the offset of a fault.
struct Counting<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.consumed.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt)
    }
}

const CHUNK: usize = 1 << 16;

/// The decompressed input with its position (byte offset and 1-based line).
struct Bytes {
    input: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    pos: usize,
    offset: u64,
    line: u64,
    eof: bool,
}

/// One JSON value's text as captured by the scanner.
struct Capture {
    bytes: Vec<u8>,
    /// Longer than the limit: `bytes` holds its beginning.
    truncated: bool,
    /// The line it starts on.
    line: u64,
    /// False when the input ended inside it.
    complete: bool,
}

impl Bytes {
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos < self.buf.len() {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        self.buf.resize(CHUNK, 0);
        self.pos = 0;
        loop {
            match self.input.read(&mut self.buf) {
                Ok(0) => {
                    self.buf.clear();
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.buf.truncate(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.clear();
                    return Err(e);
                }
            }
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(if self.fill()? {
            Some(self.buf[self.pos])
        } else {
            None
        })
    }

    fn bump(&mut self) -> io::Result<Option<u8>> {
        let b = self.peek()?;
        if let Some(b) = b {
            self.pos += 1;
            self.offset += 1;
            if b == b'\n' {
                self.line += 1;
            }
        }
        Ok(b)
    }

    fn skip_ws(&mut self) -> io::Result<()> {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek()? {
            self.bump()?;
        }
        Ok(())
    }

    /// Skips a UTF-8 byte order mark at the start of the input.
    fn skip_bom(&mut self) -> io::Result<()> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        if self.offset == 0 && self.fill()? && self.buf[self.pos..].starts_with(BOM) {
            self.pos += BOM.len();
            self.offset += BOM.len() as u64;
        }
        Ok(())
    }

    /// The next line without its line end, at most `max` bytes of it kept (the rest is read
    /// and dropped): `(bytes, truncated, ended_by_newline)`, or `None` at the end of input.
    fn line(&mut self, max: usize) -> io::Result<Option<(Vec<u8>, bool, bool)>> {
        let mut out = Vec::new();
        let mut truncated = false;
        let mut any = false;
        loop {
            if !self.fill()? {
                return Ok(any.then_some((out, truncated, false)));
            }
            any = true;
            let avail = &self.buf[self.pos..];
            let newline = avail.iter().position(|&b| b == b'\n');
            let content = &avail[..newline.unwrap_or(avail.len())];
            let room = max.saturating_sub(out.len());
            if content.len() > room {
                truncated = true;
            }
            out.extend_from_slice(&content[..content.len().min(room)]);
            let taken = newline.map_or(avail.len(), |i| i + 1);
            self.pos += taken;
            self.offset += taken as u64;
            if newline.is_some() {
                self.line += 1;
                return Ok(Some((out, truncated, true)));
            }
        }
    }

    /// Like [`Self::line`], but a line longer than `max` is not read on: its first `max` bytes
    /// come back with `over` set and the rest stays unread (see [`Self::skip_line`]).
    /// `(bytes, over)`, or `None` at the end of input.
    fn line_or_prefix(&mut self, max: usize) -> io::Result<Option<(Vec<u8>, bool)>> {
        let mut out = Vec::new();
        let mut any = false;
        loop {
            if !self.fill()? {
                return Ok(any.then_some((out, false)));
            }
            any = true;
            let avail = &self.buf[self.pos..];
            let newline = avail.iter().position(|&b| b == b'\n');
            let content = &avail[..newline.unwrap_or(avail.len())];
            let room = max.saturating_sub(out.len());
            if content.len() > room {
                out.extend_from_slice(&content[..room]);
                self.pos += room;
                self.offset += room as u64;
                return Ok(Some((out, true)));
            }
            out.extend_from_slice(content);
            let taken = newline.map_or(avail.len(), |i| i + 1);
            self.pos += taken;
            self.offset += taken as u64;
            if newline.is_some() {
                self.line += 1;
                return Ok(Some((out, false)));
            }
        }
    }

    /// Drops the rest of the current line, its newline included.
    fn skip_line(&mut self) -> io::Result<()> {
        self.line(0).map(drop)
    }

    /// Puts a line read by [`Self::line`] back in front of the input.
    fn unread_line(&mut self, line: &[u8], newline: bool) {
        let mut v = line.to_vec();
        if newline {
            v.push(b'\n');
            self.line -= 1;
        }
        self.offset -= v.len() as u64;
        v.extend_from_slice(&self.buf[self.pos..]);
        self.buf = v;
        self.pos = 0;
    }

    /// Reads one JSON value (after whitespace) by its structure only: strings, escapes and
    /// bracket depth; keeps at most `max` bytes of it.
    fn capture(&mut self, max: usize) -> io::Result<Capture> {
        let mut cap = Capture {
            bytes: Vec::new(),
            truncated: false,
            line: self.line,
            complete: false,
        };
        let first = self.peek()?;
        let scalar = !matches!(first, Some(b'"' | b'{' | b'['));
        let (mut depth, mut in_str, mut esc) = (0usize, false, false);
        loop {
            let Some(b) = self.peek()? else {
                return Ok(cap);
            };
            if scalar
                && !cap.bytes.is_empty()
                && matches!(b, b',' | b']' | b'}' | b':' | b' ' | b'\t' | b'\r' | b'\n')
            {
                cap.complete = true;
                return Ok(cap);
            }
            self.bump()?;
            if cap.bytes.len() < max {
                cap.bytes.push(b);
            } else {
                cap.truncated = true;
            }
            if scalar {
                continue;
            }
            if in_str {
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                    if depth == 0 {
                        cap.complete = true;
                        return Ok(cap);
                    }
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        cap.complete = true;
                        return Ok(cap);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Streams [`EncryptedRecord`]s from a dump, in input order.
pub struct DumpReader {
    bytes: Bytes,
    path: PathBuf,
    mode: Mode,
    max: usize,
    /// Bytes taken from a gzip file so far (for the offset of damage), when gzip.
    compressed: Option<Arc<AtomicU64>>,
    damage: DamageReport,
    /// A page on one line of JSON Lines, too long to hold, is being streamed: back to lines
    /// once it ends.
    lines_after_object: bool,
    pending: VecDeque<Result<EncryptedRecord, Rejected>>,
    /// Pages whose `errcode` was not 0: (errcode, errmsg).
    pub page_errors: Vec<(i64, String)>,
}

/// Where the reader is in the input.
enum Mode {
    /// Not decided yet: the first bytes tell.
    Start,
    /// One JSON value per line.
    Lines,
    /// Between top-level values of a document.
    Top,
    /// Inside a top-level array: its elements are records (or pages).
    Array,
    /// Inside a top-level object, between members.
    Object(Obj),
    /// Inside the `chatdata` array of a page.
    Chatdata(Obj),
    Done,
}

/// A top-level object being read.
struct Obj {
    /// Its text so far while it may still be a single record; `None` once it is a page.
    head: Option<Vec<u8>>,
    head_truncated: bool,
    line: u64,
    errcode: i64,
    errmsg: String,
}

impl DumpReader {
    /// Opens a file (`-` = stdin). Gzip is detected by its magic bytes, whatever the name.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        Self::open_with(path, ReaderOptions::default())
    }

    /// [`Self::open`] with options.
    pub fn open_with(path: &Path, options: ReaderOptions) -> Result<Self, InputError> {
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
        if is_gzip {
            let consumed = Arc::new(AtomicU64::new(0));
            let counted = Counting {
                inner: buffered,
                consumed: consumed.clone(),
            };
            let input = Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(counted),
            ));
            let mut reader = Self::from_reader(input, path).with_options(options);
            reader.compressed = Some(consumed);
            Ok(reader)
        } else {
            Ok(Self::from_reader(Box::new(buffered), path).with_options(options))
        }
    }

    /// Reads from any buffered reader; `path` only names it in errors.
    pub fn from_reader(input: Box<dyn BufRead + Send>, path: &Path) -> Self {
        DumpReader {
            bytes: Bytes {
                input,
                buf: Vec::new(),
                pos: 0,
                offset: 0,
                line: 1,
                eof: false,
            },
            path: path.to_owned(),
            mode: Mode::Start,
            max: DEFAULT_MAX_RECORD_BYTES,
            compressed: None,
            damage: DamageReport::default(),
            lines_after_object: false,
            pending: VecDeque::new(),
            page_errors: Vec::new(),
        }
    }

    /// Sets the options.
    pub fn with_options(mut self, options: ReaderOptions) -> Self {
        self.max = options.max_record_bytes.max(1);
        self
    }

    /// A handle that tells, after reading, whether the input was damaged.
    pub fn damage_report(&self) -> DamageReport {
        self.damage.clone()
    }

    fn reject(&mut self, line: Option<u64>, kind: RecordErrorKind, raw: RawInput) {
        self.pending.push_back(Err(Rejected {
            error: RecordError {
                seq: None,
                msgid: None,
                line,
                kind,
            },
            raw,
        }));
    }

    fn malformed(&mut self, line: u64, what: String, raw: RawInput) {
        self.reject(Some(line), RecordErrorKind::Malformed(what), raw);
    }

    fn oversized(&mut self, line: u64, raw: Vec<u8>) {
        let limit = self.max;
        self.reject(
            Some(line),
            RecordErrorKind::TooLarge { limit },
            RawInput::bytes(raw, true),
        );
    }

    /// Queues the records of one top-level JSON value (a page or a single record).
    fn push_value(&mut self, v: Value, line: Option<u64>) {
        let is_page = v.get("chatdata").is_some();
        if !is_page {
            self.push_record(v, line);
            return;
        }
        let errcode = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        let errmsg = v.get("errmsg").and_then(Value::as_str).unwrap_or_default();
        self.page_error(errcode, errmsg.to_owned());
        match v {
            Value::Object(mut map) => match map.remove("chatdata") {
                Some(Value::Array(items)) => {
                    for item in items {
                        self.push_record(item, line);
                    }
                }
                Some(other) => self.reject(
                    line,
                    RecordErrorKind::Malformed(format!(
                        "\"chatdata\" is not an array but {}",
                        json_kind(&other)
                    )),
                    RawInput::text(other.to_string()),
                ),
                None => {}
            },
            _ => unreachable!("only objects have a chatdata key"),
        }
    }

    fn page_error(&mut self, errcode: i64, errmsg: String) {
        if errcode != 0 {
            tracing::warn!(errcode, %errmsg, "dump holds a GetChatData error response");
            self.page_errors.push((errcode, errmsg));
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
                raw: RawInput::text(v.to_string()),
            }
        });
        self.pending.push_back(item);
    }

    /// One line of JSON Lines.
    fn line(&mut self, no: u64, bytes: Vec<u8>, truncated: bool) {
        if truncated {
            return self.oversized(no, bytes);
        }
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t.trim(),
            Err(e) => {
                let what = format!(
                    "line is not UTF-8 (invalid byte at column {})",
                    e.valid_up_to() + 1
                );
                return self.malformed(no, what, RawInput::bytes(bytes, false));
            }
        };
        if text.is_empty() {
            return;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(v) => self.push_value(v, Some(no)),
            Err(e) => {
                let raw = RawInput::text(text);
                self.malformed(no, format!("invalid JSON: {e}"), raw)
            }
        }
    }

    /// One element of a document: a record (`as_record`) or a record or page.
    fn element(&mut self, cap: Capture, as_record: bool) {
        if cap.truncated {
            return self.oversized(cap.line, cap.bytes);
        }
        if !cap.complete {
            let what = "the input ends inside this record (truncated?)".to_string();
            return self.malformed(cap.line, what, RawInput::bytes(cap.bytes, false));
        }
        match serde_json::from_slice::<Value>(&cap.bytes) {
            Ok(v) if as_record => self.push_record(v, Some(cap.line)),
            Ok(v) => self.push_value(v, Some(cap.line)),
            Err(e) => {
                let what = format!(
                    "invalid JSON at line {}: {e}",
                    cap.line + e.line().saturating_sub(1) as u64
                );
                self.malformed(cap.line, what, RawInput::bytes(cap.bytes, false))
            }
        }
    }

    /// A syntax error between records: the rest of the input (up to the limit) is one dead
    /// letter, since the structure cannot be found again.
    fn rest_unreadable(&mut self, what: &str) -> io::Result<()> {
        let line = self.bytes.line;
        let at = self.bytes.offset;
        let mut raw = Vec::new();
        let mut truncated = false;
        while let Some(b) = self.bytes.bump()? {
            if raw.len() < self.max {
                raw.push(b);
            } else {
                truncated = true;
            }
        }
        let what = format!(
            "invalid JSON at line {line} (byte {at}): {what}; the rest of the input is unreadable"
        );
        self.malformed(line, what, RawInput::bytes(raw, truncated));
        self.mode = Mode::Done;
        Ok(())
    }

    /// An input that cannot be read on: ends it, with one dead letter saying where.
    fn damaged(&mut self, e: io::Error) {
        let (line, offset) = (self.bytes.line, self.bytes.offset);
        let mut what = format!(
            "input {} is damaged at byte {offset} (line {line})",
            self.path.display()
        );
        if let Some(c) = &self.compressed {
            what = format!(
                "gzip input {} is damaged at byte {} of the file (byte {offset}, line {line} of its content)",
                self.path.display(),
                c.load(Ordering::Relaxed)
            );
        }
        let what = format!(
            "{what}: {e}; every record before it was read, nothing after it (repair or re-fetch the dump)"
        );
        tracing::error!("{what}");
        self.damage.set(what.clone());
        self.reject(
            Some(line),
            RecordErrorKind::Damaged(what),
            RawInput::default(),
        );
        self.mode = Mode::Done;
    }

    /// Reads on until at least one entry is queued or the mode changes.
    fn step(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Done => {}
            Mode::Start => {
                self.bytes.skip_bom()?;
                self.bytes.skip_ws()?;
                match self.bytes.peek()? {
                    None => {}
                    Some(b'[') => self.mode = Mode::Top,
                    Some(b'{') => {
                        let no = self.bytes.line;
                        let Some((line, over)) = self.bytes.line_or_prefix(self.max)? else {
                            return Ok(());
                        };
                        if over {
                            // Too long to try whole: JSON Lines, whose step below decides.
                            self.bytes.unread_line(&line, false);
                            self.mode = Mode::Lines;
                            return Ok(());
                        }
                        let nl = self.bytes.line > no;
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim();
                        let parses = serde_json::from_str::<Value>(text).is_ok();
                        let opens = text.ends_with(['{', '[', ',', ':']);
                        if !parses && opens {
                            self.bytes.unread_line(&line, nl);
                            self.mode = Mode::Top;
                        } else {
                            self.mode = Mode::Lines;
                            self.line(no, line, false);
                        }
                    }
                    Some(_) => self.mode = Mode::Lines,
                }
            }
            Mode::Lines => {
                let no = self.bytes.line;
                let Some((line, over)) = self.bytes.line_or_prefix(self.max)? else {
                    return Ok(());
                };
                self.mode = Mode::Lines;
                if !over {
                    self.line(no, line, false);
                    return Ok(());
                }
                let start = line.iter().position(|b| !b.is_ascii_whitespace());
                let is_page = start.is_some_and(|i| line[i] == b'{')
                    && line.windows(10).any(|w| w == b"\"chatdata\"");
                if !is_page {
                    self.bytes.skip_line()?;
                    self.line(no, line, true);
                    return Ok(());
                }
                // A whole page on one line, longer than a record may be: streamed like a
                // pretty-printed page, then back to lines.
                self.bytes.unread_line(&line, false);
                self.bytes.skip_ws()?;
                self.bytes.bump()?;
                self.lines_after_object = true;
                self.mode = Mode::Object(Obj {
                    head: Some(b"{".to_vec()),
                    head_truncated: false,
                    line: no,
                    errcode: 0,
                    errmsg: String::new(),
                });
            }
            Mode::Top if self.lines_after_object => {
                self.lines_after_object = false;
                self.mode = Mode::Lines;
            }
            Mode::Top => {
                self.bytes.skip_ws()?;
                match self.bytes.peek()? {
                    None => {}
                    Some(b'[') => {
                        self.bytes.bump()?;
                        self.mode = Mode::Array;
                    }
                    Some(b'{') => {
                        let line = self.bytes.line;
                        self.bytes.bump()?;
                        self.mode = Mode::Object(Obj {
                            head: Some(b"{".to_vec()),
                            head_truncated: false,
                            line,
                            errcode: 0,
                            errmsg: String::new(),
                        });
                    }
                    Some(_) => self.rest_unreadable("expected `{` or `[`")?,
                }
            }
            Mode::Array => {
                self.bytes.skip_ws()?;
                match self.bytes.peek()? {
                    None => self.rest_unreadable("the input ends inside an array")?,
                    Some(b']') => {
                        self.bytes.bump()?;
                        self.mode = Mode::Top;
                    }
                    Some(b',') => {
                        self.bytes.bump()?;
                        self.mode = Mode::Array;
                    }
                    Some(_) => {
                        let cap = self.bytes.capture(self.max)?;
                        self.mode = Mode::Array;
                        self.element(cap, false);
                    }
                }
            }
            Mode::Chatdata(obj) => {
                self.bytes.skip_ws()?;
                match self.bytes.peek()? {
                    None => self.rest_unreadable("the input ends inside \"chatdata\"")?,
                    Some(b']') => {
                        self.bytes.bump()?;
                        self.mode = Mode::Object(obj);
                    }
                    Some(b',') => {
                        self.bytes.bump()?;
                        self.mode = Mode::Chatdata(obj);
                    }
                    Some(_) => {
                        let cap = self.bytes.capture(self.max)?;
                        self.mode = Mode::Chatdata(obj);
                        self.element(cap, true);
                    }
                }
            }
            Mode::Object(obj) => self.object_member(obj)?,
        }
        Ok(())
    }

    fn object_member(&mut self, mut obj: Obj) -> io::Result<()> {
        self.bytes.skip_ws()?;
        match self.bytes.peek()? {
            None => {
                return self.rest_unreadable("the input ends inside an object");
            }
            Some(b'}') => {
                self.bytes.bump()?;
                self.mode = Mode::Top;
                match obj.head {
                    None => self.page_error(obj.errcode, obj.errmsg),
                    Some(mut head) => {
                        head.push(b'}');
                        let cap = Capture {
                            bytes: head,
                            truncated: obj.head_truncated,
                            line: obj.line,
                            complete: true,
                        };
                        self.element(cap, false);
                    }
                }
                return Ok(());
            }
            Some(b',') => {
                self.bytes.bump()?;
                obj.append(b",", self.max);
            }
            Some(b'"') => {
                let key = self.bytes.capture(self.max)?;
                self.bytes.skip_ws()?;
                if self.bytes.peek()? != Some(b':') {
                    return self.rest_unreadable("expected `:` after a key");
                }
                self.bytes.bump()?;
                self.bytes.skip_ws()?;
                let name: Option<String> = serde_json::from_slice(&key.bytes).ok();
                if name.as_deref() == Some("chatdata") {
                    obj.head = None;
                    if self.bytes.peek()? == Some(b'[') {
                        self.bytes.bump()?;
                        self.mode = Mode::Chatdata(obj);
                        return Ok(());
                    }
                    let cap = self.bytes.capture(self.max)?;
                    let kind = serde_json::from_slice::<Value>(&cap.bytes)
                        .map_or("invalid JSON", |v| json_kind(&v));
                    let what = format!("\"chatdata\" is not an array but {kind}");
                    self.malformed(cap.line, what, RawInput::bytes(cap.bytes, cap.truncated));
                } else {
                    let value = self.bytes.capture(self.max)?;
                    match name.as_deref() {
                        Some("errcode") => {
                            obj.errcode = serde_json::from_slice(&value.bytes).unwrap_or(0)
                        }
                        Some("errmsg") => {
                            obj.errmsg = serde_json::from_slice(&value.bytes).unwrap_or_default()
                        }
                        _ => {}
                    }
                    obj.append(&key.bytes, self.max);
                    obj.append(b":", self.max);
                    obj.append(&value.bytes, self.max);
                    obj.head_truncated |= key.truncated || value.truncated;
                }
            }
            Some(_) => return self.rest_unreadable("expected a key or `}`"),
        }
        self.mode = Mode::Object(obj);
        Ok(())
    }

    /// Fills `pending` with at least one item, or returns false at the end of input.
    fn fill(&mut self) -> bool {
        while self.pending.is_empty() {
            if matches!(self.mode, Mode::Done) {
                return false;
            }
            if let Err(e) = self.step() {
                self.damaged(e);
            }
        }
        true
    }
}

impl Obj {
    fn append(&mut self, bytes: &[u8], max: usize) {
        if let Some(head) = &mut self.head {
            let room = max.saturating_sub(head.len());
            if bytes.len() > room {
                self.head_truncated = true;
            }
            head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
}

impl Iterator for DumpReader {
    /// Kept a `Result` of [`InputError`] for callers; reading itself no longer fails (damage
    /// becomes a dead letter and ends the input).
    type Item = Result<Result<EncryptedRecord, Rejected>, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.fill() {
            self.pending.pop_front().map(Ok)
        } else {
            None
        }
    }
}

/// What a JSON value is, in words, for errors that say what arrived instead of a record.
pub(crate) fn json_kind(v: &Value) -> &'static str {
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
        assert_eq!(bad.raw.text, "{not json");
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
    fn truncated_document_keeps_every_record_before_the_cut() {
        let text = format!("{{\n\"chatdata\":[{REC}]}}\n{{\n\"chatdata\": [ {REC}");
        let got = read(&text);
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_ok());
        let bad = got[2].as_ref().unwrap_err();
        assert!(
            bad.error.to_string().contains("ends inside"),
            "{}",
            bad.error
        );
    }

    fn seqs(got: &[Result<EncryptedRecord, Rejected>]) -> Vec<Option<u64>> {
        got.iter().map(|r| r.as_ref().ok().map(|r| r.seq)).collect()
    }

    fn rec(seq: u64) -> String {
        REC.replace("\"seq\":1", &format!("\"seq\":{seq}"))
    }

    #[test]
    fn bom_is_skipped_for_lines_and_documents() {
        let lines = format!("\u{feff}{}\n{}\n", rec(1), rec(2));
        assert_eq!(seqs(&read(&lines)), [Some(1), Some(2)]);
        let page = format!(
            "\u{feff}{{\n \"chatdata\": [\n{},\n{}\n]\n}}\n",
            rec(1),
            rec(2)
        );
        assert_eq!(seqs(&read(&page)), [Some(1), Some(2)]);
    }

    #[test]
    fn bare_array_of_records_is_read() {
        let one_line = format!("[{},{}]\n", rec(1), rec(2));
        assert_eq!(seqs(&read(&one_line)), [Some(1), Some(2)]);
        let pretty = format!("[\n  {},\n  {}\n]\n", rec(1), rec(2));
        let got = read(&pretty);
        assert_eq!(seqs(&got), [Some(1), Some(2)]);
    }

    #[test]
    fn syntax_error_in_a_pretty_page_costs_only_that_record() {
        let text = format!(
            "{{\n \"errcode\": 0,\n \"chatdata\": [\n  {},\n  {{\"seq\":2,,\"msgid\":\"m2\"}},\n  {}\n ]\n}}\n",
            rec(1),
            rec(3)
        );
        let got = read(&text);
        assert_eq!(seqs(&got), [Some(1), None, Some(3)]);
        let bad = got[1].as_ref().unwrap_err();
        assert_eq!(bad.error.line, Some(5));
        assert_eq!(bad.raw.text, "{\"seq\":2,,\"msgid\":\"m2\"}");
        assert!(!bad.raw.truncated);
    }

    #[test]
    fn invalid_utf8_line_is_its_own_dead_letter_kept_losslessly() {
        let mut bytes = format!("{}\n", rec(1)).into_bytes();
        bytes.extend_from_slice(b"{\"seq\":2,\"msgid\":\"\xff\xfe\"}\n");
        bytes.extend_from_slice(format!("{}\n", rec(3)).as_bytes());
        let input = Box::new(io::Cursor::new(bytes));
        let got: Vec<_> = DumpReader::from_reader(input, Path::new("t"))
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(seqs(&got), [Some(1), None, Some(3)]);
        let bad = got[1].as_ref().unwrap_err();
        assert_eq!(bad.error.line, Some(2));
        assert!(bad.error.to_string().contains("not UTF-8"), "{}", bad.error);
        assert!(bad.raw.base64);
        let back =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &bad.raw.text)
                .unwrap();
        assert_eq!(back, b"{\"seq\":2,\"msgid\":\"\xff\xfe\"}");
    }

    fn gzip(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    fn read_file(bytes: &[u8]) -> (Vec<Result<EncryptedRecord, Rejected>>, Option<String>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dump.gz");
        std::fs::write(&p, bytes).unwrap();
        let reader = DumpReader::open(&p).unwrap();
        let damage = reader.damage_report();
        let got = reader.map(|r| r.unwrap()).collect();
        (got, damage.get())
    }

    #[test]
    fn truncated_gzip_keeps_records_before_the_fault_and_names_the_offset() {
        let text: String = (1..=200).map(|s| format!("{}\n", rec(s))).collect();
        let mut gz = gzip(&text);
        let cut = gz.len() - 20;
        gz.truncate(cut);
        let (got, damage) = read_file(&gz);
        let last = got.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.error.kind.name(), "input_damaged");
        let ok: Vec<_> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(
            ok.len() >= 150,
            "only {} records before the fault",
            ok.len()
        );
        assert_eq!(ok.last().unwrap().seq, ok.len() as u64);
        let damage = damage.expect("damage reported");
        assert!(
            damage.contains(&format!("byte {cut} of the file")),
            "{damage}"
        );
    }

    #[test]
    fn trailing_garbage_after_gzip_keeps_every_record() {
        let text: String = (1..=5).map(|s| format!("{}\n", rec(s))).collect();
        let mut gz = gzip(&text);
        let end = gz.len();
        gz.extend_from_slice(b"garbage after the stream");
        let (got, damage) = read_file(&gz);
        assert_eq!(
            seqs(&got),
            [Some(1), Some(2), Some(3), Some(4), Some(5), None]
        );
        let damage = damage.expect("damage reported");
        assert!(damage.contains("byte"), "{damage} (stream ends at {end})");
    }

    /// An endless line, produced on the fly: the reader must not try to hold it.
    struct Endless(u64);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                let tail = b"\"}\n";
                buf[..tail.len()].copy_from_slice(tail);
                self.0 = u64::MAX;
                return Ok(tail.len());
            }
            if self.0 == u64::MAX {
                return Ok(0);
            }
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].fill(b'a');
            self.0 -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn line_over_the_limit_is_a_dead_letter_with_its_line_and_reading_goes_on() {
        let head = format!("{}\n{{\"seq\":2,\"x\":\"", rec(1));
        let tail = format!("{}\n", rec(3));
        // 256 MiB in the middle line, limit 1 MiB.
        let input = io::Cursor::new(head.into_bytes())
            .chain(Endless(256 << 20))
            .chain(io::Cursor::new(tail.into_bytes()));
        let reader = DumpReader::from_reader(Box::new(io::BufReader::new(input)), Path::new("t"))
            .with_options(ReaderOptions {
                max_record_bytes: 1 << 20,
            });
        let got: Vec<_> = reader.map(|r| r.unwrap()).collect();
        assert_eq!(seqs(&got), [Some(1), None, Some(3)]);
        let bad = got[1].as_ref().unwrap_err();
        assert_eq!(bad.error.line, Some(2));
        assert_eq!(bad.error.kind.name(), "record_too_large");
        assert!(bad.raw.truncated);
        assert_eq!(bad.raw.text.len(), 1 << 20);
    }

    #[test]
    fn a_page_on_one_line_longer_than_the_limit_is_streamed() {
        let page: Vec<String> = (2..=40).map(rec).collect();
        let text = format!(
            "{}\n{{\"errcode\":0,\"errmsg\":\"ok\",\"chatdata\":[{}]}}\n{}\n",
            rec(1),
            page.join(","),
            rec(41)
        );
        let input = Box::new(io::Cursor::new(text.into_bytes()));
        let got: Vec<_> = DumpReader::from_reader(input, Path::new("t"))
            .with_options(ReaderOptions {
                max_record_bytes: 500,
            })
            .map(|r| r.unwrap())
            .collect();
        let want: Vec<_> = (1..=41).map(Some).collect();
        assert_eq!(seqs(&got), want);
        // Also as the first line.
        let text = format!("{{\"chatdata\":[{}]}}\n{}\n", page.join(","), rec(41));
        let input = Box::new(io::Cursor::new(text.into_bytes()));
        let got: Vec<_> = DumpReader::from_reader(input, Path::new("t"))
            .with_options(ReaderOptions {
                max_record_bytes: 500,
            })
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(seqs(&got), want[1..]);
    }

    #[test]
    fn record_over_the_limit_in_a_document_is_a_dead_letter() {
        let big = format!("{{\"seq\":2,\"x\":\"{}\"}}", "a".repeat(5000));
        let text = format!(
            "{{\n\"chatdata\": [\n{},\n{big},\n{}\n]}}\n",
            rec(1),
            rec(3)
        );
        let input = Box::new(io::Cursor::new(text.into_bytes()));
        let got: Vec<_> = DumpReader::from_reader(input, Path::new("t"))
            .with_options(ReaderOptions {
                max_record_bytes: 1000,
            })
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(seqs(&got), [Some(1), None, Some(3)]);
        let bad = got[1].as_ref().unwrap_err();
        assert_eq!(bad.error.line, Some(4));
        assert!(bad.raw.truncated && bad.raw.text.len() == 1000);
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
