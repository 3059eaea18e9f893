//! A bounded load test of the callback server on loopback: 20,000 real encrypted callbacks
//! (msgaudit_notify on the app URL and suite_ticket pushes on the command URL), 64 in flight.
//! Prints p50 / p99 / max latency; asserts only correctness: every callback answered 200 with
//! the right body, every one handled once, none dropped or duplicated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::serve::*;
use crate::common::*;
use wecom_archive::clock::ManualClock;
use wecom_archive::emulator::sender::{msgaudit_notify_xml, suite_ticket_xml, SignedRequest};
use wecom_archive::emulator::Emulator;

const NOW: i64 = 1_800_000_000;
const TOTAL: usize = 20_000;
const IN_FLIGHT: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_callbacks() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = Emulator::start(world(), clock.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "queue_capacity = 8192", "");
    let puller = GatedPuller::new(true);
    let running = start(&cfg, clock.clone(), Some(puller.clone())).await;
    let (app, suite) = senders(&running);
    let m = running.metrics().clone();

    // Requests are built (encrypted, signed) before the clock starts.
    let requests: Vec<(bool, SignedRequest)> = (0..TOTAL)
        .map(|i| {
            let i64i = i as i64;
            if i % 2 == 0 {
                let xml = msgaudit_notify_xml(SIM_CORP, NOW + i64i);
                (false, app.post_request(APP_PATH, SIM_CORP, &xml, NOW))
            } else {
                let xml = suite_ticket_xml(SUITE, &format!("ticket-{i}"), NOW - 100_000 + i64i);
                (true, suite.post_request(COMMAND_PATH, SUITE, &xml, NOW))
            }
        })
        .collect();
    let requests = Arc::new(requests);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (requests, next, app) = (requests.clone(), next.clone(), app.clone());
        workers.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((command, req)) = requests.get(i) else {
                    break;
                };
                let t = Instant::now();
                let r = app.send_post(req).await.expect("request failed");
                lat.push(t.elapsed());
                let want = if *command { "success" } else { "" };
                assert_eq!((r.status, r.body.as_str()), (200, want), "callback {i}");
            }
            lat
        });
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(TOTAL);
    while let Some(r) = workers.join_next().await {
        lat.extend(r.unwrap());
    }
    let wall = started.elapsed();
    assert_eq!(lat.len(), TOTAL);
    eventually("every event handled", || {
        m.events("msgaudit_notify") + m.events("suite_ticket") == TOTAL as u64
    })
    .await;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "load: {TOTAL} callbacks, {IN_FLIGHT} in flight, {:.2} s wall ({:.0}/s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        wall.as_secs_f64(),
        TOTAL as f64 / wall.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
    // None dropped, none duplicated, nothing rejected.
    assert_eq!(m.callbacks("accepted"), TOTAL as u64);
    assert_eq!(m.callbacks("duplicate"), 0);
    assert_eq!(m.events("msgaudit_notify"), (TOTAL / 2) as u64);
    assert_eq!(m.events("suite_ticket"), (TOTAL / 2) as u64);
    let text = m.render(NOW);
    assert!(!text.contains("result=\"queue_full\""), "{text}");
    // The newest ticket won.
    let (t, _) = running.state().lock().suite_ticket(SUITE).unwrap().unwrap();
    assert_eq!(t.expose(), format!("ticket-{}", TOTAL - 1));
    running.shutdown().await;
    // Notifies were coalesced: never more pulls than notifies (plus the start-up poll).
    println!("load: {} pulls for {} notifies", puller.pulls(), TOTAL / 2);
    assert!(puller.pulls() >= 1 && puller.pulls() <= (TOTAL / 2 + 1) as u64);
}
