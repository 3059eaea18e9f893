//! Repair of raw control characters inside JSON strings, the one pre-pass a decrypted plaintext may need.

use std::borrow::Cow;

/// Escapes raw control characters (bytes `< 0x20`) that appear **inside JSON string literals** as `\u00XX`.
///
/// Decrypted messages sometimes carry raw control characters in text (pasted content, emoji keyboards), which the
/// JSON grammar — and so serde_json — rejects. Escaping them is lossless: the parsed string contains exactly the
/// original characters. Bytes outside string literals (whitespace between tokens) are left alone, and a string
/// that ends up invalid for another reason stays invalid, so this never turns garbage into a message.
///
/// Returns [`Cow::Borrowed`] when nothing needs escaping, which is the common case and allocates nothing.
/// Works on bytes: every byte of a multi-byte UTF-8 sequence is `>= 0x80`, so it cannot be mistaken for `"`, `\`
/// or a control character.
pub fn escape_control_chars(json: &[u8]) -> Cow<'_, [u8]> {
    // Fast path: a vectorisable scan; compact JSON without control characters skips the state machine entirely.
    if !json.iter().any(|&b| b < 0x20) {
        return Cow::Borrowed(json);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0; // json[..copied] is already in `out`
    let mut in_string = false;
    let mut after_backslash = false;
    for (i, &b) in json.iter().enumerate() {
        if !in_string {
            in_string = b == b'"';
            continue;
        }
        if after_backslash {
            // The escaped character is taken as is: `\"` must not close the string. A raw control character right
            // after `\` is an invalid escape whichever way we write it, so it stays raw and fails the parse.
            after_backslash = false;
            continue;
        }
        match b {
            b'\\' => after_backslash = true,
            b'"' => in_string = false,
            c if c < 0x20 => {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(json.len() + 16));
                buf.extend_from_slice(&json[copied..i]);
                buf.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xF)],
                ]);
                copied = i + 1;
            }
            _ => {}
        }
    }
    match out {
        None => Cow::Borrowed(json),
        Some(mut buf) => {
            buf.extend_from_slice(&json[copied..]);
            Cow::Owned(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn escape_borrows_when_clean() {
        let s = br#"{"a":"b c","n":1}"#;
        assert!(matches!(escape_control_chars(s), Cow::Borrowed(_)));
        // Whitespace between tokens is not escaped and does not allocate.
        let s = b"{\n\t\"a\" : \"b\"\r\n}";
        assert!(matches!(escape_control_chars(s), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_only_inside_strings() {
        let s = b"{\n\"a\":\"x\x01y\ttab\\\"q\nz\"}";
        let out = escape_control_chars(s);
        assert_eq!(
            &*out,
            &b"{\n\"a\":\"x\\u0001y\\u0009tab\\\"q\\u000Az\"}"[..]
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["a"], "x\u{1}y\ttab\"q\nz");
    }

    #[test]
    fn escape_keeps_escaped_backslash_at_string_end() {
        // `\\` closes nothing: the `"` after it ends the string, the newline after that is whitespace.
        let s = b"{\"a\":\"c:\\\\\"\n,\"b\":\"\x1f\"}";
        let out = escape_control_chars(s);
        assert_eq!(&*out, &b"{\"a\":\"c:\\\\\"\n,\"b\":\"\\u001F\"}"[..]);
    }
}
