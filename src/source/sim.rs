//! Encrypting records exactly as WeCom does: the building block of the simulator, the sample
//! dump in `fixtures/`, the benches and the tests.

use rand::{Rng, RngCore};

use crate::crypto::message::{encrypt, Framing};
use crate::crypto::unwrap::WrapKey;
use crate::model::record::EncryptedRecord;

/// Encrypts `plaintext` into a `chatdata` record: random `k1` and framing, `encrypt_key`
/// RSA-wrapped with the corp public key of version `publickey_ver`.
pub fn encrypt_record<R: RngCore>(
    rng: &mut R,
    wrap: &WrapKey,
    publickey_ver: u32,
    seq: u64,
    msgid: &str,
    plaintext: &[u8],
) -> EncryptedRecord {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let k1: Vec<u8> = (0..32).map(|_| ALPHABET[rng.gen_range(0..64)]).collect();
    let e = encrypt(rng, &k1, plaintext, &Framing::default());
    EncryptedRecord {
        seq,
        msgid: msgid.to_owned(),
        publickey_ver,
        encrypt_random_key: wrap.wrap(e.encrypt_key.as_bytes()),
        encrypt_chat_msg: e.encrypt_msg,
    }
}
