//! Delta Lake output: every seq exactly once through the Delta log under random SIGKILLs, two
//! writers on one table (different corps, and the same corp), OPTIMIZE and VACUUM while a pull
//! writes, log checkpoints; on a local disk, and on a local S3-compatible server (moto).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, Int64Array, StringArray};
use wecom_archive::sink::delta::{read, DeltaTarget, TableKind};

use crate::pipeline_resume::{kill_until_done, RULES};
use crate::s3::S3Server;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

/// `demo --format delta` of `n` messages for `corp` into `out`, every `corrupt_every`th record
/// corrupted, committing every 120 records.
fn demo(
    out: &str,
    corp: &str,
    n: u64,
    corrupt_every: u64,
    rules: &Path,
    env: &[(String, String)],
) -> Command {
    let mut c = Command::new(BIN);
    c.args(["demo", "--format", "delta", "--out", out, "--corp-id", corp])
        .args(["--messages", &n.to_string()])
        .args(["--corrupt-every", &corrupt_every.to_string()])
        .args(["--commit-every", "120", "--page-size", "50"])
        .arg("--rules")
        .arg(rules)
        .env("WECOM_ARCHIVE_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// What a reader of the tables' current versions sees.
struct Seen {
    /// corp → seqs of `messages` rows (a seq twice stays twice).
    rows: BTreeMap<String, Vec<u64>>,
    /// corp → seqs of `dead_letters` rows.
    dead: BTreeMap<String, Vec<u64>>,
    /// `(corp, seq, rule_id)` of `findings` rows.
    findings: Vec<(String, i64, String)>,
}

fn seen(target: &DeltaTarget) -> Seen {
    let by_corp = |kind| -> BTreeMap<String, Vec<u64>> {
        read::seqs_by_corp(target, kind)
            .unwrap()
            .into_iter()
            .collect()
    };
    let mut findings = Vec::new();
    for (partition, b) in read::read_rows(target, TableKind::Findings).unwrap() {
        let corp = partition["corp_id"].clone().unwrap();
        let seq = b.column_by_name("seq").unwrap();
        let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
        let rule = b.column_by_name("rule_id").unwrap();
        let rule = rule.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            findings.push((corp.clone(), seq.value(i), rule.value(i).to_owned()));
        }
    }
    Seen {
        rows: by_corp(TableKind::Messages),
        dead: by_corp(TableKind::DeadLetters),
        findings,
    }
}

impl Seen {
    /// No seq twice in rows ∪ dead letters, no finding twice, findings only of rows; returns the
    /// rows committed.
    fn assert_no_duplicates(&self) -> usize {
        let mut total = 0;
        for (corp, rows) in &self.rows {
            let mut all: Vec<u64> = rows.clone();
            all.extend(self.dead.get(corp).into_iter().flatten());
            let n = all.len();
            let unique: BTreeSet<u64> = all.into_iter().collect();
            assert_eq!(unique.len(), n, "corp {corp}: a seq is in the tables twice");
            total += rows.len();
        }
        let unique: BTreeSet<_> = self.findings.iter().collect();
        assert_eq!(unique.len(), self.findings.len(), "a finding twice");
        total
    }

    /// Every finding belongs to a message row. Only once runs are done: between the findings
    /// table's commit and the messages table's (a crash there), findings run one batch ahead.
    fn assert_findings_of_rows(&self) {
        for (corp, seq, rule) in &self.findings {
            assert!(
                self.rows
                    .get(corp)
                    .is_some_and(|r| r.contains(&(*seq as u64))),
                "finding {rule} of corp {corp} seq {seq} has no committed message"
            );
        }
    }

    /// Every seq `1..=n` of `corp` exactly once, the corrupted ones as dead letters.
    fn assert_exactly_once(&self, corp: &str, n: u64, corrupt_every: u64) {
        self.assert_no_duplicates();
        self.assert_findings_of_rows();
        let rows: BTreeSet<u64> = self.rows.get(corp).into_iter().flatten().copied().collect();
        let dead: BTreeSet<u64> = self.dead.get(corp).into_iter().flatten().copied().collect();
        let all: BTreeSet<u64> = rows.union(&dead).copied().collect();
        let want: BTreeSet<u64> = (1..=n).collect();
        assert_eq!(
            all.len(),
            want.len(),
            "corp {corp}: seqs missing: {:?}",
            want.difference(&all).take(10).collect::<Vec<_>>()
        );
        assert_eq!(all, want, "corp {corp}");
        let corrupted: BTreeSet<u64> = (1..=n).filter(|s| s % corrupt_every == 0).collect();
        assert_eq!(dead, corrupted, "corp {corp}: dead letters");
    }
}

/// The target `out`, with the S3 server's settings given as options (the test process's
/// environment is shared by tests running at once).
fn target_for(out: &str, env: &[(String, String)]) -> DeltaTarget {
    DeltaTarget::open_with(out, env).unwrap()
}

fn checkpoint(target: &DeltaTarget, corp: &str) -> Option<u64> {
    wecom_archive::sink::delta::corp_checkpoint(target, corp).unwrap()
}

/// Random SIGKILLs until a run finishes, then every seq exactly once and the findings of an
/// uninterrupted run, with the checkpoint read from the Delta log.
fn kills_never_lose_or_duplicate(
    out: &str,
    reference: &str,
    env: &[(String, String)],
    rules: &Path,
) {
    let (n, corrupt_every, corp) = (3000, 89, "wwdeltakill");
    let t = Instant::now();
    assert!(demo(reference, corp, n, corrupt_every, rules, env)
        .status()
        .unwrap()
        .success());
    let full_run = t.elapsed();
    let reference_target = target_for(reference, env);
    let reference_seen = seen(&reference_target);
    reference_seen.assert_exactly_once(corp, n, corrupt_every);
    assert!(reference_seen.findings.len() > 100);

    let attempt = std::cell::Cell::new(0);
    let root = || format!("{out}/attempt-{}", attempt.get());
    let killed = kill_until_done(
        full_run,
        &|| demo(&root(), corp, n, corrupt_every, rules, env),
        &|| seen(&target_for(&root(), env)).assert_no_duplicates(),
        &|| attempt.set(attempt.get() + 1),
    );
    assert!(killed >= 10, "only {killed} runs were killed mid-way");
    assert!(demo(&root(), corp, n, corrupt_every, rules, env)
        .status()
        .unwrap()
        .success());
    let target = target_for(&root(), env);
    let s = seen(&target);
    s.assert_exactly_once(corp, n, corrupt_every);
    let findings: BTreeSet<_> = s.findings.into_iter().collect();
    let want: BTreeSet<_> = reference_seen.findings.into_iter().collect();
    assert_eq!(findings, want);
    assert_eq!(checkpoint(&target, corp), Some(n));
}

fn rules_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("rules.toml");
    std::fs::write(&p, RULES).unwrap();
    p
}

#[test]
fn random_kills_never_lose_or_duplicate_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    let out = dir.path().join("out");
    let reference = dir.path().join("reference");
    kills_never_lose_or_duplicate(
        out.to_str().unwrap(),
        reference.to_str().unwrap(),
        &[],
        &rules,
    );
}

#[test]
fn random_kills_never_lose_or_duplicate_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    kills_never_lose_or_duplicate(
        &format!("s3://{}/kills", s3.bucket()),
        &format!("s3://{}/reference", s3.bucket()),
        &s3.env(),
        &rules,
    );
}

/// Two processes writing different corps into the same tables at once, committing every 120
/// records: their commits race all the time, and delta-rs retries the loser on the next version.
fn two_corps_at_once(out: &str, env: &[(String, String)], rules: &Path) {
    let (n, corrupt_every) = (2500, 97);
    let mut a = demo(out, "wwwriter0000000a", n, corrupt_every, rules, env)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = demo(out, "wwwriter0000000b", n, corrupt_every, rules, env)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for (name, child) in [("a", &mut a), ("b", &mut b)] {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "writer {name}: {err}");
    }
    let target = target_for(out, env);
    let s = seen(&target);
    for corp in ["wwwriter0000000a", "wwwriter0000000b"] {
        s.assert_exactly_once(corp, n, corrupt_every);
        assert_eq!(checkpoint(&target, corp), Some(n));
    }
}

#[test]
fn two_writers_of_different_corps_commit_concurrently_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    two_corps_at_once(dir.path().join("out").to_str().unwrap(), &[], &rules);
}

#[test]
fn two_writers_of_different_corps_commit_concurrently_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    two_corps_at_once(&format!("s3://{}/two", s3.bucket()), &s3.env(), &rules);
}

/// Two writers of the **same** corp: the second to commit a batch sees that the corp's
/// transaction moved under it, and discards its batch; the tables never hold a seq twice, and
/// a run afterwards fills what is left.
fn same_corp_twice(out: &str, env: &[(String, String)]) {
    use wecom_archive::sink::delta::DeltaTables;
    let corp = "wwsamecorp000001";
    let target = Arc::new(target_for(out, env));
    let props = wecom_archive::sink::parquet::ParquetOptions::default()
        .writer_properties()
        .unwrap();
    let batch = |from: u64, to: u64| {
        use wecom_archive::source::Source;
        let keyring = wecom_archive::source::sim::demo_keyring(Default::default()).unwrap();
        let mut sim =
            wecom_archive::source::sim::SimSource::new(wecom_archive::source::sim::SimConfig {
                messages: to,
                corrupt_every: 0,
                ..Default::default()
            });
        let page = sim.fetch(from - 1, (to - from + 1) as u32).unwrap();
        let mut b = wecom_archive::model::schema::ChatBatchBuilder::with_capacity(100);
        for item in page.items {
            let rec = item.unwrap();
            let d = wecom_archive::pipeline::transform::decode(&keyring, None, &rec).unwrap();
            b.append(d.seq, d.publickey_ver, &d.plaintext, &d.message);
        }
        vec![(format!("corp_id={corp}/date=2026-11-20"), b.finish())]
    };
    let mut first = DeltaTables::open(target.clone(), corp, false, props.clone()).unwrap();
    let mut second = DeltaTables::open(target.clone(), corp, false, props).unwrap();
    // Both resume from nothing and decrypt seqs 1..=100.
    for (p, b) in batch(1, 100) {
        first.write_messages(&p, &b).unwrap();
        second.write_messages(&p, &b).unwrap();
    }
    first.commit(100).unwrap();
    let err = second.commit(100).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("another writer committed corp wwsamecorp000001"),
        "{text}"
    );
    assert!(text.contains("its seq 100"), "{text}");
    let s = seen(&target);
    assert_eq!(s.rows[corp].len(), 100);
    assert_eq!(
        s.rows[corp].iter().copied().collect::<BTreeSet<_>>(),
        (1..=100).collect()
    );
    assert_eq!(checkpoint(&target, corp), Some(100));
}

#[test]
fn a_second_writer_of_the_same_corp_loses_its_commit_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    same_corp_twice(dir.path().join("out").to_str().unwrap(), &[]);
}

#[test]
fn a_second_writer_of_the_same_corp_loses_its_commit_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    same_corp_twice(&format!("s3://{}/same", s3.bucket()), &s3.env());
}

/// Two **processes** pulling the same corp into the same tables at once: whichever commits a
/// batch second stops with the error that says another writer committed it first, the tables
/// never hold a seq twice, and a run afterwards completes the corp, each seq exactly once.
fn same_corp_in_two_processes(out: &str, env: &[(String, String)], rules: &Path) {
    let (corp, n, corrupt_every) = ("wwsamecorp000002", 6000, 97);
    let spawn = || {
        demo(out, corp, n, corrupt_every, rules, env)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut writers = [spawn(), spawn()];
    let mut superseded = 0;
    for child in &mut writers {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        if !status.success() {
            assert!(
                err.contains(&format!("another writer committed corp {corp}")),
                "a writer failed otherwise: {err}"
            );
            superseded += 1;
        }
    }
    // Both started from nothing and write for seconds: their commits race.
    assert_eq!(superseded, 1, "exactly one writer loses a race");
    let target = target_for(out, env);
    seen(&target).assert_no_duplicates();
    assert!(demo(out, corp, n, corrupt_every, rules, env)
        .status()
        .unwrap()
        .success());
    seen(&target_for(out, env)).assert_exactly_once(corp, n, corrupt_every);
    assert_eq!(checkpoint(&target_for(out, env), corp), Some(n));
}

#[test]
fn two_processes_of_the_same_corp_never_write_a_seq_twice_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    same_corp_in_two_processes(dir.path().join("out").to_str().unwrap(), &[], &rules);
}

#[test]
fn two_processes_of_the_same_corp_never_write_a_seq_twice_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    same_corp_in_two_processes(&format!("s3://{}/same2", s3.bucket()), &s3.env(), &rules);
}

fn cli(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("WECOM_ARCHIVE_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

/// OPTIMIZE (`compact`) over and over while another corp is being pulled into the same tables,
/// then VACUUM: the rows stay exactly once, files are merged, the log has a checkpoint, and the
/// merged files and a crashed run's leftover are deleted.
fn optimize_and_vacuum_while_writing(out: &str, env: &[(String, String)], rules: &Path) {
    let (n, corrupt_every) = (3000, 101);
    let (a, b) = ("wwoptimize00000a", "wwoptimize00000b");
    assert!(demo(out, a, n, corrupt_every, rules, env)
        .status()
        .unwrap()
        .success());
    let target = target_for(out, env);
    // 3000 records in commits of 120: more commits than the checkpoint interval.
    let store = target.store();
    let log = |table: &str| {
        let url = target.table_url(table);
        object_store::path::Path::parse(format!(
            "{}_delta_log/_last_checkpoint",
            url.path().trim_start_matches('/')
        ))
        .unwrap()
    };
    target
        .block_on(store.head(&log("messages")))
        .expect("a log checkpoint after more commits than delta.checkpointInterval");
    let files_before = read::view(&target, TableKind::Messages)
        .unwrap()
        .files
        .len();

    // A leftover of a run killed between its upload and its commit.
    let orphan = object_store::path::Path::parse(format!(
        "{}corp_id={a}/date=2026-01-01/part-orphan.parquet",
        target.table_url("messages").path().trim_start_matches('/')
    ))
    .unwrap();
    target
        .block_on(store.put(&orphan, b"not referenced".to_vec().into()))
        .unwrap();

    let mut writer = demo(out, b, n, corrupt_every, rules, env)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut optimized = 0;
    loop {
        let done = writer.try_wait().unwrap().is_some();
        let o = cli(
            &["compact", "--out", out, "--target-file-mb", "64", "--json"],
            env,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        optimized += report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !t["version"].is_null())
            .count();
        if done {
            break;
        }
    }
    let status = writer.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(writer.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "the pull beside OPTIMIZE: {err}");
    assert!(optimized >= 2, "OPTIMIZE committed {optimized} times");
    let after = read::view(&target, TableKind::Messages).unwrap();
    assert!(
        after.files.len() < files_before,
        "{} files after OPTIMIZE, {files_before} before",
        after.files.len()
    );
    let s = seen(&target);
    s.assert_exactly_once(a, n, corrupt_every);
    s.assert_exactly_once(b, n, corrupt_every);

    // Nothing writes now: retain nothing.
    let o = cli(
        &["vacuum", "--out", out, "--retain-hours", "0", "--json"],
        env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let deleted: Vec<String> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["files_deleted"].as_array().unwrap().clone())
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert!(
        deleted.iter().any(|f| f.ends_with("part-orphan.parquet")),
        "{deleted:?}"
    );
    assert!(deleted.len() > 1, "{deleted:?}");
    assert!(target.block_on(store.head(&orphan)).is_err());
    let s = seen(&target);
    s.assert_exactly_once(a, n, corrupt_every);
    s.assert_exactly_once(b, n, corrupt_every);
}

#[test]
fn optimize_and_vacuum_while_a_pull_writes_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    optimize_and_vacuum_while_writing(dir.path().join("out").to_str().unwrap(), &[], &rules);
}

#[test]
fn optimize_and_vacuum_while_a_pull_writes_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    optimize_and_vacuum_while_writing(&format!("s3://{}/optimize", s3.bucket()), &s3.env(), &rules);
}

/// `format = "delta"` in the config: `pull --once` writes the tables (on S3 with a local state
/// database), resumes from the Delta log, and a second pull adds nothing.
fn pull_with_config(out: &str, env: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    let config = dir.path().join("wecom-archive.toml");
    let (corp, n) = ("wwdeltapull00001", 1500u64);
    std::fs::write(
        &config,
        format!(
            r#"
out = "{out}"
format = "delta"
state = "state/state.sqlite"
rules = "{rules}"
timezone = "UTC"

[[corp]]
corp_id = "{corp}"
source = "sim"
sim_messages = {n}
"#,
            rules = rules.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let first = cli(&["pull", "--once", "--config", config, "--json"], env);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let target = target_for(out, env);
    let s = seen(&target);
    let dead = s.dead.get(corp).map_or(0, Vec::len) as u64;
    assert_eq!(s.rows[corp].len() as u64 + dead, n);
    s.assert_findings_of_rows();
    assert!(!s.findings.is_empty());
    assert_eq!(checkpoint(&target, corp), Some(n));
    let second = cli(&["pull", "--once", "--config", config, "--json"], env);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(seen(&target).rows[corp].len(), s.rows[corp].len());
    assert_ne!(report, serde_json::Value::Null);
}

#[test]
fn pull_with_format_delta_in_the_config_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    pull_with_config(dir.path().join("out").to_str().unwrap(), &[]);
}

#[test]
fn pull_with_format_delta_in_the_config_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    pull_with_config(&format!("s3://{}/pull", s3.bucket()), &s3.env());
}

#[test]
fn a_url_out_without_delta_or_state_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    for (body, want) in [
        ("out = \"s3://b/p\"\n", "needs format = \"delta\""),
        (
            "out = \"s3://b/p\"\nformat = \"delta\"\n",
            "set state = \"PATH\"",
        ),
    ] {
        std::fs::write(
            &config,
            format!("{body}[[corp]]\ncorp_id = \"wwx\"\nsource = \"sim\"\n"),
        )
        .unwrap();
        let o = cli(
            &["pull", "--once", "--config", config.to_str().unwrap()],
            &[],
        );
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn parquet_only_commands_refuse_a_delta_tree_and_say_how_to_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    let out = dir.path().join("out");
    let o = demo(out.to_str().unwrap(), "wwrefuse00001", 50, 0, &rules, &[])
        .status()
        .unwrap();
    assert!(o.success());
    let out = out.to_str().unwrap();
    let to = dir.path().join("export");
    let to = to.to_str().unwrap();
    let rules = rules.to_str().unwrap();
    let corp = ["--corp", "wwrefuse00001"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("inspect", vec!["inspect", out]),
        ("scan", vec!["scan", "--out", out, "--rules", rules]),
        (
            "export",
            [
                &["export", "--out", out][..],
                &corp,
                &["--user", "u1", "--format", "csv", "--to-dir", to],
            ]
            .concat(),
        ),
        (
            "retry-dead-letters",
            [&["retry-dead-letters", "--out", out][..], &corp].concat(),
        ),
        ("migrate", vec!["migrate", "--out", out]),
    ];
    for (command, args) in cases {
        let o = cli(&args, &[]);
        assert!(!o.status.success(), "{command}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("holds Delta tables") && err.contains(&format!("`{command}`")),
            "{command}: {err}"
        );
        assert!(err.contains("read_delta"), "{command}: {err}");
    }
    // Nothing was touched: the demo's rows are all there.
    let target = DeltaTarget::open(out).unwrap();
    let s = seen(&target);
    assert_eq!(s.rows["wwrefuse00001"].len(), 50);
}

/// The paths `strace -y` shows fsynced, in order (`None` when strace is not installed).
fn fsynced_paths(cmd: &mut Command, trace: &Path) -> Option<Vec<String>> {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let status = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(trace)
        .arg(program)
        .args(args)
        .env("WECOM_ARCHIVE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    assert!(status.success());
    let text = std::fs::read_to_string(trace).unwrap();
    let paths = text
        .lines()
        .filter_map(|l| {
            let call = l.find("fsync(")?;
            let rest = &l[call..];
            let (start, end) = (rest.find('<')?, rest.find('>')?);
            Some(rest[start + 1..end].to_owned())
        })
        .collect();
    Some(paths)
}

#[test]
fn each_local_commit_is_fsynced_after_the_data_files_it_adds() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path());
    let out = dir.path().join("out");
    let mut cmd = demo(out.to_str().unwrap(), "wwfsync000001", 600, 97, &rules, &[]);
    let Some(synced) = fsynced_paths(&mut cmd, &dir.path().join("strace.txt")) else {
        eprintln!("skipped: strace is not installed (.ci/run installs it)");
        return;
    };
    let position = |p: &Path| synced.iter().position(|s| Path::new(s) == p);
    let mut commits = 0;
    for table in ["messages", "dead_letters", "findings"] {
        let log = out.join(table).join("_delta_log");
        for entry in std::fs::read_dir(&log).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Version 0 creates the table: no data, nothing to lose.
            if !name.ends_with(".json") || name.starts_with("00000000000000000000") {
                continue;
            }
            let at = position(&path).unwrap_or_else(|| panic!("{name} of {table} never fsynced"));
            let synced_between = |from: usize, to: usize, p: &Path| {
                synced[from..to].iter().any(|s| Path::new(s) == p)
            };
            assert!(
                synced_between(at + 1, synced.len(), &log),
                "{table}/_delta_log not fsynced after {name}"
            );
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let action: serde_json::Value = serde_json::from_str(line).unwrap();
                let Some(add) = action["add"]["path"].as_str() else {
                    continue;
                };
                let decoded = percent_encoding::percent_decode_str(add).decode_utf8_lossy();
                let file = out.join(table).join(decoded.as_ref());
                let synced_at = position(&file)
                    .unwrap_or_else(|| panic!("{file:?} of {table}/{name} never fsynced"));
                assert!(synced_at < at, "{file:?} fsynced after {table}/{name}");
                assert!(
                    synced_between(synced_at + 1, at, file.parent().unwrap()),
                    "the folder of {file:?} not fsynced before {table}/{name}"
                );
                commits += 1;
            }
        }
    }
    // 600 records committed every 120: five commits of messages at least.
    assert!(commits >= 5, "{commits}");
}
