//! Data model: encrypted records as they arrive, typed chat messages, and the Arrow schema.

pub mod message;
pub mod record;
pub mod schema;
