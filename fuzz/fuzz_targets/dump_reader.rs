//! The dump reader (`source::file::DumpReader`): JSON Lines, pretty-printed pages, gzip, and
//! every way they can be damaged; the records it yields then go through the per-record
//! transform (unwrap, DecryptData, parse) with the test key, as `decrypt` does.
//!
//! The first byte picks how the bytes arrive: as a stream, as a file (gzip detected by its
//! magic), gzip-compressed, or gzip-compressed and cut short.
#![no_main]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::model::schema::ChatBatchBuilder;
use wecom_archive::pipeline::transform;
use wecom_archive::source::file::DumpReader;
use wecom_archive::source::Page;
use wecom_archive_fuzz::Input;

static KEYRING: LazyLock<Keyring> = LazyLock::new(|| {
    let mut k = Keyring::default();
    k.add_pem(1, include_bytes!("../../fixtures/rsa_test_priv.pem"))
        .expect("test key loads");
    k
});

/// One scratch file per fuzzing process.
static SCRATCH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("wecom-archive-fuzz-dump-{}", std::process::id()))
});

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("in memory");
    gz.finish().expect("in memory")
}

fn open_file(bytes: &[u8]) -> DumpReader {
    std::fs::write(&*SCRATCH, bytes).expect("scratch file is writable");
    DumpReader::open(&SCRATCH).expect("scratch file opens")
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let reader = match mode % 4 {
        0 => {
            let bytes = input.rest().to_vec();
            DumpReader::from_reader(Box::new(std::io::Cursor::new(bytes)), Path::new("fuzz"))
        }
        1 => open_file(input.rest()),
        2 => open_file(&gzip(input.rest())),
        _ => {
            let cut = usize::from(input.byte());
            let gz = gzip(input.rest());
            open_file(&gz[..gz.len().saturating_sub(cut)])
        }
    };
    let decode = mode & 4 != 0;
    let mut page = Page::default();
    let mut builder = ChatBatchBuilder::default();
    let mut decoded = 0;
    for item in reader.take(100_000) {
        match item {
            Ok(Ok(rec)) => {
                let _ = format!("{rec:?}");
                // RSA is slow: decode a couple of records per input.
                if decode && decoded < 2 {
                    decoded += 1;
                    match transform::decode(&KEYRING, None, &rec) {
                        Ok(d) => builder.append(d.seq, d.publickey_ver, &d.plaintext, &d.message),
                        Err(e) => {
                            let _ = (e.to_string(), e.kind.name());
                        }
                    }
                }
                page.items.push(Ok(rec));
            }
            Ok(Err(rejected)) => {
                let _ = (rejected.error.to_string(), rejected.error.kind.name());
                page.items.push(Err(rejected));
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
    let _ = page.next_cursor(0);
    let rows = builder.len();
    assert_eq!(builder.finish().num_rows(), rows);
});
