//! Where rows land: Parquet files and dead letters, both committed atomically.

pub mod atomic;
pub mod dead_letter;
pub mod parquet;
