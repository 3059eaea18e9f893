//! The media chunk loop against a fake `GetMediaData` with injected failures: network errors
//! mid-file, a crash between chunks, corrupted chunks, a bad sdkfileid, a wrong md5sum. Every
//! file must end complete and verified (or recorded as failed or mismatched), and no partial
//! file may ever sit under a final name.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wecom_archive::media::{
    ChunkError, DownloadOptions, Downloader, Md5Check, MediaChunk, MediaSource, Outcome,
};
use wecom_archive::source::media::{md5_hex, range_start, serve_chunk};
use wecom_archive::state::{MediaStatus, NewMediaRef, StateStore};

const CORP: &str = "wwmedia";
const CHUNK: usize = 1000;

#[derive(Clone, Copy)]
enum Fault {
    /// Answer this SDK code.
    Code(i32),
    /// Serve the chunk with one byte flipped.
    Corrupt,
    /// Die (the process is killed between two chunks).
    Crash,
}

/// A fault for (sdkfileid, chunk offset), to inject this many more times.
type Injected = (String, u64, Fault, u32);

/// A fake `GetMediaData`: serves `files` in `CHUNK`-byte pieces with `Range` tokens, and injects
/// `faults` keyed by (sdkfileid, chunk offset), each a number of times.
#[derive(Clone, Default)]
struct Fake {
    files: HashMap<String, Vec<u8>>,
    faults: Arc<Mutex<Vec<Injected>>>,
    /// Every request: (sdkfileid, offset asked for).
    log: Arc<Mutex<Vec<(String, u64)>>>,
}

impl Fake {
    fn fault(&self, id: &str, chunk_index: u64, fault: Fault, times: u32) {
        self.faults
            .lock()
            .unwrap()
            .push((id.to_owned(), chunk_index * CHUNK as u64, fault, times));
    }

    fn requests(&self, id: &str) -> Vec<u64> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(i, _)| i == id)
            .map(|(_, o)| *o)
            .collect()
    }
}

impl MediaSource for Fake {
    fn describe(&self) -> String {
        "fake".into()
    }

    fn chunk(&mut self, sdkfileid: &str, indexbuf: &str) -> Result<MediaChunk, ChunkError> {
        let start = range_start(indexbuf).unwrap_or(0);
        self.log.lock().unwrap().push((sdkfileid.to_owned(), start));
        let Some(content) = self.files.get(sdkfileid) else {
            return Err(ChunkError::Sdk { code: 10005 });
        };
        let mut fault = None;
        for (id, at, f, times) in self.faults.lock().unwrap().iter_mut() {
            if id == sdkfileid && *at == start && *times > 0 {
                *times -= 1;
                fault = Some(*f);
                break;
            }
        }
        match fault {
            Some(Fault::Code(code)) => Err(ChunkError::Sdk { code }),
            Some(Fault::Crash) => panic!("simulated crash before chunk at {start}"),
            Some(Fault::Corrupt) => {
                let mut c = serve_chunk(content, CHUNK, indexbuf)?;
                c.data[0] ^= 0xff;
                Ok(c)
            }
            None => serve_chunk(content, CHUNK, indexbuf),
        }
    }
}

fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

struct Env {
    _dir: tempfile::TempDir,
    /// The output root.
    out: std::path::PathBuf,
    /// `CORP`'s media folder in it.
    corp_media: std::path::PathBuf,
    state: std::path::PathBuf,
    fake: Fake,
}

/// Registers `files` (id, content, md5sum announced) and a fake serving them.
fn env(files: &[(&str, Vec<u8>, Option<String>)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_owned();
    let corp_media = wecom_archive::sink::layout::corp_media(&out, CORP);
    let state = wecom_archive::sink::layout::state_path(&out);
    let mut store = StateStore::open(&state).unwrap();
    let refs: Vec<NewMediaRef> = files
        .iter()
        .enumerate()
        .map(|(i, (id, data, md5))| NewMediaRef {
            msgid: format!("msg{i}"),
            seq: i as u64 + 1,
            item_index: None,
            sdkfileid: id.to_string(),
            kind: "file".into(),
            ext: Some("pdf".into()),
            md5sum: md5.clone(),
            size: Some(data.len() as u64),
        })
        .collect();
    store.add_media_refs(CORP, &refs).unwrap();
    let fake = Fake {
        files: files
            .iter()
            .map(|(id, d, _)| (id.to_string(), d.clone()))
            .collect(),
        ..Fake::default()
    };
    Env {
        _dir: dir,
        out,
        corp_media,
        state,
        fake,
    }
}

fn file(id: &str, data: Vec<u8>) -> (&str, Vec<u8>, Option<String>) {
    let md5 = md5_hex(&data);
    (id, data, Some(md5))
}

fn options() -> DownloadOptions {
    DownloadOptions {
        max_attempts: 4,
        base_backoff: Duration::from_millis(100),
        max_mismatches: 3,
        ..DownloadOptions::default()
    }
}

/// Downloads `id` with a fresh state connection and a recording sleep.
fn download(env: &Env, id: &str) -> (Outcome, Vec<Duration>) {
    let store = StateStore::open(&env.state).unwrap();
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&sleeps);
    let mut dl = Downloader::new(CORP, &env.out, &store, options())
        .with_sleep(move |d| s.lock().unwrap().push(d));
    let mut fake = env.fake.clone();
    let out = dl.download(&mut fake, id).unwrap();
    let sleeps = sleeps.lock().unwrap().clone();
    (out, sleeps)
}

/// Every file under a final name is complete: its content hashes to its name, and it is one of
/// the files served, whole.
fn assert_final_files_complete(env: &Env) {
    let media = env.corp_media.clone();
    if !media.exists() {
        return;
    }
    for shard in std::fs::read_dir(&media).unwrap() {
        let shard = shard.unwrap();
        if shard.file_name() == ".partial" {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).unwrap() {
            let path = f.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let sha = aws_sha256(&bytes);
            assert_eq!(
                path.file_stem().unwrap().to_str().unwrap(),
                sha,
                "{path:?} is not named by its content"
            );
            assert!(
                env.fake.files.values().any(|c| *c == bytes),
                "{path:?} is not a complete served file"
            );
        }
    }
}

fn aws_sha256(b: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_done(env: &Env, out: &Outcome, id: &str, md5: Md5Check) {
    let Outcome::Done { path, size, md5: m } = out else {
        panic!("{id}: {out:?}");
    };
    assert_eq!(*m, md5, "{id}");
    let bytes = std::fs::read(env.out.join(path)).unwrap();
    assert_eq!(&bytes, &env.fake.files[id], "{id}");
    assert_eq!(*size, bytes.len() as u64);
    let st = StateStore::open(&env.state)
        .unwrap()
        .media_file(CORP, id)
        .unwrap()
        .unwrap();
    assert_eq!(st.status, MediaStatus::Done);
    assert_eq!(st.md5_status.as_deref(), Some(md5.as_str()));
    assert!(!wecom_archive::media::store::partial_path(&env.corp_media, id).exists());
    assert_final_files_complete(env);
}

#[test]
fn files_of_every_size_arrive_in_chunks_verified_and_content_addressed() {
    let env = env(&[
        file("small", content(1, 10)),
        file("exact", content(2, 3 * CHUNK)),
        file("big", content(3, 7 * CHUNK + 123)),
        file("empty", Vec::new()),
        // Same content as "big": stored once.
        file("big-again", content(3, 7 * CHUNK + 123)),
    ]);
    for id in ["small", "exact", "big", "empty", "big-again"] {
        let (out, sleeps) = download(&env, id);
        assert_done(&env, &out, id, Md5Check::Ok);
        assert!(sleeps.is_empty());
    }
    assert_eq!(
        env.fake.requests("big"),
        (0..8).map(|i| i * 1000).collect::<Vec<_>>()
    );
    assert_eq!(env.fake.requests("exact").len(), 3);
    let (a, _) = download(&env, "big");
    let (b, _) = download(&env, "big-again");
    assert_eq!(a, b, "same content, same path");
    // Done files are not fetched again.
    assert_eq!(env.fake.requests("big").len(), 8);
    let store = StateStore::open(&env.state).unwrap();
    let f = store.media_file(CORP, "big").unwrap().unwrap();
    assert!(f.path.unwrap().ends_with(".pdf"));
}

#[test]
fn network_errors_mid_file_are_retried_with_backoff() {
    let env = env(&[file("f", content(4, 5 * CHUNK))]);
    env.fake.fault("f", 2, Fault::Code(10001), 2);
    env.fake.fault("f", 4, Fault::Code(10003), 1);
    let (out, sleeps) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Ok);
    assert_eq!(sleeps.len(), 3);
    // Jittered exponential backoff: [50, 100], [100, 200] ms, then a fresh chunk's [50, 100].
    let ms: Vec<u64> = sleeps.iter().map(|d| d.as_millis() as u64).collect();
    assert!(
        (50..=100).contains(&ms[0]) && (100..=200).contains(&ms[1]),
        "{ms:?}"
    );
    assert!((50..=100).contains(&ms[2]), "{ms:?}");
    assert_eq!(
        env.fake.requests("f"),
        vec![0, 1000, 2000, 2000, 2000, 3000, 4000, 4000]
    );
}

#[test]
fn a_failed_run_keeps_its_chunks_and_the_next_run_resumes() {
    let env = env(&[file("f", content(5, 6 * CHUNK + 7))]);
    // More failures than attempts: this run gives up at chunk 3.
    env.fake.fault("f", 3, Fault::Code(10001), 4);
    let (out, sleeps) = download(&env, "f");
    assert!(
        matches!(&out, Outcome::Failed { permanent: false, error } if error.contains("10001")),
        "{out:?}"
    );
    assert_eq!(sleeps.len(), 3, "max_attempts bounds the retries");
    let store = StateStore::open(&env.state).unwrap();
    let st = store.media_file(CORP, "f").unwrap().unwrap();
    assert_eq!(
        (st.status, st.bytes_done, st.attempts),
        (MediaStatus::Failed, 3000, 1)
    );
    assert_eq!(st.indexbuf, "Range:bytes=3000-3999");
    assert!(
        !env.corp_media
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().file_name() != ".partial" }),
        "nothing under a final name"
    );
    let before = env.fake.requests("f").len();
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Ok);
    assert_eq!(env.fake.requests("f")[before..], [3000, 4000, 5000, 6000]);
}

#[test]
fn a_crash_between_chunks_resumes_from_the_last_good_chunk() {
    let env = env(&[file("f", content(6, 5 * CHUNK + 500))]);
    env.fake.fault("f", 3, Fault::Crash, 1);
    let crashed = std::panic::catch_unwind(AssertUnwindSafe(|| download(&env, "f")));
    assert!(crashed.is_err());
    let tmp = wecom_archive::media::store::partial_path(&env.corp_media, "f");
    assert_eq!(std::fs::metadata(&tmp).unwrap().len(), 3000);
    // The crash also hit after a chunk was written but before its progress was recorded:
    // stray bytes past the recorded length.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&tmp)
        .unwrap()
        .write_all(&[0xAA; 700])
        .unwrap();
    assert_final_files_complete(&env);
    let before = env.fake.requests("f").len();
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Ok);
    assert_eq!(env.fake.requests("f")[before..], [3000, 4000, 5000]);
}

#[test]
fn a_lost_partial_file_restarts_from_scratch() {
    let env = env(&[file("f", content(7, 4 * CHUNK))]);
    env.fake.fault("f", 2, Fault::Crash, 1);
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| download(&env, "f")));
    std::fs::remove_file(wecom_archive::media::store::partial_path(
        &env.corp_media,
        "f",
    ))
    .unwrap();
    let before = env.fake.requests("f").len();
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Ok);
    assert_eq!(env.fake.requests("f")[before..], [0, 1000, 2000, 3000]);
}

#[test]
fn a_corrupted_chunk_is_caught_by_md5_and_the_file_fetched_again() {
    let env = env(&[file("f", content(8, 4 * CHUNK))]);
    env.fake.fault("f", 1, Fault::Corrupt, 1);
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Ok);
    assert_eq!(
        env.fake.requests("f"),
        [0, 1000, 2000, 3000, 0, 1000, 2000, 3000]
    );
    let st = StateStore::open(&env.state)
        .unwrap()
        .media_file(CORP, "f")
        .unwrap()
        .unwrap();
    assert_eq!(st.mismatches, 1);
}

#[test]
fn a_persistent_md5_mismatch_is_recorded_after_bounded_retries() {
    let data = content(9, 2 * CHUNK + 1);
    let env = env(&[("f", data, Some("0123456789abcdef0123456789abcdef".into()))]);
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Mismatch);
    // max_mismatches = 3 complete downloads of 3 chunks, then no more.
    assert_eq!(env.fake.requests("f").len(), 9);
    let _ = download(&env, "f");
    assert_eq!(env.fake.requests("f").len(), 9);
}

#[test]
fn a_missing_md5sum_is_recorded_as_absent() {
    let env = env(&[
        ("f", content(10, 1500), None),
        ("g", content(11, 10), Some(String::new())),
    ]);
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Absent);
    let (out, _) = download(&env, "g");
    assert_done(&env, &out, "g", Md5Check::Absent);
}

#[test]
fn a_bad_sdkfileid_fails_for_good() {
    let env = env(&[file("f", content(12, 10))]);
    let mut env = env;
    env.fake.files.clear();
    let (out, sleeps) = download(&env, "f");
    assert!(
        matches!(&out, Outcome::Failed { permanent: true, error } if error.contains("10005")),
        "{out:?}"
    );
    assert!(sleeps.is_empty(), "10005 is not retried");
    let (out, _) = download(&env, "f");
    assert!(matches!(
        out,
        Outcome::Failed {
            permanent: true,
            ..
        }
    ));
    assert_eq!(env.fake.requests("f").len(), 1, "never asked again");
    let st = StateStore::open(&env.state)
        .unwrap()
        .media_file(CORP, "f")
        .unwrap()
        .unwrap();
    assert_eq!(st.status, MediaStatus::Permanent);
    assert!(
        !env.corp_media.exists() || {
            let shards: Vec<_> = std::fs::read_dir(&env.corp_media).unwrap().collect();
            shards
                .iter()
                .all(|e| e.as_ref().unwrap().file_name() == ".partial")
        }
    );
}

#[test]
fn many_faults_across_many_files_end_verified_or_failed() {
    let files: Vec<_> = (0..12u8)
        .map(|i| (format!("f{i}"), content(i, 300 * i as usize + 999)))
        .collect();
    let specs: Vec<_> = files
        .iter()
        .map(|(id, d)| (id.as_str(), d.clone(), Some(md5_hex(d))))
        .collect();
    let env = env(&specs);
    env.fake.fault("f3", 1, Fault::Code(10002), 2);
    env.fake.fault("f5", 2, Fault::Corrupt, 1);
    env.fake.fault("f7", 1, Fault::Crash, 1);
    env.fake.fault("f9", 0, Fault::Code(10001), 10);
    for (id, _) in &files {
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| download(&env, id)));
    }
    // A second run picks up the crashed and the failed file.
    for (id, _) in &files {
        let (out, _) = download(&env, id);
        match id.as_str() {
            // Ten network errors in a row outlast two runs of four attempts.
            "f9" => assert!(matches!(
                out,
                Outcome::Failed {
                    permanent: false,
                    ..
                }
            )),
            _ => assert_done(&env, &out, id, Md5Check::Ok),
        }
    }
    assert_final_files_complete(&env);
    let (out, _) = download(&env, "f9");
    assert_done(&env, &out, "f9", Md5Check::Ok);
}

/// A source that cannot serve at all.
struct Broken;

impl MediaSource for Broken {
    fn describe(&self) -> String {
        "broken".into()
    }
    fn chunk(&mut self, _: &str, _: &str) -> Result<MediaChunk, ChunkError> {
        Err(ChunkError::Fatal("library missing".into()))
    }
}

#[test]
fn an_unusable_source_stops_the_run_naming_corp_and_file() {
    let env = env(&[file("f", content(13, 10))]);
    let store = StateStore::open(&env.state).unwrap();
    let mut dl = Downloader::new(CORP, &env.out, &store, options());
    let err = dl.download(&mut Broken, "f").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(CORP) && text.contains("f:") && text.contains("library missing"),
        "{text}"
    );
    // Not counted against the file: it is tried again once the source works.
    let st = store.media_file(CORP, "f").unwrap().unwrap();
    assert_eq!((st.status, st.attempts), (MediaStatus::Pending, 0));
}

/// Serves answers from a script, whatever is asked.
struct Scripted(Vec<MediaChunk>);

impl MediaSource for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn chunk(&mut self, _: &str, _: &str) -> Result<MediaChunk, ChunkError> {
        Ok(self.0.remove(0))
    }
}

fn chunk(data: &[u8], next: &str, is_finish: bool) -> MediaChunk {
    MediaChunk {
        data: data.to_vec(),
        next_index: next.into(),
        is_finish,
    }
}

#[test]
fn answers_that_would_loop_or_corrupt_fail_the_file_without_publishing() {
    let cases = [
        // Unfinished, but no token to continue with.
        vec![chunk(b"abc", "", false)],
        // The next range does not start where the bytes end.
        vec![chunk(b"abc", "Range:bytes=5-9", false)],
        // No data and the same token again.
        vec![
            chunk(b"abc", "Range:bytes=3-5", false),
            chunk(b"", "Range:bytes=3-5", false),
        ],
    ];
    for (i, script) in cases.into_iter().enumerate() {
        let env = env(&[file("f", content(14, 6))]);
        let store = StateStore::open(&env.state).unwrap();
        let mut dl = Downloader::new(CORP, &env.out, &store, options());
        let out = dl.download(&mut Scripted(script), "f").unwrap();
        assert!(
            matches!(
                &out,
                Outcome::Failed {
                    permanent: false,
                    ..
                }
            ),
            "case {i}: {out:?}"
        );
        assert_final_files_complete(&env);
        assert!(!env
            .corp_media
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().file_name() != ".partial" }));
    }
}

#[test]
fn a_stop_request_ends_between_chunks_and_the_next_run_resumes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = env(&[file("f", content(15, 5 * CHUNK))]);
    let stop = AtomicBool::new(false);
    let store = StateStore::open(&env.state).unwrap();
    let mut seen = 0;
    let mut dl = Downloader::new(CORP, &env.out, &store, options())
        .with_stop(&stop)
        .on_bytes(|_| {
            seen += 1;
            if seen == 2 {
                stop.store(true, Ordering::Relaxed);
            }
        });
    let mut fake = env.fake.clone();
    assert_eq!(dl.download(&mut fake, "f").unwrap(), Outcome::Interrupted);
    drop(dl);
    let st = store.media_file(CORP, "f").unwrap().unwrap();
    assert_eq!(
        (st.status, st.bytes_done, st.attempts),
        (MediaStatus::Downloading, 2000, 0)
    );
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Ok);
    assert_eq!(env.fake.requests("f"), [0, 1000, 2000, 3000, 4000]);
}

#[test]
fn one_media_run_per_corp_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let held = wecom_archive::media::lock_corp("ww1", out).unwrap();
    let err = wecom_archive::media::lock_corp("ww1", out).unwrap_err();
    assert!(err.to_string().contains("another media download"), "{err}");
    drop(held);
    wecom_archive::media::lock_corp("ww1", out).unwrap();
}

#[test]
fn a_crash_after_the_last_chunk_publishes_without_fetching_again() {
    let data = content(16, 2 * CHUNK + 5);
    let env = env(&[file("f", data.clone())]);
    // As a crash leaves it: every chunk durable and recorded, plus stray bytes, not published.
    let tmp = wecom_archive::media::store::partial_path(&env.corp_media, "f");
    std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    let mut on_disk = data.clone();
    on_disk.extend_from_slice(b"stray");
    std::fs::write(&tmp, &on_disk).unwrap();
    let store = StateStore::open(&env.state).unwrap();
    store
        .media_progress(CORP, "f", data.len() as u64, "", &tmp, true)
        .unwrap();
    assert_eq!(
        store.media_file(CORP, "f").unwrap().unwrap().status,
        MediaStatus::Complete
    );
    let (out, _) = download(&env, "f");
    assert_done(&env, &out, "f", Md5Check::Ok);
    assert!(env.fake.requests("f").is_empty(), "nothing fetched again");
}
