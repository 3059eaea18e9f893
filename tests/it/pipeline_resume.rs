//! Exactly once: the pipeline killed at random points (SIGKILL, no chance to clean up) and run
//! again until done leaves every seq of the source exactly once in the output, as a row or as a
//! dead letter, and every finding of the rules exactly once; and a source failing mid-run loses
//! nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use wecom_archive::crypto::unwrap::Backend;
use wecom_archive::pipeline::{self, Layout, Output, RunOptions};
use wecom_archive::sink::inventory::{scan, Inventory};
use wecom_archive::source::sim::{demo_keyring, SimConfig, SimSource};
use wecom_archive::source::{Page, Source, SourceError};
use wecom_archive::state::StateStore;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

/// Every seq in `1..=n` exactly once across rows and dead letters, nothing else, no leftovers.
fn assert_exactly_once(inv: &Inventory, n: u64, corrupt_every: u64) {
    assert_eq!(inv.duplicate_seqs(), Vec::<u64>::new(), "duplicates");
    let rows: BTreeSet<u64> = inv.seqs.iter().copied().collect();
    let dead: BTreeSet<u64> = inv.dead_seqs.iter().copied().collect();
    let all: BTreeSet<u64> = rows.union(&dead).copied().collect();
    let want: BTreeSet<u64> = (1..=n).collect();
    assert_eq!(
        all.len(),
        want.len(),
        "seqs missing: {:?}",
        want.difference(&all).take(10).collect::<Vec<_>>()
    );
    assert_eq!(all, want);
    // The corrupted records, and only they, are dead letters.
    let corrupted: BTreeSet<u64> = (1..=n).filter(|s| s % corrupt_every == 0).collect();
    assert_eq!(dead, corrupted);
    assert_eq!(inv.dead_without_seq, 0);
}

/// Rules that fire on many of the simulator's texts, so kills land between findings too.
pub(crate) const RULES: &str = r#"
[[rule]]
id = "invoice"
severity = "warn"
keywords = ["发票", "附件"]
[[rule]]
id = "delivery"
severity = "critical"
keywords = ["发货", "交付"]
"#;

/// `(seq, rule_id)` of every findings row under `out`; a row twice fails.
pub(crate) fn findings(out: &Path) -> BTreeSet<(i64, String)> {
    use arrow_array::{Array, Int64Array, StringArray};
    let mut set = BTreeSet::new();
    let mut stack = vec![wecom_archive::sink::layout::findings_root(out)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if name.starts_with('.') || !name.ends_with(".parquet") {
                continue;
            }
            let file = std::fs::File::open(&p).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            for b in reader {
                let b = b.unwrap();
                let seq = b.column_by_name("seq").unwrap();
                let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
                let rule = b.column_by_name("rule_id").unwrap();
                let rule = rule.as_any().downcast_ref::<StringArray>().unwrap();
                for i in 0..b.num_rows() {
                    let row = (seq.value(i), rule.value(i).to_owned());
                    assert!(set.insert(row.clone()), "finding twice: {row:?}");
                }
            }
        }
    }
    set
}

pub(crate) fn demo_cmd(out: &Path, n: u64, corrupt_every: u64) -> Command {
    let rules = out.with_extension("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let mut c = Command::new(BIN);
    c.args([
        "demo",
        "--messages",
        &n.to_string(),
        "--corrupt-every",
        &corrupt_every.to_string(),
    ])
    .args([
        "--commit-every",
        "120",
        "--page-size",
        "50",
        "--corp-id",
        "wwcrash",
    ])
    .arg("--rules")
    .arg(&rules)
    .arg("--out")
    .arg(out)
    .env("WECOM_ARCHIVE_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

#[test]
fn random_kills_never_lose_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (n, corrupt_every) = (4000, 89);

    // How long an uninterrupted run takes here, to spread the kills over it.
    let t = Instant::now();
    let full = dir.path().join("reference");
    assert!(demo_cmd(&full, n, corrupt_every)
        .status()
        .unwrap()
        .success());
    let full_run = t.elapsed();
    assert_exactly_once(&scan(&full).unwrap(), n, corrupt_every);
    let reference_findings = findings(&full);
    assert!(reference_findings.len() > 100);

    let killed = kill_until_done(
        full_run,
        &|| demo_cmd(&out, n, corrupt_every),
        &|| {
            // Whatever was committed so far is exactly-once already (temporaries aside).
            let inv = scan(&out).unwrap();
            assert_eq!(inv.duplicate_seqs(), Vec::<u64>::new());
            // Findings of committed messages only, each once.
            let seqs: BTreeSet<i64> = inv.seqs.iter().map(|&s| s as i64).collect();
            assert!(findings(&out).iter().all(|(s, _)| seqs.contains(s)));
            inv.seqs.len()
        },
        &|| std::fs::remove_dir_all(&out).unwrap(),
    );
    assert!(killed >= 10, "only {killed} runs were killed mid-way");
    // Finish the job.
    assert!(demo_cmd(&out, n, corrupt_every).status().unwrap().success());
    let inv = scan(&out).unwrap();
    assert_exactly_once(&inv, n, corrupt_every);
    assert_eq!(inv.temporaries, 0);
    assert_eq!(findings(&out), reference_findings);
    let store = StateStore::open(&wecom_archive::sink::layout::state_path(&out)).unwrap();
    assert_eq!(store.checkpoint("wwcrash").unwrap(), Some(n));
    assert!(store.pending_commits("wwcrash").unwrap().is_empty());
}

/// Kills runs of `cmd` (SIGKILL) at random points until one gets to finish on its own, and
/// returns how many were killed. Each killed run resumes from the last checkpoint, so the kills
/// land all over the archive and all over the commit protocol (mid-write, between the data and
/// the checkpoint, during recovery). `check` runs after every run and returns the rows
/// committed so far.
///
/// The kill points are fractions of a time scale, first `full_run` (an uninterrupted run). That
/// run may have been slowed or sped up by other tests sharing the machine, so the scale adapts:
/// when a run finishes after fewer than ten kills, the output is `reset` and the archive starts
/// afresh with the scale halved; when twenty kills in a row commit nothing new, the scale grows
/// by half.
pub(crate) fn kill_until_done(
    full_run: std::time::Duration,
    cmd: &dyn Fn() -> Command,
    check: &dyn Fn() -> usize,
    reset: &dyn Fn(),
) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC4A5);
    let mut scale = full_run;
    for attempt in 0..6 {
        let (mut killed, mut committed, mut stalled) = (0, 0, 0);
        for _ in 0..600 {
            let mut child = cmd().spawn().unwrap();
            std::thread::sleep(scale.mul_f64(rng.gen_range(0.01..0.12)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
            let status = child.wait().unwrap();
            let rows = check();
            if status.success() {
                eprintln!("attempt {attempt}: {killed} runs killed before one finished");
                if killed >= 10 {
                    return killed;
                }
                reset();
                scale /= 2;
                break;
            }
            if rows > committed {
                (committed, stalled) = (rows, 0);
            } else {
                stalled += 1;
                if stalled == 20 {
                    (scale, stalled) = (scale.mul_f64(1.5), 0);
                }
            }
        }
    }
    panic!("no run finished after ten kills in six attempts (time scale {scale:?})");
}

/// A source that fails after a number of pages, like a network outage mid-pull.
struct Flaky {
    inner: SimSource,
    pages_left: u32,
}

impl Source for Flaky {
    fn describe(&self) -> String {
        "flaky".into()
    }
    fn fetch(&mut self, after: u64, limit: u32) -> Result<Page, SourceError> {
        if self.pages_left == 0 {
            let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "link down");
            return Err(SourceError::Input(wecom_archive::source::InputError::Io {
                path: "flaky".into(),
                source: io,
            }));
        }
        self.pages_left -= 1;
        self.inner.fetch(after, limit)
    }
}

#[test]
fn source_failure_commits_what_was_fetched_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = demo_keyring(Backend::default()).unwrap();
    let mut store = StateStore::open(&dir.path().join("state.sqlite")).unwrap();
    let config = SimConfig {
        messages: 1200,
        corrupt_every: 101,
        ..SimConfig::default()
    };
    let options = RunOptions {
        page_size: 100,
        commit_every: 250,
        chunk_records: 64,
        ..RunOptions::default()
    };
    let layout = || Layout::Hive {
        corp_id: "wwflaky".into(),
        tz: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
    };
    let mut flaky = Flaky {
        inner: SimSource::new(config.clone()),
        pages_left: 7,
    };
    let err = pipeline::run(
        &mut flaky,
        &keyring,
        Output {
            dir: dir.path(),
            layout: layout(),
            state: Some(&mut store),
            delta: None,
        },
        &options,
        &AtomicBool::new(false),
        &|_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("link down"), "{err}");
    // The 7 pages fetched before the failure are committed.
    assert_eq!(store.checkpoint("wwflaky").unwrap(), Some(700));
    assert_exactly_once_upto(&scan(dir.path()).unwrap(), 700);

    let mut sim = SimSource::new(config);
    let stats = pipeline::run(
        &mut sim,
        &keyring,
        Output {
            dir: dir.path(),
            layout: layout(),
            state: Some(&mut store),
            delta: None,
        },
        &options,
        &AtomicBool::new(false),
        &|_| {},
    )
    .unwrap();
    assert_eq!(stats.records_in, 500);
    assert_eq!(stats.checkpoint, Some(1200));
    assert_exactly_once(&scan(dir.path()).unwrap(), 1200, 101);

    // A third run finds nothing new and writes nothing.
    let mut sim = SimSource::new(SimConfig {
        messages: 1200,
        corrupt_every: 101,
        ..SimConfig::default()
    });
    let stats = pipeline::run(
        &mut sim,
        &keyring,
        Output {
            dir: dir.path(),
            layout: layout(),
            state: Some(&mut store),
            delta: None,
        },
        &options,
        &AtomicBool::new(false),
        &|_| {},
    )
    .unwrap();
    assert_eq!((stats.records_in, stats.commits), (0, 0));
}

fn assert_exactly_once_upto(inv: &Inventory, n: u64) {
    assert_eq!(inv.duplicate_seqs(), Vec::<u64>::new());
    let all: BTreeSet<u64> = inv.seqs.iter().chain(&inv.dead_seqs).copied().collect();
    assert_eq!(all, (1..=n).collect::<BTreeSet<u64>>());
}

/// Raises the stop flag (as SIGTERM does) once it has served some pages.
struct StopAfter<'a> {
    inner: SimSource,
    pages: u32,
    stop: &'a AtomicBool,
}

impl Source for StopAfter<'_> {
    fn describe(&self) -> String {
        "stop-after".into()
    }
    fn fetch(&mut self, after: u64, limit: u32) -> Result<Page, SourceError> {
        self.pages -= 1;
        if self.pages == 0 {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.fetch(after, limit)
    }
}

#[test]
fn stop_flag_ends_the_run_with_everything_committed() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = demo_keyring(Backend::default()).unwrap();
    let mut store = StateStore::open_in_memory().unwrap();
    let stop = AtomicBool::new(false);
    let mut source = StopAfter {
        inner: SimSource::new(SimConfig {
            messages: 5000,
            ..SimConfig::default()
        }),
        pages: 3,
        stop: &stop,
    };
    let options = RunOptions {
        page_size: 100,
        ..RunOptions::default()
    };
    let stats = pipeline::run(
        &mut source,
        &keyring,
        Output {
            dir: dir.path(),
            layout: Layout::Hive {
                corp_id: "wwstop".into(),
                tz: jiff::tz::TimeZone::UTC,
            },
            state: Some(&mut store),
            delta: None,
        },
        &options,
        &stop,
        &|_| {},
    )
    .unwrap();
    assert_eq!(stats.records_in, 300);
    assert_eq!(store.checkpoint("wwstop").unwrap(), Some(300));
    assert_exactly_once_upto(&scan(dir.path()).unwrap(), 300);
}

/// The narrowest window, made on purpose: files fsynced and journaled, some renamed, and the
/// process gone before the checkpoint moved. The next run must roll the journal forward and go
/// on after it, without fetching those records again.
#[test]
fn journaled_commit_is_rolled_forward() {
    let keyring = demo_keyring(Backend::default()).unwrap();
    let tz = || Layout::Hive {
        corp_id: "wwjournal".into(),
        tz: jiff::tz::TimeZone::UTC,
    };
    let options = RunOptions {
        page_size: 100,
        ..RunOptions::default()
    };
    let run = |dir: &Path, store: &mut StateStore, messages: u64| {
        let mut sim = SimSource::new(SimConfig {
            messages,
            mean_gap_ms: 3_600_000, // an hour apart: several date partitions per commit
            ..SimConfig::default()
        });
        pipeline::run(
            &mut sim,
            &keyring,
            Output {
                dir,
                layout: tz(),
                state: Some(store),
                delta: None,
            },
            &options,
            &AtomicBool::new(false),
            &|_| {},
        )
        .unwrap()
    };
    let main = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(&main.path().join("state.sqlite")).unwrap();
    run(main.path(), &mut store, 300);
    assert_eq!(store.checkpoint("wwjournal").unwrap(), Some(300));

    // The files of the interrupted commit (seqs 301..=400), made by a scratch run.
    let scratch = tempfile::tempdir().unwrap();
    let mut scratch_store = StateStore::open_in_memory().unwrap();
    scratch_store.set_checkpoint("wwjournal", 300).unwrap();
    let made = run(scratch.path(), &mut scratch_store, 400);
    assert!(
        made.files.len() >= 2,
        "want several files, got {}",
        made.files.len()
    );
    let mut renames = Vec::new();
    for (i, part) in made.files.iter().enumerate() {
        let rel = part.path.strip_prefix(scratch.path()).unwrap();
        let dest = main.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let tmp = dest.with_file_name(format!(".part-crash{i}.parquet.tmp"));
        // The first file was renamed before the crash, the others were not.
        let at = if i == 0 { &dest } else { &tmp };
        std::fs::copy(&part.path, at).unwrap();
        renames.push(wecom_archive::state::Rename { tmp, dest });
    }
    store
        .journal_commit("wwjournal", 400, &renames, &Default::default())
        .unwrap();
    // A stray temporary of a commit that was never journaled: must be deleted, not published.
    let stray = main
        .path()
        .join("messages/corp_id=wwjournal/.part-stray.parquet.tmp");
    std::fs::copy(&made.files[0].path, &stray).unwrap();

    let stats = run(main.path(), &mut store, 500);
    assert_eq!(stats.records_in, 100, "only 401..=500 is fetched again");
    assert!(!stray.exists());
    let inv = scan(main.path()).unwrap();
    assert_eq!(inv.temporaries, 0);
    assert_exactly_once_upto(&inv, 500);
    assert_eq!(store.checkpoint("wwjournal").unwrap(), Some(500));
}
