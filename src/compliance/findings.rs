//! The `findings` table: one row per message × rule that fired on it.
//!
//! Partitioned like `messages` (`corp_id=…/date=…`, the `date` of the message), so the corp is the
//! partition column and not a column of the files (engines refuse a name that is both). A row
//! records the rule-set version that produced it: `scan` under a new version adds rows, and a
//! query picks the version it wants.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    ArrayBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::rules::{RuleSet, Severity};
use crate::model::conversation::conversation_id;
use crate::model::message::ChatMessage;

/// Every column of [`findings_schema`], in order: `(name, Arrow type, meaning)`, for the README.
pub const COLUMNS_DOC: &[(&str, &str, &str)] = &[
    (
        "seq",
        "Int64 not null",
        "The message's seq (join key with `messages`, with the corp).",
    ),
    ("msgid", "Utf8 not null", "The message's id."),
    (
        "conversation_id",
        "Utf8 null",
        "The message's conversation (as in `messages`).",
    ),
    ("msgtime", "Timestamp(ms, UTC) null", "The message's time."),
    ("msgtype", "Utf8 not null", "The message's type."),
    ("from", "Utf8 null", "The sender."),
    (
        "rule_id",
        "Utf8 not null",
        "The rule that fired (`id` in rules.toml).",
    ),
    (
        "rule_set_version",
        "Utf8 not null",
        "SHA-256 of the normalized rule set that produced the row.",
    ),
    ("severity", "Utf8 not null", "`info`, `warn` or `critical`."),
    (
        "terms",
        "List<Utf8 not null> not null",
        "What matched, each once: keywords as written in the rule, texts a regex matched.",
    ),
    (
        "snippet",
        "Utf8 not null",
        "The first match with 30 characters either side.",
    ),
];

/// The Arrow schema of the findings table. Built once.
pub fn findings_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let utf8 = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
            Arc::new(Schema::new(vec![
                Field::new("seq", DataType::Int64, false),
                utf8("msgid", false),
                utf8("conversation_id", true),
                Field::new(
                    "msgtime",
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    true,
                ),
                utf8("msgtype", false),
                utf8("from", true),
                utf8("rule_id", false),
                utf8("rule_set_version", false),
                utf8("severity", false),
                Field::new("terms", DataType::List(terms_item()), false),
                utf8("snippet", false),
            ]))
        })
        .clone()
}

fn terms_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

/// One rule that fired on one message, owned, so that it can leave the parallel stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule's position in the rule set.
    pub rule_index: usize,
    /// The rule's severity.
    pub severity: Severity,
    /// What matched.
    pub terms: Vec<String>,
    /// The snippet around the first match.
    pub snippet: String,
}

/// The findings of `rules` on `msg` (empty, without allocating, when none fires).
pub fn screen(rules: &RuleSet, msg: &ChatMessage) -> Vec<Finding> {
    rules
        .match_message(msg)
        .into_iter()
        .map(|m| Finding {
            rule_index: m.rule_index,
            severity: m.rule.severity,
            terms: m.terms,
            snippet: m.snippet,
        })
        .collect()
}

/// Accumulates findings into record batches of [`findings_schema`].
#[derive(Debug)]
pub struct FindingsBatchBuilder {
    seq: Int64Builder,
    msgid: StringBuilder,
    conversation_id: StringBuilder,
    msgtime: TimestampMillisecondBuilder,
    msgtype: StringBuilder,
    from: StringBuilder,
    rule_id: StringBuilder,
    rule_set_version: StringBuilder,
    severity: StringBuilder,
    terms: ListBuilder<StringBuilder>,
    snippet: StringBuilder,
}

impl Default for FindingsBatchBuilder {
    fn default() -> Self {
        FindingsBatchBuilder {
            seq: Int64Builder::new(),
            msgid: StringBuilder::new(),
            conversation_id: StringBuilder::new(),
            msgtime: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            msgtype: StringBuilder::new(),
            from: StringBuilder::new(),
            rule_id: StringBuilder::new(),
            rule_set_version: StringBuilder::new(),
            severity: StringBuilder::new(),
            terms: ListBuilder::new(StringBuilder::new()).with_field(terms_item()),
            snippet: StringBuilder::new(),
        }
    }
}

impl FindingsBatchBuilder {
    /// Appends one row per finding of the message `msg` at `seq`.
    pub fn append(&mut self, rules: &RuleSet, seq: u64, msg: &ChatMessage, findings: &[Finding]) {
        if findings.is_empty() {
            return;
        }
        let conversation = conversation_id(msg);
        for f in findings {
            // Seqs above i64::MAX are dead letters before they get here (`pipeline::transform`).
            self.seq.append_value(seq as i64);
            self.msgid.append_value(&msg.msgid);
            self.conversation_id.append_option(conversation.as_deref());
            self.msgtime.append_option(msg.msgtime);
            self.msgtype.append_value(&msg.msgtype);
            self.from.append_option(msg.from.as_deref());
            self.rule_id.append_value(&rules.rules()[f.rule_index].id);
            self.rule_set_version.append_value(rules.version());
            self.severity.append_value(f.severity.as_str());
            for t in &f.terms {
                self.terms.values().append_value(t);
            }
            self.terms.append(true);
            self.snippet.append_value(&f.snippet);
        }
    }

    /// Rows appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.seq.len()
    }

    /// Whether no row was appended since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch of the rows so far; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.seq.finish()),
            Arc::new(self.msgid.finish()),
            Arc::new(self.conversation_id.finish()),
            Arc::new(self.msgtime.finish()),
            Arc::new(self.msgtype.finish()),
            Arc::new(self.from.finish()),
            Arc::new(self.rule_id.finish()),
            Arc::new(self.rule_set_version.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.terms.finish()),
            Arc::new(self.snippet.finish()),
        ];
        RecordBatch::try_new(findings_schema(), columns)
            .expect("FindingsBatchBuilder columns match findings_schema()")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::parse;

    #[test]
    fn columns_doc_matches_schema() {
        let schema = findings_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let doc: Vec<&str> = COLUMNS_DOC.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, doc);
    }

    #[test]
    fn one_row_per_rule_that_fired() {
        let rules = RuleSet::parse(
            r#"
            [[rule]]
            id = "invoice"
            severity = "warn"
            keywords = ["发票"]
            [[rule]]
            id = "money"
            severity = "critical"
            keywords = ["转账"]
            [[rule]]
            id = "never"
            severity = "info"
            keywords = ["nothing-like-this"]
            "#,
            "rules.toml",
        )
        .unwrap();
        let msg = parse(
            r#"{"msgid":"m1","action":"send","from":"wmX","tolist":["zhangsan"],"roomid":"","msgtime":1700000000000,"msgtype":"text","text":{"content":"请开发票，然后转账"}}"#
                .as_bytes(),
        )
        .unwrap();
        let found = screen(&rules, &msg);
        assert_eq!(found.len(), 2);
        let mut b = FindingsBatchBuilder::default();
        b.append(&rules, 7, &msg, &found);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 2);
        let col = |name: &str| {
            let c = batch.column_by_name(name).unwrap();
            (0..2)
                .map(|i| arrow_cast::display::array_value_to_string(c, i).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(col("rule_id"), ["invoice", "money"]);
        assert_eq!(col("severity"), ["warn", "critical"]);
        assert_eq!(col("conversation_id"), ["single:wmX:zhangsan"; 2]);
        assert_eq!(col("rule_set_version"), [rules.version(); 2]);
        assert_eq!(col("terms"), ["[发票]", "[转账]"]);
        assert!(b.is_empty());
    }
}
