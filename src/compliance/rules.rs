//! The rule set (`rules.toml`) and its matcher: one pass over a message's texts for every rule at once.
//!
//! ```toml
//! [[rule]]
//! id = "invoice"
//! severity = "warn"                 # info | warn | critical
//! keywords = ["发票", "invoice"]     # case-insensitive substring match
//! regex = ['\d{6}(19|20)\d{2}']    # optional
//! msgtypes = ["text", "mixed"]      # optional; default: every msgtype (those without text never match)
//! scope = "any"                     # optional, default any: any | external | internal
//! description = "Invoices sent in chat"   # optional, shown with alerts; not part of the version
//! ```
//!
//! A rule fires on a message when at least one of its keywords or regexes matches one of the message's texts
//! ([`super::text`]), the message's msgtype is in `msgtypes` (when given), and the scope fits: `external` means an
//! external contact sends or receives the message ([`crate::model::conversation::involves_external`]), `internal` that
//! none does.
//!
//! **Engines.** All keywords of all rules go into one Aho-Corasick automaton (overlapping matches, so that two
//! rules whose keywords overlap, e.g. `发票` and `开发票`, both fire), and all regexes into one [`RegexSet`]; a
//! message's texts are scanned once by each, whatever the number of rules. A single regex is run only to find the
//! term and the snippet of a set member that matched.
//!
//! **Case.** Keywords match case-insensitively. The automaton folds ASCII letters itself (no copy of the text).
//! Non-ASCII letters with case (Latin-1 accents, Greek, Cyrillic, full-width Latin) are folded with Unicode's
//! lowercase mapping: keywords are lowercased when the set is built, and a text is lowercased into a copy only if
//! some keyword has such a letter *and* the text has an uppercase non-ASCII letter (a keyword's snippet then
//! comes from that lowercased copy). Chinese has no case, so a rule set of Chinese and ASCII keywords never copies
//! a text. Regexes are applied to the text as sent and are
//! case-sensitive unless they say `(?i)`.
//!
//! **Version.** [`RuleSet::version`] is the SHA-256 (hex) of the line `wecom-archive/rules/1` followed by the
//! normalized rules as JSON: sorted by id; per rule its id, severity, scope, msgtypes (sorted, deduplicated, or
//! null), keywords (lowercased, sorted, deduplicated) and regexes (sorted, deduplicated). So reordering rules or
//! keywords, changing a keyword's case, or editing comments and descriptions keeps the version; anything that can
//! change what matches changes it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexSet};
use serde::Serialize;

use super::text::{carries_text, for_each_text, TEXTLESS};
use crate::model::conversation::involves_external;
use crate::model::message::ChatMessage;

/// How serious a finding is; ordered, so that "at or above" is `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording.
    Info,
    /// Worth a look.
    Warn,
    /// Worth an alert now.
    Critical,
}

impl Severity {
    /// `info`, `warn` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }

    /// Parses the `severity` value (lowercase, as written in `rules.toml`).
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warn" => Some(Severity::Warn),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which messages a rule looks at, by who takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every message.
    Any,
    /// Messages an external contact sends or receives.
    External,
    /// Messages among members of the corp (and robots) only.
    Internal,
}

impl Scope {
    /// `any`, `external` or `internal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Any => "any",
            Scope::External => "external",
            Scope::Internal => "internal",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "any" => Some(Scope::Any),
            "external" => Some(Scope::External),
            "internal" => Some(Scope::Internal),
            _ => None,
        }
    }
}

/// One rule, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique within the set; the findings' `rule_id`.
    pub id: String,
    /// The findings' severity.
    pub severity: Severity,
    /// Keywords as written (matched case-insensitively), duplicates removed.
    pub keywords: Vec<String>,
    /// Regex patterns as written, duplicates removed.
    pub regex: Vec<String>,
    /// The msgtypes the rule looks at; `None`: every msgtype.
    pub msgtypes: Option<Vec<String>>,
    /// Who must take part.
    pub scope: Scope,
    /// Free text for people (alerts); not part of the version.
    pub description: Option<String>,
}

impl Rule {
    /// Whether the rule looks at a message of `msgtype` that does (`external`) or does not involve an external
    /// contact.
    pub fn applies(&self, msgtype: &str, external: bool) -> bool {
        let type_ok = self
            .msgtypes
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == msgtype));
        let scope_ok = match self.scope {
            Scope::Any => true,
            Scope::External => external,
            Scope::Internal => !external,
        };
        type_ok && scope_ok
    }
}

/// A rule that fired on a message: one row of the `findings` table (with the message's own columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch<'r> {
    /// The rule.
    pub rule: &'r Rule,
    /// The rule's position in [`RuleSet::rules`].
    pub rule_index: usize,
    /// What matched, each once, in the order found: a keyword as written in the rule, or a regex's matched text.
    pub terms: Vec<String>,
    /// The first match with up to [`SNIPPET_CONTEXT`] characters either side (`…` where cut, line breaks and
    /// tabs as spaces).
    pub snippet: String,
}

/// Characters of context either side of the first match in a [`RuleMatch::snippet`].
pub const SNIPPET_CONTEXT: usize = 30;

/// Longest part of a match (in characters) kept in a snippet or a regex term.
const MAX_MATCH_CHARS: usize = 60;

/// Why a rules file was refused. Every message names the file, and the rule and key where there is one, and
/// says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file {file}: {source}")]
    Read {
        /// The file as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not TOML, or something outside any one rule is wrong.
    #[error("{file}: {message}")]
    File {
        /// The file as given.
        file: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// One key of one rule is wrong.
    #[error("{file}: rule {rule}: `{key}` {message}")]
    Rule {
        /// The file as given.
        file: String,
        /// The rule's id in quotes, or `#<n>` (1-based) when it has none.
        rule: String,
        /// The key.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A parsed, compiled rule set: the rules, their version and the two matching engines.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    version: String,
    /// Every distinct keyword (lowercased where it has non-ASCII case) of every rule.
    keywords: Option<AhoCorasick>,
    /// `owners[owner_start[p]..owner_start[p + 1]]`: the (rule, keyword) pairs of automaton pattern `p`.
    owner_start: Vec<u32>,
    owners: Vec<(u32, u32)>,
    /// Every regex of every rule, in rule order; `regex_owner[i]` is the rule of `regexes[i]`.
    regex_set: Option<RegexSet>,
    regexes: Vec<Regex>,
    regex_owner: Vec<u32>,
    /// Some keyword has a non-ASCII letter with case: texts with uppercase non-ASCII letters are lowercased first.
    fold_unicode: bool,
    /// Some rule looks at every msgtype; otherwise only the msgtypes in `filtered_types` are scanned.
    any_type: bool,
    filtered_types: Vec<String>,
}

const KEYS: &str = "id, severity, keywords, regex, msgtypes, scope, description";

impl RuleSet {
    /// A set without rules: matches nothing (what the pipeline uses when no rules file is configured).
    pub fn empty() -> RuleSet {
        RuleSet::build(Vec::new()).expect("an empty rule set builds")
    }

    /// Reads and compiles `path` (see the module documentation for the format).
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        RuleSet::parse(&text, &file)
    }

    /// Parses and compiles a rules file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<RuleSet, RulesError> {
        let file_err = |message: String| RulesError::File {
            file: file.to_string(),
            message,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_err(format!("not valid TOML: {e}")))?;
        let mut rules: Vec<Rule> = Vec::new();
        for (key, value) in &table {
            if key != "rule" {
                return Err(file_err(format!(
                    "unknown top-level key `{key}`: the file holds only [[rule]] tables; remove it or move it into a rule"
                )));
            }
            let toml::Value::Array(items) = value else {
                return Err(file_err(
                    "`rule` must be an array of tables: write each rule under its own [[rule]] header (two brackets)"
                        .into(),
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let toml::Value::Table(t) = item else {
                    return Err(file_err(format!(
                        "rule #{}: not a table; write each rule under its own [[rule]] header",
                        i + 1
                    )));
                };
                let rule = parse_rule(t, i + 1, file)?;
                if let Some(prev) = rules.iter().position(|r| r.id == rule.id) {
                    return Err(RulesError::Rule {
                        file: file.into(),
                        rule: format!("{:?}", rule.id),
                        key: "id".into(),
                        message: format!(
                            "is used by rules #{} and #{}; ids must be unique, rename one",
                            prev + 1,
                            i + 1
                        ),
                    });
                }
                rules.push(rule);
            }
        }
        if rules.is_empty() {
            return Err(file_err(
                "no rules: add at least one [[rule]] table, or remove the rules setting to run without rules".into(),
            ));
        }
        RuleSet::build(rules).map_err(file_err)
    }

    /// Compiles checked rules into the two engines and computes the version.
    fn build(rules: Vec<Rule>) -> Result<RuleSet, String> {
        let fold_unicode = rules
            .iter()
            .flat_map(|r| &r.keywords)
            .any(|k| k.chars().any(has_unicode_case));
        let mut patterns: Vec<String> = Vec::new();
        let mut by_pattern: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        for (ri, rule) in rules.iter().enumerate() {
            for (ki, kw) in rule.keywords.iter().enumerate() {
                let pattern = fold_keyword(kw);
                let owners = by_pattern.entry(pattern.clone()).or_default();
                if owners.is_empty() {
                    patterns.push(pattern);
                }
                // A rule listing the same keyword in two cases owns the pattern once.
                if !owners.iter().any(|&(r, _)| r == ri as u32) {
                    owners.push((ri as u32, ki as u32));
                }
            }
        }
        let mut owner_start = Vec::with_capacity(patterns.len() + 1);
        let mut owners = Vec::new();
        for p in &patterns {
            owner_start.push(owners.len() as u32);
            owners.extend_from_slice(&by_pattern[p]);
        }
        owner_start.push(owners.len() as u32);
        let keywords = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(true)
                    .build(&patterns)
                    .map_err(|e| {
                        format!("the keywords of all rules do not fit one automaton ({e}); use fewer keywords")
                    })?,
            )
        };

        let mut regexes = Vec::new();
        let mut regex_owner = Vec::new();
        for (ri, rule) in rules.iter().enumerate() {
            for pattern in &rule.regex {
                // Already compiled once when the rule was checked; this cannot fail.
                regexes.push(Regex::new(pattern).map_err(|e| e.to_string())?);
                regex_owner.push(ri as u32);
            }
        }
        let regex_set = if regexes.is_empty() {
            None
        } else {
            Some(
                RegexSet::new(regexes.iter().map(Regex::as_str)).map_err(|e| {
                    format!("the regexes of all rules together do not compile ({e}); use fewer or simpler regexes")
                })?,
            )
        };

        let any_type = rules.iter().any(|r| r.msgtypes.is_none());
        let mut filtered_types: Vec<String> = rules
            .iter()
            .flat_map(|r| r.msgtypes.iter().flatten().cloned())
            .collect();
        filtered_types.sort();
        filtered_types.dedup();

        let version = version_of(&rules);
        Ok(RuleSet {
            rules,
            version,
            keywords,
            owner_start,
            owners,
            regex_set,
            regexes,
            regex_owner,
            fold_unicode,
            any_type,
            filtered_types,
        })
    }

    /// The rule set's version: the SHA-256 of its normalized content, 64 hex digits (see the module documentation
    /// for what is hashed).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether there are no rules (nothing can match).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules that fire on `msg`, in rule order, each with its matched terms and the snippet of its first match.
    ///
    /// Allocates nothing for a message no rule fires on (unless a text must be lowercased or unescaped, see the
    /// module documentation of this module and of [`super::text`]).
    pub fn match_message(&self, msg: &ChatMessage) -> Vec<RuleMatch<'_>> {
        if self.rules.is_empty()
            || !carries_text(&msg.msgtype)
            || !(self.any_type || self.filtered_types.contains(&msg.msgtype))
        {
            return Vec::new();
        }
        let mut scan = Scan {
            set: self,
            msgtype: &msg.msgtype,
            external: None,
            msg,
            hits: Vec::new(),
            part: 0,
        };
        for_each_text(msg, &mut |part| {
            scan.text(&part.text);
            scan.part += 1;
        });
        let mut hits = scan.hits;
        hits.sort_unstable_by_key(|h| h.rule);
        hits.into_iter()
            .map(|h| RuleMatch {
                rule: &self.rules[h.rule as usize],
                rule_index: h.rule as usize,
                terms: h.terms,
                snippet: h.snippet,
            })
            .collect()
    }
}

/// One message's scan: the hits so far, per rule.
struct Scan<'s, 'm> {
    set: &'s RuleSet,
    msgtype: &'m str,
    msg: &'m ChatMessage,
    /// Computed at the first hit of a rule with a scope.
    external: Option<bool>,
    hits: Vec<Hit>,
    /// Index of the text being scanned, so that the snippet is taken from the first text with a match.
    part: usize,
}

struct Hit {
    rule: u32,
    terms: Vec<String>,
    snippet: String,
    part: usize,
    start: usize,
}

impl Scan<'_, '_> {
    fn applies(&mut self, rule: u32) -> bool {
        let rule = &self.set.rules[rule as usize];
        let external = match rule.scope {
            Scope::Any => false,
            Scope::External | Scope::Internal => *self
                .external
                .get_or_insert_with(|| involves_external(self.msg)),
        };
        rule.applies(self.msgtype, external)
    }

    fn text(&mut self, text: &str) {
        let set = self.set;
        if let Some(ac) = &set.keywords {
            let lowered;
            let hay = if set.fold_unicode
                && !text.is_ascii()
                && text.chars().any(|c| !c.is_ascii() && c.is_uppercase())
            {
                lowered = text.to_lowercase();
                lowered.as_str()
            } else {
                text
            };
            for m in ac.find_overlapping_iter(hay) {
                let p = m.pattern().as_usize();
                let owners =
                    &set.owners[set.owner_start[p] as usize..set.owner_start[p + 1] as usize];
                for &(rule, kw) in owners {
                    if self.applies(rule) {
                        let term = &set.rules[rule as usize].keywords[kw as usize];
                        self.hit(rule, term, hay, m.start(), m.end());
                    }
                }
            }
        }
        if let Some(rs) = &set.regex_set {
            // `is_match` first: `matches` allocates its result, and almost every text matches nothing.
            if rs.is_match(text) {
                for i in rs.matches(text).iter() {
                    let rule = set.regex_owner[i];
                    if !self.applies(rule) {
                        continue;
                    }
                    if let Some(m) = set.regexes[i].find(text) {
                        let term = clip(m.as_str(), MAX_MATCH_CHARS);
                        self.hit(rule, term, text, m.start(), m.end());
                    }
                }
            }
        }
    }

    fn hit(&mut self, rule: u32, term: &str, hay: &str, start: usize, end: usize) {
        let part = self.part;
        match self.hits.iter_mut().find(|h| h.rule == rule) {
            None => self.hits.push(Hit {
                rule,
                terms: vec![term.to_string()],
                snippet: snippet(hay, start, end),
                part,
                start,
            }),
            Some(h) => {
                if !h.terms.iter().any(|t| t == term) {
                    h.terms.push(term.to_string());
                }
                // Overlapping matches arrive by end, and regexes after keywords: keep the earliest start. (When a
                // text was lowercased, keyword offsets are the copy's; "earliest" is then approximate.)
                if h.part == part && start < h.start {
                    h.snippet = snippet(hay, start, end);
                    h.start = start;
                }
            }
        }
    }
}

/// Whether `c` is a non-ASCII letter with case (the automaton folds ASCII itself).
fn has_unicode_case(c: char) -> bool {
    !c.is_ascii() && (c.is_uppercase() || c.is_lowercase())
}

/// The automaton's pattern for a keyword: lowercased, so that keywords differing only in case share a pattern
/// (the automaton folds ASCII in the text; texts are lowercased for the other letters, see `fold_unicode`).
fn fold_keyword(kw: &str) -> String {
    kw.to_lowercase()
}

/// `s` cut to at most `max` characters.
fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The match `hay[start..end]` with [`SNIPPET_CONTEXT`] characters either side.
fn snippet(hay: &str, start: usize, end: usize) -> String {
    let start = floor_boundary(hay, start);
    let end = floor_boundary(hay, end).max(start);
    let from = hay[..start]
        .char_indices()
        .rev()
        .nth(SNIPPET_CONTEXT - 1)
        .map_or(0, |(i, _)| i);
    let matched = clip(&hay[start..end], MAX_MATCH_CHARS);
    let after = &hay[end..];
    let to = after
        .char_indices()
        .nth(SNIPPET_CONTEXT)
        .map_or(hay.len(), |(i, _)| end + i);
    let mut out = String::with_capacity(to - from + 8);
    if from > 0 {
        out.push('…');
    }
    for part in [&hay[from..start], matched, &hay[end..to]] {
        out.extend(part.chars().map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c => c,
        }));
    }
    if to < hay.len() {
        out.push('…');
    }
    out
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The normalized rule set that [`RuleSet::version`] hashes.
#[derive(Serialize)]
struct Normalized<'a> {
    id: &'a str,
    severity: Severity,
    scope: Scope,
    msgtypes: Option<Vec<&'a str>>,
    keywords: Vec<String>,
    regex: Vec<&'a str>,
}

fn version_of(rules: &[Rule]) -> String {
    let mut norm: Vec<Normalized<'_>> = rules
        .iter()
        .map(|r| {
            let mut keywords: Vec<String> = r.keywords.iter().map(|k| k.to_lowercase()).collect();
            keywords.sort();
            keywords.dedup();
            let mut regex: Vec<&str> = r.regex.iter().map(String::as_str).collect();
            regex.sort();
            regex.dedup();
            let msgtypes = r.msgtypes.as_ref().map(|types| {
                let mut t: Vec<&str> = types.iter().map(String::as_str).collect();
                t.sort();
                t.dedup();
                t
            });
            Normalized {
                id: &r.id,
                severity: r.severity,
                scope: r.scope,
                msgtypes,
                keywords,
                regex,
            }
        })
        .collect();
    norm.sort_by(|a, b| a.id.cmp(b.id));
    let mut bytes = b"wecom-archive/rules/1\n".to_vec();
    serde_json::to_writer(&mut bytes, &norm).expect("serializing to a Vec cannot fail");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks one `[[rule]]` table (`n` is its 1-based position) and turns it into a [`Rule`].
fn parse_rule(t: &toml::Table, n: usize, file: &str) -> Result<Rule, RulesError> {
    let mut label = format!("#{n}");
    let err = |label: &str, key: &str, message: String| RulesError::Rule {
        file: file.into(),
        rule: label.to_string(),
        key: key.into(),
        message,
    };
    let id = match t.get("id") {
        None => {
            return Err(err(
                &label,
                "id",
                "is missing: add id = \"<a name for the rule>\"".into(),
            ))
        }
        Some(toml::Value::String(s))
            if !s.trim().is_empty() && !s.chars().any(char::is_control) =>
        {
            s.clone()
        }
        Some(_) => {
            return Err(err(
                &label,
                "id",
                "must be a non-empty string without control characters, like id = \"invoice\""
                    .into(),
            ))
        }
    };
    label = format!("{id:?}");
    let mut rule = Rule {
        id,
        severity: Severity::Info,
        keywords: Vec::new(),
        regex: Vec::new(),
        msgtypes: None,
        scope: Scope::Any,
        description: None,
    };
    let mut severity = None;
    let mut folded_keywords = std::collections::HashSet::new();
    for (key, value) in t {
        let key = key.as_str();
        match key {
            "id" => {}
            "severity" => {
                severity = Some(value.as_str().and_then(Severity::parse).ok_or_else(|| {
                    err(
                        &label,
                        key,
                        format!("is {value}: write one of \"info\", \"warn\", \"critical\""),
                    )
                })?);
            }
            "scope" => {
                rule.scope = value.as_str().and_then(Scope::parse).ok_or_else(|| {
                    err(
                        &label,
                        key,
                        format!("is {value}: write one of \"any\", \"external\", \"internal\""),
                    )
                })?;
            }
            "description" => {
                rule.description = Some(
                    value
                        .as_str()
                        .ok_or_else(|| err(&label, key, "must be a string".into()))?
                        .to_string(),
                );
            }
            "keywords" => {
                for kw in strings(value).map_err(|m| err(&label, key, m))? {
                    if kw.trim().is_empty() {
                        return Err(err(
                            &label,
                            key,
                            "holds an empty keyword, which would match every message: remove it"
                                .into(),
                        ));
                    }
                    // Keywords differing only in case are one keyword: the first spelling is kept.
                    if folded_keywords.insert(kw.to_lowercase()) {
                        rule.keywords.push(kw.to_string());
                    }
                }
            }
            "regex" => {
                for pattern in strings(value).map_err(|m| err(&label, key, m))? {
                    let re = Regex::new(pattern).map_err(|e| {
                        err(
                            &label,
                            key,
                            format!("pattern '{pattern}' does not compile; fix it:\n{e}"),
                        )
                    })?;
                    if re.is_match("") {
                        return Err(err(
                            &label,
                            key,
                            format!(
                                "pattern '{pattern}' matches the empty text, so it would fire on every message: make it match at least one character"
                            ),
                        ));
                    }
                    if !rule.regex.iter().any(|r| r == pattern) {
                        rule.regex.push(pattern.to_string());
                    }
                }
            }
            "msgtypes" => {
                let types = strings(value).map_err(|m| err(&label, key, m))?;
                if types.is_empty() {
                    return Err(err(
                        &label,
                        key,
                        "is empty, so the rule would never fire: list msgtypes, or remove the key for every msgtype"
                            .into(),
                    ));
                }
                let mut list = Vec::new();
                for ty in types {
                    if ty.is_empty() {
                        return Err(err(&label, key, "holds an empty msgtype: remove it".into()));
                    }
                    if TEXTLESS.contains(&ty) {
                        return Err(err(
                            &label,
                            key,
                            format!("lists {ty:?}, whose messages carry no text, so the rule would never fire on them: remove it"),
                        ));
                    }
                    if !list.iter().any(|t| t == ty) {
                        list.push(ty.to_string());
                    }
                }
                rule.msgtypes = Some(list);
            }
            other => {
                return Err(err(
                    &label,
                    other,
                    format!(
                        "is not a rule key (the keys are {KEYS}): fix its spelling or remove it"
                    ),
                ))
            }
        }
    }
    rule.severity = severity.ok_or_else(|| {
        err(
            &label,
            "severity",
            "is missing: add severity = \"info\", \"warn\" or \"critical\"".into(),
        )
    })?;
    if rule.keywords.is_empty() && rule.regex.is_empty() {
        return Err(err(
            &label,
            "keywords",
            "and `regex` are both missing or empty, so the rule would never fire: add keywords = [\"…\"] or regex = ['…']"
                .into(),
        ));
    }
    Ok(rule)
}

/// A TOML array of strings, or what to write instead.
fn strings(value: &toml::Value) -> Result<Vec<&str>, String> {
    let fix = "must be a list of strings, like [\"a\", \"b\"]";
    let toml::Value::Array(items) = value else {
        return Err(format!("is {value}: {fix}"));
    };
    items
        .iter()
        .map(|v| v.as_str().ok_or_else(|| format!("holds {v}: {fix}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::{parse, Payload, Text};
    use rand::{Rng, SeedableRng};

    const ISSUE_EXAMPLE: &str = r#"
[[rule]]
id = "invoice"
severity = "warn"                 # info | warn | critical
keywords = ["发票", "invoice"]     # case-insensitive substring match
regex = ['\d{6}(19|20)\d{2}']    # optional
msgtypes = ["text", "mixed"]      # optional; default: every type that carries text
scope = "any"                     # any | external | internal
"#;

    fn set(toml: &str) -> RuleSet {
        RuleSet::parse(toml, "rules.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn refused(toml: &str) -> String {
        RuleSet::parse(toml, "rules.toml").unwrap_err().to_string()
    }

    fn text(from: &str, to: &str, content: &str) -> ChatMessage {
        ChatMessage {
            msgid: "m1".into(),
            action: "send".into(),
            from: Some(from.into()),
            tolist: vec![to.into()],
            roomid: None,
            msgtime: Some(1),
            msgtype: "text".into(),
            payload: Payload::Text(Text {
                content: Some(content.into()),
            }),
        }
    }

    fn fixture(name: &str) -> ChatMessage {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/messages")
            .join(format!("{name}.json"));
        parse(&std::fs::read(path).unwrap()).unwrap()
    }

    /// (rule id, terms) of every rule that fires.
    fn fired(set: &RuleSet, msg: &ChatMessage) -> Vec<(String, Vec<String>)> {
        set.match_message(msg)
            .into_iter()
            .map(|m| (m.rule.id.clone(), m.terms))
            .collect()
    }

    fn ids(set: &RuleSet, msg: &ChatMessage) -> Vec<String> {
        fired(set, msg).into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn the_issue_example_parses() {
        let s = set(ISSUE_EXAMPLE);
        let r = &s.rules()[0];
        assert_eq!(r.id, "invoice");
        assert_eq!(r.severity, Severity::Warn);
        assert_eq!(r.keywords, ["发票", "invoice"]);
        assert_eq!(r.regex, [r"\d{6}(19|20)\d{2}"]);
        assert_eq!(
            r.msgtypes.as_deref(),
            Some(&["text".to_string(), "mixed".into()][..])
        );
        assert_eq!(r.scope, Scope::Any);
        assert_eq!(s.version().len(), 64);
        assert!(s.version().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(Severity::Critical > Severity::Warn && Severity::Warn > Severity::Info);
    }

    #[test]
    fn errors_name_the_file_the_rule_and_the_key_and_say_what_to_fix() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x']\n[[rule]]\nid='a'\nseverity='info'\nkeywords=['y']",
                &["rules.toml: rule \"a\": `id`", "#1 and #2", "rename"],
            ),
            (
                "[[rule]]\nid='idcard'\nseverity='warn'\nregex=['(\\d{6}']",
                &["rule \"idcard\": `regex` pattern '(\\d{6}' does not compile", "unclosed group"],
            ),
            (
                "[[rule]]\nid='a'\nseverity='high'\nkeywords=['x']",
                &["rule \"a\": `severity` is \"high\"", "\"info\", \"warn\", \"critical\""],
            ),
            (
                "[[rule]]\nid='a'\nseverity='warn'\nscope='customers'\nkeywords=['x']",
                &["rule \"a\": `scope` is \"customers\"", "\"any\", \"external\", \"internal\""],
            ),
            (
                "[[rule]]\nid='empty'\nseverity='warn'\nkeywords=[]",
                &["rule \"empty\": `keywords` and `regex` are both missing or empty", "add keywords"],
            ),
            (
                "[[rule]]\nid='a'\nseverity='warn'\nkeyword=['x']",
                &["rule \"a\": `keyword` is not a rule key", "id, severity, keywords"],
            ),
            ("[[rule]]\nid='a'\nkeywords=['x']", &["rule \"a\": `severity` is missing"]),
            ("[[rule]]\nseverity='warn'\nkeywords=['x']", &["rule #1: `id` is missing"]),
            ("[[rule]]\nid=''\nseverity='warn'\nkeywords=['x']", &["rule #1: `id` must be"]),
            (
                "[[rule]]\nid='a'\nseverity='warn'\nkeywords='x'",
                &["rule \"a\": `keywords` is \"x\": must be a list of strings"],
            ),
            (
                "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x', ' ']",
                &["`keywords` holds an empty keyword"],
            ),
            (
                "[[rule]]\nid='a'\nseverity='warn'\nregex=['a*']",
                &["`regex` pattern 'a*' matches the empty text"],
            ),
            (
                "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x']\nmsgtypes=['image']",
                &["`msgtypes` lists \"image\", whose messages carry no text"],
            ),
            (
                "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x']\nmsgtypes=[]",
                &["`msgtypes` is empty"],
            ),
            ("[rule]\nid='a'", &["rules.toml: `rule` must be an array of tables", "[[rule]]"]),
            ("rules=1", &["unknown top-level key `rules`"]),
            ("# nothing yet\n", &["rules.toml: no rules"]),
            ("[[rule]\nid=", &["rules.toml: not valid TOML"]),
        ];
        for (toml, wanted) in cases {
            let e = refused(toml);
            assert!(e.starts_with("rules.toml: "), "{e}");
            for w in *wanted {
                assert!(e.contains(w), "{toml:?}\n  error: {e}\n  wanted: {w}");
            }
        }
        let e = RuleSet::load(Path::new("/nonexistent/rules.toml")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot read rules file /nonexistent/rules.toml"));
    }

    #[test]
    fn the_version_changes_with_what_matches_and_only_with_that() {
        let base = set("[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x','Y']\n[[rule]]\nid='b'\nseverity='info'\nregex=['\\d+']");
        let same = set("# reordered, recased, described\n[[rule]]\nid='b'\nseverity='info'\nregex=['\\d+','\\d+']\ndescription='digits'\n[[rule]]\nid='a'\nkeywords=['y','X','x']\nseverity='warn'\nscope='any'");
        assert_eq!(base.version(), same.version());
        for changed in [
            "[[rule]]\nid='a'\nseverity='critical'\nkeywords=['x','Y']\n[[rule]]\nid='b'\nseverity='info'\nregex=['\\d+']",
            "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x','Y','z']\n[[rule]]\nid='b'\nseverity='info'\nregex=['\\d+']",
            "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x','Y']\nscope='external'\n[[rule]]\nid='b'\nseverity='info'\nregex=['\\d+']",
            "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x','Y']\nmsgtypes=['text']\n[[rule]]\nid='b'\nseverity='info'\nregex=['\\d+']",
            "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x','Y']\n[[rule]]\nid='c'\nseverity='info'\nregex=['\\d+']",
            "[[rule]]\nid='a'\nseverity='warn'\nkeywords=['x','Y']\n[[rule]]\nid='b'\nseverity='info'\nregex=['\\d{2}']",
        ] {
            assert_ne!(base.version(), set(changed).version(), "{changed}");
        }
    }

    #[test]
    fn chinese_keywords_match_texts_mixed_and_chatrecord_items() {
        let s = set("[[rule]]\nid='contract'\nseverity='warn'\nkeywords=['合同','下图','开会']");
        assert_eq!(
            fired(&s, &fixture("text")),
            [("contract".into(), vec!["合同".into()])]
        );
        assert_eq!(
            fired(&s, &fixture("mixed")),
            [("contract".into(), vec!["下图".into()])]
        );
        assert_eq!(
            fired(&s, &fixture("chatrecord")),
            [("contract".into(), vec!["开会".into()])]
        );
        assert!(fired(&s, &fixture("image")).is_empty());
        assert!(fired(&s, &fixture("link")).is_empty());
        let m = &s.match_message(&fixture("text"))[0];
        assert_eq!(m.snippet, "您好，合同已发您邮箱");
    }

    #[test]
    fn ascii_keywords_match_in_any_case_and_are_reported_as_written() {
        let s = set("[[rule]]\nid='inv'\nseverity='info'\nkeywords=['Invoice','PO-number']");
        let m = text("a", "b", "INVOICE and invoice, po-NUMBER attached");
        assert_eq!(
            fired(&s, &m),
            [("inv".into(), vec!["Invoice".into(), "PO-number".into()])]
        );
        assert!(fired(&s, &text("a", "b", "invoic e")).is_empty());
    }

    #[test]
    fn non_ascii_letters_with_case_are_folded_too() {
        let s = set("[[rule]]\nid='u'\nseverity='info'\nkeywords=['École','ПРИВЕТ','ＡＢＣ']");
        for t in ["ÉCOLE", "école", "привет", "ПриВет", "ａｂｃ", "xＡｂＣx"] {
            assert_eq!(ids(&s, &text("a", "b", t)), ["u"], "{t}");
        }
        assert!(ids(&s, &text("a", "b", "ecole")).is_empty());
    }

    #[test]
    fn overlapping_keywords_of_two_rules_both_fire() {
        let s = set(
            "[[rule]]\nid='a'\nseverity='info'\nkeywords=['发票','票据']\n\
             [[rule]]\nid='b'\nseverity='critical'\nkeywords=['开发票','发票']",
        );
        let got = fired(&s, &text("a", "b", "请开发票据"));
        assert_eq!(
            got,
            [
                ("a".into(), vec!["发票".into(), "票据".into()]),
                ("b".into(), vec!["开发票".into(), "发票".into()]),
            ]
        );
        // Each rule's snippet starts at its own first match.
        let m = s.match_message(&text("a", "b", "请开发票据"));
        assert_eq!(
            (m[0].snippet.as_str(), m[1].snippet.as_str()),
            ("请开发票据", "请开发票据")
        );
        assert_eq!(m[1].rule.severity, Severity::Critical);
    }

    #[test]
    fn a_regex_only_rule_reports_the_matched_text() {
        let s = set(ISSUE_EXAMPLE
            .replace("keywords = [\"发票\", \"invoice\"]", "")
            .as_str());
        let m = s.match_message(&text("a", "b", "身份证号 110101199003071234 请核对"));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].terms, ["1101011990"]);
        assert_eq!(m[0].snippet, "身份证号 110101199003071234 请核对");
        assert!(
            s.match_message(&text("a", "b", "身份证号 110101209903"))
                .len()
                == 1
        );
        assert!(s
            .match_message(&text("a", "b", "订单 1101011890"))
            .is_empty());
        // Regexes are case-sensitive unless they say so.
        let s = set("[[rule]]\nid='r'\nseverity='info'\nregex=['(?i)secret','Token']");
        assert_eq!(
            fired(&s, &text("a", "b", "SECRET token Token")),
            [("r".into(), vec!["SECRET".into(), "Token".into()])]
        );
    }

    #[test]
    fn msgtype_filters() {
        let s = set(
            "[[rule]]\nid='text_only'\nseverity='info'\nkeywords=['告警','合同']\nmsgtypes=['text']\n\
             [[rule]]\nid='every_type'\nseverity='info'\nkeywords=['告警','合同']",
        );
        assert_eq!(ids(&s, &fixture("text")), ["text_only", "every_type"]);
        assert_eq!(ids(&s, &fixture("markdown")), ["every_type"]);
        // A set whose only rule wants text skips other msgtypes before looking at their texts.
        let s = set("[[rule]]\nid='t'\nseverity='info'\nkeywords=['告警']\nmsgtypes=['text']");
        assert!(ids(&s, &fixture("markdown")).is_empty());
        // Unknown msgtypes may be named (their string values are texts).
        let s = set("[[rule]]\nid='s'\nseverity='info'\nkeywords=['聚餐']\nmsgtypes=['solitaire']");
        assert_eq!(ids(&s, &fixture("solitaire")), ["s"]);
    }

    #[test]
    fn scope_filters() {
        let s = set(
            "[[rule]]\nid='ext'\nseverity='info'\nkeywords=['price']\nscope='external'\n\
             [[rule]]\nid='int'\nseverity='info'\nkeywords=['price']\nscope='internal'\n\
             [[rule]]\nid='any'\nseverity='info'\nkeywords=['price']",
        );
        assert_eq!(
            ids(&s, &text("zhangsan", "wmCustomer", "the price")),
            ["ext", "any"]
        );
        assert_eq!(
            ids(&s, &text("woCustomer", "zhangsan", "the price")),
            ["ext", "any"]
        );
        assert_eq!(
            ids(&s, &text("zhangsan", "lisi", "the price")),
            ["int", "any"]
        );
        assert_eq!(
            ids(&s, &text("wbRobot", "lisi", "the price")),
            ["int", "any"]
        );
    }

    #[test]
    fn snippets_keep_thirty_characters_either_side_on_char_boundaries() {
        let s = set("[[rule]]\nid='k'\nseverity='info'\nkeywords=['关键词']");
        let before = "前".repeat(40);
        let after = "后\n".repeat(20);
        let m = s.match_message(&text("a", "b", &format!("{before}关键词{after}")));
        let want = format!("…{}关键词{}…", "前".repeat(30), "后 ".repeat(15));
        assert_eq!(m[0].snippet, want);
        let m = s.match_message(&text("a", "b", "关键词在开头"));
        assert_eq!(m[0].snippet, "关键词在开头");
        // The snippet is around the first match; later matches add nothing.
        let m = s.match_message(&text("a", "b", &format!("关键词{before}关键词")));
        assert_eq!(m[0].snippet, format!("关键词{}…", "前".repeat(30)));
        assert_eq!(m[0].terms, ["关键词"]);
    }

    #[test]
    fn the_documented_example_parses_and_a_rule_set_is_shared_by_threads() {
        let doc = include_str!("../../docs/compliance.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/compliance.md has a toml example");
        let s = set(example);
        assert_eq!(s.rules().len(), 2);
        assert_eq!(s.rules()[1].scope, Scope::External);
        let kickback = text("wmCustomer", "zhangsan", "给您5个点的返点，私下转账");
        assert_eq!(
            fired(&s, &kickback),
            [("kickback".into(), vec!["返点".into(), "私下转账".into()])]
        );
        fn shared<T: Send + Sync>() {}
        shared::<RuleSet>();
    }

    #[test]
    fn an_empty_set_matches_nothing() {
        let s = RuleSet::empty();
        assert!(s.is_empty());
        assert!(s.match_message(&fixture("text")).is_empty());
        assert_eq!(s.version().len(), 64);
    }

    /// A random string over a small alphabet with ASCII and non-ASCII letters of both cases and Chinese.
    fn random_text(rng: &mut impl Rng, max: usize) -> String {
        const ALPHA: [char; 9] = ['a', 'A', 'b', 'B', '发', '票', 'é', 'É', ' '];
        (0..rng.gen_range(0..=max))
            .map(|_| ALPHA[rng.gen_range(0..ALPHA.len())])
            .collect()
    }

    #[test]
    fn property_matches_equal_a_brute_force_scan() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut fires = 0;
        for round in 0..300 {
            let mut toml = String::new();
            let mut rules: Vec<(String, Vec<String>)> = Vec::new();
            for r in 0..rng.gen_range(1..5) {
                let kws: Vec<String> = (0..rng.gen_range(1..4))
                    .map(|_| random_text(&mut rng, 3))
                    .filter(|k| !k.trim().is_empty())
                    .collect();
                if kws.is_empty() {
                    continue;
                }
                let list: Vec<String> = kws.iter().map(|k| format!("{k:?}")).collect();
                toml += &format!(
                    "[[rule]]\nid='r{r}'\nseverity='info'\nkeywords=[{}]\n",
                    list.join(",")
                );
                rules.push((format!("r{r}"), kws));
            }
            if rules.is_empty() {
                continue;
            }
            let s = set(&toml);
            for _ in 0..20 {
                let t = random_text(&mut rng, 12);
                let lower = t.to_lowercase();
                let want: Vec<(String, Vec<String>)> = rules
                    .iter()
                    .filter_map(|(id, kws)| {
                        let mut terms: Vec<String> = Vec::new();
                        for k in kws {
                            let dup = terms.iter().any(|x| x.to_lowercase() == k.to_lowercase());
                            let seen_earlier = kws
                                .iter()
                                .take_while(|x| !std::ptr::eq(*x, k))
                                .any(|x| x.to_lowercase() == k.to_lowercase());
                            if lower.contains(&k.to_lowercase()) && !dup && !seen_earlier {
                                terms.push(k.clone());
                            }
                        }
                        (!terms.is_empty()).then(|| (id.clone(), terms))
                    })
                    .collect();
                let mut got = fired(&s, &text("a", "b", &t));
                for (_, terms) in &mut got {
                    terms.sort();
                }
                let mut want = want;
                for (_, terms) in &mut want {
                    terms.sort();
                }
                assert_eq!(got, want, "round {round}: text {t:?}\n{toml}");
                fires += got.len();
            }
        }
        // The alphabet is small enough that rules fire often, in every case combination.
        assert!(fires > 1000, "{fires}");
    }
}
