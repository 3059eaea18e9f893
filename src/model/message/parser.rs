//! The streaming parser: decrypted plaintext → [`ChatMessage`], in one serde pass.
//!
//! Envelope fields are read into place, and once `msgtype` is known the payload is deserialized straight into its
//! struct (WeCom puts `msgtype` before the payload). Keys that arrive before `msgtype` are buffered as
//! [`serde_json::Value`] and typed at the end, so key order never matters.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::escape::escape_control_chars;
use super::lenient;
use super::msgtype::{typed_payload, Kind};
use super::types::{ChatMessage, Vote};
use super::Payload;

/// The `action` of switch records, which carry no `msgtype`; also the msgtype this crate gives them.
const SWITCH: &str = "switch";

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
        self.kind = Some(if self.action.as_deref() == Some(SWITCH) {
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
                None if is_switch => SWITCH.to_owned(),
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
                    if st.action.as_deref() == Some(SWITCH) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::{Image, Text};

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
