//! Evidence export (`wecom-archive export`): one corp's archived conversations as transcripts
//! (HTML for people, CSV and JSON Lines for tools), with the linked media copied beside them, a
//! `manifest.json` of SHA-256 hashes, and an entry in the state store's export audit log.
//!
//! ```text
//! OUT/messages/corp_id=<corp>/date=<day>/part-*.parquet   (the days --from..--to select)
//!   pass 1 (--user only)  which conversations the user sent or received a message in
//!   pass 2                per conversation: participants, time range, count; recalled msgids;
//!                         per file: its lowest seq, whether it is sorted, whether it matters
//!   pass 3                k-way merge by seq over the files that matter -> one transcript per
//!                         conversation (temporary, hashed as written) -> renamed when complete
//!   media                 each linked media file copied to EXPORT/media/ (hashed)
//!   manifest.json         written last (temporary + rename), then the audit entry
//! ```
//!
//! Memory does not grow with the number of messages: each pass streams batches, the merge holds
//! one batch per open file (files are opened when the merge reaches their lowest seq, so the
//! consecutive seq ranges that pulls write are read one at a time), and what is kept across
//! passes grows with conversations, participants, recalled messages and media files only. A user
//! with many conversations is exported in rounds of [`MAX_OPEN_TRANSCRIPTS`] open transcripts.
//!
//! A row's conversation is `model::conversation::conversation_id` of its parsed `raw_json`; a
//! `conversation_id` column, in files that have one, only lets rows of other conversations be
//! skipped without parsing them.

pub mod csv;
pub mod html;
pub mod jsonl;
pub mod manifest;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use serde::Serialize;

use crate::model::conversation::{self, ChatType};
use crate::model::message::{self, ChatMessage, MediaKind};
use crate::sink::atomic;
use crate::sink::layout;
use crate::state::{ExportAudit, MediaStatus, StateError, StateStore};
use manifest::{HashedFile, Manifest, ManifestFile};

/// Rows per batch read from a Parquet file (`raw_json` can be long: kept small).
const READ_BATCH_ROWS: usize = 1024;

/// Transcripts written at the same time; a `--user` with more conversations is exported in
/// several merge rounds (one open file each, well below the usual limit of 1024 descriptors).
pub const MAX_OPEN_TRANSCRIPTS: usize = 128;

/// The folder of copied media inside an export.
pub const MEDIA_DIR: &str = "media";

/// The manifest's file name inside an export.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What to export: one conversation, or every conversation of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// The conversation with this id (`model::conversation`'s key: a roomid, `single:a:b`, …).
    Conversation(String),
    /// Every conversation in which this userid (or external id) sent or received a message.
    User(String),
}

/// The transcript format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A self-contained web page.
    Html,
    /// RFC 4180 CSV, UTF-8 with a byte-order mark.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The name on the command line and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    /// The transcripts' file extension.
    pub fn ext(self) -> &'static str {
        self.as_str()
    }
}

/// An export's query, recorded in the manifest and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Query {
    /// The corp.
    pub corp: String,
    /// The conversation id (with `--conversation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// The user (with `--user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// First day, inclusive, in the corp's time zone.
    #[serde(serialize_with = "date_opt")]
    pub from: Option<jiff::civil::Date>,
    /// Last day, inclusive.
    #[serde(serialize_with = "date_opt")]
    pub to: Option<jiff::civil::Date>,
    /// The format.
    pub format: Format,
    /// The time zone of the days and of the transcripts' times.
    pub timezone: String,
}

fn date_opt<S: serde::Serializer>(d: &Option<jiff::civil::Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&d.to_string()),
        None => s.serialize_none(),
    }
}

impl Query {
    /// A query; `timezone` names `tz` (IANA).
    pub fn new(
        corp: &str,
        selector: Selector,
        from: Option<jiff::civil::Date>,
        to: Option<jiff::civil::Date>,
        format: Format,
        timezone: &str,
    ) -> Self {
        let (conversation, user) = match selector {
            Selector::Conversation(c) => (Some(c), None),
            Selector::User(u) => (None, Some(u)),
        };
        Query {
            corp: corp.to_owned(),
            conversation,
            user,
            from,
            to,
            format,
            timezone: timezone.to_owned(),
        }
    }

    fn selector(&self) -> Selector {
        match (&self.conversation, &self.user) {
            (Some(c), _) => Selector::Conversation(c.clone()),
            (None, Some(u)) => Selector::User(u.clone()),
            (None, None) => Selector::Conversation(String::new()),
        }
    }
}

/// Where an export reads and writes.
#[derive(Debug, Clone)]
pub struct ExportTarget {
    /// The output root of `pull`/`demo`.
    pub out: PathBuf,
    /// Its state database (media states, audit log).
    pub state_path: PathBuf,
    /// The time zone of the `date=` partitions and of the transcripts.
    pub tz: jiff::tz::TimeZone,
    /// The export folder (missing or empty).
    pub to_dir: PathBuf,
}

/// One exported conversation.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedConversation {
    /// The conversation id.
    pub conversation_id: String,
    /// `group`, `single` or `single_external`.
    pub chat_type: Option<&'static str>,
    /// Its transcript, relative to the export folder.
    pub path: String,
    /// Messages in it.
    pub messages: u64,
}

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The export folder.
    pub export_dir: PathBuf,
    /// Messages exported.
    pub messages: u64,
    /// The transcripts.
    pub conversations: Vec<ExportedConversation>,
    /// Media files copied into the export.
    pub media_files: u64,
    /// Media the messages reference that were not downloaded (run `wecom-archive media`).
    pub media_missing: u64,
    /// SHA-256 of `manifest.json`.
    pub manifest_sha256: String,
    /// The audit log entry.
    pub audit_id: i64,
}

/// Why an export failed; each names the corp, file or folder and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No messages folder for the corp.
    #[error(
        "corp {corp}: no archived messages at {}; run `wecom-archive pull` (or `demo`) for this \
         corp first, or check --corp and the output folder",
        path.display()
    )]
    UnknownCorp {
        /// The corp.
        corp: String,
        /// The folder that is missing.
        path: PathBuf,
    },
    /// The export folder holds files.
    #[error(
        "export folder {} is not empty; give a new folder (it is created) or an empty one: an \
         export never mixes with other files",
        path.display()
    )]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// `--from` is after `--to`.
    #[error("--from {from} is after --to {to}: no day can match")]
    BadRange {
        /// First day.
        from: jiff::civil::Date,
        /// Last day.
        to: jiff::civil::Date,
    },
    /// Nothing matched.
    #[error("{0}")]
    NothingMatched(String),
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A Parquet file could not be read.
    #[error("reading {}: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The error.
        source: parquet::errors::ParquetError,
    },
    /// A file is not of this release's messages schema.
    #[error("{}: {what}; run `wecom-archive migrate` on the output first", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// A row's `raw_json` could not be parsed.
    #[error("{} seq {seq}: raw_json does not parse: {source}", path.display())]
    Row {
        /// The file.
        path: PathBuf,
        /// The row's seq.
        seq: i64,
        /// Why.
        source: message::ParseError,
    },
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

fn pq(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> ExportError + '_ {
    move |source| ExportError::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// A transcript's file name (without extension) for a conversation id: every byte outside
/// `[A-Za-z0-9_-]` is written `%XX` (upper-case hex), so the name has no `/`, `:`, `.` or
/// space, is the same on every system, and two ids never share a name. A name longer than 160
/// bytes keeps its first 120 and ends with `~` and the first 16 hex digits of the id's SHA-256.
pub fn transcript_stem(conversation_id: &str) -> String {
    let mut s = String::with_capacity(conversation_id.len());
    for b in conversation_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if s.len() > 160 {
        let mut cut = 120;
        // Never split a `%XX`.
        while s.as_bytes()[cut - 1] == b'%' || s.as_bytes()[cut - 2] == b'%' {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('~');
        s.push_str(&manifest::sha256_hex(conversation_id.as_bytes())[..16]);
    }
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// One conversation as pass 2 found it.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    /// The conversation id.
    pub id: String,
    /// Its chat type (of its first message).
    pub chat_type: Option<ChatType>,
    /// Everyone who sent or received a message in it, sorted.
    pub participants: BTreeSet<String>,
    /// Earliest and latest `msgtime`, ms since the epoch (UTC).
    pub first_ms: Option<i64>,
    /// Latest `msgtime`.
    pub last_ms: Option<i64>,
    /// Its messages.
    pub messages: u64,
}

/// A media file a message links to.
#[derive(Debug, Clone)]
pub struct LinkedMedia {
    /// What it is.
    pub kind: MediaKind,
    /// Item of a `mixed`/`chatrecord` message (`None`: the message's own).
    pub item_index: Option<u32>,
    /// The media id.
    pub sdkfileid: String,
    /// The copy inside the export, relative to it (`media/<sha256>.<ext>`); `None` when the
    /// file was not downloaded.
    pub path: Option<String>,
}

/// One message as the transcript writers see it.
#[derive(Debug)]
pub struct ExportMessage<'a> {
    /// Its seq.
    pub seq: i64,
    /// The parsed message.
    pub msg: &'a ChatMessage,
    /// The exact plaintext.
    pub raw_json: &'a str,
    /// The conversation.
    pub conversation_id: &'a str,
    /// The seq of the `revoke` message that recalled it, if any (in the exported range).
    pub recalled_by: Option<i64>,
    /// Its media.
    pub media: &'a [LinkedMedia],
}

/// What the writers know about the export as a whole.
#[derive(Debug)]
pub struct Context<'a> {
    /// The corp.
    pub corp: &'a str,
    /// The time zone of the displayed times.
    pub tz: &'a jiff::tz::TimeZone,
    /// Its IANA name.
    pub tz_name: &'a str,
    /// The query.
    pub query: &'a Query,
}

impl Context<'_> {
    /// `msgtime` as local ISO 8601 with offset and milliseconds (`2026-11-20T08:00:03.120+08:00`).
    pub fn iso_time(&self, ms: Option<i64>) -> String {
        self.zoned(ms)
            .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string())
            .unwrap_or_default()
    }

    /// `msgtime` as a local wall-clock time for people (`2026-11-20 08:00:03`).
    pub fn local_time(&self, ms: Option<i64>) -> String {
        self.zoned(ms)
            .map(|z| z.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    }

    fn zoned(&self, ms: Option<i64>) -> Option<jiff::Zoned> {
        let ts = jiff::Timestamp::from_millisecond(ms?).ok()?;
        Some(ts.to_zoned(self.tz.clone()))
    }
}

/// The message's texts for tools (CSV, JSON Lines): what [`crate::compliance::text`] finds
/// (what a person wrote or reads), one per line; empty for messages without text.
pub fn message_text(msg: &ChatMessage) -> String {
    let mut s = String::new();
    crate::compliance::text::for_each_text(msg, &mut |p| {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&p.text);
    });
    s
}

/// A transcript being written: its format's state and the hashed temporary file.
trait Transcript {
    fn head(
        &mut self,
        w: &mut dyn Write,
        ctx: &Context<'_>,
        c: &Conversation,
    ) -> std::io::Result<()>;
    fn message(
        &mut self,
        w: &mut dyn Write,
        ctx: &Context<'_>,
        m: &ExportMessage<'_>,
    ) -> std::io::Result<()>;
    fn tail(
        &mut self,
        w: &mut dyn Write,
        ctx: &Context<'_>,
        c: &Conversation,
    ) -> std::io::Result<()>;
}

fn new_transcript(format: Format) -> Box<dyn Transcript> {
    match format {
        Format::Html => Box::new(html::HtmlTranscript::default()),
        Format::Csv => Box::new(csv::CsvTranscript),
        Format::Jsonl => Box::new(jsonl::JsonlTranscript),
    }
}

/// Runs an export: see the module documentation.
pub fn export(query: &Query, target: &ExportTarget) -> Result<ExportReport, ExportError> {
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from > to {
            return Err(ExportError::BadRange { from, to });
        }
    }
    let corp_dir = layout::corp_messages(&target.out, &query.corp);
    if !corp_dir.is_dir() {
        return Err(ExportError::UnknownCorp {
            corp: query.corp.clone(),
            path: corp_dir,
        });
    }
    check_empty(&target.to_dir)?;
    let files = part_files(&corp_dir, query.from, query.to)?;
    let selector = query.selector();

    // Pass 1: which conversations.
    let wanted: HashSet<String> = match &selector {
        Selector::Conversation(c) => HashSet::from([c.clone()]),
        Selector::User(user) => {
            let mut set = HashSet::new();
            for f in &files {
                scan_file(f, None, &mut |_, _, msg| {
                    let involved = msg.from.as_deref() == Some(user.as_str())
                        || msg.tolist.iter().any(|t| t == user);
                    if involved {
                        if let Some(id) = conversation::conversation_id(msg) {
                            set.insert(id.into_owned());
                        }
                    }
                })?;
            }
            set
        }
    };

    // Pass 2: the conversations, recalled messages and files that matter.
    let mut convs: BTreeMap<String, Conversation> = BTreeMap::new();
    let mut recalled: HashMap<String, i64> = HashMap::new();
    let mut parts = Vec::new();
    if !wanted.is_empty() {
        for f in &files {
            let mut part = Part {
                path: f.clone(),
                first: i64::MAX,
                sorted: true,
                matches: 0,
            };
            let mut last = i64::MIN;
            scan_file(f, Some(&wanted), &mut |seq, id, msg| {
                part.first = part.first.min(seq);
                part.sorted &= seq >= last;
                last = seq;
                part.matches += 1;
                let c = convs.entry(id.to_owned()).or_insert_with(|| Conversation {
                    id: id.to_owned(),
                    chat_type: conversation::chat_type(msg),
                    ..Conversation::default()
                });
                c.messages += 1;
                c.participants.extend(msg.from.iter().cloned());
                c.participants
                    .extend(msg.tolist.iter().filter(|t| !t.is_empty()).cloned());
                if let Some(t) = msg.msgtime {
                    c.first_ms = Some(c.first_ms.map_or(t, |f| f.min(t)));
                    c.last_ms = Some(c.last_ms.map_or(t, |l| l.max(t)));
                }
                if let message::Payload::Revoke(r) = &msg.payload {
                    if let Some(pre) = r.pre_msgid.as_deref().filter(|p| !p.is_empty()) {
                        recalled.insert(pre.to_owned(), seq);
                    }
                }
            })?;
            if part.matches > 0 {
                parts.push(part);
            }
        }
    }
    if convs.is_empty() {
        return Err(nothing_matched(query, &files, &selector));
    }

    std::fs::create_dir_all(&target.to_dir).map_err(io(&target.to_dir))?;
    let mut store = StateStore::open(&target.state_path)?;
    let ctx = Context {
        corp: &query.corp,
        tz: &target.tz,
        tz_name: &query.timezone,
        query,
    };
    let mut manifest_files: Vec<ManifestFile> = Vec::new();
    let mut media = MediaCopier::new(&target.out, &target.to_dir, &query.corp);
    let mut exported = Vec::new();
    let mut total = 0u64;

    // Pass 3, in rounds of at most MAX_OPEN_TRANSCRIPTS conversations.
    let ids: Vec<&String> = convs.keys().collect();
    for round in ids.chunks(MAX_OPEN_TRANSCRIPTS) {
        let mut open: HashMap<&str, (Box<dyn Transcript>, HashedFile)> = HashMap::new();
        let round_set: HashSet<String> = round.iter().map(|s| (*s).clone()).collect();
        for id in round {
            let c = &convs[id.as_str()];
            let mut file = HashedFile::create(&target.to_dir, query.format.ext())?;
            let mut t = new_transcript(query.format);
            t.head(&mut file, &ctx, c).map_err(io(file.tmp_path()))?;
            open.insert(id.as_str(), (t, file));
        }
        merge(&parts, &round_set, &mut |seq, id, msg, raw| {
            let linked = media.link(&mut store, msg, &mut manifest_files)?;
            let (t, file) = open
                .get_mut(id)
                .expect("the round's conversations are open");
            let m = ExportMessage {
                seq,
                msg,
                raw_json: raw,
                conversation_id: id,
                recalled_by: recalled.get(&msg.msgid).copied(),
                media: &linked,
            };
            t.message(file, &ctx, &m).map_err(io(file.tmp_path()))?;
            Ok(())
        })?;
        for id in round {
            let (mut t, mut file) = open.remove(id.as_str()).expect("opened above");
            let c = &convs[id.as_str()];
            t.tail(&mut file, &ctx, c).map_err(io(file.tmp_path()))?;
            let name = format!("{}.{}", transcript_stem(id), query.format.ext());
            let sha256 = file.publish(&name)?;
            manifest_files.push(ManifestFile {
                path: name.clone(),
                sha256,
            });
            total += c.messages;
            exported.push(ExportedConversation {
                conversation_id: (*id).clone(),
                chat_type: c.chat_type.map(ChatType::as_str),
                path: name,
                messages: c.messages,
            });
        }
    }

    let manifest = Manifest::new(
        query,
        &exported,
        total,
        media.copied,
        media.missing,
        manifest_files,
    );
    let (manifest_sha256, time) = manifest.write(&target.to_dir)?;
    let export_dir = std::path::absolute(&target.to_dir).unwrap_or_else(|_| target.to_dir.clone());
    let audit_id = store.record_export(&ExportAudit {
        id: 0,
        time,
        corp_id: query.corp.clone(),
        query: serde_json::to_string(query).unwrap_or_default(),
        format: query.format.as_str().to_owned(),
        export_dir: export_dir.to_string_lossy().into_owned(),
        messages: total,
        manifest_sha256: manifest_sha256.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        os_user: std::env::var("USER").ok().filter(|u| !u.is_empty()),
    })?;
    Ok(ExportReport {
        export_dir,
        messages: total,
        conversations: exported,
        media_files: media.copied,
        media_missing: media.missing,
        manifest_sha256,
        audit_id,
    })
}

/// The error for an export that matched nothing, saying which filter matched nothing.
fn nothing_matched(query: &Query, files: &[PathBuf], selector: &Selector) -> ExportError {
    let days = match (query.from, query.to) {
        (None, None) => "any day".to_owned(),
        (Some(f), None) => format!("the days from {f}"),
        (None, Some(t)) => format!("the days up to {t}"),
        (Some(f), Some(t)) => format!("the days {f} to {t}"),
    };
    if files.is_empty() {
        return ExportError::NothingMatched(format!(
            "corp {}: no archived messages on {days} (no Parquet file in those date= folders); \
             widen --from/--to",
            query.corp
        ));
    }
    ExportError::NothingMatched(match selector {
        Selector::Conversation(c) => format!(
            "corp {}: no message of conversation {c:?} on {days} ({} files read); check the id \
             (a roomid, or single:<a>:<b> with the two ids sorted; see docs/compliance.md) or \
             widen --from/--to",
            query.corp,
            files.len()
        ),
        Selector::User(u) => format!(
            "corp {}: user {u:?} sent or received no message on {days} ({} files read); check \
             the userid (case matters) or widen --from/--to",
            query.corp,
            files.len()
        ),
    })
}

/// Refuses an export folder that exists and holds anything.
fn check_empty(dir: &Path) -> Result<(), ExportError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::NotEmpty {
                    path: dir.to_owned(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// The committed Parquet parts of the `date=` folders in `from..=to` (every folder, rows
/// without `msgtime` included, when neither is given), sorted by folder and name.
fn part_files(
    corp_dir: &Path,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> Result<Vec<PathBuf>, ExportError> {
    let mut days = Vec::new();
    for e in std::fs::read_dir(corp_dir).map_err(io(corp_dir))? {
        let e = e.map_err(io(corp_dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if layout::is_hidden(&name) || !e.file_type().map_err(io(corp_dir))?.is_dir() {
            continue;
        }
        let (_, date) = layout::partition_of(Path::new(&name));
        if date.is_empty() {
            continue;
        }
        let wanted = match layout::partition_day(&date) {
            Some(d) => from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t),
            // Rows without a time belong to no day.
            None => from.is_none() && to.is_none(),
        };
        if wanted {
            days.push(e.path());
        }
    }
    days.sort();
    let mut files = Vec::new();
    for day in days {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&day).map_err(io(&day))? {
            let e = e.map_err(io(&day))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if layout::is_part_file(&name) && e.file_type().map_err(io(&day))?.is_file() {
                names.push(e.path());
            }
        }
        names.sort();
        files.extend(names);
    }
    Ok(files)
}

/// A file that holds rows of the exported conversations, as pass 2 found it.
#[derive(Debug)]
struct Part {
    path: PathBuf,
    /// Its lowest matching seq.
    first: i64,
    /// Its matching rows are in seq order (every file this tool writes).
    sorted: bool,
    matches: u64,
}

/// A Parquet file read batch by batch: `seq`, `raw_json` and, when the file has it,
/// `conversation_id`.
struct Reader {
    path: PathBuf,
    inner: ParquetRecordBatchReader,
}

/// The columns of one batch.
struct Columns {
    seq: Int64Array,
    raw: StringArray,
    conv: Option<StringArray>,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, ExportError> {
        let file = File::open(path).map_err(io(path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq(path))?;
        let schema = builder.parquet_schema();
        let find = |n: &str| schema.columns().iter().position(|c| c.name() == n);
        let mut leaves = Vec::new();
        for n in ["seq", "raw_json"] {
            leaves.push(find(n).ok_or_else(|| ExportError::Schema {
                path: path.to_owned(),
                what: format!("no `{n}` column"),
            })?);
        }
        leaves.extend(find("conversation_id"));
        let mask = ProjectionMask::leaves(schema, leaves);
        let inner = builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(pq(path))?;
        Ok(Reader {
            path: path.to_owned(),
            inner,
        })
    }

    fn next_batch(&mut self) -> Result<Option<Columns>, ExportError> {
        let Some(batch) = self.inner.next() else {
            return Ok(None);
        };
        let batch = batch.map_err(|e| pq(&self.path)(e.into()))?;
        self.columns(&batch).map(Some)
    }

    fn columns(&self, batch: &RecordBatch) -> Result<Columns, ExportError> {
        let schema_err = |what: &str| ExportError::Schema {
            path: self.path.clone(),
            what: what.to_owned(),
        };
        let seq = batch
            .column_by_name("seq")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| schema_err("`seq` is not Int64"))?
            .clone();
        let raw = batch
            .column_by_name("raw_json")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| schema_err("`raw_json` is not Utf8"))?
            .clone();
        let conv = batch
            .column_by_name("conversation_id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .cloned();
        Ok(Columns { seq, raw, conv })
    }
}

impl Columns {
    fn len(&self) -> usize {
        self.seq.len()
    }

    /// Row `i` parsed, with its conversation, when it belongs to `wanted` (every row when
    /// `None`; then the conversation may be missing).
    fn row(
        &self,
        i: usize,
        wanted: Option<&HashSet<String>>,
        path: &Path,
    ) -> Result<Option<(i64, ChatMessage)>, ExportError> {
        // The column, when there, rules a row out without parsing it.
        if let (Some(w), Some(conv)) = (wanted, &self.conv) {
            if conv.is_null(i) || !w.contains(conv.value(i)) {
                return Ok(None);
            }
        }
        let seq = self.seq.value(i);
        let msg =
            message::parse(self.raw.value(i).as_bytes()).map_err(|source| ExportError::Row {
                path: path.to_owned(),
                seq,
                source,
            })?;
        Ok(Some((seq, msg)))
    }
}

/// Calls `f(seq, conversation, message)` for every row of `path` whose conversation is in
/// `wanted` (every row with a conversation when `wanted` is `None`, and `""` as its id).
fn scan_file(
    path: &Path,
    wanted: Option<&HashSet<String>>,
    f: &mut dyn FnMut(i64, &str, &ChatMessage),
) -> Result<(), ExportError> {
    let mut reader = Reader::open(path)?;
    while let Some(cols) = reader.next_batch()? {
        for i in 0..cols.len() {
            let Some((seq, msg)) = cols.row(i, wanted, path)? else {
                continue;
            };
            match wanted {
                None => f(seq, "", &msg),
                Some(w) => {
                    if let Some(id) = conversation::conversation_id(&msg) {
                        if w.contains(id.as_ref()) {
                            f(seq, &id, &msg);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A row waiting in the merge.
struct Pending {
    seq: i64,
    conversation: String,
    msg: ChatMessage,
    raw: String,
}

/// One file as a stream of its matching rows in seq order.
struct Stream {
    reader: Option<Reader>,
    cols: Option<Columns>,
    row: usize,
    /// An unsorted file's matching rows, sorted, read whole (never written by this tool).
    sorted_rows: std::vec::IntoIter<Pending>,
    head: Option<Pending>,
}

impl Stream {
    fn open(part: &Part, wanted: &HashSet<String>) -> Result<Self, ExportError> {
        let mut s = Stream {
            reader: Some(Reader::open(&part.path)?),
            cols: None,
            row: 0,
            sorted_rows: Vec::new().into_iter(),
            head: None,
        };
        if !part.sorted {
            let mut rows = Vec::new();
            while let Some(p) = s.next_match(wanted)? {
                rows.push(p);
            }
            rows.sort_by_key(|p| p.seq);
            s.reader = None;
            s.sorted_rows = rows.into_iter();
        }
        s.advance(wanted)?;
        Ok(s)
    }

    fn next_match(&mut self, wanted: &HashSet<String>) -> Result<Option<Pending>, ExportError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        loop {
            if self.cols.as_ref().is_none_or(|c| self.row >= c.len()) {
                match reader.next_batch()? {
                    Some(c) => {
                        self.cols = Some(c);
                        self.row = 0;
                    }
                    None => {
                        self.cols = None;
                        return Ok(None);
                    }
                }
                continue;
            }
            let cols = self.cols.as_ref().expect("checked above");
            let i = self.row;
            self.row += 1;
            let Some((seq, msg)) = cols.row(i, Some(wanted), &reader.path)? else {
                continue;
            };
            let Some(id) = conversation::conversation_id(&msg).map(|c| c.into_owned()) else {
                continue;
            };
            if wanted.contains(&id) {
                return Ok(Some(Pending {
                    seq,
                    conversation: id,
                    raw: cols.raw.value(i).to_owned(),
                    msg,
                }));
            }
        }
    }

    fn advance(&mut self, wanted: &HashSet<String>) -> Result<(), ExportError> {
        self.head = if self.reader.is_some() {
            self.next_match(wanted)?
        } else {
            self.sorted_rows.next()
        };
        Ok(())
    }
}

/// What [`merge`] calls per row: `(seq, conversation, message, raw_json)`.
type OnRow<'f> = dyn FnMut(i64, &str, &ChatMessage, &str) -> Result<(), ExportError> + 'f;

/// Calls `f(seq, conversation, message, raw_json)` for every row of `parts` whose conversation
/// is in `wanted`, in seq order (ties in file order).
fn merge(parts: &[Part], wanted: &HashSet<String>, f: &mut OnRow<'_>) -> Result<(), ExportError> {
    // Files are opened when the merge reaches their lowest seq and dropped when read.
    let mut unopened: Vec<usize> = (0..parts.len()).collect();
    unopened.sort_by_key(|&i| Reverse((parts[i].first, i)));
    let mut streams: Vec<Option<Stream>> = parts.iter().map(|_| None).collect();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    loop {
        while let Some(&next) = unopened.last() {
            if heap
                .peek()
                .is_some_and(|Reverse((seq, _))| parts[next].first > *seq)
            {
                break;
            }
            unopened.pop();
            let s = Stream::open(&parts[next], wanted)?;
            if let Some(h) = &s.head {
                heap.push(Reverse((h.seq, next)));
                streams[next] = Some(s);
            }
        }
        let Some(Reverse((_, i))) = heap.pop() else {
            break;
        };
        let s = streams[i].as_mut().expect("a stream in the heap is open");
        let head = s.head.take().expect("a stream in the heap has a row");
        f(head.seq, &head.conversation, &head.msg, &head.raw)?;
        s.advance(wanted)?;
        match &s.head {
            Some(h) => heap.push(Reverse((h.seq, i))),
            None => streams[i] = None,
        }
    }
    Ok(())
}

/// Copies the downloaded media that messages link to into `EXPORT/media/`, once per file.
struct MediaCopier<'a> {
    out: &'a Path,
    to_dir: &'a Path,
    corp: &'a str,
    /// sdkfileid -> path in the export (`None`: not downloaded).
    done: HashMap<String, Option<String>>,
    /// Names already copied: two media ids with the same content share one file.
    names: HashSet<String>,
    copied: u64,
    missing: u64,
}

impl<'a> MediaCopier<'a> {
    fn new(out: &'a Path, to_dir: &'a Path, corp: &'a str) -> Self {
        MediaCopier {
            out,
            to_dir,
            corp,
            done: HashMap::new(),
            names: HashSet::new(),
            copied: 0,
            missing: 0,
        }
    }

    /// The media of `msg`, each copied into the export when downloaded.
    fn link(
        &mut self,
        store: &mut StateStore,
        msg: &ChatMessage,
        files: &mut Vec<ManifestFile>,
    ) -> Result<Vec<LinkedMedia>, ExportError> {
        let refs = msg.media();
        let mut linked = Vec::with_capacity(refs.len());
        for r in refs {
            let path = match self.done.get(&r.sdkfileid) {
                Some(p) => p.clone(),
                None => {
                    let p = self.copy(store, &r.sdkfileid, files)?;
                    if p.is_none() {
                        self.missing += 1;
                    }
                    self.done.insert(r.sdkfileid.clone(), p.clone());
                    p
                }
            };
            linked.push(LinkedMedia {
                kind: r.kind,
                item_index: r.item_index,
                sdkfileid: r.sdkfileid,
                path,
            });
        }
        Ok(linked)
    }

    fn copy(
        &mut self,
        store: &StateStore,
        sdkfileid: &str,
        files: &mut Vec<ManifestFile>,
    ) -> Result<Option<String>, ExportError> {
        let Some(state) = store.media_file(self.corp, sdkfileid)? else {
            return Ok(None);
        };
        let Some(rel) = state.path.filter(|_| state.status == MediaStatus::Done) else {
            return Ok(None);
        };
        // Only the file name is taken from the state (`<sha256>.<ext>`), so the copy cannot
        // land outside the export's media folder.
        let Some(name) = Path::new(&rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !layout::is_hidden(n))
        else {
            return Ok(None);
        };
        let rel_in_export = format!("{MEDIA_DIR}/{name}");
        if self.names.contains(&name) {
            return Ok(Some(rel_in_export));
        }
        let src = self.out.join(&rel);
        let mut input = match File::open(&src) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    corp_id = self.corp,
                    sdkfileid,
                    "media file {} is missing; the transcript says so",
                    src.display()
                );
                return Ok(None);
            }
            Err(e) => return Err(io(&src)(e)),
        };
        let dir = self.to_dir.join(MEDIA_DIR);
        atomic::create_dir_durable(&dir).map_err(io(&dir))?;
        let mut out = HashedFile::create(&dir, "bin")?;
        std::io::copy(&mut input, &mut out).map_err(io(&src))?;
        let sha256 = out.publish(&name)?;
        files.push(ManifestFile {
            path: rel_in_export.clone(),
            sha256,
        });
        self.names.insert(name);
        self.copied += 1;
        Ok(Some(rel_in_export))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_names_are_safe_and_distinct() {
        assert_eq!(transcript_stem("wrAbC_1-2"), "wrAbC_1-2");
        assert_eq!(
            transcript_stem("single:lisi:zhangsan"),
            "single%3Alisi%3Azhangsan"
        );
        assert_eq!(transcript_stem("a/../b"), "a%2F%2E%2E%2Fb");
        assert_eq!(transcript_stem("single:a%3Ab:c"), "single%3Aa%253Ab%3Ac");
        assert_eq!(transcript_stem("张"), "%E5%BC%A0");
        for id in ["multi:a:b", "../x", "a b", "", &"m:".repeat(200)] {
            let s = transcript_stem(id);
            assert!(
                !s.contains('/') && !s.contains(':') && !s.contains(".."),
                "{s}"
            );
            assert!(!s.is_empty() && s.len() <= 160, "{s}");
        }
        let long_a = format!("multi:{}", "a:".repeat(100));
        let long_b = format!("multi:{}b", "a:".repeat(100));
        assert_ne!(transcript_stem(&long_a), transcript_stem(&long_b));
    }
}
