//! The state database shared between tokio tasks.
//!
//! A `rusqlite::Connection` is `Send` but not `Sync`, so [`SharedState`] puts one
//! [`StateStore`] behind a mutex. Every operation through it is one short statement or
//! transaction; long work (a pipeline run) opens its own connection instead, so a pull never
//! holds this lock.

use std::sync::{Arc, Mutex, MutexGuard};

use super::StateStore;

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
