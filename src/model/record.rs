//! [`EncryptedRecord`]: one `chatdata` entry of a `GetChatData` response, as WeCom sends it.

use serde::{Deserialize, Serialize};

/// One archived message before decryption.
///
/// ```json
/// {"seq": 2051, "msgid": "7461930355917385432_1714030123_external", "publickey_ver": 2,
///  "encrypt_random_key": "<base64 RSA block>", "encrypt_chat_msg": "<DecryptData input>"}
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedRecord {
    /// Position in the corp's archive; the pull cursor.
    pub seq: u64,
    /// Unique message id: the dedupe key.
    pub msgid: String,
    /// Version of the corp public key that wrapped this record's key.
    pub publickey_ver: u32,
    /// Base64 of the RSA-2048 PKCS#1 v1.5 wrapped `encrypt_key`.
    pub encrypt_random_key: String,
    /// The ciphertext for `DecryptData`.
    pub encrypt_chat_msg: String,
}

impl std::fmt::Debug for EncryptedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload is opaque and long: show its size, not its text.
        f.debug_struct("EncryptedRecord")
            .field("seq", &self.seq)
            .field("msgid", &self.msgid)
            .field("publickey_ver", &self.publickey_ver)
            .field(
                "encrypt_chat_msg",
                &format_args!("<{} chars>", self.encrypt_chat_msg.len()),
            )
            .finish()
    }
}

/// A `GetChatData` response body: `{"errcode":0,"errmsg":"ok","chatdata":[...]}`.
///
/// Records are kept as raw JSON values so that one malformed entry does not sink the page:
/// each is deserialised on its own and a failure becomes a dead letter.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatDataPage {
    /// WeCom's error code; absent means 0.
    #[serde(default)]
    pub errcode: i64,
    /// WeCom's error message.
    #[serde(default)]
    pub errmsg: String,
    /// The records of this page.
    #[serde(default)]
    pub chatdata: Vec<serde_json::Value>,
}

/// Best-effort `(seq, msgid)` of a malformed entry, so that its dead letter names it.
pub fn identify(v: &serde_json::Value) -> (Option<u64>, Option<String>) {
    let seq = v.get("seq").and_then(|s| {
        s.as_u64()
            .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
    });
    let msgid = v.get("msgid").and_then(|m| m.as_str()).map(str::to_owned);
    (seq, msgid)
}
