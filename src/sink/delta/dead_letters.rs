//! The `dead_letters` Delta table: one row per record that could not become a message row, with
//! its error and its raw input, in the same columns as a dead-letter file's JSON lines.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::sink::dead_letter::DeadLetter;

/// The table's columns (`corp_id` is the partition column, kept out of the files).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, true),
        Field::new("msgid", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("error_kind", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        // The encrypted record as JSON, or the raw input when it did not parse as a record.
        Field::new("record", DataType::Utf8, true),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// Rows of dead letters, built up between commits.
#[derive(Default)]
pub struct DeadLetterRows {
    seq: Int64Builder,
    msgid: StringBuilder,
    line: Int64Builder,
    error_kind: StringBuilder,
    error: StringBuilder,
    record: StringBuilder,
    time: TimestampMicrosecondBuilder,
    rows: usize,
    /// Lowest and highest seq of the rows.
    pub seqs: Option<(u64, u64)>,
}

impl DeadLetterRows {
    /// Adds one dead letter.
    pub fn push(&mut self, d: &DeadLetter<'_>) {
        self.seq.append_option(d.seq.map(|s| s as i64));
        self.msgid.append_option(d.msgid);
        self.line.append_option(d.line.map(|l| l as i64));
        self.error_kind.append_value(d.error_kind);
        self.error.append_value(&d.error);
        let record = match (d.record, d.raw_input) {
            (Some(r), _) => serde_json::to_string(r).ok(),
            (None, Some(raw)) => Some(raw.to_owned()),
            (None, None) => None,
        };
        self.record.append_option(record);
        self.time
            .append_value(jiff::Timestamp::now().as_microsecond());
        self.rows += 1;
        if let Some(s) = d.seq {
            self.seqs = Some(self.seqs.map_or((s, s), |(a, z)| (a.min(s), z.max(s))));
        }
    }

    /// True when no row was added since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows as a batch; the builder starts over.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.seq.finish()),
            Arc::new(self.msgid.finish()),
            Arc::new(self.line.finish()),
            Arc::new(self.error_kind.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.record.finish()),
            Arc::new(self.time.finish().with_timezone("UTC")),
        ];
        self.rows = 0;
        self.seqs = None;
        RecordBatch::try_new(schema(), columns).expect("columns match the schema")
    }
}
