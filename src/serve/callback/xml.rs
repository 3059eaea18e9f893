//! A small, strict reader for WeCom's flat callback XML (`<xml><Field>value</Field>…</xml>`).
//!
//! Callback bodies come from the network, so the reader is defensive: the caller bounds the size
//! before parsing, a `<!DOCTYPE>` is rejected outright (no DTD, so no external or custom
//! entities and no entity-expansion bombs), only the five predefined entities and character
//! references are resolved, and depth and field count are capped.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

/// Deepest element nesting accepted (WeCom's deepest is `ExtAttr/Item/…`, 4 levels).
const MAX_DEPTH: usize = 8;
/// Most direct children of the root accepted.
const MAX_FIELDS: usize = 256;

/// Why a body is not acceptable callback XML. Never carries the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML (or not UTF-8).
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A `<!DOCTYPE>` (DTDs and their entities are never processed).
    #[error("a DOCTYPE is not allowed")]
    Doctype,
    /// An entity other than the five predefined ones.
    #[error("entity &{0}; is not allowed")]
    Entity(String),
    /// Nested deeper than 8 levels or more than 256 fields.
    #[error("XML too deep or too many fields")]
    TooComplex,
    /// No root element.
    #[error("no root element")]
    Empty,
}

/// The direct children of the root element, in document order, with their text (CDATA and
/// text concatenated; nested elements contribute their text too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first field named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first field named `name`, if present and not blank.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every field.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Parses `text` (already size-bounded by the caller) into the root's fields.
pub fn parse(text: &str) -> Result<Fields, XmlError> {
    let mut reader = Reader::from_str(text);
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut depth = 0usize;
    let mut seen_root = false;
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e))?;
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(e) => {
                if depth == 0 && seen_root {
                    return Err(XmlError::Malformed("more than one root element".into()));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(XmlError::TooComplex);
                }
                if depth == 1 {
                    seen_root = true;
                } else if depth == 2 {
                    if fields.len() >= MAX_FIELDS {
                        return Err(XmlError::TooComplex);
                    }
                    let name = std::str::from_utf8(e.name().as_ref())
                        .map_err(|e| malformed(&e))?
                        .to_owned();
                    fields.push((name, String::new()));
                }
            }
            Event::Empty(e) => {
                if depth == 0 {
                    // `<xml/>`: a root with no fields.
                    if seen_root {
                        return Err(XmlError::Malformed("more than one root element".into()));
                    }
                    seen_root = true;
                } else if depth == 1 {
                    if fields.len() >= MAX_FIELDS {
                        return Err(XmlError::TooComplex);
                    }
                    let name = std::str::from_utf8(e.name().as_ref())
                        .map_err(|e| malformed(&e))?
                        .to_owned();
                    fields.push((name, String::new()));
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| malformed(&e))?;
                push_text(&mut fields, depth, &s)?;
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| malformed(&e))?;
                push_text(&mut fields, depth, &s)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| malformed(&e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| malformed(&e))?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError::Entity(name.chars().take(32).collect()))?
                            .to_owned()
                    }
                };
                push_text(&mut fields, depth, &resolved)?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if depth != 0 {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    if !seen_root {
        return Err(XmlError::Empty);
    }
    Ok(Fields(fields))
}

fn push_text(fields: &mut [(String, String)], depth: usize, s: &str) -> Result<(), XmlError> {
    match depth {
        // Whitespace between elements is fine; other text outside the root is not.
        0 | 1 if s.trim().is_empty() => Ok(()),
        0 => Err(XmlError::Malformed("text outside the root element".into())),
        1 => Ok(()),
        _ => {
            if let Some((_, v)) = fields.last_mut() {
                v.push_str(s);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cdata_text_entities_and_nested_fields() {
        let f = parse(
            "<?xml version=\"1.0\"?>\n<xml><ToUserName><![CDATA[ww1]]></ToUserName>\n\
             <CreateTime>1409659813</CreateTime><Content>a &amp; b &#x4f60;</Content>\
             <ExtraInfo><A>1</A><B>2</B></ExtraInfo><Empty/></xml>",
        )
        .unwrap();
        assert_eq!(f.get("ToUserName"), Some("ww1"));
        assert_eq!(f.get("CreateTime"), Some("1409659813"));
        assert_eq!(f.get("Content"), Some("a & b 你"));
        assert_eq!(f.get("ExtraInfo"), Some("12"));
        assert_eq!(f.get("Empty"), Some(""));
        assert_eq!(f.non_empty("Empty"), None);
        assert_eq!(f.get("Missing"), None);
    }

    #[test]
    fn rejects_dtds_unknown_entities_and_garbage() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
                    <!ENTITY lol2 \"&lol;&lol;\">]><xml><A>&lol2;</A></xml>";
        assert_eq!(parse(bomb), Err(XmlError::Doctype));
        assert!(matches!(
            parse("<xml><A>&ext;</A></xml>"),
            Err(XmlError::Entity(_))
        ));
        assert!(matches!(
            parse("<xml><A>1</B></xml>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse("<xml><A>1</A>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(parse("just text"), Err(XmlError::Malformed(_))));
        assert_eq!(parse(""), Err(XmlError::Empty));
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert_eq!(parse(&deep), Err(XmlError::TooComplex));
        let wide = format!("<xml>{}</xml>", "<a>1</a>".repeat(MAX_FIELDS + 1));
        assert_eq!(parse(&wide), Err(XmlError::TooComplex));
    }
}
