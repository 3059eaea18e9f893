//! WXBizMsgCrypt against the cross-checked vectors in `fixtures/callback.json` (spec
//! `auth-callback.md` §2 and §5), plus round trips, redaction and a no-panic sweep.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;
use wecom_archive::crypto::msgcrypt::{decode_encoding_aes_key, MsgCrypt, MsgCryptError};

fn fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/callback.json");
    let text = std::fs::read_to_string(path).expect("read fixtures/callback.json");
    serde_json::from_str(&text).expect("parse fixtures/callback.json")
}

fn array<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {}", v["name"]))
}

fn u(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {}", v["name"])) as usize
}

fn unhex(h: &str) -> Vec<u8> {
    assert!(h.len().is_multiple_of(2), "odd hex length");
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

fn crypto_for(v: &Value) -> MsgCrypt {
    MsgCrypt::new(s(v, "token"), s(v, "encoding_aes_key")).expect("valid key")
}

#[test]
fn vectors_sign_decrypt_encrypt_reply() {
    let fx = fixtures();
    let vectors = array(&fx, "vectors");
    assert_eq!(vectors.len(), 18);
    let (mut post, mut get, mut reply) = (0, 0, 0);
    for v in vectors {
        let name = s(v, "name");
        let c = crypto_for(v);
        let (ts, nonce, enc, rid) = (
            s(v, "timestamp"),
            s(v, "nonce"),
            s(v, "encrypt"),
            s(v, "receiveid"),
        );
        let plaintext = s(v, "plaintext");
        let random: [u8; 16] = unhex(s(v, "random_hex"))
            .try_into()
            .expect("16-byte random");

        let key = decode_encoding_aes_key(s(v, "encoding_aes_key")).unwrap();
        assert_eq!(key.as_slice(), unhex(s(v, "aes_key_hex")), "{name}: key");
        assert_eq!(&key[..16], unhex(s(v, "iv_hex")), "{name}: iv");

        assert_eq!(
            c.signature(ts, nonce, enc),
            s(v, "msg_signature"),
            "{name}: signature"
        );
        assert_eq!(
            c.encrypt_with_random(plaintext.as_bytes(), rid, random),
            enc,
            "{name}: encrypt"
        );

        let d = c
            .verify_and_decrypt(s(v, "msg_signature"), ts, nonce, enc, &[rid])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.msg_str().unwrap(), plaintext, "{name}");
        assert_eq!(d.receiveid, rid, "{name}");
        assert_eq!(d.msg.len(), u(v, "msg_len"), "{name}: msg_len");
        let padded = unhex(s(v, "decrypted_padded_hex"));
        let pad = u(v, "pad_len");
        assert_eq!(
            usize::from(*padded.last().unwrap()),
            pad,
            "{name}: pad byte"
        );
        assert_eq!(padded.len() % 32, 0, "{name}: 32-byte blocks");
        assert_eq!(
            padded.len(),
            20 + d.msg.len() + rid.len() + pad,
            "{name}: layout"
        );

        match s(v, "kind") {
            "post" => post += 1,
            "get_echostr" => {
                assert_eq!(
                    d.msg_str().unwrap(),
                    s(v, "expected_response_body"),
                    "{name}"
                );
                get += 1;
            }
            "reply" => {
                let xml = c.reply_xml_with_random(plaintext.as_bytes(), rid, ts, nonce, random);
                assert_eq!(xml, s(v, "reply_xml"), "{name}: reply xml");
                // The random variant must be a valid envelope too: sign and decrypt what it holds.
                let xml = c.reply_xml(plaintext.as_bytes(), rid, ts, nonce);
                let inner = between(&xml, "<Encrypt><![CDATA[", "]]></Encrypt>");
                let sig = between(&xml, "<MsgSignature><![CDATA[", "]]></MsgSignature>");
                let back = c.verify_and_decrypt(sig, ts, nonce, inner, &[rid]).unwrap();
                assert_eq!(back.msg_str().unwrap(), plaintext);
                reply += 1;
            }
            other => panic!("{name}: unknown kind {other}"),
        }
    }
    assert_eq!((post, get, reply), (15, 2, 1));
}

fn between<'a>(hay: &'a str, start: &str, end: &str) -> &'a str {
    let from = hay.find(start).expect("start tag") + start.len();
    let to = from + hay[from..].find(end).expect("end tag");
    &hay[from..to]
}

#[test]
fn independent_ciphertexts_decrypt() {
    let fx = fixtures();
    let mut count = 0;
    let mut oracles = BTreeSet::new();
    for v in array(&fx, "vectors") {
        let c = crypto_for(v);
        let rid = s(v, "receiveid");
        let ind = v["independent_ciphertexts"]
            .as_object()
            .expect("independent_ciphertexts");
        assert!(!ind.is_empty());
        for (oracle, ct) in ind {
            let d = c
                .verify_and_decrypt(
                    s(ct, "msg_signature"),
                    s(v, "timestamp"),
                    s(v, "nonce"),
                    s(ct, "encrypt"),
                    &[rid],
                )
                .unwrap_or_else(|e| panic!("{} / {oracle}: {e}", s(v, "name")));
            assert_eq!(d.msg_str().unwrap(), s(v, "plaintext"));
            assert_eq!(d.receiveid, rid);
            oracles.insert(oracle.clone());
            count += 1;
        }
    }
    assert_eq!(count, 36);
    assert_eq!(oracles.len(), 2);
}

#[test]
fn official_vectors() {
    let fx = fixtures();
    let vectors = array(&fx, "official_vectors");
    assert_eq!(vectors.len(), 4);
    for v in vectors {
        let name = s(v, "name");
        let c = crypto_for(v);
        let (ts, nonce, enc, rid) = (
            s(v, "timestamp"),
            s(v, "nonce"),
            s(v, "encrypt"),
            s(v, "receiveid"),
        );
        assert_eq!(c.signature(ts, nonce, enc), s(v, "msg_signature"), "{name}");
        let d = c
            .verify_and_decrypt(s(v, "msg_signature"), ts, nonce, enc, &[rid])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let exp = &v["decrypted"];
        assert_eq!(d.msg_str().unwrap(), s(exp, "msg"), "{name}");
        assert_eq!(d.msg.len(), u(exp, "msg_len"), "{name}");
        assert_eq!(d.receiveid, s(exp, "receiveid"), "{name}");
        // Re-encrypting with the recorded random prefix reproduces Tencent's ciphertext.
        let random: [u8; 16] = unhex(s(exp, "random_hex")).try_into().unwrap();
        assert_eq!(c.encrypt_with_random(&d.msg, rid, random), enc, "{name}");
    }
}

#[test]
fn official_key_is_noncanonical_and_equals_canonical_spelling() {
    let a = decode_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
    let b = decode_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2A").unwrap();
    assert_eq!(*a, *b);
}

#[test]
fn negative_cases() {
    let fx = fixtures();
    let cases = array(&fx, "negative_cases");
    assert_eq!(cases.len(), 12);
    let mut seen = BTreeSet::new();
    for v in cases {
        let name = s(v, "name");
        let c = crypto_for(v);
        let out = c.verify_and_decrypt(
            s(v, "msg_signature"),
            s(v, "timestamp"),
            s(v, "nonce"),
            s(v, "encrypt"),
            &[s(v, "receiveid_configured")],
        );
        match s(v, "strict_expectation") {
            "accept" => {
                let d = out.unwrap_or_else(|e| panic!("{name}: expected accept, got {e}"));
                assert!(d.msg_str().unwrap().starts_with("<xml>"), "{name}");
                assert_eq!(d.receiveid, "wwa1b2c3d4e5f60718", "{name}");
            }
            "reject" => {
                let err = out.expect_err(name);
                let ok = match name {
                    "receiveid_mismatch" => {
                        err == MsgCryptError::ReceiveIdMismatch {
                            received: "wwa1b2c3d4e5f60718".into(),
                        }
                    }
                    "bad_signature" | "uppercase_signature" => {
                        err == MsgCryptError::SignatureMismatch
                    }
                    "pad_byte_zero" => err == MsgCryptError::BadPadding { last_byte: 0 },
                    "pad_byte_33" => err == MsgCryptError::BadPadding { last_byte: 0x21 },
                    "pad_bytes_inconsistent" => matches!(err, MsgCryptError::BadPadding { .. }),
                    "msg_len_too_large" => matches!(err, MsgCryptError::MsgLenOutOfRange { .. }),
                    "ciphertext_not_block_multiple" => {
                        matches!(err, MsgCryptError::CiphertextLength { len: 59 })
                    }
                    other => panic!("unclassified reject case {other}"),
                };
                assert!(ok, "{name}: wrong error {err:?}");
            }
            other => panic!("{name}: unknown expectation {other}"),
        }
        seen.insert(name);
    }
    let expected: BTreeSet<&str> = [
        "valid_control",
        "receiveid_mismatch",
        "bad_signature",
        "uppercase_signature",
        "pad_byte_zero",
        "pad_byte_33",
        "pad_bytes_inconsistent",
        "pkcs7_block16_padding",
        "msg_len_too_large",
        "base64_no_padding",
        "base64_with_newlines",
        "ciphertext_not_block_multiple",
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
}

fn random_receiveid(rng: &mut StdRng) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let n = rng.gen_range(0..=40);
    (0..n)
        .map(|_| char::from(ALNUM[rng.gen_range(0..ALNUM.len())]))
        .collect()
}

#[test]
fn round_trip_lengths_0_to_300() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let c = MsgCrypt::new(
        "tok3nSelfBuilt",
        "XVq3xNL6A3C7eyC6YDrGdnGVNjvBpABlKGOdcUCXhSi",
    )
    .unwrap();
    let mut n = 0;
    for len in 0..=300usize {
        let mut msg = vec![0u8; len];
        rng.fill_bytes(&mut msg);
        let rid = random_receiveid(&mut rng);
        let enc = c.encrypt(&msg, &rid);
        assert_eq!(decoded_len(&enc) % 32, 0, "len {len}: 32-byte padding");
        let sig = c.signature("1700000000", "n", &enc);
        let d = c
            .verify_and_decrypt(&sig, "1700000000", "n", &enc, &["other", &rid])
            .unwrap();
        assert_eq!(d.msg, msg, "len {len}");
        assert_eq!(d.receiveid, rid);
        n += 1;
    }
    assert_eq!(n, 301);
}

fn decoded_len(b64: &str) -> usize {
    let pads = b64.bytes().rev().take_while(|&b| b == b'=').count();
    b64.len() / 4 * 3 - pads
}

#[test]
fn pad_sweep_1_to_32() {
    let c = MsgCrypt::new("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
    let rid = "wx5823bf96d3bd56c7";
    let mut pads = BTreeSet::new();
    for len in 0..64usize {
        let msg = vec![b'a'; len];
        let body = 20 + len + rid.len();
        let pad = 32 - body % 32;
        let enc = c.encrypt_with_random(&msg, rid, [len as u8; 16]);
        assert_eq!(decoded_len(&enc), body + pad, "len {len}");
        let d = c.decrypt(&enc, &[rid]).unwrap();
        assert_eq!(d.msg, msg);
        pads.insert(pad);
    }
    assert_eq!(pads, (1..=32).collect::<BTreeSet<_>>());
}

#[test]
fn secrets_never_printed() {
    let token = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
    let key = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
    let c = MsgCrypt::new(token, key).unwrap();
    let mut texts = vec![format!("{c:?}"), format!("{c:#?}")];
    let enc = c.encrypt(b"<xml>hello</xml>", "ww1436e0e65a779aee");
    let sig = c.signature("1", "2", &enc);
    let mut bad_pad = vec![0u8; 32];
    bad_pad[0] = 1;
    let errors = [
        MsgCrypt::new(token, &key[..42]).unwrap_err(),
        MsgCrypt::new(token, &format!("{}!", &key[..42])).unwrap_err(),
        c.verify_and_decrypt(
            "0".repeat(40).as_str(),
            "1",
            "2",
            &enc,
            &["ww1436e0e65a779aee"],
        )
        .unwrap_err(),
        c.verify_and_decrypt(&sig, "1", "2", &enc, &["someone-else"])
            .unwrap_err(),
        c.decrypt("%%%", &[""]).unwrap_err(),
        c.decrypt("AAAA", &[""]).unwrap_err(),
        c.decrypt(&wecom_b64(&bad_pad), &[""]).unwrap_err(),
    ];
    for e in &errors {
        texts.push(format!("{e}"));
        texts.push(format!("{e:?}"));
    }
    let key_bytes = decode_encoding_aes_key(key).unwrap();
    let key_hex: String = key_bytes.iter().map(|b| format!("{b:02x}")).collect();
    for t in &texts {
        assert!(!t.contains(token), "token leaked: {t}");
        assert!(!t.contains(key), "key leaked: {t}");
        assert!(!t.contains(&key_hex), "key bytes leaked: {t}");
        assert!(!t.contains("hello"), "plaintext leaked: {t}");
    }
    assert_eq!(texts[0], "MsgCrypt { .. }");
}

/// Standard padded base64, for hand-made ciphertexts.
fn wecom_b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn fuzz_decrypt_never_panics() {
    let mut rng = StdRng::seed_from_u64(0xf022);
    let c = MsgCrypt::new("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
    let rid = "wx5823bf96d3bd56c7";
    let valid: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let enc = c.encrypt(&vec![b'x'; i * 37], rid);
            base64_decode(&enc)
        })
        .collect();
    let b64_chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n!";
    let mut codes = BTreeSet::new();
    let mut accepted = 0;
    for i in 0..2000 {
        let input: String = match i % 5 {
            // Random text over the base64 alphabet plus junk.
            0 => {
                let n = rng.gen_range(0..200);
                (0..n)
                    .map(|_| char::from(b64_chars[rng.gen_range(0..b64_chars.len())]))
                    .collect()
            }
            // Random whole-block ciphertexts.
            1 => {
                let mut ct = vec![0u8; 16 * rng.gen_range(0..8)];
                rng.fill_bytes(&mut ct);
                wecom_b64(&ct)
            }
            // Bit flips in valid ciphertexts: reach padding, msg_len and receiveid checks.
            2 | 3 => {
                let mut ct = valid[rng.gen_range(0..valid.len())].clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..ct.len());
                    ct[at] ^= 1 << rng.gen_range(0..8);
                }
                wecom_b64(&ct)
            }
            // Truncated or extended valid ciphertexts.
            _ => {
                let mut ct = valid[rng.gen_range(0..valid.len())].clone();
                if rng.gen_bool(0.5) {
                    ct.truncate(rng.gen_range(0..ct.len()));
                } else {
                    let mut extra = vec![0u8; rng.gen_range(1..40)];
                    rng.fill_bytes(&mut extra);
                    ct.extend(extra);
                }
                wecom_b64(&ct)
            }
        };
        match c.decrypt(&input, &[rid]) {
            Ok(d) => {
                assert_eq!(d.receiveid, rid);
                accepted += 1;
            }
            Err(e) => {
                codes.insert(e.code());
            }
        }
        let sig = c.signature("1", "2", &input);
        let _ = c.verify_and_decrypt(&sig, "1", "2", &input, &[rid]);
    }
    // The sweep must actually reach the deep checks, not stop at base64.
    for code in [-40005, -40007, -40008, -40010] {
        assert!(
            codes.contains(&code),
            "code {code} never produced: {codes:?}"
        );
    }
    assert!(accepted < 2000);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
