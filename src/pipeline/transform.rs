//! The per-record transform: unwrap the key, decrypt, check and type the plaintext, screen it
//! with the rules.
//!
//! Pure and lock-free, so rayon can run it on every core.

use crate::compliance::findings::{screen, Finding};
use crate::compliance::rules::RuleSet;
use crate::crypto::keyring::Keyring;
use crate::crypto::message;
use crate::error::{RecordError, RecordErrorKind};
use crate::model::message::{parse, ChatMessage};
use crate::model::record::EncryptedRecord;
use crate::model::schema::{MAX_PUBLICKEY_VER, MAX_SEQ};

/// A record that decrypted to a chat message.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The record's seq.
    pub seq: u64,
    /// The key version that wrapped it.
    pub publickey_ver: u32,
    /// The exact decrypted plaintext.
    pub plaintext: String,
    /// The typed message.
    pub message: ChatMessage,
    /// The rules that fired on it.
    pub findings: Vec<Finding>,
}

/// Unwraps, decrypts, parses and screens one record (`rules`: `None` when no rules are configured).
///
/// Output that is not a JSON chat message counts as a failed decrypt: the cipher has no MAC,
/// so a wrong key "succeeds" with garbage about once in 256.
pub fn decode(
    keyring: &Keyring,
    rules: Option<&RuleSet>,
    rec: &EncryptedRecord,
) -> Result<Decoded, RecordError> {
    let fail = |kind: RecordErrorKind| RecordError {
        seq: Some(rec.seq),
        msgid: Some(rec.msgid.clone()),
        line: None,
        kind,
    };
    // The table's columns are signed (lake engines have no unsigned types): a record that
    // would not fit is named in the dead letters rather than written wrong.
    if rec.seq > MAX_SEQ {
        return Err(fail(RecordErrorKind::Malformed(format!(
            "seq {} exceeds {MAX_SEQ}, the largest the Int64 `seq` column holds",
            rec.seq
        ))));
    }
    if rec.publickey_ver > MAX_PUBLICKEY_VER {
        return Err(fail(RecordErrorKind::Malformed(format!(
            "publickey_ver {} exceeds {MAX_PUBLICKEY_VER}, the largest the Int32 \
             `publickey_ver` column holds",
            rec.publickey_ver
        ))));
    }
    let encrypt_key = keyring
        .unwrap(rec.publickey_ver, &rec.encrypt_random_key)
        .map_err(|e| fail(e.into()))?;
    let plain = message::decrypt(&encrypt_key, rec.encrypt_chat_msg.as_bytes())
        .map_err(|e| fail(e.into()))?;
    let message = parse(&plain).map_err(|e| fail(e.into()))?;
    // `parse` accepted it, so it is UTF-8.
    let plaintext = String::from_utf8(plain).map_err(|e| {
        fail(RecordErrorKind::Malformed(format!(
            "plaintext is not UTF-8: {e}"
        )))
    })?;
    let findings = rules.map_or_else(Vec::new, |r| screen(r, &message));
    Ok(Decoded {
        seq: rec.seq,
        publickey_ver: rec.publickey_ver,
        plaintext,
        message,
        findings,
    })
}
