//! Many workers, one PostgreSQL state: a worker pulls a corp only while it holds the corp's
//! lease (see `state::leases` for the table and `docs/scale-out.md` for the deployment).
//!
//! ```text
//!  claim ─▶ granted ─▶ pull (renewer thread: every lease_secs/3) ─▶ release
//!        └▶ held by another worker ─▶ skip the corp this round
//!  renewal refused (the lease ran out and another worker took it) ─▶ stop the pull
//! ```
//!
//! The lease is the first guard. The second is the output's own: a Delta commit carries the
//! corp's last seq in its txn, and a Parquet commit moves the checkpoint in the state database,
//! so even two holders of one corp could not write a seq twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::state::{Lease, LeaseClaim, StateError, StateStore};

static HELD: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);

/// Corp leases this process holds now (`/metrics`).
pub fn leases_held() -> u64 {
    HELD.load(Ordering::Relaxed)
}

/// Leases that ran out under a running pull of this process (`/metrics`).
pub fn leases_lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// This process's name in the lease table: `host:pid:random`, unique per process start.
pub fn holder_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = hostname().unwrap_or_else(|| "host".into());
        format!(
            "{host}:{}:{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    })
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// A corp's lease held by this process, with the connection that renews and releases it.
pub struct CorpLease {
    store: StateStore,
    corp_id: String,
    ttl: Duration,
    claimed_at_ms: i64,
}

/// What a claim gave.
pub enum Claimed {
    /// Ours: pull the corp through [`CorpLease::hold_while`].
    Granted(Box<CorpLease>),
    /// Another worker holds it, or (a run that pulls each corp once) has pulled it to the end
    /// since this run began: its `released_at_ms` and `done_at_ms` say which.
    Held(Lease),
}

/// When this process first claimed a lease, by the database's clock.
static FIRST_CLAIM_MS: OnceLock<i64> = OnceLock::new();

impl CorpLease {
    /// Claims `corp_id` for this process, for `[fleet] lease_secs`.
    ///
    /// `once`: this run pulls each corp once (`pull --once`). Then a corp that another worker
    /// released since this process's first claim is skipped too: that worker pulled it to the end
    /// after this run began, so a pull here would find nothing new.
    pub fn claim(config: &Config, corp_id: &str, once: bool) -> Result<Claimed, StateError> {
        let mut store = StateStore::open(&config.state_path())?;
        let ttl = Duration::from_secs(config.fleet.lease_secs.max(1));
        // i64::MAX when the clock cannot be read: then nothing counts as done during this run.
        let first_claim = *FIRST_CLAIM_MS.get_or_init(|| store.db_now_ms().unwrap_or(i64::MAX));
        if once {
            if let Some(done) = store.lease(corp_id)?.filter(|l| {
                l.holder != holder_id()
                    && l.released_at_ms.is_some()
                    && l.done_at_ms.is_some_and(|at| at >= first_claim)
            }) {
                return Ok(Claimed::Held(done));
            }
        }
        match store.claim_lease(corp_id, holder_id(), ttl.as_millis() as i64)? {
            LeaseClaim::Held(lease) => Ok(Claimed::Held(lease)),
            LeaseClaim::Granted { took_over_from, .. } => {
                if let Some(previous) = took_over_from {
                    tracing::warn!(
                        corp = corp_id,
                        previous = %previous,
                        "took the corp over: its previous worker's lease ran out without a release"
                    );
                }
                tracing::info!(
                    corp = corp_id,
                    holder = holder_id(),
                    event = "lease_claimed"
                );
                // A pull that starts now and catches up answers every request made so far
                // (notifies stored by any worker); later ones stay for the next pull.
                let claimed_at_ms = store.db_now_ms()?;
                HELD.fetch_add(1, Ordering::Relaxed);
                Ok(Claimed::Granted(Box::new(CorpLease {
                    store,
                    corp_id: corp_id.to_owned(),
                    ttl,
                    claimed_at_ms,
                })))
            }
        }
    }

    /// Runs `f` while renewing the lease, then releases it. `f` gets the stop flag to obey: set
    /// when `stop` is, and when the lease is lost (not renewed in time, or taken by another
    /// worker after it ran out). Returns what `f` returned, and whether the lease was lost.
    ///
    /// When `answered` says the result answers the corp's pull requests (the pull caught up),
    /// the requests made before the claim are taken before the release. Otherwise (a failure, a
    /// stop, a worker killed meanwhile) they stay, and the next holder pulls.
    pub fn hold_while<R>(
        self: Box<Self>,
        stop: &AtomicBool,
        f: impl FnOnce(&AtomicBool) -> R,
        answered: impl FnOnce(&R) -> bool,
    ) -> (R, bool) {
        let CorpLease {
            store,
            corp_id,
            ttl,
            claimed_at_ms,
        } = *self;
        let corp_stop = AtomicBool::new(false);
        // Dropped when `f` returns: wakes the renewer at once, not at its next tick.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let lost = AtomicBool::new(false);
        let ttl_ms = ttl.as_millis() as i64;
        let every = (ttl / 3).max(Duration::from_millis(200));
        let (corp_stop_r, lost_r, corp) = (&corp_stop, &lost, corp_id.as_str());
        let (result, mut store) = std::thread::scope(|scope| {
            let (corp_stop, lost, corp_id) = (corp_stop_r, lost_r, corp);
            let renewer = scope.spawn(move || {
                let mut renewed = Instant::now();
                let mut next = renewed + every;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        corp_stop.store(true, Ordering::Relaxed);
                    }
                    if Instant::now() >= next {
                        // After an error, retry sooner than the next regular renewal.
                        next = Instant::now() + every.min(Duration::from_secs(1));
                        match store.renew_lease(corp_id, holder_id(), ttl_ms) {
                            Ok(true) => {
                                renewed = Instant::now();
                                next = renewed + every;
                            }
                            Ok(false) => {
                                tracing::error!(
                                    corp = %corp_id,
                                    "lost the corp's lease (it ran out, and another worker may \
                                     hold it now): stopping this pull after its current batch"
                                );
                                lost.store(true, Ordering::Relaxed);
                                corp_stop.store(true, Ordering::Relaxed);
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(corp = %corp_id, error = %e, "cannot renew the lease; retrying");
                                // Before it can have run out on the database's clock: stop.
                                if renewed.elapsed() >= ttl.saturating_sub(every) {
                                    lost.store(true, Ordering::Relaxed);
                                    corp_stop.store(true, Ordering::Relaxed);
                                    break;
                                }
                            }
                        }
                    }
                    // Also watches `stop` at this pace.
                    match done_rx.recv_timeout(Duration::from_millis(50)) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                }
                store
            });
            let r = f(corp_stop);
            drop(done_tx);
            (r, renewer.join().expect("the lease renewer does not panic"))
        });
        let lost = lost.load(Ordering::Relaxed);
        HELD.fetch_sub(1, Ordering::Relaxed);
        if lost {
            LOST.fetch_add(1, Ordering::Relaxed);
        } else {
            let caught_up = answered(&result);
            if caught_up {
                if let Err(e) = store.take_pull_requests(&corp_id, claimed_at_ms) {
                    // They stay: one more pull, which finds nothing new.
                    tracing::warn!(corp = %corp_id, error = %e, "cannot clear the answered pull requests");
                }
            }
            if let Err(e) = store.release_lease(&corp_id, holder_id(), caught_up) {
                // It runs out by itself after lease_secs.
                tracing::warn!(corp = %corp_id, error = %e, "cannot release the lease");
            } else {
                tracing::info!(corp = %corp_id, holder = holder_id(), event = "lease_released");
            }
        }
        (result, lost)
    }
}
