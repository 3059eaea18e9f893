//! CSV transcripts for spreadsheets and tools: RFC 4180 (comma-separated, CRLF line ends, a
//! field quoted with `"` when it holds a comma, quote, CR or LF, quotes doubled), one header
//! row, UTF-8 with a byte-order mark so that Excel reads Chinese text as UTF-8.
//!
//! Columns: `seq, msgid, msgtime` (local ISO 8601 with offset), `from, tolist` (`;`-separated),
//! `msgtype, conversation_id, recalled_by` (seq of the revoke message, or empty), `text` (see
//! [`super::message_text`]), `media` (paths inside the export, `;`-separated), `raw_json`.
//! Texts are written as sent: a cell starting with `=` is still a formula to Excel.

use std::io::Write;

use super::{Context, Conversation, ExportMessage, Transcript};

/// The columns, in order.
pub const HEADER: [&str; 11] = [
    "seq",
    "msgid",
    "msgtime",
    "from",
    "tolist",
    "msgtype",
    "conversation_id",
    "recalled_by",
    "text",
    "media",
    "raw_json",
];

/// The UTF-8 byte-order mark the file starts with.
pub const BOM: &str = "\u{feff}";

/// Writes one field, quoted when it must be.
pub fn write_field(w: &mut dyn Write, field: &str) -> std::io::Result<()> {
    if field.contains([',', '"', '\r', '\n']) {
        w.write_all(b"\"")?;
        w.write_all(field.replace('"', "\"\"").as_bytes())?;
        w.write_all(b"\"")
    } else {
        w.write_all(field.as_bytes())
    }
}

/// Writes one record and its CRLF.
pub fn write_record<S: AsRef<str>>(w: &mut dyn Write, fields: &[S]) -> std::io::Result<()> {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write_field(w, f.as_ref())?;
    }
    w.write_all(b"\r\n")
}

/// A CSV transcript.
pub(super) struct CsvTranscript;

impl Transcript for CsvTranscript {
    fn head(
        &mut self,
        w: &mut dyn Write,
        _: &Context<'_>,
        _: &Conversation,
    ) -> std::io::Result<()> {
        w.write_all(BOM.as_bytes())?;
        write_record(w, &HEADER)
    }

    fn message(
        &mut self,
        w: &mut dyn Write,
        ctx: &Context<'_>,
        m: &ExportMessage<'_>,
    ) -> std::io::Result<()> {
        let media: Vec<&str> = m.media.iter().filter_map(|l| l.path.as_deref()).collect();
        write_record(
            w,
            &[
                m.seq.to_string(),
                m.msg.msgid.clone(),
                ctx.iso_time(m.msg.msgtime),
                m.msg.from.clone().unwrap_or_default(),
                m.msg.tolist.join(";"),
                m.msg.msgtype.clone(),
                m.conversation_id.to_owned(),
                m.recalled_by.map(|s| s.to_string()).unwrap_or_default(),
                super::message_text(m.msg),
                media.join(";"),
                m.raw_json.to_owned(),
            ],
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> String {
        let mut v = Vec::new();
        write_record(&mut v, fields).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(record(&["a", "b c", "发票"]), "a,b c,发票\r\n");
        assert_eq!(
            record(&["a,b", "say \"hi\""]),
            "\"a,b\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(
            record(&["line\nbreak", "cr\r"]),
            "\"line\nbreak\",\"cr\r\"\r\n"
        );
        assert_eq!(record(&["", ""]), ",\r\n");
    }
}
