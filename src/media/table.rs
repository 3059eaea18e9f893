//! The media table: one row per reference from a message to a media file, with where the file
//! is and how its download went, so that a query can join messages to files on `msgid`/`seq`.
//! Written whole after every media run as `media_files/corp_id=<corp>/media_files.parquet` (its
//! own table root, see [`layout`]), replacing the previous one atomically; with Delta output, as
//! the corp's partition of the `media_files` table, replaced in one commit ([`super::run_corp`];
//! the Delta tables take this schema from here, so this file does not depend on them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;

use crate::sink::atomic::AtomicFile;
use crate::sink::layout;
use crate::sink::parquet::ParquetOptions;
use crate::state::MediaRefState;

/// The schema of the media table.
pub fn media_schema() -> SchemaRef {
    let utf8 = |n: &str, null| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        utf8("msgid", false),
        Field::new("seq", DataType::Int64, false),
        Field::new("item_index", DataType::Int32, true),
        utf8("sdkfileid", false),
        utf8("kind", false),
        utf8("status", false),
        utf8("md5", true),
        utf8("md5sum", true),
        utf8("path", true),
        Field::new("size", DataType::Int64, true),
        utf8("sha256", true),
        utf8("error", true),
    ]))
}

/// The rows as one Arrow batch.
pub fn media_batch(rows: &[MediaRefState]) -> RecordBatch {
    let s = |f: &dyn Fn(&MediaRefState) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        s(&|r| Some(&r.msgid)),
        // Signed, as in the messages table; seqs come from that table, so they fit.
        Arc::new(rows.iter().map(|r| r.seq as i64).collect::<Int64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.item_index.and_then(|i| i32::try_from(i).ok()))
                .collect::<Int32Array>(),
        ),
        s(&|r| Some(&r.file.sdkfileid)),
        s(&|r| Some(&r.file.kind)),
        s(&|r| Some(r.file.status.as_str())),
        s(&|r| r.file.md5_status.as_deref()),
        s(&|r| r.file.md5sum.as_deref()),
        s(&|r| r.file.path.as_deref()),
        Arc::new(
            rows.iter()
                .map(|r| r.file.size.and_then(|v| i64::try_from(v).ok()))
                .collect::<Int64Array>(),
        ),
        s(&|r| r.file.sha256.as_deref()),
        s(&|r| r.file.error.as_deref()),
    ];
    RecordBatch::try_new(media_schema(), columns).expect("columns match the schema")
}

/// Writes the media table of `corp_id` under the output root `out` (replacing the previous one);
/// returns its path.
pub fn write_table(out: &Path, corp_id: &str, rows: &[MediaRefState]) -> std::io::Result<PathBuf> {
    let dir = layout::corp_media_files(out, corp_id);
    crate::sink::atomic::create_dir_durable(&dir)?;
    let mut file = AtomicFile::create(&dir, "media", "parquet")?;
    let to_io = |e: parquet::errors::ParquetError| std::io::Error::other(e.to_string());
    let props = ParquetOptions::default()
        .writer_properties()
        .map_err(to_io)?;
    {
        let mut w =
            ArrowWriter::try_new(file.writer(), media_schema(), Some(props)).map_err(to_io)?;
        w.write(&media_batch(rows)).map_err(to_io)?;
        w.close().map_err(to_io)?;
    }
    file.commit(layout::MEDIA_FILES_FILE)
}
