//! `wecom-archive alerts`: the alert outbox per webhook (pending, delivered, failed), and
//! `--send` to deliver what is due; also the delivery pass `pull` makes after pulling.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use wecom_archive::clock::{format_unix_utc, Clock, SystemClock};
use wecom_archive::compliance::alerts::{self, DeliveryReport, Dispatcher};
use wecom_archive::config::{AlertsSection, Config, ConfigError};
use wecom_archive::state::{SharedState, StateStore, WebhookOutbox};

use super::output::{print_json, PullAlertsSummary};

/// Arguments of `wecom-archive alerts`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    /// Deliver the due alerts, waiting for retries and the rate limit up to --max-wait; what is
    /// still pending then stays in the outbox for the next run.
    #[arg(long)]
    send: bool,

    /// Make the deliveries that used up their attempts pending again (with --send, deliver
    /// them now).
    #[arg(long)]
    retry_failed: bool,

    /// With --send: the longest wait for retries, seconds (default `[alerts] send_wait_secs`).
    #[arg(long, value_name = "SECS", requires = "send")]
    max_wait: Option<u64>,

    /// Print one JSON document on stdout instead of the table (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

/// One webhook's outbox, as `alerts` prints it.
#[derive(Debug, Serialize)]
struct WebhookStatus {
    name: String,
    /// `wecom_robot`, `json`, or `null` for a webhook no longer configured.
    kind: Option<&'static str>,
    min_severity: Option<&'static str>,
    pending: u64,
    delivered: u64,
    failed: u64,
    attempts: u64,
    /// RFC 3339 UTC.
    next_attempt_at: Option<String>,
    last_error: Option<String>,
}

/// What `alerts --json` prints.
#[derive(Debug, Serialize)]
struct Status {
    /// Alerts in the outbox.
    alerts: u64,
    webhooks: Vec<WebhookStatus>,
    /// With --retry-failed: deliveries made pending again.
    #[serde(skip_serializing_if = "Option::is_none")]
    retried_failed: Option<usize>,
    /// With --send: what the delivery passes did.
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<DeliveryReport>,
}

fn section(config: &Config) -> anyhow::Result<&AlertsSection> {
    config
        .alerts
        .as_ref()
        .filter(|a| !a.webhooks.is_empty())
        .ok_or(ConfigError::MissingSection("alerts"))
        .with_context(|| {
            format!(
                "{}: add [alerts] with at least one [[alerts.webhook]] (docs/compliance.md)",
                config.path().display()
            )
        })
}

fn status(
    state: &SharedState,
    alerts: &AlertsSection,
    retried_failed: Option<usize>,
    sent: Option<DeliveryReport>,
) -> anyhow::Result<Status> {
    let store = state.lock();
    let mut outboxes = store.alert_outboxes()?;
    let mut webhooks = Vec::new();
    for w in &alerts.webhooks {
        let o = match outboxes.iter().position(|o| o.webhook == w.name) {
            Some(i) => outboxes.remove(i),
            None => WebhookOutbox {
                webhook: w.name.clone(),
                ..WebhookOutbox::default()
            },
        };
        webhooks.push(row(
            o,
            Some(w.kind.as_str()),
            Some(w.min_severity(alerts).as_str()),
        ));
    }
    // Webhooks removed from the config keep their history.
    webhooks.extend(outboxes.into_iter().map(|o| row(o, None, None)));
    Ok(Status {
        alerts: store.alert_count()?,
        webhooks,
        retried_failed,
        sent,
    })
}

fn row(o: WebhookOutbox, kind: Option<&'static str>, min: Option<&'static str>) -> WebhookStatus {
    WebhookStatus {
        name: o.webhook,
        kind,
        min_severity: min,
        pending: o.pending,
        delivered: o.delivered,
        failed: o.failed,
        attempts: o.attempts,
        next_attempt_at: o.next_attempt_at.map(format_unix_utc),
        last_error: o.last_error,
    }
}

fn print_table(s: &Status) {
    println!("outbox: {} alerts", s.alerts);
    println!(
        "{:<20} {:<12} {:<9} {:>8} {:>9} {:>7} {:>8}  {:<20}  last error",
        "webhook", "kind", "severity", "pending", "delivered", "failed", "attempts", "next attempt"
    );
    for w in &s.webhooks {
        println!(
            "{:<20} {:<12} {:<9} {:>8} {:>9} {:>7} {:>8}  {:<20}  {}",
            w.name,
            w.kind.unwrap_or("(removed)"),
            w.min_severity.unwrap_or("-"),
            w.pending,
            w.delivered,
            w.failed,
            w.attempts,
            w.next_attempt_at.as_deref().unwrap_or("-"),
            w.last_error.as_deref().unwrap_or("-")
        );
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let alerts = section(&config)?.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = SharedState::new(StateStore::open(&config.state_path())?);
    let retried = if args.retry_failed {
        Some(state.lock().retry_failed_alerts(None, clock.now_unix())?)
    } else {
        None
    };
    let sent = if args.send {
        let stop = super::Stop::install();
        let mut dispatcher = Dispatcher::from_config(&config, clock.clone())?
            .context("no [[alerts.webhook]] to send to")?;
        let wait = Duration::from_secs(args.max_wait.unwrap_or(alerts.send_wait_secs));
        let rt = super::token::runtime()?;
        Some(rt.block_on(dispatcher.deliver_until_idle(&state, wait, stop.flag()))?)
    } else {
        alerts::plan(&state, &alerts, clock.now_unix())?;
        None
    };
    let s = status(&state, &alerts, retried, sent)?;
    if args.json {
        print_json(&s)?;
    } else {
        if let Some(n) = s.retried_failed {
            println!("{n} failed deliveries made pending again");
        }
        if let Some(r) = &s.sent {
            println!(
                "sent: {} requests, {} deliveries accepted, {} requests failed, {} deliveries gave up",
                r.requests, r.delivered, r.failed_requests, r.gave_up
            );
        }
        print_table(&s);
    }
    if args.send {
        let configured = s.webhooks.iter().filter(|w| w.kind.is_some());
        let (pending, failed) = configured.fold((0, 0), |(p, f), w| (p + w.pending, f + w.failed));
        if pending + failed > 0 {
            anyhow::bail!(
                "{pending} alert deliveries still pending (kept for the next run), {failed} failed \
                 (`alerts --retry-failed --send` tries them again)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pull`'s alert delivery: one dispatcher for the whole command (its rate limit spans rounds).
pub(crate) struct PullAlerts {
    dispatcher: Dispatcher,
    state: SharedState,
    runtime: tokio::runtime::Runtime,
}

impl PullAlerts {
    /// The delivery of `config`'s `[alerts]`, or `None` without webhooks. A webhook URL that
    /// cannot be read is an error now, before any pull.
    pub(crate) fn new(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(dispatcher) = Dispatcher::from_config(config, Arc::new(SystemClock))? else {
            return Ok(None);
        };
        Ok(Some(PullAlerts {
            dispatcher,
            state: SharedState::new(StateStore::open(&config.state_path())?),
            runtime: super::token::runtime()?,
        }))
    }

    /// `[alerts] send_wait_secs`.
    pub(crate) fn send_wait(&self) -> Duration {
        Duration::from_secs(self.dispatcher.section().send_wait_secs)
    }

    /// Delivers until nothing is due or `max_wait` has passed. Never fails the pull: a failure
    /// is logged and reported, and the outbox keeps everything for the next pass.
    pub(crate) fn deliver(&mut self, max_wait: Duration, stop: &AtomicBool) -> PullAlertsSummary {
        let ran = self.runtime.block_on(self.dispatcher.deliver_until_idle(
            &self.state,
            max_wait,
            stop,
        ));
        let mut summary = PullAlertsSummary::default();
        match ran {
            Ok(r) => summary.delivered = r.delivered,
            Err(e) => {
                tracing::warn!(error = %e, "alert delivery failed; the alerts stay in the outbox");
                summary.error = Some(e.to_string());
            }
        }
        if let Ok(outboxes) = self.state.lock().alert_outboxes() {
            for o in outboxes {
                summary.pending += o.pending;
                summary.failed += o.failed;
            }
        }
        summary
    }
}
