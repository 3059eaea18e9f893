//! Typed model of one decrypted chat message (archive spec §3).
//!
//! The decrypted plaintext of a `chatdata` record is a JSON object: a common envelope (`msgid`, `action`, `from`,
//! `tolist`, `roomid`, `msgtime`, `msgtype`) plus one payload object whose key is *usually* the `msgtype`
//! (see [`Payload`] for the exceptions). [`parse`] turns the plaintext into a [`ChatMessage`].
//!
//! Design choices, all driven by "never lose a message":
//!
//! * **Lenient fields.** Every payload field accepts the documented type *and* the cheap alternatives seen in the
//!   wild (a number sent as a numeric string, an id sent as a number, `null`). A field that still does not fit
//!   becomes `None` instead of failing the record.
//! * **Unknown types are kept.** A `msgtype` this crate does not know yields [`Payload::Unknown`] with the raw
//!   payload JSON; the caller keeps the full plaintext anyway.
//! * **Shape surprises degrade, they do not fail.** If a known type still cannot be typed (e.g. a duplicated key,
//!   which serde rejects for structs), the record is re-read untyped and becomes [`Payload::Unknown`].
//! * **Only undecryptable input is an error**: not UTF-8, not JSON, not an object, or no `msgid`. There is no
//!   MAC on archive messages, so a wrong key produces garbage; these errors are how the pipeline notices.
//!
//! One concern per file: `types` (the envelope and payload structs), `msgtype` (the msgtype table, which generates
//! [`Payload`]; adding a msgtype is a row there plus its struct), `parser` (the streaming parse), `lenient` (the
//! field deserializers), `escape` (the control-character pre-pass) and `media` (media references).

mod escape;
mod lenient;
mod media;
mod msgtype;
mod parser;
mod types;

pub use escape::escape_control_chars;
pub use media::{MediaKind, MediaRef};
pub use msgtype::{Payload, MSGTYPES};
pub use parser::{parse, ParseError};
pub use types::*;
