//! Native `DecryptData`: a byte-exact reimplementation of the official SDK's symmetric step.
//!
//! The SDK (`libWeWorkFinanceSdk_C.so`) turns `(encrypt_key, encrypt_chat_msg)` into the message
//! plaintext in two AES-256-CBC layers (see `spec/decryptdata.md` in the shared design notes):
//!
//! 1. `encrypt_key` (the RSA-unwrapped `encrypt_random_key`) is lenient base64 of
//!    `IV1 ‖ AES-256-CBC(key = encrypt_msg[13..45], SdkKeyInfo)`, where `SdkKeyInfo` is a protobuf
//!    `{1: k1, 2: pre_len, 3: end_len, 4: s_len}`.
//! 2. `encrypt_chat_msg` is lenient base64 of `IV2 ‖ AES-256-CBC(key = k1, plaintext)`, with junk
//!    inserted in three places that the lengths of layer 1 tell us to cut.
//!
//! Every check happens in the same order as in the SDK so that the same input fails with the same
//! error class ([`DecryptError::sdk_outcome`]). Where the SDK aborts the whole process (an uncaught
//! C++ exception), we return an error instead.
//!
//! There is no MAC: a wrong key passes the padding check about once in 256 tries and "succeeds"
//! with garbage. Callers must validate the plaintext (the pipeline requires valid JSON).

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::{Rng, RngCore};

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// Where the message key starts inside `encrypt_chat_msg` (`substr(13, 32)` in the SDK).
const OUTER_KEY_OFFSET: usize = 13;
/// Length of the message key inside `encrypt_chat_msg`.
const OUTER_KEY_LEN: usize = 32;
/// Characters before the junk prefix: the 13-char header plus the 32-char outer key.
const HEADER_LEN: i64 = (OUTER_KEY_OFFSET + OUTER_KEY_LEN) as i64;

/// What the official SDK does with an input: return a code, or abort the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkOutcome {
    /// `DecryptData` returns this non-zero code.
    Code(i32),
    /// The SDK throws an uncaught C++ exception and the process dies (SIGABRT).
    Abort,
}

/// Which of the two AES layers failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The `SdkKeyInfo` layer, keyed by `encrypt_msg[13..45]` (SDK code 10008).
    KeyInfo,
    /// The message layer, keyed by `k1` (SDK code 10006).
    Message,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::KeyInfo => "encrypt_key (SdkKeyInfo layer)",
            Layer::Message => "encrypt_chat_msg (message layer)",
        })
    }
}

/// Why an AES layer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesFailure {
    /// The decoded data is shorter than IV + one block, or not a multiple of 16 bytes.
    Length(usize),
    /// The PKCS#7 padding is invalid (usually: wrong key or corrupted data).
    Padding,
}

/// A `DecryptData` failure. Each variant maps to what the SDK does with the same input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// `encrypt_chat_msg` is shorter than 13 characters (the SDK aborts).
    #[error("encrypt_chat_msg is {len} characters, shorter than the 13-character header")]
    MessageTooShort {
        /// Length of the message, in bytes, up to the first NUL.
        len: usize,
    },
    /// A base64 text has more trailing `=` than decodable bytes (the SDK aborts).
    #[error("{layer}: base64 has more trailing '=' than data")]
    Base64Length {
        /// The layer whose text is malformed.
        layer: Layer,
    },
    /// An AES-256-CBC layer failed (SDK codes 10008 and 10006).
    #[error("{layer}: {}", match .failure {
        AesFailure::Length(n) => format!("ciphertext of {n} bytes is not IV + whole blocks"),
        AesFailure::Padding => "bad padding (wrong key or corrupted data)".to_string(),
    })]
    Aes {
        /// The layer that failed.
        layer: Layer,
        /// What went wrong.
        failure: AesFailure,
    },
    /// The `SdkKeyInfo` protobuf does not parse (SDK code 10005).
    #[error("SdkKeyInfo protobuf does not parse: {0}")]
    KeyInfo(&'static str),
    /// The framing lengths of `SdkKeyInfo` do not fit the message (SDK code 10005).
    #[error("SdkKeyInfo framing does not fit the message: {0}")]
    Framing(&'static str),
    /// `s_len` points past the end of the message body (the SDK aborts).
    #[error("SdkKeyInfo s_len={s_len} is past the end of the {body_len}-character body")]
    SplitOutOfRange {
        /// The `s_len` from `SdkKeyInfo`.
        s_len: i32,
        /// Characters left after the prefix was stripped.
        body_len: usize,
    },
}

impl DecryptError {
    /// What the official SDK does with the same input.
    pub fn sdk_outcome(&self) -> SdkOutcome {
        match self {
            DecryptError::MessageTooShort { .. }
            | DecryptError::Base64Length { .. }
            | DecryptError::SplitOutOfRange { .. } => SdkOutcome::Abort,
            DecryptError::Aes {
                layer: Layer::KeyInfo,
                ..
            } => SdkOutcome::Code(10008),
            DecryptError::Aes {
                layer: Layer::Message,
                ..
            } => SdkOutcome::Code(10006),
            DecryptError::KeyInfo(_) | DecryptError::Framing(_) => SdkOutcome::Code(10005),
        }
    }

    /// The SDK error code this failure is reported as. Inputs on which the SDK aborts are
    /// reported as 10005 (malformed framing) or 10008/10006 (malformed base64), the nearest code.
    pub fn code(&self) -> i32 {
        match (self.sdk_outcome(), self) {
            (SdkOutcome::Code(c), _) => c,
            (
                SdkOutcome::Abort,
                DecryptError::Base64Length {
                    layer: Layer::KeyInfo,
                },
            ) => 10008,
            (
                SdkOutcome::Abort,
                DecryptError::Base64Length {
                    layer: Layer::Message,
                },
            ) => 10006,
            (SdkOutcome::Abort, _) => 10005,
        }
    }

    /// A short stable name for this error class (used in dead letters and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            DecryptError::MessageTooShort { .. } => "message_too_short",
            DecryptError::Base64Length { .. } => "base64_length",
            DecryptError::Aes {
                layer: Layer::KeyInfo,
                ..
            } => "encrypt_key_aes",
            DecryptError::Aes {
                layer: Layer::Message,
                ..
            } => "message_aes",
            DecryptError::KeyInfo(_) => "keyinfo_protobuf",
            DecryptError::Framing(_) => "keyinfo_framing",
            DecryptError::SplitOutOfRange { .. } => "split_out_of_range",
        }
    }
}

/// The decrypted `SdkKeyInfo` of one record.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KeyInfo {
    /// The message key (zero-padded or truncated to 32 bytes when used).
    pub k1: Vec<u8>,
    /// Junk characters after the 45-character header.
    pub pre_len: i32,
    /// Junk characters at the end.
    pub end_len: i32,
    /// Where the junk in the middle starts (counted in the body) and how long it is.
    pub s_len: i32,
}

impl std::fmt::Debug for KeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // k1 decrypts the message: never print it.
        f.debug_struct("KeyInfo")
            .field("k1", &format_args!("<{} bytes>", self.k1.len()))
            .field("pre_len", &self.pre_len)
            .field("end_len", &self.end_len)
            .field("s_len", &self.s_len)
            .finish()
    }
}

/// Decrypts one message exactly as the SDK's `DecryptData(encrypt_key, encrypt_msg)` does.
///
/// `encrypt_key` is the RSA-unwrapped `encrypt_random_key`; `encrypt_msg` is `encrypt_chat_msg`.
/// Like the C API, each argument is read up to its first NUL byte.
pub fn decrypt(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let key = until_nul(encrypt_key);
    let msg = until_nul(encrypt_msg);

    if msg.len() < OUTER_KEY_OFFSET {
        return Err(DecryptError::MessageTooShort { len: msg.len() });
    }
    let outer_key = &msg[OUTER_KEY_OFFSET..msg.len().min(OUTER_KEY_OFFSET + OUTER_KEY_LEN)];
    let mut buf = Vec::new();
    let info_raw = aes_layer_decrypt(&[key], outer_key, Layer::KeyInfo, &mut buf)?;
    let info = parse_key_info(info_raw)?;
    let (head, tail) = frame(msg, &info)?;
    let mut out = Vec::with_capacity((head.len() + tail.len()) / 4 * 3);
    let plain_len = aes_layer_decrypt(&[head, tail], &info.k1, Layer::Message, &mut out)?.len();
    // The plaintext sits after the 16-byte IV in `out`; shift it down instead of copying.
    out.drain(..16);
    out.truncate(plain_len);
    Ok(out)
}

/// Cuts the junk out of `msg` as the SDK does, returning the body as two pieces
/// (`body[..s_len]` and `body[2*s_len..len-end_len]`), which decode as one text.
fn frame<'m>(msg: &'m [u8], info: &KeyInfo) -> Result<(&'m [u8], &'m [u8]), DecryptError> {
    let s_len = info.s_len;
    if s_len <= 0 {
        return Err(DecryptError::Framing("s_len <= 0"));
    }
    // The SDK computes these in 32-bit ints; mirror the wrap-around exactly.
    let twice = wrap_i32(2 * i64::from(s_len));
    if twice < 0 || twice as usize >= msg.len() {
        return Err(DecryptError::Framing("2*s_len is not inside the message"));
    }
    let strip = wrap_i32(i64::from(info.pre_len) + HEADER_LEN);
    if strip < 0 || strip as usize > msg.len() {
        return Err(DecryptError::Framing(
            "pre_len + 45 is not inside the message",
        ));
    }
    let body = &msg[strip as usize..];
    let s = s_len as usize;
    if s > body.len() {
        return Err(DecryptError::SplitOutOfRange {
            s_len,
            body_len: body.len(),
        });
    }
    let head = &body[..s];
    // erase(s_len, s_len) on a string shorter than 2*s_len erases to its end.
    let tail = body.get(2 * s..).unwrap_or(&[]);
    let remaining = head.len() + tail.len();
    let end_len = info.end_len;
    if end_len < 0 || end_len as usize > remaining {
        return Err(DecryptError::Framing(
            "end_len is negative or past the body",
        ));
    }
    let keep = remaining - end_len as usize;
    if keep <= head.len() {
        Ok((&head[..keep], &[]))
    } else {
        Ok((head, &tail[..keep - head.len()]))
    }
}

fn wrap_i32(v: i64) -> i32 {
    v as i32
}

fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// The SDK's AES helper: lenient base64 of `IV ‖ ciphertext`, AES-256-CBC with the key
/// zero-padded/truncated to 32 bytes, PKCS#7. Decodes into `buf` and returns the plaintext
/// (a subslice of `buf`, after the IV).
fn aes_layer_decrypt<'b>(
    text: &[&[u8]],
    key: &[u8],
    layer: Layer,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], DecryptError> {
    sdk_b64decode(text, buf).map_err(|()| DecryptError::Base64Length { layer })?;
    let n = buf.len();
    if n < 32 || !n.is_multiple_of(16) {
        return Err(DecryptError::Aes {
            layer,
            failure: AesFailure::Length(n),
        });
    }
    let key = key32(key);
    let (iv, ct) = buf.split_at_mut(16);
    let cipher = Aes256CbcDec::new((&key).into(), (&*iv).into());
    // Length is a whole number of blocks (checked above), so NoPadding cannot fail.
    let pt = cipher
        .decrypt_padded_mut::<NoPadding>(ct)
        .map_err(|_| DecryptError::Aes {
            layer,
            failure: AesFailure::Length(n),
        })?;
    let pt_len = pt.len();
    let pad = ct[pt_len - 1];
    if pad == 0 || pad > 16 || ct[pt_len - pad as usize..].iter().any(|&b| b != pad) {
        return Err(DecryptError::Aes {
            layer,
            failure: AesFailure::Padding,
        });
    }
    Ok(&buf[16..16 + pt_len - pad as usize])
}

fn key32(key: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    let n = key.len().min(32);
    k[..n].copy_from_slice(&key[..n]);
    k
}

const B64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Every byte outside the alphabet decodes as 0, like `A` (the SDK validates nothing).
const B64_DECODE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 64 {
        t[B64_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The SDK's lenient base64 decoder over the concatenation of `parts`.
///
/// It decodes only whole 4-character groups and then drops as many output bytes as there are
/// trailing `=` in the whole text (not limited to two). `Err` where the SDK aborts: more `=`
/// than decoded bytes.
fn sdk_b64decode(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let groups = total / 4;
    out.reserve(groups * 3);
    let mut quad = [0u8; 4];
    let mut q = 0;
    let mut left = groups * 4;
    'outer: for part in parts {
        for &c in part.iter() {
            if left == 0 {
                break 'outer;
            }
            quad[q] = B64_DECODE[c as usize];
            q += 1;
            left -= 1;
            if q == 4 {
                let [a, b, c, d] = quad;
                out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2, c << 6 | d]);
                q = 0;
            }
        }
    }
    let trailing = parts
        .iter()
        .rev()
        .flat_map(|p| p.iter().rev())
        .take_while(|&&c| c == b'=')
        .count();
    if trailing > out.len() {
        return Err(());
    }
    out.truncate(out.len() - trailing);
    Ok(())
}

/// Parses `SdkKeyInfo` with protobuf 2.x `ParseFromString` semantics: unknown fields (even
/// field number 0 and groups) are skipped, the last occurrence wins, int32 varints are
/// truncated, UTF-8 is not enforced.
pub fn parse_key_info(b: &[u8]) -> Result<KeyInfo, DecryptError> {
    let mut info = KeyInfo::default();
    let mut r = PbReader { b, i: 0 };
    while r.i < b.len() {
        let tag = r.varint()? as u32;
        let (field, wire) = (tag >> 3, tag & 7);
        if tag == 0 || wire == 4 {
            return Err(DecryptError::KeyInfo("tag 0 or END_GROUP at top level"));
        }
        match (field, wire) {
            (1, 2) => {
                let n = r.varint()? as u32;
                if n > 0x7FFF_FFFF || r.i + n as usize > b.len() {
                    return Err(DecryptError::KeyInfo("truncated k1"));
                }
                info.k1 = b[r.i..r.i + n as usize].to_vec();
                r.i += n as usize;
            }
            (2..=4, 0) => {
                let v = r.varint()? as i32;
                match field {
                    2 => info.pre_len = v,
                    3 => info.end_len = v,
                    _ => info.s_len = v,
                }
            }
            _ => r.skip(tag, 0)?,
        }
    }
    Ok(info)
}

struct PbReader<'a> {
    b: &'a [u8],
    i: usize,
}

impl PbReader<'_> {
    fn varint(&mut self) -> Result<u64, DecryptError> {
        let mut v = 0u64;
        for k in 0..10 {
            let Some(&c) = self.b.get(self.i) else {
                return Err(DecryptError::KeyInfo("truncated varint"));
            };
            self.i += 1;
            v |= u64::from(c & 0x7F).wrapping_shl(7 * k);
            if c < 0x80 {
                return Ok(v);
            }
        }
        Err(DecryptError::KeyInfo("varint longer than 10 bytes"))
    }

    /// `WireFormat::SkipField` of protobuf 2.x.
    fn skip(&mut self, tag: u32, depth: u32) -> Result<(), DecryptError> {
        match tag & 7 {
            0 => {
                self.varint()?;
            }
            1 => self.i += 8,
            5 => self.i += 4,
            2 => {
                let n = self.varint()? as u32;
                if n > 0x7FFF_FFFF {
                    return Err(DecryptError::KeyInfo("bad length"));
                }
                self.i += n as usize;
            }
            3 => {
                if depth >= 100 {
                    return Err(DecryptError::KeyInfo("groups nested too deep"));
                }
                loop {
                    if self.i == self.b.len() {
                        return Err(DecryptError::KeyInfo("unterminated group"));
                    }
                    let t = self.varint()? as u32;
                    if t == 0 {
                        return Err(DecryptError::KeyInfo("tag 0 in group"));
                    }
                    if t & 7 == 4 {
                        if t != ((tag >> 3) << 3 | 4) {
                            return Err(DecryptError::KeyInfo("mismatched END_GROUP"));
                        }
                        break;
                    }
                    self.skip(t, depth + 1)?;
                }
            }
            _ => return Err(DecryptError::KeyInfo("bad wire type")),
        }
        if self.i > self.b.len() {
            return Err(DecryptError::KeyInfo("truncated field"));
        }
        Ok(())
    }
}

/// Framing parameters for [`encrypt`]. `None` picks a random value like the server does.
#[derive(Debug, Clone, Default)]
pub struct Framing {
    /// Junk characters after the 45-character header.
    pub pre_len: Option<usize>,
    /// Split point of the body (1..=body length).
    pub s_len: Option<usize>,
    /// Junk characters at the end.
    pub end_len: Option<usize>,
}

/// The output of [`encrypt`]: what WeCom sends, before the RSA wrap of `encrypt_key`.
#[derive(Clone)]
pub struct Encrypted {
    /// The string that RSA-wraps into `encrypt_random_key` (and that `DecryptData` takes first).
    pub encrypt_key: String,
    /// `encrypt_chat_msg`.
    pub encrypt_msg: String,
}

impl std::fmt::Debug for Encrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encrypted")
            .field("encrypt_key", &"<redacted>")
            .field(
                "encrypt_msg",
                &format_args!("<{} chars>", self.encrypt_msg.len()),
            )
            .finish()
    }
}

/// The inverse of [`decrypt`]: produces `(encrypt_key, encrypt_chat_msg)` that the SDK's
/// `DecryptData` turns back into `plaintext`, with message key `k1` (zero-padded or truncated
/// to 32 bytes by the decryptor). Used by the simulator and the tests.
///
/// # Panics
/// If a framing value is out of range (`s_len` must be in `1..=body length`).
pub fn encrypt<R: RngCore>(
    rng: &mut R,
    k1: &[u8],
    plaintext: &[u8],
    framing: &Framing,
) -> Encrypted {
    let body = aes_layer_encrypt(rng, plaintext, k1);
    let s_len = framing
        .s_len
        .unwrap_or_else(|| rng.gen_range(1..=body.len()));
    let pre_len = framing.pre_len.unwrap_or_else(|| rng.gen_range(0..=40));
    let end_len = framing.end_len.unwrap_or_else(|| rng.gen_range(0..=40));
    assert!(
        (1..=body.len()).contains(&s_len),
        "s_len {s_len} must be in 1..={}",
        body.len()
    );
    let key = MessageKey::with_framing(rng, k1, pre_len, s_len, end_len);
    Encrypted {
        encrypt_msg: key.frame(rng, &body),
        encrypt_key: key.encrypt_key,
    }
}

/// A message key as the server makes one: `k1`, the framing, the outer key, and the
/// `encrypt_key` that carries them. [`encrypt`] makes a fresh one per message; a producer that
/// reuses one for several messages ([`MessageKey::encrypt`]) saves the RSA wrap of
/// `encrypt_key`, which is what the simulator does to keep its own cost small.
#[derive(Clone)]
pub struct MessageKey {
    /// The string that RSA-wraps into `encrypt_random_key`.
    pub encrypt_key: String,
    outer_key: Vec<u8>,
    k1: Vec<u8>,
    pre_len: usize,
    s_len: usize,
    end_len: usize,
}

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageKey(<redacted>)")
    }
}

/// The shortest body [`encrypt`] produces: base64 of IV + one AES block.
pub const MIN_BODY_LEN: usize = 44;

impl MessageKey {
    /// A random key whose framing fits every message (`s_len` at most [`MIN_BODY_LEN`]).
    pub fn random<R: RngCore>(rng: &mut R, k1: &[u8]) -> Self {
        let pre_len = rng.gen_range(0..=40);
        let s_len = rng.gen_range(1..=MIN_BODY_LEN);
        let end_len = rng.gen_range(0..=40);
        Self::with_framing(rng, k1, pre_len, s_len, end_len)
    }

    fn with_framing<R: RngCore>(
        rng: &mut R,
        k1: &[u8],
        pre_len: usize,
        s_len: usize,
        end_len: usize,
    ) -> Self {
        let outer_key = random_b64_chars(rng, OUTER_KEY_LEN);
        let info = encode_key_info(k1, pre_len as i32, end_len as i32, s_len as i32);
        MessageKey {
            encrypt_key: aes_layer_encrypt(rng, &info, &outer_key),
            outer_key,
            k1: k1.to_vec(),
            pre_len,
            s_len,
            end_len,
        }
    }

    /// `encrypt_chat_msg` for `plaintext` under this key.
    pub fn encrypt<R: RngCore>(&self, rng: &mut R, plaintext: &[u8]) -> String {
        let body = aes_layer_encrypt(rng, plaintext, &self.k1);
        self.frame(rng, &body)
    }

    fn frame<R: RngCore>(&self, rng: &mut R, body: &str) -> String {
        let (pre_len, s_len, end_len) = (self.pre_len, self.s_len, self.end_len);
        let mut msg = Vec::with_capacity(45 + pre_len + body.len() + s_len + end_len);
        msg.extend(random_b64_chars(rng, OUTER_KEY_OFFSET));
        msg.extend_from_slice(&self.outer_key);
        msg.extend(random_b64_chars(rng, pre_len));
        msg.extend_from_slice(&body.as_bytes()[..s_len]);
        msg.extend(random_b64_chars(rng, s_len));
        msg.extend_from_slice(&body.as_bytes()[s_len..]);
        msg.extend(random_b64_chars(rng, end_len));
        // Only base64 alphabet characters were pushed.
        String::from_utf8(msg).expect("base64 alphabet is ASCII")
    }
}

fn random_b64_chars<R: RngCore>(rng: &mut R, n: usize) -> Vec<u8> {
    (0..n).map(|_| B64_ALPHABET[rng.gen_range(0..64)]).collect()
}

fn aes_layer_encrypt<R: RngCore>(rng: &mut R, plain: &[u8], key: &[u8]) -> String {
    use base64::Engine as _;
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    let pad = 16 - plain.len() % 16;
    let mut data = Vec::with_capacity(16 + plain.len() + pad);
    data.extend_from_slice(&iv);
    data.extend_from_slice(plain);
    data.resize(16 + plain.len() + pad, pad as u8);
    let key = key32(key);
    let cipher = Aes256CbcEnc::new((&key).into(), (&iv).into());
    let len = data.len() - 16;
    cipher
        .encrypt_padded_mut::<NoPadding>(&mut data[16..], len)
        .expect("whole blocks");
    base64::engine::general_purpose::STANDARD.encode(&data)
}

/// Serialises `SdkKeyInfo` as the server does (fields 1..4 in order).
pub fn encode_key_info(k1: &[u8], pre_len: i32, end_len: i32, s_len: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(k1.len() + 40);
    out.push(0x0a);
    put_varint(&mut out, k1.len() as u64);
    out.extend_from_slice(k1);
    for (tag, v) in [(0x10, pre_len), (0x18, end_len), (0x20, s_len)] {
        out.push(tag);
        // int32 is sign-extended to 64 bits on the wire.
        put_varint(&mut out, i64::from(v) as u64);
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let c = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(c);
            return;
        }
        out.push(c | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn b64(parts: &[&[u8]]) -> Result<Vec<u8>, ()> {
        let mut out = Vec::new();
        sdk_b64decode(parts, &mut out).map(|()| out)
    }

    #[test]
    fn lenient_base64_matches_the_sdk_model() {
        assert_eq!(b64(&[b"aGVsbG8="]).unwrap(), b"hello");
        // Partial trailing group is dropped.
        assert_eq!(b64(&[b"aGVsbG8"]).unwrap(), b"hel");
        // Non-alphabet bytes decode as 'A' (0).
        assert_eq!(b64(&[b"-_-_"]).unwrap(), b64(&[b"AAAA"]).unwrap());
        // Trailing '=' of the whole text are subtracted, even more than two.
        assert_eq!(b64(&[b"AAAAAA=="]).unwrap().len(), 4);
        assert_eq!(b64(&[b"AAAAA==="]).unwrap().len(), 3);
        assert!(b64(&[b"="]).is_err());
        assert!(b64(&[b"===="]).is_err());
        assert_eq!(b64(&[b""]).unwrap(), b"");
        // Split input decodes like the concatenation.
        assert_eq!(b64(&[b"aGV", b"sbG8="]).unwrap(), b"hello");
    }

    #[test]
    fn key_info_round_trips_and_last_field_wins() {
        let enc = encode_key_info(b"k1k1", 3, -1, 7);
        let info = parse_key_info(&enc).unwrap();
        assert_eq!(
            (info.k1.as_slice(), info.pre_len, info.end_len, info.s_len),
            (&b"k1k1"[..], 3, -1, 7)
        );
        let mut twice = enc.clone();
        twice.extend_from_slice(&[0x20, 0x09]);
        assert_eq!(parse_key_info(&twice).unwrap().s_len, 9);
        assert!(parse_key_info(&[0x00]).is_err());
        assert!(parse_key_info(&[0x0c]).is_err()); // END_GROUP at top level
        assert!(parse_key_info(&[0x0a, 0x05, b'a']).is_err());
        // Unknown field 5 (varint) and a group are skipped.
        let mut unk = vec![0x28, 0x01, 0x2b, 0x08, 0x01, 0x2c];
        unk.extend_from_slice(&enc);
        assert_eq!(parse_key_info(&unk).unwrap().s_len, 7);
    }

    #[test]
    fn round_trip_many_sizes_and_framings() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for size in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 1024, 5000] {
            for k1_len in [1usize, 16, 31, 32, 33, 40] {
                let pt: Vec<u8> = (0..size).map(|_| rng.gen()).collect();
                let k1 = random_b64_chars(&mut rng, k1_len);
                let e = encrypt(&mut rng, &k1, &pt, &Framing::default());
                let out = decrypt(e.encrypt_key.as_bytes(), e.encrypt_msg.as_bytes()).unwrap();
                assert_eq!(out, pt, "size {size} k1 {k1_len}");
            }
        }
    }

    #[test]
    fn errors_map_to_sdk_codes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let e = encrypt(
            &mut rng,
            b"0123456789abcdef0123456789abcdef",
            b"{\"a\":1}",
            &Framing::default(),
        );
        let (k, m) = (e.encrypt_key.as_bytes(), e.encrypt_msg.as_bytes());
        let err = decrypt(k, &m[..12]).unwrap_err();
        assert_eq!(err.sdk_outcome(), SdkOutcome::Abort);
        let err = decrypt(b"", m).unwrap_err();
        assert_eq!(err.sdk_outcome(), SdkOutcome::Code(10008));
        let err = decrypt(b"=", m).unwrap_err();
        assert_eq!(err.sdk_outcome(), SdkOutcome::Abort);
        assert_eq!(err.code(), 10008);
        let mut short = m.to_vec();
        short.truncate(m.len() - 20);
        assert!(decrypt(k, &short).is_err());
    }

    #[test]
    fn key_info_debug_hides_k1() {
        let info = KeyInfo {
            k1: b"SECRETSECRET".to_vec(),
            ..Default::default()
        };
        assert!(!format!("{info:?}").contains("SECRET"));
    }
}
