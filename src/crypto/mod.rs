//! Cryptography: pure functions, no I/O, no threads.
//!
//! * [`keyring`]: `publickey_ver` → RSA private key.
//! * [`unwrap`]: RSA-2048 PKCS#1 v1.5 unwrap of `encrypt_random_key`, with pluggable backends.
//! * [`message`]: native, byte-exact `DecryptData` (and its inverse, for the simulator and tests).
//! * [`msgcrypt`]: WXBizMsgCrypt, the signature and AES of WeCom callbacks.

pub mod keyring;
pub mod message;
pub mod msgcrypt;
pub mod unwrap;
