//! The official `libWeWorkFinanceSdk_C.so` as a [`Source`] and a [`MediaSource`], run in a child
//! process.
//!
//! The native SDK is closed source and has crashed under its callers before; a segfault in our
//! process would cost the whole run. So the library is only ever loaded by
//! `wecom-archive sdk-worker` ([`worker`]), a child that speaks JSON lines on stdin/stdout
//! ([`protocol`]): `init` once, then `get_chat_data` per page or `get_media_data` per chunk. If
//! the child dies, the parent starts a new one and retries the page: a crash costs one retry,
//! not the run. The secret reaches the child on its stdin, never on its command line or
//! environment.
//!
//! ```text
//!   parent: SdkSource (this module)             child: wecom-archive sdk-worker
//!   retries, backoff, error messages            worker.rs  --->  ffi.rs (all `unsafe`)
//!        |   Request (JSON line, stdin)   --->     |                  |
//!        |   <--- Response (JSON line, stdout)     |          libWeWorkFinanceSdk_C.so
//! ```
//!
//! Error handling follows the SDK's return codes ([`codes`], `archive.md` §2.4): 10001–10003 are
//! retried with jittered exponential backoff; 10000, 10004, 10009, 10010, 10011 are
//! configuration errors that stop with a message saying what to fix. A return code of 0 is not
//! enough: the JSON envelope carries its own `errcode` (48002 wrong secret, 301042 IP not
//! whitelisted, …), and a body that is not a response at all (cut short, not JSON) is retried
//! like a network error, then fails the run — it is never handed on as a page.

pub mod codes;
mod ffi;
pub mod protocol;
pub mod worker;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::file::json_kind;
use super::media::{ChunkError, MediaChunk, MediaSource};
use super::{Item, Page, Rejected, Source, SourceError, MAX_PAGE};
use crate::config::Secret;
use crate::error::{RecordError, RecordErrorKind};
use crate::model::record::{identify, EncryptedRecord};
use protocol::{write_line, Request, Response};

/// Why the SDK source could not deliver a page.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// `GetChatData` (or `Init`) returned an SDK error code.
    #[error("corp {corp_id}: SDK {call} failed with {}", codes::describe(*code))]
    Code {
        /// The corp.
        corp_id: String,
        /// `Init` or `GetChatData`.
        call: &'static str,
        /// The SDK's return code.
        code: i32,
    },
    /// The call succeeded but the JSON envelope carries a WeCom `errcode`.
    #[error("corp {corp_id}: GetChatData answered errcode {errcode}: {errmsg}{}", codes::errcode_hint(*errcode))]
    Api {
        /// The corp.
        corp_id: String,
        /// WeCom's error code.
        errcode: i64,
        /// WeCom's message.
        errmsg: String,
    },
    /// `GetChatData` returned 0 but its body is not a `GetChatData` response (cut short, not
    /// JSON, no `chatdata` array): retried like a network error, then the run fails.
    #[error(
        "corp {corp_id}: GetChatData after seq {after} answered a body that is not a GetChatData \
         response ({len} bytes, starting {start:?}): {detail}"
    )]
    Body {
        /// The corp.
        corp_id: String,
        /// The cursor asked for.
        after: u64,
        /// The body's length.
        len: usize,
        /// Its first characters, to recognise an HTML error page or a proxy's answer.
        start: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The library could not be loaded or lacks a symbol.
    #[error("cannot load the WeCom SDK {path}: {detail}")]
    Library {
        /// The library path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The worker process failed (could not start, or died more often than the retries allow).
    #[error("corp {corp_id}: SDK worker process failed: {detail}")]
    Worker {
        /// The corp.
        corp_id: String,
        /// What happened.
        detail: String,
    },
}

impl SdkError {
    /// True for failures worth retrying: network, parse and system errors of the SDK, a busy
    /// WeCom, and a crashed worker.
    pub fn is_retryable(&self) -> bool {
        match self {
            SdkError::Code { code, .. } => codes::is_retryable(*code),
            SdkError::Worker { .. } | SdkError::Body { .. } => true,
            SdkError::Api { errcode, .. } => codes::is_retryable_errcode(*errcode),
            SdkError::Library { .. } => false,
        }
    }
}

/// How to reach one corp's archive through the SDK.
#[derive(Debug, Clone)]
pub struct SdkConfig {
    /// Path of `libWeWorkFinanceSdk_C.so`.
    pub library: PathBuf,
    /// The program that runs the worker (`wecom-archive`, invoked as `sdk-worker`).
    pub worker_exe: PathBuf,
    /// The corp.
    pub corp_id: String,
    /// The archive (会话内容存档) secret.
    pub secret: Secret,
    /// `socks5://…` or `http://…`, or empty.
    pub proxy: String,
    /// Proxy credentials `user:password`, or empty.
    pub proxy_password: Secret,
    /// Per-call timeout, seconds.
    pub timeout_secs: i32,
    /// Attempts per page for retryable errors (network, parse, system, worker crash).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with jitter, up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

impl SdkConfig {
    /// Defaults for everything but the library, corp and secret.
    pub fn new(library: PathBuf, corp_id: String, secret: Secret) -> Self {
        SdkConfig {
            library,
            worker_exe: std::env::current_exe().unwrap_or_else(|_| "wecom-archive".into()),
            corp_id,
            secret,
            proxy: String::new(),
            proxy_password: Secret::default(),
            timeout_secs: 30,
            max_attempts: 6,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// A running worker process and the pipes of its protocol.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn call(&mut self, req: &Request) -> std::io::Result<Response> {
        write_line(&mut self.stdin, req)?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("worker exited ({status})"),
            ));
        }
        serde_json::from_str(&line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GetChatData` through the official SDK in a child process.
pub struct SdkSource {
    config: SdkConfig,
    worker: Option<Worker>,
    /// Retries made so far (for metrics and tests).
    pub retries: u64,
    sleep: Box<dyn FnMut(Duration) + Send>,
}

impl SdkSource {
    /// A source for `config`; the worker starts at the first fetch.
    pub fn new(config: SdkConfig) -> Self {
        SdkSource {
            config,
            worker: None,
            retries: 0,
            sleep: Box::new(std::thread::sleep),
        }
    }

    /// Replaces the backoff sleep (tests).
    pub fn with_sleep(mut self, sleep: impl FnMut(Duration) + Send + 'static) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    fn worker_error(&self, detail: impl std::fmt::Display) -> SdkError {
        SdkError::Worker {
            corp_id: self.config.corp_id.clone(),
            detail: detail.to_string(),
        }
    }

    fn start_worker(&mut self) -> Result<&mut Worker, SdkError> {
        if self.worker.is_none() {
            let mut child = Command::new(&self.config.worker_exe)
                .arg("sdk-worker")
                .arg("--library")
                .arg(&self.config.library)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| {
                    self.worker_error(format!(
                        "cannot start {}: {e}",
                        self.config.worker_exe.display()
                    ))
                })?;
            let mut worker = Worker {
                stdin: child.stdin.take().expect("piped"),
                stdout: BufReader::new(child.stdout.take().expect("piped")),
                child,
            };
            let init = Request::Init {
                corp_id: self.config.corp_id.clone(),
                secret: self.config.secret.expose().to_owned(),
            };
            match worker.call(&init).map_err(|e| self.worker_error(e))? {
                Response::Ok { .. } | Response::Media { .. } => {}
                Response::Code { code } => {
                    return Err(SdkError::Code {
                        corp_id: self.config.corp_id.clone(),
                        call: "Init",
                        code,
                    })
                }
                Response::Fatal { message } => {
                    return Err(SdkError::Library {
                        path: self.config.library.clone(),
                        detail: message,
                    })
                }
            }
            self.worker = Some(worker);
        }
        Ok(self.worker.as_mut().expect("started above"))
    }

    fn fetch_once(&mut self, after: u64, limit: u32) -> Result<Page, SdkError> {
        let req = Request::GetChatData {
            seq: after,
            limit,
            proxy: self.config.proxy.clone(),
            passwd: self.config.proxy_password.expose().to_owned(),
            timeout: self.config.timeout_secs,
        };
        let worker = self.start_worker()?;
        let resp = worker.call(&req);
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                // A dead worker (segfault in the SDK) is replaced at the next attempt.
                self.worker = None;
                return Err(self.worker_error(e));
            }
        };
        match resp {
            Response::Ok { data } => self.parse_page(after, &data),
            Response::Media { .. } => {
                Err(self.worker_error("answered a media chunk to GetChatData"))
            }
            Response::Code { code } => Err(SdkError::Code {
                corp_id: self.config.corp_id.clone(),
                call: "GetChatData",
                code,
            }),
            Response::Fatal { message } => {
                self.worker = None;
                Err(SdkError::Library {
                    path: self.config.library.clone(),
                    detail: message,
                })
            }
        }
    }

    /// The records of a `GetChatData` body. The body must be one JSON object with a `chatdata`
    /// array (or an `errcode`); anything else is an error worth a retry, never a page: a page
    /// made of the unreadable body would not move the cursor, and the next call would bring the
    /// same body back. Entries of the array that are not records ride in the page for the dead
    /// letters.
    fn parse_page(&self, after: u64, body: &str) -> Result<Page, SdkError> {
        let bad_body = |detail: String| SdkError::Body {
            corp_id: self.config.corp_id.clone(),
            after,
            len: body.len(),
            start: body.chars().take(60).collect(),
            detail,
        };
        let mut page = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(page)) => page,
            Ok(other) => return Err(bad_body(format!("a JSON {}", json_kind(&other)))),
            Err(e) => return Err(bad_body(format!("invalid JSON: {e}"))),
        };
        let errcode = page.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if errcode != 0 {
            return Err(SdkError::Api {
                corp_id: self.config.corp_id.clone(),
                errcode,
                errmsg: page
                    .get("errmsg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        let items = match page.remove("chatdata") {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(bad_body(format!(
                    "\"chatdata\" is {}, not an array",
                    json_kind(&other)
                )))
            }
            None => return Err(bad_body("no \"chatdata\" array".into())),
        };
        Ok(Page {
            items: items.into_iter().map(record).collect(),
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.base_backoff.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempt.min(16));
        let capped = exp.min(self.config.max_backoff.as_millis() as u64);
        // Full jitter: many corps retrying at once do not hit WeCom in lockstep.
        Duration::from_millis(rand::Rng::gen_range(
            &mut rand::thread_rng(),
            capped / 2..=capped,
        ))
    }
}

/// One `chatdata` entry: a record, or the entry as a dead letter naming what it could.
fn record(v: Value) -> Item {
    use serde::Deserialize;
    EncryptedRecord::deserialize(&v).map_err(|e| {
        let (seq, msgid) = identify(&v);
        Rejected {
            error: RecordError {
                seq,
                msgid,
                line: None,
                kind: RecordErrorKind::Malformed(e.to_string()),
            },
            raw: v.to_string().into(),
        }
    })
}

impl SdkSource {
    /// One `GetMediaData` call through the worker (no retries: the media download loop
    /// retries, for every media source alike). A dead worker is replaced at the next call.
    pub fn get_media_data_once(
        &mut self,
        sdkfileid: &str,
        indexbuf: &str,
    ) -> Result<MediaChunk, SdkError> {
        let req = Request::GetMediaData {
            sdkfileid: sdkfileid.to_owned(),
            indexbuf: indexbuf.to_owned(),
            proxy: self.config.proxy.clone(),
            passwd: self.config.proxy_password.expose().to_owned(),
            timeout: self.config.timeout_secs,
        };
        let worker = self.start_worker()?;
        let resp = match worker.call(&req) {
            Ok(r) => r,
            Err(e) => {
                self.worker = None;
                return Err(self.worker_error(e));
            }
        };
        match resp {
            Response::Media {
                data,
                outindexbuf,
                is_finish,
            } => {
                let data = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data)
                    .map_err(|e| self.worker_error(format!("bad media chunk: {e}")))?;
                Ok(MediaChunk {
                    data,
                    next_index: outindexbuf,
                    is_finish,
                })
            }
            Response::Code { code } => Err(SdkError::Code {
                corp_id: self.config.corp_id.clone(),
                call: "GetMediaData",
                code,
            }),
            Response::Ok { .. } => Err(self.worker_error("answered a page to GetMediaData")),
            Response::Fatal { message } => {
                self.worker = None;
                Err(SdkError::Library {
                    path: self.config.library.clone(),
                    detail: message,
                })
            }
        }
    }
}

impl MediaSource for SdkSource {
    fn describe(&self) -> String {
        Source::describe(self)
    }

    fn chunk(&mut self, sdkfileid: &str, indexbuf: &str) -> Result<MediaChunk, ChunkError> {
        self.get_media_data_once(sdkfileid, indexbuf)
            .map_err(|e| match e {
                // Init failing is about the corp's configuration, not this file.
                SdkError::Code { call: "Init", .. } => ChunkError::Fatal(e.to_string()),
                SdkError::Code { code, .. } => ChunkError::Sdk { code },
                SdkError::Worker { .. } | SdkError::Body { .. } => {
                    ChunkError::Transient(e.to_string())
                }
                SdkError::Api { .. } | SdkError::Library { .. } => ChunkError::Fatal(e.to_string()),
            })
    }
}

impl Source for SdkSource {
    fn describe(&self) -> String {
        format!(
            "WeCom SDK {} for corp {}",
            self.config.library.display(),
            self.config.corp_id
        )
    }

    fn fetch(&mut self, after: u64, limit: u32) -> Result<Page, SourceError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut attempt = 0;
        loop {
            match self.fetch_once(after, limit) {
                Ok(page) => return Ok(page),
                Err(e) if e.is_retryable() && attempt + 1 < self.config.max_attempts => {
                    let wait = self.backoff(attempt);
                    tracing::warn!(error = %e, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "retrying");
                    (self.sleep)(wait);
                    self.retries += 1;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SdkSource {
        SdkSource::new(SdkConfig::new(
            "/nonexistent/libWeWorkFinanceSdk_C.so".into(),
            "ww1".into(),
            Secret::new("s3cr3t-value"),
        ))
    }

    #[test]
    fn envelope_errcode_is_an_error_even_with_return_code_0() {
        let e = source()
            .parse_page(
                0,
                r#"{"errcode":48002,"errmsg":"api forbidden","chatdata":[]}"#,
            )
            .unwrap_err();
        assert!(matches!(e, SdkError::Api { errcode: 48002, .. }));
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("ww1") && e.to_string().contains("Secret"),
            "{e}"
        );
        let e = source()
            .parse_page(
                0,
                r#"{"errcode":301042,"errmsg":"ip not allow","chatdata":[]}"#,
            )
            .unwrap_err();
        assert!(e.to_string().contains("trusted IPs"), "{e}");
    }

    #[test]
    fn a_page_keeps_bad_entries_for_the_dead_letters() {
        let page = source()
            .parse_page(
                4,
                r#"{"errcode":0,"errmsg":"ok","chatdata":[
                {"seq":5,"msgid":"a","publickey_ver":1,"encrypt_random_key":"k","encrypt_chat_msg":"m"},
                {"seq":6,"msgid":"b"}]}"#,
            )
            .unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(page.items[0].is_ok());
        assert_eq!(page.items[1].as_ref().unwrap_err().error.seq, Some(6));
        assert_eq!(page.next_cursor(0), 6);
    }

    #[test]
    fn a_body_that_is_not_a_page_is_a_retryable_error_not_a_page() {
        let cases = [
            (
                r#"{"errcode":0,"errmsg":"ok","chatdata":[{"seq":5,"msgid":"a","#,
                "invalid JSON",
            ),
            ("<html>502 Bad Gateway</html>", "invalid JSON"),
            ("", "invalid JSON"),
            ("[]", "a JSON an array"),
            (r#"{"errcode":0,"errmsg":"ok"}"#, "no \"chatdata\" array"),
            (r#"{"chatdata":{"seq":1}}"#, "is an object, not an array"),
        ];
        for (body, want) in cases {
            let e = source().parse_page(1200, body).unwrap_err();
            assert!(
                matches!(e, SdkError::Body { after: 1200, .. }),
                "{body}: {e:?}"
            );
            assert!(e.is_retryable(), "{body}");
            let text = e.to_string();
            assert!(
                text.starts_with("corp ww1: GetChatData after seq 1200 answered a body")
                    && text.contains(want),
                "{body}: {text}"
            );
        }
        // An error envelope without chatdata is still WeCom's error, not a bad body.
        let e = source()
            .parse_page(0, r#"{"errcode":301042,"errmsg":"ip not allow"}"#)
            .unwrap_err();
        assert!(
            matches!(
                e,
                SdkError::Api {
                    errcode: 301042,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn errors_say_what_to_fix() {
        let e = SdkError::Code {
            corp_id: "ww1".into(),
            call: "GetChatData",
            code: 10009,
        };
        assert!(e.to_string().contains("trusted IPs"), "{e}");
        let e = SdkError::Api {
            corp_id: "ww1".into(),
            errcode: 48002,
            errmsg: "api forbidden".into(),
        };
        assert!(e.to_string().contains("会话内容存档 Secret"), "{e}");
        let e = SdkError::Code {
            corp_id: "ww1".into(),
            call: "GetChatData",
            code: 10001,
        };
        assert_eq!(
            e.to_string(),
            "corp ww1: SDK GetChatData failed with 10001 (network error): retried with backoff; \
             check the network and the proxy setting"
        );
        assert!(e.is_retryable());
    }
}
