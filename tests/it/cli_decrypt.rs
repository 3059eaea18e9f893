//! `wecom-archive decrypt` end to end, on dumps generated here (never seen before), with two
//! key versions and corrupt records mixed in.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::{Array, Int64Array, StringArray};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use wecom_archive::crypto::unwrap::WrapKey;
use wecom_archive::model::record::EncryptedRecord;
use wecom_archive::source::sim::encrypt_record;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn wrap(name: &str) -> WrapKey {
    WrapKey::from_pem(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// A plaintext of some kind for seq `i`, including raw control characters and odd types.
fn plaintext(rng: &mut impl Rng, i: u64) -> String {
    let t = 1714029001000 + i * 1000;
    match i % 5 {
        0 => {
            // Raw control characters inside a JSON string, as WeCom sometimes sends.
            let content = format!("第{i}条消息 tab\there\u{1}raw {}", rng.gen::<u32>());
            format!(
                r#"{{"msgid":"m{i}","action":"send","from":"zhangsan","tolist":["lisi","wangwu"],"roomid":"wrX","msgtime":{t},"msgtype":"text","text":{{"content":"{content}"}}}}"#
            )
        }
        1 => format!(
            r#"{{"msgid":"m{i}","action":"send","from":"wmQx","tolist":["zhangsan"],"roomid":"","msgtime":{t},"msgtype":"image","image":{{"md5sum":"3f2a7c1e9b0d4a6f8e5c2b1a0d9e8f7c","filesize":{},"sdkfileid":"CtYB{i}"}}}}"#,
            rng.gen_range(1..1_000_000)
        ),
        2 => format!(r#"{{"msgid":"m{i}","action":"switch","time":{t},"user":"zhangsan"}}"#),
        3 => format!(
            r#"{{"msgid":"m{i}","action":"send","from":"zhangsan","tolist":["lisi"],"roomid":"","msgtime":{t},"msgtype":"solitaire","solitaire":{{"title":"接龙","n":{i}}}}}"#
        ),
        _ => format!(
            r#"{{"msgid":"m{i}","action":"send","from":"zhangsan","tolist":["lisi"],"roomid":"","msgtime":{t},"msgtype":"meeting","meeting":{{"topic":"复盘","meetingid":11101571002822706744,"starttime":1714035600,"endtime":1714039200}}}}"#
        ),
    }
}

struct Dump {
    lines: Vec<String>,
    good: BTreeMap<u64, String>,
    bad: BTreeMap<u64, &'static str>,
    malformed_lines: usize,
}

fn make_dump(seed: u64, n: u64) -> Dump {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (w1, w2) = (wrap("rsa_test_pub.pem"), wrap("rsa_test_v2_pub.pem"));
    let mut d = Dump {
        lines: vec![],
        good: BTreeMap::new(),
        bad: BTreeMap::new(),
        malformed_lines: 0,
    };
    for seq in 1..=n {
        let pt = plaintext(&mut rng, seq);
        let ver = if seq % 2 == 0 { 2 } else { 1 };
        let w = if ver == 1 { &w1 } else { &w2 };
        let mut rec = encrypt_record(&mut rng, w, ver, seq, &format!("m{seq}"), pt.as_bytes());
        let kind = match seq % 37 {
            5 => {
                rec.encrypt_random_key.replace_range(10..12, "!!");
                Some("random_key_base64")
            }
            11 => {
                rec.publickey_ver = 9;
                Some("unknown_key_version")
            }
            17 => {
                rec.publickey_ver = 3 - ver; // the other version's key: RSA padding fails
                Some("rsa_padding")
            }
            23 => {
                rec = encrypt_record(
                    &mut rng,
                    w,
                    ver,
                    seq,
                    &format!("m{seq}"),
                    b"\x00\x01 not json at all",
                );
                Some("plaintext_not_json")
            }
            29 => {
                rec.encrypt_chat_msg.truncate(30);
                Some("keyinfo_framing_or_aes")
            }
            _ => None,
        };
        match kind {
            Some(k) => {
                d.bad.insert(seq, k);
            }
            None => {
                d.good.insert(seq, pt);
            }
        }
        d.lines.push(serde_json::to_string(&rec).unwrap());
        if seq % 101 == 0 {
            d.lines
                .push("{\"seq\": 5, \"msgid\": truncated".to_string());
            d.malformed_lines += 1;
        }
    }
    d
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
}

/// The rows `decrypt --out dir` wrote (in `dir/messages/`), by seq.
fn read_parquet(dir: &Path) -> BTreeMap<u64, String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut rows = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("messages")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "parquet") {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let seq = batch
                    .column_by_name("seq")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone();
                let raw = batch
                    .column_by_name("raw_json")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone();
                for i in 0..batch.num_rows() {
                    assert!(
                        rows.insert(seq.value(i) as u64, raw.value(i).to_string())
                            .is_none(),
                        "duplicate seq"
                    );
                }
            }
        }
    }
    rows
}

fn read_dead_letters(dir: &Path) -> Vec<Value> {
    let mut out = vec![];
    let dl = dir.join("dead_letters");
    for entry in std::fs::read_dir(dl).unwrap() {
        let p = entry.unwrap().path();
        assert!(
            !p.file_name().unwrap().to_string_lossy().starts_with('.'),
            "temporary left: {p:?}"
        );
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

#[test]
fn decrypts_an_unseen_dump_with_two_key_versions_and_dead_letters_the_bad() {
    let d = make_dump(1234, 400);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("dump.jsonl");
    std::fs::write(&input, d.lines.join("\n")).unwrap();
    let out_dir = tmp.path().join("out");
    let out = bin()
        .args(["decrypt", "--input"])
        .arg(&input)
        .args(["--key"])
        .arg(format!("1={}", fixture("rsa_test_priv.pem").display()))
        .args(["--key"])
        .arg(format!("2={}", fixture("rsa_test_v2_pkcs8.pem").display()))
        .args(["--out"])
        .arg(&out_dir)
        .args(["--chunk", "64"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = 400 + d.malformed_lines;
    let dead = d.bad.len() + d.malformed_lines;
    assert!(
        stdout.contains(&format!(
            "{total} records in, {} written, {dead} dead-lettered",
            d.good.len()
        )),
        "{stdout}"
    );

    // Every good record, with raw_json equal to its plaintext byte for byte.
    let rows = read_parquet(&out_dir);
    assert_eq!(rows, d.good);

    // Every bad record in the dead letters, with its error and its raw record.
    let letters = read_dead_letters(&out_dir);
    assert_eq!(letters.len(), dead);
    let mut seen = BTreeMap::new();
    for l in &letters {
        if l["record"].is_null() {
            assert_eq!(l["error_kind"], "malformed_record");
            assert!(l["raw_input"].as_str().unwrap().contains("truncated"));
            assert!(l["line"].as_u64().is_some());
            continue;
        }
        let rec: EncryptedRecord = serde_json::from_value(l["record"].clone()).unwrap();
        assert_eq!(l["seq"].as_u64(), Some(rec.seq));
        assert!(l["error"]
            .as_str()
            .unwrap()
            .contains(&format!("seq {}", rec.seq)));
        seen.insert(rec.seq, l["error_kind"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        d.bad.keys().collect::<Vec<_>>()
    );
    for (seq, want) in &d.bad {
        let got = &seen[seq];
        match *want {
            "keyinfo_framing_or_aes" => assert!(
                [
                    "keyinfo_framing",
                    "encrypt_key_aes",
                    "keyinfo_protobuf",
                    "message_aes",
                    "split_out_of_range",
                    "plaintext_not_json"
                ]
                .contains(&got.as_str()),
                "seq {seq}: {got}"
            ),
            w => assert_eq!(got, w, "seq {seq}"),
        }
    }
    // No temporary files left behind.
    for e in std::fs::read_dir(out_dir.join("messages")).unwrap() {
        let name = e.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with('.'), "{name:?}");
    }
}

#[test]
fn strict_mode_exits_non_zero_on_dead_letters_and_stdin_gzip_object_works() {
    let d = make_dump(99, 40);
    let recs: Vec<Value> = d
        .lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let page = serde_json::json!({"errcode": 0, "errmsg": "ok", "chatdata": recs});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(serde_json::to_string_pretty(&page).unwrap().as_bytes())
        .unwrap();
    let gz = gz.finish().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args(["decrypt", "--strict", "--input", "-", "--out"])
        .arg(tmp.path())
        .arg("--key")
        .arg(format!("1={}", fixture("rsa_test_priv.pem").display()))
        .arg("--key")
        .arg(format!("2={}", fixture("rsa_test_v2_pkcs8.pem").display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_parquet(tmp.path()), d.good);
}

#[test]
fn clear_errors_for_bad_arguments() {
    let out = bin()
        .args(["decrypt", "--input", "x", "--out", "y", "--key", "one=abc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a number"));
    let out = bin()
        .args([
            "decrypt",
            "--input",
            "x",
            "--out",
            "y",
            "--key",
            "1=/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("publickey_ver 1") && err.contains("/nonexistent/key.pem"),
        "{err}"
    );
}
