//! The official `libWeWorkFinanceSdk_C.so` as a [`Source`], run in a child process.
//!
//! The native SDK is closed source and has crashed under its callers before; a segfault in our
//! process would cost the whole run. So the library is only ever loaded by
//! `wecom-archive sdk-worker` ([`worker_main`]), a child that speaks JSON lines on
//! stdin/stdout: `init` once, then `get_chat_data` per page. If the child dies, the parent starts
//! a new one and retries the page: a crash costs one retry, not the run. The secret reaches the
//! child on its stdin, never on its command line or environment.
//!
//! Error handling follows the SDK's return codes (see `archive.md` §2.4): 10001–10003 are retried
//! with jittered exponential backoff; 10000, 10004, 10009, 10010, 10011 are configuration errors
//! that stop with a message saying what to fix. A return code of 0 is not enough: the JSON
//! envelope carries its own `errcode` (48002 wrong secret, 301042 IP not whitelisted, …).

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::file::DumpReader;
use super::media::{ChunkError, MediaChunk, MediaSource};
use super::{Page, Source, SourceError, MAX_PAGE};
use crate::config::Secret;

/// Why the SDK source could not deliver a page.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// `GetChatData` (or `Init`) returned an SDK error code.
    #[error("corp {corp_id}: SDK {call} failed with {code} ({}){}", code_meaning(*code), code_hint(*code))]
    Code {
        /// The corp.
        corp_id: String,
        /// `Init` or `GetChatData`.
        call: &'static str,
        /// The SDK's return code.
        code: i32,
    },
    /// The call succeeded but the JSON envelope carries a WeCom `errcode`.
    #[error("corp {corp_id}: GetChatData answered errcode {errcode}: {errmsg}{}", errcode_hint(*errcode))]
    Api {
        /// The corp.
        corp_id: String,
        /// WeCom's error code.
        errcode: i64,
        /// WeCom's message.
        errmsg: String,
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
    /// True for failures worth retrying: network, parse and system errors of the SDK, and a
    /// crashed worker.
    pub fn is_retryable(&self) -> bool {
        match self {
            SdkError::Code { code, .. } => is_retryable_code(*code),
            SdkError::Worker { .. } => true,
            SdkError::Api { errcode, .. } => *errcode == -1,
            SdkError::Library { .. } => false,
        }
    }
}

/// SDK return codes 10001–10003 (network, parse, system) may succeed when retried.
pub fn is_retryable_code(code: i32) -> bool {
    (10001..=10003).contains(&code)
}

fn code_meaning(code: i32) -> &'static str {
    match code {
        10000 => "invalid parameters",
        10001 => "network error",
        10002 => "response parse error",
        10003 => "system error",
        10004 => "key error",
        10005 => "bad sdkfileid",
        10006 => "decrypt failed",
        10007 => "no private key for the message's key version",
        10008 => "bad encrypt_key",
        10009 => "caller IP not allowed",
        10010 => "data expired",
        10011 => "certificate error",
        _ => "unknown code",
    }
}

fn code_hint(code: i32) -> &'static str {
    match code {
        10000 => ": check corp_id, the archive secret and the page size (at most 1000)",
        10001..=10003 => ": retried with backoff; check the network and the proxy setting",
        10004 => ": check the archive secret and the key pair registered in the admin console",
        10009 => {
            ": add this machine's egress IP to the archive's trusted IPs (管理工具→会话内容存档)"
        }
        10010 => ": the records are past WeCom's retention window; pull more often",
        10011 => ": the SDK's certificate check failed; check the system clock and any TLS proxy",
        _ => "",
    }
}

fn errcode_hint(errcode: i64) -> &'static str {
    match errcode {
        48002 => {
            " (use the 会话内容存档 Secret, not an app secret, and check the archive is enabled)"
        }
        301042 => " (add this machine's egress IP to the archive's trusted IPs)",
        40001 | 40013 => " (check corp_id and the archive secret)",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The library (loaded in the worker only)
// ---------------------------------------------------------------------------------------------

#[repr(C)]
struct Slice {
    buf: *mut c_char,
    len: c_int,
}

/// `MediaData_t` of `WeWorkFinanceSdk_C.h`.
#[repr(C)]
struct MediaData {
    outindexbuf: *mut c_char,
    out_len: c_int,
    data: *mut c_char,
    data_len: c_int,
    is_finish: c_int,
}

type NewSdkFn = unsafe extern "C" fn() -> *mut c_void;
type InitFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;
type GetChatDataFn = unsafe extern "C" fn(
    *mut c_void,
    c_ulonglong,
    c_uint,
    *const c_char,
    *const c_char,
    c_int,
    *mut Slice,
) -> c_int;
type DestroySdkFn = unsafe extern "C" fn(*mut c_void);
type GetMediaDataFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    *mut MediaData,
) -> c_int;
type NewMediaDataFn = unsafe extern "C" fn() -> *mut MediaData;
type FreeMediaDataFn = unsafe extern "C" fn(*mut MediaData);
type NewSliceFn = unsafe extern "C" fn() -> *mut Slice;
type FreeSliceFn = unsafe extern "C" fn(*mut Slice);

/// The official SDK, loaded with libloading.
pub struct SdkLibrary {
    new_sdk: NewSdkFn,
    init: InitFn,
    get_chat_data: GetChatDataFn,
    destroy_sdk: DestroySdkFn,
    new_slice: NewSliceFn,
    free_slice: FreeSliceFn,
    get_media_data: GetMediaDataFn,
    new_media_data: NewMediaDataFn,
    free_media_data: FreeMediaDataFn,
    // Last, so the symbols above never outlive the mapping.
    _lib: libloading::Library,
}

impl SdkLibrary {
    /// Loads the library at `path`.
    pub fn load(path: &Path) -> Result<Self, SdkError> {
        let err = |detail: String| SdkError::Library {
            path: path.to_owned(),
            detail,
        };
        // SAFETY: loading the official SDK runs its static constructors, which only set up
        // tables; the symbol types below are those of `WeWorkFinanceSdk_C.h`.
        unsafe {
            let lib = libloading::Library::new(path).map_err(|e| err(e.to_string()))?;
            macro_rules! sym {
                ($name:literal) => {
                    *lib.get(concat!($name, "\0").as_bytes())
                        .map_err(|e| err(format!("missing symbol {}: {e}", $name)))?
                };
            }
            Ok(SdkLibrary {
                new_sdk: sym!("NewSdk"),
                init: sym!("Init"),
                get_chat_data: sym!("GetChatData"),
                destroy_sdk: sym!("DestroySdk"),
                new_slice: sym!("NewSlice"),
                free_slice: sym!("FreeSlice"),
                get_media_data: sym!("GetMediaData"),
                new_media_data: sym!("NewMediaData"),
                free_media_data: sym!("FreeMediaData"),
                _lib: lib,
            })
        }
    }

    /// `NewSdk` + `Init`.
    pub fn session(&self, corp_id: &str, secret: &str) -> Result<SdkSession<'_>, i32> {
        let corp = CString::new(corp_id).map_err(|_| 10000)?;
        let secret = c_secret(secret)?;
        // SAFETY: NewSdk returns an owned handle, destroyed in SdkSession's Drop; Init reads
        // two NUL-terminated strings.
        unsafe {
            let sdk = (self.new_sdk)();
            if sdk.is_null() {
                return Err(10003);
            }
            let session = SdkSession { lib: self, sdk };
            match (self.init)(sdk, corp.as_ptr(), secret.as_ptr() as *const c_char) {
                0 => Ok(session),
                rc => Err(rc),
            }
        }
    }
}

/// A NUL-terminated copy of a secret that is wiped when dropped (`CString` cannot be zeroized
/// in place). Interior NULs are a parameter error, as the SDK would see a truncated value.
fn c_secret(s: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, i32> {
    if s.as_bytes().contains(&0) {
        return Err(10000);
    }
    let mut v = zeroize::Zeroizing::new(Vec::with_capacity(s.len() + 1));
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    Ok(v)
}

/// An initialised SDK handle.
pub struct SdkSession<'a> {
    lib: &'a SdkLibrary,
    sdk: *mut c_void,
}

impl SdkSession<'_> {
    /// `GetChatData`: the raw JSON response, or the SDK's return code.
    pub fn get_chat_data(
        &self,
        seq: u64,
        limit: u32,
        proxy: &str,
        passwd: &str,
        timeout_secs: i32,
    ) -> Result<Vec<u8>, i32> {
        let proxy = CString::new(proxy).map_err(|_| 10000)?;
        let passwd = c_secret(passwd)?;
        // SAFETY: a fresh slice per call, freed with the SDK's own FreeSlice whatever happens
        // (reusing a slice leaks its old buffer); the buffer is copied out by its length.
        unsafe {
            let slice = (self.lib.new_slice)();
            if slice.is_null() {
                return Err(10003);
            }
            let rc = (self.lib.get_chat_data)(
                self.sdk,
                seq,
                limit,
                proxy.as_ptr(),
                passwd.as_ptr() as *const c_char,
                timeout_secs,
                slice,
            );
            let out = if rc == 0 {
                let s = &*slice;
                if s.buf.is_null() || s.len <= 0 {
                    Ok(Vec::new())
                } else {
                    Ok(std::slice::from_raw_parts(s.buf as *const u8, s.len as usize).to_vec())
                }
            } else {
                Err(rc)
            };
            (self.lib.free_slice)(slice);
            out
        }
    }
}

/// One chunk of `GetMediaData`, copied out of the SDK's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMediaChunk {
    /// The chunk's bytes.
    pub data: Vec<u8>,
    /// `outindexbuf`: the `indexbuf` of the next call.
    pub outindexbuf: String,
    /// `is_finish`.
    pub is_finish: bool,
}

impl SdkSession<'_> {
    /// `GetMediaData`: the chunk of `sdkfileid` that `indexbuf` asks for, or the SDK's return
    /// code.
    pub fn get_media_data(
        &self,
        indexbuf: &str,
        sdkfileid: &str,
        proxy: &str,
        passwd: &str,
        timeout_secs: i32,
    ) -> Result<RawMediaChunk, i32> {
        let indexbuf = CString::new(indexbuf).map_err(|_| 10000)?;
        let sdkfileid = CString::new(sdkfileid).map_err(|_| 10000)?;
        let proxy = CString::new(proxy).map_err(|_| 10000)?;
        let passwd = c_secret(passwd)?;
        // SAFETY: a fresh MediaData_t per call, freed with the SDK's own FreeMediaData whatever
        // happens (the SDK allocates its buffers; reuse or a missing free leaks them); both
        // buffers are copied out by their lengths, never as C strings.
        unsafe {
            let md = (self.lib.new_media_data)();
            if md.is_null() {
                return Err(10003);
            }
            let rc = (self.lib.get_media_data)(
                self.sdk,
                indexbuf.as_ptr(),
                sdkfileid.as_ptr(),
                proxy.as_ptr(),
                passwd.as_ptr() as *const c_char,
                timeout_secs,
                md,
            );
            let copy = |p: *mut c_char, len: c_int| -> Vec<u8> {
                if p.is_null() || len <= 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(p as *const u8, len as usize).to_vec()
                }
            };
            let out = if rc == 0 {
                let m = &*md;
                Ok(RawMediaChunk {
                    data: copy(m.data, m.data_len),
                    outindexbuf: String::from_utf8_lossy(&copy(m.outindexbuf, m.out_len))
                        .trim_end_matches('\0')
                        .to_owned(),
                    is_finish: m.is_finish != 0,
                })
            } else {
                Err(rc)
            };
            (self.lib.free_media_data)(md);
            out
        }
    }
}

impl Drop for SdkSession<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from NewSdk and is destroyed once.
        unsafe { (self.lib.destroy_sdk)(self.sdk) }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker protocol
// ---------------------------------------------------------------------------------------------

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

/// The body of `wecom-archive sdk-worker`: loads the library, then answers requests from `input`
/// on `output` until `input` closes.
pub fn worker_main(library: &Path, input: impl BufRead, mut output: impl Write) -> i32 {
    let mut send = |r: &Response| -> bool {
        serde_json::to_writer(&mut output, r).is_ok()
            && output.write_all(b"\n").is_ok()
            && output.flush().is_ok()
    };
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

// ---------------------------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------------------------

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

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn call(&mut self, req: &Request) -> std::io::Result<Response> {
        serde_json::to_writer(&mut self.stdin, req)?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
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
            Response::Ok { data } => self.parse_page(&data),
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

    fn parse_page(&self, body: &str) -> Result<Page, SdkError> {
        let mut reader = DumpReader::from_reader(
            Box::new(std::io::Cursor::new(body.as_bytes().to_vec())),
            Path::new("GetChatData"),
        );
        // Reading from memory cannot fail with I/O.
        let items: Vec<_> = reader.by_ref().map_while(Result::ok).collect();
        if let Some((errcode, errmsg)) = reader.page_errors.first().cloned() {
            return Err(SdkError::Api {
                corp_id: self.config.corp_id.clone(),
                errcode,
                errmsg,
            });
        }
        Ok(Page { items })
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
                SdkError::Worker { .. } => ChunkError::Transient(e.to_string()),
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

    #[test]
    fn retry_classes() {
        for code in [10001, 10002, 10003] {
            assert!(is_retryable_code(code));
        }
        for code in [10000, 10004, 10009, 10010, 10011] {
            assert!(!is_retryable_code(code));
        }
    }

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
            .parse_page(r#"{"errcode":48002,"errmsg":"api forbidden","chatdata":[]}"#)
            .unwrap_err();
        assert!(matches!(e, SdkError::Api { errcode: 48002, .. }));
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("ww1") && e.to_string().contains("Secret"),
            "{e}"
        );
        let e = source()
            .parse_page(r#"{"errcode":301042,"errmsg":"ip not allow","chatdata":[]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("trusted IPs"), "{e}");
    }

    #[test]
    fn a_page_keeps_bad_entries_for_the_dead_letters() {
        let page = source()
            .parse_page(
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
    fn errors_say_what_to_fix_and_hide_secrets() {
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
        let req = Request::Init {
            corp_id: "ww1".into(),
            secret: "s3cr3t-value".into(),
        };
        assert!(!format!("{req:?}").contains("s3cr3t"));
    }
}
