//! Alerts: delivering the outbox of findings ([`crate::state`]'s `alerts` area) to webhooks.
//!
//! ```text
//!  pipeline commit ──▶ alert outbox (state, same transaction as the commit)
//!                          │ plan: one delivery per (alert, webhook whose min_severity it meets)
//!                          ▼
//!  Dispatcher::deliver_due, per webhook, while the rate limit allows:
//!     due deliveries (oldest first) ─▶ pack (batch_max; a robot message < 4096 bytes)
//!       ─▶ claim (attempt counted, leased) ─▶ POST ─▶ accepted? mark delivered (one transaction)
//!                                                  └▶ no: retry at now + backoff, or failed
//! ```
//!
//! A delivery is marked delivered only after the receiver accepted it (2xx, and for a WeCom
//! robot `errcode` 0). If the process dies between the receiver's answer and that mark, the
//! delivery is due again when its lease ends and is sent a second time: delivery over the network
//! is at least once, and each alert's [`format::idempotency_key`] (and the batch's, in the
//! `Idempotency-Key` header) lets a receiver drop the repeat. Errors and logs name the webhook
//! and its host, never its URL (a robot's URL holds its key).
//!
//! `serve` runs [`Dispatcher::run`] as a task; `pull` and `alerts --send` call
//! [`Dispatcher::deliver_until_idle`].

pub mod format;
pub mod ratelimit;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{AlertsSection, Config, ConfigError, WebhookKind, WebhookSection};
use crate::secret::Secret;
use crate::state::{AlertRetry, SharedState, StateError, StoredAlert, WebhookOutbox};
use ratelimit::{backoff_secs, RateLimiter};

/// Seconds a claimed delivery stays leased beyond its request's timeout.
const LEASE_MARGIN_SECS: i64 = 30;

/// Why alerts could not be delivered at all (a failed request is not an error: it is retried).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A webhook's URL cannot be read or used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A webhook's URL is not usable; the URL itself is never repeated.
    #[error("[[alerts.webhook]] {webhook}: url {reason}")]
    Url {
        /// The webhook.
        webhook: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for alerts: {0}")]
    Client(String),
    /// The state database.
    #[error(transparent)]
    State(#[from] StateError),
}

/// One configured webhook, its URL read.
struct Webhook {
    section: WebhookSection,
    url: Secret,
    host: String,
    limiter: RateLimiter,
}

/// What delivery passes did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryReport {
    /// Requests sent.
    pub requests: u64,
    /// Deliveries the receivers accepted.
    pub delivered: u64,
    /// Requests that failed (their deliveries are retried or, out of attempts, kept as failed).
    pub failed_requests: u64,
    /// Deliveries that used up their attempts in these passes.
    pub gave_up: u64,
    /// Passes that stopped at a webhook's rate limit with deliveries still due.
    pub rate_limited: u64,
}

impl DeliveryReport {
    fn add(&mut self, o: &DeliveryReport) {
        self.requests += o.requests;
        self.delivered += o.delivered;
        self.failed_requests += o.failed_requests;
        self.gave_up += o.gave_up;
        self.rate_limited += o.rate_limited;
    }
}

/// Creates the deliveries of every configured webhook for the alerts stored since the last
/// planning (no URL needed: `alerts` shows the outbox with this).
pub fn plan(state: &SharedState, alerts: &AlertsSection, now: i64) -> Result<usize, StateError> {
    let mut store = state.lock();
    let names: Vec<(&str, bool)> = alerts
        .webhooks
        .iter()
        .map(|w| (w.name.as_str(), w.backfill))
        .collect();
    store.register_alert_webhooks(&names)?;
    let mut n = 0;
    for w in &alerts.webhooks {
        n += store.plan_alert_deliveries(&w.name, w.min_severity(alerts), now)?;
    }
    Ok(n)
}

/// The host of `url`, for logs (the rest of a webhook URL may be a key).
fn host_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url.trim())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
}

/// A failed request, described without its URL.
fn describe(e: reqwest::Error, timeout: u64) -> String {
    let e = e.without_url();
    let what = if e.is_timeout() {
        format!("no answer within {timeout} s")
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = s.source();
    }
    if causes.is_empty() {
        what
    } else {
        format!("{what}: {}", causes.join(": "))
    }
}

/// Text from a receiver, kept short and on one line.
fn short(text: &str) -> String {
    let one: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one.trim().to_owned()
}

/// Delivers the alert outbox to the configured webhooks.
pub struct Dispatcher {
    webhooks: Vec<Webhook>,
    section: AlertsSection,
    tz: jiff::tz::TimeZone,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hooks: Vec<(&str, &str)> = self
            .webhooks
            .iter()
            .map(|w| (w.section.name.as_str(), w.host.as_str()))
            .collect();
        f.debug_struct("Dispatcher")
            .field("webhooks", &hooks)
            .finish()
    }
}

impl Dispatcher {
    /// The dispatcher of `config`'s `[alerts]`, reading each webhook's URL; `None` when there is
    /// no webhook.
    pub fn from_config(config: &Config, clock: Arc<dyn Clock>) -> Result<Option<Self>, AlertError> {
        let Some(section) = config.alerts.clone().filter(|a| !a.webhooks.is_empty()) else {
            return Ok(None);
        };
        let mut webhooks = Vec::new();
        for w in &section.webhooks {
            let url = config.webhook_url(w)?;
            crate::config::check_webhook_url(url.expose()).map_err(|reason| AlertError::Url {
                webhook: w.name.clone(),
                reason,
            })?;
            webhooks.push(Webhook {
                host: host_of(url.expose()).unwrap_or_default(),
                url,
                limiter: RateLimiter::new(w.per_minute()),
                section: w.clone(),
            });
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A redirect would send the body (and maybe the key) somewhere not configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wecom-archive/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertError::Client(describe(e, 0)))?;
        Ok(Some(Dispatcher {
            webhooks,
            section,
            tz: config.tz(),
            client,
            clock,
        }))
    }

    /// The `[alerts]` section it delivers for.
    pub fn section(&self) -> &AlertsSection {
        &self.section
    }

    /// One pass: plans new deliveries, then per webhook sends due deliveries in batches while
    /// its rate limit allows, stopping at its first failed request (the rest wait for the
    /// retry).
    pub async fn deliver_due(&mut self, state: &SharedState) -> Result<DeliveryReport, AlertError> {
        plan(state, &self.section, self.clock.now_unix())?;
        let mut report = DeliveryReport::default();
        for i in 0..self.webhooks.len() {
            let r = self.deliver_webhook(state, i).await?;
            report.add(&r);
        }
        Ok(report)
    }

    async fn deliver_webhook(
        &mut self,
        state: &SharedState,
        i: usize,
    ) -> Result<DeliveryReport, AlertError> {
        let mut report = DeliveryReport::default();
        loop {
            let now = self.clock.now_unix();
            let hook = &self.webhooks[i];
            let name = hook.section.name.clone();
            let due = state
                .lock()
                .due_alerts(&name, now, hook.section.batch_max())?;
            if due.is_empty() {
                break;
            }
            if !self.webhooks[i].limiter.allows(now) {
                report.rate_limited += 1;
                break;
            }
            let hook = &self.webhooks[i];
            let batch = match hook.section.kind {
                WebhookKind::WecomRobot => &due[..format::robot_pack(&due, &self.tz).1],
                WebhookKind::Json => &due[..],
            };
            let ids: Vec<i64> = batch.iter().map(|a| a.id).collect();
            let timeout = hook.section.timeout_secs;
            let lease = now + i64::try_from(timeout).unwrap_or(i64::MAX / 2) + LEASE_MARGIN_SECS;
            let claimed = state
                .lock()
                .claim_alert_deliveries(&name, &ids, now, lease)?;
            if claimed.is_empty() {
                // Another dispatcher took them meanwhile.
                continue;
            }
            let alerts: Vec<StoredAlert> = claimed.iter().map(|c| c.stored.clone()).collect();
            self.webhooks[i].limiter.record(now);
            report.requests += 1;
            let result = self.send(i, &alerts).await;
            let done = self.clock.now_unix();
            let ids: Vec<i64> = alerts.iter().map(|a| a.id).collect();
            let hook = &self.webhooks[i];
            match result {
                Ok(()) => {
                    state.lock().mark_alerts_delivered(&name, &ids, done)?;
                    report.delivered += ids.len() as u64;
                    tracing::info!(webhook = %name, host = %hook.host, alerts = ids.len(), "alerts delivered");
                }
                Err(error) => {
                    let s = &hook.section;
                    let outcomes: Vec<(i64, AlertRetry)> = claimed
                        .iter()
                        .map(|c| {
                            let retry = if c.attempt >= s.max_attempts {
                                AlertRetry::GiveUp
                            } else {
                                let jitter = rand::random::<f64>();
                                let delay = backoff_secs(
                                    c.attempt,
                                    s.backoff_secs,
                                    s.max_backoff_secs,
                                    jitter,
                                );
                                AlertRetry::At(done.saturating_add(delay))
                            };
                            (c.stored.id, retry)
                        })
                        .collect();
                    let gave_up = outcomes
                        .iter()
                        .filter(|(_, r)| *r == AlertRetry::GiveUp)
                        .count() as u64;
                    state
                        .lock()
                        .fail_alert_deliveries(&name, &outcomes, &error, done)?;
                    report.failed_requests += 1;
                    report.gave_up += gave_up;
                    tracing::warn!(
                        webhook = %name, host = %hook.host, alerts = ids.len(), gave_up, %error,
                        "alert delivery failed; retried later"
                    );
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Sends one batch; `Err` says why the receiver did not accept it (never the URL).
    async fn send(&self, i: usize, alerts: &[StoredAlert]) -> Result<(), String> {
        let hook = &self.webhooks[i];
        let body = match hook.section.kind {
            WebhookKind::WecomRobot => format::robot_body(&format::robot_pack(alerts, &self.tz).0),
            WebhookKind::Json => format::json_body(alerts),
        };
        let timeout = hook.section.timeout_secs;
        let response = self
            .client
            .post(hook.url.expose().trim())
            .timeout(Duration::from_secs(timeout))
            .header(format::BATCH_KEY_HEADER, format::batch_key(alerts))
            .json(&body)
            .send()
            .await
            .map_err(|e| describe(e, timeout))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| describe(e, timeout))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        if hook.section.kind == WebhookKind::WecomRobot {
            let answer: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
                format!(
                    "HTTP {status} but not the robot's JSON answer: {}",
                    short(&text)
                )
            })?;
            let errcode = answer["errcode"].as_i64();
            if errcode != Some(0) {
                return Err(format!(
                    "robot errcode {}: {}",
                    errcode.map_or_else(|| "missing".to_owned(), |c| c.to_string()),
                    short(answer["errmsg"].as_str().unwrap_or(""))
                ));
            }
        }
        Ok(())
    }

    /// The first Unix second something could be sent: the earliest due delivery, or when the
    /// rate limit lets its webhook send again. `None`: nothing pending.
    pub fn next_due(&self, state: &SharedState) -> Result<Option<i64>, AlertError> {
        let now = self.clock.now_unix();
        let mut next: Option<i64> = None;
        for w in &self.webhooks {
            let Some(at) = state.lock().next_alert_attempt(&w.section.name)? else {
                continue;
            };
            let at = at.max(w.limiter.next_free(now.max(at)));
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        Ok(next)
    }

    /// Passes until nothing is pending, `max_wait` has passed (what is still pending stays in
    /// the outbox for the next run) or `stop` is raised. Waits between passes for the next retry
    /// or the rate limit.
    pub async fn deliver_until_idle(
        &mut self,
        state: &SharedState,
        max_wait: Duration,
        stop: &AtomicBool,
    ) -> Result<DeliveryReport, AlertError> {
        let deadline = self
            .clock
            .now_unix()
            .saturating_add(i64::try_from(max_wait.as_secs()).unwrap_or(i64::MAX));
        let mut report = DeliveryReport::default();
        loop {
            let r = self.deliver_due(state).await?;
            report.add(&r);
            let Some(next) = self.next_due(state)? else {
                break;
            };
            let now = self.clock.now_unix();
            if next > deadline || stop.load(Ordering::Relaxed) {
                break;
            }
            let wait = Duration::from_secs(u64::try_from((next - now).max(1)).unwrap_or(1));
            // Sleep in short steps so that Ctrl-C is not held up by a long wait.
            let until = tokio::time::Instant::now() + wait;
            while tokio::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200).min(wait)).await;
            }
            if stop.load(Ordering::Relaxed) || self.clock.now_unix() > deadline {
                break;
            }
        }
        Ok(report)
    }

    /// Delivers every `[alerts] poll_secs` until `stop` resolves (`serve`), calling `observe`
    /// with the outbox after each pass. A pass that fails (the state database) is logged and
    /// tried again at the next tick.
    pub async fn run(
        mut self,
        state: SharedState,
        mut stop: tokio::sync::oneshot::Receiver<()>,
        observe: impl Fn(&[WebhookOutbox]) + Send,
    ) {
        let every = Duration::from_secs(self.section.poll_secs.max(1));
        loop {
            match self.deliver_due(&state).await {
                Ok(_) => {
                    if let Ok(outboxes) = state.lock().alert_outboxes() {
                        observe(&outboxes);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "alert delivery pass failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = &mut stop => break,
            }
        }
    }
}
