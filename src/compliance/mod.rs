//! The compliance layer: the texts a rule looks at ([`text`]), the rule set with its one-pass
//! matcher ([`rules`]), and evidence exports of archived conversations ([`export`]).
//!
//! `text` and `rules` do no I/O beyond reading `rules.toml` ([`rules::RuleSet::load`]) and no threads: the
//! pipeline calls them from its parallel stage, per message. `export` reads the archived tables and writes an
//! export folder. See `docs/compliance.md` for the rules, the exports and the measured costs.

pub mod export;
pub mod rules;
pub mod text;
