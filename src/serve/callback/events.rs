//! The decrypted callback events `serve` acts on (spec auth-callback §3), and their dedupe keys.
//!
//! | event | where | what `serve` does |
//! |---|---|---|
//! | `suite_ticket` | command URL | store it (newest `TimeStamp` wins); used for `suite_access_token` |
//! | `create_auth` | command URL | exchange the `AuthCode` for the permanent code, store the corp |
//! | `change_auth` | command URL | re-read the authorization (`get_auth_info`) |
//! | `cancel_auth` | command URL | disable the corp's pulls, forget its permanent code |
//! | `reset_permanent_code` | command URL | exchange the `AuthCode` for the new permanent code |
//! | `msgaudit_notify` | app / data URL | schedule a pull of the corp (coalesced) |
//!
//! Anything else that decrypts and parses is acknowledged and ignored (see [`Event::Other`]).

use crate::secret::Secret;
use crate::serve::callback::xml::Fields;

/// A callback event, parsed from the decrypted XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A pushed `suite_ticket` (every ~10 minutes, valid 30).
    SuiteTicket {
        /// `SuiteId`.
        suite_id: String,
        /// `SuiteTicket`.
        ticket: Secret,
        /// `TimeStamp` of the push.
        timestamp: i64,
    },
    /// A corp installed the suite.
    CreateAuth {
        /// `SuiteId`.
        suite_id: String,
        /// `AuthCode`, single use, valid 10 minutes.
        auth_code: Secret,
        /// `State` from the install link, if any.
        state: Option<String>,
    },
    /// A corp changed its authorization.
    ChangeAuth {
        /// `SuiteId`.
        suite_id: String,
        /// `AuthCorpId`.
        auth_corpid: String,
    },
    /// A corp removed the suite.
    CancelAuth {
        /// `SuiteId`.
        suite_id: String,
        /// `AuthCorpId`.
        auth_corpid: String,
    },
    /// A 代开发 app's secret was reset; the body has no `AuthCorpId` (spec §3.4).
    ResetPermanentCode {
        /// `SuiteId`.
        suite_id: String,
        /// `AuthCode` to exchange for the new permanent code.
        auth_code: Secret,
    },
    /// New archived messages for a corp (at most every 15 s).
    MsgauditNotify {
        /// The corp (the authenticated receiveid).
        corp_id: String,
    },
    /// Authentic but not acted on (messages, other events); acknowledged so WeCom does not retry.
    Other {
        /// `InfoType`, `event:<Event>` or `msg:<MsgType>`.
        kind: String,
    },
}

/// A required field is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: field {field} is missing or invalid")]
pub struct EventError {
    /// The event type.
    pub kind: String,
    /// The field.
    pub field: &'static str,
}

impl Event {
    /// Parses the decrypted XML of a callback whose authenticated receiveid is `receiveid`.
    pub fn parse(fields: &Fields, receiveid: &str) -> Result<Event, EventError> {
        if let Some(info) = fields.non_empty("InfoType") {
            return Self::command(fields, info);
        }
        match fields.non_empty("MsgType") {
            Some("event") => {
                let event = fields.non_empty("Event").ok_or_else(|| EventError {
                    kind: "event".into(),
                    field: "Event",
                })?;
                if event == "msgaudit_notify" {
                    Ok(Event::MsgauditNotify {
                        corp_id: receiveid.to_owned(),
                    })
                } else {
                    Ok(Event::Other {
                        kind: format!("event:{}", clip(event)),
                    })
                }
            }
            Some(t) => Ok(Event::Other {
                kind: format!("msg:{}", clip(t)),
            }),
            None => Err(EventError {
                kind: "callback".into(),
                field: "InfoType or MsgType",
            }),
        }
    }

    fn command(fields: &Fields, info: &str) -> Result<Event, EventError> {
        let need = |field: &'static str| {
            fields
                .non_empty(field)
                .map(str::to_owned)
                .ok_or_else(|| EventError {
                    kind: clip(info),
                    field,
                })
        };
        Ok(match info {
            "suite_ticket" => Event::SuiteTicket {
                suite_id: need("SuiteId")?,
                ticket: Secret::new(need("SuiteTicket")?),
                timestamp: need("TimeStamp")?.parse().map_err(|_| EventError {
                    kind: info.into(),
                    field: "TimeStamp",
                })?,
            },
            "create_auth" => Event::CreateAuth {
                suite_id: need("SuiteId")?,
                auth_code: Secret::new(need("AuthCode")?),
                state: fields.non_empty("State").map(str::to_owned),
            },
            "change_auth" => Event::ChangeAuth {
                suite_id: need("SuiteId")?,
                auth_corpid: need("AuthCorpId")?,
            },
            "cancel_auth" => Event::CancelAuth {
                suite_id: need("SuiteId")?,
                auth_corpid: need("AuthCorpId")?,
            },
            "reset_permanent_code" => Event::ResetPermanentCode {
                suite_id: need("SuiteId")?,
                auth_code: Secret::new(need("AuthCode")?),
            },
            other => Event::Other { kind: clip(other) },
        })
    }

    /// The suite a command event names (`SuiteId`), checked against the configured one.
    pub fn suite_id(&self) -> Option<&str> {
        match self {
            Event::SuiteTicket { suite_id, .. }
            | Event::CreateAuth { suite_id, .. }
            | Event::ChangeAuth { suite_id, .. }
            | Event::CancelAuth { suite_id, .. }
            | Event::ResetPermanentCode { suite_id, .. } => Some(suite_id),
            Event::MsgauditNotify { .. } | Event::Other { .. } => None,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &str {
        match self {
            Event::SuiteTicket { .. } => "suite_ticket",
            Event::CreateAuth { .. } => "create_auth",
            Event::ChangeAuth { .. } => "change_auth",
            Event::CancelAuth { .. } => "cancel_auth",
            Event::ResetPermanentCode { .. } => "reset_permanent_code",
            Event::MsgauditNotify { .. } => "msgaudit_notify",
            Event::Other { kind } => kind,
        }
    }
}

/// Event names come from the network: keep what is logged short.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The dedupe key of a delivery (spec §2.6): WeCom's retries carry a new Encrypt, timestamp and
/// nonce but the same plaintext. Messages with a `MsgId` are keyed on it; everything else on a
/// hash of the whole decrypted plaintext, which is exact (distinct events in the same second
/// stay distinct, unlike `FromUserName + CreateTime`, WxJava PR#2880).
pub fn dedupe_key(receiveid: &str, fields: &Fields, plaintext: &[u8]) -> String {
    if let Some(msgid) = fields.non_empty("MsgId") {
        return format!("msg|{receiveid}|{}", clip(msgid));
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, plaintext);
    let hex: String = d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha|{receiveid}|{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::callback::xml::parse;

    fn ev(xml: &str) -> Result<Event, EventError> {
        Event::parse(&parse(xml).unwrap(), "wwcorp")
    }

    #[test]
    fn parses_the_documented_events() {
        assert_eq!(
            ev("<xml><SuiteId><![CDATA[ws]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>\
                <TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[tk]]></SuiteTicket></xml>")
            .unwrap(),
            Event::SuiteTicket {
                suite_id: "ws".into(),
                ticket: Secret::new("tk"),
                timestamp: 1403610513
            }
        );
        assert_eq!(
            ev(
                "<xml><SuiteId>ws</SuiteId><AuthCode>AC</AuthCode><InfoType>create_auth</InfoType>\
                <TimeStamp>1</TimeStamp><State>123</State><ExtraInfo></ExtraInfo></xml>"
            )
            .unwrap(),
            Event::CreateAuth {
                suite_id: "ws".into(),
                auth_code: Secret::new("AC"),
                state: Some("123".into())
            }
        );
        assert_eq!(
            ev("<xml><SuiteId>ws</SuiteId><InfoType>cancel_auth</InfoType><TimeStamp>1</TimeStamp>\
                <AuthCorpId>wwc</AuthCorpId></xml>")
            .unwrap(),
            Event::CancelAuth {
                suite_id: "ws".into(),
                auth_corpid: "wwc".into()
            }
        );
        assert_eq!(
            ev("<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
                <CreateTime>1629101687</CreateTime><MsgType><![CDATA[event]]></MsgType>\
                <AgentID>2000004</AgentID><Event><![CDATA[msgaudit_notify]]></Event></xml>")
            .unwrap(),
            Event::MsgauditNotify {
                corp_id: "wwcorp".into()
            }
        );
        assert_eq!(
            ev("<xml><MsgType>text</MsgType><Content>hi</Content></xml>").unwrap(),
            Event::Other {
                kind: "msg:text".into()
            }
        );
        assert_eq!(
            ev("<xml><InfoType>change_contact</InfoType></xml>")
                .unwrap()
                .kind(),
            "change_contact"
        );
    }

    #[test]
    fn missing_fields_are_errors() {
        let e =
            ev("<xml><InfoType>suite_ticket</InfoType><SuiteId>ws</SuiteId></xml>").unwrap_err();
        assert_eq!(e.field, "SuiteTicket");
        let e = ev(
            "<xml><InfoType>suite_ticket</InfoType><SuiteId>ws</SuiteId>\
                    <SuiteTicket>t</SuiteTicket><TimeStamp>soon</TimeStamp></xml>",
        )
        .unwrap_err();
        assert_eq!(e.field, "TimeStamp");
        assert!(ev("<xml><Foo>1</Foo></xml>").is_err());
        // The Debug of an event never shows the ticket or the auth code.
        let t = ev("<xml><SuiteId>ws</SuiteId><AuthCode>secret-code</AuthCode>\
                    <InfoType>create_auth</InfoType></xml>")
        .unwrap();
        assert!(!format!("{t:?}").contains("secret-code"));
    }

    #[test]
    fn dedupe_keys_follow_the_plaintext() {
        let a = parse("<xml><MsgType>event</MsgType><Event>x</Event></xml>").unwrap();
        let k1 = dedupe_key("ww", &a, b"one");
        assert_eq!(k1, dedupe_key("ww", &a, b"one"));
        assert_ne!(k1, dedupe_key("ww", &a, b"two"));
        assert_ne!(k1, dedupe_key("wx", &a, b"one"));
        let m = parse("<xml><MsgId>42</MsgId></xml>").unwrap();
        assert_eq!(dedupe_key("ww", &m, b"anything"), "msg|ww|42");
    }
}
