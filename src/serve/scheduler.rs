//! The per-corp pull scheduler of `serve`.
//!
//! Every `msgaudit_notify` (and every fallback poll) asks for a pull of one corp. WeCom sends a
//! notify at most every 15 s while messages arrive, and a pull reads everything up to now, so
//! requests are coalesced: per corp at most one pull runs and at most one more is queued.
//!
//! | state of the corp | a request… |
//! |---|---|
//! | idle | starts a pull (`started`) |
//! | waiting for a pull slot | is absorbed: the pull has not started, it will see the news (`coalesced`) |
//! | pulling, nothing queued | queues one follow-up pull (`queued`) |
//! | pulling, one queued | is absorbed by the queued pull (`coalesced`) |
//! | disabled / unknown / shutting down | is ignored (`ignored`) |
//!
//! So N requests during a pull give exactly one follow-up pull. Pulls of different corps run
//! concurrently up to a limit (a semaphore). Pulls are blocking work (the pipeline uses rayon)
//! and run on tokio's blocking pool.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Semaphore};

use crate::clock::Clock;
use crate::pull::{Outcome, PullReport};
use crate::serve::metrics::Metrics;

/// Runs one pull of a corp, to the end of its archive or until `stop` is set (then it finishes
/// the current batch and commits). Blocking.
pub trait Puller: Send + Sync + 'static {
    /// Pulls `corp_id`.
    fn pull(&self, corp_id: &str, stop: &AtomicBool) -> PullReport;
}

/// What became of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// A pull starts.
    Started,
    /// A follow-up pull is queued behind the running one.
    Queued,
    /// Absorbed by a pull that has not started yet.
    Coalesced,
    /// The corp is unknown or disabled, or the scheduler is stopping.
    Ignored,
}

impl Requested {
    fn label(self) -> &'static str {
        match self {
            Requested::Started => "started",
            Requested::Queued => "queued",
            Requested::Coalesced => "coalesced",
            Requested::Ignored => "ignored",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Waiting,
    Pulling { queued: bool },
}

#[derive(Debug)]
struct Corp {
    enabled: bool,
    phase: Phase,
}

struct Inner {
    corps: Mutex<BTreeMap<String, Corp>>,
    slots: Semaphore,
    puller: Arc<dyn Puller>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Set on shutdown: running pulls finish their batch and commit; nothing new starts.
    stop: Arc<AtomicBool>,
    /// Number of corps with a pull running or waiting (shutdown waits for 0).
    active: watch::Sender<usize>,
}

/// The scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler(Arc<Inner>);

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("corps", &self.corps())
            .finish()
    }
}

impl Scheduler {
    /// A scheduler for `corps` (all enabled), running at most `max_concurrent` pulls at once.
    pub fn new(
        corps: impl IntoIterator<Item = String>,
        max_concurrent: usize,
        puller: Arc<dyn Puller>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let corps = corps
            .into_iter()
            .map(|c| {
                (
                    c,
                    Corp {
                        enabled: true,
                        phase: Phase::Idle,
                    },
                )
            })
            .collect();
        Scheduler(Arc::new(Inner {
            corps: Mutex::new(corps),
            slots: Semaphore::new(max_concurrent.max(1)),
            puller,
            metrics,
            clock,
            stop: Arc::new(AtomicBool::new(false)),
            active: watch::channel(0).0,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Corp>> {
        self.0.corps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The corps known, with whether each is enabled.
    pub fn corps(&self) -> Vec<(String, bool)> {
        self.lock()
            .iter()
            .map(|(k, c)| (k.clone(), c.enabled))
            .collect()
    }

    /// Enables or disables a known corp (`cancel_auth` disables; a new `create_auth` enables).
    /// Returns whether the corp is known. A running pull of a disabled corp finishes; no new
    /// one starts.
    pub fn set_enabled(&self, corp_id: &str, enabled: bool) -> bool {
        match self.lock().get_mut(corp_id) {
            Some(c) => {
                c.enabled = enabled;
                if !enabled {
                    if let Phase::Pulling { queued } = &mut c.phase {
                        *queued = false;
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Asks for a pull of `corp_id` (a `msgaudit_notify`, or a poll). Never blocks.
    pub fn request(&self, corp_id: &str) -> Requested {
        let outcome = {
            let mut corps = self.lock();
            match corps.get_mut(corp_id) {
                _ if self.0.stop.load(Ordering::SeqCst) => Requested::Ignored,
                None => Requested::Ignored,
                Some(c) if !c.enabled => Requested::Ignored,
                Some(c) => match c.phase {
                    Phase::Idle => {
                        c.phase = Phase::Waiting;
                        self.0.active.send_modify(|n| *n += 1);
                        Requested::Started
                    }
                    Phase::Waiting | Phase::Pulling { queued: true } => Requested::Coalesced,
                    Phase::Pulling { queued: false } => {
                        c.phase = Phase::Pulling { queued: true };
                        Requested::Queued
                    }
                },
            }
        };
        self.0.metrics.notify(corp_id, outcome.label());
        if outcome == Requested::Started {
            let this = self.clone();
            let corp = corp_id.to_owned();
            tokio::spawn(async move { this.run(corp).await });
        }
        outcome
    }

    /// Asks for a pull of every enabled corp (the fallback poll).
    pub fn request_all(&self) {
        let corps: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, c)| c.enabled)
            .map(|(k, _)| k.clone())
            .collect();
        for corp in corps {
            self.request(&corp);
        }
    }

    /// Pulls `corp` until no follow-up is queued.
    async fn run(&self, corp: String) {
        loop {
            let permit = self.0.slots.acquire().await;
            let go = {
                let mut corps = self.lock();
                let c = corps.get_mut(&corp).expect("corps are never removed");
                if self.0.stop.load(Ordering::SeqCst) || !c.enabled || permit.is_err() {
                    c.phase = Phase::Idle;
                    false
                } else {
                    c.phase = Phase::Pulling { queued: false };
                    true
                }
            };
            if !go {
                break;
            }
            self.0.metrics.pull_started(&corp);
            let puller = self.0.puller.clone();
            let stop = self.0.stop.clone();
            let name = corp.clone();
            let report = tokio::task::spawn_blocking(move || puller.pull(&name, &stop))
                .await
                .unwrap_or_else(|e| PullReport {
                    corp_id: corp.clone(),
                    outcome: Outcome::Failed,
                    error: Some(format!("the pull task failed: {e}")),
                    ..PullReport::default()
                });
            drop(permit);
            match &report.error {
                // Another worker pulls it (a PostgreSQL state): nothing happened here.
                None if report.outcome == Outcome::Held => {
                    tracing::debug!(corp = %corp, "held by another worker; skipped")
                }
                None => tracing::info!(
                    corp = %corp,
                    outcome = report.outcome.as_str(),
                    written = report.written(),
                    dead_lettered = report.dead_lettered(),
                    checkpoint = report.to_seq,
                    "pull finished"
                ),
                Some(e) => tracing::warn!(corp = %corp, error = %e, "pull failed"),
            }
            self.0
                .metrics
                .pull_finished(&corp, &report, self.0.clock.now_unix());
            let again = {
                let mut corps = self.lock();
                let c = corps.get_mut(&corp).expect("corps are never removed");
                let again = matches!(c.phase, Phase::Pulling { queued: true })
                    && c.enabled
                    && !self.0.stop.load(Ordering::SeqCst);
                c.phase = if again { Phase::Waiting } else { Phase::Idle };
                again
            };
            if !again {
                break;
            }
        }
        self.0.active.send_modify(|n| *n -= 1);
    }

    /// Starts stopping: running pulls finish their current batch and commit, queued ones are
    /// dropped, new requests are ignored. Does not wait.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }

    /// [`Self::stop`], then waits until no pull runs any more.
    pub async fn shutdown(&self) {
        self.stop();
        let mut rx = self.0.active.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Whether a pull of any corp is running or waiting for a slot.
    pub fn busy(&self) -> bool {
        *self.0.active.borrow() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    /// A pull that blocks until released, counting pulls per corp.
    struct Gate {
        pulls: AtomicU64,
        open: Mutex<bool>,
        cv: std::sync::Condvar,
    }

    impl Puller for Gate {
        fn pull(&self, _corp: &str, stop: &AtomicBool) -> PullReport {
            self.pulls.fetch_add(1, Ordering::SeqCst);
            let mut open = self.open.lock().unwrap();
            while !*open && !stop.load(Ordering::SeqCst) {
                open = self
                    .cv
                    .wait_timeout(open, Duration::from_millis(10))
                    .unwrap()
                    .0;
            }
            PullReport {
                outcome: Outcome::Ok,
                ..PullReport::default()
            }
        }
    }

    async fn settle(s: &Scheduler) {
        for _ in 0..500 {
            if !s.busy() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("scheduler still busy");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_during_a_pull_gives_exactly_one_follow_up() {
        let gate = Arc::new(Gate {
            pulls: AtomicU64::new(0),
            open: Mutex::new(false),
            cv: std::sync::Condvar::new(),
        });
        let metrics = Arc::new(Metrics::new());
        let s = Scheduler::new(
            ["ww1".to_string(), "ww2".to_string()],
            2,
            gate.clone(),
            metrics.clone(),
            Arc::new(ManualClock::new(0)),
        );
        assert_eq!(s.request("ww1"), Requested::Started);
        while gate.pulls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(s.request("ww1"), Requested::Queued);
        for _ in 0..50 {
            assert_eq!(s.request("ww1"), Requested::Coalesced);
        }
        assert_eq!(s.request("unknown"), Requested::Ignored);
        *gate.open.lock().unwrap() = true;
        settle(&s).await;
        assert_eq!(gate.pulls.load(Ordering::SeqCst), 2);
        assert_eq!(metrics.pulls("ww1"), 2);

        // Disabled corps are not pulled.
        assert!(s.set_enabled("ww2", false));
        assert_eq!(s.request("ww2"), Requested::Ignored);
        assert!(s.set_enabled("ww2", true));
        assert_eq!(s.request("ww2"), Requested::Started);
        settle(&s).await;
        assert_eq!(gate.pulls.load(Ordering::SeqCst), 3);

        s.shutdown().await;
        assert_eq!(s.request("ww1"), Requested::Ignored);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corps_are_pulled_concurrently_up_to_the_limit() {
        let gate = Arc::new(Gate {
            pulls: AtomicU64::new(0),
            open: Mutex::new(false),
            cv: std::sync::Condvar::new(),
        });
        let s = Scheduler::new(
            (1..=5).map(|i| format!("ww{i}")),
            2,
            gate.clone(),
            Arc::new(Metrics::new()),
            Arc::new(ManualClock::new(0)),
        );
        s.request_all();
        while gate.pulls.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Two run, three wait for a slot.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(gate.pulls.load(Ordering::SeqCst), 2);
        *gate.open.lock().unwrap() = true;
        settle(&s).await;
        assert_eq!(gate.pulls.load(Ordering::SeqCst), 5);
    }
}
