//! The HTTP/1 connection layer under the callback router: hyper's server connections with the
//! limits `axum::serve` does not offer.
//!
//! * **Header read timeout**: from the moment a connection waits for a request (new or kept
//!   alive) until the request's headers are complete. A client sending headers at 1 byte/s, or
//!   a half-open connection that sends nothing, is closed after it.
//! * **Idle timeout**: a connection with no byte read or written for this long is closed (a
//!   client that stalls its body or stops reading the answer).
//! * **Connection limit**: at most `max_connections` are served at once; further ones wait in
//!   the listen backlog (logged once per episode), so a flood of idle connections cannot use up
//!   the process's file handles and `/healthz` is served as soon as a slot frees up.
//! * **Graceful shutdown**: the listener is closed, idle connections are closed at once and
//!   requests in flight get `shutdown_grace` to finish; what is left is then dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;

/// Connection limits ([`crate::config::CallbackSection`]).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Time for a request's headers to arrive, from when the connection waits for one.
    pub header_read_timeout: Duration,
    /// A connection without any byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take.
    pub shutdown_grace: Duration,
}

/// Serves `app` on `listener` until `stop` fires (or its sender is dropped), then shuts down
/// gracefully within [`ConnLimits::shutdown_grace`].
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnLimits,
    mut stop: oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut saturated = false;
    loop {
        while conns.try_join_next().is_some() {}
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => {
                saturated = false;
                p
            }
            Err(_) => {
                if !saturated {
                    saturated = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    _ = &mut stop => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file handles and the like: keep serving the open connections.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let (limits, closing) = (limits.clone(), closing.clone());
        conns.spawn(async move {
            connection(stream, service, &limits, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let open = conns.len();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            of = open,
            grace = ?limits.shutdown_grace,
            "connections still busy after the shutdown grace period are closed"
        );
        conns.shutdown().await;
    }
}

async fn connection(
    stream: TcpStream,
    service: TowerToHyperService<axum::Router>,
    limits: &ConnLimits,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let check = (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutting_down = *closing.borrow();
    if shutting_down {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    // Header timeouts, resets, malformed requests: routine on the internet.
                    tracing::debug!(error = %e, "connection closed");
                }
                return;
            }
            _ = tick.tick() => {
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!(idle = ?limits.idle_timeout, "idle connection closed");
                    return;
                }
            }
            changed = closing.changed(), if !shutting_down => {
                if changed.is_err() || *closing.borrow() {
                    shutting_down = true;
                    // Closes an idle connection now; one with a request in flight after it.
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a connection last moved a byte.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records [`Activity`] on every byte read or written.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
