//! `wecom-archive migrate` upgrades a tree in schema version 2 (the committed fixture
//! `tests/fixtures/schema-2`, written by that release's binary: see its README) to the current
//! schema: the conversation columns are added, derived as a fresh run derives them, nothing is
//! lost, also when the upgrade is killed at any step; until then, commands refuse the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::{Array, BooleanArray, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wecom_archive::migrate::{is_legacy, FAULT_ENV};
use wecom_archive::model::schema::SCHEMA_VERSION;
use wecom_archive::sink::inventory::scan;
use wecom_archive::sink::layout;
use wecom_archive::state::StateStore;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-2");
const CORP: &str = "wwschema20000001";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn run(args: &[&str], root: &Path, env: Option<(&str, &str)>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(root);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if !name.starts_with('.') && name.ends_with(".parquet") {
            out.push(p);
        }
    }
}

/// One row as the test compares it: msgid, and the conversation columns when the file has them.
type Row = (String, Option<(Option<String>, Option<String>, bool)>);

/// Every row of the messages under `dir` by seq, and the schema versions of the files.
fn rows(dir: &Path) -> (BTreeMap<i64, Row>, BTreeSet<String>) {
    let mut files = Vec::new();
    parquet_files(dir, &mut files);
    let mut out = BTreeMap::new();
    let mut versions = BTreeSet::new();
    for p in files {
        let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap()).unwrap();
        let kv = b.metadata().file_metadata().key_value_metadata().cloned();
        let version = kv
            .unwrap_or_default()
            .into_iter()
            .find(|k| k.key == layout::SCHEMA_VERSION_KEY)
            .and_then(|k| k.value)
            .unwrap_or_default();
        versions.insert(version);
        for batch in b.build().unwrap() {
            let batch = batch.unwrap();
            let col = |n: &str| batch.column_by_name(n).cloned();
            let seq = col("seq").unwrap();
            let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
            let msgid = col("msgid").unwrap();
            let msgid = msgid.as_any().downcast_ref::<StringArray>().unwrap();
            let conv = col("conversation_id").map(|c| {
                let t = col("chat_type").unwrap();
                let e = col("is_external_sender").unwrap();
                (c, t, e)
            });
            for i in 0..batch.num_rows() {
                let derived = conv.as_ref().map(|(c, t, e)| {
                    let s = |a: &dyn Array| {
                        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
                        (!a.is_null(i)).then(|| a.value(i).to_owned())
                    };
                    let e = e.as_any().downcast_ref::<BooleanArray>().unwrap();
                    (s(c.as_ref()), s(t.as_ref()), e.value(i))
                });
                let dup = out.insert(seq.value(i), (msgid.value(i).to_owned(), derived));
                assert!(dup.is_none(), "seq {} twice", seq.value(i));
            }
        }
    }
    (out, versions)
}

/// The rows a fresh run of this release writes for the fixture's archive (same simulator and
/// seed): the reference for the derived columns.
fn fresh_rows() -> BTreeMap<i64, Row> {
    let dir = tempfile::tempdir().unwrap();
    for n in ["100", "200", "300"] {
        let o = run(
            &[
                "demo",
                "--messages",
                n,
                "--corrupt-every",
                "40",
                "--corp-id",
                CORP,
                "--timezone",
                "UTC",
                "--out",
                "archive",
                "-q",
            ],
            dir.path(),
            None,
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    rows(&layout::messages_root(&dir.path().join("archive"))).0
}

fn assert_upgraded(root: &Path, was: &BTreeMap<i64, Row>, fresh: &BTreeMap<i64, Row>) {
    let archive = root.join("archive");
    assert!(!is_legacy(&archive));
    assert!(!is_legacy(&root.join("decrypt-out")));
    let (now, versions) = rows(&layout::messages_root(&archive));
    assert_eq!(versions, BTreeSet::from([SCHEMA_VERSION.to_string()]));
    // The same rows, and the conversation columns exactly as a fresh run derives them.
    assert_eq!(
        now.iter().map(|(s, r)| (*s, &r.0)).collect::<Vec<_>>(),
        was.iter().map(|(s, r)| (*s, &r.0)).collect::<Vec<_>>()
    );
    assert_eq!(&now, fresh);
    let inv = scan(&archive).unwrap();
    assert_eq!(inv.temporaries, 0);
    assert_eq!(inv.dead_seqs.len(), 7);
    let store = StateStore::open(&layout::state_path(&archive)).unwrap();
    assert_eq!(store.checkpoint(CORP).unwrap(), Some(300));
    assert!(store.pending_commits(CORP).unwrap().is_empty());
    // The media scan's bookkeeping follows the renamed files: none is left to scan again.
    let scanned = store.media_scanned_files(CORP).unwrap();
    let mut files = Vec::new();
    parquet_files(&layout::corp_messages(&archive, CORP), &mut files);
    assert_eq!(files.len(), 3);
    for f in &files {
        let rel = f
            .strip_prefix(layout::corp_messages(&archive, CORP))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(scanned.contains(&rel), "{rel} not marked scanned");
    }
    let (flat, versions) = rows(&layout::messages_root(&root.join("decrypt-out")));
    assert_eq!(flat.len(), 35);
    assert_eq!(versions, BTreeSet::from([SCHEMA_VERSION.to_string()]));
}

#[test]
fn a_schema_2_tree_is_refused_then_upgraded_with_the_columns_a_fresh_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(FIXTURE), dir.path());
    let root = dir.path();
    let (was, versions) = rows(&layout::messages_root(&root.join("archive")));
    assert_eq!(was.len(), 293);
    assert_eq!(versions, BTreeSet::from(["2".to_owned()]));
    assert!(was.values().all(|r| r.1.is_none()));

    for args in [
        &["pull", "--once", "--config", "wecom-archive.toml"][..],
        &["inspect", "archive"],
        &["compact", "--out", "archive"],
    ] {
        let o = run(args, root, None);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("schema version 2") && err.contains("wecom-archive migrate --out"),
            "{args:?}: {err}"
        );
    }

    let fresh = fresh_rows();
    assert!(fresh.values().all(|r| r.1.is_some()));
    assert!(
        fresh
            .values()
            .filter_map(|r| r.1.as_ref()?.1.as_deref())
            .collect::<BTreeSet<_>>()
            .len()
            >= 2,
        "the simulator writes several chat types"
    );

    for out in ["archive", "decrypt-out"] {
        let o = run(&["migrate", "--out", out, "--json"], root, None);
        assert!(o.status.success(), "{}", text(&o));
    }
    assert_upgraded(root, &was, &fresh);

    // Pulls go on: 100 more, each seq exactly once.
    let cfg = std::fs::read_to_string(root.join("wecom-archive.toml")).unwrap();
    std::fs::write(
        root.join("wecom-archive.toml"),
        cfg.replace("sim_messages = 300", "sim_messages = 400"),
    )
    .unwrap();
    let o = run(
        &["pull", "--once", "--config", "wecom-archive.toml"],
        root,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let inv = scan(&root.join("archive")).unwrap();
    assert_eq!(inv.duplicate_seqs(), Vec::<u64>::new());
    let all: BTreeSet<u64> = inv.seqs.iter().chain(&inv.dead_seqs).copied().collect();
    assert_eq!(all, (1..=400).collect());
}

#[test]
fn an_upgrade_killed_at_any_step_finishes_on_the_next_run() {
    let fresh = fresh_rows();
    for step in ["rewritten", "journaled", "half-published", "completed"] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new(FIXTURE), dir.path());
        let root = dir.path();
        let (was, _) = rows(&layout::messages_root(&root.join("archive")));
        let o = run(
            &["migrate", "--out", "archive"],
            root,
            Some((FAULT_ENV, step)),
        );
        assert!(
            !o.status.success(),
            "{step}: the fault did not fire: {}",
            text(&o)
        );
        for out in ["archive", "decrypt-out"] {
            let o = run(&["migrate", "--out", out], root, None);
            assert!(o.status.success(), "{step}: {}", text(&o));
        }
        assert_upgraded(root, &was, &fresh);
    }
}
