//! Regenerates `fixtures/sample_dump.jsonl`: one record per sample message in
//! `fixtures/messages/` (every msgtype), keys of versions 1 (PKCS#1) and 2 (PKCS#8), and two
//! deliberately broken records to show the dead letters.
//!
//!     cargo run --example make_sample_dump

use std::path::Path;

use rand::SeedableRng;
use wecom_archive::crypto::unwrap::WrapKey;
use wecom_archive::source::sim::encrypt_record;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let key = |n: &str| WrapKey::from_pem(&std::fs::read_to_string(root.join(n)).unwrap()).unwrap();
    let (w1, w2) = (key("rsa_test_pub.pem"), key("rsa_test_v2_pub.pem"));
    let mut names: Vec<_> = std::fs::read_dir(root.join("messages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261125);
    let mut lines = Vec::new();
    let mut seq = 1000;
    for path in &names {
        let plaintext = std::fs::read(path).unwrap();
        let plaintext = plaintext.strip_suffix(b"\n").unwrap_or(&plaintext);
        let msg: serde_json::Value = serde_json::from_slice(plaintext).unwrap();
        let msgid = msg["msgid"].as_str().unwrap();
        seq += 1;
        let (ver, w) = if seq % 2 == 0 { (2, &w2) } else { (1, &w1) };
        let rec = encrypt_record(&mut rng, w, ver, seq, msgid, plaintext);
        lines.push(serde_json::to_string(&rec).unwrap());
    }
    // A record wrapped with a key version we do not have, and a corrupt line.
    seq += 1;
    let rec = encrypt_record(
        &mut rng,
        &w1,
        3,
        seq,
        "unknown_version_demo",
        br#"{"msgid":"x"}"#,
    );
    lines.push(serde_json::to_string(&rec).unwrap());
    lines
        .push(r#"{"seq": 1100, "msgid": "cut_off_demo", "publickey_ver": 1, "encrypt_rand"#.into());
    std::fs::write(root.join("sample_dump.jsonl"), lines.join("\n") + "\n").unwrap();
    println!("wrote {} lines to fixtures/sample_dump.jsonl", lines.len());
}
