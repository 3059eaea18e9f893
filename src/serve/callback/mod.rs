//! The WeCom callback side of `serve`: receiving, authenticating and parsing callbacks.
//!
//! * [`server`]: the axum routes (GET URL verification, POST delivery), limits, rejections and
//!   the bounded queue to the event handler;
//! * [`conn`]: the HTTP/1 connections under the routes: header-read and idle timeouts, the
//!   connection limit, graceful shutdown;
//! * [`events`]: the events acted on (`suite_ticket`, `create_auth`, `change_auth`,
//!   `cancel_auth`, `reset_permanent_code`, `msgaudit_notify`) and their dedupe keys;
//! * [`xml`]: a strict, bounded reader for the flat callback XML (no DTD, no custom entities).
//!
//! The crypto (WXBizMsgCrypt) is [`crate::crypto::msgcrypt`]; what happens to an accepted event
//! is [`crate::serve`].

pub mod conn;
pub mod events;
pub mod server;
pub mod xml;

pub use events::Event;
pub use server::{
    CallbackServer, Delivery, Endpoint, Inbound, KnownCorps, Limits, ReceiveIds, Recorded,
    RouteKind,
};
