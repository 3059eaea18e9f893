//! `compact`: ten incremental runs' small files become one file per day, every seq stays exactly
//! once (rows and dead letters), through crashes at every step and while a pull holds the corp.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use arrow_array::{Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wecom_archive::sink::compact::FAULT_ENV;
use wecom_archive::sink::inventory::scan;
use wecom_archive::sink::layout;
use wecom_archive::sink::lock::CorpLock;
use wecom_archive::state::StateStore;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const CORP: &str = "wwcompact";

fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.env("WECOM_ARCHIVE_LOG", "error")
        .env_remove("WECOM_ARCHIVE_CONFIG")
        .env_remove(FAULT_ENV);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A demo run up to `messages`, a commit (one file per day touched) every 100 records, one
/// dead letter every 250.
fn demo(out: &Path, messages: u64) -> Output {
    bin()
        .args(["demo", "--corp-id", CORP, "--commit-every", "100"])
        .args(["--corrupt-every", "250", "--messages"])
        .arg(messages.to_string())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn compact(out: &Path) -> Command {
    let mut c = bin();
    c.args(["compact", "--json", "--out"]).arg(out);
    c
}

/// Committed part files per `date=` folder.
fn files_per_day(out: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut days = BTreeMap::new();
    let corp = layout::corp_messages(out, CORP);
    for day in std::fs::read_dir(&corp).unwrap() {
        let day = day.unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(day.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| layout::is_part_file(&p.file_name().unwrap().to_string_lossy()))
            .collect();
        files.sort();
        days.insert(day.file_name().to_string_lossy().into_owned(), files);
    }
    days
}

/// Every (seq, msgid) of the messages table, and whether each file's rows are in seq order.
fn rows(out: &Path) -> (Vec<(i64, String)>, bool) {
    let (mut all, mut sorted) = (Vec::new(), true);
    for files in files_per_day(out).values() {
        for f in files {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap())
                .unwrap()
                .build()
                .unwrap();
            let mut last = i64::MIN;
            for batch in reader {
                let batch = batch.unwrap();
                let seq = batch["seq"].as_any().downcast_ref::<Int64Array>().unwrap();
                let msgid = batch["msgid"]
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                for i in 0..batch.num_rows() {
                    sorted &= seq.value(i) >= last;
                    last = seq.value(i);
                    all.push((seq.value(i), msgid.value(i).to_owned()));
                }
            }
        }
    }
    all.sort();
    (all, sorted)
}

fn checkpoint(out: &Path) -> Option<u64> {
    StateStore::open(&layout::state_path(out))
        .unwrap()
        .checkpoint(CORP)
        .unwrap()
}

/// What must never change: every seq once (as a row or a dead letter), the msgids, the
/// checkpoint.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    seqs: BTreeSet<u64>,
    msgids: BTreeSet<String>,
    checkpoint: Option<u64>,
}

fn facts(out: &Path) -> Facts {
    let inv = scan(out).unwrap();
    assert_eq!(inv.duplicate_seqs(), Vec::<u64>::new(), "a seq twice");
    assert_eq!(inv.temporaries, 0, "temporaries left behind");
    let seqs: BTreeSet<u64> = inv.seqs.iter().chain(&inv.dead_seqs).copied().collect();
    assert_eq!(seqs.len(), inv.seqs.len() + inv.dead_seqs.len());
    let (rows, _) = rows(out);
    let msgids: BTreeSet<String> = rows.into_iter().map(|(_, m)| m).collect();
    assert_eq!(msgids.len() as u64, inv.rows(), "a msgid twice");
    Facts {
        seqs,
        msgids,
        checkpoint: checkpoint(out),
    }
}

/// Ten incremental demo runs: 300 new records each, ~30 files over two days.
fn ten_runs(out: &Path) {
    for run in 1..=10 {
        let o = demo(out, 300 * run);
        assert!(o.status.success(), "demo {run}: {}", text(&o));
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn ten_incremental_runs_compact_to_one_file_per_day_and_pulls_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ten_runs(&out);
    let before = facts(&out);
    assert_eq!(before.seqs, (1..=3000).collect());
    assert_eq!(before.checkpoint, Some(3000));
    let days = files_per_day(&out);
    assert!(
        days.values().any(|f| f.len() >= 10),
        "the runs should leave many small files: {days:?}"
    );

    // The media scan has read every file but one of the fullest day's.
    let corp_dir = layout::corp_messages(&out, CORP);
    let rel = |p: &Path| {
        p.strip_prefix(&corp_dir)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let (unread_day, _) = days.iter().max_by_key(|(_, f)| f.len()).unwrap();
    {
        let store = StateStore::open(&layout::state_path(&out)).unwrap();
        for (day, files) in &days {
            let skip = usize::from(day == unread_day);
            for f in &files[skip..] {
                store.mark_media_scanned(CORP, &rel(f)).unwrap();
            }
        }
    }

    let o = compact(&out).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let corp = &summary["corps"][0];
    assert_eq!(corp["corp_id"], CORP);
    assert_eq!(summary["failed"], serde_json::json!([]));
    let compacted = corp["partitions"].as_array().unwrap();
    assert_eq!(
        compacted.len(),
        days.values().filter(|f| f.len() > 1).count()
    );
    for p in compacted {
        let files = &days[&format!("date={}", p["date"].as_str().unwrap())];
        assert_eq!(p["files_before"], files.len());
        assert_eq!(p["files_after"], 1);
    }

    // One file per day (all far below 128 MiB), sorted by seq, nothing lost or doubled.
    for (day, files) in files_per_day(&out) {
        assert_eq!(files.len(), 1, "{day}: {files:?}");
        let meta = ParquetRecordBatchReaderBuilder::try_new(File::open(&files[0]).unwrap())
            .unwrap()
            .metadata()
            .clone();
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(
            kv.iter().any(|k| k.key == layout::SCHEMA_VERSION_KEY),
            "{day}: no schema version"
        );
    }
    assert!(rows(&out).1, "rows out of seq order");
    // A merged file counts as read by the media scan when all its inputs were.
    let scanned = StateStore::open(&layout::state_path(&out))
        .unwrap()
        .media_scanned_files(CORP)
        .unwrap();
    for (day, files) in files_per_day(&out) {
        assert_eq!(
            scanned.contains(&rel(&files[0])),
            &day != unread_day,
            "{day}"
        );
    }
    assert_eq!(facts(&out), before);
    let retired: Vec<_> = walk(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".retired-"))
        .collect();
    assert!(retired.is_empty(), "{retired:?}");

    // Compacting again changes nothing.
    let o = compact(&out).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["corps"][0]["partitions"], serde_json::json!([]));

    // The next run appends after the unchanged checkpoint, exactly once.
    let o = demo(&out, 3600);
    assert!(o.status.success(), "{}", text(&o));
    let after = facts(&out);
    assert_eq!(after.seqs, (1..=3600).collect());
    assert!(after.msgids.is_superset(&before.msgids));
    assert_eq!(after.checkpoint, Some(3600));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_crash_at_any_step_leaves_every_seq_once_after_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    ten_runs(&base);
    let expected = facts(&base);
    let mut trees = 0;
    for step in [
        "written",
        "journaled",
        "published",
        "retired-one",
        "completed",
    ] {
        // The next start is a compaction, or a pull (whose recovery finishes the journal).
        for restart in ["compact", "pull"] {
            trees += 1;
            let out = dir.path().join(format!("t{trees}"));
            copy_tree(&base, &out);
            let o = compact(&out).env(FAULT_ENV, step).output().unwrap();
            assert!(!o.status.success(), "{step}: {}", text(&o));
            assert!(text(&o).contains(step), "{step}: {}", text(&o));
            match restart {
                "compact" => {
                    let o = compact(&out).output().unwrap();
                    assert!(o.status.success(), "{step}: {}", text(&o));
                    assert_eq!(facts(&out), expected, "{step}, then compact");
                    assert!(files_per_day(&out).values().all(|f| f.len() == 1));
                }
                _ => {
                    let o = demo(&out, 3000);
                    assert!(o.status.success(), "{step}: {}", text(&o));
                    assert_eq!(facts(&out), expected, "{step}, then a pull");
                }
            }
        }
    }

    // Kills at arbitrary moments: a compaction of this tree takes ~140 ms (debug build), most
    // of it merging; the later delays land after it ended.
    for (i, delay_ms) in [5u64, 15, 30, 50, 70, 100, 150].into_iter().enumerate() {
        let out = dir.path().join(format!("k{i}"));
        copy_tree(&base, &out);
        let mut child = compact(&out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let o = compact(&out).output().unwrap();
        assert!(o.status.success(), "kill after {delay_ms} ms: {}", text(&o));
        assert_eq!(facts(&out), expected, "kill after {delay_ms} ms");
        assert!(files_per_day(&out).values().all(|f| f.len() == 1));
    }
}

#[test]
fn compact_and_pull_of_one_corp_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for run in 1..=3 {
        assert!(demo(&out, 200 * run).status.success());
    }
    let before = facts(&out);
    let lock_file = layout::corp_lock(&out, CORP);

    // A pull holds the corp's writer lock (the same lock `pull` and `serve` take).
    let held = CorpLock::acquire(&out, CORP).unwrap();
    let o = compact(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(CORP), "{err}");
    assert!(err.contains(&lock_file.display().to_string()), "{err}");
    assert_eq!(facts(&out), before);

    // ... and a pull is refused while a compaction holds it.
    let o = demo(&out, 800);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&lock_file.display().to_string()),
        "{}",
        text(&o)
    );
    drop(held);

    let o = compact(&out).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(facts(&out), before);

    // A tree without a state database (copied without it): compact creates one.
    let bare = dir.path().join("bare");
    copy_tree(&out, &bare);
    std::fs::remove_dir_all(bare.join(layout::META_DIR)).unwrap();
    let o = compact(&bare).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(layout::state_path(&bare).exists());
}

fn sim_config(dir: &Path, messages: u64) -> PathBuf {
    let cfg = dir.join("wecom-archive.toml");
    std::fs::write(
        &cfg,
        format!(
            "out = \"out\"\ntimezone = \"UTC\"\npoll_interval_secs = 1\n\
             [[corp]]\ncorp_id = \"{CORP}\"\nsource = \"sim\"\nsim_messages = {messages}\n"
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn pull_follow_compacts_closed_days_after_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Three one-off pulls: several files per day, and no compaction (only --follow compacts).
    for messages in [1000, 2000, 3000] {
        let cfg = sim_config(dir.path(), messages);
        let o = bin()
            .args(["pull", "--once", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let before = facts(&out);
    assert_eq!(before.seqs, (1..=3000).collect());
    assert!(files_per_day(&out).values().any(|f| f.len() > 1));

    // The simulated days (November 2026) are closed by now: the first round compacts them.
    let mut child = bin()
        .args(["pull", "--follow", "--json", "--config"])
        .arg(sim_config(dir.path(), 3000))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !files_per_day(&out).values().all(|f| f.len() == 1) {
        assert!(std::time::Instant::now() < deadline, "no compaction");
        assert!(child.try_wait().unwrap().is_none(), "pull --follow exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = &summary["corps"][0];
    assert_eq!(first["compaction"]["error"], serde_json::Value::Null);
    assert!(
        first["compaction"]["partitions"].as_u64().unwrap() >= 1,
        "{first}"
    );
    assert_eq!(facts(&out), before);
}

#[test]
fn a_large_day_becomes_several_files_and_unsorted_or_repeated_input_comes_out_sorted() {
    use arrow_array::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use wecom_archive::sink::compact::{compact_corp, CompactOptions};

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ten_runs(&out);
    let (day, files) = files_per_day(&out)
        .into_iter()
        .max_by_key(|(_, f)| f.len())
        .unwrap();
    // A file this tool never writes: one of the day's files again, rows in reverse seq order.
    let source = &files[3];
    let batches: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(File::open(source).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let copy = source.with_file_name(layout::part_file_distinct(1, 2, "reversed"));
    let mut w =
        ArrowWriter::try_new(File::create(&copy).unwrap(), batches[0].schema(), None).unwrap();
    for b in batches.iter().rev() {
        for i in (0..b.num_rows()).rev() {
            w.write(&b.slice(i, 1)).unwrap();
        }
    }
    w.close().unwrap();
    let (rows_before, _) = rows(&out);
    let bytes: u64 = files_per_day(&out)[&day]
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();

    let options = CompactOptions {
        target_file_bytes: bytes / 3 + 1,
        ..CompactOptions::default()
    };
    let stats = compact_corp(&out, &layout::state_path(&out), CORP, &options, &|_| {}).unwrap();
    let p = stats
        .partitions
        .iter()
        .find(|p| format!("date={}", p.date) == day)
        .unwrap();
    assert_eq!(p.files_after, 3, "{p:?}");
    let (rows_after, sorted) = rows(&out);
    assert!(sorted, "rows out of seq order");
    assert_eq!(rows_after, rows_before, "rows changed");
    // The day's files cover consecutive seq ranges and are named by them.
    let mut last = 0;
    for f in &files_per_day(&out)[&day] {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let seqs: Vec<i64> = reader
            .flat_map(|b| {
                let b = b.unwrap();
                let s = b["seq"].as_any().downcast_ref::<Int64Array>().unwrap();
                s.values().to_vec()
            })
            .collect();
        let (first, high) = (seqs[0] as u64, *seqs.last().unwrap() as u64);
        assert!(first >= last, "{f:?} overlaps the file before it");
        last = high;
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&layout::part_file(first, high).replace(".parquet", "")),
            "{name}"
        );
    }
}

#[test]
fn a_seq_repeated_across_the_split_gets_a_name_of_its_own() {
    use parquet::arrow::ArrowWriter;
    use wecom_archive::sink::compact::{compact_corp, CompactOptions};

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(demo(&out, 60).status.success());
    // A day holding six copies of one row (seq 1), each in a file of its own.
    let (_, files) = files_per_day(&out).into_iter().next().unwrap();
    let first = ParquetRecordBatchReaderBuilder::try_new(File::open(&files[0]).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .slice(0, 1);
    let day = layout::corp_messages(&out, CORP).join("date=2026-01-01");
    std::fs::create_dir(&day).unwrap();
    for copy in 0..6 {
        let path = day.join(layout::part_file_distinct(1, 1, &format!("copy{copy}")));
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), first.schema(), None).unwrap();
        w.write(&first).unwrap();
        w.close().unwrap();
    }
    let (before, _) = rows(&out);
    let largest = files_per_day(&out)["date=2026-01-01"]
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .max()
        .unwrap();

    // A target just above one file: six outputs of one row each, all of the range 1-1.
    let options = CompactOptions {
        target_file_bytes: largest + 1,
        ..CompactOptions::default()
    };
    let stats = compact_corp(&out, &layout::state_path(&out), CORP, &options, &|_| {}).unwrap();
    assert_eq!(stats.partitions[0].files_after, 6, "{stats:?}");
    let (after, _) = rows(&out);
    assert_eq!(after, before);
    let names: BTreeSet<_> = files_per_day(&out)["date=2026-01-01"]
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 6);
    assert!(names.contains(std::ffi::OsStr::new(&layout::part_file(1, 1))));
    assert_eq!(scan(&out).unwrap().temporaries, 0);
}
