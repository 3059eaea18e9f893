//! The compliance layer: the texts a rule looks at ([`text`]), the rule set with its one-pass
//! matcher ([`rules`]), the findings rows ([`findings`]), the delivery of alerts to webhooks ([`alerts`]), and
//! evidence exports of archived conversations ([`export`]).
//!
//! [`text`] and [`rules`] do no I/O beyond reading `rules.toml` ([`rules::RuleSet::load`]) and
//! take no lock: the pipeline calls them from its parallel stage, per message. [`alerts`] is the
//! one async part: it sends what the state's alert outbox holds. [`export`] reads the archived
//! tables and writes an export folder. See `docs/compliance.md`.

pub mod alerts;
pub mod export;
pub mod findings;
pub mod rules;
pub mod text;
