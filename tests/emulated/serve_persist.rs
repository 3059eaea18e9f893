//! `serve` answers a callback only once its event is stored: a state database that cannot be
//! written turns answers into 503 (WeCom retries), and every event answered 200 is stored and
//! handled exactly once.

use std::sync::Arc;
use std::time::Duration;

use crate::common::serve::*;
use crate::common::*;
use wecom_archive::clock::ManualClock;
use wecom_archive::emulator::sender::suite_ticket_xml;
use wecom_archive::emulator::Emulator;

const NOW: i64 = 1_800_000_000;
const BURST: i64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_state_database_gets_503_and_every_200_is_stored_and_handled_once() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = Emulator::start(world(), clock.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "", "");
    let running = start(&cfg, clock.clone(), Some(GatedPuller::new(true))).await;
    let (_, suite) = senders(&running);
    let m = running.metrics().clone();
    let db = running.state().lock().path().to_owned();
    let tickets: Vec<String> = (0..BURST)
        .map(|i| suite_ticket_xml(SUITE, &format!("ticket-{i}"), NOW - BURST + i))
        .collect();
    let burst = |suite: wecom_archive::emulator::sender::CallbackSender| {
        let tickets = tickets.clone();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for xml in tickets {
                let suite = suite.clone();
                set.spawn(async move {
                    let r = suite.post(COMMAND_PATH, SUITE, &xml, NOW).await.unwrap();
                    (r.status, r.body.trim().to_owned())
                });
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r.unwrap());
            }
            out
        }
    };

    // Another process holds the write lock for the whole burst (as a busy or failing disk
    // would): nothing can be stored, so nothing may be answered `success`.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let answers = tokio::time::timeout(Duration::from_secs(30), burst(suite.clone()))
        .await
        .unwrap();
    let stored_while_locked: i64 = locker
        .query_row("SELECT count(*) FROM callback_event", [], |r| r.get(0))
        .unwrap();
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(stored_while_locked, 0);
    assert!(
        answers.iter().all(|(s, _)| *s == 503),
        "answered while nothing could be stored: {answers:?}"
    );

    // WeCom retries each: now every one is answered `success`, stored once and handled once
    // (one recorded late, after its 503, is recognised as a duplicate, not handled again).
    let answers = tokio::time::timeout(Duration::from_secs(30), burst(suite.clone()))
        .await
        .unwrap();
    assert!(
        answers.iter().all(|(s, b)| *s == 200 && b == "success"),
        "{answers:?}"
    );
    eventually("every ticket handled", || {
        m.events("suite_ticket") == BURST as u64
    })
    .await;
    let rows = running.state().lock().callback_events().unwrap();
    assert_eq!(rows.len(), BURST as usize, "{rows:?}");
    assert!(rows.iter().all(|r| r.handled_at.is_some()), "{rows:?}");
    let keys: std::collections::HashSet<_> = rows.iter().map(|r| &r.dedupe_key).collect();
    assert_eq!(keys.len(), BURST as usize);
    let (t, _) = running.state().lock().suite_ticket(SUITE).unwrap().unwrap();
    assert_eq!(t.expose(), format!("ticket-{}", BURST - 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(m.events("suite_ticket"), BURST as u64);
    running.shutdown().await;
}
