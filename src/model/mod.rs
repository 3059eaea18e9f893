//! Data model: encrypted records as they arrive, typed chat messages, the conversation each belongs to, and the
//! Arrow schema.

pub mod conversation;
pub mod message;
pub mod record;
pub mod schema;
