//! The event handler: records queued callbacks durably before they are answered, then acts
//! on each from its stored row.
//!
//! A batch off the queue is recorded in one transaction of the state database (dedupe key
//! claimed, event row inserted: one fsync per batch); only then is each request told how to
//! answer (a retry of a recorded event is answered but not handled again). If the batch
//! cannot be committed every request in it answers 503 and WeCom retries. Handling runs from
//! the stored rows and marks each handled in the same database, so events answered but not
//! handled before a crash are handled at the next start ([`EventHandler::run`]).
//!
//! Tickets are stored and their rows marked handled in one transaction (the newest
//! `TimeStamp` wins, so order does not matter). Authorization changes (`create_auth`,
//! `reset_permanent_code`, `change_auth`, `cancel_auth`) go to one worker that applies them
//! **in arrival order**, so a slow permanent-code exchange can neither hold up the queue nor
//! land after a later `cancel_auth` and re-enable the corp. Pull requests go to the
//! [`Scheduler`].

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::api::service::Service;
use crate::clock::Clock;
use crate::secret::Secret;
use crate::serve::callback::{xml, Delivery, Event, Inbound, KnownCorps, Recorded, RouteKind};
use crate::serve::metrics::Metrics;
use crate::serve::scheduler::{Requested, Scheduler};
use crate::state::{NewCallbackEvent, SharedState, StateStore, SUITE_TICKET_MAX_FUTURE_SECS};

/// Most events taken off the queue (and recorded in one transaction) at once.
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
    /// First handles the events recorded but not handled before a crash, then records and
    /// handles deliveries until the queue is closed and drained; then waits for the
    /// authorization changes already recorded.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Delivery>) {
        let (auth_tx, auth_rx) = mpsc::unbounded_channel();
        let worker = tokio::spawn(self.clone().auth_worker(auth_rx));
        self.recover(&auth_tx).await;
        let mut buf = Vec::with_capacity(BATCH);
        loop {
            if rx.recv_many(&mut buf, BATCH).await == 0 {
                break;
            }
            self.metrics.set_queue_depth(rx.len());
            let (inbounds, replies): (Vec<Inbound>, Vec<_>) = std::mem::take(&mut buf)
                .into_iter()
                .map(|d| (d.inbound, d.reply))
                .unzip();
            let this = self.clone();
            let recorded = tokio::task::spawn_blocking(move || {
                let ids = this.record(&inbounds);
                (inbounds, ids)
            })
            .await;
            let (inbounds, ids) = match recorded {
                Ok((inbounds, Ok(ids))) => (inbounds, ids),
                Ok((_, Err(e))) => {
                    tracing::error!(error = %e, events = replies.len(), "cannot store callback events; answering 503 so WeCom retries");
                    for r in replies {
                        let _ = r.send(Recorded::Failed);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "storing callback events failed; answering 503 so WeCom retries");
                    for r in replies {
                        let _ = r.send(Recorded::Failed);
                    }
                    continue;
                }
            };
            let mut fresh = Vec::new();
            for ((inbound, id), reply) in inbounds.into_iter().zip(ids).zip(replies) {
                let _ = reply.send(match id {
                    Some(_) => Recorded::New,
                    None => Recorded::Duplicate,
                });
                if let Some(id) = id {
                    fresh.push((id, inbound));
                }
            }
            self.handle(fresh, &auth_tx).await;
        }
        self.metrics.set_queue_depth(0);
        drop(auth_tx);
        let _ = worker.await;
    }

    /// Records a batch durably (one transaction): the row id of each new event, `None` for a
    /// retry.
    fn record(&self, batch: &[Inbound]) -> Result<Vec<Option<i64>>, crate::state::StateError> {
        let rows: Vec<NewCallbackEvent<'_>> = batch
            .iter()
            .map(|i| NewCallbackEvent {
                dedupe_key: &i.dedupe_key,
                route: i.route.as_str(),
                receiveid: &i.receiveid,
                payload: &i.plaintext,
                pull_corp: match &i.event {
                    Event::MsgauditNotify { corp_id } => Some(corp_id),
                    _ => None,
                },
            })
            .collect();
        let now = self.clock.now_unix();
        self.state
            .lock()
            .record_callback_events(&rows, now, self.dedupe_ttl_secs)
    }

    /// Handles the events recorded but not handled by an earlier run (it crashed after
    /// answering them).
    async fn recover(self: &Arc<Self>, auth_tx: &mpsc::UnboundedSender<(i64, AuthOp)>) {
        let state = self.state.clone();
        let rows =
            match tokio::task::spawn_blocking(move || state.lock().unhandled_callback_events())
                .await
            {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the unhandled callback events");
                    return;
                }
                Err(_) => return,
            };
        if rows.is_empty() {
            return;
        }
        tracing::info!(
            events = rows.len(),
            "handling callback events stored but not handled before the last stop"
        );
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let event = xml::parse(row.payload.expose())
                .map_err(|e| e.to_string())
                .and_then(|f| Event::parse(&f, &row.receiveid).map_err(|e| e.to_string()));
            match event {
                Ok(event) => batch.push((
                    row.id,
                    Inbound {
                        route: RouteKind::App,
                        receiveid: row.receiveid,
                        dedupe_key: row.dedupe_key,
                        event,
                        plaintext: String::new(),
                    },
                )),
                Err(e) => {
                    tracing::error!(id = row.id, route = %row.route, error = %e, "stored callback event cannot be parsed; skipped");
                    let _ = self
                        .state
                        .lock()
                        .mark_callback_handled(row.id, self.clock.now_unix());
                }
            }
        }
        for chunk in batch.chunks(BATCH) {
            self.handle(chunk.to_vec(), auth_tx).await;
        }
    }

    /// Handles recorded events: tickets are stored and their rows marked handled in one
    /// transaction; notifies are marked handled and their pulls requested; authorization
    /// changes go to the worker, which marks each handled when it is done.
    async fn handle(
        self: &Arc<Self>,
        events: Vec<(i64, Inbound)>,
        auth_tx: &mpsc::UnboundedSender<(i64, AuthOp)>,
    ) {
        if events.is_empty() {
            return;
        }
        let this = self.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let mut store = this.state.lock();
            let now = this.clock.now_unix();
            store.try_transaction(|store| {
                let mut nexts = Vec::with_capacity(events.len());
                for (id, inbound) in events {
                    let kind = inbound.event.kind().to_owned();
                    let next = this.apply_one(store, inbound, now)?;
                    if !matches!(next, Next::Auth(_)) {
                        store.mark_callback_handled(id, now)?;
                    }
                    nexts.push((id, kind, next));
                }
                Ok(nexts)
            })
        })
        .await;
        let nexts = match applied {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot handle stored callback events; they stay stored and are handled at the next start");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "handling stored callback events failed; they are handled at the next start");
                return;
            }
        };
        for (id, kind, next) in nexts {
            self.metrics.event(&kind);
            match next {
                Next::Nothing => {}
                Next::Pull(corp) => {
                    if self.scheduler.request(&corp) == Requested::Ignored {
                        tracing::info!(corp = %corp, "msgaudit_notify for a corp that is not pulled (unknown, disabled or stopping)");
                    }
                }
                // Unbounded, but fed only by authenticated, deduplicated auth events.
                Next::Auth(op) => {
                    let _ = auth_tx.send((id, op));
                }
            }
        }
    }

    async fn auth_worker(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<(i64, AuthOp)>) {
        while let Some((id, op)) = rx.recv().await {
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
            // Done (or failed for good, logged): not again after a restart.
            let state = self.state.clone();
            let now = self.clock.now_unix();
            let marked =
                tokio::task::spawn_blocking(move || state.lock().mark_callback_handled(id, now))
                    .await;
            if let Ok(Err(e)) = marked {
                tracing::error!(id, error = %e, "cannot mark an authorization event handled; it is handled again at the next start");
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

    fn apply_one(
        &self,
        store: &StateStore,
        inbound: Inbound,
        now: i64,
    ) -> Result<Next, crate::state::StateError> {
        Ok(match inbound.event {
            Event::SuiteTicket {
                suite_id,
                ticket,
                timestamp,
            } => {
                match store.offer_suite_ticket(&suite_id, &ticket, timestamp, now)? {
                    true => tracing::info!(suite = %suite_id, timestamp, "suite_ticket stored"),
                    false if timestamp > now.saturating_add(SUITE_TICKET_MAX_FUTURE_SECS) => {
                        tracing::warn!(suite = %suite_id, timestamp, now, "suite_ticket with a TimeStamp far in the future refused")
                    }
                    false => {
                        tracing::info!(suite = %suite_id, timestamp, "older suite_ticket ignored (a newer one is stored)")
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
