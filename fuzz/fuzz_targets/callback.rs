//! The callback path of `serve` (`crypto::msgcrypt`, `serve::callback::{xml, events}`): the
//! envelope XML, signature check, WXBizMsgCrypt decryption, the decrypted XML and the event
//! parser, in the order the server runs them.
//!
//! Modes: a raw POST body; a decrypted plaintext; a signed envelope built from fuzzed parts
//! (must verify and decrypt back); arbitrary AES plaintext blocks (padding, `msg_len`,
//! receiveid); and the `EncodingAESKey` / token themselves.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wecom_archive::crypto::msgcrypt::{decode_encoding_aes_key, MsgCrypt, MsgCryptError};
use wecom_archive::serve::callback::events::{dedupe_key, Event};
use wecom_archive::serve::callback::xml;
use wecom_archive_fuzz::{b64, cbc_encrypt_blocks, Input};

const TOKEN: &str = "tok3nSelfBuilt";
const AES_KEY: &str = "XVq3xNL6A3C7eyC6YDrGdnGVNjvBpABlKGOdcUCXhSi";
const RECEIVEID: &str = "wwa1b2c3d4e5f60718";

static CRYPT: LazyLock<MsgCrypt> =
    LazyLock::new(|| MsgCrypt::new(TOKEN, AES_KEY).expect("fixture key"));

fn touch(e: &MsgCryptError) {
    let _ = (e.code(), e.to_string());
}

/// What the server does with a decrypted message.
fn handle(msg: &[u8], receiveid: &str) {
    let Ok(text) = std::str::from_utf8(msg) else {
        return;
    };
    let fields = match xml::parse(text) {
        Ok(f) => f,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = fields.iter().count();
    match Event::parse(&fields, receiveid) {
        Ok(ev) => {
            let _ = (ev.kind(), ev.suite_id(), format!("{ev:?}"));
            let _ = dedupe_key(receiveid, &fields, msg);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Maps `bytes` into `alphabet` (values as WeCom sends them, plus the XML specials).
fn within(bytes: &[u8], alphabet: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| char::from(alphabet[usize::from(b) % alphabet.len()]))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 5 {
        0 => {
            let Ok(body) = std::str::from_utf8(input.rest()) else {
                return;
            };
            let Ok(envelope) = xml::parse(body) else {
                return;
            };
            let Some(encrypt) = envelope.non_empty("Encrypt") else {
                return;
            };
            let get = |k| envelope.get(k).unwrap_or_default();
            if let Err(e) =
                CRYPT.verify_signature(get("MsgSignature"), get("TimeStamp"), get("Nonce"), encrypt)
            {
                touch(&e);
            }
            // The signature cannot be forged by the fuzzer: decrypt regardless.
            match CRYPT.decrypt_with(encrypt, |rid| rid == RECEIVEID || rid.is_empty()) {
                Ok(d) => handle(&d.msg, &d.receiveid),
                Err(e) => touch(&e),
            }
        }
        1 => handle(input.rest(), RECEIVEID),
        2 => {
            let receiveid = String::from_utf8_lossy(input.prefixed()).into_owned();
            let timestamp = within(input.prefixed(), b"0123456789<&>;");
            // The envelope escapes both; `]]>` and `&` test that.
            let nonce = within(
                input.prefixed(),
                b"abcdefghijklmnopqrstuvwxyz0123456789]>&<",
            );
            let mut random = [0u8; 16];
            random[0] = input.byte();
            let msg = input.rest();
            let body = CRYPT.reply_xml_with_random(msg, &receiveid, &timestamp, &nonce, random);
            let envelope = xml::parse(&body).expect("our own envelope parses");
            let get = |k| envelope.get(k).unwrap_or_default();
            let d = CRYPT
                .verify_and_decrypt_with(
                    get("MsgSignature"),
                    get("TimeStamp"),
                    get("Nonce"),
                    get("Encrypt"),
                    |rid| rid == receiveid,
                )
                .expect("a signed envelope verifies and decrypts");
            assert_eq!(d.msg, msg);
            handle(&d.msg, &d.receiveid);
        }
        3 => {
            let key = decode_encoding_aes_key(AES_KEY).expect("fixture key");
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&key[..16]);
            let ct = cbc_encrypt_blocks(&key, &iv, input.rest());
            let mut text = b64(&ct);
            if ct.first().is_some_and(|b| b & 1 == 1) {
                text = text.trim_end_matches('=').to_owned();
            }
            match CRYPT.decrypt_with(&text, |_| true) {
                Ok(d) => handle(&d.msg, &d.receiveid),
                Err(e) => touch(&e),
            }
        }
        _ => {
            let token = String::from_utf8_lossy(input.prefixed()).into_owned();
            let key = String::from_utf8_lossy(input.rest());
            match MsgCrypt::new(&token, &key) {
                Ok(c) => {
                    let enc = c.encrypt_with_random(b"<xml/>", "", [0; 16]);
                    let sig = c.signature("1", "n", &enc);
                    c.verify_and_decrypt(&sig, "1", "n", &enc, &[""])
                        .expect("own ciphertext decrypts");
                }
                Err(e) => touch(&e),
            }
        }
    }
});
