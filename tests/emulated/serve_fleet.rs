//! The fleet's scale test: three `serve` workers on one PostgreSQL state and one set of Delta
//! tables pull 50 simulated corps between them. A burst of `msgaudit_notify` callbacks goes to
//! all three; one worker is killed with SIGKILL mid-run and another stopped with SIGTERM; the
//! last one finishes. At the end every corp's every seq is in the tables exactly once, the lease
//! log shows one holder at a time per corp (a takeover only from the killed worker), and the
//! emulator saw one suite-token call although every worker needed the token.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::block_in_place;

use wecom_archive::api::service::PERMANENT_CODE_V2_PATH;
use wecom_archive::auth::providers::SUITE_TOKEN_PATH;
use wecom_archive::clock::ManualClock;
use wecom_archive::emulator::sender::{
    create_auth_xml, msgaudit_notify_xml, suite_ticket_xml, CallbackSender,
};
use wecom_archive::emulator::Emulator;
use wecom_archive::sink::delta::{read, DeltaTarget, TableKind};
use wecom_archive::state::StateStore;

use crate::cli_serve::{spawn, Served};
use crate::common::serve::{COMMAND_PATH, DATA_PATH, SUITE_AES, SUITE_TOKEN};
use crate::common::{world, SUITE, SUITE_SECRET, TICKET};
use crate::pg_server::fresh_url;

const CORPS: usize = 50;
const MESSAGES: u64 = 300;

fn corp(i: usize) -> String {
    format!("wwfleetscale{i:04}")
}

fn write_config(dir: &Path, url: &str, api_base: &str) -> std::path::PathBuf {
    for (name, v) in [
        ("suite.token", SUITE_TOKEN),
        ("suite.aes", SUITE_AES),
        ("suite.secret", SUITE_SECRET),
        ("pc", "permanent-code-fleet"),
    ] {
        std::fs::write(dir.join(name), format!("{v}\n")).unwrap();
    }
    let mut text = format!(
        "out = \"archive\"\nformat = \"delta\"\nstate = \"{url}\"\ntimezone = \"UTC\"\n\
         poll_interval_secs = 3600\napi_base = \"{api_base}\"\n\n\
         [fleet]\nlease_secs = 4\n\n[serve]\ncommit_every = 100\n\n\
         [suite]\nsuite_id = \"{SUITE}\"\nsecret_file = \"suite.secret\"\n\n\
         [callback]\nlisten = \"127.0.0.1:0\"\n\n\
         [callback.suite]\ntoken_file = \"suite.token\"\naes_key_file = \"suite.aes\"\n\n"
    );
    for i in 0..CORPS {
        let c = corp(i);
        text.push_str(&format!(
            "[[corp]]\ncorp_id = \"{c}\"\nsource = \"sim\"\nsim_messages = {MESSAGES}\n\n\
             [[authcorp]]\ncorpid = \"{c}\"\npermanent_code_file = \"pc\"\n\n"
        ));
    }
    let path = dir.join("wecom-archive.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_pull_fifty_corps_exactly_once_through_kills() {
    let Some(url) = fresh_url() else { return };
    let clock = Arc::new(ManualClock::new(now()));
    let emu = Emulator::start(world(), clock.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &url, &emu.base_url());
    let mut workers: Vec<Served> = (0..3).map(|_| spawn(&cfg)).collect();
    let senders: Vec<CallbackSender> = workers
        .iter()
        .map(|w| CallbackSender::new(SUITE_TOKEN, SUITE_AES, &w.base))
        .collect();
    let store = StateStore::open(Path::new(&url)).unwrap();

    // WeCom pushes the suite_ticket to one worker; every worker reads it from the shared state.
    let r = senders[0]
        .post(
            COMMAND_PATH,
            SUITE,
            &suite_ticket_xml(SUITE, TICKET, now()),
            now(),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    wait_for("the ticket in the shared state", 30, || {
        store.suite_ticket(SUITE).unwrap().is_some()
    })
    .await;

    // Three new authorizations, one per worker, at once: each needs the suite token.
    let new_corps: Vec<String> = (0..3).map(|i| format!("wwfleetnew{i:06}")).collect();
    let codes: Vec<String> = new_corps
        .iter()
        .map(|c| emu.state().issue_auth_code(SUITE, c))
        .collect();
    let auths = workers.iter().zip(&codes).map(|(w, code)| {
        let xml = create_auth_xml(SUITE, code, now());
        let sender = CallbackSender::new(SUITE_TOKEN, SUITE_AES, &w.base);
        async move { sender.post(COMMAND_PATH, SUITE, &xml, now()).await.unwrap() }
    });
    for r in futures_join(auths).await {
        assert_eq!((r.status, r.body.as_str()), (200, "success"));
    }

    // The burst: a notify for every corp, spread over the three workers.
    for i in 0..CORPS {
        let c = corp(i);
        let r = senders[i % 3]
            .post(DATA_PATH, &c, &msgaudit_notify_xml(&c, now()), now())
            .await
            .unwrap();
        // Data callbacks are answered with an empty body.
        assert_eq!((r.status, r.body.as_str()), (200, ""), "notify of {c}");
    }

    // Worker 0 dies mid-run (once it holds a lease), worker 1 is stopped gracefully.
    let holder_of = |pid: u32| move |h: &str| h.contains(&format!(":{pid}:"));
    let killed_pid = workers[0].child.id();
    wait_for("worker 0 holding a lease", 60, || {
        store
            .leases()
            .unwrap()
            .iter()
            .any(|l| holder_of(killed_pid)(&l.holder) && l.released_at_ms.is_none())
    })
    .await;
    workers[0].child.kill().unwrap();
    workers[0].child.wait().unwrap();
    unsafe { libc::kill(workers[1].child.id() as i32, libc::SIGTERM) };
    let st = workers[1].child.wait().unwrap();
    assert!(st.success(), "SIGTERM: {st:?}");

    // Worker 2 finishes everything: the notifies' requests wait in the shared state, and the
    // killed worker's leases run out after 4 s.
    let out = dir.path().join("archive");
    // The Delta reader blocks on a runtime of its own: off this test's async threads.
    let target = block_in_place(|| DeltaTarget::open_with(out.to_str().unwrap(), &[]).unwrap());
    let started = Instant::now();
    loop {
        let done = block_in_place(|| {
            (0..CORPS)
                .filter(|&i| {
                    wecom_archive::sink::delta::corp_checkpoint(&target, &corp(i))
                        .unwrap()
                        .is_some_and(|s| s == MESSAGES)
                })
                .count()
        });
        if done == CORPS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "only {done} of {CORPS} corps caught up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Exactly once.
    let rows = block_in_place(|| read::seqs_by_corp(&target, TableKind::Messages).unwrap());
    let dead = block_in_place(|| read::seqs_by_corp(&target, TableKind::DeadLetters).unwrap());
    block_in_place(|| drop(target));
    for i in 0..CORPS {
        let c = corp(i);
        let mut all: Vec<u64> = rows
            .iter()
            .filter(|(k, _)| **k == c)
            .flat_map(|(_, v)| v.clone())
            .collect();
        all.extend(
            dead.iter()
                .filter(|(k, _)| **k == c)
                .flat_map(|(_, v)| v.clone()),
        );
        let n = all.len();
        let unique: BTreeSet<u64> = all.into_iter().collect();
        assert_eq!(unique.len(), n, "corp {c}: a seq twice");
        assert_eq!(unique, (1..=MESSAGES).collect(), "corp {c}");
    }

    // One holder at a time, per corp; takeovers only from the killed worker.
    let mut takeovers = 0;
    let mut workers_that_pulled = BTreeSet::new();
    for i in 0..CORPS {
        let c = corp(i);
        let log = store.lease_log(&c).unwrap();
        let mut holding: Option<String> = None;
        for (holder, event, _) in &log {
            workers_that_pulled.insert(holder.clone());
            match event.as_str() {
                "claim" => {
                    if let Some(h) = &holding {
                        assert_eq!(h, holder, "corp {c}: claimed while held: {log:?}");
                    }
                    holding = Some(holder.clone());
                }
                "takeover" => {
                    let h = holding.take().expect("a takeover follows a claim");
                    assert!(
                        holder_of(killed_pid)(&h),
                        "corp {c}: taken from a live worker: {log:?}"
                    );
                    takeovers += 1;
                    holding = Some(holder.clone());
                }
                "release" => {
                    assert_eq!(
                        holding.as_deref(),
                        Some(holder.as_str()),
                        "corp {c}: {log:?}"
                    );
                    holding = None;
                }
                other => panic!("{other}"),
            }
        }
        assert_eq!(holding, None, "corp {c} still held: {log:?}");
    }
    assert!(
        takeovers >= 1,
        "the killed worker's lease was never taken over"
    );
    assert!(workers_that_pulled.len() >= 2, "{workers_that_pulled:?}");

    // The suite token: one upstream call for three workers; one code exchange per corp.
    assert_eq!(emu.calls(SUITE_TOKEN_PATH), 1, "suite token calls");
    assert_eq!(emu.calls(PERMANENT_CODE_V2_PATH), 3);
    for c in &new_corps {
        assert!(
            store.auth_corp(c).unwrap().is_some_and(|a| a.enabled),
            "{c}"
        );
    }

    // The survivor's gauges: idle once its last follow-up pull ends; it never lost a lease.
    let started = Instant::now();
    let metrics = loop {
        let text = reqwest::get(format!("{}/metrics", workers[2].base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("\nwecom_archive_leases_held 0\n") {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        metrics.contains("\nwecom_archive_leases_lost_total 0\n"),
        "{metrics}"
    );
    unsafe { libc::kill(workers[2].child.id() as i32, libc::SIGTERM) };
    let st = workers[2].child.wait().unwrap();
    let logs: Vec<String> = workers
        .into_iter()
        .map(|w| w.stderr.join().unwrap())
        .collect();
    assert!(st.success(), "{}", logs[2]);
    for log in &logs {
        assert!(!log.contains("permanent-code-fleet"), "a secret in the log");
    }
}

/// Awaits every future of `futs` concurrently.
async fn futures_join<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
