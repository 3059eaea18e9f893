//! The command-line conventions every subcommand follows, checked on the real binary: shared
//! arguments and their environment variables.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

/// The binary with none of its environment variables inherited from the test's environment.
fn bin() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "WECOM_ARCHIVE_CONFIG",
        "WECOM_ARCHIVE_THREADS",
        "WECOM_ARCHIVE_LOG",
        "NO_COLOR",
    ] {
        c.env_remove(var);
    }
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every command that takes a configuration, with the other arguments it requires.
const CONFIG_COMMANDS: &[&[&str]] = &[
    &["pull"],
    &["media"],
    &["serve"],
    &["token"],
    &["permit-users"],
    &["check-agree", "--room", "wrRoom01"],
    &["retry-dead-letters", "--corp", "wwcorp"],
];

#[test]
fn config_comes_from_the_flag_or_the_environment_on_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for args in CONFIG_COMMANDS {
        let from_env = dir.path().join(format!("env-{}.toml", args[0]));
        let o = run(bin().args(*args).env("WECOM_ARCHIVE_CONFIG", &from_env));
        assert!(!o.status.success(), "{args:?}");
        assert!(
            stderr(&o).contains(&from_env.display().to_string()),
            "{args:?} did not read WECOM_ARCHIVE_CONFIG: {}",
            stderr(&o)
        );

        // The flag wins over the environment.
        let from_flag = dir.path().join(format!("flag-{}.toml", args[0]));
        let o = run(bin()
            .args(*args)
            .arg("-c")
            .arg(&from_flag)
            .env("WECOM_ARCHIVE_CONFIG", &from_env));
        assert!(
            stderr(&o).contains(&from_flag.display().to_string()),
            "{args:?}: {}",
            stderr(&o)
        );

        // Neither: the default file name.
        let o = run(bin().args(*args).current_dir(dir.path()));
        assert!(
            stderr(&o).contains("wecom-archive.toml"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn retry_out_wins_over_a_config_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rsa_test_priv.pem");
    let o = run(bin()
        .args(["retry-dead-letters", "--corp", "wwcorp", "--out"])
        .arg(dir.path())
        .arg("--key")
        .arg(format!("1={}", key.display()))
        .env("WECOM_ARCHIVE_CONFIG", dir.path().join("absent.toml")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("no dead letters"), "{}", stdout(&o));

    // Both on the command line: a usage error.
    let o = run(bin()
        .args(["retry-dead-letters", "--corp", "wwcorp", "--out"])
        .arg(dir.path())
        .args(["--config", "x.toml"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--config"), "{}", stderr(&o));
}

#[test]
fn threads_only_on_commands_that_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        "demo",
        "pull",
        "decrypt",
        "retry-dead-letters",
        "bench",
        "serve",
    ] {
        let o = run(bin().args([cmd, "--help"]));
        assert!(stdout(&o).contains("--threads"), "{cmd} lacks --threads");
        assert!(stdout(&o).contains("WECOM_ARCHIVE_THREADS"), "{cmd}");
    }
    for cmd in ["inspect", "token", "media", "permit-users", "check-agree"] {
        let o = run(bin().args([cmd, "--help"]));
        assert!(o.status.success(), "{cmd}");
        assert!(!stdout(&o).contains("--threads"), "{cmd} shows --threads");
    }
    let o = run(bin().args(["inspect", "--threads", "2"]).arg(dir.path()));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--threads"), "{}", stderr(&o));

    // Honoured where it exists: the run says how many threads it used.
    let out = dir.path().join("demo");
    let o = run(bin()
        .args(["demo", "--messages", "300", "--out"])
        .arg(&out)
        .env("WECOM_ARCHIVE_THREADS", "1"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 threads"), "{}", stderr(&o));
    let o = run(bin()
        .args([
            "demo",
            "--fresh",
            "--threads",
            "2",
            "--messages",
            "300",
            "--out",
        ])
        .arg(&out)
        .env("WECOM_ARCHIVE_THREADS", "1"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 threads"), "{}", stderr(&o));
}
