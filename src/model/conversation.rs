//! The conversation rule: which conversation a message belongs to, what kind of chat it is, and whether the
//! corp boundary is crossed.
//!
//! Derived from the envelope only (`from`, `tolist`, `roomid`), so it is the same for every msgtype:
//!
//! | envelope                                             | `conversation_id`              | `chat_type`                    |
//! |------------------------------------------------------|--------------------------------|--------------------------------|
//! | `roomid` set                                         | the roomid (`wr…`)             | `group`                        |
//! | no roomid, `from` and one distinct other receiver     | `single:<a>:<b>`, a ≤ b        | `single` / `single_external`   |
//! | no roomid, two or more distinct receivers            | `multi:<p1>:<p2>:…`, sorted    | `group`                        |
//! | switch record, or `from` or `tolist` missing         | NULL                           | NULL                           |
//!
//! `a`, `b` and `p…` are participant ids compared as bytes; `multi:` lists the sender and every receiver once.
//! In ids `%` is written `%25` and `:` is written `%3A`, so the key is injective even for ids that contain the
//! separator (WeCom's ids do not, but a dump may). The sender listed among the receivers and a receiver listed
//! twice are counted once; a self-chat (from = to) is `single:<a>:<a>`.
//!
//! External contacts have ids starting with `wo` or `wm`, group robots `wb`. A one-to-one chat is
//! `single_external` when either side is an external contact; a robot is not an external contact. These prefixes
//! are WeCom's convention; an internal userid an admin chose to start with `wo`/`wm` is misread as external.

use std::borrow::Cow;

use crate::model::message::{ChatMessage, Payload};

/// The kind of chat a message belongs to (the `chat_type` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatType {
    /// A group chat (a `roomid`), or a message to several receivers without one.
    Group,
    /// A one-to-one chat between two members of the corp (robots included).
    Single,
    /// A one-to-one chat with an external contact (`wo…`/`wm…`) on either side.
    SingleExternal,
}

impl ChatType {
    /// The column value: `group`, `single` or `single_external`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatType::Group => "group",
            ChatType::Single => "single",
            ChatType::SingleExternal => "single_external",
        }
    }
}

impl std::fmt::Display for ChatType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `id` is an external contact's id (`wo…` or `wm…`).
pub fn is_external_id(id: &str) -> bool {
    id.starts_with("wo") || id.starts_with("wm")
}

/// Whether `id` is a group robot's id (`wb…`).
pub fn is_robot_id(id: &str) -> bool {
    id.starts_with("wb")
}

/// Whether the message was sent by an external contact (false for switch records and a missing `from`).
pub fn is_external_sender(msg: &ChatMessage) -> bool {
    msg.from.as_deref().is_some_and(is_external_id)
}

/// Whether an external contact sends or receives the message: the scope `external` of a rule.
pub fn involves_external(msg: &ChatMessage) -> bool {
    is_external_sender(msg) || msg.tolist.iter().any(|t| is_external_id(t))
}

/// The shape of a message's conversation, decided once for both [`conversation_id`] and [`chat_type`].
enum Shape<'a> {
    Room(&'a str),
    Single(&'a str, &'a str),
    Multi,
    None,
}

fn shape(msg: &ChatMessage) -> Shape<'_> {
    if matches!(msg.payload, Payload::Switch { .. }) || msg.action == "switch" {
        return Shape::None;
    }
    if let Some(room) = msg.roomid.as_deref().filter(|r| !r.is_empty()) {
        return Shape::Room(room);
    }
    let Some(from) = msg.from.as_deref().filter(|f| !f.is_empty()) else {
        return Shape::None;
    };
    let receivers = || {
        msg.tolist
            .iter()
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    };
    // The sender listed among the receivers, or a receiver listed twice, does not make a group.
    let mut others = receivers().filter(|&t| t != from);
    match others.next() {
        Some(first) if others.all(|t| t == first) => Shape::Single(from, first),
        Some(_) => Shape::Multi,
        None if receivers().next().is_some() => Shape::Single(from, from),
        None => Shape::None,
    }
}

/// The message's conversation key: see the module documentation for the rule. Borrowed for group chats.
pub fn conversation_id(msg: &ChatMessage) -> Option<Cow<'_, str>> {
    match shape(msg) {
        Shape::Room(room) => Some(Cow::Borrowed(room)),
        Shape::Single(a, b) => Some(Cow::Owned(single_id(a, b))),
        Shape::Multi => {
            let mut ids: Vec<&str> = msg
                .tolist
                .iter()
                .map(String::as_str)
                .chain(msg.from.as_deref())
                .filter(|t| !t.is_empty())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            Some(Cow::Owned(key("multi", &ids)))
        }
        Shape::None => None,
    }
}

/// The key of the one-to-one conversation between `a` and `b`, the same for both directions.
pub fn single_id(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    key("single", &[lo, hi])
}

/// The message's chat type (`None` exactly when [`conversation_id`] is `None`).
pub fn chat_type(msg: &ChatMessage) -> Option<ChatType> {
    match shape(msg) {
        Shape::Room(_) | Shape::Multi => Some(ChatType::Group),
        Shape::Single(a, b) if is_external_id(a) || is_external_id(b) => {
            Some(ChatType::SingleExternal)
        }
        Shape::Single(..) => Some(ChatType::Single),
        Shape::None => None,
    }
}

fn key(kind: &str, ids: &[&str]) -> String {
    let mut out =
        String::with_capacity(kind.len() + ids.iter().map(|i| i.len() + 1).sum::<usize>());
    out.push_str(kind);
    for id in ids {
        out.push(':');
        push_escaped(&mut out, id);
    }
    out
}

/// Appends `id` with `%` and `:` percent-encoded, so that `:` only ever separates ids.
fn push_escaped(out: &mut String, id: &str) {
    if !id.contains(['%', ':']) {
        out.push_str(id);
        return;
    }
    for c in id.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::Text;
    use rand::{Rng, SeedableRng};

    fn msg(from: Option<&str>, tolist: &[&str], roomid: Option<&str>) -> ChatMessage {
        ChatMessage {
            msgid: "m1".into(),
            action: "send".into(),
            from: from.map(Into::into),
            tolist: tolist.iter().map(|s| s.to_string()).collect(),
            roomid: roomid.map(Into::into),
            msgtime: Some(1),
            msgtype: "text".into(),
            payload: Payload::Text(Text::default()),
        }
    }

    #[test]
    fn group_chats_are_keyed_by_their_roomid() {
        let m = msg(Some("zhangsan"), &["lisi", "wmX"], Some("wrRoom"));
        assert_eq!(conversation_id(&m).as_deref(), Some("wrRoom"));
        assert_eq!(chat_type(&m), Some(ChatType::Group));
        // An empty roomid (what WeCom sends for 1:1 chats) is no room.
        let m = msg(Some("zhangsan"), &["lisi"], Some(""));
        assert_eq!(conversation_id(&m).as_deref(), Some("single:lisi:zhangsan"));
    }

    #[test]
    fn one_to_one_chats_share_one_key_in_both_directions() {
        let ab = msg(Some("zhangsan"), &["wmQx3a"], None);
        let ba = msg(Some("wmQx3a"), &["zhangsan"], None);
        assert_eq!(
            conversation_id(&ab).as_deref(),
            Some("single:wmQx3a:zhangsan")
        );
        assert_eq!(conversation_id(&ab), conversation_id(&ba));
        assert_eq!(chat_type(&ab), Some(ChatType::SingleExternal));
        assert_eq!(chat_type(&ba), Some(ChatType::SingleExternal));
        assert!(!is_external_sender(&ab));
        assert!(is_external_sender(&ba));
        assert!(involves_external(&ab) && involves_external(&ba));

        let internal = msg(Some("lisi"), &["zhangsan"], None);
        assert_eq!(chat_type(&internal), Some(ChatType::Single));
        assert!(!involves_external(&internal));
        // A robot is not an external contact.
        let robot = msg(Some("wbRobot"), &["zhangsan"], None);
        assert_eq!(chat_type(&robot), Some(ChatType::Single));
        assert!(!is_external_sender(&robot));
        // wo… ids are external too.
        assert_eq!(
            chat_type(&msg(Some("lisi"), &["woAbc"], None)),
            Some(ChatType::SingleExternal)
        );
        // Self-chat and a repeated receiver stay one-to-one.
        assert_eq!(
            conversation_id(&msg(Some("a"), &["a"], None)).as_deref(),
            Some("single:a:a")
        );
        assert_eq!(
            conversation_id(&msg(Some("b"), &["a", "a"], None)).as_deref(),
            Some("single:a:b")
        );
        assert_eq!(
            conversation_id(&msg(Some("b"), &["a", "b"], None)).as_deref(),
            Some("single:a:b")
        );
    }

    #[test]
    fn several_receivers_without_a_room_are_a_group_of_everyone() {
        let m = msg(Some("zhangsan"), &["wangwu", "lisi", "zhangsan"], None);
        assert_eq!(
            conversation_id(&m).as_deref(),
            Some("multi:lisi:wangwu:zhangsan")
        );
        assert_eq!(chat_type(&m), Some(ChatType::Group));
        let other_sender = msg(Some("lisi"), &["zhangsan", "wangwu"], None);
        assert_eq!(conversation_id(&m), conversation_id(&other_sender));
    }

    #[test]
    fn switch_records_and_half_envelopes_have_no_conversation() {
        let mut switch = msg(None, &[], None);
        switch.action = "switch".into();
        switch.msgtype = "switch".into();
        switch.payload = Payload::Switch {
            user: Some("zhangsan".into()),
        };
        for m in [
            switch,
            msg(None, &["lisi"], None),
            msg(Some("lisi"), &[], None),
            msg(Some(""), &["lisi"], None),
            msg(Some("lisi"), &[""], None),
        ] {
            assert_eq!(conversation_id(&m), None, "{m:?}");
            assert_eq!(chat_type(&m), None, "{m:?}");
        }
    }

    #[test]
    fn separators_inside_ids_are_escaped() {
        assert_eq!(single_id("a:b", "c"), "single:a%3Ab:c");
        assert_eq!(single_id("a%3Ab", "c"), "single:a%253Ab:c");
        assert_ne!(single_id("a:b", "c"), single_id("a", "b:c"));
    }

    /// A random id from a small alphabet (so that pairs share prefixes and collide often), including the
    /// separator and the escape character, and the external/robot prefixes.
    fn random_id(rng: &mut impl Rng) -> String {
        const PREFIX: [&str; 5] = ["", "wm", "wo", "wb", "zh"];
        const ALPHA: [char; 6] = ['a', 'b', ':', '%', '3', '张'];
        let mut s = PREFIX[rng.gen_range(0..PREFIX.len())].to_string();
        for _ in 0..rng.gen_range(0..4) {
            s.push(ALPHA[rng.gen_range(0..ALPHA.len())]);
        }
        if s.is_empty() {
            s.push('x');
        }
        s
    }

    #[test]
    fn property_both_directions_share_the_key_and_different_pairs_do_not() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut seen = std::collections::HashMap::<String, (String, String)>::new();
        for _ in 0..20_000 {
            let (a, b) = (random_id(&mut rng), random_id(&mut rng));
            let ab = msg(Some(&a), &[&b], None);
            let ba = msg(Some(&b), &[&a], None);
            let id = conversation_id(&ab).unwrap().into_owned();
            assert_eq!(
                Some(id.as_str()),
                conversation_id(&ba).as_deref(),
                "{a} {b}"
            );
            assert_eq!(chat_type(&ab), chat_type(&ba), "{a} {b}");
            let pair = if a <= b { (a, b) } else { (b, a) };
            let prev = seen.entry(id.clone()).or_insert_with(|| pair.clone());
            assert_eq!(*prev, pair, "two different pairs share the key {id}");
        }
        // The small alphabet really produced repeats and ids containing the separator.
        assert!(seen.len() < 20_000);
        assert!(seen
            .values()
            .any(|(a, b)| a.contains(':') || b.contains(':')));
    }
}
