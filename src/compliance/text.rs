//! The texts a rule looks at, per message, borrowed from the [`ChatMessage`].
//!
//! Per msgtype (the field names are the payload structs' in `model::message::types`):
//!
//! | msgtype                         | texts                                                            |
//! |---------------------------------|------------------------------------------------------------------|
//! | `text`, `markdown`              | `content`                                                        |
//! | `link`                          | `title`, `description`                                           |
//! | `weapp`                         | `title`, `description`, `displayname`                            |
//! | `news`                          | each item's `title`, `description` (and the flat shape's)        |
//! | `mixed`                         | each item's inner message (see below)                            |
//! | `chatrecord`                    | each item's inner message (not the title WeCom generates)        |
//! | `todo`                          | `title`, `content`                                               |
//! | `vote`                          | `votetitle`, every `voteitem`                                    |
//! | `collect`                       | `title`, every question (`ques`)                                 |
//! | `calendar`                      | `title`, `place`, `remarks`                                      |
//! | `meeting`                       | `topic`, `address`, `remarks`                                    |
//! | `redpacket`, `external_redpacket` | `wish`                                                         |
//! | `docmsg`                        | `title`                                                          |
//! | `location`                      | `title`, `address`                                               |
//! | `sphfeed`                       | `sph_name`, `feed_desc`                                          |
//! | `file`, `qydiskfile`, `voip_doc_share` | `filename`                                                |
//! | `meeting_voice_call`            | the presented documents' `filename`s                             |
//! | a msgtype this crate does not type | every string value of the payload, except under keys that hold ids, hashes or URLs (`…id`, `md5sum`, `…url`) |
//! | the rest ([`TEXTLESS`])         | none                                                             |
//!
//! Ids, URLs, hashes, display names of people and WeCom-generated titles are not texts. An inner message of
//! `mixed`/`chatrecord` is a JSON string; its `content`, `title`, `description`, `filename`, `address` and
//! `displayname` are texts whatever its type, and an inner `item` list (a `ChatRecordMixed`) is read the same
//! way, three levels deep at most. Empty texts are skipped.
//!
//! **Copies.** Payload fields are borrowed. An inner message's text is borrowed from the item's JSON unless it
//! holds a JSON escape (`\n`, `\"`, `\uXXXX`), in which case it is unescaped into its own string: that is the one
//! copy on this path, and only for `mixed`/`chatrecord`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::model::message::{ChatMessage, Payload};

/// The msgtypes this crate types whose messages never carry a text (a rule restricted to them never fires).
pub const TEXTLESS: &[&str] = &[
    "image",
    "revoke",
    "agree",
    "disagree",
    "voice",
    "video",
    "card",
    "emotion",
    "voiptext",
    "meeting_notification",
    "switch",
];

/// Whether messages of `msgtype` can carry a text: false exactly for [`TEXTLESS`] (unknown msgtypes can).
pub fn carries_text(msgtype: &str) -> bool {
    !TEXTLESS.contains(&msgtype)
}

/// One text of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPart<'a> {
    /// Where it was found, e.g. `text.content`, `link.title`, `mixed.item` (for logs and tests).
    pub field: &'static str,
    /// The text, borrowed from the message unless it had to be unescaped (see the module documentation).
    pub text: Cow<'a, str>,
}

/// Calls `f` with every non-empty text of `msg`, in payload order, without allocating (except for escaped
/// inner texts, see the module documentation).
pub fn for_each_text<'a>(msg: &'a ChatMessage, f: &mut dyn FnMut(TextPart<'a>)) {
    let mut emit = |field: &'static str, text: Cow<'a, str>| {
        if !text.is_empty() {
            f(TextPart { field, text });
        }
    };
    let mut opt = |field: &'static str, text: &'a Option<String>| {
        if let Some(t) = text {
            emit(field, Cow::Borrowed(t.as_str()));
        }
    };
    match &msg.payload {
        Payload::Text(p) => opt("text.content", &p.content),
        Payload::Markdown(p) => opt("markdown.content", &p.content),
        Payload::Link(p) => {
            opt("link.title", &p.title);
            opt("link.description", &p.description);
        }
        Payload::Weapp(p) => {
            opt("weapp.title", &p.title);
            opt("weapp.description", &p.description);
            opt("weapp.displayname", &p.displayname);
        }
        Payload::News(p) => {
            for item in &p.item {
                opt("news.item.title", &item.title);
                opt("news.item.description", &item.description);
            }
            opt("news.title", &p.title);
            opt("news.description", &p.description);
        }
        Payload::Todo(p) => {
            opt("todo.title", &p.title);
            opt("todo.content", &p.content);
        }
        Payload::Vote(p) => {
            opt("vote.votetitle", &p.votetitle);
            for item in &p.voteitem {
                emit("vote.voteitem", Cow::Borrowed(item));
            }
        }
        Payload::Collect(p) => {
            opt("collect.title", &p.title);
            for d in &p.details {
                opt("collect.details.ques", &d.ques);
            }
        }
        Payload::Calendar(p) => {
            opt("calendar.title", &p.title);
            opt("calendar.place", &p.place);
            opt("calendar.remarks", &p.remarks);
        }
        Payload::Meeting(p) => {
            opt("meeting.topic", &p.topic);
            opt("meeting.address", &p.address);
            opt("meeting.remarks", &p.remarks);
        }
        Payload::RedPacket(p) => opt("redpacket.wish", &p.wish),
        Payload::Doc(p) => opt("doc.title", &p.title),
        Payload::Location(p) => {
            opt("location.title", &p.title);
            opt("location.address", &p.address);
        }
        Payload::SphFeed(p) => {
            opt("sphfeed.sph_name", &p.sph_name);
            opt("sphfeed.feed_desc", &p.feed_desc);
        }
        Payload::File(p) => opt("file.filename", &p.filename),
        Payload::QyDiskFile(p) => opt("qydiskfile.filename", &p.filename),
        Payload::VoipDocShare(p) => opt("voip_doc_share.filename", &p.filename),
        Payload::MeetingVoiceCall(p) => {
            for d in &p.demofiledata {
                opt("meeting_voice_call.demofiledata.filename", &d.filename);
            }
        }
        Payload::Mixed(p) => {
            for item in &p.item {
                if let Some(json) = &item.content {
                    inner_texts("mixed.item", json, 0, &mut emit);
                }
            }
        }
        Payload::ChatRecord(p) => {
            for item in &p.item {
                if let Some(json) = &item.content {
                    inner_texts("chatrecord.item", json, 0, &mut emit);
                }
            }
        }
        Payload::Unknown(v) => value_texts(v, &mut emit),
        Payload::Image(_)
        | Payload::Revoke(_)
        | Payload::Agree(_)
        | Payload::Disagree(_)
        | Payload::Voice(_)
        | Payload::Video(_)
        | Payload::Card(_)
        | Payload::Emotion(_)
        | Payload::VoipText(_)
        | Payload::MeetingNotification(_)
        | Payload::Switch { .. } => {}
    }
}

/// Every non-empty text of `msg`, collected (see [`for_each_text`] for the allocation-free form).
pub fn texts(msg: &ChatMessage) -> Vec<TextPart<'_>> {
    let mut out = Vec::new();
    for_each_text(msg, &mut |p| out.push(p));
    out
}

/// How deep `item` lists inside inner messages are followed (a chatrecord of a mixed message is two).
const MAX_DEPTH: u32 = 3;

/// The texts of one inner message (a JSON object as text). Malformed JSON yields nothing: the message itself is
/// kept whole in the archive, only the rule does not see this item.
fn inner_texts<'s>(
    field: &'static str,
    json: &'s str,
    depth: u32,
    emit: &mut dyn FnMut(&'static str, Cow<'s, str>),
) {
    let Ok(inner) = serde_json::from_str::<Inner<'s>>(json) else {
        return;
    };
    for text in [
        inner.content,
        inner.title,
        inner.description,
        inner.filename,
        inner.address,
        inner.displayname,
    ]
    .into_iter()
    .flat_map(|t| t.0)
    {
        emit(field, text);
    }
    if depth + 1 >= MAX_DEPTH {
        return;
    }
    for item in inner.item.0 {
        match item.content.0 {
            Some(Cow::Borrowed(nested)) => inner_texts(field, nested, depth + 1, emit),
            // JSON inside a JSON string is always escaped, so nested items arrive here: their texts live in
            // this local string and are handed on as owned.
            Some(Cow::Owned(nested)) => inner_texts(field, &nested, depth + 1, &mut |f, t| {
                emit(f, Cow::Owned(t.into_owned()))
            }),
            None => {}
        }
    }
}

/// The fields of an inner message that hold text; everything else is skipped unread.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Inner<'a> {
    #[serde(borrow)]
    content: MaybeText<'a>,
    #[serde(borrow)]
    title: MaybeText<'a>,
    #[serde(borrow)]
    description: MaybeText<'a>,
    #[serde(borrow)]
    filename: MaybeText<'a>,
    #[serde(borrow)]
    address: MaybeText<'a>,
    #[serde(borrow)]
    displayname: MaybeText<'a>,
    #[serde(borrow)]
    item: Items<'a>,
}

/// An item of an inner `item` list: its `content` is again an inner message as JSON text.
#[derive(Default, Deserialize)]
#[serde(default)]
struct InnerItem<'a> {
    #[serde(borrow)]
    content: MaybeText<'a>,
}

/// A string (borrowed when it has no escape); any other JSON value is read past and becomes `None`.
#[derive(Default)]
struct MaybeText<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeText(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// An `item` list; anything that is not a list, and list elements that are not objects, are skipped.
#[derive(Default)]
struct Items<'a>(Vec<InnerItem<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Items<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One element: an object becomes an [`InnerItem`], anything else is skipped.
        struct Element<'a>(Option<InnerItem<'a>>);
        impl<'de: 'a, 'a> Deserialize<'de> for Element<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct E;
                impl<'de> Visitor<'de> for E {
                    type Value = Element<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                        InnerItem::deserialize(de::value::MapAccessDeserializer::new(a))
                            .map(|i| Element(Some(i)))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut a: A,
                    ) -> Result<Self::Value, A::Error> {
                        while a.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Element(None))
                    }
                    fn visit_str<X: de::Error>(self, _: &str) -> Result<Self::Value, X> {
                        Ok(Element(None))
                    }
                    fn visit_bool<X: de::Error>(self, _: bool) -> Result<Self::Value, X> {
                        Ok(Element(None))
                    }
                    fn visit_i64<X: de::Error>(self, _: i64) -> Result<Self::Value, X> {
                        Ok(Element(None))
                    }
                    fn visit_u64<X: de::Error>(self, _: u64) -> Result<Self::Value, X> {
                        Ok(Element(None))
                    }
                    fn visit_f64<X: de::Error>(self, _: f64) -> Result<Self::Value, X> {
                        Ok(Element(None))
                    }
                    fn visit_unit<X: de::Error>(self) -> Result<Self::Value, X> {
                        Ok(Element(None))
                    }
                }
                d.deserialize_any(E)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Element(item)) = a.next_element::<Element<'de>>()? {
                    out.extend(item);
                }
                Ok(Items(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Items(Vec::new()))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Keys of an untyped payload whose string values are not text: ids, hashes, URLs.
fn is_text_key(key: &str) -> bool {
    !(key.ends_with("id") || key.ends_with("url") || key == "md5sum")
}

/// Every string value of an untyped payload, except under the keys [`is_text_key`] rejects.
fn value_texts<'a>(v: &'a Value, emit: &mut dyn FnMut(&'static str, Cow<'a, str>)) {
    match v {
        Value::String(s) => emit("unknown", Cow::Borrowed(s)),
        Value::Array(items) => items.iter().for_each(|i| value_texts(i, emit)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| is_text_key(k))
            .for_each(|(_, i)| value_texts(i, emit)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::{parse, MSGTYPES};

    fn fixture(name: &str) -> ChatMessage {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/messages")
            .join(format!("{name}.json"));
        parse(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn strings(msg: &ChatMessage) -> Vec<(&'static str, String)> {
        texts(msg)
            .into_iter()
            .map(|p| (p.field, p.text.into_owned()))
            .collect()
    }

    fn pairs(v: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        v.iter().map(|(f, t)| (*f, t.to_string())).collect()
    }

    #[test]
    fn every_fixture_yields_the_texts_of_its_msgtype() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("text", &[("text.content", "您好，合同已发您邮箱")]),
            (
                "markdown",
                &[("markdown.content", "**告警**：订单同步延迟 5 分钟")],
            ),
            (
                "link",
                &[
                    ("link.title", "产品白皮书"),
                    ("link.description", "点击查看完整内容"),
                ],
            ),
            (
                "weapp",
                &[
                    ("weapp.title", "预约到店"),
                    ("weapp.description", "选择门店与时间"),
                    ("weapp.displayname", "门店预约"),
                ],
            ),
            (
                "news",
                &[
                    ("news.item.title", "新品发布"),
                    ("news.item.description", "点击了解"),
                ],
            ),
            ("mixed", &[("mixed.item", "见下图\n")]),
            ("chatrecord", &[("chatrecord.item", "明天开会")]),
            (
                "todo",
                &[
                    ("todo.title", "周会纪要"),
                    ("todo.content", "周五前提交方案"),
                ],
            ),
            (
                "vote",
                &[
                    ("vote.votetitle", "团建地点"),
                    ("vote.voteitem", "海边"),
                    ("vote.voteitem", "山里"),
                ],
            ),
            (
                "vote_flat",
                &[
                    ("vote.votetitle", "午餐吃什么"),
                    ("vote.voteitem", "面"),
                    ("vote.voteitem", "饭"),
                    ("vote.voteitem", "沙拉"),
                ],
            ),
            (
                "collect",
                &[
                    ("collect.title", "到访登记"),
                    ("collect.details.ques", "客户姓名"),
                    ("collect.details.ques", "到访人数"),
                    ("collect.details.ques", "日期"),
                    ("collect.details.ques", "时间"),
                ],
            ),
            (
                "calendar",
                &[
                    ("calendar.title", "客户拜访"),
                    ("calendar.place", "客户公司"),
                    ("calendar.remarks", "带样品"),
                ],
            ),
            (
                "meeting",
                &[
                    ("meeting.topic", "季度复盘"),
                    ("meeting.address", "3F会议室"),
                    ("meeting.remarks", "带电脑"),
                ],
            ),
            ("redpacket", &[("redpacket.wish", "恭喜发财")]),
            ("docmsg", &[("doc.title", "客户跟进表")]),
            (
                "location",
                &[
                    ("location.title", "人民广场"),
                    ("location.address", "上海市黄浦区人民大道200号"),
                ],
            ),
            (
                "sphfeed",
                &[
                    ("sphfeed.sph_name", "城市旅行指南"),
                    ("sphfeed.feed_desc", "春日徒步路线推荐"),
                ],
            ),
            ("file", &[("file.filename", "报价单-2024Q2.xlsx")]),
            ("qydiskfile", &[("qydiskfile.filename", "产品手册.pdf")]),
            ("voip_doc_share", &[("voip_doc_share.filename", "报价.pdf")]),
            (
                "meeting_voice_call",
                &[("meeting_voice_call.demofiledata.filename", "方案.pptx")],
            ),
            (
                "solitaire",
                &[
                    ("unknown", "周五聚餐接龙"),
                    ("unknown", "zhangsan"),
                    ("unknown", "1. 张三"),
                    ("unknown", "2. 李四"),
                ],
            ),
        ];
        for (name, expected) in cases {
            let mut got = strings(&fixture(name));
            let mut want = pairs(expected);
            if *name == "solitaire" {
                // An untyped payload's key order is the map's, not the file's.
                got.sort();
                want.sort();
            }
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn textless_fixtures_yield_nothing_and_the_rest_yield_something() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/messages");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().path();
            let name = name.file_stem().unwrap().to_str().unwrap().to_string();
            let msg = fixture(&name);
            assert_eq!(
                texts(&msg).is_empty(),
                !carries_text(&msg.msgtype),
                "{name}: {:?}",
                texts(&msg)
            );
            seen += 1;
        }
        assert!(seen >= MSGTYPES.len());
        // Every name in TEXTLESS is a msgtype this crate types (or switch), so a typo cannot hide one.
        for t in TEXTLESS {
            assert!(MSGTYPES.contains(t) || *t == "switch", "{t}");
        }
    }

    #[test]
    fn plain_texts_are_borrowed_and_escaped_inner_texts_are_owned() {
        let text = fixture("text");
        assert!(texts(&text)
            .iter()
            .all(|p| matches!(p.text, Cow::Borrowed(_))));
        let chatrecord = fixture("chatrecord");
        assert!(matches!(
            texts(&chatrecord)[0].text,
            Cow::Borrowed("明天开会")
        ));
        let mixed = fixture("mixed");
        assert!(matches!(texts(&mixed)[0].text, Cow::Owned(_)));
    }

    #[test]
    fn inner_messages_of_every_shape() {
        let json = r#"{"msgid":"m","action":"send","from":"a","tolist":["b"],"msgtime":1,"msgtype":"chatrecord","chatrecord":{"title":"张三和李四的聊天记录","item":[
            {"type":"ChatRecordLink","content":"{\"title\":\"链接标题\",\"description\":\"描述\",\"link_url\":\"https://x\"}"},
            {"type":"ChatRecordFile","content":"{\"filename\":\"合同.pdf\",\"md5sum\":\"00\"}"},
            {"type":"ChatRecordLocation","content":"{\"title\":\"人民广场\",\"address\":\"上海\",\"zoom\":15}"},
            {"type":"ChatRecordMixed","content":"{\"item\":[{\"type\":\"text\",\"content\":\"{\\\"content\\\":\\\"嵌套文本\\\"}\"},{\"type\":\"image\",\"content\":\"{\\\"md5sum\\\":\\\"ab\\\"}\"},7,\"x\"]}"},
            {"type":"ChatRecordText","content":{"content":"对象形式"}},
            {"type":"ChatRecordText","content":"not json"},
            {"type":"ChatRecordText","content":"{\"content\":123,\"title\":[\"x\"],\"item\":5}"}
        ]}}"#;
        let msg = parse(json.as_bytes()).unwrap();
        let got: Vec<String> = strings(&msg).into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            got,
            [
                "链接标题",
                "描述",
                "合同.pdf",
                "人民广场",
                "上海",
                "嵌套文本",
                "对象形式"
            ]
        );
        assert!(strings(&msg).iter().all(|(f, _)| *f == "chatrecord.item"));
    }

    #[test]
    fn unknown_payloads_skip_ids_hashes_and_urls() {
        let json = r#"{"msgid":"m","action":"send","from":"a","tolist":["b"],"msgtime":1,"msgtype":"brand_new","brand_new":{"caption":"新类型","sdkfileid":"CtYB","md5sum":"00ff","pic_url":"https://x","n":5,"parts":[{"label":"一"},{"voteid":"9"}]}}"#;
        let msg = parse(json.as_bytes()).unwrap();
        let mut got: Vec<String> = strings(&msg).into_iter().map(|(_, t)| t).collect();
        got.sort();
        assert_eq!(got, ["一", "新类型"]);
    }
}
