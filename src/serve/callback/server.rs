//! The callback HTTP server (axum): GET URL verification and POST event delivery for the
//! self-built app URL and the suite's command and data URLs, plus `/metrics` and `/healthz`.
//!
//! Each POST is checked in this order, and the first failure answers at once with a status, a
//! one-line log and a `wecom_archive_callbacks_total{result=…}` count; nothing is stored:
//!
//! | check | failure | status |
//! |---|---|---|
//! | known path / method | `not_found` / `bad_method` | 404 / 405 |
//! | `msg_signature`, `timestamp`, `nonce` present, timestamp numeric | `bad_request` | 400 |
//! | timestamp within ± the window of now | `stale_timestamp` | 403 |
//! | body within the size limit (before reading it whole) | `too_large` | 413 |
//! | body received within 10 s | `timeout` | 408 |
//! | envelope is well-formed XML with `<Encrypt>` | `bad_xml` | 400 |
//! | signature (constant time) | `bad_signature` | 403 |
//! | decrypts | `bad_encrypt` | 400 |
//! | receiveid / `SuiteId` is the route's | `bad_receiveid` | 403 |
//! | plaintext is well-formed XML with the event's fields | `bad_xml` / `bad_event` | 400 |
//! | room in the event queue | `queue_full` | 503 (WeCom retries) |
//! | event row committed in the state database (within 3 s) | `store_failed` / `store_timeout` | 503 (WeCom retries) |
//!
//! An authentic event `serve` does not act on (a chat message, `change_contact`, …) is answered
//! like any other (`ignored`): a non-200 would only make WeCom retry it three times.
//!
//! Accepted events go onto a bounded queue ([`Delivery`]); the event handler records them in
//! the state database in batches (one transaction each) and the reply goes out once the
//! event's row is committed: `success` on the command URL (doc 97172, within 1000 ms), an
//! empty 200 on the app and data URLs (doc 95039). Slow work (token and permanent-code
//! exchanges, pulls) happens after that, from the stored row, never in the request.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::crypto::msgcrypt::{MsgCrypt, MsgCryptError};
use crate::serve::callback::events::{dedupe_key, Event};
use crate::serve::callback::xml;
use crate::serve::metrics::Metrics;

/// How long a POST body may take to arrive. WeCom itself gives up after 5 s.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Which kind of URL a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A self-built app's receive URL (receiveid = its CorpID).
    App,
    /// A suite's command (指令) URL (receiveid = SuiteID).
    SuiteCommand,
    /// A suite's data (数据) URL (receiveid = the authorizing corp's CorpID).
    SuiteData,
}

/// The corps with an active authorization: receiveids accepted on the data URL. Shared with
/// the event handler, which adds a corp on `create_auth` and removes it on `cancel_auth`.
pub type KnownCorps = Arc<RwLock<HashSet<String>>>;

/// Which receiveids a POST may carry.
#[derive(Debug, Clone)]
pub enum ReceiveIds {
    /// Exactly these.
    Fixed(Vec<String>),
    /// Any corp in the set.
    Corps(KnownCorps),
}

/// One callback URL.
#[derive(Debug)]
pub struct Endpoint {
    /// URL path, e.g. `/callback/app`.
    pub path: String,
    /// What it serves.
    pub kind: RouteKind,
    /// Token and EncodingAESKey configured for it.
    pub crypto: MsgCrypt,
    /// receiveids accepted by GET URL verification.
    pub verify_receiveids: Vec<String>,
    /// receiveids accepted on POST.
    pub post_receiveids: ReceiveIds,
}

impl RouteKind {
    /// Its name in the state database's event rows.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::App => "app",
            RouteKind::SuiteCommand => "suite_command",
            RouteKind::SuiteData => "suite_data",
        }
    }
}

/// An authenticated event, queued for the event handler to record.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The URL kind it came to.
    pub route: RouteKind,
    /// The authenticated receiveid.
    pub receiveid: String,
    /// Dedupe key (WeCom retries carry the same plaintext).
    pub dedupe_key: String,
    /// The event.
    pub event: Event,
    /// The decrypted plaintext (what is stored; the event is parsed again from it after a
    /// restart).
    pub plaintext: String,
}

/// How a queued callback was recorded: the reply a request waits for before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Committed to the state database as a new event.
    New,
    /// A retry of an event already recorded.
    Duplicate,
    /// The state database could not record it (logged by the handler).
    Failed,
}

/// A queued callback and where to send how it was recorded.
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub inbound: Inbound,
    /// Answered once the event's row is committed (or could not be).
    pub reply: oneshot::Sender<Recorded>,
}

/// How long a request waits for its event to be committed before it answers 503. WeCom gives
/// up after 5 s and retries; a row committed after the 503 makes that retry a duplicate.
const STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Limits and checks of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted |timestamp − now|, seconds.
    pub timestamp_window_secs: i64,
    /// Largest accepted body, bytes.
    pub max_body_bytes: usize,
    /// The configured suite: command events must name it.
    pub suite_id: Option<String>,
}

/// The callback server's state.
pub struct CallbackServer {
    endpoints: HashMap<String, Endpoint>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    queue: mpsc::Sender<Delivery>,
    metrics: Arc<Metrics>,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for CallbackServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackServer")
            .field("paths", &self.endpoints.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}

impl CallbackServer {
    /// A server for `endpoints`, queueing accepted events on `queue`. `stopping` turns
    /// `/healthz` to 503 during shutdown.
    pub fn new(
        endpoints: Vec<Endpoint>,
        limits: Limits,
        clock: Arc<dyn Clock>,
        queue: mpsc::Sender<Delivery>,
        metrics: Arc<Metrics>,
        stopping: Arc<AtomicBool>,
    ) -> Self {
        CallbackServer {
            endpoints: endpoints.into_iter().map(|e| (e.path.clone(), e)).collect(),
            limits,
            clock,
            queue,
            metrics,
            stopping,
        }
    }

    /// The axum router: the callback URLs, `/metrics` and `/healthz`.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .route("/healthz", axum::routing::get(healthz))
            .fallback(callback)
            .with_state(self)
    }

    fn reject(
        &self,
        path: &str,
        status: StatusCode,
        result: &'static str,
        detail: &dyn std::fmt::Display,
    ) -> Response {
        self.metrics.callback(result);
        tracing::warn!(
            path,
            status = status.as_u16(),
            result,
            "callback rejected: {detail}"
        );
        (status, format!("{result}\n")).into_response()
    }
}

async fn metrics(State(s): State<Arc<CallbackServer>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(s.clock.now_unix()),
    )
        .into_response()
}

async fn healthz(State(s): State<Arc<CallbackServer>>) -> Response {
    if s.stopping.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

/// The signed query of a callback.
struct Signed {
    msg_signature: String,
    timestamp: String,
    nonce: String,
    echostr: Option<String>,
}

async fn callback(
    State(s): State<Arc<CallbackServer>>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Response {
    let path = uri.path();
    let Some(ep) = s.endpoints.get(path) else {
        return s.reject(
            path,
            StatusCode::NOT_FOUND,
            "not_found",
            &"no such callback URL",
        );
    };
    if method != Method::GET && method != Method::POST {
        return s.reject(path, StatusCode::METHOD_NOT_ALLOWED, "bad_method", &method);
    }
    let signed = match signed_query(&s, &uri) {
        Ok(q) => q,
        Err((status, result, detail)) => return s.reject(path, status, result, &detail),
    };
    if method == Method::GET {
        verify_url(&s, ep, &signed)
    } else {
        receive(&s, ep, &signed, body).await
    }
}

type Rejection = (StatusCode, &'static str, String);

fn signed_query(s: &CallbackServer, uri: &Uri) -> Result<Signed, Rejection> {
    let bad = |d: String| (StatusCode::BAD_REQUEST, "bad_request", d);
    // Values are URL-decoded here, as WeCom's docs require before the signature check.
    let Query(mut q) = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map_err(|e| bad(format!("bad query string: {e}")))?;
    let mut take = |k: &str| {
        q.remove(k)
            .ok_or_else(|| bad(format!("query parameter {k} is missing")))
    };
    let signed = Signed {
        msg_signature: take("msg_signature")?,
        timestamp: take("timestamp")?,
        nonce: take("nonce")?,
        echostr: q.remove("echostr"),
    };
    let ts: i64 = signed
        .timestamp
        .parse()
        .map_err(|_| bad("timestamp is not a number".into()))?;
    let now = s.clock.now_unix();
    let window = s.limits.timestamp_window_secs;
    if !within_window(now, ts, window) {
        return Err((
            StatusCode::FORBIDDEN,
            "stale_timestamp",
            format!(
                "timestamp {ts} is {}s from now, outside ±{window}s",
                ts.saturating_sub(now)
            ),
        ));
    }
    Ok(signed)
}

/// Whether `|ts − now| <= window`. Checked: a timestamp near `i64::MIN` or `i64::MAX` must
/// not wrap around into the window.
fn within_window(now: i64, ts: i64, window: i64) -> bool {
    now.checked_sub(ts)
        .and_then(i64::checked_abs)
        .is_some_and(|d| d <= window)
}

fn verify_url(s: &CallbackServer, ep: &Endpoint, q: &Signed) -> Response {
    let path = ep.path.as_str();
    let Some(echostr) = &q.echostr else {
        return s.reject(
            path,
            StatusCode::BAD_REQUEST,
            "bad_request",
            &"query parameter echostr is missing",
        );
    };
    let allowed: Vec<&str> = ep.verify_receiveids.iter().map(String::as_str).collect();
    match ep
        .crypto
        .verify_and_decrypt(&q.msg_signature, &q.timestamp, &q.nonce, echostr, &allowed)
    {
        Ok(d) => {
            s.metrics.callback("verified");
            tracing::info!(path, receiveid = %d.receiveid, "callback URL verified");
            // The plain echostr, nothing around it (no quotes, BOM or newline).
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain")],
                d.msg,
            )
                .into_response()
        }
        Err(e) => crypto_rejection(s, path, &e),
    }
}

fn crypto_rejection(s: &CallbackServer, path: &str, e: &MsgCryptError) -> Response {
    match e {
        MsgCryptError::SignatureMismatch => {
            s.reject(path, StatusCode::FORBIDDEN, "bad_signature", e)
        }
        MsgCryptError::ReceiveIdMismatch { .. } => {
            s.reject(path, StatusCode::FORBIDDEN, "bad_receiveid", e)
        }
        _ => s.reject(path, StatusCode::BAD_REQUEST, "bad_encrypt", e),
    }
}

async fn receive(s: &CallbackServer, ep: &Endpoint, q: &Signed, body: Body) -> Response {
    let path = ep.path.as_str();
    let max = s.limits.max_body_bytes;
    // Bounded before anything is parsed: a larger body is never read whole, and a sender that
    // trickles its body does not hold the connection for ever.
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, max)).await;
    let bytes = match read {
        Err(_) => {
            return s.reject(
                path,
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                &format_args!("body not received within {BODY_READ_TIMEOUT:?}"),
            )
        }
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return s.reject(
                path,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format_args!("body over {max} bytes or unreadable: {e}"),
            )
        }
    };
    let envelope = match std::str::from_utf8(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|t| xml::parse(t).map_err(|e| e.to_string()))
    {
        Ok(f) => f,
        Err(e) => {
            return s.reject(
                path,
                StatusCode::BAD_REQUEST,
                "bad_xml",
                &format_args!("envelope: {e}"),
            )
        }
    };
    let Some(encrypt) = envelope.non_empty("Encrypt") else {
        return s.reject(
            path,
            StatusCode::BAD_REQUEST,
            "bad_xml",
            &"envelope has no <Encrypt>",
        );
    };
    // Signature first (constant time): nothing is decrypted for an unauthenticated body.
    if let Err(e) = ep
        .crypto
        .verify_signature(&q.msg_signature, &q.timestamp, &q.nonce, encrypt)
    {
        return crypto_rejection(s, path, &e);
    }
    let decrypted = match &ep.post_receiveids {
        ReceiveIds::Fixed(ids) => ep
            .crypto
            .decrypt_with(encrypt, |rid| ids.iter().any(|i| i == rid)),
        ReceiveIds::Corps(set) => ep.crypto.decrypt_with(encrypt, |rid| {
            set.read().unwrap_or_else(|p| p.into_inner()).contains(rid)
        }),
    };
    let d = match decrypted {
        Ok(d) => d,
        Err(e) => return crypto_rejection(s, path, &e),
    };
    let fields = match d
        .msg_str()
        .map_err(|e| e.to_string())
        .and_then(|t| xml::parse(t).map_err(|e| e.to_string()))
    {
        Ok(f) => f,
        Err(e) => {
            return s.reject(
                path,
                StatusCode::BAD_REQUEST,
                "bad_xml",
                &format_args!("decrypted message: {e}"),
            )
        }
    };
    let event = match Event::parse(&fields, &d.receiveid) {
        Ok(ev) => ev,
        Err(e) => return s.reject(path, StatusCode::BAD_REQUEST, "bad_event", &e),
    };
    if let Some(sid) = event.suite_id() {
        if ep.kind != RouteKind::SuiteCommand {
            s.metrics.callback("ignored");
            tracing::info!(
                path,
                event = event.kind(),
                "command event on a non-command URL ignored"
            );
            return ack(ep.kind);
        }
        if s.limits.suite_id.as_deref() != Some(sid) {
            return s.reject(
                path,
                StatusCode::FORBIDDEN,
                "bad_receiveid",
                &format_args!("SuiteId {sid} is not the configured suite"),
            );
        }
    }
    if let Event::Other { kind } = &event {
        s.metrics.callback("ignored");
        tracing::info!(path, receiveid = %d.receiveid, event = %kind, "callback acknowledged and ignored (not handled by serve)");
        return ack(ep.kind);
    }
    let inbound = Inbound {
        route: ep.kind,
        dedupe_key: dedupe_key(&d.receiveid, &fields, &d.msg),
        plaintext: d.msg_str().unwrap_or_default().to_owned(),
        receiveid: d.receiveid,
        event,
    };
    let (kind, receiveid) = (inbound.event.kind().to_owned(), inbound.receiveid.clone());
    let (reply, recorded) = oneshot::channel();
    match s.queue.try_send(Delivery { inbound, reply }) {
        // Answered only once the event is durably stored: WeCom does not retry an answered
        // callback, so an answer for an event that is then lost would lose it for good.
        Ok(()) => match tokio::time::timeout(STORE_TIMEOUT, recorded).await {
            Ok(Ok(Recorded::New)) => {
                s.metrics.callback("accepted");
                ack(ep.kind)
            }
            Ok(Ok(Recorded::Duplicate)) => {
                s.metrics.callback("accepted");
                s.metrics.callback("duplicate");
                tracing::info!(path, event = %kind, %receiveid, "duplicate delivery (WeCom retry) answered, not handled again");
                ack(ep.kind)
            }
            Ok(Ok(Recorded::Failed)) | Ok(Err(_)) => s.reject(
                path,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_failed",
                &format_args!(
                    "{kind} for {receiveid} could not be stored in the state database (WeCom retries)"
                ),
            ),
            Err(_) => s.reject(
                path,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_timeout",
                &format_args!(
                    "{kind} for {receiveid} not stored within {STORE_TIMEOUT:?} (state database busy; WeCom retries)"
                ),
            ),
        },
        Err(mpsc::error::TrySendError::Full(Delivery { inbound: i, .. })) => s.reject(
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            &format_args!(
                "event queue full; {} for {} not accepted (WeCom retries)",
                i.event.kind(),
                i.receiveid
            ),
        ),
        Err(mpsc::error::TrySendError::Closed(Delivery { inbound: i, .. })) => s.reject(
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            &format_args!(
                "shutting down; {} for {} not accepted (WeCom retries)",
                i.event.kind(),
                i.receiveid
            ),
        ),
    }
}

/// The immediate answer to an accepted (or deliberately ignored) POST.
fn ack(kind: RouteKind) -> Response {
    match kind {
        RouteKind::SuiteCommand => (StatusCode::OK, "success").into_response(),
        RouteKind::App | RouteKind::SuiteData => StatusCode::OK.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::within_window;

    #[test]
    fn timestamp_window_does_not_overflow() {
        let now = 1_700_000_000;
        assert!(within_window(now, now, 300));
        assert!(within_window(now, now - 300, 300));
        assert!(within_window(now, now + 300, 300));
        assert!(!within_window(now, now + 301, 300));
        assert!(!within_window(now, now - 301, 300));
        // `(now - ts).abs()` wraps (release) or panics (debug) for these.
        assert!(!within_window(now, i64::MIN, 300));
        assert!(!within_window(now, now.wrapping_add(i64::MIN), 300));
        assert!(!within_window(now, i64::MAX, 300));
        assert!(!within_window(-1, i64::MAX, 300));
    }
}
