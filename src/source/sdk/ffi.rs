//! Every `unsafe` line of the SDK source: `libWeWorkFinanceSdk_C.so` loaded with libloading, its
//! C API (`WeWorkFinanceSdk_C.h`) behind safe wrappers, and the worker's stdout hand-over.
//!
//! Only the worker process ([`super::worker`]) uses this module: a fault in the native library
//! costs that child, never the parent. Buffers the SDK allocates are copied out by their
//! lengths and freed with the SDK's own functions on every path; secrets are passed in copies
//! that are wiped when dropped.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CString};
use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::Path;

use super::codes::{PARAMETER_ERROR, SYSTEM_ERROR};
use super::SdkError;

/// `Slice_t` of `WeWorkFinanceSdk_C.h`.
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
        let corp = CString::new(corp_id).map_err(|_| PARAMETER_ERROR)?;
        let secret = c_secret(secret)?;
        // SAFETY: NewSdk returns an owned handle, destroyed in SdkSession's Drop; Init reads
        // two NUL-terminated strings.
        unsafe {
            let sdk = (self.new_sdk)();
            if sdk.is_null() {
                return Err(SYSTEM_ERROR);
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
        return Err(PARAMETER_ERROR);
    }
    let mut v = zeroize::Zeroizing::new(Vec::with_capacity(s.len() + 1));
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    Ok(v)
}

/// Copies `len` bytes at `p` out of an SDK buffer (nothing for a null or empty buffer).
///
/// # Safety
/// A non-null `p` must point at `len` readable bytes.
unsafe fn copy_out(p: *const c_char, len: c_int) -> Vec<u8> {
    if p.is_null() || len <= 0 {
        Vec::new()
    } else {
        // SAFETY: the caller vouches for `len` readable bytes at `p`.
        unsafe { std::slice::from_raw_parts(p as *const u8, len as usize).to_vec() }
    }
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
        let proxy = CString::new(proxy).map_err(|_| PARAMETER_ERROR)?;
        let passwd = c_secret(passwd)?;
        // SAFETY: a fresh slice per call, freed with the SDK's own FreeSlice whatever happens
        // (reusing a slice leaks its old buffer); the buffer is copied out by its length.
        unsafe {
            let slice = (self.lib.new_slice)();
            if slice.is_null() {
                return Err(SYSTEM_ERROR);
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
                Ok(copy_out(s.buf, s.len))
            } else {
                Err(rc)
            };
            (self.lib.free_slice)(slice);
            out
        }
    }

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
        let indexbuf = CString::new(indexbuf).map_err(|_| PARAMETER_ERROR)?;
        let sdkfileid = CString::new(sdkfileid).map_err(|_| PARAMETER_ERROR)?;
        let proxy = CString::new(proxy).map_err(|_| PARAMETER_ERROR)?;
        let passwd = c_secret(passwd)?;
        // SAFETY: a fresh MediaData_t per call, freed with the SDK's own FreeMediaData whatever
        // happens (the SDK allocates its buffers; reuse or a missing free leaks them); both
        // buffers are copied out by their lengths, never as C strings.
        unsafe {
            let md = (self.lib.new_media_data)();
            if md.is_null() {
                return Err(SYSTEM_ERROR);
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
            let out = if rc == 0 {
                let m = &*md;
                Ok(RawMediaChunk {
                    data: copy_out(m.data, m.data_len),
                    outindexbuf: String::from_utf8_lossy(&copy_out(m.outindexbuf, m.out_len))
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

/// Takes the process's stdout for the worker protocol and points fd 1 at stderr, so that
/// anything the native library prints cannot corrupt the protocol.
pub fn take_stdout() -> std::io::Result<File> {
    let failed = |call: &str| {
        let e = std::io::Error::last_os_error();
        std::io::Error::new(e.kind(), format!("{call} failed: {e}"))
    };
    // SAFETY: plain fd duplication on fds this process owns; the returned `File` takes sole
    // ownership of the duplicate (and closes it if the redirection fails).
    unsafe {
        let fd = libc::dup(1);
        if fd < 0 {
            return Err(failed("dup(stdout)"));
        }
        let protocol = File::from_raw_fd(fd);
        if libc::dup2(2, 1) < 0 {
            return Err(failed("dup2(stderr, stdout)"));
        }
        Ok(protocol)
    }
}
