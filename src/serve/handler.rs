//! The event handler: takes accepted callbacks off the queue, drops WeCom's retries (persisted
//! dedupe keys, one transaction per batch), and acts on each event.
//!
//! Tickets are stored in the same transaction as the dedupe keys (order does not matter: the
//! newest `TimeStamp` wins). Authorization changes (`create_auth`, `reset_permanent_code`,
//! `change_auth`, `cancel_auth`) go to one worker that applies them **in arrival order**, so a
//! slow permanent-code exchange can neither hold up the queue nor land after a later
//! `cancel_auth` and re-enable the corp. Pull requests go to the [`Scheduler`].

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::api::service::Service;
use crate::clock::Clock;
use crate::secret::Secret;
use crate::serve::callback::{Event, Inbound, KnownCorps};
use crate::serve::metrics::Metrics;
use crate::serve::scheduler::{Requested, Scheduler};
use crate::state::{SharedState, StateStore, SUITE_TICKET_MAX_FUTURE_SECS};

/// Most events taken off the queue (and deduplicated in one transaction) at once.
const BATCH: usize = 256;

/// Acts on accepted callback events.
pub struct EventHandler {
    /// The state database.
    pub state: SharedState,
    /// The pull scheduler.
    pub scheduler: Scheduler,
    /// The suite's service APIs (when a suite is configured).
    pub service: Option<Arc<Service>>,
    /// Corps accepted as receiveid on the data URL.
    pub known: KnownCorps,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Clock for dedupe expiry.
    pub clock: Arc<dyn Clock>,
    /// How long a dedupe key is remembered, seconds.
    pub dedupe_ttl_secs: i64,
}

impl std::fmt::Debug for EventHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHandler")
            .field("dedupe_ttl_secs", &self.dedupe_ttl_secs)
            .finish()
    }
}

/// What is left to do for an event after the blocking batch step.
enum Next {
    Nothing,
    Pull(String),
    Auth(AuthOp),
}

/// An authorization change, applied in order by the auth worker.
enum AuthOp {
    Disable {
        suite_id: String,
        corp_id: String,
    },
    Exchange {
        suite_id: String,
        auth_code: Secret,
        why: &'static str,
    },
    ChangeAuth {
        suite_id: String,
        corp_id: String,
    },
}

impl EventHandler {
    /// Runs until the queue is closed and drained, then waits for the authorization changes
    /// already accepted.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Inbound>) {
        let (auth_tx, auth_rx) = mpsc::unbounded_channel();
        let worker = tokio::spawn(self.clone().auth_worker(auth_rx));
        let mut buf = Vec::with_capacity(BATCH);
        loop {
            if rx.recv_many(&mut buf, BATCH).await == 0 {
                break;
            }
            self.metrics.set_queue_depth(rx.len());
            let batch = std::mem::take(&mut buf);
            let this = self.clone();
            let nexts = match tokio::task::spawn_blocking(move || this.apply(batch)).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "event batch failed");
                    continue;
                }
            };
            for next in nexts {
                match next {
                    Next::Nothing => {}
                    Next::Pull(corp) => {
                        if self.scheduler.request(&corp) == Requested::Ignored {
                            tracing::info!(corp = %corp, "msgaudit_notify for a corp that is not pulled (unknown, disabled or stopping)");
                        }
                    }
                    // Unbounded, but fed only by authenticated, deduplicated auth events.
                    Next::Auth(op) => {
                        let _ = auth_tx.send(op);
                    }
                }
            }
        }
        self.metrics.set_queue_depth(0);
        drop(auth_tx);
        let _ = worker.await;
    }

    async fn auth_worker(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<AuthOp>) {
        while let Some(op) = rx.recv().await {
            match op {
                AuthOp::Disable { suite_id, corp_id } => self.cancel_auth(suite_id, corp_id).await,
                AuthOp::Exchange {
                    suite_id,
                    auth_code,
                    why,
                } => self.exchange(suite_id, auth_code, why).await,
                AuthOp::ChangeAuth { suite_id, corp_id } => {
                    self.change_auth(suite_id, corp_id).await
                }
            }
        }
    }

    /// `cancel_auth`: the corp's pulls stop and its permanent code is forgotten.
    async fn cancel_auth(&self, suite_id: String, corp: String) {
        self.disable(&corp, true).await;
        self.metrics.event("corp_disabled");
        tracing::info!(suite = %suite_id, corp = %corp, "cancel_auth: corp disabled, permanent code forgotten");
    }

    async fn disable(&self, corp: &str, forget_code: bool) {
        let state = self.state.clone();
        let c = corp.to_owned();
        let done =
            tokio::task::spawn_blocking(move || state.lock().disable_auth_corp(&c, forget_code))
                .await;
        if let Ok(Err(e)) = done {
            tracing::error!(corp = %corp, error = %e, "cannot disable the corp in the state database");
        }
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(corp);
        self.scheduler.set_enabled(corp, false);
    }

    /// Dedupes a batch and makes its quick state changes, in one transaction of the state
    /// database (one fsync per batch, however many callbacks it holds).
    fn apply(&self, batch: Vec<Inbound>) -> Vec<Next> {
        let mut store = self.state.lock();
        let now = self.clock.now_unix();
        let done = store.in_transaction(|store| {
            let keys: Vec<&str> = batch.iter().map(|i| i.dedupe_key.as_str()).collect();
            let fresh = store
                .claim_callback_keys(&keys, now, self.dedupe_ttl_secs)
                .unwrap_or_else(|e| {
                    // At least once beats never: without the dedupe table, handle everything.
                    tracing::error!(error = %e, "cannot record callback dedupe keys; handling the batch anyway");
                    vec![true; keys.len()]
                });
            batch
                .into_iter()
                .zip(fresh)
                .filter_map(|(inbound, fresh)| self.apply_one(store, inbound, fresh, now))
                .collect::<Vec<_>>()
        });
        done.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot commit a batch of callback events");
            Vec::new()
        })
    }

    fn apply_one(
        &self,
        store: &StateStore,
        inbound: Inbound,
        fresh: bool,
        now: i64,
    ) -> Option<Next> {
        let kind = inbound.event.kind().to_owned();
        if !fresh {
            self.metrics.callback("duplicate");
            tracing::info!(event = %kind, receiveid = %inbound.receiveid, "duplicate delivery (WeCom retry) ignored");
            return None;
        }
        self.metrics.event(&kind);
        Some(match inbound.event {
            Event::SuiteTicket {
                suite_id,
                ticket,
                timestamp,
            } => {
                match store.offer_suite_ticket(&suite_id, &ticket, timestamp, now) {
                    Ok(true) => tracing::info!(suite = %suite_id, timestamp, "suite_ticket stored"),
                    Ok(false) if timestamp > now.saturating_add(SUITE_TICKET_MAX_FUTURE_SECS) => {
                        tracing::warn!(suite = %suite_id, timestamp, now, "suite_ticket with a TimeStamp far in the future refused")
                    }
                    Ok(false) => {
                        tracing::info!(suite = %suite_id, timestamp, "older suite_ticket ignored (a newer one is stored)")
                    }
                    Err(e) => {
                        tracing::error!(suite = %suite_id, error = %e, "cannot store the suite_ticket")
                    }
                }
                Next::Nothing
            }
            Event::CancelAuth {
                suite_id,
                auth_corpid,
            } => Next::Auth(AuthOp::Disable {
                suite_id,
                corp_id: auth_corpid,
            }),
            Event::MsgauditNotify { corp_id } => Next::Pull(corp_id),
            Event::CreateAuth {
                suite_id,
                auth_code,
                ..
            } => Next::Auth(AuthOp::Exchange {
                suite_id,
                auth_code,
                why: "create_auth",
            }),
            Event::ResetPermanentCode {
                suite_id,
                auth_code,
            } => Next::Auth(AuthOp::Exchange {
                suite_id,
                auth_code,
                why: "reset_permanent_code",
            }),
            Event::ChangeAuth {
                suite_id,
                auth_corpid,
            } => Next::Auth(AuthOp::ChangeAuth {
                suite_id,
                corp_id: auth_corpid,
            }),
            Event::Other { .. } => Next::Nothing,
        })
    }

    /// `create_auth` / `reset_permanent_code`: the single-use auth code → the permanent code.
    async fn exchange(&self, suite_id: String, auth_code: Secret, why: &'static str) {
        let Some(service) = &self.service else {
            tracing::error!(suite = %suite_id, "{why}: no [suite] configured; cannot exchange the auth code");
            return;
        };
        let p = match service.get_permanent_code_v2(&auth_code).await {
            Ok(p) => p,
            Err(e) => {
                self.metrics.event("auth_error");
                tracing::error!(suite = %suite_id, error = %e, "{why}: permanent code exchange failed");
                return;
            }
        };
        let corp = p.auth_corp_info.corpid.clone();
        let state = self.state.clone();
        let (c, s, n) = (
            corp.clone(),
            suite_id.clone(),
            p.auth_corp_info.corp_name.clone(),
        );
        let code = p.permanent_code.clone();
        let stored =
            tokio::task::spawn_blocking(move || state.lock().put_auth_corp(&c, &s, &n, &code))
                .await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(corp = %corp, suite = %suite_id, error = %e, "{why}: cannot store the permanent code");
                return;
            }
            Err(e) => {
                tracing::error!(corp = %corp, error = %e, "{why}: store task failed");
                return;
            }
        }
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(corp.clone());
        let pulled = self.scheduler.set_enabled(&corp, true);
        self.metrics.event("permanent_code_stored");
        tracing::info!(corp = %corp, suite = %suite_id, pulled, "{why}: permanent code stored");
        if !pulled {
            tracing::warn!(corp = %corp, "corp authorized the suite but has no [[corp]] section: its archive is not pulled (add one with its keys)");
        }
    }

    /// `change_auth`: re-read the authorization; a rejected permanent code disables the corp.
    async fn change_auth(&self, suite_id: String, corp: String) {
        let Some(service) = &self.service else { return };
        let state = self.state.clone();
        let c = corp.clone();
        let stored = tokio::task::spawn_blocking(move || state.lock().auth_corp(&c)).await;
        let Some(code) = stored
            .ok()
            .and_then(Result::ok)
            .flatten()
            .and_then(|a| a.permanent_code)
        else {
            tracing::warn!(corp = %corp, suite = %suite_id, "change_auth for a corp without a stored permanent code");
            return;
        };
        match service.get_auth_info(&corp, &code).await {
            Ok(info) => {
                let state = self.state.clone();
                let (c, n) = (corp.clone(), info.auth_corp_info.corp_name.clone());
                let _ = tokio::task::spawn_blocking(move || state.lock().rename_auth_corp(&c, &n))
                    .await;
                self.metrics.event("auth_info_read");
                tracing::info!(corp = %corp, suite = %suite_id, agents = info.auth_info.agent.len(), "change_auth: authorization re-read");
            }
            Err(e) if e.errcode() == Some(40084) => {
                self.disable(&corp, false).await;
                self.metrics.event("corp_disabled");
                tracing::warn!(corp = %corp, suite = %suite_id, "change_auth: permanent code rejected (40084); corp disabled until a new create_auth");
            }
            Err(e) => {
                tracing::error!(corp = %corp, suite = %suite_id, error = %e, "change_auth: get_auth_info failed")
            }
        }
    }
}
