//! The integration tests that run against the local WeCom emulator (feature `emulator`): tokens,
//! the msgaudit and service APIs, the token commands, and `serve`. One test binary with a module
//! per area.

mod common;
#[path = "../support/pg_server.rs"]
mod pg_server;

mod auth_api;
mod auth_tokens;
mod cli_serve;
mod cli_token;
mod serve_callbacks;
mod serve_conn;
mod serve_fleet;
mod serve_load;
mod serve_persist;
