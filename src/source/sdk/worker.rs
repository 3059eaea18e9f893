//! The child side: `wecom-archive sdk-worker` hosts the official library and answers the
//! parent's requests ([`super::protocol`]) until its stdin closes.
//!
//! The worker holds at most one initialised session (the last `init`). It never retries and
//! never interprets return codes: it passes them back, and the parent decides
//! ([`super::codes`]). Exit status: 0 when stdin closes, 1 on a broken pipe or a bad request,
//! 2 when the library cannot be loaded.

use std::fs::File;
use std::io::{BufRead, Write};
use std::path::Path;

use super::ffi::{self, SdkLibrary};
use super::protocol::{write_line, Request, Response};

/// Takes the process's stdout for the protocol (the returned file) and points fd 1 at stderr,
/// so that anything the native library prints cannot corrupt the protocol. Call once, before
/// [`worker_main`].
pub fn take_stdout() -> std::io::Result<File> {
    ffi::take_stdout()
}

/// The body of `wecom-archive sdk-worker`: loads the library, then answers requests from `input`
/// on `output` until `input` closes.
pub fn worker_main(library: &Path, input: impl BufRead, mut output: impl Write) -> i32 {
    let mut send = |r: &Response| -> bool { write_line(&mut output, r).is_ok() };
    let lib = match SdkLibrary::load(library) {
        Ok(l) => l,
        Err(e) => {
            send(&Response::Fatal {
                message: e.to_string(),
            });
            return 2;
        }
    };
    let mut session = None;
    for line in input.lines() {
        let Ok(line) = line else { return 1 };
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                send(&Response::Fatal {
                    message: format!("bad request: {e}"),
                });
                return 1;
            }
        };
        let resp = match req {
            Request::Init { corp_id, secret } => {
                let secret = zeroize::Zeroizing::new(secret);
                session = None;
                match lib.session(&corp_id, &secret) {
                    Ok(s) => {
                        session = Some(s);
                        Response::Ok {
                            data: String::new(),
                        }
                    }
                    Err(code) => Response::Code { code },
                }
            }
            Request::GetChatData {
                seq,
                limit,
                proxy,
                passwd,
                timeout,
            } => {
                let passwd = zeroize::Zeroizing::new(passwd);
                match &session {
                    None => Response::Fatal {
                        message: "get_chat_data before init".into(),
                    },
                    Some(s) => match s.get_chat_data(seq, limit, &proxy, &passwd, timeout) {
                        Ok(data) => Response::Ok {
                            data: String::from_utf8_lossy(&data).into_owned(),
                        },
                        Err(code) => Response::Code { code },
                    },
                }
            }
            Request::GetMediaData {
                sdkfileid,
                indexbuf,
                proxy,
                passwd,
                timeout,
            } => {
                let passwd = zeroize::Zeroizing::new(passwd);
                match &session {
                    None => Response::Fatal {
                        message: "get_media_data before init".into(),
                    },
                    Some(s) => {
                        match s.get_media_data(&indexbuf, &sdkfileid, &proxy, &passwd, timeout) {
                            Ok(c) => Response::Media {
                                data: base64::Engine::encode(
                                    &base64::engine::general_purpose::STANDARD,
                                    &c.data,
                                ),
                                outindexbuf: c.outindexbuf,
                                is_finish: c.is_finish,
                            },
                            Err(code) => Response::Code { code },
                        }
                    }
                }
            }
        };
        if !send(&resp) {
            return 1;
        }
    }
    0
}
