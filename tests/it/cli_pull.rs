//! `pull` end to end on simulated corps (no WeCom account): several corps, resume, --follow with
//! a graceful SIGTERM.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wecom_archive::sink::inventory::scan_corp;
use wecom_archive::state::StateStore;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

fn write_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("wecom-archive.toml");
    std::fs::write(
        &cfg,
        r#"
out = "archive"
timezone = "UTC"
poll_interval_secs = 1

[[corp]]
corp_id = "wwsimA"
source = "sim"
sim_messages = 1500

[[corp]]
corp_id = "wwsimB"
source = "sim"
sim_messages = 700
"#,
    )
    .unwrap();
    cfg
}

fn corp_seqs(out: &Path, corp: &str) -> BTreeSet<u64> {
    let inv = scan_corp(out, corp).unwrap();
    assert_eq!(inv.duplicate_seqs(), Vec::<u64>::new());
    inv.seqs.iter().chain(&inv.dead_seqs).copied().collect()
}

#[test]
fn pulls_every_corp_once_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let run = |extra: &[&str]| {
        let o = Command::new(BIN)
            .args(["pull", "--once", "--config"])
            .arg(&cfg)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = run(&[]);
    assert!(text.contains("wwsimA: 1500 records in"), "{text}");
    assert!(text.contains("wwsimB: 700 records in"), "{text}");
    let out = dir.path().join("archive");
    assert_eq!(corp_seqs(&out, "wwsimA"), (1..=1500).collect());
    assert_eq!(corp_seqs(&out, "wwsimB"), (1..=700).collect());

    // Nothing new; then a replay of one corp from seq 1000 via --since-seq.
    let text = run(&[]);
    assert!(text.contains("wwsimA: 0 records in"), "{text}");
    let text = run(&["--corp", "wwsimB", "--since-seq", "600"]);
    assert!(text.contains("wwsimB: 100 records in"), "{text}");
    assert!(!text.contains("wwsimA"), "{text}");
}

#[test]
fn follow_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let mut child = Command::new(BIN)
        .args(["pull", "--follow", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = wecom_archive::sink::layout::state_path(&dir.path().join("archive"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = state.exists()
            && StateStore::open(&state)
                .and_then(|s| s.checkpoint("wwsimB"))
                .ok()
                .flatten()
                == Some(700);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "pull --follow made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "pull --follow exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still running (following); SIGTERM ends it cleanly.
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none());
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Stopped by a signal: 128 + SIGTERM, as every command that a signal stops.
    assert_eq!(status.code(), Some(143), "{status}");
    let out = dir.path().join("archive");
    assert_eq!(corp_seqs(&out, "wwsimA"), (1..=1500).collect());
}

/// Waits for `child` to exit, at most `secs` seconds.
fn wait(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "no exit within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn interrupted_pull_commits_and_resumes(signal: i32, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wecom-archive.toml");
    std::fs::write(
        &cfg,
        "out = \"archive\"\ntimezone = \"UTC\"\n[[corp]]\ncorp_id = \"wwsimBig\"\nsource = \"sim\"\nsim_messages = 12000\n",
    )
    .unwrap();
    let state = wecom_archive::sink::layout::state_path(&dir.path().join("archive"));
    let mut child = Command::new(BIN)
        // Small commits, so that the signal lands after some are made.
        .args(["pull", "--once", "--commit-every", "500", "--json"])
        .env("WECOM_ARCHIVE_CONFIG", &cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(state.exists()
        && StateStore::open(&state)
            .and_then(|s| s.checkpoint("wwsimBig"))
            .ok()
            .flatten()
            .is_some())
    {
        assert!(Instant::now() < deadline, "no commit");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = wait(&mut child, 60);
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(code), "{status}");

    // What was committed is on disk, exactly once, up to the checkpoint; the run is recorded
    // as interrupted; the JSON says the same.
    let store = StateStore::open(&state).unwrap();
    let cp = store.checkpoint("wwsimBig").unwrap().unwrap();
    assert!(cp < 12_000, "the run was not interrupted (checkpoint {cp})");
    let out = dir.path().join("archive");
    assert_eq!(corp_seqs(&out, "wwsimBig"), (1..=cp).collect());
    let runs = store.runs("wwsimBig", 5).unwrap();
    assert_eq!(runs[0].outcome, "interrupted", "{runs:?}");
    assert_eq!(runs[0].to_seq, cp);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    let run = &json["corps"][0];
    assert_eq!(run["corp_id"], "wwsimBig");
    assert_eq!(run["outcome"], "interrupted");
    assert_eq!(run["checkpoint"], cp);
    assert_eq!(json["failed"], serde_json::json!([]));
    drop(store);

    // The next run resumes after the checkpoint and finishes the archive.
    let o = Command::new(BIN)
        .args(["pull", "--once", "--json"])
        .env("WECOM_ARCHIVE_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &json["corps"][0];
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["records_in"], 12_000 - cp);
    assert_eq!(run["checkpoint"], 12_000);
    assert_eq!(corp_seqs(&out, "wwsimBig"), (1..=12_000).collect());
}

#[test]
fn sigint_stops_a_pull_with_130_and_it_resumes() {
    interrupted_pull_commits_and_resumes(libc::SIGINT, 130);
}

#[test]
fn sigterm_stops_a_pull_with_143_and_it_resumes() {
    interrupted_pull_commits_and_resumes(libc::SIGTERM, 143);
}
