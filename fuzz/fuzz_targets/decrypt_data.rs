//! Native DecryptData (`crypto::message`): both AES layers, the SDK's lenient base64, the
//! `SdkKeyInfo` protobuf and the junk framing.
//!
//! The first byte picks a mode: raw `(encrypt_key, encrypt_chat_msg)`; the protobuf alone; a
//! valid outer layer around arbitrary `SdkKeyInfo` bytes (so framing and the inner layer are
//! reached); or a round trip of `encrypt` → `decrypt` with fuzzed framing, which must give the
//! plaintext back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use wecom_archive::crypto::message::{self, DecryptError, Framing};
use wecom_archive_fuzz::{sdk_layer, Input};

fn touch(result: &Result<Vec<u8>, DecryptError>) {
    if let Err(e) = result {
        // Every error must classify and print (the dead-letter path does both).
        let _ = (e.sdk_outcome(), e.code(), e.kind(), e.to_string());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 4 {
        0 => {
            let (key, msg) = input.rest_split(b'\n');
            touch(&message::decrypt(key, msg));
        }
        1 => {
            if let Err(e) = message::parse_key_info(input.rest()) {
                let _ = (e.code(), e.kind(), e.to_string());
            }
        }
        2 => {
            let info = input.prefixed();
            let mut iv = [0u8; 16];
            iv[0] = input.byte();
            let msg = input.rest();
            // The outer key is `msg[13..45]` of the message as the C API sees it (up to NUL).
            let c_msg = &msg[..msg.iter().position(|&b| b == 0).unwrap_or(msg.len())];
            let outer = c_msg.get(13..c_msg.len().min(45)).unwrap_or(&[]);
            let encrypt_key = sdk_layer(outer, iv, info);
            touch(&message::decrypt(encrypt_key.as_bytes(), msg));
        }
        _ => {
            let pre_len = usize::from(input.byte() % 64);
            let end_len = usize::from(input.byte() % 64);
            let s_raw = usize::from(input.u16());
            let seed = input.u64();
            let k1 = input.prefixed();
            let plaintext = input.rest();
            // Body = base64(IV ‖ ciphertext); s_len must lie inside it.
            let body_len = (16 + (plaintext.len() / 16 + 1) * 16).div_ceil(3) * 4;
            let framing = Framing {
                pre_len: Some(pre_len),
                s_len: Some(1 + s_raw % body_len),
                end_len: Some(end_len),
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let enc = message::encrypt(&mut rng, k1, plaintext, &framing);
            let got = message::decrypt(enc.encrypt_key.as_bytes(), enc.encrypt_msg.as_bytes());
            assert_eq!(
                got.as_deref().ok(),
                Some(plaintext),
                "round trip failed: {:?} {framing:?}",
                got.as_ref().err()
            );
        }
    }
});
