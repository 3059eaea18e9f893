//! The state database shared between tokio tasks, and the auth traits implemented on it.
//!
//! A `rusqlite::Connection` is `Send` but not `Sync`, so [`SharedState`] puts one
//! [`StateStore`] behind a mutex. Every operation through it is one short statement or
//! transaction; long work (a pipeline run) opens its own connection instead, so a pull never
//! holds this lock.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::auth::clock::Clock;
use crate::auth::providers::{SuiteTicketSource, SUITE_TICKET_TTL_SECS};
use crate::auth::secret::Secret;
use crate::auth::token::{StoredToken, TokenStore};
use crate::state::store::StateStore;

/// A [`StateStore`] shared across threads and tasks.
#[derive(Debug, Clone)]
pub struct SharedState(Arc<Mutex<StateStore>>);

impl SharedState {
    /// Shares `store`.
    pub fn new(store: StateStore) -> Self {
        SharedState(Arc::new(Mutex::new(store)))
    }

    /// Locks the store for one short operation. A panic while holding the lock cannot leave a
    /// half-applied SQL transaction behind (SQLite rolls it back), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, StateStore> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Tokens persisted in the state database: survive restarts, and the later expiry wins.
impl TokenStore for SharedState {
    fn load(&self, key: &str) -> Option<StoredToken> {
        match self.lock().token(key) {
            Ok(t) => t.map(|(value, expires_at_unix)| StoredToken {
                value,
                expires_at_unix,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a token from the state database");
                None
            }
        }
    }

    fn save(&self, key: &str, token: &StoredToken) {
        if let Err(e) = self
            .lock()
            .save_token(key, &token.value, token.expires_at_unix)
        {
            // Costs one extra fetch after a restart, no more.
            tracing::warn!(error = %e, "cannot save a token to the state database");
        }
    }

    fn remove(&self, key: &str, rejected: &Secret) {
        if let Err(e) = self.lock().remove_token(key, rejected) {
            tracing::warn!(error = %e, "cannot remove a token from the state database");
        }
    }
}

/// The newest pushed `suite_ticket`, from the state database, while it is valid
/// ([`SUITE_TICKET_TTL_SECS`] after its push `TimeStamp`).
#[derive(Debug, Clone)]
pub struct StoredSuiteTickets {
    state: SharedState,
    clock: Arc<dyn Clock>,
}

impl StoredSuiteTickets {
    /// Tickets from `state`, aged on `clock`.
    pub fn new(state: SharedState, clock: Arc<dyn Clock>) -> Self {
        StoredSuiteTickets { state, clock }
    }
}

impl SuiteTicketSource for StoredSuiteTickets {
    fn latest(&self, suite_id: &str) -> Option<Secret> {
        let stored = match self.state.lock().suite_ticket(suite_id) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(suite = suite_id, error = %e, "cannot read the suite_ticket");
                None
            }
        };
        let now = self.clock.now_unix();
        stored
            .filter(|(_, ts)| now - ts < SUITE_TICKET_TTL_SECS)
            .map(|(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::clock::ManualClock;

    #[test]
    fn tickets_expire_after_30_minutes_and_tokens_round_trip() {
        let state = SharedState::new(StateStore::open_in_memory().unwrap());
        let clock = Arc::new(ManualClock::new(10_000));
        let tickets = StoredSuiteTickets::new(state.clone(), clock.clone());
        assert!(tickets.latest("ws").is_none());
        state
            .lock()
            .offer_suite_ticket("ws", &Secret::new("t"), 10_000)
            .unwrap();
        assert_eq!(tickets.latest("ws").unwrap().expose(), "t");
        clock.advance(SUITE_TICKET_TTL_SECS);
        assert!(tickets.latest("ws").is_none());

        let tok = StoredToken {
            value: Secret::new("v"),
            expires_at_unix: 5,
        };
        state.save("k", &tok);
        assert_eq!(state.load("k"), Some(tok));
        state.remove("k", &Secret::new("v"));
        assert_eq!(state.load("k"), None);
    }
}
