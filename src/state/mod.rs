//! Where we are: the embedded state database. Only this module knows SQL.

pub mod shared;
pub mod store;

pub use shared::{SharedState, StoredSuiteTickets};
pub use store::{
    AuthCorp, MediaFileState, MediaRefState, MediaStatus, NewMediaRef, PendingCommit, Rename,
    RunRecord, StateError, StateStore,
};
