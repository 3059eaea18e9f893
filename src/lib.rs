//! # wecom-archive
//!
//! Turns the WeCom session archive (会话内容存档) into analytics-ready Arrow/Parquet.
//!
//! The modules follow the way data flows (see `ARCHITECTURE.md` in the shared design notes):
//!
//! * [`source`] yields encrypted `chatdata` records ([`model::record::EncryptedRecord`]);
//! * [`crypto`] unwraps each record's key ([`crypto::keyring`], [`crypto::unwrap`]) and decrypts the
//!   message natively ([`crypto::message`], byte-compatible with the SDK's `DecryptData`);
//! * [`model`] types the decrypted JSON ([`model::message::ChatMessage`]) and builds Arrow batches
//!   ([`model::schema`]);
//! * [`pipeline`] runs the per-record transform in parallel, in seq order;
//! * [`sink`] commits Parquet files and dead letters.
//!
//! [`crypto::callback`] implements WXBizMsgCrypt for the callback side.
//!
//! The WeCom-facing side: [`auth`] (tokens, OAuth) and [`api`] (HTTP client, msgaudit and service
//! APIs); with feature `emulator`, `emulator` is a local WeCom API emulator for tests.

pub mod api;
pub mod auth;
pub mod crypto;
pub mod error;
pub mod model;

pub mod pipeline;
pub mod sink;
pub mod source;

#[cfg(feature = "emulator")]
pub mod emulator;
