//! `crypto::message::decrypt` and the RSA unwrap against the end-to-end vectors made with the
//! official SDK as oracle (fixtures/decryptdata.json, copied from the shared vectors).

use base64::Engine as _;
use serde_json::Value;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::message::{decrypt, SdkOutcome};
use wecom_archive::crypto::unwrap::{Backend, UnwrapError};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn vectors() -> Vec<Value> {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(fixture("decryptdata.json")).unwrap()).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

fn keyring(backend: Backend) -> Keyring {
    let mut k = Keyring::new(backend);
    k.add_pem_file(1, &fixture("rsa_test_priv.pem")).unwrap();
    k
}

/// The Latin-1 string of the JSON back to bytes (the vectors store raw bytes that way).
fn latin1(v: &Value) -> Option<Vec<u8>> {
    v.as_str()
        .map(|s| s.chars().map(|c| c as u32 as u8).collect())
}

#[test]
fn every_vector_matches_the_sdk() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let vs = vectors();
    assert_eq!(vs.len(), 34, "vector file changed or failed to parse");
    let (mut ok, mut codes, mut aborts, mut null_args) = (0, 0, 0, 0);
    for v in &vs {
        let name = v["name"].as_str().unwrap();
        let (key, msg) = (latin1(&v["encrypt_key"]), latin1(&v["encrypt_chat_msg"]));
        let (Some(key), Some(msg)) = (key, msg) else {
            // NULL pointers (SDK 10000) cannot be expressed with Rust slices.
            assert_eq!(v["expected"]["rc"], 10000, "{name}");
            null_args += 1;
            continue;
        };
        let exp = &v["expected"];
        let got = decrypt(&key, &msg);
        if exp["abort"] == true {
            let err = got.expect_err(name);
            assert_eq!(err.sdk_outcome(), SdkOutcome::Abort, "{name}: {err}");
            aborts += 1;
        } else if exp["rc"] == 0 {
            let want = b64.decode(exp["plaintext_b64"].as_str().unwrap()).unwrap();
            assert_eq!(
                got.unwrap_or_else(|e| panic!("{name}: {e}")),
                want,
                "{name}"
            );
            ok += 1;
        } else {
            let err = got.expect_err(name);
            let rc = exp["rc"].as_i64().unwrap() as i32;
            assert_eq!(err.sdk_outcome(), SdkOutcome::Code(rc), "{name}: {err}");
            assert_eq!(err.code(), rc, "{name}");
            codes += 1;
        }
    }
    assert_eq!((ok, codes, aborts, null_args), (16, 12, 4, 2));
}

#[test]
fn rsa_unwrap_reproduces_encrypt_key_with_every_backend() {
    for &backend in Backend::available() {
        let keys = keyring(backend);
        let mut n = 0;
        for v in vectors() {
            let Some(erk) = v["encrypt_random_key"].as_str() else {
                continue;
            };
            let want = latin1(&v["encrypt_key"]).unwrap();
            let got = keys.unwrap(1, erk).unwrap();
            assert_eq!(*got, want, "{} with {backend:?}", v["name"]);
            n += 1;
        }
        assert_eq!(n, 33);
    }
}

#[test]
fn whole_path_from_encrypt_random_key_to_plaintext() {
    let keys = keyring(Backend::AwsLc);
    let v = vectors()
        .into_iter()
        .find(|v| v["name"] == "json_text_zh")
        .unwrap();
    let ek = keys
        .unwrap(1, v["encrypt_random_key"].as_str().unwrap())
        .unwrap();
    let pt = decrypt(&ek, v["encrypt_chat_msg"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(pt).unwrap(),
        v["expected"]["plaintext_utf8"].as_str().unwrap()
    );
}

#[test]
fn unknown_version_names_the_version_and_the_known_ones() {
    let keys = keyring(Backend::AwsLc);
    let err = keys.unwrap(7, "AAAA").unwrap_err();
    assert_eq!(
        err,
        UnwrapError::UnknownVersion {
            version: 7,
            known: vec![1]
        }
    );
    assert!(err.to_string().contains("publickey_ver 7"), "{err}");
    assert!(err.to_string().contains("10007"), "{err}");
}
