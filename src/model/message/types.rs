//! The message types: the envelope ([`ChatMessage`]) and one lenient struct per payload shape.
//!
//! Every field accepts the documented type *and* the cheap alternatives seen in the wild (see [`super::lenient`]),
//! so a field that does not fit becomes `None` instead of failing the record. Which msgtype uses which struct, and
//! under which payload key, is stated in the msgtype table ([`super::msgtype`]).

use serde::Deserialize;

use super::lenient;
use super::Payload;

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
