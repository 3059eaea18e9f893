//! `wecom-archive serve` as the real binary: a simulated corp pulled at start and on
//! `msgaudit_notify`, `/metrics` and `/healthz`, a graceful SIGINT when idle and SIGTERM in the
//! middle of a pull, and logs free of secrets.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::serve::*;
use wecom_archive::emulator::sender::{msgaudit_notify_xml, CallbackSender};
use wecom_archive::sink::inventory::scan_corp;
use wecom_archive::sink::layout;
use wecom_archive::state::StateStore;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

fn write_config(dir: &Path, sim_messages: u64, commit_every: u64) -> std::path::PathBuf {
    write_config_with(dir, sim_messages, commit_every, "")
}

fn write_config_with(
    dir: &Path,
    sim_messages: u64,
    commit_every: u64,
    callback_extra: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("app.token"), format!("{APP_TOKEN}\n")).unwrap();
    std::fs::write(dir.join("app.aes"), format!("{APP_AES}\n")).unwrap();
    let text = format!(
        "out = \"archive\"\ntimezone = \"UTC\"\npoll_interval_secs = 3600\n\n\
         [app]\ncorpid = \"{SIM_CORP}\"\n\n\
         [serve]\ncommit_every = {commit_every}\n\n\
         [callback]\nlisten = \"127.0.0.1:0\"\n{callback_extra}\n\n\
         [callback.app]\ntoken_file = \"app.token\"\naes_key_file = \"app.aes\"\n\n\
         [[corp]]\ncorp_id = \"{SIM_CORP}\"\nsource = \"sim\"\nsim_messages = {sim_messages}\n"
    );
    let path = dir.join("wecom-archive.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `serve` binary: its process, base URL and (collected at exit) stderr.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) stderr: std::thread::JoinHandle<String>,
}

/// Starts `serve --config cfg` and waits for its "listening on" line.
pub(crate) fn spawn(cfg: &Path) -> Served {
    spawn_with_log(cfg, "info")
}

fn spawn_with_log(cfg: &Path, log: &str) -> Served {
    spawn_limited(cfg, log, None)
}

/// Spawns `serve`, with at most `max_files` open file handles when given.
fn spawn_limited(cfg: &Path, log: &str, max_files: Option<u64>) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"])
        .arg(cfg)
        .env("WECOM_ARCHIVE_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = max_files {
        use std::os::unix::process::CommandExt;
        // Only setrlimit between fork and exec (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut s).unwrap();
        s
    });
    Served {
        child,
        base: format!("http://{addr}"),
        stderr,
    }
}

async fn metric(base: &str, line_prefix: &str) -> Option<u64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn wait_metric(base: &str, line_prefix: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(base, line_prefix).await != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{line_prefix} never reached {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal_and_wait(s: &mut Served, signal: i32) -> std::process::ExitStatus {
    unsafe { libc::kill(s.child.id() as i32, signal) };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn seqs(out: &Path) -> BTreeSet<u64> {
    let inv = scan_corp(out, SIM_CORP).unwrap();
    assert_eq!(inv.duplicate_seqs(), Vec::<u64>::new());
    inv.seqs.iter().chain(&inv.dead_seqs).copied().collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pulls_at_start_and_on_notify_then_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 3000, 1000);
    let mut s = spawn(&cfg);
    let ok = format!("wecom_archive_pulls_total{{corp=\"{SIM_CORP}\",outcome=\"ok\"}} ");
    // The first fallback poll pulls at start.
    wait_metric(&s.base, &ok, 1).await;
    let records = format!("wecom_archive_records_total{{corp=\"{SIM_CORP}\"}} ");
    assert_eq!(metric(&s.base, &records).await, Some(3000));

    let r = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
    assert_eq!(r.status(), 200);

    // msgaudit_notify → one more pull (nothing new in the simulated archive).
    let app = CallbackSender::new(APP_TOKEN, APP_AES, &s.base);
    let r = app
        .post(
            APP_PATH,
            SIM_CORP,
            &msgaudit_notify_xml(SIM_CORP, now()),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    wait_metric(&s.base, &ok, 2).await;
    assert_eq!(metric(&s.base, &records).await, Some(3000));
    assert_eq!(
        metric(
            &s.base,
            "wecom_archive_callbacks_total{result=\"accepted\"} "
        )
        .await,
        Some(1)
    );
    // A forged one is refused and counted.
    let forged = CallbackSender::new("notTheToken", APP_AES, &s.base);
    let r = forged
        .post(
            APP_PATH,
            SIM_CORP,
            &msgaudit_notify_xml(SIM_CORP, now()),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    let status = signal_and_wait(&mut s, libc::SIGINT);
    assert!(status.success(), "{status}");
    let stderr = s.stderr.join().unwrap();
    assert!(stderr.contains("callback rejected"), "{stderr}");
    // Neither the callback token nor the EncodingAESKey appears in the logs.
    assert!(
        !stderr.contains(APP_TOKEN) && !stderr.contains(APP_AES),
        "{stderr}"
    );

    let out = dir.path().join("archive");
    assert_eq!(seqs(&out), (1..=3000).collect());
    let store = StateStore::open(&layout::state_path(&out)).unwrap();
    let runs = store.runs(SIM_CORP, 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.outcome == "ok"), "{runs:?}");
    assert_eq!(store.checkpoint(SIM_CORP).unwrap(), Some(3000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_pull_commits_the_batch_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 2_000_000, 1000);
    let mut s = spawn(&cfg);
    let state = layout::state_path(&dir.path().join("archive"));
    // Wait until the start-up pull has committed at least once, then stop it mid-way.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cp = StateStore::open(&state)
            .and_then(|st| st.checkpoint(SIM_CORP))
            .ok()
            .flatten();
        if cp.is_some_and(|c| c >= 1000) {
            break;
        }
        assert!(Instant::now() < deadline, "no commit");
        assert!(s.child.try_wait().unwrap().is_none(), "serve exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = signal_and_wait(&mut s, libc::SIGTERM);
    assert!(status.success(), "{status}");
    let _ = s.stderr.join();

    let store = StateStore::open(&state).unwrap();
    let cp = store.checkpoint(SIM_CORP).unwrap().unwrap();
    assert!(cp < 2_000_000, "the pull was stopped, not finished");
    let runs = store.runs(SIM_CORP, 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, "interrupted");
    assert_eq!(runs[0].to_seq, cp);
    // Everything up to the checkpoint is in Parquet, exactly once, and nothing beyond it.
    assert_eq!(seqs(&dir.path().join("archive")), (1..=cp).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_show_secrets() {
    use wecom_archive::clock::{Clock, ManualClock, SystemClock};
    use wecom_archive::emulator::sender::{create_auth_xml, suite_ticket_xml};
    // The binary runs on the system clock; the emulator's manual clock starts at the same time.
    let clock = std::sync::Arc::new(ManualClock::new(SystemClock.now_unix()));
    let emu = wecom_archive::emulator::Emulator::start(crate::common::world(), clock)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::serve::write_config(dir.path(), &emu.base_url(), "", "");
    // Everything at debug level, dependencies included.
    let mut s = tokio::task::spawn_blocking(move || spawn_with_log(&cfg, "debug"))
        .await
        .unwrap();
    let suite = CallbackSender::new(SUITE_TOKEN, SUITE_AES, &s.base);
    let ticket = "pushed-ticket-for-leak-test";
    emu.state().set_suite_ticket(crate::common::SUITE, ticket);
    let r = suite
        .post(
            COMMAND_PATH,
            crate::common::SUITE,
            &suite_ticket_xml(crate::common::SUITE, ticket, now()),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let code = emu
        .state()
        .issue_auth_code(crate::common::SUITE, "wwleakcorp000001");
    let r = suite
        .post(
            COMMAND_PATH,
            crate::common::SUITE,
            &create_auth_xml(crate::common::SUITE, &code, now()),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    wait_metric(
        &s.base,
        "wecom_archive_events_total{type=\"create_auth\"} ",
        1,
    )
    .await;
    let state = layout::state_path(&dir.path().join("archive"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let pc = loop {
        let corp = StateStore::open(&state)
            .unwrap()
            .auth_corp("wwleakcorp000001")
            .unwrap();
        if let Some(c) = corp {
            break c.permanent_code.unwrap();
        }
        assert!(Instant::now() < deadline, "create_auth not handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Forged and malformed requests log their rejection.
    let forged = CallbackSender::new("forgedToken", SUITE_AES, &s.base);
    let r = forged
        .post(
            COMMAND_PATH,
            crate::common::SUITE,
            &suite_ticket_xml(crate::common::SUITE, "x", now()),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    let status = signal_and_wait(&mut s, libc::SIGTERM);
    assert!(status.success(), "{status}");
    let stderr = s.stderr.join().unwrap();
    assert!(stderr.contains("permanent code stored"), "{stderr}");
    assert!(stderr.contains("callback rejected"), "{stderr}");
    for secret in [
        APP_TOKEN,
        APP_AES,
        SUITE_TOKEN,
        SUITE_AES,
        crate::common::SUITE_SECRET,
        ticket,
        code.as_str(),
        pc.expose(),
    ] {
        assert!(!stderr.contains(secret), "{secret:?} leaked:\n{stderr}");
    }
    // Issued tokens (emuST…/emuAT…) never show either.
    assert!(
        !stderr.contains("emuST") && !stderr.contains("emuAT"),
        "{stderr}"
    );
}

/// `[media] on_pull`: serve fetches the media of what it pulled, verified, as messages land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_downloads_media_after_each_pull_when_configured() {
    use arrow_array::{Array, StringArray};
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 400, 1000);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n[media]\non_pull = true\n")).unwrap();
    let mut s = spawn(&cfg);
    let ok = format!("wecom_archive_pulls_total{{corp=\"{SIM_CORP}\",outcome=\"ok\"}} ");
    wait_metric(&s.base, &ok, 1).await;
    let status = signal_and_wait(&mut s, libc::SIGTERM);
    assert!(status.success(), "{status}");

    let table = layout::corp_media_files(&dir.path().join("archive"), SIM_CORP)
        .join(layout::MEDIA_FILES_FILE);
    let file = std::fs::File::open(table).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut statuses = BTreeSet::new();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let col = batch.column_by_name("status").unwrap();
        let col = col.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..col.len() {
            statuses.insert(col.value(i).to_owned());
            rows += 1;
        }
    }
    assert!(
        rows > 20,
        "only {rows} media references in 400 simulated messages"
    );
    assert_eq!(statuses, BTreeSet::from(["done".to_owned()]));
}

/// `[compaction] auto` (the default): after a pull, each closed day (the simulated November
/// days, before today) is one file, whatever the commits left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_compacts_closed_days_after_a_pull() {
    let dir = tempfile::tempdir().unwrap();
    // A commit every 200 records: several files per day before compaction.
    let cfg = write_config(dir.path(), 3000, 200);
    let mut s = spawn(&cfg);
    let ok = format!("wecom_archive_pulls_total{{corp=\"{SIM_CORP}\",outcome=\"ok\"}} ");
    wait_metric(&s.base, &ok, 1).await;
    let status = signal_and_wait(&mut s, libc::SIGTERM);
    assert!(status.success(), "{status}");
    let stderr = s.stderr.join().unwrap();
    assert!(stderr.contains("compacting a partition"), "{stderr}");

    let out = dir.path().join("archive");
    assert_eq!(seqs(&out), (1..=3000).collect());
    let corp = layout::corp_messages(&out, SIM_CORP);
    for day in std::fs::read_dir(&corp).unwrap() {
        let day = day.unwrap().path();
        let parts = std::fs::read_dir(&day)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                layout::is_part_file(&name.to_string_lossy())
            })
            .count();
        assert_eq!(parts, 1, "{}", day.display());
    }
}

/// Every callback answered 200 is durably stored before the answer: a SIGKILL right after the
/// answers loses none, and the next start handles those not yet handled, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_answers_loses_no_event_and_handles_each_once() {
    const N: i64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 10, 1000);
    let db = layout::state_path(&dir.path().join("archive"));
    let mut s = spawn(&cfg);
    let app = CallbackSender::new(APP_TOKEN, APP_AES, &s.base);
    let t0 = now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..N {
        let app = app.clone();
        set.spawn(async move {
            let xml = msgaudit_notify_xml(SIM_CORP, t0 - 100 + i);
            app.post(APP_PATH, SIM_CORP, &xml, now())
                .await
                .unwrap()
                .status
        });
    }
    let mut answered = 0;
    while let Some(st) = set.join_next().await {
        if st.unwrap() == 200 {
            answered += 1;
        }
    }
    unsafe { libc::kill(s.child.id() as i32, libc::SIGKILL) };
    s.child.wait().unwrap();
    assert_eq!(
        answered, N,
        "every callback answered 200 while the database is free"
    );

    // Every answered event is on disk, once.
    let rows = StateStore::open(&db).unwrap().callback_events().unwrap();
    assert_eq!(rows.len() as i64, N, "{rows:?}");
    let unhandled = rows.iter().filter(|r| r.handled_at.is_none()).count() as u64;

    // The next start handles exactly those not handled before the kill.
    let mut s = spawn(&cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !StateStore::open(&db)
        .unwrap()
        .unhandled_callback_events()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "stored events never handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handled_now = metric(
        &s.base,
        "wecom_archive_events_total{type=\"msgaudit_notify\"} ",
    )
    .await
    .unwrap_or(0);
    assert_eq!(handled_now, unhandled);
    let status = signal_and_wait(&mut s, libc::SIGTERM);
    assert!(status.success(), "{status}");
    let rows = StateStore::open(&db).unwrap().callback_events().unwrap();
    assert_eq!(rows.len() as i64, N);
    assert!(rows.iter().all(|r| r.handled_at.is_some()), "{rows:?}");
}

/// A flood of half-open connections cannot use up the file handles: with 150 held against a
/// process allowed 128, `/healthz` still answers (the connection limit keeps the rest in the
/// backlog and the header timeout frees slots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_half_open_connections_exceed_the_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config_with(
        dir.path(),
        10,
        1000,
        "header_read_timeout_secs = 2\nmax_connections = 32",
    );
    let mut s = spawn_limited(&cfg, "info", Some(128));
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("/healthz answers while half-open connections are held");
    assert_eq!(r.status(), 200);
    let status = signal_and_wait(&mut s, libc::SIGTERM);
    assert!(status.success(), "{status}");
    drop(held);
}

/// SIGTERM with a half-open connection (and one trickling its headers) open shuts down
/// within the bound, well before the header timeout would free them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_half_open_connections_stops_within_the_bound() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config_with(dir.path(), 10, 1000, "header_read_timeout_secs = 60");
    let mut s = spawn(&cfg);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let ok = format!("wecom_archive_pulls_total{{corp=\"{SIM_CORP}\",outcome=\"ok\"}} ");
    wait_metric(&s.base, &ok, 1).await;
    let _half_open = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /heal").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status = signal_and_wait(&mut s, libc::SIGTERM);
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    // The shutdown grace is 10 s; the header timeout 60 s.
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
}

/// A SIGTERM right after "listening on" is graceful (exit 0), not the default action.
#[test]
fn sigterm_right_after_listening_is_graceful() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 10, 1000);
    for _ in 0..3 {
        let mut s = spawn(&cfg);
        let status = signal_and_wait(&mut s, libc::SIGTERM);
        assert!(status.success(), "{status}");
    }
}
