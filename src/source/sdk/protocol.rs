//! The line protocol between the parent ([`super::SdkSource`]) and the worker
//! ([`super::worker`]): one JSON [`Request`] per line on the worker's stdin, one JSON
//! [`Response`] per line on its stdout. JSON text keeps a crashed or confused worker easy to
//! diagnose; media bytes ride as base64.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// A request from the parent to the worker (one JSON object per line).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `NewSdk` + `Init`.
    Init {
        /// The corp.
        corp_id: String,
        /// The archive secret.
        secret: String,
    },
    /// `GetChatData`.
    GetChatData {
        /// Records after this seq.
        seq: u64,
        /// At most this many.
        limit: u32,
        /// Proxy URL or "".
        proxy: String,
        /// Proxy credentials or "".
        passwd: String,
        /// Seconds.
        timeout: i32,
    },
    /// `GetMediaData`: one chunk.
    GetMediaData {
        /// The media id.
        sdkfileid: String,
        /// `""` for the first chunk, then the previous `outindexbuf`.
        indexbuf: String,
        /// Proxy URL or "".
        proxy: String,
        /// Proxy credentials or "".
        passwd: String,
        /// Seconds.
        timeout: i32,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Init { corp_id, .. } => {
                write!(f, "Init {{ corp_id: {corp_id:?}, secret: *** }}")
            }
            Request::GetChatData { seq, limit, .. } => {
                write!(f, "GetChatData {{ seq: {seq}, limit: {limit} }}")
            }
            Request::GetMediaData {
                sdkfileid,
                indexbuf,
                ..
            } => write!(
                f,
                "GetMediaData {{ sdkfileid: {sdkfileid:?}, indexbuf: {indexbuf:?} }}"
            ),
        }
    }
}

/// The worker's answer to one request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    /// Success; `data` is the response JSON for `get_chat_data`, empty for `init`.
    Ok {
        /// The response body.
        data: String,
    },
    /// A `GetMediaData` chunk.
    Media {
        /// The chunk, base64 (the protocol is JSON text).
        data: String,
        /// The `indexbuf` of the next call.
        outindexbuf: String,
        /// The last chunk.
        is_finish: bool,
    },
    /// The SDK returned a non-zero code.
    Code {
        /// The code.
        code: i32,
    },
    /// The worker cannot serve (library missing, protocol error).
    Fatal {
        /// Why.
        message: String,
    },
}

/// Writes `message` as one line and flushes it, so the other side never waits on a buffer.
pub fn write_line(mut out: impl Write, message: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut out, message)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_hide_secrets_when_logged() {
        let req = Request::Init {
            corp_id: "ww1".into(),
            secret: "s3cr3t-value".into(),
        };
        assert!(!format!("{req:?}").contains("s3cr3t"));
        let req = Request::GetChatData {
            seq: 1,
            limit: 10,
            proxy: String::new(),
            passwd: "pr0xy-pass".into(),
            timeout: 3,
        };
        assert!(!format!("{req:?}").contains("pr0xy"));
    }

    #[test]
    fn one_message_per_line() {
        let mut out = Vec::new();
        write_line(&mut out, &Response::Code { code: 10001 }).unwrap();
        assert_eq!(out, b"{\"status\":\"code\",\"code\":10001}\n");
        let back: Response = serde_json::from_slice(&out).unwrap();
        assert!(matches!(back, Response::Code { code: 10001 }));
    }
}
