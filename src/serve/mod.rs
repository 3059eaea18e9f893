//! `serve`: the callback server, the event handler and the per-corp pull scheduler, wired from
//! one [`Config`].
//!
//! ```text
//!  WeCom ──POST──▶ callback::server ──bounded queue──▶ handler ──▶ state (event rows, dedupe)
//!                   (verify, decrypt,  ◀── stored ───────┘    │  then, from the stored rows:
//!                    parse; reply once │                      ├──▶ state (tickets, corps)
//!                    the row is stored)│                      ├──▶ service API (permanent codes)
//!                                      │                      └──▶ scheduler ──▶ pipeline pulls
//!                                      └── /metrics, /healthz                   ▲
//!                                                                  fallback poll┘
//! ```
//!
//! Under the router, [`callback::conn`] serves the connections (header-read and idle timeouts,
//! connection limit, bounded graceful shutdown).
//!
//! [`start`] runs it on the current tokio runtime (first handling the events stored but not
//! handled before the last stop); [`Running::shutdown`] stops accepting, drains the queue, lets running pulls finish their batch and commit, and returns.

pub mod callback;
pub mod handler;
pub mod metrics;
pub mod pull;
pub mod scheduler;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::api::service::Service;
use crate::auth::context::AuthContext;
use crate::auth::token::{StoredToken, TokenStore};
use crate::clock::Clock;
use crate::config::Config;
use crate::config::SecretRef;
use crate::crypto::msgcrypt::MsgCrypt;
use crate::secret::Secret;
use crate::serve::callback::{CallbackServer, Endpoint, KnownCorps, Limits, ReceiveIds, RouteKind};
use crate::state::{SharedState, StateStore, StoredSuiteTickets};
use handler::EventHandler;
use metrics::Metrics;
use scheduler::{Puller, Scheduler};

/// How often a worker on a PostgreSQL state looks for the fleet's pull requests.
const FLEET_POLL: Duration = Duration::from_secs(1);

/// Why `serve` cannot start. Names the section or corp; never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is incomplete or inconsistent.
    #[error("config: {0}")]
    Config(String),
    /// A secret or section of the auth configuration.
    #[error(transparent)]
    Auth(#[from] crate::config::ConfigError),
    /// The state database.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What [`start`] needs besides the configuration.
pub struct Options {
    /// The clock (timestamp window, ticket validity, dedupe expiry).
    pub clock: Arc<dyn Clock>,
    /// How corps are pulled; default: the pipeline ([`pull::PipelinePuller`]).
    pub puller: Option<Arc<dyn Puller>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("clock", &self.clock)
            .finish()
    }
}

/// A running `serve`.
pub struct Running {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    state: SharedState,
    scheduler: Scheduler,
    stopping: Arc<AtomicBool>,
    stop_http: oneshot::Sender<()>,
    http: JoinHandle<()>,
    handler: JoinHandle<()>,
    poll: JoinHandle<()>,
    /// The alert dispatcher, with `[alerts]` webhooks: its stop signal and task.
    alerts: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish()
    }
}

impl Running {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The state database (as the server uses it).
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Graceful shutdown: running pulls are told to finish their batch and commit; connections
    /// are no longer accepted and the requests in flight are finished; every event already
    /// accepted is handled (tickets and authorization changes stored); then it waits for the
    /// pulls.
    pub async fn shutdown(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Running pulls start wrapping up now (finish the batch, commit) while the server
        // drains; notifies still in the queue no longer start pulls (the fallback poll after
        // the restart catches up).
        self.scheduler.stop();
        self.poll.abort();
        let _ = self.stop_http.send(());
        let _ = self.http.await;
        // The server (and with it the queue's sender) is gone: the handler drains and ends.
        let _ = self.handler.await;
        self.scheduler.shutdown().await;
        // After the pulls: their last commits' alerts are in the outbox, and a pass in flight
        // records what its receiver accepted before the task ends.
        if let Some((stop, task)) = self.alerts {
            let _ = stop.send(());
            let _ = task.await;
        }
        tracing::info!("serve stopped");
    }
}

/// Counts token fetches for `/metrics`: the token cache saves every token it fetches.
struct CountingTokenStore {
    inner: SharedState,
    metrics: Arc<Metrics>,
}

impl TokenStore for CountingTokenStore {
    fn load(&self, key: &str) -> Option<StoredToken> {
        self.inner.load(key)
    }
    fn save(&self, key: &str, token: &StoredToken) {
        self.metrics
            .token_refresh(key.split('|').next().unwrap_or("token"));
        self.inner.save(key, token);
    }
    fn remove(&self, key: &str, rejected: &Secret) {
        self.inner.remove(key, rejected);
    }
    fn lock_fetch(&self, key: &str) -> Option<Box<dyn std::any::Any + Send>> {
        self.inner.lock_fetch(key)
    }
}

fn crypto_for(
    section: &str,
    config: &Config,
    token: (&Option<String>, &Option<std::path::PathBuf>),
    key: (&Option<String>, &Option<std::path::PathBuf>),
) -> Result<MsgCrypt, ServeError> {
    let res = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| config.resolve(p));
    let token_file = res(token.1);
    let key_file = res(key.1);
    let t = SecretRef {
        section,
        field: "token",
        env: token.0.as_deref(),
        file: token_file.as_deref(),
    }
    .read()?;
    let k = SecretRef {
        section,
        field: "aes_key",
        env: key.0.as_deref(),
        file: key_file.as_deref(),
    }
    .read()?;
    MsgCrypt::new(t.expose(), k.expose())
        .map_err(|e| ServeError::Config(format!("[{section}]: {e}")))
}

/// Starts `serve` for `config` on the current tokio runtime.
pub async fn start(config: Arc<Config>, options: Options) -> Result<Running, ServeError> {
    let cb = config
        .callback
        .clone()
        .ok_or_else(|| ServeError::Config("no [callback] section".into()))?;
    let clock = options.clock;
    crate::migrate::refuse_legacy(&config.out_dir())
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let state = SharedState::new(StateStore::open(&config.state_path())?);
    let metrics = Arc::new(Metrics::new());
    let dispatcher = crate::compliance::alerts::Dispatcher::from_config(&config, clock.clone())
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let tokens: Arc<dyn TokenStore> = Arc::new(CountingTokenStore {
        inner: state.clone(),
        metrics: metrics.clone(),
    });
    let auth = AuthContext::with_store(config.auth(), clock.clone(), tokens)?;

    // Corps accepted on the data URL: stored authorizations that are active, and [[authcorp]].
    let stored = state.lock().auth_corps()?;
    let known: KnownCorps = Arc::new(RwLock::new(
        stored
            .iter()
            .filter(|a| a.enabled)
            .map(|a| a.corp_id.clone())
            .chain(config.authcorp.iter().map(|a| a.corpid.clone()))
            .collect::<HashSet<_>>(),
    ));

    let mut endpoints = Vec::new();
    if let Some(app) = &cb.app {
        let corpid = app
            .corpid
            .clone()
            .or_else(|| config.app.as_ref().map(|a| a.corpid.clone()))
            .ok_or_else(|| {
                ServeError::Config("[callback.app] needs corpid (or an [app] section)".into())
            })?;
        endpoints.push(Endpoint {
            path: app.path.clone(),
            kind: RouteKind::App,
            crypto: crypto_for(
                "callback.app",
                &config,
                (&app.token_env, &app.token_file),
                (&app.aes_key_env, &app.aes_key_file),
            )?,
            verify_receiveids: vec![corpid.clone()],
            post_receiveids: ReceiveIds::Fixed(vec![corpid]),
        });
    }
    let mut service = None;
    if let Some(sc) = &cb.suite {
        let suite = config
            .suite
            .as_ref()
            .ok_or_else(|| ServeError::Config("[callback.suite] needs a [suite] section".into()))?;
        let mut verify = sc.verify_receiveids.clone();
        if verify.is_empty() {
            verify.extend(config.provider.as_ref().map(|p| p.corpid.clone()));
            verify.push(suite.suite_id.clone());
        }
        let crypto = || {
            crypto_for(
                "callback.suite",
                &config,
                (&sc.token_env, &sc.token_file),
                (&sc.aes_key_env, &sc.aes_key_file),
            )
        };
        endpoints.push(Endpoint {
            path: sc.command_path.clone(),
            kind: RouteKind::SuiteCommand,
            crypto: crypto()?,
            verify_receiveids: verify.clone(),
            post_receiveids: ReceiveIds::Fixed(vec![suite.suite_id.clone()]),
        });
        endpoints.push(Endpoint {
            path: sc.data_path.clone(),
            kind: RouteKind::SuiteData,
            crypto: crypto()?,
            verify_receiveids: verify,
            post_receiveids: ReceiveIds::Corps(known.clone()),
        });
        let tickets = Arc::new(StoredSuiteTickets::new(state.clone(), clock.clone()));
        let token = Arc::new(auth.suite_token_with(tickets)?);
        service = Some(Arc::new(Service::new(auth.client.clone(), token)));
    }
    if endpoints.is_empty() {
        return Err(ServeError::Config(
            "[callback] needs [callback.app] and/or [callback.suite]".into(),
        ));
    }
    let mut paths = HashSet::new();
    for e in &endpoints {
        if !e.path.starts_with('/') || ["/metrics", "/healthz"].contains(&e.path.as_str()) {
            return Err(ServeError::Config(format!(
                "callback path {:?} must start with / and not be /metrics or /healthz",
                e.path
            )));
        }
        if !paths.insert(e.path.clone()) {
            return Err(ServeError::Config(format!(
                "callback path {} is used twice",
                e.path
            )));
        }
    }

    let puller: Arc<dyn Puller> = match options.puller {
        Some(p) => p,
        None => Arc::new(
            pull::PipelinePuller::new(config.clone(), config.serve.commit_every)
                .map_err(|e| ServeError::Config(format!("[media]: {e}")))?,
        ),
    };
    let scheduler = Scheduler::new(
        config.corps.iter().map(|c| c.corp_id.clone()),
        config.serve.max_concurrent_pulls,
        puller,
        metrics.clone(),
        clock.clone(),
    );
    for a in stored.iter().filter(|a| !a.enabled) {
        scheduler.set_enabled(&a.corp_id, false);
    }

    let (tx, rx) = mpsc::channel::<callback::Delivery>(cb.queue_capacity.max(1));
    let handler = Arc::new(EventHandler {
        state: state.clone(),
        scheduler: scheduler.clone(),
        service,
        known,
        metrics: metrics.clone(),
        clock: clock.clone(),
        dedupe_ttl_secs: cb.dedupe_ttl_secs.max(1),
    });
    let handler = tokio::spawn(handler.run(rx));

    let stopping = Arc::new(AtomicBool::new(false));
    let server = Arc::new(CallbackServer::new(
        endpoints,
        Limits {
            timestamp_window_secs: cb.timestamp_window_secs,
            max_body_bytes: cb.max_body_bytes,
            suite_id: config.suite.as_ref().map(|s| s.suite_id.clone()),
        },
        clock.clone(),
        tx,
        metrics.clone(),
        stopping.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(cb.listen.as_str())
        .await
        .map_err(|source| ServeError::Listen {
            addr: cb.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: cb.listen.clone(),
        source,
    })?;
    let (stop_http, stopped) = oneshot::channel::<()>();
    let app = server.router();
    let limits = callback::conn::ConnLimits {
        header_read_timeout: Duration::from_secs(cb.header_read_timeout_secs.max(1)),
        idle_timeout: Duration::from_secs(cb.idle_timeout_secs.max(1)),
        max_connections: cb.max_connections.max(1),
        shutdown_grace: Duration::from_secs(cb.shutdown_grace_secs),
    };
    let http = tokio::spawn(callback::conn::serve(listener, app, limits, stopped));

    // The fallback poll: its first tick is immediate, so a restart catches up at once.
    // With a PostgreSQL state, also the fleet's pull requests (notifies stored by any worker)
    // for corps that are free or this worker's, every second.
    let every = Duration::from_secs(config.fallback_poll_secs());
    let poller = scheduler.clone();
    let fleet = config.state_is_shared().then(|| state.clone());
    let poll = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fleet_tick = tokio::time::interval(FLEET_POLL);
        fleet_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => poller.request_all(),
                _ = fleet_tick.tick(), if fleet.is_some() => {
                    let state = fleet.clone().expect("checked");
                    let asked = tokio::task::spawn_blocking(move || {
                        state.lock().pull_requests_for(crate::fleet::holder_id())
                    })
                    .await;
                    match asked {
                        Ok(Ok(corps)) => {
                            for corp in corps {
                                poller.request(&corp);
                            }
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the fleet's pull requests"),
                        Err(_) => {}
                    }
                }
            }
        }
    });

    let alerts = dispatcher.map(|d| {
        let (stop, stopped) = oneshot::channel();
        let m = metrics.clone();
        let task = tokio::spawn(d.run(state.clone(), stopped, move |o| m.set_alert_outboxes(o)));
        (stop, task)
    });

    tracing::info!(%addr, corps = config.corps.len(), "serve: callback server listening");
    Ok(Running {
        addr,
        metrics,
        state,
        scheduler,
        stopping,
        stop_http,
        http,
        handler,
        poll,
        alerts,
    })
}
