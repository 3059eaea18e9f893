//! Many workers on one PostgreSQL state: corp leases make two `pull` processes on one config
//! pull each corp once between them, a dead worker's corps are taken over when its lease runs
//! out, and `status` shows who holds what. The PostgreSQL server is the tests' own
//! (`tests/support/pg_server.rs`), each test in its own schema.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wecom_archive::sink::delta::{read, DeltaTarget, TableKind};
use wecom_archive::state::StateStore;

use crate::pg_server::fresh_url;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

/// A config of `corps` simulated corps of `n` messages each, Delta tables under `dir/out`, the
/// state in PostgreSQL at `url`.
fn fleet_config(dir: &Path, url: &str, corps: &[String], n: u64, lease_secs: u64) -> String {
    let mut text = format!(
        "out = \"out\"\nformat = \"delta\"\nstate = \"{url}\"\ntimezone = \"UTC\"\n\
         [fleet]\nlease_secs = {lease_secs}\n"
    );
    for corp in corps {
        text.push_str(&format!(
            "[[corp]]\ncorp_id = \"{corp}\"\nsource = \"sim\"\nsim_messages = {n}\n"
        ));
    }
    let path = dir.join("wecom-archive.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn pull(config: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["pull", "--once", "--json", "--config", config])
        .args(["--commit-every", "250"])
        .env("WECOM_ARCHIVE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Every seq `1..=n` of each corp exactly once in `messages` ∪ `dead_letters`.
fn assert_exactly_once(out: &Path, corps: &[String], n: u64) {
    let target = DeltaTarget::open_with(out.to_str().unwrap(), &[]).unwrap();
    let rows: BTreeMap<String, Vec<u64>> = read::seqs_by_corp(&target, TableKind::Messages)
        .unwrap()
        .into_iter()
        .collect();
    let dead: BTreeMap<String, Vec<u64>> = read::seqs_by_corp(&target, TableKind::DeadLetters)
        .unwrap()
        .into_iter()
        .collect();
    for corp in corps {
        let mut all: Vec<u64> = rows.get(corp).cloned().unwrap_or_default();
        all.extend(dead.get(corp).into_iter().flatten());
        let count = all.len();
        let unique: BTreeSet<u64> = all.into_iter().collect();
        assert_eq!(
            unique.len(),
            count,
            "corp {corp}: a seq is in the tables twice"
        );
        assert_eq!(unique, (1..=n).collect(), "corp {corp}: seqs missing");
    }
}

/// In each corp's lease log, a holder's claim is followed by its own release before another
/// holder claims (a takeover may follow a claim without a release: the holder died).
fn assert_one_holder_at_a_time(store: &StateStore, corp: &str, dead: &[&str]) {
    let log = store.lease_log(corp).unwrap();
    assert!(!log.is_empty(), "corp {corp} was never claimed");
    let mut holding: Option<&str> = None;
    for (holder, event, _) in &log {
        match event.as_str() {
            "claim" => {
                if let Some(h) = holding {
                    assert_eq!(
                        h, holder,
                        "corp {corp}: {holder} claimed while {h} held it: {log:?}"
                    );
                }
                holding = Some(holder);
            }
            "takeover" => {
                let h = holding.expect("a takeover follows a claim");
                assert!(
                    dead.contains(&h),
                    "corp {corp}: {holder} took over from live {h}: {log:?}"
                );
                holding = Some(holder);
            }
            "release" => {
                assert_eq!(holding, Some(holder.as_str()), "corp {corp}: {log:?}");
                holding = None;
            }
            other => panic!("unknown lease event {other}"),
        }
    }
    assert_eq!(holding, None, "corp {corp}: still held at the end: {log:?}");
}

/// `pull --once --json` of `config`, which must succeed.
fn pull_json(config: &str) -> serde_json::Value {
    let out = pull(config).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `status --json` of `config`.
fn status_json(config: &str) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["status", "--json", "--config", config])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn two_pulls_at_once_pull_each_corp_once_between_them() {
    let Some(url) = fresh_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (n, corps): (u64, Vec<String>) =
        (1200, (1..=6).map(|i| format!("wwfleet{i:09}")).collect());
    let config = fleet_config(dir.path(), &url, &corps, n, 30);
    let a = pull(&config).spawn().unwrap();
    let b = pull(&config).spawn().unwrap();
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let mut held = 0;
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for c in report["corps"].as_array().unwrap() {
            let corp = c["corp_id"].as_str().unwrap().to_owned();
            match c["outcome"].as_str().unwrap() {
                "held" => held += 1,
                "ok" => {
                    *written.entry(corp).or_default() +=
                        c["written"].as_u64().unwrap() + c["dead_lettered"].as_u64().unwrap()
                }
                other => panic!("corp {corp}: {other}: {c}"),
            }
        }
    }
    // Between them, every record once: no corp was pulled by both.
    for corp in &corps {
        assert_eq!(written.get(corp), Some(&n), "corp {corp}: {written:?}");
    }
    // They may meet at a lease (one skips) or not (each starts at a random corp); either way
    // the log shows one holder at a time.
    eprintln!("skips of a held corp: {held}");
    assert_exactly_once(&dir.path().join("out"), &corps, n);
    let store = StateStore::open(Path::new(&url)).unwrap();
    for corp in &corps {
        assert_one_holder_at_a_time(&store, corp, &[]);
    }
}

#[test]
fn a_killed_workers_corp_is_taken_over_when_its_lease_runs_out() {
    let Some(url) = fresh_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (n, corps): (u64, Vec<String>) = (6000, vec!["wwfleetkill00001".into()]);
    let config = fleet_config(dir.path(), &url, &corps, n, 5);
    let store = StateStore::open(Path::new(&url)).unwrap();
    let mut first = pull(&config).stdout(Stdio::null()).spawn().unwrap();
    // Kill it once it holds the lease and has committed something.
    let started = Instant::now();
    let victim = loop {
        let leases = store.leases().unwrap();
        let runs_ahead = wecom_archive::sink::delta::corp_checkpoint(
            &DeltaTarget::open_with(dir.path().join("out").to_str().unwrap(), &[]).unwrap(),
            &corps[0],
        )
        .ok()
        .flatten()
        .is_some();
        if let (Some(l), true) = (leases.first(), runs_ahead) {
            break l.holder.clone();
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the pull ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no lease and commit in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    first.kill().unwrap();
    first.wait().unwrap();

    // At once: the dead worker's lease still holds, so the corp is skipped, not pulled twice.
    let report = pull_json(&config);
    assert_eq!(report["corps"][0]["outcome"], "held", "{report}");

    // `status` shows the dead worker as the holder until its lease runs out.
    let status = status_json(&config);
    let leased = &status["corps"][0];
    assert_eq!(leased["lease_holder"], victim.as_str(), "{status}");

    std::thread::sleep(Duration::from_secs(5));
    let report = pull_json(&config);
    assert_eq!(report["corps"][0]["outcome"], "ok", "{report}");
    assert_exactly_once(&dir.path().join("out"), &corps, n);
    let log = store.lease_log(&corps[0]).unwrap();
    assert!(
        log.iter().any(|(h, e, _)| e == "takeover" && *h != victim),
        "no takeover from {victim}: {log:?}"
    );
    assert_one_holder_at_a_time(&store, &corps[0], &[&victim]);

    let status = status_json(&config);
    let c = &status["corps"][0];
    assert_eq!(c["checkpoint_seq"], n, "{status}");
    assert_eq!(c["last_outcome"], "ok", "{status}");
    assert!(c["lease_holder"].is_null(), "{status}");
    assert!(c["last_holder"].is_string(), "{status}");
}

/// The configuration in `deploy/kubernetes.yaml` is one this version loads.
#[test]
fn the_kubernetes_example_config_loads() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes.yaml"),
    )
    .unwrap();
    let mut lines = manifest
        .lines()
        .skip_while(|l| !l.contains("wecom-archive.toml: |"));
    lines.next();
    let toml: String = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(toml.contains("state = \"postgres://"), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wecom-archive.toml");
    std::fs::write(&path, &toml).unwrap();
    let config = wecom_archive::config::Config::load(&path).unwrap();
    assert!(config.state_is_shared());
    assert_eq!(config.fleet.lease_secs, 60);
}

/// An unreachable PostgreSQL state fails the pull with an error that names the database (never
/// the password) and changes nothing; a bad password file is named with its variable.
#[test]
fn an_unreachable_state_database_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again when the listener drops
    let url = format!("postgres://wa:hunter2@127.0.0.1:{port}/archive");
    let config = fleet_config(dir.path(), &url, &["wwfleetdown00001".into()], 10, 30);
    let out = pull(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "state database postgres://wa@127.0.0.1:{port}/archive"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing written");

    let out = pull(&config)
        .env(
            "WECOM_ARCHIVE_STATE_PASSWORD_FILE",
            dir.path().join("missing"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("WECOM_ARCHIVE_STATE_PASSWORD_FILE"),
        "{stderr}"
    );
}
