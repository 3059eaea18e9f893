//! The media table: one row per reference from a message to a media file, with where the file
//! is and how its download went, so that a query can join messages to files on `msgid`/`seq`.
//! Written whole after every media run as `corp_id=<corp>/media_table/media.parquet`, replacing
//! the previous one atomically.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::sink::atomic::AtomicFile;
use crate::sink::layout;
use crate::state::MediaRefState;

/// The schema of the media table.
pub fn media_schema() -> SchemaRef {
    let utf8 = |n: &str, null| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        utf8("msgid", false),
        Field::new("seq", DataType::UInt64, false),
        Field::new("item_index", DataType::UInt32, true),
        utf8("sdkfileid", false),
        utf8("kind", false),
        utf8("status", false),
        utf8("md5", true),
        utf8("md5sum", true),
        utf8("path", true),
        Field::new("size", DataType::UInt64, true),
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
        Arc::new(rows.iter().map(|r| r.seq).collect::<UInt64Array>()),
        Arc::new(rows.iter().map(|r| r.item_index).collect::<UInt32Array>()),
        s(&|r| Some(&r.file.sdkfileid)),
        s(&|r| Some(&r.file.kind)),
        s(&|r| Some(r.file.status.as_str())),
        s(&|r| r.file.md5_status.as_deref()),
        s(&|r| r.file.md5sum.as_deref()),
        s(&|r| r.file.path.as_deref()),
        Arc::new(rows.iter().map(|r| r.file.size).collect::<UInt64Array>()),
        s(&|r| r.file.sha256.as_deref()),
        s(&|r| r.file.error.as_deref()),
    ];
    RecordBatch::try_new(media_schema(), columns).expect("columns match the schema")
}

/// Writes the media table of a corp (replacing the previous one); returns its path.
pub fn write_table(corp_dir: &Path, rows: &[MediaRefState]) -> std::io::Result<PathBuf> {
    let dir = corp_dir.join(layout::MEDIA_TABLE_DIR);
    std::fs::create_dir_all(&dir)?;
    let mut file = AtomicFile::create(&dir, "media", "parquet")?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .build();
    let to_io = |e: parquet::errors::ParquetError| std::io::Error::other(e.to_string());
    {
        let mut w =
            ArrowWriter::try_new(file.writer(), media_schema(), Some(props)).map_err(to_io)?;
        w.write(&media_batch(rows)).map_err(to_io)?;
        w.close().map_err(to_io)?;
    }
    file.commit(layout::MEDIA_TABLE_FILE)
}
