//! Helpers shared by the fuzz targets: reading structured values from the fuzzer's bytes, and
//! building valid ciphertexts so that the fuzzer gets past layers it could never guess.

use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;

/// The fuzzer's bytes, consumed front to back; reads past the end give zeros / empty slices, so
/// every input is usable.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// One byte (0 when empty).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length-prefixed (one byte) slice.
    pub fn prefixed(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Everything left, split at the first `sep` (which belongs to neither half).
    pub fn rest_split(&mut self, sep: u8) -> (&'a [u8], &'a [u8]) {
        let rest = self.rest();
        match rest.iter().position(|&b| b == sep) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[]),
        }
    }
}

/// `base64(iv ‖ AES-256-CBC(key zero-padded/truncated to 32 bytes, plain ‖ PKCS#7 to 16))`:
/// the SDK's encryption of one DecryptData layer.
pub fn sdk_layer(key: &[u8], iv: [u8; 16], plain: &[u8]) -> String {
    let mut k = [0u8; 32];
    let n = key.len().min(32);
    k[..n].copy_from_slice(&key[..n]);
    let pad = 16 - plain.len() % 16;
    let mut data = Vec::with_capacity(16 + plain.len() + pad);
    data.extend_from_slice(&iv);
    data.extend_from_slice(plain);
    data.resize(16 + plain.len() + pad, pad as u8);
    cbc_encrypt(&k, &iv, &mut data[16..]);
    base64::engine::general_purpose::STANDARD.encode(&data)
}

/// AES-256-CBC without padding over whole blocks (a partial last block is zero-filled).
pub fn cbc_encrypt_blocks(key: &[u8; 32], iv: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    let mut data = plain.to_vec();
    data.resize(plain.len().div_ceil(16) * 16, 0);
    cbc_encrypt(key, iv, &mut data);
    data
}

fn cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    let len = data.len();
    cbc::Encryptor::<aes::Aes256>::new(key.into(), iv.into())
        .encrypt_padded_mut::<NoPadding>(data, len)
        .expect("whole blocks");
}

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Inserts ASCII whitespace into `text` at positions chosen by `input` (what dump tools that
/// wrap lines do).
pub fn sprinkle_whitespace(text: &str, input: &mut Input<'_>) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut at = usize::from(input.byte());
    for (i, c) in text.chars().enumerate() {
        if i == at && at != 0 {
            out.push([' ', '\n', '\r', '\t'][usize::from(input.byte() % 4)]);
            at += 1 + usize::from(input.byte());
        }
        out.push(c);
    }
    out
}
