//! JSON Lines transcripts for tools: one object per message, in seq order, each on one line.
//!
//! Fields: `seq`, `msgid`, `msgtime` (local ISO 8601 with offset; `null` when the message has
//! none), `msgtime_ms` (UTC milliseconds), `from`, `tolist`, `msgtype`, `conversation_id`,
//! `recalled_by` (seq of the revoke message, or `null`), `text` (see
//! [`super::message_text`]), `media` (`[{kind, item_index, sdkfileid, path}]`, `path` inside
//! the export or `null` when not downloaded) and `raw_json` (the exact decrypted plaintext, as a
//! string, so that not a byte of it is reordered).

use std::io::Write;

use serde::Serialize;

use super::{Context, Conversation, ExportMessage, Transcript};

#[derive(Serialize)]
struct Line<'a> {
    seq: i64,
    msgid: &'a str,
    msgtime: Option<String>,
    msgtime_ms: Option<i64>,
    from: Option<&'a str>,
    tolist: &'a [String],
    msgtype: &'a str,
    conversation_id: &'a str,
    recalled_by: Option<i64>,
    text: String,
    media: Vec<Media<'a>>,
    raw_json: &'a str,
}

#[derive(Serialize)]
struct Media<'a> {
    kind: &'static str,
    item_index: Option<u32>,
    sdkfileid: &'a str,
    path: Option<&'a str>,
}

/// A JSON Lines transcript.
pub(super) struct JsonlTranscript;

impl Transcript for JsonlTranscript {
    fn head(
        &mut self,
        _: &mut dyn Write,
        _: &Context<'_>,
        _: &Conversation,
    ) -> std::io::Result<()> {
        Ok(())
    }

    fn message(
        &mut self,
        w: &mut dyn Write,
        ctx: &Context<'_>,
        m: &ExportMessage<'_>,
    ) -> std::io::Result<()> {
        let line = Line {
            seq: m.seq,
            msgid: &m.msg.msgid,
            msgtime: m.msg.msgtime.map(|t| ctx.iso_time(Some(t))),
            msgtime_ms: m.msg.msgtime,
            from: m.msg.from.as_deref(),
            tolist: &m.msg.tolist,
            msgtype: &m.msg.msgtype,
            conversation_id: m.conversation_id,
            recalled_by: m.recalled_by,
            text: super::message_text(m.msg),
            media: m
                .media
                .iter()
                .map(|l| Media {
                    kind: l.kind.as_str(),
                    item_index: l.item_index,
                    sdkfileid: &l.sdkfileid,
                    path: l.path.as_deref(),
                })
                .collect(),
            raw_json: m.raw_json,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")
    }

    fn tail(
        &mut self,
        _: &mut dyn Write,
        _: &Context<'_>,
        _: &Conversation,
    ) -> std::io::Result<()> {
        Ok(())
    }
}
