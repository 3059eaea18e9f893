//! `pull` end to end on simulated corps (no WeCom account): several corps, resume, --follow with
//! a graceful SIGTERM.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wecom_archive::sink::inventory::scan;
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
    let inv = scan(&out.join(format!("corp_id={corp}"))).unwrap();
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
    let state = dir.path().join("archive/state.sqlite");
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
    assert!(status.success(), "{status}");
    let out = dir.path().join("archive");
    assert_eq!(corp_seqs(&out, "wwsimA"), (1..=1500).collect());
}
