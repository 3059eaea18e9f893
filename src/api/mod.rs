//! WeCom HTTP APIs.
//!
//! * [`client`]: the reqwest client with the errcode → error mapping and retry policy;
//! * [`error`]: [`ApiError`](error::ApiError), naming corp and path, never a secret;
//! * [`msgaudit`]: the session-archive REST APIs;
//! * [`service`]: third-party authorization APIs (pre-auth code, permanent code, auth info).

pub mod client;
pub mod error;
pub mod msgaudit;
pub mod service;
