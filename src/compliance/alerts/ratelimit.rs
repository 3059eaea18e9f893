//! A sliding-window request limit per webhook (WeCom robots take 20 messages a minute), and the
//! retry delay after a failed attempt.

use std::collections::VecDeque;

/// The window the limit counts over, seconds.
pub const WINDOW_SECS: i64 = 60;

/// At most `per_minute` requests in any [`WINDOW_SECS`] seconds, by the times handed in (an
/// injected clock in tests). Kept in memory: it limits one process.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_minute: Option<u32>,
    sent: VecDeque<i64>,
}

impl RateLimiter {
    /// A limit of `per_minute` requests (`None`: no limit).
    pub fn new(per_minute: Option<u32>) -> Self {
        RateLimiter {
            per_minute,
            sent: VecDeque::new(),
        }
    }

    fn forget_before(&mut self, now: i64) {
        while self.sent.front().is_some_and(|&t| t <= now - WINDOW_SECS) {
            self.sent.pop_front();
        }
    }

    /// Whether a request may go out at `now`.
    pub fn allows(&mut self, now: i64) -> bool {
        self.forget_before(now);
        self.per_minute.is_none_or(|n| self.sent.len() < n as usize)
    }

    /// Records a request sent at `now`.
    pub fn record(&mut self, now: i64) {
        if self.per_minute.is_some() {
            self.sent.push_back(now);
        }
    }

    /// The first second a request may go out, at or after `at` (which may lie ahead: nothing is
    /// forgotten here, so asking about the future does not free a request now).
    pub fn next_free(&self, at: i64) -> i64 {
        let Some(n) = self.per_minute.map(|n| n as usize) else {
            return at;
        };
        if self.sent.len() < n {
            return at;
        }
        // Fewer than n requests are in the window ending at T once the (len - n)-th has left it.
        at.max(self.sent[self.sent.len() - n] + WINDOW_SECS)
    }
}

/// The delay before the attempt after `attempt` failed attempts, seconds: `base` doubled per
/// attempt up to `max`, less up to half of it at random (`jitter` in `[0, 1)`), so that many
/// alerts failing together do not come back in lockstep. At least one second.
pub fn backoff_secs(attempt: u32, base: u64, max: u64, jitter: f64) -> i64 {
    let exp = attempt.saturating_sub(1).min(32);
    let full = base.saturating_mul(1u64 << exp).min(max.max(base));
    let cut = (full as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as u64;
    i64::try_from(full.saturating_sub(cut).max(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn at_most_per_minute_in_any_window() {
        let clock = ManualClock::new(1_000);
        let mut l = RateLimiter::new(Some(3));
        let mut sent = Vec::new();
        // One attempt per second for three minutes: the limit lets 3 through per 60 s.
        for _ in 0..180 {
            let now = clock.now_unix();
            if l.allows(now) {
                l.record(now);
                sent.push(now);
            }
            clock.advance(1);
        }
        assert_eq!(sent, [1000, 1001, 1002, 1060, 1061, 1062, 1120, 1121, 1122]);
        for w in sent.windows(4) {
            assert!(w[3] - w[0] >= WINDOW_SECS, "{w:?}");
        }
    }

    #[test]
    fn next_free_is_when_the_oldest_request_leaves_the_window() {
        let mut l = RateLimiter::new(Some(2));
        l.record(10);
        l.record(15);
        assert!(!l.allows(20));
        assert_eq!(l.next_free(20), 70);
        assert!(!l.allows(69));
        assert!(l.allows(70));
        assert_eq!(RateLimiter::new(None).next_free(5), 5);

        // Asking about a later time frees nothing now.
        let mut l = RateLimiter::new(Some(1));
        l.record(100);
        assert_eq!(l.next_free(200), 200);
        assert!(!l.allows(120), "still one request in the window at 120");
        assert_eq!(l.next_free(120), 160);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_at_most_half_cut_by_jitter() {
        let no_jitter: Vec<i64> = (1..=8).map(|a| backoff_secs(a, 5, 300, 0.0)).collect();
        assert_eq!(no_jitter, [5, 10, 20, 40, 80, 160, 300, 300]);
        for a in 1..=10 {
            let full = backoff_secs(a, 5, 300, 0.0);
            let jittered = backoff_secs(a, 5, 300, 0.999);
            assert!(
                jittered >= full / 2 && jittered <= full,
                "{a}: {jittered} of {full}"
            );
        }
        assert_eq!(backoff_secs(1, 1, 1, 0.9), 1, "never below a second");
        assert_eq!(backoff_secs(u32::MAX, 5, 3600, 0.0), 3600, "no overflow");
    }
}
