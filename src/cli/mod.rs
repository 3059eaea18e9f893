//! Command-line interface: one file per subcommand. Only this module knows about the terminal.
//!
//! The conventions every command follows (documented in `docs/cli.md`) live here and in
//! [`args`] and [`output`]: shared arguments, `--json`, `-q`/`-v`, colour, exit codes
//! (0 done, 1 failed, 2 usage, 3 `--strict` with dead letters, 130/143 stopped by
//! SIGINT/SIGTERM after committing), and an error printed once as one chain.

mod alerts;
mod args;
mod bench;
mod check_agree;
mod compact;
mod completions;
mod decrypt;
mod demo;
mod export;
mod inspect;
mod man;
mod media;
mod migrate;
mod output;
mod permit_users;
mod pull;
mod retry;
mod scan;
mod sdk_worker;
mod serve;
mod status;
mod token;
mod vacuum;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Turns the WeCom session archive (会话内容存档) into Parquet.
#[derive(Debug, Parser)]
#[command(
    name = "wecom-archive",
    version = env!("WECOM_ARCHIVE_VERSION"),
    about,
    long_about = None
)]
struct Cli {
    /// Log errors only, and show no progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// More log detail: -v debug, -vv trace (WECOM_ARCHIVE_LOG, when set, wins).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulated archive -> pipeline -> Parquet: the whole job, no WeCom account needed.
    #[command(after_help = "Examples:
  wecom-archive demo                                  # 20,000 messages into ./wecom-archive-demo
  wecom-archive demo --fresh --messages 200000 --json --out /tmp/demo")]
    Demo(demo::Args),
    /// Pull archived messages through the official SDK into Parquet, checkpointed.
    #[command(after_help = "Examples:
  WECOM_ARCHIVE_SECRET=… wecom-archive pull --config wecom-archive.toml --once
  wecom-archive pull --config wecom-archive.toml --follow      # poll until Ctrl-C / SIGTERM")]
    Pull(pull::Args),
    /// Decrypt a GetChatData dump (JSON or JSON Lines, plain or gzip) into Parquet.
    #[command(after_help = "Examples:
  wecom-archive decrypt --input fixtures/sample_dump.jsonl \\
    --key 1=fixtures/rsa_test_priv.pem --key 2=fixtures/rsa_test_v2_pkcs8.pem --out /tmp/sample
  wecom-archive decrypt -i - -k 1=fixtures/rsa_test_priv.pem -k 2=fixtures/rsa_test_v2_pkcs8.pem \\
    -o /tmp/sample --json < fixtures/sample_dump.jsonl")]
    Decrypt(decrypt::Args),
    /// Download the media files (images, voice, video, files, …) of pulled messages, resumable
    /// and md5-verified, and write the media table.
    #[command(after_help = "Examples:
  wecom-archive media --config wecom-archive.toml
  wecom-archive media --config wecom-archive.toml --corp ww0123456789abcdef --types image,file")]
    Media(media::Args),
    /// Re-run a corp's dead letters (e.g. after adding a missing key); recovered records become rows.
    #[command(after_help = "Examples:
  wecom-archive retry-dead-letters --config wecom-archive.toml --corp ww0123456789abcdef
  wecom-archive retry-dead-letters --config wecom-archive.toml --corp ww0123456789abcdef \\
    --key 3=keys/v3.pem                               # the key that was missing")]
    RetryDeadLetters(retry::Args),
    /// Merge each day's small Parquet files into files of about --target-file-mb, sorted by seq.
    #[command(after_help = "Examples:
  wecom-archive compact --config wecom-archive.toml
  wecom-archive compact --out wecom-archive-demo --before 2026-11-25 --target-file-mb 64 --json")]
    Compact(compact::Args),
    /// Delete the files of Delta tables that no commit references any more.
    #[command(after_help = "Examples:
  wecom-archive vacuum --out wecom-archive-demo --retain-hours 24
  wecom-archive vacuum --config wecom-archive.toml --json")]
    Vacuum(vacuum::Args),
    /// Export conversations as transcripts (HTML, CSV, JSON Lines) with a hash manifest and an
    /// audit entry.
    #[command(after_help = "Examples:
  wecom-archive export --out wecom-archive-demo --corp wwdemo0000000001 \\
    --conversation single:lisi:zhangsan --format html --to-dir /tmp/case-42
  wecom-archive export --config wecom-archive.toml --corp ww0123456789abcdef --user zhangsan \\
    --from 2026-11-01 --to 2026-11-30 --format csv --to-dir /tmp/case-43 --json")]
    Export(export::Args),
    /// Apply the rules to what is already archived, writing findings under the rule set's
    /// version; files already screened by that version are skipped.
    #[command(after_help = "Examples:
  wecom-archive scan --config wecom-archive.toml
  wecom-archive scan --out wecom-archive-demo --rules rules.toml --from 2026-11-01 --json")]
    Scan(scan::Args),
    /// Show what an output directory holds: counts, seq range, gaps, dead letters.
    #[command(after_help = "Examples:
  wecom-archive inspect wecom-archive-demo
  wecom-archive inspect --json wecom-archive-demo | jq .rows")]
    Inspect(inspect::Args),
    /// Show every configured corp: its lease holder (with a PostgreSQL state), checkpoint, lag,
    /// last run and dead letters.
    #[command(after_help = "Examples:
  wecom-archive status --config wecom-archive.toml
  wecom-archive status --config wecom-archive.toml --json | jq '.corps[] | select(.lease_holder)'")]
    Status(status::Args),
    /// Move an output tree written by an earlier release into the current layout (one root per
    /// table, signed columns), losing nothing; safe to run again after a crash.
    #[command(after_help = "Examples:
  wecom-archive migrate --out wecom-archive-demo
  wecom-archive migrate --config wecom-archive.toml --json")]
    Migrate(migrate::Args),
    /// Measure raw RSA unwrap and whole-pipeline throughput in one run.
    #[command(after_help = "Examples:
  wecom-archive bench
  wecom-archive bench --messages 50000 --rounds 1 --json")]
    Bench(bench::Args),
    /// Internal: host the official SDK in a child process (JSON lines on stdin/stdout).
    #[command(hide = true)]
    SdkWorker(sdk_worker::Args),
    /// Print the status of a WeCom token (masked) and its expiry, fetching it if needed.
    #[command(after_help = "Examples:
  wecom-archive token --config wecom-archive.toml
  wecom-archive token --config wecom-archive.toml --kind authcorp --corp ww0123456789abcdef")]
    Token(token::Args),
    /// List members with the session-archive licence (msgaudit/get_permit_user_list).
    #[command(after_help = "Examples:
  wecom-archive permit-users --config wecom-archive.toml
  wecom-archive permit-users --config wecom-archive.toml --type 3 | wc -l")]
    PermitUsers(permit_users::Args),
    /// Check whether external contacts agreed to archiving (check_single_agree / check_room_agree).
    #[command(after_help = "Examples:
  wecom-archive check-agree --config wecom-archive.toml --room wrXXXXXXXXXXXXXXXX
  wecom-archive check-agree --config wecom-archive.toml --pair zhangsan:wmXXXXXXXX")]
    CheckAgree(check_agree::Args),
    /// Show the alert outbox per webhook (pending, delivered, failed); --send delivers what is due.
    #[command(after_help = "Examples:
  wecom-archive alerts --config wecom-archive.toml
  wecom-archive alerts --config wecom-archive.toml --send --max-wait 60
  wecom-archive alerts --config wecom-archive.toml --retry-failed --send --json")]
    Alerts(alerts::Args),
    /// Receive WeCom callbacks (suite tickets, authorizations, msgaudit_notify) and pull on notify.
    #[command(after_help = "Examples:
  wecom-archive serve --config wecom-archive.toml
  WECOM_ARCHIVE_CONFIG=/etc/wecom-archive.toml wecom-archive serve -v")]
    Serve(serve::Args),
    /// Print a shell completion script on stdout.
    #[command(after_help = "Examples:
  wecom-archive completions bash > ~/.local/share/bash-completion/completions/wecom-archive
  wecom-archive completions zsh > ~/.zfunc/_wecom-archive")]
    Completions(completions::Args),
    /// Print the manual page (roff) on stdout.
    #[command(after_help = "Examples:
  wecom-archive man > wecom-archive.1 && man ./wecom-archive.1
  wecom-archive man pull | man -l -")]
    Man(man::Args),
}

impl Command {
    /// Whether the command talks to child processes over pipes (the SDK workers): those keep
    /// SIGPIPE ignored, so that a worker that died is an error to handle, not the end of the
    /// parent. Every other command dies quietly of SIGPIPE when its reader goes away, as
    /// `inspect DIR | head -1` expects.
    fn has_child_pipes(&self) -> bool {
        matches!(
            self,
            Command::Pull(_) | Command::Media(_) | Command::Serve(_)
        )
    }

    /// `--threads`, on the commands that decrypt.
    fn threads(&self) -> Option<usize> {
        match self {
            Command::Demo(a) => a.threads.threads,
            Command::Pull(a) => a.threads.threads,
            Command::Decrypt(a) => a.threads.threads,
            Command::RetryDeadLetters(a) => a.threads.threads,
            Command::Serve(a) => a.threads.threads,
            // bench sizes its own pools.
            Command::Bench(_)
            | Command::Media(_)
            | Command::Compact(_)
            | Command::Vacuum(_)
            | Command::Export(_)
            | Command::Scan(_)
            | Command::Inspect(_)
            | Command::Status(_)
            | Command::Migrate(_)
            | Command::SdkWorker(_)
            | Command::Token(_)
            | Command::PermitUsers(_)
            | Command::CheckAgree(_)
            | Command::Alerts(_)
            | Command::Completions(_)
            | Command::Man(_) => None,
        }
    }
}

/// Parses the command line, settling what clap cannot say by itself.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = match &mut cli.command {
        Command::RetryDeadLetters(args) => Some((&mut args.config, "retry-dead-letters")),
        Command::Migrate(args) => Some((&mut args.config, "migrate")),
        Command::Compact(args) => Some((&mut args.config, "compact")),
        Command::Vacuum(args) => Some((&mut args.config, "vacuum")),
        Command::Export(args) => Some((&mut args.config, "export")),
        Command::Scan(args) => Some((&mut args.config, "scan")),
        _ => None,
    };
    if let Some((config, name)) = config {
        if let Some(sub) = matches.subcommand_matches(name) {
            if let Err(e) = config.yield_to_out(sub, "out") {
                e.exit();
            }
        }
    }
    cli
}

/// Exit code when the run finished but `--strict` was given and records were dead-lettered.
pub const EXIT_DEAD_LETTERS: u8 = 3;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = parse();
    #[cfg(unix)]
    if !cli.command.has_child_pipes() {
        // SAFETY: restores the default disposition before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(cli.quiet, cli.verbose);
    tracing::debug!(version = env!("WECOM_ARCHIVE_VERSION"), "wecom-archive");
    if let Some(n) = cli.command.threads() {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} worker threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Decrypt(args) => decrypt::run(args),
        Command::Media(args) => media::run(args),
        Command::RetryDeadLetters(args) => retry::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Vacuum(args) => vacuum::run(args),
        Command::Export(args) => export::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Status(args) => status::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::SdkWorker(args) => sdk_worker::run(args),
        Command::Token(args) => token::run(args),
        Command::PermitUsers(args) => permit_users::run(args),
        Command::CheckAgree(args) => check_agree::run(args),
        Command::Alerts(args) => alerts::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Completions(args) => completions::run(args, Cli::command()),
        Command::Man(args) => man::run(args, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, outermost first and the most specific last, each said
/// once. Many of the crate's errors already quote their source in their own message (so that
/// they read well alone); a cause that its parent's message already contains is skipped.
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut parent = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !text.is_empty() && !parent.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        parent = text;
    }
    line
}

/// Set once by [`init_logging`]: `-q` was given.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `-q` asked for errors only: no banners, no progress.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether stderr may be coloured: a terminal, and no `NO_COLOR` (any non-empty value; see
/// no-color.org).
fn stderr_colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

fn init_logging(quiet: bool, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    QUIET.store(quiet, Ordering::Relaxed);
    let default = match (quiet, verbose) {
        (true, _) => "error",
        // delta-rs logs every commit at info: its detail is for -v.
        (false, 0) => "info,deltalake_core=warn,delta_kernel=warn",
        // Our own detail; the libraries' debug output (HTTP, TLS) only with -vv.
        (false, 1) => "info,wecom_archive=debug",
        (false, _) => "trace",
    };
    let filter =
        EnvFilter::try_from_env("WECOM_ARCHIVE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_target(false)
        .with_ansi(stderr_colour())
        .compact()
        .init();
}

/// Log output: stderr, above the progress bar when one is shown.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        wecom_archive::pipeline::progress::write_log(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The progress display of a run, or nothing with `-q`.
pub(crate) fn progress(
    label: &str,
    expected: Option<u64>,
) -> Option<wecom_archive::pipeline::progress::Progress> {
    (!quiet()).then(|| wecom_archive::pipeline::progress::Progress::new(label, expected))
}

/// Ctrl-C / SIGTERM. The first asks the run to stop: finish the current batch, commit it, and
/// exit with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), so that a script can
/// tell a stopped run from a finished one. A second signal exits at once with that status.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    flag: Arc<AtomicBool>,
    /// The first signal's number (0: none yet).
    signal: Arc<AtomicUsize>,
}

impl Stop {
    /// Installs the handlers for SIGINT and SIGTERM.
    pub(crate) fn install() -> Stop {
        let stop = Stop {
            flag: Arc::new(AtomicBool::new(false)),
            signal: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Handlers run in the order registered: the shutdown sees the flag as the previous
            // signal left it, so only a second signal exits at once; the signal's number is
            // stored before the flag is raised, so whoever sees the flag sees the number.
            let _ = signal_hook::flag::register_conditional_shutdown(
                sig,
                128 + sig,
                Arc::clone(&stop.flag),
            );
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&stop.signal), sig as usize);
            let _ = signal_hook::flag::register(sig, Arc::clone(&stop.flag));
        }
        stop
    }

    /// The flag the pipeline polls.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// The signal that asked to stop, if one did.
    pub(crate) fn signal(&self) -> Option<i32> {
        if !self.flag.load(Ordering::SeqCst) {
            return None;
        }
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }

    /// The signal's name (`SIGINT`, `SIGTERM`), if one asked to stop.
    pub(crate) fn signal_name(&self) -> Option<&'static str> {
        match self.signal()? {
            signal_hook::consts::SIGINT => Some("SIGINT"),
            signal_hook::consts::SIGTERM => Some("SIGTERM"),
            _ => Some("a signal"),
        }
    }

    /// 128 + the signal's number when a signal stopped the run, `None` when none did.
    pub(crate) fn exit_code(&self) -> Option<ExitCode> {
        let code = 128 + self.signal()?;
        Some(ExitCode::from(u8::try_from(code).unwrap_or(1)))
    }
}

/// The corps of `config` that `corp` selects (all when `None`); an unknown corp is an error
/// that names the file.
fn select_corps<'c>(
    config: &'c wecom_archive::config::Config,
    corp: Option<&str>,
    path: &std::path::Path,
) -> anyhow::Result<Vec<&'c wecom_archive::config::CorpSection>> {
    let corps: Vec<_> = config
        .corps
        .iter()
        .filter(|c| corp.is_none_or(|id| c.corp_id == id))
        .collect();
    if corps.is_empty() {
        anyhow::bail!("corp {} is not in {}", corp.unwrap_or("?"), path.display());
    }
    Ok(corps)
}

/// Fails when the output root `out` holds Delta tables: `command` reads and writes Parquet trees.
fn refuse_delta(out: &std::path::Path, command: &str) -> anyhow::Result<()> {
    if wecom_archive::sink::delta::is_delta_tree(out) {
        anyhow::bail!(
            "{} holds Delta tables (format = \"delta\"): `{command}` works on Parquet trees only. \
             Read Delta tables with the deltalake package, Polars read_delta, DuckDB delta_scan \
             or Spark (README: \"Delta Lake and object storage\")",
            out.display()
        );
    }
    Ok(())
}
