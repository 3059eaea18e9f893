//! A local WeCom API emulator (feature `emulator`): an axum server on 127.0.0.1 that implements
//! the token, service, msgaudit and OAuth endpoints with their documented behaviour.
//!
//! * tokens last 7200 s on an injected [`Clock`] (share a [`ManualClock`](crate::clock::ManualClock)
//!   with the client to move time), every fetch issues a new token;
//! * errcodes: 40013 bad corpid, 40001 bad secret, 40083 bad suite_id (or GET), 40085 bad
//!   suite_ticket, 40084 bad permanent_code, 40014 / 42001 unknown / expired access_token,
//!   40082 / 42009 unknown / expired suite_access_token, 48002 msgaudit without the archive
//!   secret, 40078 reused auth_code, 40029 reused OAuth code, 45009 over a configured rate limit;
//! * admin hooks: revoke tokens early, inject errcodes, set rate limits, push a new suite_ticket,
//!   issue install / OAuth / QR-login codes; and per-path call counters;
//! * [`callback`]: a callback sender that encrypts, signs and delivers callbacks (suite_ticket,
//!   create_auth, msgaudit_notify, …) to a callback server, as WeCom does.
//!
//! The same admin hooks are reachable over HTTP for out-of-process users: `POST
//! /_emulator/invalidate_tokens` and `GET /_emulator/calls`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use wecom_archive::clock::ManualClock;
//! use wecom_archive::emulator::{Emulator, EmulatorConfig};
//! let clock = Arc::new(ManualClock::new(1_700_000_000));
//! let emu = Emulator::start(EmulatorConfig::default().archive_corp("wwcorp", "s3cret"), clock).await?;
//! println!("WeCom emulator on {}", emu.base_url());
//! # Ok(()) }
//! ```

pub mod sender;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Method, Uri};
use axum::Json;
use serde_json::Value;

use crate::clock::Clock;

pub use state::{
    Authorization, CorpApp, EmulatorConfig, EmulatorState, Room, SuiteApp,
    PRE_AUTH_CODE_LIFETIME_SECS, TOKEN_LIFETIME_SECS,
};

/// A running emulator. Stops when dropped.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<Mutex<EmulatorState>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Emulator {
    /// Starts the emulator on 127.0.0.1 with an OS-assigned port, on the current tokio runtime.
    pub async fn start(config: EmulatorConfig, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(EmulatorState::new(config, clock)));
        let app = axum::Router::new()
            .fallback(dispatch)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "emulator stopped with an error");
            }
        });
        Ok(Emulator {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for the client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Direct access to the state (admin hooks, counters).
    pub fn state(&self) -> MutexGuard<'_, EmulatorState> {
        self.state.lock().expect("emulator state poisoned")
    }

    /// Calls received on `path`.
    pub fn calls(&self, path: &str) -> u64 {
        self.state().calls(path)
    }

    /// Calls received in total.
    pub fn total_calls(&self) -> u64 {
        self.state().total_calls()
    }

    /// Revokes every issued token early.
    pub fn invalidate_all_tokens(&self) {
        self.state().invalidate_all_tokens();
    }

    /// Makes the next calls to `path` answer with `errcodes`, in order.
    pub fn inject_errcodes(&self, path: &str, errcodes: &[i64]) {
        self.state().inject_errcodes(path, errcodes);
    }

    /// At most `max_calls` calls to `path` per `window_secs`; the rest get 45009.
    pub fn set_rate_limit(&self, path: &str, max_calls: u64, window_secs: i64) {
        self.state().set_rate_limit(path, max_calls, window_secs);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn dispatch(
    State(state): State<Arc<Mutex<EmulatorState>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Json<Value> {
    let path = uri.path();
    let mut st = state.lock().expect("emulator state poisoned");
    match path {
        "/_emulator/invalidate_tokens" => {
            st.invalidate_all_tokens();
            return Json(serde_json::json!({ "errcode": 0, "errmsg": "ok" }));
        }
        "/_emulator/calls" => {
            return Json(serde_json::json!({ "calls": st.call_counts() }));
        }
        _ => {}
    }
    let post = method == Method::POST;
    // WeCom ignores the body of a GET; a malformed POST body reads as empty.
    let body: Value = if post {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    Json(st.handle(post, path, &query, &body))
}
