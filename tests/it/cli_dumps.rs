//! `wecom-archive decrypt` on damaged and unusual dumps (issue 10): every record before a fault
//! is written, each fault is its own dead letter naming where it is, and a second run into the
//! same output never replaces a committed file.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::SeedableRng;
use serde_json::Value;
use wecom_archive::crypto::unwrap::WrapKey;
use wecom_archive::source::sim::encrypt_record;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// `n` good records (seq `from..from+n`) as JSON lines.
fn records(from: u64, n: u64) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(from);
    let w =
        WrapKey::from_pem(&std::fs::read_to_string(fixture("rsa_test_pub.pem")).unwrap()).unwrap();
    (from..from + n)
        .map(|seq| {
            let pt = format!(
                r#"{{"msgid":"m{seq}","action":"send","from":"a","tolist":["b"],"roomid":"","msgtime":1714029001000,"msgtype":"text","text":{{"content":"hi {seq}"}}}}"#
            );
            let rec = encrypt_record(&mut rng, &w, 1, seq, &format!("m{seq}"), pt.as_bytes());
            serde_json::to_string(&rec).unwrap()
        })
        .collect()
}

fn decrypt(input: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .arg("decrypt")
        .arg("--input")
        .arg(input)
        .arg("--key")
        .arg(format!("1={}", fixture("rsa_test_priv.pem").display()))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The seqs of every Parquet row `decrypt --out dir` wrote, with duplicates kept.
fn parquet_seqs(dir: &Path) -> Vec<u64> {
    use arrow_array::{Array, Int64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut seqs = vec![];
    for entry in std::fs::read_dir(dir.join("messages")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "parquet") {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let col = batch.column_by_name("seq").unwrap();
                let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
                seqs.extend((0..col.len()).map(|i| col.value(i) as u64));
            }
        }
    }
    seqs.sort();
    seqs
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir.join("dead_letters")) else {
        return out;
    };
    for entry in entries {
        let p = entry.unwrap().path();
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

fn gzip(lines: &[String]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in lines {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap()
}

#[test]
fn truncated_gzip_writes_every_record_before_the_fault_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = gzip(&records(1, 300));
    gz.truncate(gz.len() * 2 / 3);
    let input = dir.path().join("dump.jsonl.gz");
    std::fs::write(&input, &gz).unwrap();
    let out = dir.path().join("out");
    let o = decrypt(&input, &out, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let seqs = parquet_seqs(&out);
    assert!(seqs.len() >= 100, "{} rows\n{}", seqs.len(), text(&o));
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let letters = dead_letters(&out);
    let damage: Vec<_> = letters
        .iter()
        .filter(|l| l["error_kind"] == "input_damaged")
        .collect();
    assert_eq!(damage.len(), 1, "{letters:?}");
    let msg = damage[0]["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!("byte {} of the file", gz.len())),
        "{msg}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("damaged"),
        "{}",
        text(&o)
    );
}

#[test]
fn trailing_garbage_after_gzip_keeps_all_records_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = gzip(&records(1, 20));
    gz.extend_from_slice(b"\x00\x00not gzip");
    let input = dir.path().join("dump.gz");
    std::fs::write(&input, &gz).unwrap();
    let out = dir.path().join("out");
    let o = decrypt(&input, &out, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(parquet_seqs(&out), (1..=20).collect::<Vec<_>>());
}

#[test]
fn bom_array_and_invalid_utf8_lines_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(1, 6);
    // A BOM and a bare array.
    let array = dir.path().join("array.json");
    std::fs::write(&array, format!("\u{feff}[\n{}\n]\n", recs[..3].join(",\n"))).unwrap();
    let out = dir.path().join("a");
    let o = decrypt(&array, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(parquet_seqs(&out), [1, 2, 3]);
    // JSON Lines with an invalid UTF-8 line and a bad JSON line in the middle.
    let mut bytes = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        bytes.extend_from_slice(r.as_bytes());
        bytes.push(b'\n');
        if i == 1 {
            bytes.extend_from_slice(b"{\"seq\":99,\"x\":\"\xff\"}\n{\"seq\": oops\n");
        }
    }
    let lines = dir.path().join("lines.jsonl");
    std::fs::write(&lines, &bytes).unwrap();
    let out = dir.path().join("b");
    let o = decrypt(&lines, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(parquet_seqs(&out), [1, 2, 3, 4, 5, 6]);
    let letters = dead_letters(&out);
    let lines: BTreeSet<u64> = letters.iter().filter_map(|l| l["line"].as_u64()).collect();
    assert_eq!(lines, BTreeSet::from([3, 4]), "{letters:?}");
    let utf8 = letters.iter().find(|l| l["line"] == 3).unwrap();
    assert_eq!(utf8["raw_input_encoding"], "base64");
}

#[test]
fn long_line_is_dead_lettered_with_its_line_and_marked_cut() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(1, 2);
    let long = format!("{{\"seq\":7,\"x\":\"{}\"}}", "a".repeat(200_000));
    let input = dir.path().join("d.jsonl");
    std::fs::write(&input, format!("{}\n{long}\n{}\n", recs[0], recs[1])).unwrap();
    let out = dir.path().join("out");
    let o = decrypt(&input, &out, &["--max-record-bytes", "65536"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(parquet_seqs(&out), [1, 2]);
    let letters = dead_letters(&out);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["line"], 2);
    assert_eq!(letters[0]["error_kind"], "record_too_large");
    assert_eq!(letters[0]["raw_input_truncated"], true);
    assert_eq!(letters[0]["raw_input"].as_str().unwrap().len(), 65536);
}

#[test]
fn a_dead_letter_keeps_a_bad_entry_over_1_mib_whole() {
    let dir = tempfile::tempdir().unwrap();
    let bad = format!("{{\"seq\":7,\"x\":\"{}\"", "b".repeat(2 << 20));
    let input = dir.path().join("d.jsonl");
    std::fs::write(&input, format!("{}\n{bad}\n", records(1, 1)[0])).unwrap();
    let out = dir.path().join("out");
    let o = decrypt(&input, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let letters = dead_letters(&out);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["raw_input"].as_str().unwrap(), bad);
    assert!(letters[0].get("raw_input_truncated").is_none());
}

#[test]
fn decrypt_into_a_used_out_adds_files_and_never_replaces_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let a = dir.path().join("a.jsonl");
    std::fs::write(&a, records(1, 10).join("\n")).unwrap();
    let o = decrypt(&a, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let first = out.join("messages/part-00000000000000000001-00000000000000000010.parquet");
    let before = std::fs::read(&first).unwrap();
    // Another dump with the same seq range (another corp's, say) into the same folder.
    let b = dir.path().join("b.jsonl");
    let recs: Vec<String> = records(1, 10)
        .iter()
        .map(|r| r.replace("\"msgid\":\"m", "\"msgid\":\"other-m"))
        .collect();
    std::fs::write(&b, recs.join("\n")).unwrap();
    let o = decrypt(&b, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before,
        "part-1-10 was replaced"
    );
    let seqs = parquet_seqs(&out);
    assert_eq!(seqs.len(), 20, "both dumps' rows are kept: {seqs:?}");
}

#[test]
fn a_killed_decrypt_leaves_no_temporary_after_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("dead_letters")).unwrap();
    std::fs::create_dir_all(out.join("messages")).unwrap();
    // What a killed run leaves: temporaries named by a process that is gone.
    let stale = [
        out.join("messages/.part-7ffffffe0badf00d.parquet.tmp"),
        out.join("dead_letters/.dead-7ffffffe0badf00d.jsonl.tmp"),
    ];
    for p in &stale {
        std::fs::write(p, "half").unwrap();
    }
    let input = dir.path().join("a.jsonl");
    std::fs::write(&input, records(1, 3).join("\n")).unwrap();
    let o = decrypt(&input, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    for p in &stale {
        assert!(!p.exists(), "{} left", p.display());
    }
    assert_eq!(parquet_seqs(&out), [1, 2, 3]);
}

#[test]
fn demo_refuses_a_corp_id_that_leaves_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["demo", "--messages", "10", "--corp-id", "../../x", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only letters, digits"),
        "{}",
        text(&o)
    );
    assert!(!dir.path().join("x").exists() && !out.exists());
}

#[cfg(unix)]
#[test]
fn a_non_utf8_output_path_works() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"out-\xff\xfe"));
    let o = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["demo", "--messages", "30", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("messages/corp_id=wwdemo0000000001").is_dir());
}
