//! `serve` under slow and idle clients, in process: a client that sends its headers at 1 byte/s
//! and one that sends nothing are closed after the header-read timeout, and `/healthz` keeps
//! answering while the connection limit is taken by half-open connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::serve::*;
use crate::common::*;
use wecom_archive::clock::ManualClock;
use wecom_archive::emulator::Emulator;

const NOW: i64 = 1_800_000_000;

/// Whether the server closed `s` (EOF or reset) within `within`, sending one byte of a
/// request line every second meanwhile when `trickle`.
async fn closed_within(s: &mut TcpStream, within: Duration, trickle: bool) -> bool {
    let deadline = Instant::now() + within;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
    let mut sent = 0;
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        if trickle && sent < request.len() && s.write_all(&request[sent..=sent]).await.is_err() {
            return true;
        }
        sent += 1;
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // hyper may answer 408 first; the close follows.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_closed_after_the_header_timeout() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = Emulator::start(world(), clock.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &emu.base_url(),
        "header_read_timeout_secs = 2\nidle_timeout_secs = 30",
        "",
    );
    let running = start(&cfg, clock.clone(), Some(GatedPuller::new(true))).await;
    let addr = running.addr();

    let mut slow = TcpStream::connect(addr).await.unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (slow_closed, silent_closed) = tokio::join!(
        closed_within(&mut slow, Duration::from_secs(8), true),
        closed_within(&mut silent, Duration::from_secs(8), false),
    );
    assert!(slow_closed, "a client sending 1 byte/s was not closed");
    assert!(silent_closed, "a half-open connection was not closed");

    // A kept-alive connection that goes quiet is closed too.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, Duration::from_secs(8), false).await);

    // Normal requests are served.
    let r = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_half_open_connections_fill_the_limit() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = Emulator::start(world(), clock.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &emu.base_url(),
        "header_read_timeout_secs = 2\nmax_connections = 8",
        "",
    );
    let running = start(&cfg, clock.clone(), Some(GatedPuller::new(true))).await;
    let addr = running.addr();
    // Twice the limit, held open by the client for the whole test.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("/healthz answers while half-open connections are held");
    assert_eq!(r.status(), 200);
    drop(held);
    running.shutdown().await;
}
