//! The message model (`model::message::parse`) and the Arrow row it becomes
//! (`model::schema::ChatBatchBuilder`): any decrypted plaintext either fails with a typed
//! error or becomes exactly one row of the chat schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wecom_archive::model::message::{escape_control_chars, parse};
use wecom_archive::model::schema::{chat_schema, ChatBatchBuilder};

fuzz_target!(|data: &[u8]| {
    let _ = escape_control_chars(data);
    match parse(data) {
        Ok(msg) => {
            let media = msg.media();
            assert_eq!(media.len(), msg.media_count());
            let _ = (msg.payload.msgtype(), format!("{msg:?}"));
            let raw = String::from_utf8_lossy(data);
            let mut builder = ChatBatchBuilder::with_capacity(1);
            builder.append(1, 1, &raw, &msg);
            let batch = builder.finish();
            assert_eq!(batch.num_rows(), 1);
            assert_eq!(batch.schema(), chat_schema());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
