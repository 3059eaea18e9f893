//! Typed model of one decrypted chat message (archive spec §3).
//!
//! The decrypted plaintext of a `chatdata` record is a JSON object: a common envelope (`msgid`, `action`, `from`,
//! `tolist`, `roomid`, `msgtime`, `msgtype`) plus one payload object whose key is *usually* the `msgtype`
//! (see [`Payload`] for the exceptions). [`parse`] turns the plaintext into a [`ChatMessage`].
//!
//! Design choices, all driven by "never lose a message":
//!
//! * **Lenient fields.** Every payload field accepts the documented type *and* the cheap alternatives seen in the
//!   wild (a number sent as a numeric string, an id sent as a number, `null`). A field that still does not fit
//!   becomes `None` instead of failing the record.
//! * **Unknown types are kept.** A `msgtype` this crate does not know yields [`Payload::Unknown`] with the raw
//!   payload JSON; the caller keeps the full plaintext anyway.
//! * **Shape surprises degrade, they do not fail.** If a known type still cannot be typed (e.g. a duplicated key,
//!   which serde rejects for structs), the record is re-read untyped and becomes [`Payload::Unknown`].
//! * **Only undecryptable input is an error**: not UTF-8, not JSON, not an object, or no `msgid`. There is no
//!   MAC on archive messages, so a wrong key produces garbage; these errors are how the pipeline notices.
//!
//! Parsing streams the object once: envelope fields are read into place, and once `msgtype` is known the payload
//! is deserialized straight into its struct (WeCom puts `msgtype` before the payload). Keys that arrive before
//! `msgtype` are buffered as [`serde_json::Value`] and typed at the end, so key order never matters.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/// Why a decrypted plaintext could not be turned into a [`ChatMessage`].
///
/// Every variant means "this is not a chat message": with no MAC on archive messages, a wrong key or corrupt
/// ciphertext shows up here, so the pipeline routes these records to the dead-letter sink.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The plaintext is not valid UTF-8 (WeCom always sends UTF-8 JSON; garbage from a wrong key usually lands here).
    #[error("plaintext is not valid UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The plaintext is not a JSON object (empty, an array, a scalar, ...).
    #[error("plaintext is not a JSON object")]
    NotAnObject,
    /// The plaintext is not well-formed JSON.
    #[error("plaintext is not valid JSON: {source}")]
    Json {
        /// The serde_json error, with line and column.
        #[from]
        source: serde_json::Error,
    },
    /// The object has no (or an empty) `msgid`, so it cannot be deduplicated or checkpointed.
    #[error("message has no msgid")]
    MissingMsgid,
}

// ---------------------------------------------------------------------------------------------------------------
// Control characters
// ---------------------------------------------------------------------------------------------------------------

/// Escapes raw control characters (bytes `< 0x20`) that appear **inside JSON string literals** as `\u00XX`.
///
/// Decrypted messages sometimes carry raw control characters in text (pasted content, emoji keyboards), which the
/// JSON grammar — and so serde_json — rejects. Escaping them is lossless: the parsed string contains exactly the
/// original characters. Bytes outside string literals (whitespace between tokens) are left alone, and a string
/// that ends up invalid for another reason stays invalid, so this never turns garbage into a message.
///
/// Returns [`Cow::Borrowed`] when nothing needs escaping, which is the common case and allocates nothing.
/// Works on bytes: every byte of a multi-byte UTF-8 sequence is `>= 0x80`, so it cannot be mistaken for `"`, `\`
/// or a control character.
pub fn escape_control_chars(json: &[u8]) -> Cow<'_, [u8]> {
    // Fast path: a vectorisable scan; compact JSON without control characters skips the state machine entirely.
    if !json.iter().any(|&b| b < 0x20) {
        return Cow::Borrowed(json);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0; // json[..copied] is already in `out`
    let mut in_string = false;
    let mut after_backslash = false;
    for (i, &b) in json.iter().enumerate() {
        if !in_string {
            in_string = b == b'"';
            continue;
        }
        if after_backslash {
            // The escaped character is taken as is: `\"` must not close the string. A raw control character right
            // after `\` is an invalid escape whichever way we write it, so it stays raw and fails the parse.
            after_backslash = false;
            continue;
        }
        match b {
            b'\\' => after_backslash = true,
            b'"' => in_string = false,
            c if c < 0x20 => {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(json.len() + 16));
                buf.extend_from_slice(&json[copied..i]);
                buf.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xF)],
                ]);
                copied = i + 1;
            }
            _ => {}
        }
    }
    match out {
        None => Cow::Borrowed(json),
        Some(mut buf) => {
            buf.extend_from_slice(&json[copied..]);
            Cow::Owned(buf)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Public model
// ---------------------------------------------------------------------------------------------------------------

/// One decrypted chat message: the common envelope plus a typed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Message id, unique per message; the dedupe key (same as the outer record's `msgid`).
    pub msgid: String,
    /// `send`, `recall` or `switch` (empty if the record has no `action`).
    pub action: String,
    /// Sender: a userid of the own corp, an external_userid (`wo…`/`wm…`), or a robot (`wb…`). `None` for switch records.
    pub from: Option<String>,
    /// Receivers: one element for a 1:1 chat, the other members for a group chat. Empty for switch records.
    pub tolist: Vec<String>,
    /// Group chat id (`wr…`). `None` for 1:1 chats: WeCom sends `""` or omits the key, both become `None` so that
    /// "is a group chat" is simply `roomid IS NOT NULL`.
    pub roomid: Option<String>,
    /// Milliseconds since the Unix epoch, UTC. For switch records this is their `time` field (also ms).
    pub msgtime: Option<i64>,
    /// The `msgtype` as sent (unknown types included); `"switch"` for switch records, which carry none.
    pub msgtype: String,
    /// The typed payload.
    pub payload: Payload,
}

/// The payload of a message, one variant per known `msgtype`.
///
/// The payload key inside the JSON is the `msgtype` except: `docmsg` → `doc`; `markdown`, `news`, `voiptext`,
/// `qydiskfile` → `info`; `meeting_notification` → `info` or `meeting_notification`; `external_redpacket` →
/// `redpacket`. A known type whose payload object is missing gets the variant with every field empty.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `text`.
    Text(Text),
    /// `image` (media).
    Image(Image),
    /// `revoke` (`action` is `recall`).
    Revoke(Revoke),
    /// `agree`: an external contact agreed to the archive.
    Agree(Agree),
    /// `disagree`: an external contact refused the archive.
    Disagree(Agree),
    /// `voice` (media).
    Voice(Voice),
    /// `video` (media).
    Video(Video),
    /// `card`: a contact card.
    Card(Card),
    /// `location`.
    Location(Location),
    /// `emotion`: a sticker (media).
    Emotion(Emotion),
    /// `file` (media).
    File(File),
    /// `link`.
    Link(Link),
    /// `weapp`: a mini program.
    Weapp(Weapp),
    /// `chatrecord`: forwarded chat history; items carry their inner message as a JSON string.
    ChatRecord(ChatRecord),
    /// `todo`.
    Todo(Todo),
    /// `vote` (nested under `vote` or flat at top level).
    Vote(Vote),
    /// `collect`: a form (填表).
    Collect(Collect),
    /// `redpacket` and `external_redpacket` (both under the `redpacket` key).
    RedPacket(RedPacket),
    /// `meeting`: a meeting invitation.
    Meeting(Meeting),
    /// `docmsg` (payload key `doc`): an online document.
    Doc(Doc),
    /// `markdown` (payload key `info`): robot messages.
    Markdown(Markdown),
    /// `news` (payload key `info`): robot article cards.
    News(News),
    /// `calendar`.
    Calendar(Calendar),
    /// `mixed`: text and images in one message; items carry their inner message as a JSON string.
    Mixed(Mixed),
    /// `meeting_voice_call` (media, with top-level `voiceid`).
    MeetingVoiceCall(MeetingVoiceCall),
    /// `voip_doc_share` (media, with top-level `voipid`).
    VoipDocShare(VoipDocShare),
    /// `sphfeed`: a WeChat Channels (视频号) post.
    SphFeed(SphFeed),
    /// `voiptext` (payload key `info`): an audio/video call summary.
    VoipText(VoipText),
    /// `qydiskfile` (payload key `info`): a WeDrive file (not downloadable through the SDK).
    QyDiskFile(QyDiskFile),
    /// `meeting_notification` (payload key `info` or `meeting_notification`).
    MeetingNotification(MeetingNotification),
    /// A switch record (`action: "switch"`, 切换企业日志): not a chat message, no envelope.
    Switch {
        /// The user who switched corp. `None` only if the record lacks it.
        user: Option<String>,
    },
    /// A `msgtype` this crate does not type (or a known one whose shape could not be typed).
    ///
    /// Holds a JSON object with every top-level key except the envelope (`msgid`, `action`, `from`, `tolist`,
    /// `roomid`, `msgtime`, `msgtype`), so the payload is kept whatever its key.
    Unknown(Value),
}

/// `text{content}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Text {
    /// The text.
    #[serde(deserialize_with = "lenient::string")]
    pub content: Option<String>,
}

/// `image{md5sum, filesize, sdkfileid}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Image {
    /// MD5 of the file, hex (may be empty).
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: Option<String>,
    /// Size in bytes.
    #[serde(deserialize_with = "lenient::u64")]
    pub filesize: Option<u64>,
    /// Media id for `GetMediaData`.
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: Option<String>,
}

/// `revoke{pre_msgid}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Revoke {
    /// The recalled message; it may belong to an earlier batch.
    #[serde(deserialize_with = "lenient::string")]
    pub pre_msgid: Option<String>,
}

/// `agree{userid, agree_time}` and `disagree{userid, disagree_time}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Agree {
    /// The external contact who (dis)agreed.
    #[serde(deserialize_with = "lenient::string")]
    pub userid: Option<String>,
    /// When, in ms since the epoch (`agree_time` or `disagree_time`).
    #[serde(
        rename = "agree_time",
        alias = "disagree_time",
        deserialize_with = "lenient::i64"
    )]
    pub time: Option<i64>,
}

/// `voice{md5sum, voice_size, play_length, sdkfileid}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Voice {
    /// MD5 of the file, hex (may be empty).
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: Option<String>,
    /// Size in bytes.
    #[serde(deserialize_with = "lenient::u64")]
    pub voice_size: Option<u64>,
    /// Duration in seconds.
    #[serde(deserialize_with = "lenient::u32")]
    pub play_length: Option<u32>,
    /// Media id for `GetMediaData` (AMR audio).
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: Option<String>,
}

/// `video{md5sum, filesize, play_length, sdkfileid}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Video {
    /// MD5 of the file, hex (may be empty).
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: Option<String>,
    /// Size in bytes.
    #[serde(deserialize_with = "lenient::u64")]
    pub filesize: Option<u64>,
    /// Duration in seconds.
    #[serde(deserialize_with = "lenient::u32")]
    pub play_length: Option<u32>,
    /// Media id for `GetMediaData` (MP4).
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: Option<String>,
}

/// `card{corpname, userid}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Card {
    /// Corp of the shared contact.
    #[serde(deserialize_with = "lenient::string")]
    pub corpname: Option<String>,
    /// The shared contact.
    #[serde(deserialize_with = "lenient::string")]
    pub userid: Option<String>,
}

/// `location{longitude, latitude, address, title, zoom}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Location {
    /// Longitude, degrees.
    #[serde(deserialize_with = "lenient::f64")]
    pub longitude: Option<f64>,
    /// Latitude, degrees.
    #[serde(deserialize_with = "lenient::f64")]
    pub latitude: Option<f64>,
    /// Street address.
    #[serde(deserialize_with = "lenient::string")]
    pub address: Option<String>,
    /// Place name.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Map zoom level.
    #[serde(deserialize_with = "lenient::u32")]
    pub zoom: Option<u32>,
}

/// `emotion{type, width, height, imagesize, md5sum, sdkfileid, title}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Emotion {
    /// 1 = GIF, 2 = PNG.
    #[serde(rename = "type", deserialize_with = "lenient::u32")]
    pub emotion_type: Option<u32>,
    /// Width in pixels.
    #[serde(deserialize_with = "lenient::u32")]
    pub width: Option<u32>,
    /// Height in pixels.
    #[serde(deserialize_with = "lenient::u32")]
    pub height: Option<u32>,
    /// Size in bytes.
    #[serde(deserialize_with = "lenient::u64")]
    pub imagesize: Option<u64>,
    /// MD5 of the file, hex (may be empty).
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: Option<String>,
    /// Media id for `GetMediaData`.
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: Option<String>,
    /// Sticker title (optional, mapped by WxJava).
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
}

/// `file{md5sum, filename, fileext, filesize, sdkfileid}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct File {
    /// MD5 of the file, hex (may be empty).
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: Option<String>,
    /// File name as sent.
    #[serde(deserialize_with = "lenient::string")]
    pub filename: Option<String>,
    /// Extension without the dot.
    #[serde(deserialize_with = "lenient::string")]
    pub fileext: Option<String>,
    /// Size in bytes.
    #[serde(deserialize_with = "lenient::u64")]
    pub filesize: Option<u64>,
    /// Media id for `GetMediaData`.
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: Option<String>,
}

/// `link{title, description, link_url, image_url}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Link {
    /// Card title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Card description.
    #[serde(deserialize_with = "lenient::string")]
    pub description: Option<String>,
    /// Target URL.
    #[serde(deserialize_with = "lenient::string")]
    pub link_url: Option<String>,
    /// Thumbnail URL.
    #[serde(deserialize_with = "lenient::string")]
    pub image_url: Option<String>,
}

/// `weapp{title, description, username, displayname}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Weapp {
    /// Card title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Card description.
    #[serde(deserialize_with = "lenient::string")]
    pub description: Option<String>,
    /// Mini program original id (`gh_…@app`).
    #[serde(deserialize_with = "lenient::string")]
    pub username: Option<String>,
    /// Mini program display name.
    #[serde(deserialize_with = "lenient::string")]
    pub displayname: Option<String>,
}

/// `chatrecord{title, item[]}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChatRecord {
    /// Title, e.g. "张三和李四的聊天记录".
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// The forwarded messages, in order.
    #[serde(deserialize_with = "lenient::obj_vec")]
    pub item: Vec<ChatRecordItem>,
}

/// One forwarded message inside a [`ChatRecord`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChatRecordItem {
    /// `ChatRecordText`, `ChatRecordImage`, `ChatRecordFile`, `ChatRecordVideo`, `ChatRecordLink`,
    /// `ChatRecordLocation`, `ChatRecordMixed`, … (the documented list is open-ended).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub item_type: Option<String>,
    /// Time of the original message. Documented as ms, but examples show 10-digit values (seconds): kept as sent.
    #[serde(deserialize_with = "lenient::i64")]
    pub msgtime: Option<i64>,
    /// The inner message's JSON, without its wrapper key (e.g. `{"content":"…"}` for text). WeCom sends a JSON
    /// string; an object sent instead is kept as its JSON text.
    #[serde(deserialize_with = "lenient::json_text")]
    pub content: Option<String>,
    /// Whether the original message came from a group chat.
    #[serde(deserialize_with = "lenient::bool")]
    pub from_chatroom: Option<bool>,
}

/// `todo{title, content}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Todo {
    /// Title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Body.
    #[serde(deserialize_with = "lenient::string")]
    pub content: Option<String>,
}

/// `vote{votetitle, voteitem[], votetype, voteid}`, nested under `vote` or flat at top level (sources disagree).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Vote {
    /// Question.
    #[serde(deserialize_with = "lenient::string")]
    pub votetitle: Option<String>,
    /// Options.
    #[serde(deserialize_with = "lenient::string_vec")]
    pub voteitem: Vec<String>,
    /// 101 = started a vote, 102 = took part.
    #[serde(deserialize_with = "lenient::u32")]
    pub votetype: Option<u32>,
    /// Vote id (a string; numbers are accepted and kept as their decimal text).
    #[serde(deserialize_with = "lenient::string")]
    pub voteid: Option<String>,
}

/// `collect{room_name, creator, create_time, title, details[]}` (填表).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Collect {
    /// Group name.
    #[serde(deserialize_with = "lenient::string")]
    pub room_name: Option<String>,
    /// Creator's display name.
    #[serde(deserialize_with = "lenient::string")]
    pub creator: Option<String>,
    /// Creation time as sent: a **string** like `"2019-12-11 11:21:22"` (older records: a number, kept as text).
    #[serde(deserialize_with = "lenient::string")]
    pub create_time: Option<String>,
    /// Form title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// The questions.
    #[serde(deserialize_with = "lenient::obj_vec")]
    pub details: Vec<CollectDetail>,
}

/// One question of a [`Collect`] form.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CollectDetail {
    /// Question id.
    #[serde(deserialize_with = "lenient::u64")]
    pub id: Option<u64>,
    /// Question text.
    #[serde(deserialize_with = "lenient::string")]
    pub ques: Option<String>,
    /// `Text`, `Number`, `Date` or `Time`.
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub ques_type: Option<String>,
}

/// `redpacket{type, wish, totalcnt, totalamount}` (also `external_redpacket`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RedPacket {
    /// 1 = normal, 2 = lucky draw, 3 = incentive.
    #[serde(rename = "type", deserialize_with = "lenient::u32")]
    pub redpacket_type: Option<u32>,
    /// Greeting.
    #[serde(deserialize_with = "lenient::string")]
    pub wish: Option<String>,
    /// Number of packets.
    #[serde(deserialize_with = "lenient::u32")]
    pub totalcnt: Option<u32>,
    /// Total amount in fen (分).
    #[serde(deserialize_with = "lenient::u64")]
    pub totalamount: Option<u64>,
}

/// `meeting{topic, starttime, endtime, address, remarks, meetingtype, meetingid, status}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Meeting {
    /// Topic.
    #[serde(deserialize_with = "lenient::string")]
    pub topic: Option<String>,
    /// Start, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub starttime: Option<i64>,
    /// End, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub endtime: Option<i64>,
    /// Place.
    #[serde(deserialize_with = "lenient::string")]
    pub address: Option<String>,
    /// Notes.
    #[serde(deserialize_with = "lenient::string")]
    pub remarks: Option<String>,
    /// 101 = invitation sent, 102 = invitation handled.
    #[serde(deserialize_with = "lenient::u32")]
    pub meetingtype: Option<u32>,
    /// Meeting id: **u64**, real ids exceed `i64::MAX`.
    #[serde(deserialize_with = "lenient::u64")]
    pub meetingid: Option<u64>,
    /// 1 = attending, 2 = declined, 3 = pending, 4 = cancelled, 5 = expired, 6 = ..., 7 = not in room.
    #[serde(deserialize_with = "lenient::u32")]
    pub status: Option<u32>,
}

/// `docmsg`, payload key `doc{title, doc_creator, link_url}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Doc {
    /// Document title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Creator's userid.
    #[serde(deserialize_with = "lenient::string")]
    pub doc_creator: Option<String>,
    /// Document URL.
    #[serde(deserialize_with = "lenient::string")]
    pub link_url: Option<String>,
}

/// `markdown`, payload key `info{content}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Markdown {
    /// Markdown source.
    #[serde(deserialize_with = "lenient::string")]
    pub content: Option<String>,
}

/// `news`, payload key `info{item[]}` (older records: flat `info{title, description, url}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct News {
    /// Articles.
    #[serde(deserialize_with = "lenient::obj_vec")]
    pub item: Vec<NewsItem>,
    /// Flat-shape title (retired 2025-05-08 per SKIT, still parsed for old records).
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Flat-shape description.
    #[serde(deserialize_with = "lenient::string")]
    pub description: Option<String>,
    /// Flat-shape URL.
    #[serde(deserialize_with = "lenient::string")]
    pub url: Option<String>,
}

/// One article of a [`News`] message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NewsItem {
    /// Title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Description.
    #[serde(deserialize_with = "lenient::string")]
    pub description: Option<String>,
    /// Article URL.
    #[serde(deserialize_with = "lenient::string")]
    pub url: Option<String>,
    /// Picture URL.
    #[serde(deserialize_with = "lenient::string")]
    pub picurl: Option<String>,
}

/// `calendar{title, creatorname, attendeename[], starttime, endtime, place, remarks}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Calendar {
    /// Title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Creator's display name.
    #[serde(deserialize_with = "lenient::string")]
    pub creatorname: Option<String>,
    /// Attendees' display names.
    #[serde(deserialize_with = "lenient::string_vec")]
    pub attendeename: Vec<String>,
    /// Start, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub starttime: Option<i64>,
    /// End, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub endtime: Option<i64>,
    /// Place.
    #[serde(deserialize_with = "lenient::string")]
    pub place: Option<String>,
    /// Notes.
    #[serde(deserialize_with = "lenient::string")]
    pub remarks: Option<String>,
}

/// `mixed{item[]}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Mixed {
    /// The parts, in order.
    #[serde(deserialize_with = "lenient::obj_vec")]
    pub item: Vec<MixedItem>,
}

/// One part of a [`Mixed`] message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MixedItem {
    /// `text`, `image`, `emotion`, … (the inner msgtype).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub item_type: Option<String>,
    /// The inner message's JSON as a string (e.g. `{"content":"…"}`); an object sent instead is kept as its text.
    #[serde(deserialize_with = "lenient::json_text")]
    pub content: Option<String>,
}

/// `meeting_voice_call{endtime, sdkfileid, demofiledata[], sharescreendata[]}` plus the top-level `voiceid`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MeetingVoiceCall {
    /// Top-level `voiceid` of the record (WxJava names the downloaded audio after it).
    #[serde(deserialize_with = "lenient::string")]
    pub voiceid: Option<String>,
    /// End of the call, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub endtime: Option<i64>,
    /// Media id for `GetMediaData` (the recording; no md5 or size is given).
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: Option<String>,
    /// Documents presented during the call.
    #[serde(deserialize_with = "lenient::obj_vec")]
    pub demofiledata: Vec<DemoFile>,
    /// Screen shares during the call.
    #[serde(deserialize_with = "lenient::obj_vec")]
    pub sharescreendata: Vec<ShareScreen>,
}

/// A document presented during a [`MeetingVoiceCall`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DemoFile {
    /// Document name.
    #[serde(deserialize_with = "lenient::string")]
    pub filename: Option<String>,
    /// Who presented it.
    #[serde(deserialize_with = "lenient::string")]
    pub demooperator: Option<String>,
    /// Start, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub starttime: Option<i64>,
    /// End, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub endtime: Option<i64>,
}

/// A screen share during a [`MeetingVoiceCall`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShareScreen {
    /// Who shared.
    #[serde(deserialize_with = "lenient::string")]
    pub share: Option<String>,
    /// Start, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub starttime: Option<i64>,
    /// End, seconds since the epoch.
    #[serde(deserialize_with = "lenient::i64")]
    pub endtime: Option<i64>,
}

/// `voip_doc_share{filename, md5sum, filesize, sdkfileid}` plus the top-level `voipid`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VoipDocShare {
    /// Top-level `voipid` of the record.
    #[serde(deserialize_with = "lenient::string")]
    pub voipid: Option<String>,
    /// Document name.
    #[serde(deserialize_with = "lenient::string")]
    pub filename: Option<String>,
    /// MD5 of the file, hex (may be empty).
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: Option<String>,
    /// Size in bytes.
    #[serde(deserialize_with = "lenient::u64")]
    pub filesize: Option<u64>,
    /// Media id for `GetMediaData`.
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: Option<String>,
}

/// `sphfeed{feed_type, sph_name, feed_desc}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SphFeed {
    /// 2 = pictures, 4 = video, 9 = live.
    #[serde(deserialize_with = "lenient::u32")]
    pub feed_type: Option<u32>,
    /// Channel name.
    #[serde(deserialize_with = "lenient::string")]
    pub sph_name: Option<String>,
    /// Post description.
    #[serde(deserialize_with = "lenient::string")]
    pub feed_desc: Option<String>,
}

/// `voiptext`, payload key `info{callduration, invitetype}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VoipText {
    /// Call duration in seconds.
    #[serde(deserialize_with = "lenient::u32")]
    pub callduration: Option<u32>,
    /// 1 = 1:1 video, 2 = 1:1 voice, 3 = group video, 4 = group voice.
    #[serde(deserialize_with = "lenient::u32")]
    pub invitetype: Option<u32>,
}

/// `qydiskfile`, payload key `info{filename}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct QyDiskFile {
    /// File name.
    #[serde(deserialize_with = "lenient::string")]
    pub filename: Option<String>,
}

/// `meeting_notification`, payload key `info` or `meeting_notification`: `{meeting_id, notification_type}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MeetingNotification {
    /// Meeting id, kept as text (sent as a number by some sources, as a string by others).
    #[serde(deserialize_with = "lenient::string")]
    pub meeting_id: Option<String>,
    /// Notification type code.
    #[serde(deserialize_with = "lenient::i64")]
    pub notification_type: Option<i64>,
}

// ---------------------------------------------------------------------------------------------------------------
// Media references
// ---------------------------------------------------------------------------------------------------------------

/// What kind of media a [`MediaRef`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Picture (JPEG).
    Image,
    /// Voice note (AMR).
    Voice,
    /// Video (MP4).
    Video,
    /// Sticker (GIF or PNG).
    Emotion,
    /// Any file.
    File,
    /// Recording of a meeting voice call.
    MeetingVoiceCall,
    /// Document shared during a VoIP call.
    VoipDocShare,
    /// Something else carrying an `sdkfileid` (an untyped msgtype or an unrecognised item type): still downloadable.
    Other,
}

impl MediaKind {
    /// Lower-case name, as used in msgtypes (`"image"`, `"meeting_voice_call"`, …; `"other"`).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Video => "video",
            MediaKind::Emotion => "emotion",
            MediaKind::File => "file",
            MediaKind::MeetingVoiceCall => "meeting_voice_call",
            MediaKind::VoipDocShare => "voip_doc_share",
            MediaKind::Other => "other",
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A downloadable media file referenced by a message (fetch it with `GetMediaData(sdkfileid)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// Media kind.
    pub kind: MediaKind,
    /// Media id for `GetMediaData`; never empty.
    pub sdkfileid: String,
    /// MD5 of the file, lower-case hex as sent; `None` when absent or empty (WeCom sometimes sends `""`).
    pub md5sum: Option<String>,
    /// Size in bytes when known (`filesize`, `voice_size` or `imagesize`).
    pub size: Option<u64>,
    /// Suggested file extension without the dot: `jpg`, `amr`, `mp4`, `gif`/`png` by emotion type, the file's own
    /// extension for files; `None` when unknown.
    pub ext: Option<String>,
    /// Position of the item inside a `mixed` or `chatrecord` message (top-level item, also for nested ones);
    /// `None` for the message's own media.
    pub item_index: Option<u32>,
}

impl ChatMessage {
    /// Every media file the message references, in document order, including those inside `mixed` and
    /// `chatrecord` items (whose content is a JSON string, parsed here) and any object with an `sdkfileid` inside
    /// an [`Payload::Unknown`] payload. Entries without an `sdkfileid` are skipped: they cannot be downloaded.
    pub fn media(&self) -> Vec<MediaRef> {
        let mut out = Vec::new();
        match &self.payload {
            Payload::Image(p) => push_media(
                &mut out,
                MediaKind::Image,
                &p.sdkfileid,
                &p.md5sum,
                p.filesize,
                None,
                None,
            ),
            Payload::Voice(p) => push_media(
                &mut out,
                MediaKind::Voice,
                &p.sdkfileid,
                &p.md5sum,
                p.voice_size,
                None,
                None,
            ),
            Payload::Video(p) => push_media(
                &mut out,
                MediaKind::Video,
                &p.sdkfileid,
                &p.md5sum,
                p.filesize,
                None,
                None,
            ),
            Payload::Emotion(p) => {
                let ext = emotion_ext(p.emotion_type);
                push_media(
                    &mut out,
                    MediaKind::Emotion,
                    &p.sdkfileid,
                    &p.md5sum,
                    p.imagesize,
                    ext,
                    None,
                )
            }
            Payload::File(p) => {
                let ext = file_ext(p.fileext.as_deref(), p.filename.as_deref());
                push_media(
                    &mut out,
                    MediaKind::File,
                    &p.sdkfileid,
                    &p.md5sum,
                    p.filesize,
                    ext,
                    None,
                )
            }
            Payload::MeetingVoiceCall(p) => push_media(
                &mut out,
                MediaKind::MeetingVoiceCall,
                &p.sdkfileid,
                &None,
                None,
                None,
                None,
            ),
            Payload::VoipDocShare(p) => {
                let ext = file_ext(None, p.filename.as_deref());
                push_media(
                    &mut out,
                    MediaKind::VoipDocShare,
                    &p.sdkfileid,
                    &p.md5sum,
                    p.filesize,
                    ext,
                    None,
                )
            }
            Payload::Mixed(m) => {
                for (i, it) in m.item.iter().enumerate() {
                    item_media(
                        &mut out,
                        it.item_type.as_deref(),
                        it.content.as_deref(),
                        index_u32(i),
                        0,
                    );
                }
            }
            Payload::ChatRecord(c) => {
                for (i, it) in c.item.iter().enumerate() {
                    item_media(
                        &mut out,
                        it.item_type.as_deref(),
                        it.content.as_deref(),
                        index_u32(i),
                        0,
                    );
                }
            }
            Payload::Unknown(v) => value_media(&mut out, v, None, 0),
            _ => {}
        }
        out
    }

    /// Number of entries [`ChatMessage::media`] would return.
    pub fn media_count(&self) -> usize {
        match &self.payload {
            // Single-media payloads: answer without allocating.
            Payload::Image(Image { sdkfileid, .. })
            | Payload::Voice(Voice { sdkfileid, .. })
            | Payload::Video(Video { sdkfileid, .. })
            | Payload::Emotion(Emotion { sdkfileid, .. })
            | Payload::File(File { sdkfileid, .. })
            | Payload::MeetingVoiceCall(MeetingVoiceCall { sdkfileid, .. })
            | Payload::VoipDocShare(VoipDocShare { sdkfileid, .. }) => {
                usize::from(non_empty(sdkfileid).is_some())
            }
            Payload::Mixed(_) | Payload::ChatRecord(_) | Payload::Unknown(_) => self.media().len(),
            _ => 0,
        }
    }
}

/// Nesting bound for media inside items (chatrecord in chatrecord …): real messages nest one or two levels; the
/// bound only stops hostile input from recursing without end.
const MAX_MEDIA_DEPTH: u32 = 8;

fn index_u32(i: usize) -> Option<u32> {
    Some(u32::try_from(i).unwrap_or(u32::MAX))
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn push_media(
    out: &mut Vec<MediaRef>,
    kind: MediaKind,
    sdkfileid: &Option<String>,
    md5sum: &Option<String>,
    size: Option<u64>,
    ext: Option<String>,
    item_index: Option<u32>,
) {
    let Some(id) = non_empty(sdkfileid) else {
        return;
    };
    let ext = ext.or_else(|| default_ext(kind).map(str::to_owned));
    out.push(MediaRef {
        kind,
        sdkfileid: id.to_owned(),
        md5sum: non_empty(md5sum).map(str::to_owned),
        size,
        ext,
        item_index,
    });
}

fn default_ext(kind: MediaKind) -> Option<&'static str> {
    match kind {
        MediaKind::Image => Some("jpg"),
        MediaKind::Voice => Some("amr"),
        MediaKind::Video => Some("mp4"),
        _ => None,
    }
}

fn emotion_ext(emotion_type: Option<u32>) -> Option<String> {
    match emotion_type {
        Some(1) => Some("gif".to_owned()),
        Some(2) => Some("png".to_owned()),
        _ => None,
    }
}

/// The declared extension if any, else the file name's extension.
fn file_ext(fileext: Option<&str>, filename: Option<&str>) -> Option<String> {
    let ext = fileext.filter(|e| !e.is_empty()).or_else(|| {
        filename
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e)
            .filter(|e| !e.is_empty() && e.len() <= 16 && !e.contains(['/', '\\']))
    })?;
    Some(ext.trim_start_matches('.').to_owned())
}

/// Fields an inner item's content may carry; one struct for every inner type keeps item parsing to one pass.
#[derive(Default, Deserialize)]
#[serde(default)]
struct InnerContent {
    #[serde(deserialize_with = "lenient::string")]
    sdkfileid: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    md5sum: Option<String>,
    #[serde(deserialize_with = "lenient::u64")]
    filesize: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    voice_size: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    imagesize: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    fileext: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    filename: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient::u32")]
    emotion_type: Option<u32>,
    /// Nested `mixed` / `chatrecord` content.
    #[serde(deserialize_with = "lenient::obj_vec")]
    item: Vec<MixedItem>,
}

/// Media of one mixed/chatrecord item. `item_type` is `image` (mixed) or `ChatRecordImage` (chatrecord), …
fn item_media(
    out: &mut Vec<MediaRef>,
    item_type: Option<&str>,
    content: Option<&str>,
    index: Option<u32>,
    depth: u32,
) {
    let Some(content) = content else { return };
    let ty = item_type.unwrap_or("").to_ascii_lowercase();
    let ty = ty
        .strip_prefix("chatrecord")
        .filter(|t| !t.is_empty())
        .unwrap_or(&ty);
    // Cheap pre-check: text, link, location … items never need the inner parse.
    if depth > MAX_MEDIA_DEPTH || !content.contains("sdkfileid") {
        return;
    }
    // The inner JSON was unescaped once by the outer parse, so raw control characters may appear again.
    let bytes = escape_control_chars(content.as_bytes());
    let Ok(inner) = serde_json::from_slice::<lenient::Lenient<InnerContent>>(&bytes) else {
        return;
    };
    let inner = inner.0;
    // Nested `mixed` / `chatrecord` content (e.g. `ChatRecordMixed`): its items keep the top-level index.
    for it in &inner.item {
        item_media(
            out,
            it.item_type.as_deref(),
            it.content.as_deref(),
            index,
            depth + 1,
        );
    }
    let kind = match ty {
        "image" => MediaKind::Image,
        "voice" => MediaKind::Voice,
        "video" => MediaKind::Video,
        "emotion" => MediaKind::Emotion,
        "file" => MediaKind::File,
        "meeting_voice_call" => MediaKind::MeetingVoiceCall,
        "voip_doc_share" => MediaKind::VoipDocShare,
        _ => MediaKind::Other,
    };
    let size = inner.filesize.or(inner.voice_size).or(inner.imagesize);
    let ext = match kind {
        MediaKind::Emotion => emotion_ext(inner.emotion_type),
        MediaKind::File | MediaKind::VoipDocShare | MediaKind::Other => {
            file_ext(inner.fileext.as_deref(), inner.filename.as_deref())
        }
        _ => None,
    };
    push_media(out, kind, &inner.sdkfileid, &inner.md5sum, size, ext, index);
}

/// Media inside an untyped payload: any object with a non-empty string `sdkfileid`, and JSON strings that embed one.
fn value_media(out: &mut Vec<MediaRef>, v: &Value, index: Option<u32>, depth: u32) {
    if depth > MAX_MEDIA_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("sdkfileid") {
                let s = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
                let size = ["filesize", "voice_size", "imagesize", "size"]
                    .iter()
                    .find_map(|k| {
                        map.get(*k)
                            .and_then(|n| n.as_u64().or_else(|| n.as_str()?.trim().parse().ok()))
                    });
                let ext = file_ext(
                    map.get("fileext").and_then(Value::as_str),
                    map.get("filename").and_then(Value::as_str),
                );
                push_media(
                    out,
                    MediaKind::Other,
                    &Some(id.clone()),
                    &s("md5sum"),
                    size,
                    ext,
                    index,
                );
            }
            for (k, child) in map {
                if k != "sdkfileid" {
                    value_media(out, child, index, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for child in items {
                value_media(out, child, index, depth + 1);
            }
        }
        Value::String(s) if s.starts_with('{') && s.contains("sdkfileid") => {
            if let Ok(inner) = serde_json::from_slice::<Value>(&escape_control_chars(s.as_bytes()))
            {
                value_media(out, &inner, index, depth + 1);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------------

/// Parses a decrypted message plaintext into a [`ChatMessage`].
///
/// Steps: UTF-8 check, a cheap "starts with `{`" check (a UTF-8 BOM and JSON whitespace are skipped),
/// [`escape_control_chars`], then one streaming serde pass. Unknown msgtypes and odd payload shapes never fail;
/// see [`ParseError`] for what does.
pub fn parse(plaintext: &[u8]) -> Result<ChatMessage, ParseError> {
    let text = std::str::from_utf8(plaintext).map_err(|e| ParseError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Checked up front so that "not an object" is its own error and not a serde type error (which would otherwise
    // be taken for a payload shape problem below).
    match text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        Some(b'{') => {}
        _ => return Err(ParseError::NotAnObject),
    }
    let text: Cow<'_, str> = match escape_control_chars(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Escaping only replaces ASCII bytes with ASCII bytes, so the result is still UTF-8.
        Cow::Owned(bytes) => {
            Cow::Owned(String::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
                valid_up_to: e.utf8_error().valid_up_to(),
            })?)
        }
    };
    match parse_json(&text, true) {
        Ok(msg) => msg,
        // A *data* error (syntax is fine) means a known payload had a shape serde could not type, e.g. a duplicated
        // key. Keep the message: re-read it with every payload untyped.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            // Rare and harmless (the row keeps raw_json), but worth seeing when a new payload shape shows up.
            tracing::debug!(error = %e, "payload could not be typed; kept as Payload::Unknown");
            parse_json(&text, false)?
        }
        Err(e) => Err(e.into()),
    }
}

/// One streaming pass; `typed == false` stores every payload as [`Payload::Unknown`].
fn parse_json(
    text: &str,
    typed: bool,
) -> Result<Result<ChatMessage, ParseError>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let partial = de.deserialize_map(MessageVisitor { typed })?;
    de.end()?;
    partial.finish(typed)
}

/// What the payload of a record is, decided from `msgtype` (or `action == "switch"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Image,
    Revoke,
    Agree,
    Disagree,
    Voice,
    Video,
    Card,
    Location,
    Emotion,
    File,
    Link,
    Weapp,
    ChatRecord,
    Todo,
    Vote,
    Collect,
    RedPacket,
    ExternalRedPacket,
    Meeting,
    Doc,
    Markdown,
    News,
    Calendar,
    Mixed,
    MeetingVoiceCall,
    VoipDocShare,
    SphFeed,
    VoipText,
    QyDiskFile,
    MeetingNotification,
    Switch,
    Unknown,
}

impl Kind {
    fn from_msgtype(t: &str) -> Kind {
        match t {
            "text" => Kind::Text,
            "image" => Kind::Image,
            "revoke" => Kind::Revoke,
            "agree" => Kind::Agree,
            "disagree" => Kind::Disagree,
            "voice" => Kind::Voice,
            "video" => Kind::Video,
            "card" => Kind::Card,
            "location" => Kind::Location,
            "emotion" => Kind::Emotion,
            "file" => Kind::File,
            "link" => Kind::Link,
            "weapp" => Kind::Weapp,
            "chatrecord" => Kind::ChatRecord,
            "todo" => Kind::Todo,
            "vote" => Kind::Vote,
            "collect" => Kind::Collect,
            "redpacket" => Kind::RedPacket,
            "external_redpacket" => Kind::ExternalRedPacket,
            "meeting" => Kind::Meeting,
            "docmsg" => Kind::Doc,
            "markdown" => Kind::Markdown,
            "news" => Kind::News,
            "calendar" => Kind::Calendar,
            "mixed" => Kind::Mixed,
            "meeting_voice_call" => Kind::MeetingVoiceCall,
            "voip_doc_share" => Kind::VoipDocShare,
            "sphfeed" => Kind::SphFeed,
            "voiptext" => Kind::VoipText,
            "qydiskfile" => Kind::QyDiskFile,
            "meeting_notification" => Kind::MeetingNotification,
            _ => Kind::Unknown,
        }
    }

    /// Keys the payload object may be found under, preferred first (the msgtype itself is accepted as a fallback
    /// for the renamed ones, which costs nothing and covers normalizers that "fixed" the key).
    fn payload_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Text => &["text"],
            Kind::Image => &["image"],
            Kind::Revoke => &["revoke"],
            Kind::Agree => &["agree"],
            Kind::Disagree => &["disagree"],
            Kind::Voice => &["voice"],
            Kind::Video => &["video"],
            Kind::Card => &["card"],
            Kind::Location => &["location"],
            Kind::Emotion => &["emotion"],
            Kind::File => &["file"],
            Kind::Link => &["link"],
            Kind::Weapp => &["weapp"],
            Kind::ChatRecord => &["chatrecord"],
            Kind::Todo => &["todo"],
            Kind::Vote => &["vote"],
            Kind::Collect => &["collect"],
            Kind::RedPacket => &["redpacket"],
            Kind::ExternalRedPacket => &["redpacket", "external_redpacket"],
            Kind::Meeting => &["meeting"],
            Kind::Doc => &["doc", "docmsg"],
            Kind::Markdown => &["info", "markdown"],
            Kind::News => &["info", "news"],
            Kind::Calendar => &["calendar"],
            Kind::Mixed => &["mixed"],
            Kind::MeetingVoiceCall => &["meeting_voice_call"],
            Kind::VoipDocShare => &["voip_doc_share"],
            Kind::SphFeed => &["sphfeed"],
            Kind::VoipText => &["info", "voiptext"],
            Kind::QyDiskFile => &["info", "qydiskfile"],
            Kind::MeetingNotification => &["info", "meeting_notification"],
            Kind::Switch | Kind::Unknown => &[],
        }
    }
}

/// Deserializes the payload object of `kind` (anything that is not an object yields the empty payload).
fn typed_payload<'de, D: Deserializer<'de>>(kind: Kind, d: D) -> Result<Payload, D::Error> {
    use lenient::obj;
    Ok(match kind {
        Kind::Text => Payload::Text(obj(d)?),
        Kind::Image => Payload::Image(obj(d)?),
        Kind::Revoke => Payload::Revoke(obj(d)?),
        Kind::Agree => Payload::Agree(obj(d)?),
        Kind::Disagree => Payload::Disagree(obj(d)?),
        Kind::Voice => Payload::Voice(obj(d)?),
        Kind::Video => Payload::Video(obj(d)?),
        Kind::Card => Payload::Card(obj(d)?),
        Kind::Location => Payload::Location(obj(d)?),
        Kind::Emotion => Payload::Emotion(obj(d)?),
        Kind::File => Payload::File(obj(d)?),
        Kind::Link => Payload::Link(obj(d)?),
        Kind::Weapp => Payload::Weapp(obj(d)?),
        Kind::ChatRecord => Payload::ChatRecord(obj(d)?),
        Kind::Todo => Payload::Todo(obj(d)?),
        Kind::Vote => Payload::Vote(obj(d)?),
        Kind::Collect => Payload::Collect(obj(d)?),
        Kind::RedPacket | Kind::ExternalRedPacket => Payload::RedPacket(obj(d)?),
        Kind::Meeting => Payload::Meeting(obj(d)?),
        Kind::Doc => Payload::Doc(obj(d)?),
        Kind::Markdown => Payload::Markdown(obj(d)?),
        Kind::News => Payload::News(obj(d)?),
        Kind::Calendar => Payload::Calendar(obj(d)?),
        Kind::Mixed => Payload::Mixed(obj(d)?),
        Kind::MeetingVoiceCall => Payload::MeetingVoiceCall(obj(d)?),
        Kind::VoipDocShare => Payload::VoipDocShare(obj(d)?),
        Kind::SphFeed => Payload::SphFeed(obj(d)?),
        Kind::VoipText => Payload::VoipText(obj(d)?),
        Kind::QyDiskFile => Payload::QyDiskFile(obj(d)?),
        Kind::MeetingNotification => Payload::MeetingNotification(obj(d)?),
        Kind::Switch => Payload::Switch { user: None },
        Kind::Unknown => Payload::Unknown(Value::deserialize(d)?),
    })
}

/// Top-level keys, with the envelope ones recognised without allocating.
enum Key<'de> {
    Msgid,
    Action,
    From,
    Tolist,
    Roomid,
    Msgtime,
    Msgtype,
    Other(Cow<'de, str>),
}

fn envelope_key(s: &str) -> Option<Key<'static>> {
    Some(match s {
        "msgid" => Key::Msgid,
        "action" => Key::Action,
        "from" => Key::From,
        "tolist" => Key::Tolist,
        "roomid" => Key::Roomid,
        "msgtime" => Key::Msgtime,
        "msgtype" => Key::Msgtype,
        _ => return None,
    })
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(envelope_key(s).unwrap_or(Key::Other(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(envelope_key(s).unwrap_or_else(|| Key::Other(Cow::Owned(s.to_owned()))))
            }
        }
        d.deserialize_str(V)
    }
}

/// Everything read from the top-level object, before it is assembled into a [`ChatMessage`].
#[derive(Default)]
struct Partial {
    msgid: Option<String>,
    action: Option<String>,
    from: Option<String>,
    tolist: Vec<String>,
    roomid: Option<String>,
    msgtime: Option<i64>,
    msgtype: Option<String>,
    /// Decided once `msgtype` (or `action: "switch"`) has been read.
    kind: Option<Kind>,
    payload: Option<Payload>,
    /// Switch records: `time` (ms) and `user`.
    time: Option<i64>,
    user: Option<String>,
    /// Top-level ids of `meeting_voice_call` / `voip_doc_share`.
    voiceid: Option<String>,
    voipid: Option<String>,
    /// The flat vote shape (fields at top level).
    flat_vote: Option<Vote>,
    /// Non-envelope keys of an unknown msgtype.
    extra: serde_json::Map<String, Value>,
    /// Non-envelope keys seen before the kind was known.
    deferred: Vec<(String, Value)>,
}

impl Partial {
    fn decide_kind(&mut self, typed: bool) {
        self.kind = Some(if self.action.as_deref() == Some("switch") {
            Kind::Switch
        } else if !typed {
            Kind::Unknown
        } else {
            self.msgtype
                .as_deref()
                .map_or(Kind::Unknown, Kind::from_msgtype)
        });
    }

    fn finish(mut self, typed: bool) -> Result<Result<ChatMessage, ParseError>, serde_json::Error> {
        let Some(msgid) = self.msgid.take().filter(|m| !m.is_empty()) else {
            return Ok(Err(ParseError::MissingMsgid));
        };
        // Decide once more with everything read, in case `action: "switch"` came after `msgtype`.
        self.decide_kind(typed);
        let kind = self.kind.unwrap_or(Kind::Unknown);
        for (key, value) in std::mem::take(&mut self.deferred) {
            if kind == Kind::Unknown {
                self.extra.insert(key, value);
            } else {
                FieldSeed {
                    st: &mut self,
                    kind,
                    key: &key,
                }
                .deserialize(value)?;
            }
        }
        let payload = match kind {
            Kind::Switch => Payload::Switch {
                user: self.user.take(),
            },
            Kind::Unknown => Payload::Unknown(Value::Object(std::mem::take(&mut self.extra))),
            Kind::Vote => Payload::Vote(merge_vote(self.payload.take(), self.flat_vote.take())),
            _ => match self.payload.take() {
                Some(p) => p,
                // The payload key is missing: keep the type with empty fields.
                None => typed_payload(
                    kind,
                    serde::de::value::UnitDeserializer::<serde_json::Error>::new(),
                )?,
            },
        };
        let payload = match payload {
            Payload::MeetingVoiceCall(mut p) => {
                p.voiceid = self.voiceid.take().or(p.voiceid);
                Payload::MeetingVoiceCall(p)
            }
            Payload::VoipDocShare(mut p) => {
                p.voipid = self.voipid.take().or(p.voipid);
                Payload::VoipDocShare(p)
            }
            p => p,
        };
        let is_switch = kind == Kind::Switch;
        Ok(Ok(ChatMessage {
            msgid,
            action: self.action.unwrap_or_default(),
            from: self.from,
            tolist: self.tolist,
            roomid: self.roomid.filter(|r| !r.is_empty()),
            msgtime: if is_switch {
                self.time.or(self.msgtime)
            } else {
                self.msgtime
            },
            msgtype: match self.msgtype {
                Some(t) => t,
                None if is_switch => "switch".to_owned(),
                None => String::new(),
            },
            payload,
        }))
    }
}

/// Nested fields win; the flat (top-level) shape fills what the nested one lacks.
fn merge_vote(nested: Option<Payload>, flat: Option<Vote>) -> Vote {
    let nested = match nested {
        Some(Payload::Vote(v)) => Some(v),
        _ => None,
    };
    match (nested, flat) {
        (Some(mut n), Some(f)) => {
            n.votetitle = n.votetitle.or(f.votetitle);
            if n.voteitem.is_empty() {
                n.voteitem = f.voteitem;
            }
            n.votetype = n.votetype.or(f.votetype);
            n.voteid = n.voteid.or(f.voteid);
            n
        }
        (Some(n), None) => n,
        (None, Some(f)) => f,
        (None, None) => Vote::default(),
    }
}

struct MessageVisitor {
    typed: bool,
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Partial;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chat message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Partial, A::Error> {
        let mut st = Partial::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key {
                Key::Msgid => st.msgid = map.next_value::<lenient::Scalar>()?.into_string(),
                Key::Action => {
                    st.action = map.next_value::<lenient::Scalar>()?.into_string();
                    if st.action.as_deref() == Some("switch") {
                        st.decide_kind(self.typed);
                    }
                }
                Key::From => st.from = map.next_value::<lenient::Scalar>()?.into_string(),
                Key::Tolist => st.tolist = map.next_value::<lenient::StringVec>()?.0,
                Key::Roomid => st.roomid = map.next_value::<lenient::Scalar>()?.into_string(),
                Key::Msgtime => st.msgtime = map.next_value::<lenient::Scalar>()?.to_i64(),
                Key::Msgtype => {
                    st.msgtype = map.next_value::<lenient::Scalar>()?.into_string();
                    st.decide_kind(self.typed);
                }
                Key::Other(k) => match st.kind {
                    Some(kind) => map.next_value_seed(FieldSeed {
                        st: &mut st,
                        kind,
                        key: &k,
                    })?,
                    None => {
                        let v = map.next_value::<Value>()?;
                        st.deferred.push((k.into_owned(), v));
                    }
                },
            }
        }
        Ok(st)
    }
}

/// Handles one non-envelope top-level key once the kind is known: the payload, switch/vote/call extras, or
/// (unknown kind) a raw value. Everything else is skipped without being materialised.
struct FieldSeed<'a> {
    st: &'a mut Partial,
    kind: Kind,
    key: &'a str,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let st = self.st;
        match (self.kind, self.key) {
            (Kind::Unknown, key) => {
                st.extra.insert(key.to_owned(), Value::deserialize(d)?);
            }
            (Kind::Switch, "time") => st.time = lenient::i64(d)?,
            (Kind::Switch, "user") => st.user = lenient::string(d)?,
            (Kind::MeetingVoiceCall, "voiceid") => st.voiceid = lenient::string(d)?,
            (Kind::VoipDocShare, "voipid") => st.voipid = lenient::string(d)?,
            (Kind::Vote, key @ ("votetitle" | "voteitem" | "votetype" | "voteid")) => {
                let v = st.flat_vote.get_or_insert_with(Vote::default);
                match key {
                    "votetitle" => v.votetitle = lenient::string(d)?,
                    "voteitem" => v.voteitem = lenient::string_vec(d)?,
                    "votetype" => v.votetype = lenient::u32(d)?,
                    _ => v.voteid = lenient::string(d)?,
                }
            }
            (kind, key) if st.payload.is_none() && kind.payload_keys().contains(&key) => {
                st.payload = Some(typed_payload(kind, d)?);
            }
            _ => {
                IgnoredAny::deserialize(d)?;
            }
        }
        Ok(())
    }
}

/// Field deserializers that accept the documented type and its cheap alternatives, and yield `None` (or an empty
/// value) instead of an error for anything else — so one odd field never costs a message.
mod lenient {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;
    use serde_json::Value;

    /// Any JSON value, reduced to what a scalar field can use. Arrays and objects are skipped, not materialised.
    pub(super) enum Scalar {
        U(u64),
        I(i64),
        F(f64),
        S(String),
        B(bool),
        /// `null`, an array or an object.
        Nothing,
    }

    impl Scalar {
        pub(super) fn into_string(self) -> Option<String> {
            match self {
                Scalar::S(s) => Some(s),
                Scalar::U(n) => Some(n.to_string()),
                Scalar::I(n) => Some(n.to_string()),
                Scalar::F(n) => Some(n.to_string()),
                Scalar::B(b) => Some(b.to_string()),
                Scalar::Nothing => None,
            }
        }

        pub(super) fn to_u64(&self) -> Option<u64> {
            match *self {
                Scalar::U(n) => Some(n),
                Scalar::I(n) => u64::try_from(n).ok(),
                Scalar::F(f) => float_to_int(f).and_then(|n| u64::try_from(n).ok()),
                Scalar::S(ref s) => {
                    let s = s.trim();
                    s.parse().ok().or_else(|| {
                        float_to_int(s.parse().ok()?).and_then(|n| u64::try_from(n).ok())
                    })
                }
                Scalar::B(_) | Scalar::Nothing => None,
            }
        }

        pub(super) fn to_i64(&self) -> Option<i64> {
            match *self {
                Scalar::U(n) => i64::try_from(n).ok(),
                Scalar::I(n) => Some(n),
                Scalar::F(f) => float_to_int(f).and_then(|n| i64::try_from(n).ok()),
                Scalar::S(ref s) => {
                    let s = s.trim();
                    s.parse().ok().or_else(|| {
                        float_to_int(s.parse().ok()?).and_then(|n| i64::try_from(n).ok())
                    })
                }
                Scalar::B(_) | Scalar::Nothing => None,
            }
        }

        fn to_f64(&self) -> Option<f64> {
            match *self {
                // Precision loss above 2^53 is irrelevant for the f64 fields (coordinates).
                Scalar::U(n) => Some(n as f64),
                Scalar::I(n) => Some(n as f64),
                Scalar::F(f) => Some(f),
                Scalar::S(ref s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
                Scalar::B(_) | Scalar::Nothing => None,
            }
        }

        fn to_bool(&self) -> Option<bool> {
            match *self {
                Scalar::B(b) => Some(b),
                Scalar::U(n) => Some(n != 0),
                Scalar::I(n) => Some(n != 0),
                Scalar::S(ref s) => match s.trim() {
                    "true" | "1" => Some(true),
                    "false" | "0" => Some(false),
                    _ => None,
                },
                Scalar::F(_) | Scalar::Nothing => None,
            }
        }
    }

    /// An integral float (`1714029001123.0`) as an integer; `None` for fractions, NaN and out-of-range values.
    fn float_to_int(f: f64) -> Option<i128> {
        // The u64/i64 range is checked by the callers' try_from; i128 holds every integral f64 below 1e20 exactly.
        (f.is_finite() && f.fract() == 0.0 && f.abs() < 1.0e20).then_some(f as i128)
    }

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Scalar;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                    Ok(Scalar::B(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar::I(v))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar::U(v))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar::F(v))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar::S(v.to_owned()))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                    Ok(Scalar::S(v))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar::Nothing)
                }
                fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar::Nothing)
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                    Scalar::deserialize(d)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
                    IgnoredAny::deserialize(SeqAccessDeserializer::new(seq))?;
                    Ok(Scalar::Nothing)
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
                    IgnoredAny::deserialize(MapAccessDeserializer::new(map))?;
                    Ok(Scalar::Nothing)
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A string; numbers and booleans become their JSON text.
    pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Scalar::deserialize(d)?.into_string())
    }

    /// A u64 from a number or a numeric string.
    pub(super) fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(Scalar::deserialize(d)?.to_u64())
    }

    /// A u32 from a number or a numeric string; out-of-range values become `None`.
    pub(super) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Ok(Scalar::deserialize(d)?
            .to_u64()
            .and_then(|n| u32::try_from(n).ok()))
    }

    /// An i64 from a number or a numeric string.
    pub(super) fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(Scalar::deserialize(d)?.to_i64())
    }

    /// An f64 from a number or a numeric string.
    pub(super) fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Scalar::deserialize(d)?.to_f64())
    }

    /// A bool from `true`/`false`, 0/1 or their strings.
    pub(super) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(Scalar::deserialize(d)?.to_bool())
    }

    /// A string holding JSON: strings are taken as is, objects and arrays are kept as their JSON text.
    pub(super) fn json_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    }

    /// A list of strings (non-string elements converted like [`string`], `null`s dropped); a lone string becomes a
    /// one-element list; anything else an empty list.
    pub(super) fn string_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(StringVec::deserialize(d)?.0)
    }

    /// Newtype so that [`string_vec`] can be used with `next_value`.
    pub(super) struct StringVec(pub(super) Vec<String>);

    impl<'de> Deserialize<'de> for StringVec {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = StringVec;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a list of strings")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringVec, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                    while let Some(s) = seq.next_element::<Scalar>()? {
                        out.extend(s.into_string());
                    }
                    Ok(StringVec(out))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<StringVec, E> {
                    Ok(StringVec(vec![v.to_owned()]))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<StringVec, E> {
                    Ok(StringVec(vec![v]))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StringVec, A::Error> {
                    IgnoredAny::deserialize(MapAccessDeserializer::new(map))?;
                    Ok(StringVec(Vec::new()))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<StringVec, E> {
                    Ok(StringVec(Vec::new()))
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<StringVec, E> {
                    Ok(StringVec(Vec::new()))
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<StringVec, E> {
                    Ok(StringVec(Vec::new()))
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<StringVec, E> {
                    Ok(StringVec(Vec::new()))
                }
                fn visit_unit<E: de::Error>(self) -> Result<StringVec, E> {
                    Ok(StringVec(Vec::new()))
                }
                fn visit_none<E: de::Error>(self) -> Result<StringVec, E> {
                    Ok(StringVec(Vec::new()))
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StringVec, D::Error> {
                    StringVec::deserialize(d)
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A struct read from an object; any other JSON value yields `T::default()`.
    ///
    /// The struct's own fields are lenient too, so only a duplicated key can still fail (serde rejects those for
    /// structs); [`super::parse`] then falls back to an untyped payload.
    pub(super) fn obj<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Lenient::<T>::deserialize(d)?.0)
    }

    /// A list of structs (see [`obj`]); anything but an array yields an empty list.
    pub(super) fn obj_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(Lenient(t)) = seq.next_element::<Lenient<T>>()? {
                    out.push(t);
                }
                Ok(out)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
                IgnoredAny::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Vec::new())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
                obj_vec(d)
            }
        }
        d.deserialize_any(V(PhantomData))
    }

    /// `T` read from an object, or `T::default()` from any other value (see [`obj`]).
    pub(super) struct Lenient<T>(pub(super) T);

    impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
                type Value = Lenient<T>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient<T>, A::Error> {
                    T::deserialize(MapAccessDeserializer::new(map)).map(Lenient)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient<T>, A::Error> {
                    IgnoredAny::deserialize(SeqAccessDeserializer::new(seq))?;
                    Ok(Lenient(T::default()))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient<T>, E> {
                    Ok(Lenient(T::default()))
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient<T>, E> {
                    Ok(Lenient(T::default()))
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient<T>, E> {
                    Ok(Lenient(T::default()))
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient<T>, E> {
                    Ok(Lenient(T::default()))
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Lenient<T>, E> {
                    Ok(Lenient(T::default()))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Lenient<T>, E> {
                    Ok(Lenient(T::default()))
                }
                fn visit_none<E: de::Error>(self) -> Result<Lenient<T>, E> {
                    Ok(Lenient(T::default()))
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Lenient<T>, D::Error> {
                    Lenient::deserialize(d)
                }
            }
            d.deserialize_any(V(PhantomData))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_borrows_when_clean() {
        let s = br#"{"a":"b c","n":1}"#;
        assert!(matches!(escape_control_chars(s), Cow::Borrowed(_)));
        // Whitespace between tokens is not escaped and does not allocate.
        let s = b"{\n\t\"a\" : \"b\"\r\n}";
        assert!(matches!(escape_control_chars(s), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_only_inside_strings() {
        let s = b"{\n\"a\":\"x\x01y\ttab\\\"q\nz\"}";
        let out = escape_control_chars(s);
        assert_eq!(
            &*out,
            &b"{\n\"a\":\"x\\u0001y\\u0009tab\\\"q\\u000Az\"}"[..]
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["a"], "x\u{1}y\ttab\"q\nz");
    }

    #[test]
    fn escape_keeps_escaped_backslash_at_string_end() {
        // `\\` closes nothing: the `"` after it ends the string, the newline after that is whitespace.
        let s = b"{\"a\":\"c:\\\\\"\n,\"b\":\"\x1f\"}";
        let out = escape_control_chars(s);
        assert_eq!(&*out, &b"{\"a\":\"c:\\\\\"\n,\"b\":\"\\u001F\"}"[..]);
    }

    #[test]
    fn lenient_numbers_and_strings() {
        let m = parse(
            br#"{"msgid":"m","action":"send","msgtime":"1714029012456","msgtype":"image",
                "image":{"md5sum":null,"filesize":"48213","sdkfileid":12345}}"#,
        )
        .unwrap();
        assert_eq!(m.msgtime, Some(1_714_029_012_456));
        let Payload::Image(img) = m.payload else {
            panic!("{:?}", m.payload)
        };
        assert_eq!(img.filesize, Some(48213));
        assert_eq!(img.sdkfileid.as_deref(), Some("12345"));
        assert_eq!(img.md5sum, None);
    }

    #[test]
    fn payload_before_msgtype_is_typed() {
        let m = parse(br#"{"text":{"content":"hi"},"msgid":"m","msgtype":"text","action":"send"}"#)
            .unwrap();
        assert_eq!(
            m.payload,
            Payload::Text(Text {
                content: Some("hi".into())
            })
        );
    }

    #[test]
    fn duplicate_key_falls_back_to_unknown() {
        let m = parse(br#"{"msgid":"m","action":"send","msgtype":"text","text":{"content":"a","content":"b"}}"#)
            .unwrap();
        assert_eq!(m.msgtype, "text");
        let Payload::Unknown(v) = m.payload else {
            panic!("{:?}", m.payload)
        };
        assert_eq!(v["text"]["content"], "b");
    }

    #[test]
    fn non_object_payload_is_empty_variant() {
        let m =
            parse(br#"{"msgid":"m","action":"send","msgtype":"image","image":"oops"}"#).unwrap();
        assert_eq!(m.payload, Payload::Image(Image::default()));
        let m = parse(br#"{"msgid":"m","action":"send","msgtype":"image"}"#).unwrap();
        assert_eq!(m.payload, Payload::Image(Image::default()));
    }

    #[test]
    fn missing_msgid_and_syntax_errors() {
        assert!(matches!(
            parse(br#"{"action":"send"}"#),
            Err(ParseError::MissingMsgid)
        ));
        assert!(matches!(
            parse(br#"{"msgid":""}"#),
            Err(ParseError::MissingMsgid)
        ));
        assert!(matches!(
            parse(br#"{"msgid":"m","#),
            Err(ParseError::Json { .. })
        ));
        assert!(matches!(
            parse(br#"{"msgid":"m"} x"#),
            Err(ParseError::Json { .. })
        ));
        assert!(matches!(parse(b"  "), Err(ParseError::NotAnObject)));
    }

    #[test]
    fn float_integers_are_accepted() {
        let m = parse(br#"{"msgid":"m","msgtime":1714029012456.0,"msgtype":"voice","voice":{"play_length":"12"}}"#)
            .unwrap();
        assert_eq!(m.msgtime, Some(1_714_029_012_456));
        let Payload::Voice(v) = m.payload else {
            panic!()
        };
        assert_eq!(v.play_length, Some(12));
    }
}
