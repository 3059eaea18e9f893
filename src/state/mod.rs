//! Where we are: the embedded state database. Only this module knows SQL.

pub mod store;

pub use store::{
    MediaFileState, MediaRefState, MediaStatus, NewMediaRef, PendingCommit, Rename, RunRecord,
    StateError, StateStore,
};
