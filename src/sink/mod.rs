//! Where rows land: Parquet files and dead letters, both committed atomically, and the
//! inventory of what an output directory holds.

pub mod atomic;
pub mod compact;
pub mod dead_letter;
pub mod inventory;
pub mod layout;
pub mod lock;
pub mod parquet;
pub mod recover;
