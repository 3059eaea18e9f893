//! Media references: which downloadable files (`sdkfileid`) a message points at, including those inside
//! `mixed` / `chatrecord` items and untyped payloads.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::escape::escape_control_chars;
use super::lenient;
use super::types::{ChatMessage, MixedItem};
use super::Payload;

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
    /// Every kind, [`MediaKind::Other`] last.
    pub const ALL: [MediaKind; 8] = [
        MediaKind::Image,
        MediaKind::Voice,
        MediaKind::Video,
        MediaKind::Emotion,
        MediaKind::File,
        MediaKind::MeetingVoiceCall,
        MediaKind::VoipDocShare,
        MediaKind::Other,
    ];

    /// Lower-case name, as used in msgtypes (`"image"`, `"meeting_voice_call"`, …; `"other"`).
    ///
    /// These names are stored (media table, state) and accepted by the `types` filter, so they are stated here
    /// and not taken from the msgtype table: renaming a msgtype must not rename stored kinds.
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

    /// The kind named `name` (see [`MediaKind::as_str`]); [`MediaKind::Other`] for any other name.
    fn from_name(name: &str) -> MediaKind {
        MediaKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or(MediaKind::Other)
    }

    /// Extension used when the message announces none.
    fn default_ext(self) -> Option<&'static str> {
        match self {
            MediaKind::Image => Some("jpg"),
            MediaKind::Voice => Some("amr"),
            MediaKind::Video => Some("mp4"),
            _ => None,
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

/// The media a payload carries itself, borrowed from it (so counting allocates nothing).
struct OwnMedia<'a> {
    kind: MediaKind,
    sdkfileid: Option<&'a str>,
    md5sum: Option<&'a str>,
    size: Option<u64>,
    ext: Option<&'a str>,
}

impl<'a> OwnMedia<'a> {
    fn new(
        kind: MediaKind,
        sdkfileid: &'a Option<String>,
        md5sum: &'a Option<String>,
        size: Option<u64>,
        ext: Option<&'a str>,
    ) -> Self {
        OwnMedia {
            kind,
            sdkfileid: sdkfileid.as_deref(),
            md5sum: md5sum.as_deref(),
            size,
            ext,
        }
    }
}

impl Payload {
    /// The one media file of a single-media payload (which of its fields are id, md5, size and extension);
    /// `None` for every other payload.
    fn own_media(&self) -> Option<OwnMedia<'_>> {
        use MediaKind as K;
        Some(match self {
            Payload::Image(p) => OwnMedia::new(K::Image, &p.sdkfileid, &p.md5sum, p.filesize, None),
            Payload::Voice(p) => {
                OwnMedia::new(K::Voice, &p.sdkfileid, &p.md5sum, p.voice_size, None)
            }
            Payload::Video(p) => OwnMedia::new(K::Video, &p.sdkfileid, &p.md5sum, p.filesize, None),
            Payload::Emotion(p) => OwnMedia::new(
                K::Emotion,
                &p.sdkfileid,
                &p.md5sum,
                p.imagesize,
                emotion_ext(p.emotion_type),
            ),
            Payload::File(p) => OwnMedia::new(
                K::File,
                &p.sdkfileid,
                &p.md5sum,
                p.filesize,
                file_ext(p.fileext.as_deref(), p.filename.as_deref()),
            ),
            Payload::MeetingVoiceCall(p) => OwnMedia {
                // The recording comes with no md5 or size.
                kind: K::MeetingVoiceCall,
                sdkfileid: p.sdkfileid.as_deref(),
                md5sum: None,
                size: None,
                ext: None,
            },
            Payload::VoipDocShare(p) => OwnMedia::new(
                K::VoipDocShare,
                &p.sdkfileid,
                &p.md5sum,
                p.filesize,
                file_ext(None, p.filename.as_deref()),
            ),
            _ => return None,
        })
    }
}

impl ChatMessage {
    /// Every media file the message references, in document order, including those inside `mixed` and
    /// `chatrecord` items (whose content is a JSON string, parsed here) and any object with an `sdkfileid` inside
    /// an [`Payload::Unknown`] payload. Entries without an `sdkfileid` are skipped: they cannot be downloaded.
    pub fn media(&self) -> Vec<MediaRef> {
        let mut out = Vec::new();
        if let Some(m) = self.payload.own_media() {
            push_media(&mut out, m.kind, m.sdkfileid, m.md5sum, m.size, m.ext, None);
            return out;
        }
        match &self.payload {
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
        if let Some(m) = self.payload.own_media() {
            // Single-media payloads: answer without allocating.
            return usize::from(non_empty(m.sdkfileid).is_some());
        }
        match &self.payload {
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

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn push_media(
    out: &mut Vec<MediaRef>,
    kind: MediaKind,
    sdkfileid: Option<&str>,
    md5sum: Option<&str>,
    size: Option<u64>,
    ext: Option<&str>,
    item_index: Option<u32>,
) {
    let Some(id) = non_empty(sdkfileid) else {
        return;
    };
    out.push(MediaRef {
        kind,
        sdkfileid: id.to_owned(),
        md5sum: non_empty(md5sum).map(str::to_owned),
        size,
        ext: ext.or_else(|| kind.default_ext()).map(str::to_owned),
        item_index,
    });
}

fn emotion_ext(emotion_type: Option<u32>) -> Option<&'static str> {
    match emotion_type {
        Some(1) => Some("gif"),
        Some(2) => Some("png"),
        _ => None,
    }
}

/// The declared extension if any, else the file name's extension.
fn file_ext<'a>(fileext: Option<&'a str>, filename: Option<&'a str>) -> Option<&'a str> {
    let ext = fileext.filter(|e| !e.is_empty()).or_else(|| {
        filename
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e)
            .filter(|e| !e.is_empty() && e.len() <= 16 && !e.contains(['/', '\\']))
    })?;
    Some(ext.trim_start_matches('.'))
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
    let ty = item_type.unwrap_or("").to_ascii_lowercase();
    let ty = ty
        .strip_prefix("chatrecord")
        .filter(|t| !t.is_empty())
        .unwrap_or(&ty);
    let kind = MediaKind::from_name(ty);
    let size = inner.filesize.or(inner.voice_size).or(inner.imagesize);
    let ext = match kind {
        MediaKind::Emotion => emotion_ext(inner.emotion_type),
        MediaKind::File | MediaKind::VoipDocShare | MediaKind::Other => {
            file_ext(inner.fileext.as_deref(), inner.filename.as_deref())
        }
        _ => None,
    };
    push_media(
        out,
        kind,
        inner.sdkfileid.as_deref(),
        inner.md5sum.as_deref(),
        size,
        ext,
        index,
    );
}

/// Media inside an untyped payload: any object with a non-empty string `sdkfileid`, and JSON strings that embed one.
fn value_media(out: &mut Vec<MediaRef>, v: &Value, index: Option<u32>, depth: u32) {
    if depth > MAX_MEDIA_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("sdkfileid") {
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
                    Some(id),
                    map.get("md5sum").and_then(Value::as_str),
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
