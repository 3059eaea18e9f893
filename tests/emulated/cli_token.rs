//! The `token`, `permit-users` and `check-agree` commands, run as the real binary against the
//! emulator started in this test process.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use crate::common::*;
use wecom_archive::auth::providers::GETTOKEN_PATH;
use wecom_archive::clock::{Clock, ManualClock, SystemClock};
use wecom_archive::emulator::Emulator;

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
            .args(&args)
            .env("WECOM_ARCHIVE_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn write_config(dir: &Path, base_url: &str, secret: &str) -> String {
    let secret_path = dir.join("archive.secret");
    std::fs::write(&secret_path, format!("{secret}\n")).unwrap();
    let cfg = format!(
        "api_base = \"{base_url}\"\ntoken_store = \"{}\"\ntimeout_secs = 10\n\n\
         [app]\ncorpid = \"{CORP}\"\nagentid = \"archive\"\nsecret_file = \"{}\"\n",
        dir.join("tokens.json").display(),
        secret_path.display()
    );
    let path = dir.join("auth.toml");
    std::fs::write(&path, cfg).unwrap();
    path.display().to_string()
}

async fn start() -> Emulator {
    // The binary runs on the system clock; the emulator's manual clock starts at the same time.
    let clock = Arc::new(ManualClock::new(SystemClock.now_unix()));
    Emulator::start(world(), clock).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_masked_token_and_reuses_the_store() {
    let emu = start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), ARCHIVE_SECRET);

    let out = run(vec!["token".into(), "--config".into(), cfg.clone()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("kind:       corp access_token"), "{stdout}");
    assert!(
        stdout.contains(&format!("corp:       {CORP} (app archive)")),
        "{stdout}"
    );
    assert!(stdout.contains("token:      emuA… (masked)"), "{stdout}");
    assert!(
        stdout.contains("(in 7200 s)") || stdout.contains("(in 7199 s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("source:     fetched from WeCom"),
        "{stdout}"
    );
    assert_eq!(emu.calls(GETTOKEN_PATH), 1);

    // The full token is in the 0600 store file, and nowhere in the output.
    let store = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
    let full: serde_json::Value = serde_json::from_str(&store).unwrap();
    let token = full.as_object().unwrap().values().next().unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.len() > 8);
    for text in [&stdout, &stderr] {
        assert!(!text.contains(&token), "token leaked: {text}");
        assert!(!text.contains(ARCHIVE_SECRET), "secret leaked: {text}");
    }

    // A second process finds the token in the store: no new upstream request.
    let out = run(vec!["token".into(), "--config".into(), cfg]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("source:     token store"), "{stdout}");
    assert_eq!(emu.calls(GETTOKEN_PATH), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_a_bad_secret_fails_with_a_hint_and_no_secret() {
    let emu = start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "bad-secret-value-42");
    let out = run(vec!["token".into(), "--config".into(), cfg]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(stderr.contains("errcode 40001"), "{stderr}");
    assert!(
        stderr.contains(&format!("check the secret for corp {CORP} app archive")),
        "{stderr}"
    );
    assert!(!stderr.contains("bad-secret-value-42"), "{stderr}");
    assert_eq!(emu.calls(GETTOKEN_PATH), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permit_users_and_check_agree_print_results() {
    let emu = start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), ARCHIVE_SECRET);

    let out = run(vec![
        "permit-users".into(),
        "--config".into(),
        cfg.clone(),
        "--type".into(),
        "3".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "wangwu\n");

    let out = run(vec![
        "check-agree".into(),
        "--config".into(),
        cfg.clone(),
        "--pair".into(),
        "zhangsan:wmAgree01".into(),
        "--pair".into(),
        "zhangsan:wmDisagree01".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "zhangsan\twmAgree01\tAgree\t1562766651\nzhangsan\twmDisagree01\tDisagree\t1562766651\n"
    );

    let out = run(vec![
        "check-agree".into(),
        "--config".into(),
        cfg,
        "--room".into(),
        "wrRoom01".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-\twmAgree01\tAgree\t1562766651\n-\twmDisagree01\tDisagree\t1562766651\n"
    );
    // Three processes, one token: the store carried it across.
    assert_eq!(emu.calls(GETTOKEN_PATH), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_kinds_suite_provider_and_authcorp() {
    let emu = start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, value) in [
        ("suite.secret", SUITE_SECRET),
        ("suite.ticket", TICKET),
        ("provider.secret", PROVIDER_SECRET),
        ("client.code", PERMANENT_CODE),
    ] {
        std::fs::write(d.join(name), value).unwrap();
    }
    let cfg = format!(
        "api_base = \"{}\"\n\n\
         [suite]\nsuite_id = \"{SUITE}\"\nsecret_file = \"{}\"\nticket_file = \"{}\"\n\n\
         [provider]\ncorpid = \"{PROVIDER}\"\nsecret_file = \"{}\"\n\n\
         [[authcorp]]\ncorpid = \"{AUTH_CORP}\"\npermanent_code_file = \"{}\"\n",
        emu.base_url(),
        d.join("suite.secret").display(),
        d.join("suite.ticket").display(),
        d.join("provider.secret").display(),
        d.join("client.code").display(),
    );
    let path = d.join("auth.toml");
    std::fs::write(&path, cfg).unwrap();
    let path = path.display().to_string();

    let cases = [
        ("suite", "suite_access_token", SUITE.to_owned(), "emuS…"),
        (
            "provider",
            "provider_access_token",
            PROVIDER.to_owned(),
            "emuP…",
        ),
        (
            "authcorp",
            "authorized-corp access_token",
            format!("{AUTH_CORP} (suite {SUITE})"),
            "emuA…",
        ),
    ];
    for (kind, label, who, masked) in cases {
        let out = run(vec![
            "token".into(),
            "--config".into(),
            path.clone(),
            "--kind".into(),
            kind.into(),
        ])
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{kind}: {stdout}\n{stderr}");
        assert!(stdout.contains(&format!("kind:       {label}")), "{stdout}");
        assert!(stdout.contains(&format!("corp:       {who}")), "{stdout}");
        assert!(
            stdout.contains(&format!("token:      {masked} (masked)")),
            "{stdout}"
        );
        for secret in [SUITE_SECRET, TICKET, PROVIDER_SECRET, PERMANENT_CODE] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret));
        }
    }
    assert_eq!(emu.calls("/cgi-bin/service/get_provider_token"), 1);
    assert_eq!(emu.calls("/cgi-bin/service/get_corp_token"), 1);
    // No token store configured: each process fetched its own suite token.
    assert_eq!(emu.calls("/cgi-bin/service/get_suite_token"), 2);
}
