//! `publickey_ver` → RSA private key.
//!
//! WeCom wraps each record's key with the public key whose version the admin console shows;
//! after a rotation old records still name old versions, so every historic key is kept side
//! by side. Keys load from PEM, both PKCS#1 (`BEGIN RSA PRIVATE KEY`, what `openssl genrsa`
//! writes) and PKCS#8 (`BEGIN PRIVATE KEY`). The PEM and DER bytes are zeroized as soon as the
//! backend holds the key, and the backends clear their key memory when it is freed. Nothing
//! here prints key material: `Debug` shows versions and the backend only.

use std::collections::BTreeMap;
use std::path::Path;

use pkcs8::der::Encode;
use zeroize::Zeroizing;

use super::unwrap::{unwrap_random_key, Backend, KeyLoadError, RsaDecryptor, UnwrapError};

/// The private keys of one corp, by `publickey_ver`.
pub struct Keyring {
    backend: Backend,
    keys: BTreeMap<u32, Box<dyn RsaDecryptor>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("backend", &self.backend.name())
            .field("versions", &self.versions())
            .finish()
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new(Backend::default())
    }
}

impl Keyring {
    /// An empty keyring whose keys will be held by `backend`.
    pub fn new(backend: Backend) -> Self {
        Keyring {
            backend,
            keys: BTreeMap::new(),
        }
    }

    /// The backend that holds the keys.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Adds (or replaces) the key for `version` from PEM text (PKCS#1 or PKCS#8).
    pub fn add_pem(&mut self, version: u32, pem: &[u8]) -> Result<(), KeyLoadError> {
        let der = pem_to_pkcs8_der(pem)?;
        // aws-lc refuses keys under 2048 bits with a bare "TooSmall": say what is wrong first.
        if let Some(bits) = modulus_bits(&der) {
            if bits.div_ceil(8) != 256 {
                return Err(KeyLoadError::Size { bits });
            }
        }
        let key = self.backend.load_pkcs8(&der)?;
        if key.modulus_bytes() != 256 {
            return Err(KeyLoadError::Size {
                bits: key.modulus_bytes() * 8,
            });
        }
        self.keys.insert(version, key);
        Ok(())
    }

    /// Adds the key for `version` from a PEM file.
    pub fn add_pem_file(&mut self, version: u32, path: &Path) -> Result<(), KeyLoadError> {
        let pem = Zeroizing::new(std::fs::read(path).map_err(|source| KeyLoadError::Io {
            path: path.to_owned(),
            source,
        })?);
        self.add_pem(version, &pem)
    }

    /// The loaded versions, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Number of loaded keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for `version`.
    pub fn get(&self, version: u32) -> Result<&dyn RsaDecryptor, UnwrapError> {
        self.keys
            .get(&version)
            .map(|k| k.as_ref())
            .ok_or_else(|| UnwrapError::UnknownVersion {
                version,
                known: self.versions(),
            })
    }

    /// Unwraps a record's `encrypt_random_key` with the key of its `publickey_ver`.
    pub fn unwrap(
        &self,
        version: u32,
        encrypt_random_key: &str,
    ) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
        unwrap_random_key(self.get(version)?, encrypt_random_key)
    }
}

/// Parses a PEM private key (PKCS#1 or PKCS#8) into PKCS#8 DER, zeroized on drop.
pub fn pem_to_pkcs8_der(pem: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyLoadError> {
    let (label, der) = pkcs8::der::pem::decode_vec(trim_ascii(pem))
        .map_err(|e| KeyLoadError::Pem(e.to_string()))?;
    let der = Zeroizing::new(der);
    match label {
        "PRIVATE KEY" => {
            // Validate the envelope here so the error says which format was malformed.
            pkcs8::PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| {
                KeyLoadError::Malformed {
                    format: "PKCS#8",
                    detail: e.to_string(),
                }
            })?;
            Ok(der)
        }
        "RSA PRIVATE KEY" => {
            pkcs1::RsaPrivateKey::try_from(der.as_slice()).map_err(|e| {
                KeyLoadError::Malformed {
                    format: "PKCS#1",
                    detail: e.to_string(),
                }
            })?;
            let info = pkcs8::PrivateKeyInfo::new(pkcs1::ALGORITHM_ID, &der);
            let out = info.to_der().map_err(|e| KeyLoadError::Malformed {
                format: "PKCS#1",
                detail: e.to_string(),
            })?;
            Ok(Zeroizing::new(out))
        }
        "ENCRYPTED PRIVATE KEY" => Err(KeyLoadError::Label(
            "ENCRYPTED PRIVATE KEY (decrypt it first: openssl pkey -in KEY -out PLAIN)".into(),
        )),
        other => Err(KeyLoadError::Label(other.to_string())),
    }
}

/// The modulus size in bits of a PKCS#8 RSA private key, when the DER parses (otherwise the
/// backend reports what is wrong).
fn modulus_bits(pkcs8_der: &[u8]) -> Option<usize> {
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).ok()?;
    let key = pkcs1::RsaPrivateKey::try_from(info.private_key).ok()?;
    let n = key.modulus.as_bytes();
    let first = *n.first()?;
    Some((n.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_1024: &[u8] = include_bytes!("../../fixtures/rsa_test_1024.pem");

    #[test]
    fn a_1024_bit_key_gets_the_rsa_2048_hint_with_every_backend() {
        for &backend in Backend::available() {
            let e = Keyring::new(backend).add_pem(1, KEY_1024).unwrap_err();
            assert!(
                matches!(e, KeyLoadError::Size { bits: 1024 }),
                "{backend:?}: {e}"
            );
            assert!(e.to_string().contains("RSA-2048"), "{e}");
        }
    }
}
