//! `pull --once` against a fake SDK library whose `GetChatData` answers pages that do not move
//! the cursor: a truncated body, a body that is not JSON, records without `seq`, and records at
//! or below the cursor. Each must end the run with an error naming the corp and the cursor,
//! after a bounded number of calls, with the checkpoint still at the last valid data — never an
//! endless loop of calls and dead letters.
//!
//! The fake (`fake_sdk/fake_sdk.c`) is compiled with `cc` into a temporary directory; it answers
//! the call after seq N with the file `after-N.body` (an empty page when there is none), counts
//! its calls in a file, and gives up with a fatal code after 50 calls, so that even a pull
//! without the guard ends and the test can say how many calls it made.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wecom_archive::config::Config;
use wecom_archive::sink::inventory::{scan_corp, Inventory};
use wecom_archive::source::sim::{SimConfig, SimSource};
use wecom_archive::state::StateStore;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const CORP: &str = "wwguardtest";
const SECRET_ENV: &str = "WECOM_GUARD_TEST_SECRET";
/// `[sdk] max_attempts` of the test configuration.
const MAX_ATTEMPTS: usize = 3;

/// Compiles the fake SDK into `dir`, or `None` (with a message) when there is no C compiler.
fn build_fake_sdk(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fake_sdk/fake_sdk.c");
    let lib = dir.join("libfake_sdk.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O0", "-o"])
        .arg(&lib)
        .arg(&src)
        .status();
    match status {
        Ok(s) if s.success() => Some(lib),
        Ok(s) => panic!(
            "cc failed to build the fake SDK ({s}) from {}",
            src.display()
        ),
        Err(e) => {
            eprintln!(
                "SKIPPED: no C compiler `cc` to build the fake SDK ({e}); install build-essential"
            );
            None
        }
    }
}

/// A `GetChatData` body holding `records` (JSON values).
fn page(records: &[serde_json::Value]) -> String {
    serde_json::json!({"errcode": 0, "errmsg": "ok", "chatdata": records}).to_string()
}

/// Valid records (encrypted with key version 1, `fixtures/rsa_test_priv.pem`), as JSON values.
fn records(seqs: std::ops::RangeInclusive<u64>) -> Vec<serde_json::Value> {
    let sim = SimSource::new(SimConfig::default());
    seqs.map(|s| serde_json::to_value(sim.record(s)).unwrap())
        .collect()
}

/// One corp's archive as the fake serves it, and the outcome of one `pull --once` over it.
struct Run {
    ok: bool,
    stderr: String,
    calls: Vec<u64>,
    checkpoint: Option<u64>,
    inventory: Inventory,
    last_outcome: String,
}

/// Writes the fake's answers (`(cursor, body)`), runs `pull --once` and collects the outcome.
fn pull(bodies: &[(u64, String)]) -> Option<Run> {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_fake_sdk(dir.path())?;
    let fake = dir.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    for (after, body) in bodies {
        std::fs::write(fake.join(format!("after-{after}.body")), body).unwrap();
    }
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rsa_test_priv.pem");
    let cfg = dir.path().join("wecom-archive.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
out = "archive"
timezone = "UTC"

[sdk]
library = {lib:?}
timeout_secs = 5
max_attempts = {MAX_ATTEMPTS}

[[corp]]
corp_id = "{CORP}"
secret_env = "{SECRET_ENV}"
keys = {{ 1 = {key:?} }}
"#
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["pull", "--once", "--config"])
        .arg(&cfg)
        .env_remove("WECOM_SDK")
        .env(SECRET_ENV, "fake-archive-secret")
        .env("FAKE_SDK_DIR", &fake)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The fake gives up after 50 calls, so even an unguarded pull ends; this is a last resort.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pull --once did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let calls = std::fs::read_to_string(fake.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let config = Config::load(&cfg).unwrap();
    let store = StateStore::open(&config.state_path()).unwrap();
    let inventory = scan_corp(&config.out_dir(), CORP).unwrap();
    Some(Run {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls,
        checkpoint: store.checkpoint(CORP).unwrap(),
        inventory,
        last_outcome: store
            .runs(CORP, 1)
            .unwrap()
            .first()
            .map(|r| r.outcome.clone())
            .unwrap_or_default(),
    })
}

/// Seqs 1..=3 are served after seq 0; then `bad` after seq 3. The run must fail after exactly
/// `max_calls` calls (the first page, then the bad one and its retries), name the corp and the
/// cursor, and keep seqs 1..=3.
fn assert_stops(kind: &str, bad: String, max_calls: usize, what: &str) {
    let Some(run) = pull(&[(0, page(&records(1..=3))), (3, bad)]) else {
        return;
    };
    let dead = run.inventory.dead_seqs.len() as u64 + run.inventory.dead_without_seq;
    assert!(
        run.calls.len() <= max_calls,
        "{kind}: {} GetChatData calls (at most {max_calls} expected), {dead} dead letters, \
         checkpoint {:?}; stderr ends:\n{}",
        run.calls.len(),
        run.checkpoint,
        tail(&run.stderr)
    );
    assert!(!run.ok, "{kind}: pull succeeded; stderr:\n{}", run.stderr);
    let mut want = vec![3; max_calls];
    want[0] = 0;
    assert_eq!(run.calls, want, "{kind}: the cursors asked for");
    for needle in [CORP, "after seq 3", what] {
        assert!(
            run.stderr.contains(needle),
            "{kind}: the error does not say {needle:?}:\n{}",
            run.stderr
        );
    }
    // The valid page is committed; nothing of the bad one moved the checkpoint.
    assert_eq!(run.checkpoint, Some(3), "{kind}");
    assert_eq!(run.inventory.seqs, vec![1, 2, 3], "{kind}");
    // Nothing of a page that does not advance is sent on: asking again would only repeat it.
    assert_eq!(dead, 0, "{kind}: dead letters");
    assert!(
        run.last_outcome.starts_with("failed") && run.last_outcome.contains("after seq 3"),
        "{kind}: run history says {:?}",
        run.last_outcome
    );
}

/// The last lines of a long log.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[test]
fn truncated_body_is_retried_then_fails_the_pull() {
    let body = page(&records(4..=6));
    let cut = body[..body.len() / 2].to_owned();
    assert_stops(
        "truncated",
        cut,
        1 + MAX_ATTEMPTS,
        "not a GetChatData response",
    );
}

#[test]
fn non_json_body_is_retried_then_fails_the_pull() {
    let body = "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned();
    assert_stops("not JSON", body, 1 + MAX_ATTEMPTS, "502 Bad Gateway");
}

#[test]
fn records_without_seq_stop_the_pull() {
    let mut recs = records(4..=6);
    for r in &mut recs {
        r.as_object_mut().unwrap().remove("seq");
    }
    assert_stops("no seq", page(&recs), 2, "none after the cursor");
}

#[test]
fn records_at_or_below_the_cursor_stop_the_pull() {
    assert_stops(
        "at or below",
        page(&records(1..=3)),
        2,
        "3 records, none after the cursor (highest seq 3)",
    );
}

#[test]
fn advancing_pages_then_an_empty_one_end_the_pull() {
    // Control: a page of valid records, a page whose seq-less entry is a dead letter but which
    // still advances, then the empty page that says "caught up".
    let mut mixed = records(4..=5);
    mixed[1].as_object_mut().unwrap().remove("seq");
    let Some(run) = pull(&[(0, page(&records(1..=3))), (3, page(&mixed))]) else {
        return;
    };
    assert!(run.ok, "stderr:\n{}", run.stderr);
    assert_eq!(run.calls, vec![0, 3, 4]);
    assert_eq!(run.checkpoint, Some(4));
    assert_eq!(run.inventory.seqs, vec![1, 2, 3, 4]);
    assert_eq!(run.inventory.dead_without_seq, 1);
    assert_eq!(run.last_outcome, "ok");
}
