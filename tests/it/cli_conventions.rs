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
    &["compact"],
    &["scan"],
    &["status"],
    &[
        "export", "--corp", "wwcorp", "--user", "u", "--format", "html", "--to-dir", "x",
    ],
    &["alerts"],
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

// ---- errors -------------------------------------------------------------------------------

#[test]
fn an_error_chain_says_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let o = run(bin().arg("pull").arg("--config").arg(&missing));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let os_text = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
    assert_eq!(err.matches(&os_text).count(), 1, "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(line.contains(&missing.display().to_string()), "{line}");
    // The most specific cause last.
    assert!(line.ends_with(&os_text), "{line}");
}

// ---- interrupted runs ----------------------------------------------------------------------

/// Reads `child`'s stderr until a line contains `what`; returns the lines read. The rest of
/// stderr is drained on a thread so that the child never blocks on a full pipe.
fn wait_for_stderr(child: &mut std::process::Child, what: &str) -> Vec<String> {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let found = line.contains(what);
        seen.push(line);
        if found {
            std::thread::spawn(move || for _ in lines {});
            return seen;
        }
    }
    panic!("stderr ended before {what:?}: {seen:?}");
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            stdout(o),
            stderr(o)
        )
    })
}

fn inspect(dir: &Path) -> serde_json::Value {
    let o = run(bin().args(["inspect", "--json"]).arg(dir));
    assert!(o.status.success(), "{}", stderr(&o));
    json(&o)
}

/// A demo of many messages stopped by `signal` after its first progress line: exits 128 +
/// signal with what it read committed, and a second run resumes after that checkpoint with
/// nothing lost and nothing twice.
fn demo_stopped_by(signal: i32, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let mut child = bin()
        .args([
            "demo",
            "--json",
            "--messages",
            "200000",
            "--commit-every",
            "1000",
        ])
        .args(["--corrupt-every", "700", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_stderr(&mut child, "records=");
    unsafe { libc::kill(child.id() as i32, signal) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(128 + signal), "{}", o.status);
    let first = json(&o);
    assert_eq!(first["interrupted_by"], name);
    let checkpoint = first["checkpoint"].as_u64().expect("a commit happened");
    assert!(checkpoint > 0 && checkpoint < 200_000, "{first}");
    assert_eq!(
        first["written"].as_u64().unwrap() + first["dead_lettered"].as_u64().unwrap(),
        first["records_in"].as_u64().unwrap()
    );
    // Everything read was committed: the checkpoint is the last seq read.
    assert_eq!(first["records_in"].as_u64().unwrap(), checkpoint);
    assert_eq!(inspect(&out)["checkpoints"][0]["seq"], checkpoint);

    // The same archive, now ending a little after the checkpoint: the rest, and only the rest.
    let end = checkpoint + 1500;
    let o = run(bin()
        .args([
            "demo",
            "--json",
            "--commit-every",
            "1000",
            "--corrupt-every",
            "700",
        ])
        .args(["--messages", &end.to_string(), "--out"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("resuming after checkpoint {checkpoint}")),
        "{}",
        stderr(&o)
    );
    let second = json(&o);
    assert_eq!(second["records_in"], 1500);
    assert_eq!(second["checkpoint"], end);
    assert_eq!(second["interrupted_by"], serde_json::Value::Null);
    let inv = inspect(&out);
    assert_eq!(
        inv["rows"].as_u64().unwrap() + inv["dead_letters"].as_u64().unwrap(),
        end,
        "{inv}"
    );
    assert_eq!(inv["duplicate_seqs"].as_array().unwrap().len(), 0);
    assert_eq!(inv["gap_count"], 0);
    assert_eq!(inv["dead_letters"], end / 700);
}

#[test]
fn sigint_commits_exits_130_and_the_next_run_resumes() {
    demo_stopped_by(libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_commits_exits_143_and_the_next_run_resumes() {
    demo_stopped_by(libc::SIGTERM, "SIGTERM");
}

#[test]
fn decrypt_stopped_by_sigterm_writes_what_it_read_and_exits_143() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut child = bin()
        .args(["decrypt", "--json", "--input", "-", "--out"])
        .arg(dir.path().join("out"))
        .arg("--key")
        .arg(format!(
            "1={}",
            fixtures.join("rsa_test_priv.pem").display()
        ))
        .arg("--key")
        .arg(format!(
            "2={}",
            fixtures.join("rsa_test_v2_pkcs8.pem").display()
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The dump arrives, the input stays open: decrypt waits for more until stdin closes.
    let dump = std::fs::read(fixtures.join("sample_dump.jsonl")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&dump).unwrap();
    stdin.flush().unwrap();
    wait_for_stderr(&mut child, "decrypting");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", o.status);
    let s = json(&o);
    assert_eq!(s["interrupted_by"], "SIGTERM");
    // Whether the reading had begun when the signal came is up to the scheduler: all of the
    // dump or none of it, and exactly what the summary says.
    let written = s["written"].as_u64().unwrap();
    assert!(written == 0 || written == 35, "{s}");
    assert_eq!(inspect(&dir.path().join("out"))["rows"], written);
}

// ---- JSON ----------------------------------------------------------------------------------

#[test]
fn decrypt_json_reports_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = dir.path().join("out");
    let o = run(bin()
        .args(["decrypt", "--json", "--input"])
        .arg(fixtures.join("sample_dump.jsonl"))
        .arg("--key")
        .arg(format!(
            "1={}",
            fixtures.join("rsa_test_priv.pem").display()
        ))
        .arg("--key")
        .arg(format!(
            "2={}",
            fixtures.join("rsa_test_v2_pkcs8.pem").display()
        ))
        .arg("--out")
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json(&o);
    assert_eq!(s["corp_id"], serde_json::Value::Null);
    assert_eq!(s["records_in"], 37);
    assert_eq!(s["written"], 35);
    assert_eq!(s["dead_lettered"], 2);
    assert_eq!(s["seq_range"]["first"], 1001);
    assert_eq!(s["seq_range"]["last"], 1035);
    assert_eq!(s["checkpoint"], serde_json::Value::Null);
    assert!(s["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(s["elapsed_secs"].as_f64().unwrap() > 0.0);
    let files = s["files"].as_array().unwrap();
    let rows: u64 = files.iter().map(|f| f["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, 35);
    for f in files {
        assert!(Path::new(f["path"].as_str().unwrap()).is_file(), "{f}");
    }
    for f in s["dead_letter_files"].as_array().unwrap() {
        assert!(Path::new(f.as_str().unwrap()).is_file(), "{f}");
    }
    assert_eq!(inspect(&out)["rows"], 35);
    assert_eq!(inspect(&out)["dead_letters"], 2);
}

#[test]
fn demo_and_inspect_json_agree_with_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = run(bin()
        .args([
            "demo",
            "--json",
            "--messages",
            "2500",
            "--corrupt-every",
            "500",
        ])
        .args(["--commit-every", "1000", "--out"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json(&o);
    assert_eq!(s["corp_id"], "wwdemo0000000001");
    assert_eq!(s["records_in"], 2500);
    assert_eq!(s["dead_lettered"], 5);
    assert_eq!(s["written"], 2495);
    assert_eq!(s["checkpoint"], 2500);
    assert_eq!(s["commits"], 3);
    assert_eq!(s["seq_range"]["first"], 1);
    assert_eq!(s["seq_range"]["last"], 2499);
    let files = s["files"].as_array().unwrap();
    assert_eq!(
        files
            .iter()
            .map(|f| f["rows"].as_u64().unwrap())
            .sum::<u64>(),
        2495
    );
    let inv = inspect(&out);
    assert_eq!(inv["rows"], 2495);
    assert_eq!(inv["files"].as_u64().unwrap(), files.len() as u64);
    assert_eq!(inv["dead_letters"], 5);
    assert_eq!(inv["checkpoints"][0]["corp_id"], "wwdemo0000000001");
    assert_eq!(inv["checkpoints"][0]["seq"], 2500);
    assert_eq!(inv["checkpoints"][0]["runs"][0]["written"], 2495);
    let by_type: u64 = inv["msgtypes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_type, 2495);

    // Run again: nothing new, still one JSON document.
    let o = run(bin()
        .args(["demo", "--json", "--messages", "2500", "--out"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["records_in"], 0);
}

#[test]
fn bench_json_reports_its_figures() {
    let o = run(bin().args([
        "bench",
        "--json",
        "--messages",
        "300",
        "--rounds",
        "1",
        "--unwrap-secs",
        "0.05",
        "--skip-single",
        "--threads",
        "1",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json(&o);
    assert_eq!(s["cores"], 1);
    assert_eq!(s["backend"], "aws-lc");
    assert_eq!(s["rounds"].as_array().unwrap().len(), 1);
    assert_eq!(s["pipeline_all_cores"]["messages"], 300);
    assert!(s["raw_unwrap_ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(s["simulator_records_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(s["pipeline_one_core"], serde_json::Value::Null);
}

// ---- terminal habits -----------------------------------------------------------------------

#[test]
fn quiet_and_verbose_set_the_log_level_unless_the_environment_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let demo = |extra: &[&str], log: Option<&str>| {
        let mut c = bin();
        c.args(extra)
            .args([
                "demo",
                "--fresh",
                "--messages",
                "300",
                "--corrupt-every",
                "100",
                "--out",
            ])
            .arg(&out);
        if let Some(l) = log {
            c.env("WECOM_ARCHIVE_LOG", l);
        }
        let o = run(&mut c);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    let normal = demo(&[], None);
    assert!(
        normal.contains("WARN") && normal.contains("INFO"),
        "{normal}"
    );
    assert!(!normal.contains("DEBUG"), "{normal}");
    // Errors only: no warnings, no progress, no banner.
    assert_eq!(demo(&["-q"], None), "");
    assert!(demo(&["-v"], None).contains("DEBUG"));
    assert!(demo(&["-vv"], None).contains("DEBUG"));
    // The environment wins over -v.
    let env = demo(&["-v"], Some("warn"));
    assert!(
        env.contains("WARN") && !env.contains("DEBUG") && !env.contains("INFO"),
        "{env}"
    );
    let o = run(bin().args(["-q", "-v", "inspect"]).arg(dir.path()));
    assert_eq!(o.status.code(), Some(2));
}

/// Whether `text` holds an SGR (colour) escape.
fn has_colour(text: &str) -> bool {
    text.split("\x1b[").skip(1).any(|rest| {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
        end.is_some_and(|i| rest[i..].starts_with('m'))
    })
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let demo = format!(
        "{BIN} demo --fresh --messages 300 --corrupt-every 100 --out {}",
        out.display()
    );
    // A pipe: no colour.
    let o = run(bin()
        .args([
            "demo",
            "--fresh",
            "--messages",
            "300",
            "--corrupt-every",
            "100",
            "--out",
        ])
        .arg(&out));
    assert!(o.status.success());
    assert!(stderr(&o).contains("WARN") && !has_colour(&stderr(&o)));

    // A terminal (`script` gives the command a pseudo-terminal, and prints what it shows):
    // colour, unless NO_COLOR.
    let on_tty = |no_color: Option<&str>| {
        let mut s = Command::new("script");
        s.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TERM", "xterm")
            .args(["-qec", &demo, "/dev/null"]);
        if let Some(v) = no_color {
            s.env("NO_COLOR", v);
        }
        let o = s.output().expect("script(1) from util-linux");
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let coloured = on_tty(None);
    assert!(
        coloured.contains("WARN") && has_colour(&coloured),
        "{coloured:?}"
    );
    let plain = on_tty(Some("1"));
    assert!(plain.contains("WARN") && !has_colour(&plain), "{plain:?}");
    // An empty NO_COLOR does not count.
    assert!(has_colour(&on_tty(Some(""))));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    // decrypt waits for its input, so its reader is surely gone before it writes the summary.
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rsa_test_priv.pem");
    let mut child = bin()
        .args(["decrypt", "--input", "-", "--out"])
        .arg(dir.path().join("out"))
        .arg("--key")
        .arg(format!("1={}", key.display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{}", o.status);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // `inspect DIR | head -1`.
    let sh = format!("{BIN} inspect {} | head -1", dir.path().display());
    let o = run(Command::new("sh").args(["-c", &sh]));
    assert!(o.status.success());
    assert_eq!(stdout(&o).lines().count(), 1);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

// ---- completions, man, version, help -------------------------------------------------------

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = run(bin().args(["completions", shell]));
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for sub in ["demo", "retry-dead-letters", "inspect", "--config"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wecom-archive.bash");
    std::fs::write(&file, run(bin().args(["completions", "bash"])).stdout).unwrap();
    let o = run(Command::new("bash").arg("-n").arg(&file));
    assert!(o.status.success(), "bash -n: {}", stderr(&o));
}

#[test]
fn man_pages_in_roff() {
    let o = run(bin().arg("man"));
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH wecom-archive 1"), "{page}");
    for sub in [
        "demo",
        "pull",
        "decrypt",
        "retry\\-dead\\-letters",
        "completions",
    ] {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    let o = run(bin().args(["man", "pull"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(".TH wecom-archive-pull 1"));
    assert!(stdout(&o).contains(r"\fB\-\-config\fR"), "{}", stdout(&o));
    assert!(stdout(&o).contains("Examples:"), "{}", stdout(&o));
    let o = run(bin().args(["man", "nonsense"]));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn version_names_the_commit_in_a_checkout() {
    let o = run(bin().arg("--version"));
    assert!(o.status.success());
    let version = stdout(&o);
    assert!(version.starts_with("wecom-archive 0.1.0"), "{version}");
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        let commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
        assert_eq!(version.trim(), format!("wecom-archive 0.1.0 ({commit})"));
    }
}

/// The visible subcommands, as `--help` lists them.
fn subcommands() -> Vec<String> {
    let help = stdout(&run(bin().arg("--help")));
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_subcommand_help_ends_with_examples() {
    let subs = subcommands();
    assert!(subs.len() >= 13, "{subs:?}");
    assert!(!subs.contains(&"sdk-worker".to_string()));
    for sub in subs {
        for flag in ["-h", "--help"] {
            let o = run(bin().args([sub.as_str(), flag]));
            assert!(o.status.success(), "{sub}");
            let help = stdout(&o);
            let examples = help
                .split("Examples:\n")
                .nth(1)
                .unwrap_or_else(|| panic!("{sub} {flag} has no examples:\n{help}"));
            // Each line a command line, or the continuation of one.
            for line in examples.lines().map(str::trim).filter(|l| !l.is_empty()) {
                assert!(
                    line.contains("wecom-archive ") || line.starts_with('-'),
                    "{sub}: {line}"
                );
            }
        }
    }
}
