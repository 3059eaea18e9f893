//! The msgtype table: every msgtype this crate types, each stated once.
//!
//! A row gives the [`Payload`] variant, the struct it holds, the msgtype as sent and, when the payload object is
//! not found under the msgtype itself, the key(s) it is found under. The `msgtypes!` macro turns the table into
//! everything that used to restate it: the [`Payload`] enum, [`MSGTYPES`], [`Payload::msgtype`], and for the
//! parser the `Kind` enum with its name lookup, its payload keys and `typed_payload` (like rustls's
//! `enum_builder!`, which states each TLS enum's names and wire values once).
//!
//! **Adding a msgtype** is one row here plus its struct in [`super::types`]. Everything else is optional and
//! asked for where it belongs: typed Parquet columns in `model::schema` (`Typed::of`), downloadable media in
//! [`super::media`].

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::lenient;
use super::types::*;

/// Generates the [`Payload`] enum and the parser's `Kind` from the table below.
///
/// `payloads` rows: `Variant(Struct) = "msgtype" [in ["key", …]];` — the payload object is read from the listed
/// keys, preferred first, then from the msgtype itself (accepted as a fallback for the renamed ones: it costs
/// nothing and covers normalizers that "fixed" the key). `aliases` rows: `Kind = "msgtype" => Variant [in [...]];`
/// for a msgtype typed as another row's variant.
macro_rules! msgtypes {
    (
        payloads {
            $(
                $(#[$doc:meta])*
                $variant:ident($ty:ty) = $wire:literal $(in [$($key:literal),+])?;
            )+
        }
        aliases {
            $(
                $(#[$adoc:meta])*
                $alias:ident = $awire:literal => $target:ident $(in [$($akey:literal),+])?;
            )*
        }
    ) => {
        /// The payload of a message, one variant per known `msgtype` (each variant names its msgtype and, when it
        /// differs, its payload key).
        ///
        /// A known type whose payload object is missing gets the variant with every field empty.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Payload {
            $(
                #[doc = concat!(
                    "`", $wire, "`",
                    $(" (payload key ", $("`", $key, "` or ",)+ "`", $wire, "`)",)?
                    ":"
                )]
                $(#[$doc])*
                $variant($ty),
            )+
            /// A switch record (`action: "switch"`, 切换企业日志): not a chat message, no envelope.
            Switch {
                /// The user who switched corp. `None` only if the record lacks it.
                user: Option<String>,
            },
            /// A `msgtype` this crate does not type (or a known one whose shape could not be typed).
            ///
            /// Holds a JSON object with every top-level key except the envelope (`msgid`, `action`, `from`,
            /// `tolist`, `roomid`, `msgtime`, `msgtype`), so the payload is kept whatever its key.
            Unknown(Value),
        }

        /// Every msgtype this crate types, in table order.
        pub const MSGTYPES: &[&str] = &[$($wire,)+ $($awire,)*];

        impl Payload {
            /// The msgtype the variant types (for a variant shared by several msgtypes, its own row's):
            /// `None` for [`Payload::Switch`] and [`Payload::Unknown`]. The msgtype actually sent is
            /// [`ChatMessage::msgtype`](super::ChatMessage::msgtype).
            pub fn msgtype(&self) -> Option<&'static str> {
                match self {
                    $(Payload::$variant(_) => Some($wire),)+
                    Payload::Switch { .. } | Payload::Unknown(_) => None,
                }
            }
        }

        /// What the payload of a record is, decided from `msgtype` (or `action == "switch"`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Kind {
            $($variant,)+
            $($(#[$adoc])* $alias,)*
            Switch,
            Unknown,
        }

        impl Kind {
            pub(super) fn from_msgtype(t: &str) -> Kind {
                match t {
                    $($wire => Kind::$variant,)+
                    $($awire => Kind::$alias,)*
                    _ => Kind::Unknown,
                }
            }

            /// Keys the payload object may be found under, preferred first.
            pub(super) fn payload_keys(self) -> &'static [&'static str] {
                match self {
                    $(Kind::$variant => &[$($($key,)+)? $wire],)+
                    $(Kind::$alias => &[$($($akey,)+)? $awire],)*
                    Kind::Switch | Kind::Unknown => &[],
                }
            }
        }

        /// Deserializes the payload object of `kind` (anything that is not an object yields the empty payload).
        pub(super) fn typed_payload<'de, D: Deserializer<'de>>(
            kind: Kind,
            d: D,
        ) -> Result<Payload, D::Error> {
            Ok(match kind {
                $(Kind::$variant => Payload::$variant(lenient::obj(d)?),)+
                $(Kind::$alias => Payload::$target(lenient::obj(d)?),)*
                Kind::Switch => Payload::Switch { user: None },
                Kind::Unknown => Payload::Unknown(Value::deserialize(d)?),
            })
        }
    };
}

msgtypes! {
    payloads {
        /// Plain text.
        Text(Text) = "text";
        /// A picture (media).
        Image(Image) = "image";
        /// A recall (`action` is `recall`).
        Revoke(Revoke) = "revoke";
        /// An external contact agreed to the archive.
        Agree(Agree) = "agree";
        /// An external contact refused the archive.
        Disagree(Agree) = "disagree";
        /// A voice note (media).
        Voice(Voice) = "voice";
        /// A video (media).
        Video(Video) = "video";
        /// A contact card.
        Card(Card) = "card";
        /// A map location.
        Location(Location) = "location";
        /// A sticker (media).
        Emotion(Emotion) = "emotion";
        /// A file (media).
        File(File) = "file";
        /// A link card.
        Link(Link) = "link";
        /// A mini program.
        Weapp(Weapp) = "weapp";
        /// Forwarded chat history; items carry their inner message as a JSON string.
        ChatRecord(ChatRecord) = "chatrecord";
        /// A to-do.
        Todo(Todo) = "todo";
        /// A vote (nested under `vote` or flat at top level).
        Vote(Vote) = "vote";
        /// A form (填表).
        Collect(Collect) = "collect";
        /// A red packet; `external_redpacket` is typed as this too.
        RedPacket(RedPacket) = "redpacket";
        /// A meeting invitation.
        Meeting(Meeting) = "meeting";
        /// An online document.
        Doc(Doc) = "docmsg" in ["doc"];
        /// Robot messages.
        Markdown(Markdown) = "markdown" in ["info"];
        /// Robot article cards.
        News(News) = "news" in ["info"];
        /// A calendar event.
        Calendar(Calendar) = "calendar";
        /// Text and images in one message; items carry their inner message as a JSON string.
        Mixed(Mixed) = "mixed";
        /// A meeting voice call recording (media, with top-level `voiceid`).
        MeetingVoiceCall(MeetingVoiceCall) = "meeting_voice_call";
        /// A document shared during a VoIP call (media, with top-level `voipid`).
        VoipDocShare(VoipDocShare) = "voip_doc_share";
        /// A WeChat Channels (视频号) post.
        SphFeed(SphFeed) = "sphfeed";
        /// An audio/video call summary.
        VoipText(VoipText) = "voiptext" in ["info"];
        /// A WeDrive file (not downloadable through the SDK).
        QyDiskFile(QyDiskFile) = "qydiskfile" in ["info"];
        /// A meeting notification.
        MeetingNotification(MeetingNotification) = "meeting_notification" in ["info"];
    }
    aliases {
        /// A red packet sent to external contacts, under the `redpacket` key.
        ExternalRedPacket = "external_redpacket" => RedPacket in ["redpacket"];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_msgtype_round_trips_through_the_table() {
        for &name in MSGTYPES {
            let kind = Kind::from_msgtype(name);
            assert_ne!(kind, Kind::Unknown, "{name}");
            // The msgtype itself is always accepted as the payload key, after any renamed key.
            assert_eq!(kind.payload_keys().last(), Some(&name), "{name}");
            let payload = typed_payload(
                kind,
                serde::de::value::UnitDeserializer::<serde_json::Error>::new(),
            )
            .unwrap();
            if name != "external_redpacket" {
                assert_eq!(payload.msgtype(), Some(name));
            }
        }
        assert_eq!(Kind::from_msgtype("no_such_type"), Kind::Unknown);
    }

    #[test]
    fn renamed_payload_keys_come_first() {
        assert_eq!(
            Kind::from_msgtype("docmsg").payload_keys(),
            ["doc", "docmsg"]
        );
        assert_eq!(Kind::from_msgtype("news").payload_keys(), ["info", "news"]);
        assert_eq!(
            Kind::from_msgtype("external_redpacket").payload_keys(),
            ["redpacket", "external_redpacket"]
        );
        assert_eq!(Kind::from_msgtype("text").payload_keys(), ["text"]);
    }
}
