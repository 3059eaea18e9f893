//! HTML transcripts: one self-contained page per conversation, readable in any browser, with no
//! script and nothing fetched from the network.
//!
//! Chat text is hostile input: every value taken from a message (texts, ids, names, URLs, raw
//! JSON) goes through [`escape`], and the page's Content-Security-Policy forbids scripts, so
//! a `<script>` in a message stays text even if escaping were ever missed. Links are made only
//! of `http:`/`https:` URLs and of media copied into the export (`media/…`).
//!
//! Markup hooks (stable, for tests and tools):
//! - `<header class="transcript">` with `data-corp`, `data-conversation`, `data-chat-type`,
//!   `data-messages`;
//! - one `<article class="msg" id="seq-N" data-seq data-msgid data-msgtype>` per message, in
//!   seq order; `class="msg revoked"` for a message that was recalled (it also holds a
//!   `.revoked-marker`), `class="msg revoke"` for the recall itself;
//! - `.from`, `<time datetime="ISO 8601">`, `.body`; media as `a.media` / `img`, media not
//!   downloaded as `.media-missing`; an unknown msgtype as `<pre class="raw">`.

use std::io::Write;

use serde_json::Value;

use super::{Context, Conversation, ExportMessage, LinkedMedia, Transcript};
use crate::model::message::{ChatMessage, MediaKind, Payload};

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's policy: no script, no plugin, no network; only its own style and media files.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' file: data:; \
                   media-src 'self' file:; base-uri 'none'; form-action 'none'";

const STYLE: &str = "
body{font-family:-apple-system,'Segoe UI','PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;
max-width:980px;margin:0 auto;padding:16px;color:#1d2129;background:#f5f6f7}
header.transcript{background:#fff;border:1px solid #dcdfe6;border-radius:6px;padding:12px 16px;margin-bottom:16px}
header.transcript h1{font-size:18px;margin:0 0 8px}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0;font-size:13px}
dl.meta dt{color:#86909c}dl.meta dd{margin:0;word-break:break-all}
article.msg{background:#fff;border:1px solid #e5e6eb;border-radius:6px;padding:8px 12px;margin:8px 0}
article.msg>.head{font-size:12px;color:#86909c;display:flex;gap:10px;flex-wrap:wrap}
article.msg .from{font-weight:600;color:#1d2129}
.body{margin-top:4px;white-space:pre-wrap;word-break:break-word}
.revoked{border-left:4px solid #f53f3f;background:#fff7f7}
.revoked-marker{color:#f53f3f;font-weight:600;font-size:12px}
.revoke{background:#fafafa;color:#4e5969;font-style:italic}
dl.fields{display:grid;grid-template-columns:max-content auto;gap:0 10px;margin:0;white-space:normal}
dl.fields dt{color:#86909c}dl.fields dd{margin:0;white-space:pre-wrap}
pre.raw{background:#f2f3f5;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:12px}
img{max-width:320px;max-height:320px;border-radius:4px}
.media-missing{color:#86909c}
.type{border:1px solid #c9cdd4;border-radius:3px;padding:0 4px}
ol.items{margin:4px 0;padding-left:20px}
footer{font-size:12px;color:#86909c;margin:16px 0}
";

/// An HTML transcript.
#[derive(Default)]
pub(super) struct HtmlTranscript {
    written: u64,
}

impl Transcript for HtmlTranscript {
    fn head(
        &mut self,
        w: &mut dyn Write,
        ctx: &Context<'_>,
        c: &Conversation,
    ) -> std::io::Result<()> {
        let chat_type = c.chat_type.map(|t| t.as_str()).unwrap_or("");
        let participants: Vec<String> = c.participants.iter().map(|p| escape(p)).collect();
        write!(
            w,
            "<!DOCTYPE html>\n<html lang=\"zh\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"wecom-archive {version}\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <header class=\"transcript\" data-corp=\"{corp}\" data-conversation=\"{conv}\" \
             data-chat-type=\"{chat_type}\" data-messages=\"{n}\">\n\
             <h1>Conversation {conv}</h1>\n<dl class=\"meta\">\n\
             <dt>Corp</dt><dd class=\"corp\">{corp}</dd>\n\
             <dt>Conversation</dt><dd class=\"conversation-id\">{conv}</dd>\n\
             <dt>Chat type</dt><dd class=\"chat-type\">{chat_type}</dd>\n\
             <dt>Participants ({np})</dt><dd class=\"participants\">{participants}</dd>\n\
             <dt>Time range</dt><dd class=\"time-range\">{first} – {last} ({tz})</dd>\n\
             <dt>Messages</dt><dd class=\"message-count\">{n}</dd>\n\
             </dl>\n</header>\n<main>\n",
            csp = CSP,
            version = env!("CARGO_PKG_VERSION"),
            title = escape(&format!("{} — {}", c.id, ctx.corp)),
            corp = escape(ctx.corp),
            conv = escape(&c.id),
            n = c.messages,
            np = participants.len(),
            participants = participants.join(", "),
            first = ctx.local_time(c.first_ms),
            last = ctx.local_time(c.last_ms),
            tz = escape(ctx.tz_name),
        )
    }

    fn message(
        &mut self,
        w: &mut dyn Write,
        ctx: &Context<'_>,
        m: &ExportMessage<'_>,
    ) -> std::io::Result<()> {
        self.written += 1;
        let msg = m.msg;
        let class = if m.recalled_by.is_some() {
            "msg revoked"
        } else if matches!(msg.payload, Payload::Revoke(_)) {
            "msg revoke"
        } else {
            "msg"
        };
        write!(
            w,
            "<article class=\"{class}\" id=\"seq-{seq}\" data-seq=\"{seq}\" data-msgid=\"{msgid}\" \
             data-msgtype=\"{t}\">\n<div class=\"head\"><span class=\"from\">{from}</span>\
             <time datetime=\"{iso}\">{local}</time><span class=\"type\">{t}</span>\
             <span class=\"seq\">seq {seq}</span></div>\n",
            seq = m.seq,
            msgid = escape(&msg.msgid),
            t = escape(&msg.msgtype),
            from = escape(msg.from.as_deref().unwrap_or("")),
            iso = ctx.iso_time(msg.msgtime),
            local = ctx.local_time(msg.msgtime),
        )?;
        if let Some(by) = m.recalled_by {
            writeln!(
                w,
                "<p class=\"revoked-marker\">Recalled (已撤回) by the sender: see \
                 <a href=\"#seq-{by}\">seq {by}</a></p>"
            )?;
        }
        let mut body = String::new();
        render_body(&mut body, ctx, msg, m.raw_json, m.media);
        write!(w, "<div class=\"body\">{body}</div>\n</article>\n")
    }

    fn tail(
        &mut self,
        w: &mut dyn Write,
        _: &Context<'_>,
        c: &Conversation,
    ) -> std::io::Result<()> {
        write!(
            w,
            "</main>\n<footer>{} messages of conversation {}, exported by wecom-archive {}.\
             </footer>\n</body>\n</html>\n",
            self.written,
            escape(&c.id),
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// `(label, value)` pairs as a definition list, skipping empty values.
fn fields(out: &mut String, pairs: &[(&str, Option<String>)]) {
    let pairs: Vec<_> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    out.push_str("<dl class=\"fields\">");
    for (k, v) in pairs {
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(v)));
    }
    out.push_str("</dl>");
}

fn text(out: &mut String, s: Option<&str>) {
    if let Some(s) = s {
        out.push_str(&format!("<span class=\"text\">{}</span>", escape(s)));
    }
}

/// A link to `url` when it is http(s); the URL as text otherwise (never `javascript:` & co).
fn url(out: &mut String, label: &str, url: Option<&str>) {
    let Some(u) = url.filter(|u| !u.is_empty()) else {
        return;
    };
    let lower = u.trim_start().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        out.push_str(&format!(
            "<div class=\"url\">{}: <a href=\"{}\" rel=\"noopener noreferrer\">{}</a></div>",
            escape(label),
            escape(u.trim_start()),
            escape(u)
        ));
    } else {
        out.push_str(&format!(
            "<div class=\"url\">{}: <code>{}</code></div>",
            escape(label),
            escape(u)
        ));
    }
}

fn opt<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(T::to_string)
}

/// Seconds since the epoch as local time.
fn secs(ctx: &Context<'_>, s: Option<i64>) -> Option<String> {
    s.map(|s| ctx.local_time(Some(s.saturating_mul(1000))))
}

fn size(bytes: Option<u64>) -> Option<String> {
    bytes.map(|b| match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    })
}

/// The media of `item` (`None`: the message's own).
fn media(out: &mut String, all: &[LinkedMedia], item: Option<u32>, label: Option<&str>) {
    for l in all.iter().filter(|l| l.item_index == item) {
        let kind = l.kind.as_str();
        match (&l.path, l.kind) {
            (Some(p), MediaKind::Image | MediaKind::Emotion) => out.push_str(&format!(
                "<div><a class=\"media\" data-kind=\"{kind}\" href=\"{p}\"><img src=\"{p}\" \
                 alt=\"{kind}\" loading=\"lazy\"></a></div>",
                p = escape(p)
            )),
            (Some(p), MediaKind::Video) => out.push_str(&format!(
                "<div><video controls preload=\"none\" src=\"{p}\"></video><br>\
                 <a class=\"media\" data-kind=\"{kind}\" href=\"{p}\">{kind}</a></div>",
                p = escape(p)
            )),
            (Some(p), _) => out.push_str(&format!(
                "<div><a class=\"media\" data-kind=\"{kind}\" href=\"{p}\">{}</a></div>",
                escape(label.unwrap_or(kind)),
                p = escape(p)
            )),
            (None, _) => out.push_str(&format!(
                "<div class=\"media-missing\" data-kind=\"{kind}\">[{kind} not downloaded: \
                 run `wecom-archive media`; sdkfileid {}]</div>",
                escape(&shorten(&l.sdkfileid, 24))
            )),
        }
    }
}

fn shorten(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The keys of an inner `mixed`/`chatrecord` message shown as its fields.
const INNER_KEYS: [&str; 8] = [
    "content",
    "title",
    "description",
    "filename",
    "address",
    "displayname",
    "fileext",
    "play_length",
];

/// An inner message (a JSON object as text) of a `mixed` or `chatrecord` item.
fn inner(out: &mut String, item_type: Option<&str>, json: Option<&str>) {
    let v: Option<Value> = json.and_then(|j| serde_json::from_str(j).ok());
    let Some(Value::Object(o)) = v else {
        if let Some(j) = json {
            out.push_str(&format!("<pre class=\"raw\">{}</pre>", escape(j)));
        }
        return;
    };
    let is_text = matches!(item_type, Some(t) if t.eq_ignore_ascii_case("text")
        || t.eq_ignore_ascii_case("ChatRecordText"));
    if is_text {
        text(out, o.get("content").and_then(Value::as_str));
    } else {
        let pairs: Vec<(&str, Option<String>)> = INNER_KEYS
            .iter()
            .map(|k| {
                (
                    *k,
                    o.get(*k).and_then(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }),
                )
            })
            .collect();
        fields(out, &pairs);
        for k in ["link_url", "url"] {
            url(out, k, o.get(k).and_then(Value::as_str));
        }
    }
    // A nested forwarded record (ChatRecordMixed and the like).
    if let Some(Value::Array(items)) = o.get("item") {
        out.push_str("<ol class=\"items\">");
        for it in items {
            let t = it.get("type").and_then(Value::as_str);
            out.push_str(&format!(
                "<li><span class=\"type\">{}</span> ",
                escape(t.unwrap_or(""))
            ));
            let c = it.get("content").map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            inner(out, t, c.as_deref());
            out.push_str("</li>");
        }
        out.push_str("</ol>");
    }
}

/// The message's body: every msgtype shown as what it carries.
fn render_body(
    out: &mut String,
    ctx: &Context<'_>,
    msg: &ChatMessage,
    raw_json: &str,
    linked: &[LinkedMedia],
) {
    match &msg.payload {
        Payload::Text(p) => text(out, p.content.as_deref()),
        Payload::Markdown(p) => text(out, p.content.as_deref()),
        Payload::Image(p) => {
            media(out, linked, None, None);
            fields(out, &[("size", size(p.filesize))]);
        }
        Payload::Emotion(p) => {
            media(out, linked, None, None);
            fields(out, &[("title", p.title.clone())]);
        }
        Payload::Voice(p) => {
            let label = format!("voice, {} s", p.play_length.unwrap_or(0));
            media(out, linked, None, Some(&label));
        }
        Payload::Video(p) => {
            media(out, linked, None, None);
            fields(
                out,
                &[
                    ("length", p.play_length.map(|s| format!("{s} s"))),
                    ("size", size(p.filesize)),
                ],
            );
        }
        Payload::File(p) => {
            media(out, linked, None, p.filename.as_deref());
            fields(
                out,
                &[
                    ("file name", p.filename.clone()),
                    ("size", size(p.filesize)),
                ],
            );
        }
        Payload::Revoke(p) => out.push_str(&format!(
            "<span class=\"revoke-note\">Recalled a message (撤回消息): msgid <code>{}</code>\
             </span>",
            escape(p.pre_msgid.as_deref().unwrap_or("?"))
        )),
        Payload::Agree(p) | Payload::Disagree(p) => {
            let what = if msg.msgtype == "disagree" {
                "refused archiving (不同意存档)"
            } else {
                "agreed to archiving (同意存档)"
            };
            out.push_str(&format!(
                "<span class=\"consent\">{} {what}</span>",
                escape(p.userid.as_deref().unwrap_or("?"))
            ));
            fields(out, &[("at", p.time.map(|t| ctx.local_time(Some(t))))]);
        }
        Payload::Card(p) => fields(
            out,
            &[
                ("contact card", p.userid.clone()),
                ("corp", p.corpname.clone()),
            ],
        ),
        Payload::Location(p) => fields(
            out,
            &[
                ("place", p.title.clone()),
                ("address", p.address.clone()),
                ("latitude", opt(&p.latitude)),
                ("longitude", opt(&p.longitude)),
            ],
        ),
        Payload::Link(p) => {
            fields(
                out,
                &[
                    ("title", p.title.clone()),
                    ("description", p.description.clone()),
                ],
            );
            url(out, "link", p.link_url.as_deref());
        }
        Payload::Weapp(p) => fields(
            out,
            &[
                ("mini program", p.displayname.clone()),
                ("title", p.title.clone()),
                ("description", p.description.clone()),
            ],
        ),
        Payload::ChatRecord(p) => {
            fields(out, &[("forwarded chat", p.title.clone())]);
            out.push_str("<ol class=\"items\">");
            for (i, item) in p.item.iter().enumerate() {
                out.push_str(&format!(
                    "<li><span class=\"type\">{}</span> ",
                    escape(item.item_type.as_deref().unwrap_or(""))
                ));
                inner(out, item.item_type.as_deref(), item.content.as_deref());
                media(out, linked, Some(i as u32), None);
                out.push_str("</li>");
            }
            out.push_str("</ol>");
        }
        Payload::Mixed(p) => {
            out.push_str("<ol class=\"items\">");
            for (i, item) in p.item.iter().enumerate() {
                out.push_str("<li>");
                inner(out, item.item_type.as_deref(), item.content.as_deref());
                media(out, linked, Some(i as u32), None);
                out.push_str("</li>");
            }
            out.push_str("</ol>");
        }
        Payload::Todo(p) => fields(
            out,
            &[("to-do", p.title.clone()), ("content", p.content.clone())],
        ),
        Payload::Vote(p) => {
            let kind = match p.votetype {
                Some(101) => Some("started a vote".to_owned()),
                Some(102) => Some("voted".to_owned()),
                other => opt(&other),
            };
            fields(
                out,
                &[
                    ("vote", p.votetitle.clone()),
                    ("action", kind),
                    ("options", Some(p.voteitem.join(" / "))),
                ],
            );
        }
        Payload::Collect(p) => {
            let questions: Vec<String> = p.details.iter().filter_map(|d| d.ques.clone()).collect();
            fields(
                out,
                &[
                    ("form", p.title.clone()),
                    ("group", p.room_name.clone()),
                    ("creator", p.creator.clone()),
                    ("created", p.create_time.clone()),
                    ("questions", Some(questions.join(" / "))),
                ],
            );
        }
        Payload::RedPacket(p) => fields(
            out,
            &[
                ("red packet", p.wish.clone()),
                ("packets", opt(&p.totalcnt)),
                (
                    "total",
                    p.totalamount
                        .map(|f| format!("{}.{:02} CNY", f / 100, f % 100)),
                ),
            ],
        ),
        Payload::Meeting(p) => fields(
            out,
            &[
                ("meeting", p.topic.clone()),
                ("start", secs(ctx, p.starttime)),
                ("end", secs(ctx, p.endtime)),
                ("place", p.address.clone()),
                ("remarks", p.remarks.clone()),
                ("meeting id", opt(&p.meetingid)),
            ],
        ),
        Payload::Doc(p) => {
            fields(
                out,
                &[
                    ("document", p.title.clone()),
                    ("creator", p.doc_creator.clone()),
                ],
            );
            url(out, "link", p.link_url.as_deref());
        }
        Payload::News(p) => {
            for item in &p.item {
                fields(
                    out,
                    &[
                        ("article", item.title.clone()),
                        ("description", item.description.clone()),
                    ],
                );
                url(out, "link", item.url.as_deref());
            }
            fields(
                out,
                &[
                    ("article", p.title.clone()),
                    ("description", p.description.clone()),
                ],
            );
            url(out, "link", p.url.as_deref());
        }
        Payload::Calendar(p) => fields(
            out,
            &[
                ("event", p.title.clone()),
                ("creator", p.creatorname.clone()),
                ("attendees", Some(p.attendeename.join(", "))),
                ("start", secs(ctx, p.starttime)),
                ("end", secs(ctx, p.endtime)),
                ("place", p.place.clone()),
                ("remarks", p.remarks.clone()),
            ],
        ),
        Payload::MeetingVoiceCall(p) => {
            media(out, linked, None, Some("call recording"));
            let docs: Vec<String> = p
                .demofiledata
                .iter()
                .filter_map(|d| d.filename.clone())
                .collect();
            fields(
                out,
                &[
                    ("ended", secs(ctx, p.endtime)),
                    ("documents shown", Some(docs.join(", "))),
                ],
            );
        }
        Payload::VoipDocShare(p) => {
            media(out, linked, None, p.filename.as_deref());
            fields(
                out,
                &[
                    ("shared document", p.filename.clone()),
                    ("size", size(p.filesize)),
                ],
            );
        }
        Payload::SphFeed(p) => fields(
            out,
            &[
                ("channel", p.sph_name.clone()),
                ("post", p.feed_desc.clone()),
            ],
        ),
        Payload::VoipText(p) => fields(
            out,
            &[
                (
                    "call",
                    p.invitetype.map(|t| {
                        match t {
                            1 => "video call",
                            2 => "voice call",
                            3 => "group video call",
                            4 => "group voice call",
                            _ => "call",
                        }
                        .to_owned()
                    }),
                ),
                ("duration", p.callduration.map(|s| format!("{s} s"))),
            ],
        ),
        Payload::QyDiskFile(p) => fields(out, &[("WeDrive file", p.filename.clone())]),
        Payload::MeetingNotification(p) => fields(
            out,
            &[
                ("meeting", p.meeting_id.clone()),
                ("notification type", opt(&p.notification_type)),
            ],
        ),
        Payload::Switch { user } => fields(out, &[("switched corp", user.clone())]),
        Payload::Unknown(_) => {
            media(out, linked, None, None);
            // The whole message exactly as sent: nothing is known of the type, so nothing is
            // dropped or reordered.
            out.push_str(&format!("<pre class=\"raw\">{}</pre>", escape(raw_json)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("发票"), "发票");
    }

    #[test]
    fn only_http_urls_become_links() {
        let mut s = String::new();
        url(&mut s, "link", Some("javascript:alert(1)"));
        assert!(!s.contains("href"), "{s}");
        let mut s = String::new();
        url(&mut s, "link", Some("https://example.com/?a=1&b=\"2\""));
        assert!(
            s.contains("href=\"https://example.com/?a=1&amp;b=&quot;2&quot;\""),
            "{s}"
        );
    }
}
