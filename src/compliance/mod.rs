//! The compliance layer: the texts a rule looks at ([`text`]), the rule set with its one-pass
//! matcher ([`rules`]), the findings rows ([`findings`]), and the delivery of alerts to webhooks ([`alerts`]).
//!
//! [`text`] and [`rules`] do no I/O beyond reading `rules.toml` ([`rules::RuleSet::load`]) and
//! take no lock: the pipeline calls them from its parallel stage, per message. [`alerts`] is the
//! one async part: it sends what the state's alert outbox holds. See `docs/compliance.md`.

pub mod alerts;
pub mod findings;
pub mod rules;
pub mod text;
