//! WeCom callback crypto (WXBizMsgCrypt): signature, AES-256-CBC and the passive-reply envelope.
//!
//! Wire format (doc 91144, spec `auth-callback.md` §2):
//!
//! * `AESKey = base64_decode(EncodingAESKey + "=")` (32 bytes), IV = `AESKey[..16]`.
//! * `Encrypt = base64(AES-256-CBC(random(16) ‖ be_u32(len(msg)) ‖ msg ‖ receiveid ‖ PKCS#7 pad to 32))`.
//! * `msg_signature = hex_lower(SHA1(concat(sort([token, timestamp, nonce, Encrypt]))))`.
//!
//! Everything here is pure: no I/O, no global state, and no panic on any received input.
//! Network input should go through [`MsgCrypt::verify_and_decrypt`]: the signature
//! authenticates the ciphertext before any AES or padding work, so distinct decryption errors
//! cannot become a padding oracle.

use std::fmt;

use aes::Aes256;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::generic_array::GenericArray;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of an `EncodingAESKey`, in characters.
pub const ENCODING_AES_KEY_LEN: usize = 43;

/// Block size of the WXBizMsgCrypt PKCS#7 padding (not the AES block size).
pub const PAD_BLOCK: usize = 32;

/// Length of the random prefix of every plaintext.
const RANDOM_LEN: usize = 16;

/// Random prefix plus the big-endian `msg_len` field.
const HEADER_LEN: usize = RANDOM_LEN + 4;

/// AES block size.
const AES_BLOCK: usize = 16;

/// Longest receiveid echoed back in [`MsgCryptError::ReceiveIdMismatch`], in bytes.
const MAX_ECHOED_RECEIVEID: usize = 128;

/// Official keys keep non-zero bits in the last character (3 keys in 4 do), which the strict
/// engine rejects, and the key comes without its final `=`.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Some senders (Node) drop the `=` padding; the signature already covers the exact text, so
/// accepting it costs nothing.
const ENCRYPT_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type Aes256CbcEnc = cbc::Encryptor<Aes256>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;

/// Every way a callback can fail to verify or decrypt.
///
/// [`MsgCryptError::code`] maps each variant to Tencent's `ierror` code. No variant carries the
/// token, the key or decrypted message content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgCryptError {
    /// The `EncodingAESKey` is not 43 base64 characters decoding to 32 bytes (−40004).
    #[error("illegal EncodingAESKey: {reason}")]
    IllegalAesKey {
        /// What is wrong with it (never the key itself).
        reason: &'static str,
    },
    /// `msg_signature` does not match the token, timestamp, nonce and Encrypt (−40001).
    #[error("msg_signature mismatch")]
    SignatureMismatch,
    /// The Encrypt / echostr text is not valid base64 (−40010).
    #[error("Encrypt is not valid base64")]
    Base64(#[source] base64::DecodeError),
    /// The ciphertext is empty or not a multiple of the AES block size (−40007).
    #[error("ciphertext length {len} is not a non-zero multiple of 16")]
    CiphertextLength {
        /// Ciphertext length in bytes, after base64 decoding.
        len: usize,
    },
    /// The PKCS#7 padding is malformed: pad byte 0, above 32, longer than the plaintext, or pad
    /// bytes that disagree (−40008).
    #[error("bad PKCS#7 padding (last byte {last_byte})")]
    BadPadding {
        /// The last plaintext byte.
        last_byte: u8,
    },
    /// The unpadded plaintext is shorter than the 20-byte header (−40008).
    #[error("plaintext of {len} bytes is shorter than the 20-byte header")]
    PlaintextTooShort {
        /// Unpadded plaintext length in bytes.
        len: usize,
    },
    /// The `msg_len` field points past the end of the plaintext (−40008).
    #[error("msg_len {msg_len} exceeds the {available} bytes available")]
    MsgLenOutOfRange {
        /// The decoded `msg_len` field.
        msg_len: u32,
        /// Bytes left after the header.
        available: usize,
    },
    /// The decrypted receiveid is not one the caller allows (−40005).
    #[error("receiveid {received:?} is not allowed")]
    ReceiveIdMismatch {
        /// The receiveid found in the plaintext, lossily decoded and cut to 128 bytes.
        received: String,
    },
}

impl MsgCryptError {
    /// Tencent's `ierror` code for this error (`WXBizMsgCrypt_*` in the official samples).
    pub fn code(&self) -> i32 {
        match self {
            MsgCryptError::SignatureMismatch => -40001,
            MsgCryptError::IllegalAesKey { .. } => -40004,
            MsgCryptError::ReceiveIdMismatch { .. } => -40005,
            MsgCryptError::CiphertextLength { .. } => -40007,
            MsgCryptError::BadPadding { .. }
            | MsgCryptError::PlaintextTooShort { .. }
            | MsgCryptError::MsgLenOutOfRange { .. } => -40008,
            MsgCryptError::Base64(_) => -40010,
        }
    }
}

/// A decrypted callback payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The message: callback XML / JSON, or the echostr answer for a GET URL check.
    pub msg: Vec<u8>,
    /// The receiveid found after the message (already checked by the caller's rule).
    pub receiveid: String,
}

impl Decrypted {
    /// The message as UTF-8 text.
    pub fn msg_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.msg)
    }
}

/// Message content is confidential, so only its length is shown.
impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("msg_len", &self.msg.len())
            .field("receiveid", &self.receiveid)
            .finish()
    }
}

/// Decodes a 43-character `EncodingAESKey` into the 32-byte AES key.
///
/// Accepts non-canonical trailing bits in the last character, as every official SDK does.
pub fn decode_encoding_aes_key(
    encoding_aes_key: &str,
) -> Result<Zeroizing<[u8; 32]>, MsgCryptError> {
    if encoding_aes_key.len() != ENCODING_AES_KEY_LEN {
        return Err(MsgCryptError::IllegalAesKey {
            reason: "EncodingAESKey must be 43 characters",
        });
    }
    let mut buf = Zeroizing::new([0u8; 33]);
    let n = KEY_ENGINE
        .decode_slice(encoding_aes_key.as_bytes(), &mut buf[..])
        .map_err(|_| MsgCryptError::IllegalAesKey {
            reason: "EncodingAESKey is not valid base64",
        })?;
    if n != 32 {
        return Err(MsgCryptError::IllegalAesKey {
            reason: "EncodingAESKey does not decode to 32 bytes",
        });
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&buf[..32]);
    Ok(key)
}

/// WXBizMsgCrypt for one (token, EncodingAESKey) pair.
///
/// The token and key are wiped on drop, and `Debug` prints neither.
#[derive(Clone, ZeroizeOnDrop)]
pub struct MsgCrypt {
    token: String,
    key: [u8; 32],
}

impl fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsgCrypt").finish_non_exhaustive()
    }
}

impl MsgCrypt {
    /// Builds the codec from the configured token and `EncodingAESKey`.
    ///
    /// Fails with [`MsgCryptError::IllegalAesKey`] when the key is not 43 base64 characters
    /// decoding to 32 bytes. The token is used as given (only the signature reads it).
    pub fn new(token: &str, encoding_aes_key: &str) -> Result<Self, MsgCryptError> {
        let key = decode_encoding_aes_key(encoding_aes_key)?;
        Ok(Self {
            token: token.to_owned(),
            key: *key,
        })
    }

    /// `msg_signature` for `encrypt`: lower-case hex SHA-1 of the byte-wise sorted concatenation
    /// of token, timestamp, nonce and encrypt.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let hex = self.signature_hex(timestamp, nonce, encrypt);
        hex.iter().map(|&b| char::from(b)).collect()
    }

    fn signature_hex(&self, timestamp: &str, nonce: &str, encrypt: &str) -> [u8; 40] {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let mut sha = Sha1::new();
        for part in parts {
            sha.update(part.as_bytes());
        }
        let digest = sha.finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 40];
        for (i, b) in digest.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        out
    }

    /// Checks `msg_signature` in constant time over `encrypt` exactly as received.
    ///
    /// Only lower-case hex matches, as in every official SDK.
    pub fn verify_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), MsgCryptError> {
        let expected = self.signature_hex(timestamp, nonce, encrypt);
        if bool::from(msg_signature.as_bytes().ct_eq(&expected)) {
            Ok(())
        } else {
            Err(MsgCryptError::SignatureMismatch)
        }
    }

    /// Checks the signature, then decrypts; the receiveid must be one of `allowed_receiveids`.
    ///
    /// This is the path for the GET `echostr` and the POST `<Encrypt>`. Pass the URL-decoded
    /// query values and the text of `<Encrypt>` as received.
    pub fn verify_and_decrypt(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
        allowed_receiveids: &[&str],
    ) -> Result<Decrypted, MsgCryptError> {
        self.verify_signature(msg_signature, timestamp, nonce, encrypt)?;
        self.decrypt(encrypt, allowed_receiveids)
    }

    /// Like [`Self::verify_and_decrypt`], with the receiveid accepted when `is_allowed` returns
    /// true (e.g. any corp with an active authorization on a third-party data URL).
    pub fn verify_and_decrypt_with(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
        is_allowed: impl FnOnce(&str) -> bool,
    ) -> Result<Decrypted, MsgCryptError> {
        self.verify_signature(msg_signature, timestamp, nonce, encrypt)?;
        self.decrypt_with(encrypt, is_allowed)
    }

    /// Decrypts without checking the signature; the receiveid must be one of
    /// `allowed_receiveids` (`""` is a valid entry).
    ///
    /// ASCII whitespace in `encrypt` is ignored and the `=` padding is optional. Ciphertexts
    /// padded to 16-byte blocks are accepted; malformed padding is rejected.
    pub fn decrypt(
        &self,
        encrypt: &str,
        allowed_receiveids: &[&str],
    ) -> Result<Decrypted, MsgCryptError> {
        self.decrypt_with(encrypt, |rid| allowed_receiveids.contains(&rid))
    }

    /// Like [`Self::decrypt`], with the receiveid accepted when `is_allowed` returns true.
    pub fn decrypt_with(
        &self,
        encrypt: &str,
        is_allowed: impl FnOnce(&str) -> bool,
    ) -> Result<Decrypted, MsgCryptError> {
        let mut buf = decode_base64(encrypt)?;
        let result = self.open(&mut buf, is_allowed);
        if result.is_err() {
            // Rejected plaintext may still be a real message; do not leave it in freed memory.
            buf.zeroize();
        }
        result
    }

    /// Decrypts `buf` in place and splits it; on success `buf` becomes the message.
    fn open(
        &self,
        buf: &mut Vec<u8>,
        is_allowed: impl FnOnce(&str) -> bool,
    ) -> Result<Decrypted, MsgCryptError> {
        let len = buf.len();
        if len == 0 || !len.is_multiple_of(AES_BLOCK) {
            return Err(MsgCryptError::CiphertextLength { len });
        }
        Aes256CbcDec::new(
            &self.key.into(),
            GenericArray::from_slice(&self.key[..AES_BLOCK]),
        )
        .decrypt_padded_mut::<NoPadding>(buf)
        .map_err(|_| MsgCryptError::CiphertextLength { len })?;

        let unpadded = strip_padding(buf)?;
        if unpadded < HEADER_LEN {
            return Err(MsgCryptError::PlaintextTooShort { len: unpadded });
        }
        let msg_len = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]);
        let available = unpadded - HEADER_LEN;
        let msg_end = match usize::try_from(msg_len) {
            Ok(n) if n <= available => HEADER_LEN + n,
            _ => return Err(MsgCryptError::MsgLenOutOfRange { msg_len, available }),
        };

        let rid_bytes = &buf[msg_end..unpadded];
        let receiveid = match std::str::from_utf8(rid_bytes) {
            Ok(rid) if is_allowed(rid) => rid.to_owned(),
            _ => {
                return Err(MsgCryptError::ReceiveIdMismatch {
                    received: echo_receiveid(rid_bytes),
                })
            }
        };

        buf.copy_within(HEADER_LEN..msg_end, 0);
        buf.truncate(msg_end - HEADER_LEN);
        Ok(Decrypted {
            msg: std::mem::take(buf),
            receiveid,
        })
    }

    /// Encrypts with a caller-chosen 16-byte random prefix; deterministic, for tests and the
    /// emulator.
    ///
    /// # Panics
    ///
    /// If `msg` is longer than `u32::MAX` bytes, which the wire format cannot express.
    pub fn encrypt_with_random(&self, msg: &[u8], receiveid: &str, random: [u8; 16]) -> String {
        let msg_len =
            u32::try_from(msg.len()).expect("callback message longer than u32::MAX bytes");
        let body = HEADER_LEN + msg.len() + receiveid.len();
        let pad = PAD_BLOCK - body % PAD_BLOCK;
        // Encrypted in place, so the plaintext does not outlive this call.
        let mut buf = Vec::with_capacity(body + pad);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(msg);
        buf.extend_from_slice(receiveid.as_bytes());
        // `pad` is 1..=32, so it fits in a byte.
        buf.resize(body + pad, pad as u8);
        self.seal(&mut buf)
    }

    /// Encrypts with a fresh random prefix from the thread-local CSPRNG.
    ///
    /// # Panics
    ///
    /// If `msg` is longer than `u32::MAX` bytes.
    pub fn encrypt(&self, msg: &[u8], receiveid: &str) -> String {
        let mut random = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut random);
        self.encrypt_with_random(msg, receiveid, random)
    }

    /// AES-CBC encrypts an already padded plaintext in place and base64-encodes it.
    fn seal(&self, buf: &mut [u8]) -> String {
        let mut enc = Aes256CbcEnc::new(
            &self.key.into(),
            GenericArray::from_slice(&self.key[..AES_BLOCK]),
        );
        // CBC encryption is sequential anyway, so block by block costs nothing.
        for block in buf.chunks_exact_mut(AES_BLOCK) {
            enc.encrypt_block_mut(GenericArray::from_mut_slice(block));
        }
        STANDARD.encode(buf)
    }

    /// The passive-reply XML envelope for `msg`, signed with `timestamp` and `nonce`.
    ///
    /// # Panics
    ///
    /// If `msg` is longer than `u32::MAX` bytes.
    pub fn reply_xml(&self, msg: &[u8], receiveid: &str, timestamp: &str, nonce: &str) -> String {
        let encrypt = self.encrypt(msg, receiveid);
        self.envelope(&encrypt, timestamp, nonce)
    }

    /// [`Self::reply_xml`] with a caller-chosen random prefix; deterministic, for tests.
    ///
    /// # Panics
    ///
    /// If `msg` is longer than `u32::MAX` bytes.
    pub fn reply_xml_with_random(
        &self,
        msg: &[u8],
        receiveid: &str,
        timestamp: &str,
        nonce: &str,
        random: [u8; 16],
    ) -> String {
        let encrypt = self.encrypt_with_random(msg, receiveid, random);
        self.envelope(&encrypt, timestamp, nonce)
    }

    /// Tencent's `AES_TEXT_RESPONSE_TEMPLATE`, byte for byte.
    fn envelope(&self, encrypt: &str, timestamp: &str, nonce: &str) -> String {
        let signature = self.signature_hex(timestamp, nonce, encrypt);
        let mut out = String::with_capacity(encrypt.len() + timestamp.len() + nonce.len() + 160);
        out.push_str("<xml>\n<Encrypt><![CDATA[");
        out.push_str(encrypt);
        out.push_str("]]></Encrypt>\n<MsgSignature><![CDATA[");
        out.extend(signature.iter().map(|&b| char::from(b)));
        out.push_str("]]></MsgSignature>\n<TimeStamp>");
        push_xml_text(&mut out, timestamp);
        out.push_str("</TimeStamp>\n<Nonce><![CDATA[");
        // The signature covers the nonce as sent, so it must survive XML parsing unchanged.
        out.push_str(&nonce.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]></Nonce>\n</xml>");
        out
    }
}

/// Base64-decodes `encrypt`, ignoring ASCII whitespace (line-wrapped senders).
fn decode_base64(encrypt: &str) -> Result<Vec<u8>, MsgCryptError> {
    let bytes = encrypt.as_bytes();
    if bytes.iter().any(u8::is_ascii_whitespace) {
        let compact: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        ENCRYPT_ENGINE.decode(compact)
    } else {
        ENCRYPT_ENGINE.decode(bytes)
    }
    .map_err(MsgCryptError::Base64)
}

/// Validates the 32-block PKCS#7 padding and returns the unpadded length.
///
/// Any pad length 1..=32 is accepted whatever the ciphertext length, so 16-block padding from
/// other libraries decrypts too; all pad bytes must equal the last one.
fn strip_padding(plain: &[u8]) -> Result<usize, MsgCryptError> {
    let Some(&last_byte) = plain.last() else {
        return Err(MsgCryptError::BadPadding { last_byte: 0 });
    };
    let pad = usize::from(last_byte);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(MsgCryptError::BadPadding { last_byte });
    }
    let start = plain.len() - pad;
    let diff = plain[start..]
        .iter()
        .fold(0u8, |acc, &b| acc | (b ^ last_byte));
    if diff != 0 {
        return Err(MsgCryptError::BadPadding { last_byte });
    }
    Ok(start)
}

/// The received receiveid for an error message, bounded so that a bad message cannot flood logs.
fn echo_receiveid(rid: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(rid).into_owned();
    if s.len() > MAX_ECHOED_RECEIVEID {
        let mut end = MAX_ECHOED_RECEIVEID;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Appends `text` as XML character data (normally a decimal timestamp, left unchanged).
fn push_xml_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "QDG6eK";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const RID: &str = "wx5823bf96d3bd56c7";

    fn crypto() -> MsgCrypt {
        MsgCrypt::new(TOKEN, KEY).unwrap()
    }

    /// Encrypts a hand-made plaintext (any padding), to reach the padding checks.
    fn seal_raw(c: &MsgCrypt, mut plain: Vec<u8>) -> String {
        c.seal(&mut plain)
    }

    fn plain(msg: &[u8], rid: &str) -> Vec<u8> {
        let mut p = vec![b'7'; 16];
        p.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        p.extend_from_slice(msg);
        p.extend_from_slice(rid.as_bytes());
        p
    }

    #[test]
    fn official_get_verify() {
        let c = crypto();
        let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        let d = c
            .verify_and_decrypt(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                echostr,
                &[RID],
            )
            .unwrap();
        assert_eq!(d.msg_str().unwrap(), "1616140317555161061");
        assert_eq!(d.receiveid, RID);
    }

    #[test]
    fn key_noncanonical_equals_canonical() {
        let a = decode_encoding_aes_key(KEY).unwrap();
        let b = decode_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2A").unwrap();
        assert_eq!(*a, *b);
        assert_eq!(a[0], 0x8d);
    }

    #[test]
    fn key_rejections() {
        for bad in [
            "",
            &KEY[..42],
            &format!("{KEY}="),
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2!",
        ] {
            let err = MsgCrypt::new(TOKEN, bad).unwrap_err();
            assert!(
                matches!(err, MsgCryptError::IllegalAesKey { .. }),
                "{bad:?}"
            );
            assert_eq!(err.code(), -40004);
        }
        // 43 bytes, but a padding character in the middle.
        let err = MsgCrypt::new(TOKEN, "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B==").unwrap_err();
        assert!(matches!(err, MsgCryptError::IllegalAesKey { .. }));
    }

    #[test]
    fn padding_checks() {
        let c = crypto();
        // Full 32-byte pad block, and a 17..32 pad length over a 16-multiple buffer.
        let mut p = plain(b"hi", RID); // 40 bytes
        p.extend(std::iter::repeat_n(24u8, 24));
        assert_eq!(c.decrypt(&seal_raw(&c, p), &[RID]).unwrap().msg, b"hi");

        let mut p = plain(b"hi", RID);
        p.extend(std::iter::repeat_n(0u8, 24));
        let err = c.decrypt(&seal_raw(&c, p), &[RID]).unwrap_err();
        assert_eq!(err, MsgCryptError::BadPadding { last_byte: 0 });

        let mut p = plain(b"hi", RID);
        p.extend(std::iter::repeat_n(33u8, 24));
        let err = c.decrypt(&seal_raw(&c, p), &[RID]).unwrap_err();
        assert_eq!(err, MsgCryptError::BadPadding { last_byte: 33 });

        let mut p = plain(b"hi", RID);
        p.extend(std::iter::repeat_n(24u8, 23));
        p.insert(40, 23);
        let err = c.decrypt(&seal_raw(&c, p), &[RID]).unwrap_err();
        assert_eq!(err, MsgCryptError::BadPadding { last_byte: 24 });
    }

    #[test]
    fn short_and_out_of_range() {
        let c = crypto();
        // 16 bytes of 0x10: unpadded length 0.
        let err = c.decrypt(&seal_raw(&c, vec![16u8; 16]), &[""]).unwrap_err();
        assert_eq!(err, MsgCryptError::PlaintextTooShort { len: 0 });
        assert_eq!(err.code(), -40008);

        let mut p = plain(b"", "");
        p[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        p.extend(std::iter::repeat_n(12u8, 12));
        let err = c.decrypt(&seal_raw(&c, p), &[""]).unwrap_err();
        assert_eq!(
            err,
            MsgCryptError::MsgLenOutOfRange {
                msg_len: u32::MAX,
                available: 0
            }
        );
    }

    #[test]
    fn ciphertext_length_and_base64() {
        let c = crypto();
        assert_eq!(
            c.decrypt("", &[RID]).unwrap_err(),
            MsgCryptError::CiphertextLength { len: 0 }
        );
        assert_eq!(
            c.decrypt("AAAA", &[RID]).unwrap_err(),
            MsgCryptError::CiphertextLength { len: 3 }
        );
        let err = c.decrypt("not base64!", &[RID]).unwrap_err();
        assert!(matches!(err, MsgCryptError::Base64(_)));
        assert_eq!(err.code(), -40010);
    }

    #[test]
    fn receiveid_closure_and_echo_bound() {
        let c = crypto();
        let long = "x".repeat(300);
        let enc = c.encrypt(b"m", &long);
        let err = c.decrypt(&enc, &[RID]).unwrap_err();
        match err {
            MsgCryptError::ReceiveIdMismatch { received } => assert_eq!(received.len(), 128),
            other => panic!("unexpected {other:?}"),
        }
        let d = c.decrypt_with(&enc, |rid| rid.len() == 300).unwrap();
        assert_eq!(d.msg, b"m");
        assert_eq!(c.decrypt(&enc, &[]).unwrap_err().code(), -40005);
    }

    #[test]
    fn signature_and_codes() {
        let c = crypto();
        let s = c.signature("1409659589", "263014780", "x");
        assert_eq!(s.len(), 40);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(c
            .verify_signature(&s, "1409659589", "263014780", "x")
            .is_ok());
        assert_eq!(
            c.verify_signature(&s[..39], "1409659589", "263014780", "x"),
            Err(MsgCryptError::SignatureMismatch)
        );
        assert_eq!(MsgCryptError::SignatureMismatch.code(), -40001);
    }

    #[test]
    fn debug_is_redacted() {
        let c = crypto();
        let dbg = format!("{c:?} {c:#?}");
        assert!(!dbg.contains(TOKEN) && !dbg.contains(KEY), "{dbg}");
        assert_eq!(format!("{c:?}"), "MsgCrypt { .. }");
        let d = c.decrypt(&c.encrypt(b"secret body", RID), &[RID]).unwrap();
        assert!(!format!("{d:?}").contains("secret body"));
    }

    #[test]
    fn envelope_escapes_hostile_nonce() {
        let c = crypto();
        let xml = c.reply_xml_with_random(b"x", RID, "1<2", "a]]>b", [0; 16]);
        assert!(xml.contains("<TimeStamp>1&lt;2</TimeStamp>"));
        assert!(xml.contains("<Nonce><![CDATA[a]]]]><![CDATA[>b]]></Nonce>"));
    }
}
