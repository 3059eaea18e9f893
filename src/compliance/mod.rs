//! The compliance layer's pure groundwork: the texts a
//! rule looks at ([`text`]), and the rule set with its one-pass matcher ([`rules`]).
//!
//! No I/O beyond reading `rules.toml` ([`rules::RuleSet::load`]) and no threads: the pipeline calls these from
//! its parallel stage, per message. See `docs/compliance.md` for the rules and the measured cost.

pub mod findings;
pub mod rules;
pub mod text;
