//! What a webhook receives: the WeCom group robot's markdown message, and the generic JSON body;
//! the idempotency keys that let a receiver drop a repeat.

use serde_json::{json, Value};

use crate::compliance::rules::Severity;
use crate::state::{NewAlert, StoredAlert};

/// The largest `markdown.content` a WeCom group robot accepts, bytes (UTF-8).
pub const ROBOT_MAX_BYTES: usize = 4096;

/// The header carrying a request's batch key.
pub const BATCH_KEY_HEADER: &str = "Idempotency-Key";

/// Terms listed per alert; the rest are counted.
const MAX_TERMS: usize = 10;

fn sha256_hex(text: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The alert's idempotency key: the SHA-256 (hex) of its identity — corp, msgid, rule and
/// rule-set version — the same at every attempt and in every process.
pub fn idempotency_key(a: &NewAlert) -> String {
    sha256_hex(&format!(
        "wecom-archive/alert/1\n{}\n{}\n{}\n{}",
        a.corp_id, a.msgid, a.rule_id, a.rule_set_version
    ))
}

/// A request's key: the SHA-256 (hex) of its alerts' keys in order; a retry of the same batch
/// carries the same key.
pub fn batch_key(alerts: &[StoredAlert]) -> String {
    let keys: Vec<String> = alerts.iter().map(|a| idempotency_key(&a.alert)).collect();
    sha256_hex(&format!("wecom-archive/batch/1\n{}", keys.join("\n")))
}

/// `msgtime` as RFC 3339 in UTC with milliseconds.
fn utc(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// `msgtime` in the configured time zone, for people.
fn local(ms: i64, tz: &jiff::tz::TimeZone) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms).ok().map(|t| {
        t.to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    })
}

/// The generic JSON body: `{"source":"wecom-archive","alerts":[…]}`, every field of each alert.
pub fn json_body(alerts: &[StoredAlert]) -> Value {
    let items: Vec<Value> = alerts
        .iter()
        .map(|s| {
            let a = &s.alert;
            json!({
                "idempotency_key": idempotency_key(a),
                "alert_id": s.id,
                "corp_id": a.corp_id,
                "seq": a.seq,
                "msgid": a.msgid,
                "conversation_id": a.conversation_id,
                "msgtime": a.msgtime_ms.and_then(utc),
                "msgtime_ms": a.msgtime_ms,
                "from": a.from,
                "msgtype": a.msgtype,
                "rule_id": a.rule_id,
                "rule_set_version": a.rule_set_version,
                "severity": a.severity.as_str(),
                "terms": a.terms,
                "snippet": a.snippet,
            })
        })
        .collect();
    json!({ "source": "wecom-archive", "alerts": items })
}

/// User text made inert in the robot's markdown, which has no reliable escape: the characters
/// that start markup are shown as their full-width forms, line breaks as spaces.
pub fn escape_markdown(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' => '＊',
            '_' => '＿',
            '`' => '｀',
            '[' => '［',
            ']' => '］',
            '<' => '＜',
            '>' => '＞',
            '#' => '＃',
            '\\' => '＼',
            '\r' | '\n' | '\t' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

fn severity_label(s: Severity) -> String {
    // The robot's three colours: warning (orange-red), info (green), comment (grey).
    let colour = match s {
        Severity::Critical => "warning",
        Severity::Warn => "comment",
        Severity::Info => "info",
    };
    format!(
        "<font color=\"{colour}\">{}</font>",
        s.as_str().to_uppercase()
    )
}

/// One alert as a markdown block of the robot message.
pub fn robot_block(a: &NewAlert, tz: &jiff::tz::TimeZone) -> String {
    let e = escape_markdown;
    let or_dash = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), e);
    let time = a
        .msgtime_ms
        .and_then(|ms| local(ms, tz))
        .unwrap_or_else(|| "-".to_owned());
    let mut terms: Vec<String> = a.terms.iter().take(MAX_TERMS).map(|t| e(t)).collect();
    if a.terms.len() > MAX_TERMS {
        terms.push(format!("+{} more", a.terms.len() - MAX_TERMS));
    }
    format!(
        "**{} {}**\n> corp: {} · conversation: {}\n> from: {} · {} · {}\n> terms: {}\n> 「{}」\n> seq {} · msgid {}",
        severity_label(a.severity),
        e(&a.rule_id),
        e(&a.corp_id),
        or_dash(a.conversation_id.as_deref()),
        or_dash(a.from.as_deref()),
        time,
        e(&a.msgtype),
        terms.join(", "),
        e(&a.snippet),
        a.seq,
        code_or_escaped(&a.msgid),
    )
}

/// An id as inline code, so that it copies as it is (`_` would otherwise read as emphasis), when
/// it has only characters that cannot end the code span; else escaped.
fn code_or_escaped(id: &str) -> String {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
    {
        format!("`{id}`")
    } else {
        escape_markdown(id)
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut with `…`.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The robot message for the first alerts of `alerts` that fit in [`ROBOT_MAX_BYTES`] (at least
/// one: an alert too long alone is cut), and how many it holds. The rest go in the next message.
pub fn robot_pack(alerts: &[StoredAlert], tz: &jiff::tz::TimeZone) -> (String, usize) {
    const SEP: &str = "\n\n";
    let mut content = String::new();
    let mut taken = 0;
    for a in alerts {
        let block = robot_block(&a.alert, tz);
        if taken == 0 {
            content = cut(&block, ROBOT_MAX_BYTES);
        } else if content.len() + SEP.len() + block.len() <= ROBOT_MAX_BYTES {
            content.push_str(SEP);
            content.push_str(&block);
        } else {
            break;
        }
        taken += 1;
    }
    (content, taken)
}

/// The robot's request body for `content`.
pub fn robot_body(content: &str) -> Value {
    json!({ "msgtype": "markdown", "markdown": { "content": content } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, snippet: &str) -> StoredAlert {
        StoredAlert {
            id,
            created_at: 0,
            alert: NewAlert {
                corp_id: "ww1".into(),
                seq: id as u64,
                msgid: format!("msg{id}"),
                conversation_id: Some("single:wmQx3a:zhangsan".into()),
                msgtime_ms: Some(1_764_755_416_123),
                from: Some("zhangsan".into()),
                msgtype: "text".into(),
                rule_id: "kickback".into(),
                rule_set_version: "9f2c".into(),
                severity: Severity::Critical,
                terms: vec!["返点".into()],
                snippet: snippet.into(),
            },
        }
    }

    fn shanghai() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn a_robot_block_names_everything_in_local_time() {
        let b = robot_block(&stored(1, "给你 5% 返点").alert, &shanghai());
        assert_eq!(
            b,
            "**<font color=\"warning\">CRITICAL</font> kickback**\n\
             > corp: ww1 · conversation: single:wmQx3a:zhangsan\n\
             > from: zhangsan · 2025-12-03 17:50:16 +08:00 · text\n\
             > terms: 返点\n\
             > 「给你 5% 返点」\n\
             > seq 1 · msgid `msg1`"
        );
        let mut odd = stored(2, "x").alert;
        odd.msgid = "a`b_external".into();
        assert!(robot_block(&odd, &shanghai()).ends_with("msgid a｀b＿external"));
    }

    #[test]
    fn markup_in_user_text_is_made_inert() {
        let s = escape_markdown(
            "**bold** [link](http://x) <font color=\"info\">x</font>\n# h `c` a_b \\",
        );
        assert_eq!(
            s,
            "＊＊bold＊＊ ［link］(http://x) ＜font color=\"info\"＞x＜/font＞ ＃ h ｀c｀ a＿b ＼"
        );
        let mut a = stored(1, "<font color=\"warning\">fake</font>\n> injected").alert;
        a.rule_id = "r*".into();
        let b = robot_block(&a, &shanghai());
        assert_eq!(b.matches("<font").count(), 1, "{b}");
        assert_eq!(b.lines().count(), 6, "one line per field: {b}");
    }

    #[test]
    fn robot_messages_stay_under_4096_bytes_and_lose_no_alert() {
        let tz = shanghai();
        // 40 alerts of about 400 bytes (Chinese is 3 bytes a character).
        let alerts: Vec<StoredAlert> = (1..=40).map(|i| stored(i, &"发票".repeat(50))).collect();
        let mut rest = &alerts[..];
        let mut messages = 0;
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let (content, n) = robot_pack(rest, &tz);
            assert!(
                n >= 1 && content.len() <= ROBOT_MAX_BYTES,
                "{}",
                content.len()
            );
            for a in &rest[..n] {
                assert!(content.contains(&format!("msgid `{}`", a.alert.msgid)));
                seen.push(a.id);
            }
            rest = &rest[n..];
            messages += 1;
        }
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        assert!(messages > 1 && messages < 40, "{messages}");

        // One alert too long alone is cut on a character boundary.
        let huge = [stored(1, &"发".repeat(3000))];
        let (content, n) = robot_pack(&huge, &tz);
        assert_eq!(n, 1);
        assert!(content.len() <= ROBOT_MAX_BYTES && content.ends_with('…'));
    }

    #[test]
    fn the_json_body_carries_every_field_and_stable_keys() {
        let a = stored(3, "开发票");
        let body = json_body(std::slice::from_ref(&a));
        let item = &body["alerts"][0];
        for (k, v) in [
            ("corp_id", json!("ww1")),
            ("seq", json!(3)),
            ("msgid", json!("msg3")),
            ("conversation_id", json!("single:wmQx3a:zhangsan")),
            ("msgtime", json!("2025-12-03T09:50:16.123Z")),
            ("msgtime_ms", json!(1_764_755_416_123_i64)),
            ("from", json!("zhangsan")),
            ("msgtype", json!("text")),
            ("rule_id", json!("kickback")),
            ("rule_set_version", json!("9f2c")),
            ("severity", json!("critical")),
            ("terms", json!(["返点"])),
            ("snippet", json!("开发票")),
            ("alert_id", json!(3)),
        ] {
            assert_eq!(item[k], v, "{k}");
        }
        let key = item["idempotency_key"].as_str().unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(
            key,
            idempotency_key(&stored(99, "other text").alert.clone_with_msgid("msg3"))
        );
        let mut v2 = a.clone();
        v2.alert.rule_set_version = "other".into();
        assert_ne!(idempotency_key(&v2.alert), key);
        let one = batch_key(std::slice::from_ref(&a));
        assert_eq!(one, batch_key(std::slice::from_ref(&a)));
        assert_ne!(one, batch_key(&[a, v2]));
    }

    impl NewAlert {
        fn clone_with_msgid(&self, msgid: &str) -> NewAlert {
            NewAlert {
                msgid: msgid.into(),
                seq: 3,
                ..self.clone()
            }
        }
    }
}
