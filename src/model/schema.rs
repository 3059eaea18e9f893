//! The Arrow schema of the `messages` table and the builder that turns [`ChatMessage`]s into record batches.
//!
//! One row per decrypted message. The envelope has its own columns; the payload fields most queries need get typed
//! columns shared across msgtypes (e.g. `title` holds a link's title, a meeting's topic and a vote's question);
//! everything else stays reachable through `raw_json`, the exact plaintext, so no field is ever lost.
//! [`COLUMNS_DOC`] describes every column and is checked against [`chat_schema`] by the tests.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::ArrayBuilder;
use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::conversation::{self, ChatType};
use super::message::{ChatMessage, Payload};

/// Name of the list item field of `tolist` (the Arrow/Parquet convention, so readers see a plain string list).
const LIST_ITEM: &str = "item";
/// Timezone of `msgtime`: WeCom sends UTC milliseconds.
const UTC: &str = "UTC";
/// The version of the table schemas (messages, media files), recorded in every Parquet file's
/// key-value metadata under [`crate::sink::layout::SCHEMA_VERSION_KEY`]. Version 1 (releases
/// before the lake layout) had unsigned integer columns; version 2 has none, since Delta Lake,
/// Iceberg, Hive, Spark and StarRocks have no unsigned types. Version 3 added the conversation
/// columns (`conversation_id`, `chat_type`, `is_external_sender`) at the end of `messages`.
pub const SCHEMA_VERSION: u32 = 3;
/// `meetingid` is an unsigned 64-bit number in WeCom's JSON: Decimal(20, 0) holds all of it.
pub const MEETINGID_TYPE: DataType = DataType::Decimal128(20, 0);
/// The largest seq the Int64 `seq` column holds; a record above it is a dead letter.
pub const MAX_SEQ: u64 = i64::MAX as u64;
/// The largest key version the Int32 `publickey_ver` column holds.
pub const MAX_PUBLICKEY_VER: u32 = i32::MAX as u32;

/// Every column of [`chat_schema`], in order: `(name, Arrow type, meaning)`. Meant for generating and checking the
/// README's column table; `null` means the column is nullable.
pub const COLUMNS_DOC: &[(&str, &str, &str)] = &[
    ("seq", "Int64 not null", "Position of the record in the archive (GetChatData `seq`); the checkpoint cursor."),
    ("msgid", "Utf8 not null", "Message id; unique per message, the dedupe key."),
    ("publickey_ver", "Int32 not null", "Version of the RSA key pair that wrapped the message key."),
    ("action", "Utf8 not null", "`send`, `recall` or `switch` (empty if absent)."),
    ("from", "Utf8 null", "Sender: userid, external_userid (`wo…`/`wm…`) or robot (`wb…`); null for switch records."),
    ("tolist", "List<Utf8 not null> not null", "Receivers (list item field `item`); empty for switch records."),
    ("roomid", "Utf8 null", "Group chat id (`wr…`); null for 1:1 chats (WeCom's `\"\"` is stored as null)."),
    ("msgtime", "Timestamp(ms, UTC) null", "Message time (UTC); for switch records their `time`. The `date=` partition is its local day in the configured `timezone` (default Asia/Shanghai)."),
    ("msgtype", "Utf8 not null", "Message type as sent (unknown types included); `switch` for switch records."),
    ("content", "Utf8 null", "Text of text, markdown (`info.content`) and todo messages."),
    (
        "title",
        "Utf8 null",
        "Title of link, weapp, chatrecord, todo, docmsg, calendar, collect; meeting topic; vote question; \
         first news article's title.",
    ),
    ("sdkfileid", "Utf8 null", "Media id of image, voice, video, emotion, file, meeting_voice_call, voip_doc_share."),
    ("md5sum", "Utf8 null", "MD5 of that media as sent (may be empty)."),
    (
        "filesize",
        "Int64 null",
        "Media size in bytes: image/video/file/voip_doc_share `filesize`, voice `voice_size`, emotion `imagesize`.",
    ),
    ("filename", "Utf8 null", "File name of file, voip_doc_share and qydiskfile messages."),
    ("fileext", "Utf8 null", "Extension declared by file messages (`file.fileext`)."),
    ("play_length", "Int32 null", "Duration in seconds of voice and video messages."),
    ("link_url", "Utf8 null", "URL of link and docmsg messages."),
    ("pre_msgid", "Utf8 null", "Recalled message of revoke messages (may be in an earlier batch)."),
    ("user", "Utf8 null", "User of switch records; userid of agree/disagree messages."),
    ("meetingid", "Decimal(20,0) null", "Meeting id of meeting messages, numeric meeting_notification id (an unsigned 64-bit number: it can exceed Int64)."),
    (
        "media_count",
        "Int32 not null",
        "Number of downloadable media files (sdkfileid) in the message, including inside mixed/chatrecord items.",
    ),
    ("raw_json", "Utf8 not null", "The exact decrypted plaintext: every field, also of unknown types."),
    (
        "conversation_id",
        "Utf8 null",
        "The conversation: the roomid of a group chat; `single:<a>:<b>` (the two ids sorted, so both directions \
         share it) of a one-to-one chat; `multi:<ids sorted>` without roomid and several receivers; null for switch \
         records. See docs/compliance.md.",
    ),
    ("chat_type", "Utf8 null", "`group`, `single`, or `single_external` (an external contact `wo…`/`wm…` on either side); null when `conversation_id` is."),
    ("is_external_sender", "Boolean not null", "The sender is an external contact (`from` starts with `wo` or `wm`; robots `wb…` are not)."),
];

/// The Arrow schema of the messages table. Built once; every call returns the same `Arc`.
pub fn chat_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA.get_or_init(build_schema).clone()
}

fn tolist_item_field() -> Arc<Field> {
    Arc::new(Field::new(LIST_ITEM, DataType::Utf8, false))
}

fn build_schema() -> SchemaRef {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("msgid", DataType::Utf8, false),
        Field::new("publickey_ver", DataType::Int32, false),
        Field::new("action", DataType::Utf8, false),
        utf8("from"),
        Field::new("tolist", DataType::List(tolist_item_field()), false),
        utf8("roomid"),
        Field::new(
            "msgtime",
            DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
            true,
        ),
        Field::new("msgtype", DataType::Utf8, false),
        utf8("content"),
        utf8("title"),
        utf8("sdkfileid"),
        utf8("md5sum"),
        Field::new("filesize", DataType::Int64, true),
        utf8("filename"),
        utf8("fileext"),
        Field::new("play_length", DataType::Int32, true),
        utf8("link_url"),
        utf8("pre_msgid"),
        utf8("user"),
        Field::new("meetingid", MEETINGID_TYPE, true),
        Field::new("media_count", DataType::Int32, false),
        Field::new("raw_json", DataType::Utf8, false),
        utf8("conversation_id"),
        utf8("chat_type"),
        Field::new("is_external_sender", DataType::Boolean, false),
    ]))
}

/// The typed columns a payload fills; `None` is null.
#[derive(Default)]
struct Typed<'a> {
    content: Option<&'a str>,
    title: Option<&'a str>,
    sdkfileid: Option<&'a str>,
    md5sum: Option<&'a str>,
    filesize: Option<u64>,
    filename: Option<&'a str>,
    fileext: Option<&'a str>,
    play_length: Option<u32>,
    link_url: Option<&'a str>,
    pre_msgid: Option<&'a str>,
    user: Option<&'a str>,
    meetingid: Option<u64>,
}

impl<'a> Typed<'a> {
    fn of(payload: &'a Payload) -> Self {
        let s = |o: &'a Option<String>| o.as_deref();
        match payload {
            Payload::Text(p) => Typed {
                content: s(&p.content),
                ..Typed::default()
            },
            Payload::Markdown(p) => Typed {
                content: s(&p.content),
                ..Typed::default()
            },
            Payload::Todo(p) => Typed {
                content: s(&p.content),
                title: s(&p.title),
                ..Typed::default()
            },
            Payload::Image(p) => Typed {
                sdkfileid: s(&p.sdkfileid),
                md5sum: s(&p.md5sum),
                filesize: p.filesize,
                ..Typed::default()
            },
            Payload::Voice(p) => Typed {
                sdkfileid: s(&p.sdkfileid),
                md5sum: s(&p.md5sum),
                filesize: p.voice_size,
                play_length: p.play_length,
                ..Typed::default()
            },
            Payload::Video(p) => Typed {
                sdkfileid: s(&p.sdkfileid),
                md5sum: s(&p.md5sum),
                filesize: p.filesize,
                play_length: p.play_length,
                ..Typed::default()
            },
            Payload::Emotion(p) => Typed {
                sdkfileid: s(&p.sdkfileid),
                md5sum: s(&p.md5sum),
                filesize: p.imagesize,
                ..Typed::default()
            },
            Payload::File(p) => Typed {
                sdkfileid: s(&p.sdkfileid),
                md5sum: s(&p.md5sum),
                filesize: p.filesize,
                filename: s(&p.filename),
                fileext: s(&p.fileext),
                ..Typed::default()
            },
            Payload::MeetingVoiceCall(p) => Typed {
                sdkfileid: s(&p.sdkfileid),
                ..Typed::default()
            },
            Payload::VoipDocShare(p) => Typed {
                sdkfileid: s(&p.sdkfileid),
                md5sum: s(&p.md5sum),
                filesize: p.filesize,
                filename: s(&p.filename),
                ..Typed::default()
            },
            Payload::QyDiskFile(p) => Typed {
                filename: s(&p.filename),
                ..Typed::default()
            },
            Payload::Link(p) => Typed {
                title: s(&p.title),
                link_url: s(&p.link_url),
                ..Typed::default()
            },
            Payload::Doc(p) => Typed {
                title: s(&p.title),
                link_url: s(&p.link_url),
                ..Typed::default()
            },
            Payload::Weapp(p) => Typed {
                title: s(&p.title),
                ..Typed::default()
            },
            Payload::ChatRecord(p) => Typed {
                title: s(&p.title),
                ..Typed::default()
            },
            Payload::Calendar(p) => Typed {
                title: s(&p.title),
                ..Typed::default()
            },
            Payload::Collect(p) => Typed {
                title: s(&p.title),
                ..Typed::default()
            },
            Payload::Vote(p) => Typed {
                title: s(&p.votetitle),
                ..Typed::default()
            },
            Payload::News(p) => Typed {
                // Current shape: the first article; old flat shape: `info.title`.
                title: p
                    .item
                    .first()
                    .and_then(|i| i.title.as_deref())
                    .or(p.title.as_deref()),
                ..Typed::default()
            },
            Payload::Meeting(p) => Typed {
                title: s(&p.topic),
                meetingid: p.meetingid,
                ..Typed::default()
            },
            Payload::MeetingNotification(p) => Typed {
                meetingid: p
                    .meeting_id
                    .as_deref()
                    .and_then(|id| id.trim().parse().ok()),
                ..Typed::default()
            },
            Payload::Revoke(p) => Typed {
                pre_msgid: s(&p.pre_msgid),
                ..Typed::default()
            },
            Payload::Agree(p) | Payload::Disagree(p) => Typed {
                user: s(&p.userid),
                ..Typed::default()
            },
            Payload::Switch { user } => Typed {
                user: s(user),
                ..Typed::default()
            },
            // Card, location, mixed, red packet, sphfeed, voiptext, unknown: nothing shared with other types
            // (`raw_json` has it all). A new msgtype starts here too, until it is given columns above.
            _ => Typed::default(),
        }
    }
}

/// Accumulates [`ChatMessage`]s into a [`RecordBatch`] of [`chat_schema`].
///
/// Column builders are appended row by row, so a batch costs one copy of each value and no intermediate rows.
#[derive(Debug)]
pub struct ChatBatchBuilder {
    seq: Int64Builder,
    msgid: StringBuilder,
    publickey_ver: Int32Builder,
    action: StringBuilder,
    from: StringBuilder,
    tolist: ListBuilder<StringBuilder>,
    roomid: StringBuilder,
    msgtime: TimestampMillisecondBuilder,
    msgtype: StringBuilder,
    content: StringBuilder,
    title: StringBuilder,
    sdkfileid: StringBuilder,
    md5sum: StringBuilder,
    filesize: Int64Builder,
    filename: StringBuilder,
    fileext: StringBuilder,
    play_length: Int32Builder,
    link_url: StringBuilder,
    pre_msgid: StringBuilder,
    user: StringBuilder,
    meetingid: Decimal128Builder,
    media_count: Int32Builder,
    raw_json: StringBuilder,
    conversation_id: StringBuilder,
    chat_type: StringBuilder,
    is_external_sender: BooleanBuilder,
}

impl Default for ChatBatchBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl ChatBatchBuilder {
    /// A builder with room for `rows` rows before any column reallocates (string data is sized by a typical
    /// message; it grows as needed).
    pub fn with_capacity(rows: usize) -> Self {
        // Typical sizes: ids ~30 bytes, short texts ~40, plaintext ~400. Guesses only, to save early reallocations.
        let str_col = |bytes_per_row: usize| {
            StringBuilder::with_capacity(rows, rows.saturating_mul(bytes_per_row))
        };
        Self {
            seq: Int64Builder::with_capacity(rows),
            msgid: str_col(32),
            publickey_ver: Int32Builder::with_capacity(rows),
            action: str_col(4),
            from: str_col(24),
            tolist: ListBuilder::with_capacity(
                StringBuilder::with_capacity(rows, rows.saturating_mul(24)),
                rows,
            )
            .with_field(tolist_item_field()),
            roomid: str_col(16),
            msgtime: TimestampMillisecondBuilder::with_capacity(rows).with_timezone(UTC),
            msgtype: str_col(6),
            content: str_col(32),
            title: str_col(8),
            sdkfileid: str_col(16),
            md5sum: str_col(8),
            filesize: Int64Builder::with_capacity(rows),
            filename: str_col(4),
            fileext: str_col(1),
            play_length: Int32Builder::with_capacity(rows),
            link_url: str_col(4),
            pre_msgid: str_col(1),
            user: str_col(1),
            meetingid: Decimal128Builder::with_capacity(rows).with_data_type(MEETINGID_TYPE),
            media_count: Int32Builder::with_capacity(rows),
            raw_json: str_col(400),
            conversation_id: str_col(24),
            chat_type: str_col(6),
            is_external_sender: BooleanBuilder::with_capacity(rows),
        }
    }

    /// Appends one message as a row. `raw_json` is the exact decrypted plaintext the message was parsed from.
    pub fn append(&mut self, seq: u64, publickey_ver: u32, raw_json: &str, msg: &ChatMessage) {
        // `transform::decode` sends records whose seq or key version do not fit to the dead
        // letters, so these conversions are exact.
        debug_assert!(seq <= MAX_SEQ && publickey_ver <= MAX_PUBLICKEY_VER);
        self.seq.append_value(seq as i64);
        self.msgid.append_value(&msg.msgid);
        self.publickey_ver.append_value(publickey_ver as i32);
        self.action.append_value(&msg.action);
        self.from.append_option(msg.from.as_deref());
        for to in &msg.tolist {
            self.tolist.values().append_value(to);
        }
        self.tolist.append(true);
        self.roomid.append_option(msg.roomid.as_deref());
        self.msgtime.append_option(msg.msgtime);
        self.msgtype.append_value(&msg.msgtype);

        let t = Typed::of(&msg.payload);
        self.content.append_option(t.content);
        self.title.append_option(t.title);
        self.sdkfileid.append_option(t.sdkfileid);
        self.md5sum.append_option(t.md5sum);
        // A size or length beyond the signed range is no real file: null (`raw_json` keeps it).
        self.filesize
            .append_option(t.filesize.and_then(|v| i64::try_from(v).ok()));
        self.filename.append_option(t.filename);
        self.fileext.append_option(t.fileext);
        self.play_length
            .append_option(t.play_length.and_then(|v| i32::try_from(v).ok()));
        self.link_url.append_option(t.link_url);
        self.pre_msgid.append_option(t.pre_msgid);
        self.user.append_option(t.user);
        self.meetingid.append_option(t.meetingid.map(i128::from));
        self.media_count
            .append_value(i32::try_from(msg.media_count()).unwrap_or(i32::MAX));
        self.raw_json.append_value(raw_json);
        self.conversation_id
            .append_option(conversation::conversation_id(msg).as_deref());
        self.chat_type
            .append_option(conversation::chat_type(msg).map(ChatType::as_str));
        self.is_external_sender
            .append_value(conversation::is_external_sender(msg));
    }

    /// Number of rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.seq.len()
    }

    /// True when no row has been appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds the batch from the rows appended so far and resets the builder to empty (ready for the next batch).
    ///
    /// # Panics
    ///
    /// Never in practice: the builders are typed from the same definitions as [`chat_schema`] and every non-null
    /// column is always appended a value; a mismatch would be a bug in this module, caught by its tests.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.seq.finish()),
            Arc::new(self.msgid.finish()),
            Arc::new(self.publickey_ver.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.from.finish()),
            Arc::new(self.tolist.finish()),
            Arc::new(self.roomid.finish()),
            Arc::new(self.msgtime.finish()),
            Arc::new(self.msgtype.finish()),
            Arc::new(self.content.finish()),
            Arc::new(self.title.finish()),
            Arc::new(self.sdkfileid.finish()),
            Arc::new(self.md5sum.finish()),
            Arc::new(self.filesize.finish()),
            Arc::new(self.filename.finish()),
            Arc::new(self.fileext.finish()),
            Arc::new(self.play_length.finish()),
            Arc::new(self.link_url.finish()),
            Arc::new(self.pre_msgid.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.meetingid.finish()),
            Arc::new(self.media_count.finish()),
            Arc::new(self.raw_json.finish()),
            Arc::new(self.conversation_id.finish()),
            Arc::new(self.chat_type.finish()),
            Arc::new(self.is_external_sender.finish()),
        ];
        RecordBatch::try_new(chat_schema(), columns)
            .expect("ChatBatchBuilder columns match chat_schema()")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_doc_matches_schema() {
        let schema = chat_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let doc: Vec<&str> = COLUMNS_DOC.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, doc);
        for (field, (_, ty, _)) in schema.fields().iter().zip(COLUMNS_DOC) {
            // The nullability written in the doc must be the schema's.
            assert_eq!(
                field.is_nullable(),
                ty.ends_with(" null") && !ty.ends_with("not null"),
                "{}",
                field.name()
            );
        }
    }

    #[test]
    fn empty_finish_has_schema() {
        let mut b = ChatBatchBuilder::default();
        assert!(b.is_empty());
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.schema(), chat_schema());
    }
}
