//! The decrypted-message model and the Arrow batch builder, against every example of archive spec §3.3
//! (`fixtures/messages/<msgtype>.json`) plus the quirks the spec warns about.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};
use wecom_archive::model::message::{self, ChatMessage, MediaKind, ParseError, Payload};
use wecom_archive::model::schema::{chat_schema, ChatBatchBuilder, COLUMNS_DOC};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/messages/",
            $name,
            ".json"
        ))
    };
}

fn parse(json: &str) -> ChatMessage {
    message::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// Unwraps the expected payload variant or fails with the actual one.
macro_rules! payload {
    ($msg:expr, $variant:path) => {
        match $msg.payload {
            $variant(ref p) => p.clone(),
            ref other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("<none>")
}

#[test]
fn text_and_envelope() {
    let m = parse(fixture!("text"));
    assert_eq!(m.msgid, "1048362912304877130_1714029001");
    assert_eq!(m.action, "send");
    assert_eq!(m.from.as_deref(), Some("zhangsan"));
    assert_eq!(m.tolist, ["wmQx3aDwAAa1b2c3"]);
    assert_eq!(m.roomid, None, "\"\" roomid of a 1:1 chat becomes None");
    assert_eq!(m.msgtime, Some(1_714_029_001_123));
    assert_eq!(m.msgtype, "text");
    assert_eq!(
        s(&payload!(m, Payload::Text).content),
        "您好，合同已发您邮箱"
    );
    assert!(m.media().is_empty());
}

#[test]
fn image() {
    let m = parse(fixture!("image"));
    let p = payload!(m, Payload::Image);
    assert_eq!(s(&p.md5sum), "3f2a7c1e9b0d4a6f8e5c2b1a0d9e8f7c");
    assert_eq!(p.filesize, Some(48213));
    assert_eq!(s(&p.sdkfileid), "CtYBMzA2OTAy...EiA0MTM");
    let media = m.media();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].kind, MediaKind::Image);
    assert_eq!(media[0].sdkfileid, "CtYBMzA2OTAy...EiA0MTM");
    assert_eq!(
        media[0].md5sum.as_deref(),
        Some("3f2a7c1e9b0d4a6f8e5c2b1a0d9e8f7c")
    );
    assert_eq!(media[0].size, Some(48213));
    assert_eq!(media[0].ext.as_deref(), Some("jpg"));
    assert_eq!(media[0].item_index, None);
}

#[test]
fn revoke() {
    let m = parse(fixture!("revoke"));
    assert_eq!(m.action, "recall");
    assert_eq!(
        s(&payload!(m, Payload::Revoke).pre_msgid),
        "1048362912304877130_1714029001"
    );
}

#[test]
fn agree_and_disagree() {
    let m = parse(fixture!("agree"));
    let p = payload!(m, Payload::Agree);
    assert_eq!(s(&p.userid), "wmQx3aDwAAa1b2c3");
    assert_eq!(p.time, Some(1_714_029_200_001));

    let m = parse(fixture!("disagree"));
    let p = payload!(m, Payload::Disagree);
    assert_eq!(s(&p.userid), "wmQx3aDwAAa1b2c3");
    assert_eq!(p.time, Some(1_714_029_300_002));
}

#[test]
fn voice_and_video() {
    let m = parse(fixture!("voice"));
    let p = payload!(m, Payload::Voice);
    assert_eq!(s(&p.md5sum), "aa01bb02cc03dd04ee05ff0611223344");
    assert_eq!((p.voice_size, p.play_length), (Some(7420), Some(12)));
    assert_eq!(s(&p.sdkfileid), "CtYBMzA2OTAy...voice");
    let media = m.media();
    assert_eq!(
        (media[0].kind, media[0].size, media[0].ext.as_deref()),
        (MediaKind::Voice, Some(7420), Some("amr"))
    );

    let m = parse(fixture!("video"));
    let p = payload!(m, Payload::Video);
    assert_eq!(s(&p.md5sum), "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    assert_eq!((p.filesize, p.play_length), (Some(20_480_133), Some(95)));
    assert_eq!(s(&p.sdkfileid), "CtYBMzA2OTAy...video");
    assert_eq!(m.media()[0].ext.as_deref(), Some("mp4"));
}

#[test]
fn card_and_location() {
    let m = parse(fixture!("card"));
    let p = payload!(m, Payload::Card);
    assert_eq!((s(&p.corpname), s(&p.userid)), ("某某科技有限公司", "lisi"));

    let m = parse(fixture!("location"));
    let p = payload!(m, Payload::Location);
    assert_eq!(p.longitude, Some(121.473701));
    assert_eq!(p.latitude, Some(31.230416));
    assert_eq!(s(&p.address), "上海市黄浦区人民大道200号");
    assert_eq!(s(&p.title), "人民广场");
    assert_eq!(p.zoom, Some(15));
}

#[test]
fn emotion() {
    let m = parse(fixture!("emotion"));
    let p = payload!(m, Payload::Emotion);
    assert_eq!(
        (p.emotion_type, p.width, p.height),
        (Some(1), Some(240), Some(240))
    );
    assert_eq!(p.imagesize, Some(51234));
    assert_eq!(s(&p.md5sum), "5e4d3c2b1a09f8e7d6c5b4a392817060");
    assert_eq!(s(&p.sdkfileid), "CtYBMzA2OTAy...emo");
    let media = m.media();
    assert_eq!(
        (media[0].kind, media[0].size, media[0].ext.as_deref()),
        (MediaKind::Emotion, Some(51234), Some("gif"))
    );
}

#[test]
fn file() {
    let m = parse(fixture!("file"));
    let p = payload!(m, Payload::File);
    assert_eq!(s(&p.filename), "报价单-2024Q2.xlsx");
    assert_eq!(s(&p.fileext), "xlsx");
    assert_eq!(p.filesize, Some(88120));
    assert_eq!(s(&p.md5sum), "c0ffee00c0ffee00c0ffee00c0ffee00");
    assert_eq!(s(&p.sdkfileid), "CtYBMzA2OTAy...file");
    let media = m.media();
    assert_eq!(
        (media[0].kind, media[0].ext.as_deref()),
        (MediaKind::File, Some("xlsx"))
    );
}

#[test]
fn link_weapp_todo_doc() {
    let m = parse(fixture!("link"));
    let p = payload!(m, Payload::Link);
    assert_eq!(s(&p.title), "产品白皮书");
    assert_eq!(s(&p.description), "点击查看完整内容");
    assert_eq!(s(&p.link_url), "https://example.com/whitepaper");
    assert_eq!(s(&p.image_url), "https://wework.qpic.cn/wwpic/abc/0");

    let m = parse(fixture!("weapp"));
    let p = payload!(m, Payload::Weapp);
    assert_eq!(s(&p.title), "预约到店");
    assert_eq!(s(&p.username), "gh_0123456789ab@app");
    assert_eq!(s(&p.displayname), "门店预约");

    let m = parse(fixture!("todo"));
    assert_eq!(m.roomid.as_deref(), Some("wrAbCdEfGhIj"));
    let p = payload!(m, Payload::Todo);
    assert_eq!((s(&p.title), s(&p.content)), ("周会纪要", "周五前提交方案"));

    let m = parse(fixture!("docmsg"));
    assert_eq!(m.msgtype, "docmsg");
    let p = payload!(m, Payload::Doc);
    assert_eq!(s(&p.title), "客户跟进表");
    assert_eq!(s(&p.doc_creator), "zhangsan");
    assert_eq!(s(&p.link_url), "https://doc.weixin.qq.com/sheet/e3_xxx");
}

#[test]
fn chatrecord_items_and_media() {
    let m = parse(fixture!("chatrecord"));
    let p = payload!(m, Payload::ChatRecord);
    assert_eq!(s(&p.title), "张三和李四的聊天记录");
    assert_eq!(p.item.len(), 2);
    assert_eq!(s(&p.item[0].item_type), "ChatRecordText");
    assert_eq!(p.item[0].msgtime, Some(1_714_020_000));
    assert_eq!(s(&p.item[0].content), r#"{"content":"明天开会"}"#);
    assert_eq!(p.item[0].from_chatroom, Some(false));
    assert_eq!(s(&p.item[1].item_type), "ChatRecordImage");

    let media = m.media();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].kind, MediaKind::Image);
    assert_eq!(media[0].sdkfileid, "CtYB...cr");
    assert_eq!(
        media[0].md5sum.as_deref(),
        Some("11aa22bb33cc44dd55ee66ff77889900")
    );
    assert_eq!(media[0].size, Some(2048));
    assert_eq!(media[0].item_index, Some(1));
    assert_eq!(m.media_count(), 1);
}

#[test]
fn chatrecord_nested_mixed_media() {
    // A forwarded mixed message inside a chat record: its media keep the top-level item index.
    let inner_mixed = serde_json::json!({"item": [
        {"type": "text", "content": "{\"content\":\"x\"}"},
        {"type": "emotion", "content": "{\"type\":2,\"imagesize\":77,\"md5sum\":\"\",\"sdkfileid\":\"EMO\"}"},
    ]})
    .to_string();
    let json = serde_json::json!({
        "msgid": "n1", "action": "send", "from": "a", "tolist": ["b"], "msgtime": 1, "msgtype": "chatrecord",
        "chatrecord": {"title": "t", "item": [
            {"type": "ChatRecordVideo", "content": "{\"filesize\":9,\"play_length\":3,\"sdkfileid\":\"VID\"}"},
            {"type": "ChatRecordMixed", "content": inner_mixed},
            {"type": "ChatRecordFile", "content": "{\"filename\":\"a.PDF\",\"filesize\":\"12\",\"sdkfileid\":\"F\"}"},
        ]}
    })
    .to_string();
    let media = parse(&json).media();
    let got: Vec<_> = media
        .iter()
        .map(|m| {
            (
                m.kind,
                m.sdkfileid.as_str(),
                m.size,
                m.ext.as_deref(),
                m.md5sum.as_deref(),
                m.item_index,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (MediaKind::Video, "VID", Some(9), Some("mp4"), None, Some(0)),
            (
                MediaKind::Emotion,
                "EMO",
                Some(77),
                Some("png"),
                None,
                Some(1)
            ),
            (MediaKind::File, "F", Some(12), Some("PDF"), None, Some(2)),
        ]
    );
}

#[test]
fn vote_nested_and_flat() {
    let m = parse(fixture!("vote"));
    let p = payload!(m, Payload::Vote);
    assert_eq!(s(&p.votetitle), "团建地点");
    assert_eq!(p.voteitem, ["海边", "山里"]);
    assert_eq!(p.votetype, Some(101));
    assert_eq!(s(&p.voteid), "2405449416");

    let m = parse(fixture!("vote_flat"));
    let p = payload!(m, Payload::Vote);
    assert_eq!(s(&p.votetitle), "午餐吃什么");
    assert_eq!(p.voteitem, ["面", "饭", "沙拉"]);
    assert_eq!(p.votetype, Some(102));
    assert_eq!(s(&p.voteid), "2405449417");

    // A numeric voteid is kept as its decimal text.
    let m = parse(
        r#"{"msgid":"v","action":"send","msgtype":"vote","vote":{"votetitle":"q","voteid":2405449418}}"#,
    );
    assert_eq!(s(&payload!(m, Payload::Vote).voteid), "2405449418");
}

#[test]
fn collect() {
    let m = parse(fixture!("collect"));
    let p = payload!(m, Payload::Collect);
    assert_eq!(s(&p.room_name), "销售一组");
    assert_eq!(s(&p.creator), "张三");
    assert_eq!(s(&p.create_time), "2024-04-25 15:35:00");
    assert_eq!(s(&p.title), "到访登记");
    assert_eq!(p.details.len(), 4);
    assert_eq!(
        (
            p.details[1].id,
            s(&p.details[1].ques),
            s(&p.details[1].ques_type)
        ),
        (Some(2), "到访人数", "Number")
    );
    assert_eq!(s(&p.details[3].ques_type), "Time");
}

#[test]
fn redpackets() {
    let m = parse(fixture!("redpacket"));
    let p = payload!(m, Payload::RedPacket);
    assert_eq!(
        (p.redpacket_type, s(&p.wish), p.totalcnt, p.totalamount),
        (Some(1), "恭喜发财", Some(1), Some(888))
    );

    let m = parse(fixture!("external_redpacket"));
    assert_eq!(m.msgtype, "external_redpacket");
    let p = payload!(m, Payload::RedPacket);
    assert_eq!(
        (p.redpacket_type, s(&p.wish), p.totalcnt, p.totalamount),
        (Some(2), "大吉大利", Some(5), Some(1000))
    );
}

#[test]
fn meeting_id_is_u64() {
    let m = parse(fixture!("meeting"));
    let p = payload!(m, Payload::Meeting);
    assert_eq!(p.meetingid, Some(11_101_571_002_822_706_744u64));
    assert_eq!(s(&p.topic), "季度复盘");
    assert_eq!(
        (p.starttime, p.endtime),
        (Some(1_714_035_600), Some(1_714_039_200))
    );
    assert_eq!((s(&p.address), s(&p.remarks)), ("3F会议室", "带电脑"));
    assert_eq!((p.meetingtype, p.status), (Some(101), Some(1)));

    // Sent as a string, it still parses.
    let m = parse(
        r#"{"msgid":"x","action":"send","msgtype":"meeting","meeting":{"meetingid":"11101571002822706744"}}"#,
    );
    assert_eq!(
        payload!(m, Payload::Meeting).meetingid,
        Some(11_101_571_002_822_706_744u64)
    );
}

#[test]
fn info_keyed_types() {
    let m = parse(fixture!("markdown"));
    assert_eq!(
        s(&payload!(m, Payload::Markdown).content),
        "**告警**：订单同步延迟 5 分钟"
    );

    let m = parse(fixture!("news"));
    let p = payload!(m, Payload::News);
    assert_eq!(p.item.len(), 1);
    assert_eq!(s(&p.item[0].title), "新品发布");
    assert_eq!(s(&p.item[0].description), "点击了解");
    assert_eq!(s(&p.item[0].url), "https://example.com/n/1");
    assert_eq!(s(&p.item[0].picurl), "https://example.com/n/1.jpg");

    let m = parse(fixture!("voiptext"));
    let p = payload!(m, Payload::VoipText);
    assert_eq!((p.callduration, p.invitetype), (Some(185), Some(2)));

    let m = parse(fixture!("qydiskfile"));
    assert_eq!(
        s(&payload!(m, Payload::QyDiskFile).filename),
        "产品手册.pdf"
    );
    assert!(m.media().is_empty(), "qydiskfile has no sdkfileid");

    let m = parse(fixture!("meeting_notification"));
    let p = payload!(m, Payload::MeetingNotification);
    assert_eq!(
        (s(&p.meeting_id), p.notification_type),
        ("2213344556677", Some(1))
    );

    let m = parse(fixture!("meeting_notification_keyed"));
    let p = payload!(m, Payload::MeetingNotification);
    assert_eq!(
        (s(&p.meeting_id), p.notification_type),
        ("2213344556678", Some(2))
    );
}

#[test]
fn calendar() {
    let m = parse(fixture!("calendar"));
    let p = payload!(m, Payload::Calendar);
    assert_eq!(s(&p.title), "客户拜访");
    assert_eq!(s(&p.creatorname), "张三");
    assert_eq!(p.attendeename, ["李四", "王五"]);
    assert_eq!(
        (p.starttime, p.endtime),
        (Some(1_714_114_800), Some(1_714_118_400))
    );
    assert_eq!((s(&p.place), s(&p.remarks)), ("客户公司", "带样品"));
}

#[test]
fn mixed_items_and_media() {
    let m = parse(fixture!("mixed"));
    let p = payload!(m, Payload::Mixed);
    assert_eq!(p.item.len(), 2);
    assert_eq!(s(&p.item[0].item_type), "text");
    assert_eq!(s(&p.item[0].content), r#"{"content":"见下图\n"}"#);
    let text: serde_json::Value = serde_json::from_str(s(&p.item[0].content)).unwrap();
    assert_eq!(text["content"], "见下图\n");

    let media = m.media();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].kind, MediaKind::Image);
    assert_eq!(media[0].sdkfileid, "CtYB...mixed");
    assert_eq!(
        media[0].md5sum.as_deref(),
        Some("9a8b7c6d5e4f30211203f4e5d6c7b8a9")
    );
    assert_eq!(media[0].size, Some(10240));
    assert_eq!(media[0].item_index, Some(1));
}

#[test]
fn meeting_voice_call_and_voip_doc_share() {
    let m = parse(fixture!("meeting_voice_call"));
    assert_eq!(m.roomid, None, "absent roomid");
    let p = payload!(m, Payload::MeetingVoiceCall);
    assert_eq!(s(&p.voiceid), "grb0c1d2e3f4a5b6c7d8e9f00112233445");
    assert_eq!(p.endtime, Some(1_714_033_100));
    assert_eq!(s(&p.sdkfileid), "CtYB...mvc");
    assert_eq!(p.demofiledata.len(), 1);
    assert_eq!(s(&p.demofiledata[0].filename), "方案.pptx");
    assert_eq!(s(&p.demofiledata[0].demooperator), "zhangsan");
    assert_eq!(p.demofiledata[0].starttime, Some(1_714_031_400));
    assert_eq!(s(&p.sharescreendata[0].share), "lisi");
    assert_eq!(p.sharescreendata[0].endtime, Some(1_714_032_000));
    let media = m.media();
    assert_eq!(media.len(), 1);
    assert_eq!(
        (media[0].kind, media[0].md5sum.as_deref(), media[0].size),
        (MediaKind::MeetingVoiceCall, None, None)
    );

    let m = parse(fixture!("voip_doc_share"));
    let p = payload!(m, Payload::VoipDocShare);
    assert_eq!(s(&p.voipid), "gr00112233445566778899aabbccddeeff");
    assert_eq!(s(&p.filename), "报价.pdf");
    assert_eq!(s(&p.md5sum), "ffeeddccbbaa99887766554433221100");
    assert_eq!(p.filesize, Some(1_048_576));
    assert_eq!(s(&p.sdkfileid), "CtYB...vds");
    let media = m.media();
    assert_eq!(
        (media[0].kind, media[0].size, media[0].ext.as_deref()),
        (MediaKind::VoipDocShare, Some(1_048_576), Some("pdf"))
    );
}

#[test]
fn sphfeed() {
    let m = parse(fixture!("sphfeed"));
    assert_eq!(m.msgid, "2612093847561203967_1714031600_external");
    let p = payload!(m, Payload::SphFeed);
    assert_eq!(
        (p.feed_type, s(&p.sph_name), s(&p.feed_desc)),
        (Some(4), "城市旅行指南", "春日徒步路线推荐")
    );
}

#[test]
fn switch_has_no_envelope() {
    let m = parse(fixture!("switch"));
    assert_eq!(m.msgid, "125289002219525886999");
    assert_eq!(m.action, "switch");
    assert_eq!(m.msgtype, "switch");
    assert_eq!(m.msgtime, Some(1_714_031_900_000));
    assert_eq!(
        (m.from.as_deref(), m.tolist.len(), m.roomid.as_deref()),
        (None, 0, None)
    );
    assert_eq!(
        m.payload,
        Payload::Switch {
            user: Some("zhangsan".to_owned())
        }
    );
}

#[test]
fn unknown_msgtype_is_kept() {
    let m = parse(fixture!("solitaire"));
    assert_eq!(m.msgtype, "solitaire");
    assert_eq!(m.from.as_deref(), Some("zhangsan"));
    let Payload::Unknown(v) = &m.payload else {
        panic!("{:?}", m.payload)
    };
    assert_eq!(v["solitaire"]["title"], "周五聚餐接龙");
    assert!(
        v.get("msgid").is_none(),
        "envelope is not repeated in the raw payload"
    );

    // Media inside an unknown type are still found.
    let m = parse(
        r#"{"msgid":"u","action":"send","msgtype":"note","info":{"items":[{"sdkfileid":"NOTE1","filesize":5,"filename":"x.png"}]}}"#,
    );
    let media = m.media();
    assert_eq!(media.len(), 1);
    assert_eq!(
        (media[0].kind, media[0].sdkfileid.as_str(), media[0].size),
        (MediaKind::Other, "NOTE1", Some(5))
    );
    assert_eq!(media[0].ext.as_deref(), Some("png"));
}

#[test]
fn every_fixture_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/messages");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let json = std::fs::read(&path).unwrap();
        let m = message::parse(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expect_unknown = path.file_stem().unwrap() == "solitaire";
        assert_eq!(
            matches!(m.payload, Payload::Unknown(_)),
            expect_unknown,
            "{}",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 33, "only {n} fixtures");
}

#[test]
fn raw_control_characters_are_kept() {
    let mut json = br#"{"msgid":"c1","action":"send","from":"a","tolist":["b"],"msgtime":1,"msgtype":"text","text":{"content":"a"#.to_vec();
    json.extend_from_slice(b"\x01b\nc\td\x1f\"}}");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&json).is_err(),
        "serde_json alone rejects it"
    );
    let m = message::parse(&json).unwrap();
    assert_eq!(
        payload!(m, Payload::Text).content.as_deref(),
        Some("a\u{1}b\nc\td\u{1f}")
    );

    // Pretty-printed JSON (whitespace between tokens) is untouched and parses too.
    let m = message::parse(
        b"{\n\t\"msgid\": \"c2\",\r\n  \"msgtype\": \"text\", \"text\": {\"content\": \"x\"}\n}\n",
    )
    .unwrap();
    assert_eq!(payload!(m, Payload::Text).content.as_deref(), Some("x"));
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(
        message::parse(&[0xff, 0xfe, 0x7b, 0x00]),
        Err(ParseError::NotUtf8 { valid_up_to: 0 })
    ));
    assert!(matches!(
        message::parse(b"{\"msgid\":\"\xc3\x28\"}"),
        Err(ParseError::NotUtf8 { valid_up_to: 10 })
    ));
    assert!(matches!(
        message::parse(br#"[{"msgid":"a"}]"#),
        Err(ParseError::NotAnObject)
    ));
    assert!(matches!(
        message::parse(b"42"),
        Err(ParseError::NotAnObject)
    ));
    assert!(matches!(message::parse(b""), Err(ParseError::NotAnObject)));
    assert!(matches!(
        message::parse(b"{\"msgid\":\"a\",,}"),
        Err(ParseError::Json { .. })
    ));
    assert!(matches!(
        message::parse(br#"{"action":"send","msgtype":"text"}"#),
        Err(ParseError::MissingMsgid)
    ));
    // Decrypting with a wrong key gives random bytes: never a message.
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(message::parse(&bytes).is_err());
    }
}

#[test]
fn schema_shape() {
    let schema = chat_schema();
    assert_eq!(schema.fields().len(), COLUMNS_DOC.len());
    let f = |n: &str| schema.field_with_name(n).unwrap().clone();
    for name in [
        "seq",
        "msgid",
        "publickey_ver",
        "action",
        "tolist",
        "msgtype",
        "media_count",
        "raw_json",
    ] {
        assert!(!f(name).is_nullable(), "{name} must be non-null");
    }
    assert_eq!(
        f("msgtime").data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    let DataType::List(item) = f("tolist").data_type().clone() else {
        panic!()
    };
    assert_eq!(
        (item.name().as_str(), item.data_type(), item.is_nullable()),
        ("item", &DataType::Utf8, false)
    );
    assert_eq!(f("meetingid").data_type(), &DataType::Decimal128(20, 0));
    // No unsigned column: Delta Lake, Iceberg, Hive, Spark and StarRocks have no such types.
    for field in schema.fields() {
        let mut t = field.data_type().clone();
        if let DataType::List(item) = &t {
            t = item.data_type().clone();
        }
        assert!(!t.is_unsigned_integer(), "{} is {t}", field.name());
    }
    for (name, t) in [
        ("seq", DataType::Int64),
        ("publickey_ver", DataType::Int32),
        ("filesize", DataType::Int64),
        ("play_length", DataType::Int32),
        ("media_count", DataType::Int32),
    ] {
        assert_eq!(f(name).data_type(), &t, "{name}");
    }
    // Schema 3 added the conversation columns at the end (additive, as lake tables evolve).
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names[names.len() - 4..],
        [
            "raw_json",
            "conversation_id",
            "chat_type",
            "is_external_sender"
        ]
    );
    assert_eq!(f("is_external_sender").data_type(), &DataType::Boolean);
}

#[test]
fn batch_builder() {
    let inputs = [
        fixture!("text"),
        fixture!("image"),
        fixture!("switch"),
        fixture!("solitaire"),
        fixture!("meeting"),
        fixture!("voice"),
        fixture!("mixed"),
        fixture!("revoke"),
        fixture!("news"),
    ];
    let mut b = ChatBatchBuilder::with_capacity(4);
    assert!(b.is_empty());
    for (i, json) in inputs.iter().enumerate() {
        b.append(100 + i as u64, 2, json, &parse(json));
    }
    assert_eq!(b.len(), inputs.len());
    let batch = b.finish();
    assert_eq!(batch.schema(), chat_schema());
    assert_eq!(batch.num_rows(), inputs.len());
    assert!(b.is_empty(), "finish resets");

    let col = |n: &str| batch.column_by_name(n).unwrap().clone();
    let seq = col("seq");
    let seq = seq.as_primitive::<Int64Type>();
    assert_eq!(seq.values().to_vec(), (100..109).collect::<Vec<i64>>());
    let pkv = col("publickey_ver");
    assert!(pkv
        .as_primitive::<Int32Type>()
        .values()
        .iter()
        .all(|v| *v == 2));

    let msgtype = col("msgtype");
    let msgtype = msgtype.as_string::<i32>();
    assert_eq!(msgtype.value(2), "switch");
    assert_eq!(msgtype.value(3), "solitaire");

    let tolist = col("tolist");
    let tolist = tolist.as_list::<i32>();
    assert_eq!(tolist.null_count(), 0);
    assert_eq!(
        tolist
            .value(0)
            .as_string::<i32>()
            .iter()
            .collect::<Vec<_>>(),
        [Some("wmQx3aDwAAa1b2c3")]
    );
    assert_eq!(tolist.value(2).len(), 0, "switch: empty list");
    assert_eq!(
        tolist
            .value(6)
            .as_string::<i32>()
            .iter()
            .collect::<Vec<_>>(),
        [Some("lisi"), Some("wangwu")]
    );

    let msgtime = col("msgtime");
    let msgtime = msgtime.as_primitive::<TimestampMillisecondType>();
    assert_eq!(msgtime.value(0), 1_714_029_001_123);
    assert_eq!(msgtime.value(2), 1_714_031_900_000, "switch: its time");
    assert_eq!(msgtime.timezone(), Some("UTC"));

    let roomid = col("roomid");
    let roomid = roomid.as_string::<i32>();
    assert!(roomid.is_null(0));
    assert_eq!(roomid.value(4), "wrAbCdEfGhIj");

    let content = col("content");
    assert_eq!(content.as_string::<i32>().value(0), "您好，合同已发您邮箱");
    assert!(content.is_null(1));

    let title = col("title");
    let title = title.as_string::<i32>();
    assert_eq!(title.value(4), "季度复盘");
    assert_eq!(title.value(8), "新品发布");
    assert!(title.is_null(3));

    let filesize = col("filesize");
    let filesize = filesize.as_primitive::<Int64Type>();
    assert_eq!(filesize.value(1), 48213);
    assert_eq!(filesize.value(5), 7420, "voice_size");
    assert!(filesize.is_null(0) && filesize.is_null(6));

    let sdkfileid = col("sdkfileid");
    assert_eq!(
        sdkfileid.as_string::<i32>().value(1),
        "CtYBMzA2OTAy...EiA0MTM"
    );
    let play_length = col("play_length");
    assert_eq!(play_length.as_primitive::<Int32Type>().value(5), 12);

    let user = col("user");
    assert_eq!(user.as_string::<i32>().value(2), "zhangsan");
    let pre = col("pre_msgid");
    assert_eq!(
        pre.as_string::<i32>().value(7),
        "1048362912304877130_1714029001"
    );

    let meetingid = col("meetingid");
    let meetingid = meetingid.as_primitive::<Decimal128Type>();
    // Beyond i64: Decimal(20,0) keeps every digit.
    assert_eq!(meetingid.value(4), 11_101_571_002_822_706_744i128);
    assert_eq!(meetingid.null_count(), inputs.len() - 1);

    let media_count = col("media_count");
    let media_count = media_count.as_primitive::<Int32Type>();
    assert_eq!(media_count.values().to_vec(), [0, 1, 0, 0, 0, 1, 1, 0, 0]);

    let raw = col("raw_json");
    let raw = raw.as_string::<i32>();
    for (i, json) in inputs.iter().enumerate() {
        assert_eq!(raw.value(i), *json, "raw_json is the exact plaintext");
    }

    // The builder is reusable after finish.
    b.append(7, 1, fixture!("file"), &parse(fixture!("file")));
    let batch = b.finish();
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.schema(), chat_schema());
    let col = |n: &str| batch.column_by_name(n).unwrap().clone();
    assert_eq!(col("seq").as_primitive::<Int64Type>().value(0), 7);
    assert_eq!(
        col("filename").as_string::<i32>().value(0),
        "报价单-2024Q2.xlsx"
    );
    assert_eq!(col("fileext").as_string::<i32>().value(0), "xlsx");
    assert_eq!(
        col("msgtime")
            .as_primitive::<TimestampMillisecondType>()
            .timezone(),
        Some("UTC")
    );
}
