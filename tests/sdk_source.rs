//! The `sdk` source against the real `libWeWorkFinanceSdk_C.so` (from the `wecom-audit` wheel;
//! `scripts/sdk-conformance.sh` fetches it and sets `WECOM_SDK`). Feature `sdk-oracle`.
//!
//! The SDK is only ever pointed at a closed loopback port as its proxy (`http://127.0.0.1:9`),
//! so no test reaches WeCom: every `GetChatData` fails with the SDK's network error 10001.
#![cfg(feature = "sdk-oracle")]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wecom_archive::config::Secret;
use wecom_archive::source::sdk::protocol::Response;
use wecom_archive::source::sdk::{SdkConfig, SdkError, SdkSource};
use wecom_archive::source::{Source, SourceError};

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const CLOSED_PROXY: &str = "http://127.0.0.1:9";

fn library() -> PathBuf {
    std::env::var_os("WECOM_SDK")
        .map(PathBuf::from)
        .expect("set WECOM_SDK to libWeWorkFinanceSdk_C.so (scripts/sdk-conformance.sh does)")
}

fn config(attempts: u32) -> SdkConfig {
    let mut c = SdkConfig::new(
        library(),
        "ww0123456789abcdef".into(),
        Secret::new("not-a-real-secret"),
    );
    c.worker_exe = BIN.into();
    c.proxy = CLOSED_PROXY.into();
    c.timeout_secs = 3;
    c.max_attempts = attempts;
    c.base_backoff = Duration::from_millis(100);
    c
}

fn recording_sleep() -> (
    Arc<Mutex<Vec<Duration>>>,
    impl FnMut(Duration) + Send + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    (log, move |d| l.lock().unwrap().push(d))
}

#[test]
fn network_error_is_retried_with_backoff_then_reported() {
    let (sleeps, sleep) = recording_sleep();
    let mut source = SdkSource::new(config(4)).with_sleep(sleep);
    let err = source.fetch(0, 1000).unwrap_err();
    match &err {
        SourceError::Sdk(SdkError::Code {
            code,
            call,
            corp_id,
        }) => {
            assert_eq!(
                (*code, *call, corp_id.as_str()),
                (10001, "GetChatData", "ww0123456789abcdef")
            );
        }
        other => panic!("expected SDK code 10001, got {other:?}"),
    }
    assert_eq!(source.retries, 3);
    let sleeps = sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 3);
    // Exponential with jitter in [half, full] of 100, 200, 400 ms.
    for (i, d) in sleeps.iter().enumerate() {
        let full = 100u64 << i;
        let ms = d.as_millis() as u64;
        assert!((full / 2..=full).contains(&ms), "sleep {i}: {ms} ms");
    }
    let text = err.to_string();
    assert!(
        text.contains("network error") && text.contains("proxy"),
        "{text}"
    );
    assert!(!text.contains("not-a-real-secret"));
}

#[test]
fn worker_speaks_the_protocol_and_reports_sdk_codes() {
    let mut child = Command::new(BIN)
        .args(["sdk-worker", "--library"])
        .arg(library())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut call = |req: &str| -> Response {
        writeln!(stdin, "{req}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    assert!(matches!(
        call(r#"{"op":"get_chat_data","seq":0,"limit":10,"proxy":"","passwd":"","timeout":3}"#),
        Response::Fatal { .. }
    ));
    assert!(matches!(
        call(r#"{"op":"init","corp_id":"ww0123456789abcdef","secret":"x"}"#),
        Response::Ok { .. }
    ));
    let req = format!(
        r#"{{"op":"get_chat_data","seq":0,"limit":10,"proxy":"{CLOSED_PROXY}","passwd":"","timeout":3}}"#
    );
    assert!(matches!(call(&req), Response::Code { code: 10001 }));
    // More than 1000 per call is a parameter error of the SDK itself.
    let req = format!(
        r#"{{"op":"get_chat_data","seq":0,"limit":1001,"proxy":"{CLOSED_PROXY}","passwd":"","timeout":3}}"#
    );
    assert!(matches!(call(&req), Response::Code { code: 10000 }));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_crashed_worker_costs_one_retry_not_the_run() {
    // A worker that segfaults on its first start, then runs the real one.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("crashed-once");
    let script = dir.path().join("worker.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ ! -e '{m}' ]; then touch '{m}'; kill -SEGV $$; fi\nexec '{BIN}' \"$@\"\n",
            m = marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &script,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let mut cfg = config(3);
    cfg.worker_exe = script;
    let (sleeps, sleep) = recording_sleep();
    let mut source = SdkSource::new(cfg).with_sleep(sleep);
    let err = source.fetch(0, 100).unwrap_err();
    assert!(marker.exists(), "the first worker ran");
    // After the crash, the next worker reached the real SDK (its network error, not a crash).
    assert!(
        matches!(err, SourceError::Sdk(SdkError::Code { code: 10001, .. })),
        "{err:?}"
    );
    assert_eq!(source.retries, 2);
    assert_eq!(sleeps.lock().unwrap().len(), 2);
}

#[test]
fn pull_cli_fails_clearly_on_network_error() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let cfg = dir.path().join("wecom-archive.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
out = "archive"
[sdk]
library = "{lib}"
proxy = "{CLOSED_PROXY}"
timeout_secs = 3
max_attempts = 2
[[corp]]
corp_id = "ww0123456789abcdef"
secret_env = "TEST_ARCHIVE_SECRET"
keys = {{ 1 = "{k1}" }}
"#,
            lib = library().display(),
            k1 = fixtures.join("rsa_test_priv.pem").display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["pull", "--once", "--config"])
        .arg(&cfg)
        .env("TEST_ARCHIVE_SECRET", "sekrit-do-not-print")
        .env_remove("WECOM_SDK")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("10001") && stderr.contains("network error"),
        "{stderr}"
    );
    assert!(stderr.contains("ww0123456789abcdef"), "{stderr}");
    assert!(!stderr.contains("sekrit"), "{stderr}");
    // Nothing was committed, and the failed run is in the history.
    let store = wecom_archive::state::StateStore::open(&wecom_archive::sink::layout::state_path(
        &dir.path().join("archive"),
    ))
    .unwrap();
    assert_eq!(store.checkpoint("ww0123456789abcdef").unwrap(), None);
    let runs = store.runs("ww0123456789abcdef", 5).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].outcome.contains("10001"), "{}", runs[0].outcome);
}

#[test]
fn worker_answers_get_media_data_with_sdk_codes() {
    let mut child = Command::new(BIN)
        .args(["sdk-worker", "--library"])
        .arg(library())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut call = |req: &str| -> Response {
        writeln!(stdin, "{req}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    assert!(matches!(
        call(
            r#"{"op":"get_media_data","sdkfileid":"x","indexbuf":"","proxy":"","passwd":"","timeout":3}"#
        ),
        Response::Fatal { .. }
    ));
    assert!(matches!(
        call(r#"{"op":"init","corp_id":"ww0123456789abcdef","secret":"x"}"#),
        Response::Ok { .. }
    ));
    // First chunk and a resumed (SDK v3 Range token) chunk: both reach the network layer and
    // fail there; the MediaData_t is freed every call, the worker stays up.
    for indexbuf in ["", "Range:bytes=524288-1048575"] {
        let req = format!(
            r#"{{"op":"get_media_data","sdkfileid":"CtYBMzA2OTAyabcdef","indexbuf":"{indexbuf}","proxy":"{CLOSED_PROXY}","passwd":"","timeout":3}}"#
        );
        match call(&req) {
            Response::Code { code } => assert_eq!(code, 10001, "{indexbuf:?}"),
            other => panic!("{indexbuf:?}: {other:?}"),
        }
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn media_download_through_the_sdk_retries_then_records_a_resumable_failure() {
    use wecom_archive::media::{DownloadOptions, Downloader, Outcome};
    use wecom_archive::state::{MediaStatus, NewMediaRef, StateStore};
    let dir = tempfile::tempdir().unwrap();
    let corp = "ww0123456789abcdef";
    let out = dir.path().to_owned();
    let corp_media = wecom_archive::sink::layout::corp_media(&out, corp);
    let mut store = StateStore::open(&dir.path().join("state.sqlite")).unwrap();
    store
        .add_media_refs(
            corp,
            &[NewMediaRef {
                msgid: "m1".into(),
                seq: 1,
                item_index: None,
                sdkfileid: "CtYBMzA2OTAyabcdef".into(),
                kind: "image".into(),
                ext: None,
                md5sum: Some("0123456789abcdef0123456789abcdef".into()),
                size: Some(1000),
            }],
        )
        .unwrap();
    let (sleeps, sleep) = recording_sleep();
    let mut source = SdkSource::new(config(1));
    let options = DownloadOptions {
        max_attempts: 3,
        base_backoff: Duration::from_millis(100),
        ..DownloadOptions::default()
    };
    let mut dl = Downloader::new(corp, &out, &store, options).with_sleep(sleep);
    let out = dl.download(&mut source, "CtYBMzA2OTAyabcdef").unwrap();
    match &out {
        Outcome::Failed { permanent, error } => {
            assert!(!permanent);
            assert!(
                error.contains("10001") && error.contains("network"),
                "{error}"
            );
            assert!(!error.contains("not-a-real-secret"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sleeps.lock().unwrap().len(), 2);
    let st = store
        .media_file(corp, "CtYBMzA2OTAyabcdef")
        .unwrap()
        .unwrap();
    assert_eq!((st.status, st.bytes_done), (MediaStatus::Failed, 0));
    // Nothing under a final name.
    let finals = walk_files(&corp_media)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".partial"))
        .count();
    assert_eq!(finals, 0);
}

fn walk_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walk_files(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
