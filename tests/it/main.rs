//! The integration tests that need nothing but the crate: one test binary with a module per area,
//! so that `cargo test` links once instead of once per file (the emulator's tests are
//! `tests/emulated/`, the official SDK's `tests/sdk_*.rs`).

mod alerts;
mod callback_vectors;
mod cli_conventions;
mod cli_decrypt;
mod cli_dumps;
mod cli_media;
mod cli_pull;
mod cli_retry;
mod compact;
mod compliance;
mod decryptdata_vectors;
mod delta;
mod export;
mod fleet;
mod media_download;
mod migrate;
mod migrate_schema;
mod model_messages;
#[path = "../support/pg_server.rs"]
mod pg_server;
mod pipeline_resume;
mod pull_guard;
mod readme;
mod rsa_keys;
mod s3;
