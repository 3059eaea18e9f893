//! Where rows land: Parquet files and dead letters, both committed atomically, and the
//! inventory of what an output directory holds.

pub mod atomic;
pub mod compact;
pub mod dead_letter;
pub mod delta;
pub mod inventory;
pub mod layout;
pub mod lock;
pub mod parquet;
pub mod recover;

/// The format of the tables a run writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Hive-partitioned Parquet files, committed through the state store's journal.
    #[default]
    Parquet,
    /// Delta Lake tables (local or S3-compatible storage), committed through the Delta log.
    Delta,
}
