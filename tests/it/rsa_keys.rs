//! Keyring loading (PKCS#1 and PKCS#8, several versions), RSA backends, and secrecy.

use base64::Engine as _;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::unwrap::{Backend, KeyLoadError, UnwrapError, WrapKey};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

#[test]
fn pkcs1_and_pkcs8_of_the_same_key_unwrap_alike() {
    let wrap = WrapKey::from_pem(&read("rsa_test_pub.pem")).unwrap();
    let mut k = Keyring::default();
    k.add_pem(1, read("rsa_test_priv.pem").as_bytes()).unwrap(); // PKCS#1
    k.add_pem(2, read("rsa_test_priv_pkcs8.pem").as_bytes())
        .unwrap(); // PKCS#8
    assert_eq!(k.versions(), vec![1, 2]);
    let erk = wrap.wrap(b"encrypt-key-bytes");
    assert_eq!(*k.unwrap(1, &erk).unwrap(), b"encrypt-key-bytes");
    assert_eq!(*k.unwrap(2, &erk).unwrap(), b"encrypt-key-bytes");
}

#[test]
fn openssl_made_ciphertexts_decrypt_with_every_backend() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let doc: Value = serde_json::from_str(&read("rsa_v2_openssl_vectors.json")).unwrap();
    for &backend in Backend::available() {
        let mut k = Keyring::new(backend);
        k.add_pem(2, read("rsa_test_v2_pkcs8.pem").as_bytes())
            .unwrap();
        let vs = doc["vectors"].as_array().unwrap();
        assert_eq!(vs.len(), 4);
        for v in vs {
            let want = b64.decode(v["plaintext_b64"].as_str().unwrap()).unwrap();
            let got = k.unwrap(2, v["ciphertext_b64"].as_str().unwrap()).unwrap();
            assert_eq!(*got, want, "{backend:?}");
        }
    }
}

#[test]
fn two_versions_side_by_side_pick_the_right_key() {
    let mut k = Keyring::default();
    k.add_pem_file(1, &fixture("rsa_test_priv.pem")).unwrap();
    k.add_pem_file(2, &fixture("rsa_test_v2_pkcs8.pem"))
        .unwrap();
    let w1 = WrapKey::from_pem(&read("rsa_test_pub.pem")).unwrap();
    let w2 = WrapKey::from_pem(&read("rsa_test_v2_pub.pem")).unwrap();
    assert_eq!(*k.unwrap(1, &w1.wrap(b"one")).unwrap(), b"one");
    assert_eq!(*k.unwrap(2, &w2.wrap(b"two")).unwrap(), b"two");
    // The wrong version's key fails on the padding (it cannot "succeed" for RSA PKCS#1 v1.5
    // except with negligible probability).
    assert_eq!(
        k.unwrap(2, &w1.wrap(b"one")).unwrap_err(),
        UnwrapError::Decrypt
    );
}

#[test]
fn bad_inputs_give_typed_errors() {
    let mut k = Keyring::default();
    k.add_pem_file(1, &fixture("rsa_test_priv.pem")).unwrap();
    assert!(matches!(
        k.unwrap(1, "not base64!").unwrap_err(),
        UnwrapError::Base64(_)
    ));
    assert!(matches!(
        k.unwrap(1, "AAAA").unwrap_err(),
        UnwrapError::Length { got: 3, want: 256 }
    ));
    let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 256]);
    assert_eq!(k.unwrap(1, &zeros).unwrap_err(), UnwrapError::Decrypt);
    // Line-wrapped base64 (some dump tools wrap) is accepted.
    let w = WrapKey::from_pem(&read("rsa_test_pub.pem")).unwrap();
    let mut wrapped = w.wrap(b"abc");
    wrapped.insert(64, '\n');
    assert_eq!(*k.unwrap(1, &wrapped).unwrap(), b"abc");
}

#[test]
fn key_load_errors_are_clear() {
    let mut k = Keyring::default();
    let e = k
        .add_pem(1, read("rsa_test_pub.pem").as_bytes())
        .unwrap_err();
    assert!(
        matches!(e, KeyLoadError::Label(ref l) if l == "PUBLIC KEY"),
        "{e}"
    );
    let e = k
        .add_pem(1, read("rsa_test_1024.pem").as_bytes())
        .unwrap_err();
    // The RSA-2048 hint, not the backend's bare "TooSmall".
    assert!(matches!(e, KeyLoadError::Size { bits: 1024 }), "{e}");
    assert!(e.to_string().contains("RSA-2048"), "{e}");
    let e = k.add_pem(1, b"hello").unwrap_err();
    assert!(matches!(e, KeyLoadError::Pem(_)), "{e}");
    let e = k.add_pem_file(1, &fixture("missing.pem")).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
    assert!(k.is_empty());
}

#[test]
fn debug_and_errors_never_show_key_material() {
    let pem = read("rsa_test_priv.pem");
    let body_line = pem.lines().nth(1).unwrap().to_string();
    let mut k = Keyring::default();
    k.add_pem(3, pem.as_bytes()).unwrap();
    let dbg = format!("{k:?}");
    assert!(
        dbg.contains('3') && !dbg.contains(&body_line[..20]),
        "{dbg}"
    );
    // A PEM with a corrupted body: the error must not echo the body.
    let broken = pem.replacen(&body_line, &body_line.replace('A', "*"), 1);
    let e = k.add_pem(4, broken.as_bytes()).unwrap_err();
    assert!(!e.to_string().contains(&body_line[..20]), "{e}");
}

#[cfg(feature = "rustcrypto")]
#[test]
fn backends_agree_on_random_inputs() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let pem = read("rsa_test_priv.pem");
    let mut a = Keyring::new(Backend::AwsLc);
    let mut r = Keyring::new(Backend::RustCrypto);
    a.add_pem(1, pem.as_bytes()).unwrap();
    r.add_pem(1, pem.as_bytes()).unwrap();
    let w = WrapKey::from_pem(&read("rsa_test_pub.pem")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    for i in 0..200 {
        let erk = if i % 2 == 0 {
            let len = rng.gen_range(0..=245);
            let pt: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            w.wrap(&pt)
        } else {
            // Random ciphertexts: almost all are bad padding; both must say so.
            let mut ct = [0u8; 256];
            rng.fill(&mut ct[1..]);
            b64.encode(ct)
        };
        let (x, y) = (a.unwrap(1, &erk), r.unwrap(1, &erk));
        match (&x, &y) {
            (Ok(p), Ok(q)) => assert_eq!(**p, **q),
            (Err(p), Err(q)) => assert_eq!(p, q),
            _ => panic!("backends disagree on input {i}: {x:?} vs {y:?}"),
        }
    }
}

#[cfg(not(feature = "rustcrypto"))]
#[test]
fn rustcrypto_backend_reports_missing_feature() {
    let _ = rand::rngs::StdRng::seed_from_u64(0).gen::<u8>();
    let mut k = Keyring::new(Backend::RustCrypto);
    let e = k
        .add_pem(1, read("rsa_test_priv.pem").as_bytes())
        .unwrap_err();
    assert!(
        matches!(e, KeyLoadError::BackendUnavailable("rustcrypto")),
        "{e}"
    );
}
