//! Conformance of our native `DecryptData` with the official SDK's, used as an oracle.
//!
//! Run by `scripts/sdk-conformance.sh`, which fetches `libWeWorkFinanceSdk_C.so` from the PyPI
//! wheel `wecom-audit` and sets `WECOM_SDK`. Feature `sdk-oracle`.
//!
//! * 10,000 random messages made by our `encrypt` (sizes 0..100 KiB, Chinese text, random k1 /
//!   pre_len / s_len / end_len): the SDK and we return the same bytes.
//! * 1,000+ corrupted inputs: the same outcome (same plaintext, or the same error code).
//!   Inputs on which the SDK aborts the process cannot be fed to it in-process; they are the
//!   classes listed in [`SDK_ABORT_CLASSES`]. We check a sample of them in a child process, where
//!   the SDK must indeed die.
#![cfg(feature = "sdk-oracle")]

use std::ffi::{c_char, c_int, CString};
use std::os::unix::process::ExitStatusExt;

use rand::{Rng, RngCore, SeedableRng};
use wecom_archive::crypto::message::{decrypt, encode_key_info, encrypt, Framing, SdkOutcome};

/// Inputs on which the SDK throws an uncaught C++ exception (SIGABRT), by our error kind:
/// `encrypt_chat_msg` shorter than 13 chars (`substr` out_of_range), base64 text with more
/// trailing `=` than data (`length_error`), and `s_len` past the body (`erase` out_of_range).
const SDK_ABORT_CLASSES: &[&str] = &["message_too_short", "base64_length", "split_out_of_range"];

#[repr(C)]
struct Slice {
    buf: *mut c_char,
    len: c_int,
}

struct Sdk {
    _lib: libloading::Library,
    new_slice: unsafe extern "C" fn() -> *mut Slice,
    free_slice: unsafe extern "C" fn(*mut Slice),
    decrypt_data: unsafe extern "C" fn(*const c_char, *const c_char, *mut Slice) -> c_int,
}

impl Sdk {
    fn load() -> Sdk {
        let path = std::env::var("WECOM_SDK")
            .expect("set WECOM_SDK to libWeWorkFinanceSdk_C.so (scripts/sdk-conformance.sh does)");
        // SAFETY: loading the official SDK; its constructors only set up static tables.
        unsafe {
            let lib =
                libloading::Library::new(&path).unwrap_or_else(|e| panic!("load {path}: {e}"));
            let sdk = Sdk {
                new_slice: *lib.get(b"NewSlice\0").unwrap(),
                free_slice: *lib.get(b"FreeSlice\0").unwrap(),
                decrypt_data: *lib.get(b"DecryptData\0").unwrap(),
                _lib: lib,
            };
            // The SDK builds its base64 table lazily and racily: warm it up once.
            let _ = sdk.decrypt(b"x", b"0123456789abcdefghij");
            sdk
        }
    }

    /// `DecryptData` with a fresh slice per call (the SDK leaks a reused one).
    fn decrypt(&self, key: &[u8], msg: &[u8]) -> Result<Vec<u8>, i32> {
        let key = CString::new(key.split(|&b| b == 0).next().unwrap()).unwrap();
        let msg = CString::new(msg.split(|&b| b == 0).next().unwrap()).unwrap();
        // SAFETY: valid C strings; the slice is allocated and freed by the SDK itself.
        unsafe {
            let slice = (self.new_slice)();
            let rc = (self.decrypt_data)(key.as_ptr(), msg.as_ptr(), slice);
            let out = if rc == 0 {
                let s = &*slice;
                Ok(std::slice::from_raw_parts(s.buf as *const u8, s.len as usize).to_vec())
            } else {
                Err(rc)
            };
            (self.free_slice)(slice);
            out
        }
    }
}

fn chinese_text(rng: &mut impl Rng, bytes: usize) -> Vec<u8> {
    const CHARS: &[&str] = &[
        "企", "业", "微", "信", "会", "话", "存", "档", "你好", "，", "。", "a", "1", " ", "\n",
        "😀", "\"", "\\",
    ];
    let mut s = String::with_capacity(bytes + 8);
    s.push_str("{\"msgtype\":\"text\",\"text\":{\"content\":\"");
    while s.len() < bytes {
        s.push_str(CHARS[rng.gen_range(0..CHARS.len())]);
    }
    s.into_bytes()
}

fn random_plaintext(rng: &mut impl Rng) -> Vec<u8> {
    // Log-uniform sizes over 0..100 KiB so that small and large messages are both common.
    let size = match rng.gen_range(0..10) {
        0 => rng.gen_range(0..=48),
        _ => (2f64.powf(rng.gen_range(0.0..16.64)) as usize).min(100 * 1024),
    };
    match rng.gen_range(0..3) {
        0 => (0..size).map(|_| rng.gen()).collect(),
        _ => {
            let mut t = chinese_text(rng, size);
            t.truncate(size);
            t
        }
    }
}

fn random_k1(rng: &mut impl Rng) -> Vec<u8> {
    let len = if rng.gen_bool(0.75) {
        32
    } else {
        rng.gen_range(1..=40)
    };
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len).map(|_| alphabet[rng.gen_range(0..64)]).collect()
}

fn random_framing(rng: &mut impl Rng) -> Framing {
    Framing {
        pre_len: Some(rng.gen_range(0..=300)),
        s_len: None,
        end_len: Some(rng.gen_range(0..=300)),
    }
}

#[test]
fn ten_thousand_random_messages_decrypt_identically() {
    let sdk = Sdk::load();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0001);
    let mut total_bytes = 0usize;
    let mut max_size = 0usize;
    for i in 0..10_000 {
        let pt = random_plaintext(&mut rng);
        let k1 = random_k1(&mut rng);
        let framing = random_framing(&mut rng);
        let e = encrypt(&mut rng, &k1, &pt, &framing);
        let theirs = sdk.decrypt(e.encrypt_key.as_bytes(), e.encrypt_msg.as_bytes());
        let ours = decrypt(e.encrypt_key.as_bytes(), e.encrypt_msg.as_bytes());
        assert_eq!(
            theirs.as_ref(),
            Ok(&pt),
            "SDK disagrees with the plaintext, message {i}"
        );
        assert_eq!(
            ours.as_ref().ok(),
            Some(&pt),
            "we disagree with the SDK, message {i}"
        );
        total_bytes += pt.len();
        max_size = max_size.max(pt.len());
    }
    assert!(max_size > 90 * 1024, "sizes did not reach 100 KiB");
    eprintln!("10000 messages, {total_bytes} plaintext bytes, largest {max_size}: identical");
}

/// One corrupted `(encrypt_key, encrypt_msg)` pair.
fn corrupt(rng: &mut impl Rng) -> (Vec<u8>, Vec<u8>) {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    let len = rng.gen_range(0..400);
    let pt = chinese_text(rng, len);
    let k1 = random_k1(rng);
    let framing = Framing {
        pre_len: Some(rng.gen_range(0..=20)),
        s_len: None,
        end_len: Some(rng.gen_range(0..=20)),
    };
    let e = encrypt(rng, &k1, &pt, &framing);
    let (mut ek, mut em) = (e.encrypt_key.into_bytes(), e.encrypt_msg.into_bytes());
    match rng.gen_range(0..10) {
        0 if !ek.is_empty() => {
            let i = rng.gen_range(0..ek.len());
            ek[i] = alphabet[rng.gen_range(0..alphabet.len())];
        }
        1 => {
            let i = rng.gen_range(0..em.len());
            em[i] = alphabet[rng.gen_range(0..alphabet.len())];
        }
        2 => em.truncate(rng.gen_range(0..em.len())),
        3 => ek.truncate(rng.gen_range(0..=ek.len())),
        4 => em[13 + rng.gen_range(0..32)] ^= 1,
        5 => {
            // Whitespace or URL-safe characters inside the body (decoded as 'A' by the SDK).
            let i = rng.gen_range(45..em.len());
            em[i] = *[b' ', b'\n', b'-', b'_'].get(rng.gen_range(0..4)).unwrap();
        }
        6 => {
            let n = rng.gen_range(1..6);
            em.extend(std::iter::repeat_n(b'=', n));
        }
        7 => {
            let n = rng.gen_range(1..6);
            ek.extend(std::iter::repeat_n(b'=', n));
        }
        8 => {
            // Hostile SdkKeyInfo: out-of-range framing values under a valid outer layer.
            let outer: Vec<u8> = em[13..45].to_vec();
            let pick = |rng: &mut dyn RngCore| -> i32 {
                *[-1000, -46, -45, -1, 0, 1, 5, 60, 1000, i32::MAX, i32::MIN]
                    .get((rng.next_u32() % 11) as usize)
                    .unwrap()
            };
            let info = encode_key_info(&k1, pick(rng), pick(rng), pick(rng));
            ek = reencrypt_outer(rng, &info, &outer);
        }
        _ => {
            // Random bytes as SdkKeyInfo.
            let outer: Vec<u8> = em[13..45].to_vec();
            let n = rng.gen_range(0..40);
            let info: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            ek = reencrypt_outer(rng, &info, &outer);
        }
    }
    (ek, em)
}

/// Encrypts `info` as the SdkKeyInfo layer under `outer` (what `encrypt` does internally).
fn reencrypt_outer(rng: &mut impl Rng, info: &[u8], outer: &[u8]) -> Vec<u8> {
    use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    use base64::Engine as _;
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    let mut key = [0u8; 32];
    key[..outer.len().min(32)].copy_from_slice(&outer[..outer.len().min(32)]);
    let mut data = iv.to_vec();
    data.extend_from_slice(info);
    data.resize(16 + (info.len() / 16 + 1) * 16, 0);
    cbc::Encryptor::<aes::Aes256>::new((&key).into(), (&iv).into())
        .encrypt_padded_mut::<Pkcs7>(&mut data[16..], info.len())
        .expect("buffer has room for the padding");
    base64::engine::general_purpose::STANDARD
        .encode(data)
        .into_bytes()
}

#[test]
fn corrupted_inputs_fail_the_same_way() {
    let sdk = Sdk::load();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0002);
    let (mut compared, mut aborts) = (0, Vec::new());
    let mut by_code = std::collections::BTreeMap::<String, u32>::new();
    while compared < 1_000 {
        let (ek, em) = corrupt(&mut rng);
        let ours = decrypt(&ek, &em);
        if let Err(e) = &ours {
            if e.sdk_outcome() == SdkOutcome::Abort {
                assert!(
                    SDK_ABORT_CLASSES.contains(&e.kind()),
                    "unexpected abort class {}",
                    e.kind()
                );
                aborts.push((ek, em));
                continue;
            }
        }
        let theirs = sdk.decrypt(&ek, &em);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(e), Err(rc)) => assert_eq!(e.sdk_outcome(), SdkOutcome::Code(*rc), "{e}"),
            _ => panic!(
                "outcomes differ: ours {:?}, SDK {:?}",
                ours.as_ref().map(|v| v.len()),
                theirs.as_ref().map(|v| v.len())
            ),
        }
        let key = match &ours {
            Ok(_) => "0".to_string(),
            Err(e) => e.code().to_string(),
        };
        *by_code.entry(key).or_default() += 1;
        compared += 1;
    }
    eprintln!(
        "1000 corrupted inputs agree, outcomes {by_code:?}; {} predicted aborts skipped",
        aborts.len()
    );
    assert!(
        by_code.len() >= 4,
        "corruptions did not reach every error class: {by_code:?}"
    );

    // Confirm a sample of the predicted aborts in child processes.
    let exe = std::env::current_exe().unwrap();
    for (ek, em) in aborts.iter().take(12) {
        let status = std::process::Command::new(&exe)
            .args(["--exact", "abort_child", "--nocapture", "--test-threads=1"])
            .env("WECOM_ORACLE_CHILD", format!("{}:{}", hex(ek), hex(em)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(6),
            "SDK did not abort on a predicted abort input"
        );
    }
}

/// Runs one `DecryptData` call when spawned by `corrupted_inputs_fail_the_same_way`.
#[test]
fn abort_child() {
    let Ok(arg) = std::env::var("WECOM_ORACLE_CHILD") else {
        return;
    };
    let (ek, em) = arg.split_once(':').unwrap();
    let _ = Sdk::load().decrypt(&unhex(ek), &unhex(em));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn shared_vectors_through_the_sdk() {
    let sdk = Sdk::load();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/decryptdata.json");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut n = 0;
    for v in doc["vectors"].as_array().unwrap() {
        let (Some(k), Some(m)) = (v["encrypt_key"].as_str(), v["encrypt_chat_msg"].as_str()) else {
            continue;
        };
        let k: Vec<u8> = k.chars().map(|c| c as u32 as u8).collect();
        let m: Vec<u8> = m.chars().map(|c| c as u32 as u8).collect();
        let ours = decrypt(&k, &m);
        if matches!(&ours, Err(e) if e.sdk_outcome() == SdkOutcome::Abort) {
            continue;
        }
        let theirs = sdk.decrypt(&k, &m);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(e), Err(rc)) => assert_eq!(e.sdk_outcome(), SdkOutcome::Code(*rc)),
            _ => panic!("{}: outcomes differ", v["name"]),
        }
        n += 1;
    }
    assert_eq!(n, 28);
}
