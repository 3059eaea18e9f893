//! Where media bytes come from: `GetMediaData`, one chunk per call.
//!
//! [`MediaSource`] is that one call. The SDK implements it in its worker process
//! ([`super::sdk::SdkSource`]); [`SimMediaSource`] serves the simulator's media, with
//! deterministic content whose md5 matches what the simulated messages announce. Retries,
//! resumption and verification live in the `media` module's download loop, once for every
//! source: it depends on this module, never the other way round.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::sdk::codes::{self, PARAMETER_ERROR};

/// `GetMediaData` returns at most this much per call (the SDK's default, `archive.md` §4).
pub const SDK_CHUNK: usize = 512 * 1024;

/// One answer of `GetMediaData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChunk {
    /// The bytes of this chunk, to append to what came before.
    pub data: Vec<u8>,
    /// The `indexbuf` for the next call (SDK v3: `Range:bytes=<start>-<end>` of the next chunk).
    pub next_index: String,
    /// The last chunk of the file.
    pub is_finish: bool,
}

/// Why a chunk could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// `GetMediaData` returned an SDK error code (10001–10003 retryable, 10005 bad sdkfileid);
    /// what it means is in [`super::sdk::codes`].
    #[error("GetMediaData failed with SDK code {}", codes::describe(*code))]
    Sdk {
        /// The code.
        code: i32,
    },
    /// The source failed in a way that may pass (a crashed worker process, a broken pipe).
    #[error("media source failed: {0}")]
    Transient(String),
    /// The source cannot serve at all (library missing, bad configuration).
    #[error("media source unusable: {0}")]
    Fatal(String),
}

impl ChunkError {
    /// Worth retrying after a backoff: network, parse and system errors, a crashed worker.
    pub fn is_retryable(&self) -> bool {
        match self {
            ChunkError::Sdk { code } => codes::is_retryable(*code),
            ChunkError::Transient(_) => true,
            ChunkError::Fatal(_) => false,
        }
    }

    /// Never worth retrying for this file, in this run or later: `10005` (bad sdkfileid) and
    /// `10010` (past WeCom's retention window: it will not come back).
    pub fn is_permanent(&self) -> bool {
        matches!(self, ChunkError::Sdk { code } if codes::class(*code) == codes::Class::Gone)
    }
}

/// One `GetMediaData` call.
pub trait MediaSource: Send {
    /// A short description for logs (never a secret).
    fn describe(&self) -> String;

    /// The chunk of `sdkfileid` that `indexbuf` asks for (`""`: the first).
    fn chunk(&mut self, sdkfileid: &str, indexbuf: &str) -> Result<MediaChunk, ChunkError>;
}

/// The `Range:bytes=<start>-<end>` token SDK v3 uses as `indexbuf` for the chunk at `start`.
pub fn range_token(start: u64, len: u64) -> String {
    format!("Range:bytes={start}-{}", start + len.max(1) - 1)
}

/// The start offset in a `Range:bytes=<start>-<end>` token; `None` for other (opaque) tokens.
pub fn range_start(indexbuf: &str) -> Option<u64> {
    let rest = indexbuf.trim().strip_prefix("Range:")?.trim_start();
    let rest = rest.strip_prefix("bytes=")?;
    rest.split('-').next()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The simulator's media
// ---------------------------------------------------------------------------------------------

/// Distinct contents of simulated media. Each sdkfileid maps to one of them: computing a fresh
/// md5 per simulated message would make media messages far dearer than they are for WeCom, and
/// the simulator is benchmarked. Shared contents also exercise deduplication (a picture forwarded
/// to many chats).
pub const SIM_BLOBS: usize = 64;

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The blob a simulated sdkfileid points at.
pub fn sim_blob_index(sdkfileid: &str) -> usize {
    (fnv1a(sdkfileid) % SIM_BLOBS as u64) as usize
}

/// The size of simulated blob `i`: 1 KiB to 256 KiB, mostly small.
fn sim_blob_size(i: usize) -> usize {
    (1024usize << (i % 9)) + i * 37
}

/// The content of simulated blob `i` (a PRNG stream seeded by its index).
pub fn sim_blob(i: usize) -> Vec<u8> {
    let mut v = vec![0u8; sim_blob_size(i)];
    StdRng::seed_from_u64(0x6d65_6469_6100 ^ i as u64).fill_bytes(&mut v);
    v
}

/// `(md5 hex, size)` of simulated blob `i`, computed once per blob and process.
pub fn sim_blob_meta(i: usize) -> (&'static str, u64) {
    static META: OnceLock<Vec<OnceLock<(String, u64)>>> = OnceLock::new();
    let cells = META.get_or_init(|| (0..SIM_BLOBS).map(|_| OnceLock::new()).collect());
    let (md5, size) = cells[i % SIM_BLOBS].get_or_init(|| {
        let b = sim_blob(i % SIM_BLOBS);
        (md5_hex(&b), b.len() as u64)
    });
    (md5, *size)
}

/// `(md5 hex, size)` of the simulated content of `sdkfileid`.
pub fn sim_media_meta(sdkfileid: &str) -> (&'static str, u64) {
    sim_blob_meta(sim_blob_index(sdkfileid))
}

/// Lower-case hex MD5.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(data))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Serves the simulator's media: every sdkfileid has deterministic content
/// ([`sim_media_meta`]), cut into chunks of `chunk_size` with SDK v3 style `Range` tokens.
#[derive(Debug, Clone)]
pub struct SimMediaSource {
    chunk_size: usize,
    blobs: std::collections::HashMap<usize, std::sync::Arc<Vec<u8>>>,
}

impl SimMediaSource {
    /// Chunks of `chunk_size` bytes (the SDK's are 512 KiB; smaller ones exercise the loop).
    pub fn new(chunk_size: usize) -> Self {
        SimMediaSource {
            chunk_size: chunk_size.max(1),
            blobs: Default::default(),
        }
    }

    /// The whole content of `sdkfileid`.
    pub fn content(&mut self, sdkfileid: &str) -> std::sync::Arc<Vec<u8>> {
        let i = sim_blob_index(sdkfileid);
        self.blobs
            .entry(i)
            .or_insert_with(|| std::sync::Arc::new(sim_blob(i)))
            .clone()
    }
}

impl Default for SimMediaSource {
    fn default() -> Self {
        SimMediaSource::new(64 * 1024)
    }
}

/// Serves `content` in `chunk_size` pieces at the offset `indexbuf` names.
pub fn serve_chunk(
    content: &[u8],
    chunk_size: usize,
    indexbuf: &str,
) -> Result<MediaChunk, ChunkError> {
    let start = if indexbuf.is_empty() {
        0
    } else {
        // A token we never issued: the SDK answers a parameter error.
        range_start(indexbuf).ok_or(ChunkError::Sdk {
            code: PARAMETER_ERROR,
        })? as usize
    };
    if start > content.len() {
        return Err(ChunkError::Sdk {
            code: PARAMETER_ERROR,
        });
    }
    let end = (start + chunk_size).min(content.len());
    let is_finish = end == content.len();
    Ok(MediaChunk {
        data: content[start..end].to_vec(),
        next_index: if is_finish {
            String::new()
        } else {
            range_token(
                end as u64,
                ((end + chunk_size).min(content.len()) - end) as u64,
            )
        },
        is_finish,
    })
}

impl MediaSource for SimMediaSource {
    fn describe(&self) -> String {
        "simulated media".to_string()
    }

    fn chunk(&mut self, sdkfileid: &str, indexbuf: &str) -> Result<MediaChunk, ChunkError> {
        let content = self.content(sdkfileid);
        serve_chunk(&content, self.chunk_size, indexbuf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        let e = |code| ChunkError::Sdk { code };
        for c in [10001, 10002, 10003] {
            assert!(e(c).is_retryable() && !e(c).is_permanent());
        }
        for c in [10005, 10010] {
            assert!(e(c).is_permanent() && !e(c).is_retryable());
        }
        assert!(ChunkError::Transient("worker died".into()).is_retryable());
        assert!(!ChunkError::Fatal("no library".into()).is_retryable());
        assert!(e(10005).to_string().contains("bad sdkfileid"));
    }

    #[test]
    fn range_tokens_round_trip() {
        assert_eq!(range_token(524288, 524288), "Range:bytes=524288-1048575");
        assert_eq!(range_start("Range:bytes=524288-1048575"), Some(524288));
        assert_eq!(range_start("opaque"), None);
    }

    #[test]
    fn sim_chunks_reassemble_to_the_announced_md5() {
        let mut s = SimMediaSource::new(1000);
        for id in ["CtYBMzA2OTAyabc", "x", "another-id"] {
            let (md5, size) = sim_media_meta(id);
            let mut out = Vec::new();
            let mut index = String::new();
            loop {
                let c = s.chunk(id, &index).unwrap();
                out.extend_from_slice(&c.data);
                if c.is_finish {
                    break;
                }
                assert_eq!(range_start(&c.next_index), Some(out.len() as u64));
                index = c.next_index;
            }
            assert_eq!(out.len() as u64, size);
            assert_eq!(md5_hex(&out), md5);
        }
        assert!((1..=SIM_BLOBS).all(|i| sim_blob_size(i - 1) <= 256 * 1024 + 64 * 37));
    }
}
