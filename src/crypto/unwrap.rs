//! RSA-2048 PKCS#1 v1.5 unwrap of `encrypt_random_key`.
//!
//! Each record's message key is wrapped with the corp's RSA public key of version
//! `publickey_ver`. Unwrapping it is the most expensive step of the whole pipeline (one RSA
//! private-key operation per message), so the backend is pluggable and measured
//! (`cargo bench --bench crypto`):
//!
//! * [`Backend::AwsLc`] (default): aws-lc-rs, the fastest measured here.
//! * [`Backend::RustCrypto`] (feature `rustcrypto`): the pure-Rust `rsa` crate.
//!
//! Both take the same PKCS#8 DER and must agree on every input (tested).

use base64::Engine as _;
use zeroize::Zeroizing;

/// Largest RSA modulus we accept, in bytes (8192 bits); bounds stack buffers.
pub const MAX_MODULUS_BYTES: usize = 1024;

/// An RSA implementation able to load a private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// aws-lc-rs (AWS-LC): the default and fastest.
    #[default]
    AwsLc,
    /// RustCrypto `rsa` (pure Rust); needs the `rustcrypto` feature.
    RustCrypto,
}

impl Backend {
    /// Every backend compiled into this build.
    pub fn available() -> &'static [Backend] {
        #[cfg(feature = "rustcrypto")]
        {
            &[Backend::AwsLc, Backend::RustCrypto]
        }
        #[cfg(not(feature = "rustcrypto"))]
        {
            &[Backend::AwsLc]
        }
    }

    /// The backend's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::AwsLc => "aws-lc",
            Backend::RustCrypto => "rustcrypto",
        }
    }

    /// Loads a private key from PKCS#8 DER (see [`crate::crypto::keyring`] for PEM).
    pub fn load_pkcs8(self, der: &[u8]) -> Result<Box<dyn RsaDecryptor>, KeyLoadError> {
        match self {
            Backend::AwsLc => Ok(Box::new(AwsLcKey::from_pkcs8(der)?)),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => Ok(Box::new(RustCryptoKey::from_pkcs8(der)?)),
            #[cfg(not(feature = "rustcrypto"))]
            Backend::RustCrypto => Err(KeyLoadError::BackendUnavailable("rustcrypto")),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aws-lc" | "awslc" | "aws-lc-rs" => Ok(Backend::AwsLc),
            "rustcrypto" | "rsa" => Ok(Backend::RustCrypto),
            other => Err(format!(
                "unknown RSA backend {other:?} (expected aws-lc or rustcrypto)"
            )),
        }
    }
}

/// Why a private key could not be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// The PEM text is not a PEM document.
    #[error("not a PEM document: {0}")]
    Pem(String),
    /// The PEM label is not an unencrypted RSA private key.
    #[error(
        "PEM label {0:?} is not a private key (expected \"RSA PRIVATE KEY\" or \"PRIVATE KEY\")"
    )]
    Label(String),
    /// The DER inside does not parse as the label says.
    #[error("malformed {format} key: {detail}")]
    Malformed {
        /// `PKCS#1` or `PKCS#8`.
        format: &'static str,
        /// The parser's message (no key bytes).
        detail: String,
    },
    /// The backend rejected the key (wrong algorithm, unsupported size, inconsistent key).
    #[error("{backend} rejected the key: {detail}")]
    Rejected {
        /// Backend name.
        backend: &'static str,
        /// Why (no key bytes).
        detail: String,
    },
    /// WeCom uses RSA-2048; anything else is almost surely the wrong key.
    #[error("the key is {bits} bits; WeCom session-archive keys are RSA-2048 (did you generate a 1024-bit Java default key?)")]
    Size {
        /// The modulus size.
        bits: usize,
    },
    /// The backend was not compiled in.
    #[error("RSA backend {0} is not compiled in (enable the cargo feature `rustcrypto`)")]
    BackendUnavailable(&'static str),
    /// Reading the key file failed.
    #[error("cannot read key file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why `encrypt_random_key` could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// No private key for this `publickey_ver` (the SDK's 10007).
    #[error("no private key for publickey_ver {version} (SDK 10007); loaded versions: {known:?}")]
    UnknownVersion {
        /// The record's `publickey_ver`.
        version: u32,
        /// The versions the keyring holds.
        known: Vec<u32>,
    },
    /// `encrypt_random_key` is not valid base64.
    #[error("encrypt_random_key is not valid base64: {0}")]
    Base64(String),
    /// The ciphertext length does not match the key's modulus.
    #[error("encrypt_random_key decodes to {got} bytes, the RSA key needs {want}")]
    Length {
        /// Decoded length.
        got: usize,
        /// The modulus length.
        want: usize,
    },
    /// PKCS#1 v1.5 decryption failed: bad padding, usually the wrong key for this version.
    #[error("RSA PKCS#1 v1.5 decryption failed (wrong private key for this publickey_ver, or corrupted data)")]
    Decrypt,
}

impl UnwrapError {
    /// A short stable name for this error class (used in dead letters and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            UnwrapError::UnknownVersion { .. } => "unknown_key_version",
            UnwrapError::Base64(_) => "random_key_base64",
            UnwrapError::Length { .. } => "random_key_length",
            UnwrapError::Decrypt => "rsa_padding",
        }
    }
}

/// One loaded RSA private key, able to undo PKCS#1 v1.5 encryption.
pub trait RsaDecryptor: Send + Sync {
    /// The backend that holds the key.
    fn backend(&self) -> Backend;
    /// Modulus length in bytes (256 for RSA-2048).
    fn modulus_bytes(&self) -> usize;
    /// Decrypts `ciphertext` (exactly [`Self::modulus_bytes`] long) into `out` (at least that
    /// long) and returns the plaintext length.
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, UnwrapError>;
}

/// Base64-decodes `encrypt_random_key` and RSA-decrypts it with `key`.
///
/// The result is the `encrypt_key` string that `DecryptData` takes; it is zeroized on drop.
pub fn unwrap_random_key(
    key: &dyn RsaDecryptor,
    encrypt_random_key: &str,
) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
    let mut ct = [0u8; MAX_MODULUS_BYTES];
    // Some dumps wrap long base64 lines; WeCom itself never does, so only strip whitespace
    // when there is some (the common path does not copy).
    let text = encrypt_random_key.trim();
    let n = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        decode_into(&clean, &mut ct)?
    } else {
        decode_into(text, &mut ct)?
    };
    let want = key.modulus_bytes();
    if n != want {
        return Err(UnwrapError::Length { got: n, want });
    }
    let mut out = Zeroizing::new(vec![0u8; want]);
    let len = key.decrypt_pkcs1v15(&ct[..n], &mut out)?;
    out.truncate(len);
    Ok(out)
}

fn decode_into(text: &str, buf: &mut [u8; MAX_MODULUS_BYTES]) -> Result<usize, UnwrapError> {
    if text.len() > MAX_MODULUS_BYTES / 3 * 4 + 4 {
        return Err(UnwrapError::Length {
            got: text.len() / 4 * 3,
            want: 256,
        });
    }
    base64::engine::general_purpose::STANDARD
        .decode_slice(text, buf)
        .map_err(|e| UnwrapError::Base64(e.to_string()))
}

/// An RSA private key held by aws-lc-rs.
pub struct AwsLcKey {
    key: aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey,
}

impl AwsLcKey {
    /// Loads a PKCS#8 DER private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyLoadError> {
        let key = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(der).map_err(|e| {
            KeyLoadError::Rejected {
                backend: "aws-lc",
                detail: e.to_string(),
            }
        })?;
        let key = aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey::new(key).map_err(|e| {
            KeyLoadError::Rejected {
                backend: "aws-lc",
                detail: e.to_string(),
            }
        })?;
        Ok(AwsLcKey { key })
    }
}

impl RsaDecryptor for AwsLcKey {
    fn backend(&self) -> Backend {
        Backend::AwsLc
    }

    fn modulus_bytes(&self) -> usize {
        self.key.key_size_bytes()
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, UnwrapError> {
        self.key
            .decrypt(ciphertext, out)
            .map(|pt| pt.len())
            .map_err(|_| UnwrapError::Decrypt)
    }
}

/// An RSA private key held by RustCrypto `rsa`.
#[cfg(feature = "rustcrypto")]
pub struct RustCryptoKey {
    key: rsa::RsaPrivateKey,
}

#[cfg(feature = "rustcrypto")]
impl RustCryptoKey {
    /// Loads a PKCS#8 DER private key (precomputes CRT values).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyLoadError> {
        use rsa::pkcs8::DecodePrivateKey;
        let mut key =
            rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| KeyLoadError::Rejected {
                backend: "rustcrypto",
                detail: e.to_string(),
            })?;
        key.precompute().map_err(|e| KeyLoadError::Rejected {
            backend: "rustcrypto",
            detail: e.to_string(),
        })?;
        Ok(RustCryptoKey { key })
    }
}

#[cfg(feature = "rustcrypto")]
impl RsaDecryptor for RustCryptoKey {
    fn backend(&self) -> Backend {
        Backend::RustCrypto
    }

    fn modulus_bytes(&self) -> usize {
        use rsa::traits::PublicKeyParts;
        self.key.size()
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, UnwrapError> {
        let pt = Zeroizing::new(
            self.key
                .decrypt(rsa::Pkcs1v15Encrypt, ciphertext)
                .map_err(|_| UnwrapError::Decrypt)?,
        );
        if pt.len() > out.len() {
            return Err(UnwrapError::Decrypt);
        }
        out[..pt.len()].copy_from_slice(&pt);
        Ok(pt.len())
    }
}

/// RSA public key for wrapping keys (the WeCom server's side; used by the simulator and tests).
pub struct WrapKey {
    key: aws_lc_rs::rsa::Pkcs1PublicEncryptingKey,
}

impl WrapKey {
    /// Loads a `PUBLIC KEY` (SubjectPublicKeyInfo) PEM, as `openssl rsa -pubout` writes.
    pub fn from_pem(pem: &str) -> Result<Self, KeyLoadError> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| KeyLoadError::Pem(e.to_string()))?;
        if label != "PUBLIC KEY" {
            return Err(KeyLoadError::Label(label.to_string()));
        }
        Self::from_spki_der(&der)
    }

    /// Loads a SubjectPublicKeyInfo DER public key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyLoadError> {
        let rejected = |e: &dyn std::fmt::Display| KeyLoadError::Rejected {
            backend: "aws-lc",
            detail: e.to_string(),
        };
        let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(der).map_err(|e| rejected(&e))?;
        let key = aws_lc_rs::rsa::Pkcs1PublicEncryptingKey::new(key).map_err(|e| rejected(&e))?;
        Ok(WrapKey { key })
    }

    /// Encrypts `encrypt_key` and returns base64, i.e. an `encrypt_random_key`.
    pub fn wrap(&self, encrypt_key: &[u8]) -> String {
        let mut out = vec![0u8; self.key.ciphertext_size()];
        let ct = self
            .key
            .encrypt(encrypt_key, &mut out)
            .expect("encrypt_key fits one RSA block");
        base64::engine::general_purpose::STANDARD.encode(ct)
    }
}
