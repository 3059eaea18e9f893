//! Counters and gauges of `serve`, rendered as Prometheus text (exposition format 0.0.4) on
//! `/metrics`. Hand-written: a few maps behind one mutex are plenty for callback and pull rates.

use crate::pull::PullReport;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

#[derive(Debug, Default, Clone)]
struct CorpStats {
    pulls_ok: u64,
    pulls_failed: u64,
    /// Pulls skipped because another worker held the corp's lease.
    pulls_held: u64,
    records: u64,
    dead_letters: u64,
    running: bool,
    checkpoint: u64,
    lag_seq: u64,
    caught_up_at: Option<i64>,
    notifies: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    callbacks: BTreeMap<String, u64>,
    events: BTreeMap<String, u64>,
    token_refreshes: BTreeMap<String, u64>,
    corps: BTreeMap<String, CorpStats>,
    queue_depth: u64,
    /// webhook → (pending, delivered, failed), as of the last delivery pass.
    alerts: BTreeMap<String, [u64; 3]>,
}

/// All metrics of one `serve` process.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A callback request ended with `result` (`ok`, `verified`, `duplicate`, `bad_signature`, …).
    pub fn callback(&self, result: &str) {
        self.with(|m| *m.callbacks.entry(result.to_owned()).or_default() += 1);
    }

    /// Callbacks counted with `result`.
    pub fn callbacks(&self, result: &str) -> u64 {
        self.with(|m| m.callbacks.get(result).copied().unwrap_or(0))
    }

    /// An event of type `kind` was handled (after dedupe).
    pub fn event(&self, kind: &str) {
        self.with(|m| *m.events.entry(kind.to_owned()).or_default() += 1);
    }

    /// Events of type `kind` handled.
    pub fn events(&self, kind: &str) -> u64 {
        self.with(|m| m.events.get(kind).copied().unwrap_or(0))
    }

    /// A token of `kind` (`corp`, `suite`, `provider`, `authcorp`) was fetched from WeCom.
    pub fn token_refresh(&self, kind: &str) {
        self.with(|m| *m.token_refreshes.entry(kind.to_owned()).or_default() += 1);
    }

    /// Tokens of `kind` fetched.
    pub fn token_refreshes(&self, kind: &str) -> u64 {
        self.with(|m| m.token_refreshes.get(kind).copied().unwrap_or(0))
    }

    /// Events waiting in the queue.
    pub fn set_queue_depth(&self, depth: usize) {
        self.with(|m| m.queue_depth = depth as u64);
    }

    /// A `msgaudit_notify` (or fallback poll) for `corp` was `outcome` (`started`, `queued`,
    /// `coalesced`, `ignored`).
    pub fn notify(&self, corp: &str, outcome: &'static str) {
        self.with(|m| {
            *m.corps
                .entry(corp.to_owned())
                .or_default()
                .notifies
                .entry(outcome)
                .or_default() += 1
        });
    }

    /// Pull requests of `corp` that were `outcome`.
    pub fn notifies(&self, corp: &str, outcome: &str) -> u64 {
        self.with(|m| {
            m.corps
                .get(corp)
                .and_then(|c| c.notifies.get(outcome).copied())
                .unwrap_or(0)
        })
    }

    /// A pull of `corp` started.
    pub fn pull_started(&self, corp: &str) {
        self.with(|m| m.corps.entry(corp.to_owned()).or_default().running = true);
    }

    /// A pull of `corp` finished at `now` (Unix seconds).
    pub fn pull_finished(&self, corp: &str, report: &PullReport, now: i64) {
        self.with(|m| {
            let c = m.corps.entry(corp.to_owned()).or_default();
            c.running = false;
            if report.outcome == crate::pull::Outcome::Held {
                // Another worker pulls it: its figures are that worker's to report.
                c.pulls_held += 1;
                return;
            }
            if report.error.is_some() {
                c.pulls_failed += 1;
            } else {
                c.pulls_ok += 1;
            }
            c.records += report.written();
            c.dead_letters += report.dead_lettered();
            c.checkpoint = report.to_seq;
            c.lag_seq = report.to_seq.saturating_sub(report.from_seq);
            if report.caught_up() {
                c.caught_up_at = Some(now);
            }
        });
    }

    /// The alert outbox after a delivery pass.
    pub fn set_alert_outboxes(&self, outboxes: &[crate::state::WebhookOutbox]) {
        self.with(|m| {
            m.alerts = outboxes
                .iter()
                .map(|o| (o.webhook.clone(), [o.pending, o.delivered, o.failed]))
                .collect();
        });
    }

    /// Pulls of `corp` finished (successful and failed).
    pub fn pulls(&self, corp: &str) -> u64 {
        self.with(|m| m.corps.get(corp).map_or(0, |c| c.pulls_ok + c.pulls_failed))
    }

    /// The Prometheus text, with lag in seconds measured at `now`.
    pub fn render(&self, now: i64) -> String {
        self.with(|m| {
            let mut out = String::with_capacity(4096);
            let out = &mut out;
            family(
                out,
                "wecom_archive_callbacks_total",
                "counter",
                "Callback requests by result.",
            );
            for (r, n) in &m.callbacks {
                let _ = writeln!(
                    out,
                    "wecom_archive_callbacks_total{{result=\"{}\"}} {n}",
                    esc(r)
                );
            }
            family(
                out,
                "wecom_archive_events_total",
                "counter",
                "Callback events handled (after dedupe), by type.",
            );
            for (k, n) in &m.events {
                let _ = writeln!(out, "wecom_archive_events_total{{type=\"{}\"}} {n}", esc(k));
            }
            family(
                out,
                "wecom_archive_token_refreshes_total",
                "counter",
                "Tokens fetched from WeCom, by kind.",
            );
            for (k, n) in &m.token_refreshes {
                let _ = writeln!(
                    out,
                    "wecom_archive_token_refreshes_total{{kind=\"{}\"}} {n}",
                    esc(k)
                );
            }
            family(
                out,
                "wecom_archive_event_queue_depth",
                "gauge",
                "Accepted events not yet handled.",
            );
            let _ = writeln!(out, "wecom_archive_event_queue_depth {}", m.queue_depth);
            family(
                out,
                "wecom_archive_leases_held",
                "gauge",
                "Corp leases this worker holds now (a PostgreSQL state only).",
            );
            let _ = writeln!(
                out,
                "wecom_archive_leases_held {}",
                crate::fleet::leases_held()
            );
            family(
                out,
                "wecom_archive_leases_lost_total",
                "counter",
                "Corp leases that ran out under a running pull of this worker.",
            );
            let _ = writeln!(
                out,
                "wecom_archive_leases_lost_total {}",
                crate::fleet::leases_lost()
            );
            let per_corp: [(&str, &str, &str, CorpValue); 8] = [
                (
                    "wecom_archive_pulls_total",
                    "counter",
                    "Pulls finished, by outcome.",
                    |_, _| None,
                ),
                (
                    "wecom_archive_records_total",
                    "counter",
                    "Rows written.",
                    |c, _| Some(c.records.to_string()),
                ),
                (
                    "wecom_archive_dead_letters_total",
                    "counter",
                    "Records dead-lettered.",
                    |c, _| Some(c.dead_letters.to_string()),
                ),
                (
                    "wecom_archive_pull_running",
                    "gauge",
                    "1 while a pull of the corp runs.",
                    |c, _| Some(u8::from(c.running).to_string()),
                ),
                (
                    "wecom_archive_checkpoint_seq",
                    "gauge",
                    "Last committed seq.",
                    |c, _| Some(c.checkpoint.to_string()),
                ),
                (
                    "wecom_archive_lag_seq",
                    "gauge",
                    "Seqs the last pull had to catch up (how far behind it started).",
                    |c, _| Some(c.lag_seq.to_string()),
                ),
                (
                    "wecom_archive_lag_seconds",
                    "gauge",
                    "Seconds since the corp was last caught up (absent before the first).",
                    |c, now| c.caught_up_at.map(|t| (now - t).max(0).to_string()),
                ),
                (
                    "wecom_archive_notifies_total",
                    "counter",
                    "Pull requests (notify or poll), by outcome.",
                    |_, _| None,
                ),
            ];
            for (name, kind, help, value) in per_corp {
                family(out, name, kind, help);
                for (corp, c) in &m.corps {
                    let corp = esc(corp);
                    match name {
                        "wecom_archive_pulls_total" => {
                            let _ = writeln!(
                                out,
                                "{name}{{corp=\"{corp}\",outcome=\"ok\"}} {}",
                                c.pulls_ok
                            );
                            let _ = writeln!(
                                out,
                                "{name}{{corp=\"{corp}\",outcome=\"error\"}} {}",
                                c.pulls_failed
                            );
                            if c.pulls_held > 0 {
                                let _ = writeln!(
                                    out,
                                    "{name}{{corp=\"{corp}\",outcome=\"held\"}} {}",
                                    c.pulls_held
                                );
                            }
                        }
                        "wecom_archive_notifies_total" => {
                            for (o, n) in &c.notifies {
                                let _ =
                                    writeln!(out, "{name}{{corp=\"{corp}\",outcome=\"{o}\"}} {n}");
                            }
                        }
                        _ => {
                            if let Some(v) = value(c, now) {
                                let _ = writeln!(out, "{name}{{corp=\"{corp}\"}} {v}");
                            }
                        }
                    }
                }
            }
            if !m.alerts.is_empty() {
                family(
                    out,
                    "wecom_archive_alerts",
                    "gauge",
                    "Alert deliveries per webhook, by status (pending, delivered, failed).",
                );
                for (hook, counts) in &m.alerts {
                    let hook = esc(hook);
                    for (status, n) in ["pending", "delivered", "failed"].iter().zip(counts) {
                        let _ = writeln!(
                            out,
                            "wecom_archive_alerts{{webhook=\"{hook}\",status=\"{status}\"}} {n}"
                        );
                    }
                }
            }
            std::mem::take(out)
        })
    }
}

/// A per-corp gauge or counter value (`None`: not reported yet), at a given `now`.
type CorpValue = fn(&CorpStats, i64) -> Option<String>;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_lag() {
        let m = Metrics::new();
        m.callback("ok");
        m.callback("ok");
        m.callback("bad_signature");
        m.event("suite_ticket");
        m.token_refresh("suite");
        m.notify("ww1", "started");
        m.pull_started("ww1");
        m.pull_finished(
            "ww1",
            &PullReport {
                stats: crate::pipeline::RunStats {
                    written: 10,
                    dead_lettered: 1,
                    ..Default::default()
                },
                from_seq: 5,
                to_seq: 16,
                ..PullReport::default()
            },
            100,
        );
        m.set_alert_outboxes(&[crate::state::WebhookOutbox {
            webhook: "robot".into(),
            pending: 2,
            delivered: 5,
            failed: 1,
            ..Default::default()
        }]);
        let text = m.render(130);
        for want in [
            "wecom_archive_alerts{webhook=\"robot\",status=\"pending\"} 2",
            "wecom_archive_alerts{webhook=\"robot\",status=\"delivered\"} 5",
            "wecom_archive_alerts{webhook=\"robot\",status=\"failed\"} 1",
            "wecom_archive_callbacks_total{result=\"ok\"} 2",
            "wecom_archive_callbacks_total{result=\"bad_signature\"} 1",
            "wecom_archive_events_total{type=\"suite_ticket\"} 1",
            "wecom_archive_token_refreshes_total{kind=\"suite\"} 1",
            "wecom_archive_pulls_total{corp=\"ww1\",outcome=\"ok\"} 1",
            "wecom_archive_records_total{corp=\"ww1\"} 10",
            "wecom_archive_dead_letters_total{corp=\"ww1\"} 1",
            "wecom_archive_pull_running{corp=\"ww1\"} 0",
            "wecom_archive_checkpoint_seq{corp=\"ww1\"} 16",
            "wecom_archive_lag_seq{corp=\"ww1\"} 11",
            "wecom_archive_lag_seconds{corp=\"ww1\"} 30",
            "wecom_archive_notifies_total{corp=\"ww1\",outcome=\"started\"} 1",
            "# TYPE wecom_archive_pulls_total counter",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
        assert_eq!(m.pulls("ww1"), 1);
        assert_eq!(m.callbacks("ok"), 2);
    }
}
