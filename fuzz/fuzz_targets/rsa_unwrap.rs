//! RSA unwrap input handling (`crypto::unwrap`, `crypto::keyring`): `encrypt_random_key` text
//! (base64, whitespace, length checks) into the PKCS#1 v1.5 unwrap with the test key, a round
//! trip through the public key, and PEM key loading.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::unwrap::{UnwrapError, WrapKey};
use wecom_archive_fuzz::{b64, sprinkle_whitespace, Input};

static KEYRING: LazyLock<Keyring> = LazyLock::new(|| {
    let mut k = Keyring::default();
    k.add_pem(1, include_bytes!("../../fixtures/rsa_test_priv.pem"))
        .expect("test key loads");
    k
});

static WRAP: LazyLock<WrapKey> = LazyLock::new(|| {
    WrapKey::from_pem(include_str!("../../fixtures/rsa_test_pub.pem")).expect("test key loads")
});

fn touch(e: &UnwrapError) {
    let _ = (e.kind(), e.to_string());
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 4 {
        0 => {
            // The record field as it arrives (any text), with a known or unknown version.
            let version = u32::from(input.byte() % 3);
            let text = String::from_utf8_lossy(input.rest());
            if let Err(e) = KEYRING.unwrap(version, &text) {
                touch(&e);
            }
        }
        1 => {
            // Arbitrary ciphertext blocks: the padding check of the private-key operation.
            let mut ct = input.take(256).to_vec();
            if input.byte() & 1 == 0 {
                ct.resize(256, 0);
            }
            let text = sprinkle_whitespace(&b64(&ct), &mut input);
            if let Err(e) = KEYRING.unwrap(1, &text) {
                touch(&e);
            }
        }
        2 => {
            // Whatever the public key wrapped must come back, however the base64 is wrapped.
            let plain = input.take(245).to_vec();
            let text = sprinkle_whitespace(&WRAP.wrap(&plain), &mut input);
            let got = KEYRING.unwrap(1, &text).expect("a wrapped key unwraps");
            assert_eq!(*got, plain);
        }
        _ => {
            // Key files are configuration, but a broken one must fail cleanly.
            let mut k = Keyring::default();
            match k.add_pem(1, input.rest()) {
                Ok(()) => {
                    let _ = k.unwrap(1, &WRAP.wrap(b"k"));
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
});
