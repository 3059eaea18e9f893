//! # wecom-archive
//!
//! Turns the WeCom session archive (会话内容存档) into analytics-ready Arrow/Parquet.
//!
//! The modules follow the way data flows (see `ARCHITECTURE.md` in the shared design notes):
//!
//! * [`source`] yields encrypted `chatdata` records ([`model::record::EncryptedRecord`]) page by
//!   page: the official SDK ([`source::sdk`]), dumps ([`source::file`]) or the simulator
//!   ([`source::sim`]);
//! * [`crypto`] unwraps each record's key ([`crypto::keyring`], [`crypto::unwrap`]) and decrypts the
//!   message natively ([`crypto::message`], byte-compatible with the SDK's `DecryptData`);
//! * [`model`] types the decrypted JSON ([`model::message::ChatMessage`]), derives its conversation
//!   ([`model::conversation`]) and builds Arrow batches ([`model::schema`]);
//! * [`compliance`] applies the rules of `rules.toml` to each message's texts (pure, per message);
//! * [`pipeline`] runs the per-record transform in parallel, in seq order, and commits;
//! * [`sink`] writes Parquet files and dead letters, atomically;
//! * [`state`] remembers checkpoints in an embedded SQLite database;
//! * [`media`] downloads the files messages point at (`GetMediaData`), resumable and verified.
//!
//! [`crypto::msgcrypt`] implements WXBizMsgCrypt for the callback side.
//!
//! The WeCom-facing side: [`auth`] (tokens, OAuth) and [`api`] (HTTP client, msgaudit and service
//! APIs); [`serve`] receives WeCom's callbacks ([`serve::callback`]) and acts on them (suite tickets,
//! authorizations, `msgaudit_notify`-driven pulls); with feature `emulator`, `emulator` is a
//! local WeCom API emulator for tests.

pub mod api;
pub mod auth;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod crypto;
pub mod error;
pub mod fleet;
pub mod media;
pub mod migrate;
pub mod model;
pub mod pipeline;
pub mod pull;
pub mod scan;
pub mod secret;
pub mod serve;
pub mod sink;
pub mod source;
pub mod state;

#[cfg(feature = "emulator")]
pub mod emulator;
