//! `wecom-archive export` (issue 14, evidence export): transcripts hold exactly the rows of
//! their conversation in seq order (checked against a brute-force read of the table), the
//! manifest's hashes verify and list every file, the audit log has the entry, hostile chat text
//! stays text, and a real browser (headless Chromium) renders the page as the tests expect.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::SeedableRng;
use serde_json::Value;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::unwrap::{Backend, WrapKey};
use wecom_archive::model::conversation::conversation_id;
use wecom_archive::model::message::{parse, ChatMessage};
use wecom_archive::sink::layout;
use wecom_archive::source::sim::encrypt_record;
use wecom_archive::state::StateStore;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const CORP: &str = "wwdemo0000000001";
const CHROMIUM: &str = "/usr/bin/chromium";
const SKIP_BROWSER_ENV: &str = "WECOM_ARCHIVE_SKIP_BROWSER";
/// Where the browser test also saves the screenshot for the docs, when set.
const SCREENSHOT_ENV: &str = "WECOM_ARCHIVE_SCREENSHOT";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn demo(out: &Path, messages: u64) {
    let o = Command::new(BIN)
        .args(["demo", "-q", "--json", "--messages"])
        .arg(messages.to_string())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

fn export(out: &Path, args: &[&str], to: &Path) -> Output {
    Command::new(BIN)
        .args(["export", "--out"])
        .arg(out)
        .args(["--corp", CORP])
        .args(args)
        .arg("--to-dir")
        .arg(to)
        .output()
        .unwrap()
}

fn export_ok(out: &Path, args: &[&str], to: &Path) -> Value {
    let o = Command::new(BIN)
        .args(["export", "--json", "--out"])
        .arg(out)
        .args(["--corp", CORP])
        .args(args)
        .arg("--to-dir")
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// One row of the messages table, read by brute force.
struct Row {
    seq: i64,
    msg: ChatMessage,
}

/// Every row of the corp's messages table, parsed (no filter, no order).
fn table(out: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut stack = vec![layout::corp_messages(out, CORP)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") {
                let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
                for b in r {
                    let b = b.unwrap();
                    let seq = b.column_by_name("seq").unwrap();
                    let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
                    let raw = b.column_by_name("raw_json").unwrap();
                    let raw = raw.as_any().downcast_ref::<StringArray>().unwrap();
                    for i in 0..b.num_rows() {
                        rows.push(Row {
                            seq: seq.value(i),
                            msg: parse(raw.value(i).as_bytes()).unwrap(),
                        });
                    }
                }
            }
        }
    }
    rows
}

/// conversation id -> sorted seqs, by brute force.
fn conversations(rows: &[Row]) -> BTreeMap<String, Vec<i64>> {
    let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in rows {
        if let Some(id) = conversation_id(&r.msg) {
            m.entry(id.into_owned()).or_default().push(r.seq);
        }
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

fn sha256_hex(b: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir` (relative, `/`-separated), hidden ones included.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel);
            }
        }
    }
    out
}

/// The manifest lists every file of the export (but itself) with the SHA-256 of its bytes;
/// returns it.
fn verify_manifest(dir: &Path) -> Value {
    let bytes = std::fs::read(dir.join("manifest.json")).unwrap();
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    let mut listed = BTreeSet::new();
    for f in m["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        assert!(!path.contains(".."), "{path}");
        let got = sha256_hex(&std::fs::read(dir.join(path)).unwrap());
        assert_eq!(f["sha256"].as_str().unwrap(), got, "{path}");
        listed.insert(path.to_owned());
    }
    let mut on_disk = files_under(dir);
    assert!(on_disk.remove("manifest.json"));
    assert_eq!(listed, on_disk, "every file, and only those, is listed");
    assert_eq!(m["tool_version"], env!("CARGO_PKG_VERSION"));
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    m
}

/// The audit entry `id` exists and matches the export.
fn verify_audit(out: &Path, summary: &Value, format: &str) {
    let store = StateStore::open(&layout::state_path(out)).unwrap();
    let entries = store.exports(CORP, 1000).unwrap();
    let id = summary["audit_id"].as_i64().unwrap();
    let e = entries
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("audit entry {id} missing"));
    assert_eq!(e.format, format);
    assert_eq!(e.messages, summary["messages"].as_u64().unwrap());
    assert_eq!(
        e.manifest_sha256,
        summary["manifest_sha256"].as_str().unwrap()
    );
    let dir = Path::new(summary["export_dir"].as_str().unwrap());
    assert_eq!(
        sha256_hex(&std::fs::read(dir.join("manifest.json")).unwrap()),
        e.manifest_sha256
    );
    assert_eq!(e.tool_version, env!("CARGO_PKG_VERSION"));
    let q: Value = serde_json::from_str(&e.query).unwrap();
    assert_eq!(q["corp"], CORP);
}

/// The `data-seq` values of an HTML transcript, in document order.
fn html_seqs(html: &str) -> Vec<i64> {
    html.split("<article ")
        .skip(1)
        .map(|a| {
            let v = a.split("data-seq=\"").nth(1).unwrap();
            v[..v.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// Parses RFC 4180 CSV (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => record.push(std::mem::take(&mut field)),
                '\r' if chars.peek() == Some(&'\n') => {
                    chars.next();
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                c => field.push(c),
            }
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "ends with CRLF"
    );
    records
}

/// The seqs of a transcript in any format, in file order.
fn transcript_seqs(path: &Path) -> Vec<i64> {
    let s = std::fs::read_to_string(path).unwrap();
    match path.extension().unwrap().to_str().unwrap() {
        "html" => html_seqs(&s),
        "csv" => {
            let s = s.strip_prefix('\u{feff}').expect("a BOM for Excel");
            let records = parse_csv(s);
            assert_eq!(records[0][0], "seq");
            assert!(records.iter().all(|r| r.len() == records[0].len()));
            records[1..].iter().map(|r| r[0].parse().unwrap()).collect()
        }
        "jsonl" => s
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["seq"]
                    .as_i64()
                    .unwrap()
            })
            .collect(),
        other => panic!("{other}"),
    }
}

/// The busiest one-to-one conversation.
fn busiest_single(convs: &BTreeMap<String, Vec<i64>>) -> (String, Vec<i64>) {
    convs
        .iter()
        .filter(|(id, _)| id.starts_with("single:"))
        .max_by_key(|(_, v)| v.len())
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap()
}

#[test]
fn a_demo_conversation_exports_exactly_its_rows_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    demo(&out, 3000);
    let rows = table(&out);
    let convs = conversations(&rows);
    let (id, seqs) = busiest_single(&convs);
    assert!(seqs.len() >= 20, "{id}: {}", seqs.len());
    for format in ["html", "csv", "jsonl"] {
        let to = dir.path().join(format!("export-{format}"));
        let summary = export_ok(&out, &["--conversation", &id, "--format", format], &to);
        assert_eq!(summary["messages"], seqs.len() as u64, "{format}");
        let transcripts = summary["conversations"].as_array().unwrap();
        assert_eq!(transcripts.len(), 1);
        let path = to.join(transcripts[0]["path"].as_str().unwrap());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains(':') && name.ends_with(&format!(".{format}")),
            "{name}"
        );
        // Exactly the conversation's rows, in seq order.
        assert_eq!(transcript_seqs(&path), seqs, "{format}");
        let m = verify_manifest(&to);
        assert_eq!(m["message_count"], seqs.len() as u64);
        assert_eq!(m["conversation_count"], 1);
        assert_eq!(m["query"]["conversation"], id.as_str());
        assert_eq!(m["query"]["format"], format);
        verify_audit(&out, &summary, format);
    }
    // A day range selects date= folders: the union of the days is the whole conversation.
    let days: BTreeSet<String> = std::fs::read_dir(layout::corp_messages(&out, CORP))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_prefix("date=").map(str::to_owned))
        .collect();
    assert!(days.len() >= 2, "{days:?}");
    let mut union = Vec::new();
    for day in &days {
        let to = dir.path().join(format!("day-{day}"));
        let o = export(
            &out,
            &[
                "--conversation",
                &id,
                "--format",
                "jsonl",
                "--from",
                day,
                "--to",
                day,
                "--json",
            ],
            &to,
        );
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let p = to.join(v["conversations"][0]["path"].as_str().unwrap());
            union.extend(transcript_seqs(&p));
        } else {
            assert!(
                text(&o).contains("no message of conversation"),
                "{}",
                text(&o)
            );
        }
    }
    assert_eq!(union, seqs);
}

#[test]
fn mistakes_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    demo(&out, 300);
    let to = dir.path().join("x");
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let o = Command::new(BIN)
        .args(["export", "--out"])
        .arg(&out)
        .args([
            "--corp",
            "wwnosuchcorp",
            "--user",
            "a",
            "--format",
            "html",
            "--to-dir",
        ])
        .arg(&to)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err(&o).contains("corp_id=wwnosuchcorp") && err(&o).contains("pull"),
        "{}",
        err(&o)
    );

    let o = export(
        &out,
        &["--conversation", "single:x:y", "--format", "html"],
        &to,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err(&o).contains("no message of conversation \"single:x:y\""),
        "{}",
        err(&o)
    );
    assert!(!to.exists(), "nothing written when nothing matched");

    let o = export(&out, &["--user", "nobody", "--format", "csv"], &to);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err(&o).contains("user \"nobody\" sent or received no message"),
        "{}",
        err(&o)
    );

    let o = export(
        &out,
        &[
            "--user",
            "zhangsan",
            "--format",
            "csv",
            "--from",
            "2026-11-22",
            "--to",
            "2026-11-21",
        ],
        &to,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err(&o).contains("is after --to"), "{}", err(&o));

    let o = export(
        &out,
        &[
            "--user",
            "zhangsan",
            "--format",
            "csv",
            "--from",
            "2026-13-01",
        ],
        &to,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(err(&o).contains("YYYY-MM-DD"), "{}", err(&o));

    let o = export(
        &out,
        &[
            "--user",
            "zhangsan",
            "--format",
            "csv",
            "--from",
            "2030-01-01",
        ],
        &to,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err(&o).contains("widen --from/--to"), "{}", err(&o));

    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("old.txt"), "x").unwrap();
    let o = export(&out, &["--user", "zhangsan", "--format", "csv"], &to);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err(&o).contains("is not empty"), "{}", err(&o));
    assert_eq!(files_under(&to), BTreeSet::from(["old.txt".to_owned()]));

    // Neither --conversation nor --user, or both: usage errors.
    let o = export(&out, &["--format", "csv"], &dir.path().join("y"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = export(
        &out,
        &["--user", "a", "--conversation", "b", "--format", "csv"],
        &to,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_user_gets_one_transcript_per_conversation_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    demo(&out, 1500);
    let rows = table(&out);
    let convs = conversations(&rows);
    let user = "zhangsan";
    // Brute force: the conversations the user sent or received a message in.
    let mine: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.msg.from.as_deref() == Some(user) || r.msg.tolist.iter().any(|t| t == user))
        .filter_map(|r| conversation_id(&r.msg).map(|c| c.into_owned()))
        .collect();
    // More than one round of open transcripts.
    assert!(
        mine.len() > wecom_archive::compliance::export::MAX_OPEN_TRANSCRIPTS,
        "{}",
        mine.len()
    );
    let to = dir.path().join("export");
    let summary = export_ok(&out, &["--user", user, "--format", "jsonl"], &to);
    let mut got = BTreeSet::new();
    let mut union = BTreeSet::new();
    for c in summary["conversations"].as_array().unwrap() {
        let id = c["conversation_id"].as_str().unwrap().to_owned();
        let seqs = transcript_seqs(&to.join(c["path"].as_str().unwrap()));
        assert_eq!(seqs, convs[&id], "{id}");
        // Every line names its conversation.
        let file = std::fs::read_to_string(to.join(c["path"].as_str().unwrap())).unwrap();
        for l in file.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["conversation_id"], id.as_str());
            assert!(v["msgtime"].as_str().unwrap().ends_with("+08:00"), "{v}");
        }
        union.extend(seqs);
        assert!(got.insert(id), "one transcript per conversation");
    }
    assert_eq!(got, mine);
    let want: BTreeSet<i64> = mine.iter().flat_map(|id| convs[id].clone()).collect();
    assert_eq!(union, want);
    // Every message the user sent or received is in it.
    for r in rows.iter().filter(|r| r.msg.from.as_deref() == Some(user)) {
        assert!(union.contains(&r.seq), "seq {}", r.seq);
    }
    assert_eq!(summary["messages"], want.len() as u64);
    let m = verify_manifest(&to);
    assert_eq!(m["conversation_count"], mine.len() as u64);
    verify_audit(&out, &summary, "jsonl");
}

/// The crafted messages appended to a demo conversation (`lisi` ↔ `zhangsan`): Chinese text,
/// a message and its recall, hostile markup, an unknown msgtype, a `javascript:` link.
fn crafted(first_seq: u64, msgtime: i64) -> Vec<(u64, String, String)> {
    let env = |seq: u64, msgid: &str, from: &str, to: &str, body: &str| {
        let t = msgtime + seq as i64;
        (
            seq,
            msgid.to_owned(),
            format!(
                r#"{{"msgid":"{msgid}","action":"send","from":"{from}","tolist":["{to}"],"roomid":"","msgtime":{t},{body}}}"#
            ),
        )
    };
    let s = first_seq;
    vec![
        env(
            s,
            "c-zh",
            "zhangsan",
            "lisi",
            r#""msgtype":"text","text":{"content":"合同已盖章，请查收发票"}"#,
        ),
        env(
            s + 1,
            "c-recalled",
            "lisi",
            "zhangsan",
            r#""msgtype":"text","text":{"content":"这条消息会被撤回"}"#,
        ),
        env(
            s + 2,
            "c-revoke",
            "lisi",
            "zhangsan",
            r#""msgtype":"revoke","revoke":{"pre_msgid":"c-recalled"}"#,
        ),
        env(
            s + 3,
            "c-xss",
            "zhangsan",
            "lisi",
            r#""msgtype":"text","text":{"content":"<script>alert(1)</script>"}"#,
        ),
        env(
            s + 4,
            "c-title",
            "lisi",
            "zhangsan",
            r#""msgtype":"text","text":{"content":"<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"}"#,
        ),
        env(
            s + 5,
            "c-unknown",
            "zhangsan",
            "lisi",
            r#""msgtype":"hologram","hologram":{"shape":"<b>cube</b>","sides":6}"#,
        ),
        env(
            s + 6,
            "c-link",
            "lisi",
            "zhangsan",
            r#""msgtype":"link","link":{"title":"点我","description":"d","link_url":"javascript:document.title='pwned'"}"#,
        ),
    ]
}

/// A demo archive with [`crafted`] appended to the `lisi` ↔ `zhangsan` conversation through
/// the pipeline (encrypted with the test key, as WeCom would). Returns the output root.
fn demo_with_crafted(dir: &Path) -> PathBuf {
    let out = dir.join("demo");
    demo(&out, 1500);
    let last_time = table(&out)
        .iter()
        .filter_map(|r| r.msg.msgtime)
        .max()
        .unwrap();
    let wrap =
        WrapKey::from_pem(&std::fs::read_to_string(fixture("rsa_test_pub.pem")).unwrap()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let dump = dir.join("crafted.jsonl");
    let lines: Vec<String> = crafted(1501, last_time)
        .into_iter()
        .map(|(seq, msgid, pt)| {
            let rec = encrypt_record(&mut rng, &wrap, 1, seq, &msgid, pt.as_bytes());
            serde_json::to_string(&rec).unwrap()
        })
        .collect();
    std::fs::write(&dump, lines.join("\n") + "\n").unwrap();
    let mut keyring = Keyring::new(Backend::default());
    keyring
        .add_pem_file(1, &fixture("rsa_test_priv.pem"))
        .unwrap();
    let mut store = StateStore::open(&layout::state_path(&out)).unwrap();
    let mut source = wecom_archive::source::DumpSource::new(
        wecom_archive::source::file::DumpReader::open(&dump).unwrap(),
        "crafted",
    );
    let report = wecom_archive::pull::pull_source(
        &mut store,
        &wecom_archive::pull::Target {
            out: &out,
            corp_id: CORP,
            tz: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
            delta: None,
        },
        &mut source,
        &keyring,
        &wecom_archive::pipeline::RunOptions::default(),
        &AtomicBool::new(false),
        &|_| {},
    );
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.stats.written, 7, "{:?}", report.stats);
    out
}

/// The `<article>` of `msgid` in an HTML page.
fn article<'a>(html: &'a str, msgid: &str) -> &'a str {
    let start = html
        .find(&format!("data-msgid=\"{msgid}\""))
        .unwrap_or_else(|| panic!("{msgid} not in the page"));
    let start = html[..start].rfind("<article").unwrap();
    let end = start + html[start..].find("</article>").unwrap();
    &html[start..end]
}

const CONVERSATION: &str = "single:lisi:zhangsan";

#[test]
fn hostile_and_unusual_messages_are_shown_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo_with_crafted(dir.path());
    let to = dir.path().join("export");
    let summary = export_ok(
        &out,
        &["--conversation", CONVERSATION, "--format", "html"],
        &to,
    );
    let page = to.join(summary["conversations"][0]["path"].as_str().unwrap());
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("Content-Security-Policy"));
    // Chinese text, as is.
    assert!(article(&html, "c-zh").contains("合同已盖章，请查收发票"));
    // The recalled message is marked, and the recall names it.
    let recalled = article(&html, "c-recalled");
    assert!(recalled.contains("class=\"msg revoked\""), "{recalled}");
    assert!(recalled.contains("revoked-marker") && recalled.contains("这条消息会被撤回"));
    let revoke = article(&html, "c-revoke");
    assert!(
        revoke.contains("class=\"msg revoke\"") && revoke.contains("c-recalled"),
        "{revoke}"
    );
    // Markup in a message is text.
    let xss = article(&html, "c-xss");
    assert!(
        xss.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{xss}"
    );
    assert_eq!(html.matches("<script").count(), 0);
    assert!(!html.contains("onerror=\""), "an attribute from a message");
    // An unknown msgtype: its raw JSON, escaped, in a <pre>.
    let unknown = article(&html, "c-unknown");
    assert!(unknown.contains("<pre class=\"raw\">"), "{unknown}");
    assert!(unknown.contains("&lt;b&gt;cube&lt;/b&gt;") && unknown.contains("hologram"));
    // A javascript: URL is never a link.
    let link = article(&html, "c-link");
    assert!(!link.contains("href=\"javascript"), "{link}");
    assert!(link.contains("点我"));

    // CSV and JSON Lines carry the same texts, exactly.
    for format in ["csv", "jsonl"] {
        let to = dir.path().join(format!("export-{format}"));
        let summary = export_ok(
            &out,
            &["--conversation", CONVERSATION, "--format", format],
            &to,
        );
        let path = to.join(summary["conversations"][0]["path"].as_str().unwrap());
        let s = std::fs::read_to_string(&path).unwrap();
        if format == "csv" {
            let records = parse_csv(s.strip_prefix('\u{feff}').unwrap());
            let col = |name: &str| records[0].iter().position(|h| h == name).unwrap();
            let by_msgid: BTreeMap<&str, &Vec<String>> = records[1..]
                .iter()
                .map(|r| (r[col("msgid")].as_str(), r))
                .collect();
            assert_eq!(by_msgid["c-xss"][col("text")], "<script>alert(1)</script>");
            assert_eq!(by_msgid["c-zh"][col("text")], "合同已盖章，请查收发票");
            assert_eq!(
                by_msgid["c-recalled"][col("recalled_by")],
                by_msgid["c-revoke"][col("seq")]
            );
            let raw: Value = serde_json::from_str(&by_msgid["c-unknown"][col("raw_json")]).unwrap();
            assert_eq!(raw["hologram"]["sides"], 6);
        } else {
            let lines: BTreeMap<String, Value> = s
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .map(|v| (v["msgid"].as_str().unwrap().to_owned(), v))
                .collect();
            assert_eq!(lines["c-xss"]["text"], "<script>alert(1)</script>");
            assert_eq!(lines["c-recalled"]["recalled_by"], lines["c-revoke"]["seq"]);
            assert_eq!(lines["c-revoke"]["msgtype"], "revoke");
            let raw: Value =
                serde_json::from_str(lines["c-unknown"]["raw_json"].as_str().unwrap()).unwrap();
            assert_eq!(raw["hologram"]["shape"], "<b>cube</b>");
        }
        verify_manifest(&to);
    }
}

/// Runs Chromium headless with `args` on `url`, killed after 60 s; its whole process group is
/// killed when it returns, so no renderer or helper outlives the test. Returns stdout.
fn chromium(profile: &Path, args: &[&str], url: &str, stdout: &Path) -> std::process::ExitStatus {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on the process group this test created; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.wait();
            panic!("chromium did not finish within 60 s on {url}");
        }
    };
    let _ = child.wait();
    status
}

/// Whether the browser test runs: Chromium is installed, or the test fails saying how to
/// install it, unless WECOM_ARCHIVE_SKIP_BROWSER=1 says to skip.
fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var(SKIP_BROWSER_ENV).is_ok_and(|v| v == "1") {
        eprintln!(
            "skipping the headless-browser test: {CHROMIUM} is not installed and \
             {SKIP_BROWSER_ENV}=1 is set"
        );
        return false;
    }
    panic!(
        "{CHROMIUM} is not installed: install it with `apt-get install -y chromium` (CI installs \
         it in .ci/run), or set {SKIP_BROWSER_ENV}=1 to skip this test"
    );
}

#[test]
fn headless_chromium_renders_the_transcript_as_written() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = demo_with_crafted(dir.path());
    let seqs = conversations(&table(&out))[CONVERSATION].clone();
    let to = dir.path().join("export");
    let summary = export_ok(
        &out,
        &["--conversation", CONVERSATION, "--format", "html"],
        &to,
    );
    let page = to.join(summary["conversations"][0]["path"].as_str().unwrap());
    let html = std::fs::read_to_string(&page).unwrap();
    let title = {
        let t = html.split("<title>").nth(1).unwrap();
        t[..t.find("</title>").unwrap()].to_owned()
    };
    // A file URL: the `%` of the file name is itself escaped.
    let url = format!("file://{}", page.display().to_string().replace('%', "%25"));

    let dom_file = dir.path().join("dom.html");
    let status = chromium(
        &dir.path().join("profile-dom"),
        &["--dump-dom"],
        &url,
        &dom_file,
    );
    assert!(status.success(), "chromium --dump-dom: {status:?}");
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert!(
        dom.contains("data-conversation=\"single:lisi:zhangsan\""),
        "the page loaded: {dom:.300}"
    );
    // Every message, in seq order, as the table has them.
    assert_eq!(html_seqs(&dom), seqs);
    assert_eq!(dom.matches("<article class=\"msg").count(), seqs.len());
    assert!(dom.contains("合同已盖章，请查收发票"));
    assert_eq!(dom.matches("class=\"msg revoked\"").count(), 1);
    assert!(dom.contains("revoked-marker"));
    // No script ran: the title is the page's own, and no script element exists.
    let rendered_title = {
        let t = dom.split("<title>").nth(1).unwrap();
        t[..t.find("</title>").unwrap()].to_owned()
    };
    assert_eq!(rendered_title, title);
    assert!(!dom.contains("pwned</title>"));
    assert_eq!(dom.matches("<script").count(), 0);

    let png = dir.path().join("transcript.png");
    let status = chromium(
        &dir.path().join("profile-shot"),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,1600",
        ],
        &url,
        &dir.path().join("shot.out"),
    );
    assert!(status.success(), "chromium --screenshot: {status:?}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a real page, not a blank: {} bytes",
        bytes.len()
    );

    // The docs' picture (docs/img/transcript.png): the whole page, crafted messages included.
    if let Some(dest) = std::env::var_os(SCREENSHOT_ENV) {
        let status = chromium(
            &dir.path().join("profile-docs"),
            &[
                &format!("--screenshot={}", Path::new(&dest).display()),
                "--window-size=1000,2300",
                "--hide-scrollbars",
                "--virtual-time-budget=2000",
            ],
            &url,
            &dir.path().join("docs.out"),
        );
        assert!(status.success(), "chromium --screenshot: {status:?}");
    }
}

#[test]
fn downloaded_media_is_copied_into_the_export_and_linked() {
    let dir = tempfile::tempdir().unwrap();
    let corp = "wwsimexport";
    let cfg = dir.path().join("wecom-archive.toml");
    std::fs::write(
        &cfg,
        format!(
            "out = \"archive\"\ntimezone = \"UTC\"\n\n[[corp]]\ncorp_id = \"{corp}\"\n\
             source = \"sim\"\nsim_messages = 1500\n"
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["pull", "--once", "--media", "-q", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.path().join("archive");
    // The one-to-one conversation with the most media.
    let mut rows = Vec::new();
    for day in std::fs::read_dir(layout::corp_messages(&out, corp)).unwrap() {
        for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if !p.to_string_lossy().ends_with(".parquet") {
                continue;
            }
            let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in r {
                let b = b.unwrap();
                let raw = b.column_by_name("raw_json").unwrap();
                let raw = raw.as_any().downcast_ref::<StringArray>().unwrap();
                for i in 0..b.num_rows() {
                    rows.push(parse(raw.value(i).as_bytes()).unwrap());
                }
            }
        }
    }
    let mut media_per_conv: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &rows {
        if let Some(id) = conversation_id(m).filter(|id| id.starts_with("single:")) {
            let e = media_per_conv.entry(id.into_owned()).or_default();
            e.extend(m.media().into_iter().map(|r| r.sdkfileid));
        }
    }
    let (id, sdkfileids) = media_per_conv
        .into_iter()
        .max_by_key(|(_, v)| v.len())
        .unwrap();
    assert!(sdkfileids.len() >= 2, "{id}: {sdkfileids:?}");
    let to = dir.path().join("export");
    let o = Command::new(BIN)
        .args(["export", "--json", "--config"])
        .arg(&cfg)
        .args([
            "--corp",
            corp,
            "--conversation",
            &id,
            "--format",
            "html",
            "--to-dir",
        ])
        .arg(&to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["media_missing"], 0);
    // One file per content: media ids whose files are equal share one copy.
    let store = StateStore::open(&layout::state_path(&out)).unwrap();
    let contents: BTreeSet<String> = sdkfileids
        .iter()
        .map(|f| store.media_file(corp, f).unwrap().unwrap().sha256.unwrap())
        .collect();
    assert_eq!(summary["media_files"], contents.len() as u64, "{summary}");
    let m = verify_manifest(&to);
    let media: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .filter(|p| p.starts_with("media/"))
        .collect();
    assert_eq!(media.len(), contents.len());
    let html =
        std::fs::read_to_string(to.join(summary["conversations"][0]["path"].as_str().unwrap()))
            .unwrap();
    for p in &media {
        // Content-addressed, as in the archive, and linked from the page.
        let stem = Path::new(p)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(sha256_hex(&std::fs::read(to.join(p)).unwrap()), stem);
        assert!(html.contains(&format!("href=\"{p}\"")), "{p} not linked");
    }
    assert!(!html.contains("class=\"media-missing\""));
    // The config's time zone.
    assert!(html.contains("(UTC)"), "the header names the time zone");
    assert_eq!(store.exports(corp, 10).unwrap().len(), 1);
}

/// Not a test: builds the archive of the measurement in docs/compliance.md ("Evidence export",
/// cost), one conversation of 100,000 messages, under `$WECOM_ARCHIVE_EXPORT_MEASURE`. Run with
/// `WECOM_ARCHIVE_EXPORT_MEASURE=/tmp/m cargo test --release --test it export::measure -- --ignored`.
#[test]
#[ignore = "builds the archive for a measurement; see docs/compliance.md"]
fn measure_build_archive_of_one_large_conversation() {
    let Some(root) = std::env::var_os("WECOM_ARCHIVE_EXPORT_MEASURE") else {
        eprintln!("set WECOM_ARCHIVE_EXPORT_MEASURE=DIR");
        return;
    };
    let root = PathBuf::from(root);
    let out = root.join("archive");
    let n: u64 = 100_000;
    let wrap =
        WrapKey::from_pem(&std::fs::read_to_string(fixture("rsa_test_pub.pem")).unwrap()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(100_000);
    let dump = root.join("large.jsonl");
    std::fs::create_dir_all(&root).unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&dump).unwrap());
    let phrases = [
        "合同已发您邮箱，请查收",
        "好的，收到",
        "Please check the attachment.",
        "明天上午十点开会",
    ];
    for seq in 1..=n {
        let (from, to) = if seq % 2 == 0 {
            ("lisi", "zhangsan")
        } else {
            ("zhangsan", "lisi")
        };
        let t = 1_795_104_000_000 + seq as i64 * 2_000;
        let msgid = format!("large-{seq}");
        let content = phrases[(seq % 4) as usize].repeat(1 + (seq % 7) as usize);
        let pt = format!(
            r#"{{"msgid":"{msgid}","action":"send","from":"{from}","tolist":["{to}"],"roomid":"","msgtime":{t},"msgtype":"text","text":{{"content":"{content} #{seq}"}}}}"#
        );
        let rec = encrypt_record(&mut rng, &wrap, 1, seq, &msgid, pt.as_bytes());
        use std::io::Write;
        writeln!(w, "{}", serde_json::to_string(&rec).unwrap()).unwrap();
    }
    drop(w);
    let mut keyring = Keyring::new(Backend::default());
    keyring
        .add_pem_file(1, &fixture("rsa_test_priv.pem"))
        .unwrap();
    let mut store = StateStore::open(&layout::state_path(&out)).unwrap();
    let mut source = wecom_archive::source::DumpSource::new(
        wecom_archive::source::file::DumpReader::open(&dump).unwrap(),
        "large",
    );
    let report = wecom_archive::pull::pull_source(
        &mut store,
        &wecom_archive::pull::Target {
            out: &out,
            corp_id: CORP,
            tz: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
            delta: None,
        },
        &mut source,
        &keyring,
        &wecom_archive::pipeline::RunOptions {
            commit_every: 10_000,
            ..Default::default()
        },
        &AtomicBool::new(false),
        &|_| {},
    );
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.stats.written, n);
    eprintln!("archive of {n} messages in {}", out.display());
}
