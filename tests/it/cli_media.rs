//! `wecom-archive media` and `pull --media` end to end on a simulated corp: every media
//! reference of the pulled messages (also inside mixed/chatrecord items) ends as a verified,
//! content-addressed file, joined to its message by the media table; a SIGKILL mid-run resumes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wecom_archive::sink::layout;
use wecom_archive::state::{MediaStatus, StateStore};

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const CORP: &str = "wwsimmedia";

fn write_config(dir: &Path, messages: u64) -> PathBuf {
    write_config_with(dir, "out = \"archive\"", messages)
}

/// A config of the simulated corp with `head` (the output settings) before its sections.
fn write_config_with(dir: &Path, head: &str, messages: u64) -> PathBuf {
    let cfg = dir.join("wecom-archive.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
timezone = "UTC"
{head}

[[corp]]
corp_id = "{CORP}"
source = "sim"
sim_messages = {messages}
"#
        ),
    )
    .unwrap();
    cfg
}

fn run(cfg: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A media table row.
#[derive(Debug)]
struct Row {
    msgid: String,
    kind: String,
    status: String,
    md5: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    sha256: Option<String>,
}

/// The media table of `CORP` under the output root `out`.
fn media_table(out: &Path) -> Vec<Row> {
    let table = layout::corp_media_files(out, CORP).join(layout::MEDIA_FILES_FILE);
    let f = std::fs::File::open(table).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for b in reader {
        media_rows_of(&b.unwrap(), &mut rows);
    }
    rows
}

fn media_rows_of(b: &RecordBatch, rows: &mut Vec<Row>) {
    let s = |n: &str| {
        b.column_by_name(n)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone()
    };
    let (msgid, kind, status, md5, path, sha) = (
        s("msgid"),
        s("kind"),
        s("status"),
        s("md5"),
        s("path"),
        s("sha256"),
    );
    let size = b
        .column_by_name("size")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .clone();
    let opt = |a: &StringArray, i| (!a.is_null(i)).then(|| a.value(i).to_owned());
    for i in 0..b.num_rows() {
        rows.push(Row {
            msgid: msgid.value(i).to_owned(),
            kind: kind.value(i).to_owned(),
            status: status.value(i).to_owned(),
            md5: opt(&md5, i),
            path: opt(&path, i),
            size: (!size.is_null(i)).then(|| size.value(i) as u64),
            sha256: opt(&sha, i),
        });
    }
}

/// msgid → media_count of every message row.
fn messages_with_media(root: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for date in std::fs::read_dir(layout::corp_messages(root, CORP)).unwrap() {
        let date = date.unwrap().path();
        if !date
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("date=")
        {
            continue;
        }
        for f in std::fs::read_dir(&date).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                media_counts_of(&b.unwrap(), &mut out);
            }
        }
    }
    out
}

fn media_counts_of(b: &RecordBatch, out: &mut BTreeMap<String, u32>) {
    let ids = b.column_by_name("msgid").unwrap();
    let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
    let n = b.column_by_name("media_count").unwrap();
    let n = n.as_any().downcast_ref::<Int32Array>().unwrap();
    for i in 0..b.num_rows() {
        if n.value(i) > 0 {
            out.insert(ids.value(i).to_owned(), n.value(i) as u32);
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `media/corp_id=…/` (outside `.partial`) is complete: named by its content's
/// SHA-256.
fn assert_final_files_complete(out: &Path) -> usize {
    let mut n = 0;
    for shard in std::fs::read_dir(layout::corp_media(out, CORP)).unwrap() {
        let shard = shard.unwrap();
        if shard.file_name() == ".partial" {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).unwrap() {
            let p = f.unwrap().path();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(sha256_hex(&std::fs::read(&p).unwrap()), stem, "{p:?}");
            n += 1;
        }
    }
    n
}

/// The whole media table is done and verified, and joins every message that has media.
fn assert_all_media_verified(out: &Path) {
    assert_media_verified(media_table(out), messages_with_media(out), out);
}

/// `rows` (the media table) are all done and verified, with their files under `files` (the
/// media folder), and join every message of `with_media`.
fn assert_media_verified(rows: Vec<Row>, with_media: BTreeMap<String, u32>, files: &Path) {
    let mut per_msg = BTreeMap::<&str, u32>::new();
    for r in &rows {
        *per_msg.entry(&r.msgid).or_default() += 1;
        assert_eq!(r.status, "done", "{r:?}");
        let want = if r.kind == "meeting_voice_call" {
            "absent"
        } else {
            "ok"
        };
        assert_eq!(r.md5.as_deref(), Some(want), "{r:?}");
        // `path` is relative to the media folder.
        let path = files.join(r.path.as_ref().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(Some(bytes.len() as u64), r.size);
        assert_eq!(Some(sha256_hex(&bytes)), r.sha256);
    }
    // The join: each message's media_count matches its media table rows.
    let per_msg: BTreeMap<String, u32> = per_msg
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(per_msg, with_media);
    let kinds: BTreeSet<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert!(kinds.len() >= 5, "{kinds:?}");
    assert_final_files_complete(files);
    let partial: Vec<_> = std::fs::read_dir(layout::corp_media(files, CORP).join(".partial"))
        .map(|d| d.flatten().filter(|e| e.file_name() != ".lock").collect())
        .unwrap_or_default();
    assert!(partial.is_empty(), "{partial:?}");
}

#[test]
fn pull_with_media_downloads_every_reference_verified_and_joined() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 1200);
    let text = run(&cfg, &["pull", "--once", "--media", "--concurrency", "3"]);
    assert!(text.contains("1200 records in"), "{text}");
    assert!(text.contains("0 failed, 0 failed permanently"), "{text}");
    let corp_dir = dir.path().join("archive");
    assert_all_media_verified(&corp_dir);
    // Media files are not message rows: inspect still counts 1200.
    let inv = wecom_archive::sink::inventory::scan(&dir.path().join("archive")).unwrap();
    assert_eq!(inv.rows(), 1200);
    // Nothing left to do on a second run, and the scanned files are not read again.
    let text = run(&cfg, &["media"]);
    assert!(
        text.contains("media: 0 new media references, 0 files tried"),
        "{text}"
    );
    // More messages land: only their media is new.
    write_config(dir.path(), 1500);
    let text = run(&cfg, &["pull", "--once", "--media"]);
    assert!(text.contains("300 records in"), "{text}");
    assert!(!text.contains("media: 0 new media references"), "{text}");
    assert_all_media_verified(&corp_dir);
}

#[test]
fn types_and_max_size_select_what_is_downloaded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 600);
    run(&cfg, &["pull", "--once"]);
    run(
        &cfg,
        &["media", "--types", "image,file", "--max-size", "40000"],
    );
    let corp_dir = dir.path().join("archive");
    let rows = media_table(&corp_dir);
    assert!(rows.iter().any(|r| r.status == "done"));
    for r in &rows {
        let selected = (r.kind == "image" || r.kind == "file") && r.size.is_none_or(|s| s <= 40000);
        if r.status == "done" {
            assert!(selected, "{r:?}");
        } else {
            assert_eq!(r.status, "pending", "{r:?}");
        }
    }
    let o = Command::new(BIN)
        .args(["media", "--types", "picture", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown media kind"));
    // The rest comes with a plain run.
    run(&cfg, &["media"]);
    assert_all_media_verified(&corp_dir);
}

#[test]
fn a_killed_media_run_resumes_and_ends_verified() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 3000);
    run(&cfg, &["pull", "--once"]);
    let state = layout::state_path(&dir.path().join("archive"));
    let corp_dir = dir.path().join("archive");
    let mut child = Command::new(BIN)
        .args(["media", "--concurrency", "2", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some files are done (or give up waiting and kill it wherever it is).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        let done = StateStore::open(&state)
            .ok()
            .and_then(|s| s.media_files(CORP).ok())
            .map_or(0, |f| {
                f.iter().filter(|f| f.status == MediaStatus::Done).count()
            });
        if done >= 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    // Whatever the kill interrupted, no partial file is under a final name.
    assert_final_files_complete(&corp_dir);
    run(&cfg, &["media"]);
    assert_all_media_verified(&corp_dir);
}

#[test]
fn the_config_media_section_downloads_on_pull() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 400);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}\n[media]\non_pull = true\ntypes = [\"image\"]\nconcurrency = 1\n"),
    )
    .unwrap();
    let out = run(&cfg, &["pull", "--once"]);
    assert!(out.contains("media: "), "{out}");
    let rows = media_table(&dir.path().join("archive"));
    assert!(rows.iter().any(|r| r.kind == "image" && r.status == "done"));
    assert!(
        rows.iter()
            .all(|r| (r.kind == "image") == (r.status == "done")),
        "{rows:?}"
    );
}

/// The media table and the messages' media counts of the Delta tables under `target`, with the
/// number of live files of the corp's media partition.
fn delta_media(
    target: &wecom_archive::sink::delta::DeltaTarget,
) -> (Vec<Row>, BTreeMap<String, u32>, usize) {
    use wecom_archive::sink::delta::{read, TableKind};
    let ours = |p: &read::PartitionValues| p.get("corp_id") == Some(&Some(CORP.to_owned()));
    let mut rows = Vec::new();
    for (p, b) in read::read_rows(target, TableKind::MediaFiles).unwrap() {
        if ours(&p) {
            media_rows_of(&b, &mut rows);
        }
    }
    let mut counts = BTreeMap::new();
    for (p, b) in read::read_rows(target, TableKind::Messages).unwrap() {
        if ours(&p) {
            media_counts_of(&b, &mut counts);
        }
    }
    let files = read::view(target, TableKind::MediaFiles)
        .unwrap()
        .files
        .iter()
        .filter(|f| ours(&f.partition))
        .count();
    (rows, counts, files)
}

/// Media with Delta output: the references come from the Delta `messages` table, the files go to
/// the local media folder, and the `media_files` table is the corp's partition, replaced in one
/// commit by every run (one live file).
fn delta_media_run(out: &str, media_dir: Option<&str>, env: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let media = media_dir.map_or(String::new(), |d| format!("\n[media]\ndir = \"{d}\""));
    let head =
        format!("out = \"{out}\"\nformat = \"delta\"\nstate = \"state/state.sqlite\"{media}");
    let write = |messages: u64| write_config_with(dir.path(), &head, messages);
    let run = |cfg: &Path, args: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(cfg)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let files = match media_dir {
        Some(d) => dir.path().join(d),
        None => PathBuf::from(out),
    };
    let target = wecom_archive::sink::delta::DeltaTarget::open_with(out, env).unwrap();
    let cfg = write(1200);
    let text = run(&cfg, &["pull", "--once", "--media", "--concurrency", "3"]);
    assert!(text.contains("1200 records in"), "{text}");
    assert!(text.contains("0 failed, 0 failed permanently"), "{text}");
    let (rows, counts, live) = delta_media(&target);
    assert_eq!(live, 1);
    assert_media_verified(rows, counts, &files);
    let text = run(&cfg, &["media"]);
    assert!(
        text.contains("media: 0 new media references, 0 files tried"),
        "{text}"
    );
    // More messages land: only their media is new, and the partition is replaced, not added to.
    let cfg = write(1500);
    let text = run(&cfg, &["pull", "--once", "--media"]);
    assert!(text.contains("300 records in"), "{text}");
    assert!(!text.contains("media: 0 new media references"), "{text}");
    let (rows, counts, live) = delta_media(&target);
    assert_eq!(live, 1);
    assert_media_verified(rows, counts, &files);
}

#[test]
fn media_with_delta_output_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The folder's own path: media files go under it, as with Parquet.
    delta_media_run(out.to_str().unwrap(), None, &[]);
}

#[test]
fn media_with_delta_output_on_s3_keeps_files_in_the_media_dir() {
    let Some(s3) = crate::s3::S3Server::start() else {
        return;
    };
    let out = format!("s3://{}/media", s3.bucket());
    // Without a local folder for the files, the config says what to set.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "out = \"{out}\"\nformat = \"delta\"\nstate = \"s.sqlite\"\n[media]\non_pull = true\n\
             [[corp]]\ncorp_id = \"{CORP}\"\nsource = \"sim\"\n"
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["pull", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("set [media] dir"), "{err}");
    delta_media_run(&out, Some("media-files"), &s3.env());
}
