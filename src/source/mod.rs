//! Where encrypted records come from.
//!
//! * [`file`]: `GetChatData` dumps and JSON Lines, plain or gzip, or stdin.
//! * [`sim`]: records encrypted exactly as WeCom does (for the simulator, samples and tests).

pub mod file;
pub mod sim;
