//! Command-line interface: one file per subcommand. Only this module knows about the terminal.

mod args;
mod bench;
mod check_agree;
mod decrypt;
mod demo;
mod inspect;
mod media;
mod permit_users;
mod pull;
mod retry;
mod sdk_worker;
mod serve;
mod token;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Turns the WeCom session archive (会话内容存档) into Parquet.
#[derive(Debug, Parser)]
#[command(name = "wecom-archive", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulated archive -> pipeline -> Parquet: the whole job, no WeCom account needed.
    Demo(demo::Args),
    /// Pull archived messages through the official SDK into Parquet, checkpointed.
    Pull(pull::Args),
    /// Decrypt a GetChatData dump (JSON or JSON Lines, plain or gzip) into Parquet.
    Decrypt(decrypt::Args),
    /// Download the media files (images, voice, video, files, …) of pulled messages, resumable
    /// and md5-verified, and write the media table.
    Media(media::Args),
    /// Re-run a corp's dead letters (e.g. after adding a missing key); recovered records become rows.
    RetryDeadLetters(retry::Args),
    /// Show what an output directory holds: counts, seq range, gaps, dead letters.
    Inspect(inspect::Args),
    /// Measure raw RSA unwrap and whole-pipeline throughput in one run.
    Bench(bench::Args),
    /// Internal: host the official SDK in a child process (JSON lines on stdin/stdout).
    #[command(hide = true)]
    SdkWorker(sdk_worker::Args),
    /// Print the status of a WeCom token (masked) and its expiry, fetching it if needed.
    Token(token::Args),
    /// List members with the session-archive licence (msgaudit/get_permit_user_list).
    PermitUsers(permit_users::Args),
    /// Check whether external contacts agreed to archiving (check_single_agree / check_room_agree).
    CheckAgree(check_agree::Args),
    /// Receive WeCom callbacks (suite tickets, authorizations, msgaudit_notify) and pull on notify.
    Serve(serve::Args),
}

impl Command {
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
            | Command::Inspect(_)
            | Command::SdkWorker(_)
            | Command::Token(_)
            | Command::PermitUsers(_)
            | Command::CheckAgree(_) => None,
        }
    }
}

/// Parses the command line, settling what clap cannot say by itself.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::RetryDeadLetters(args), Some(sub)) = (
        &mut cli.command,
        matches.subcommand_matches("retry-dead-letters"),
    ) {
        if let Err(e) = args.config.yield_to_out(sub, "out") {
            e.exit();
        }
    }
    cli
}

/// Exit code when the run finished but `--strict` was given and records were dead-lettered.
pub const EXIT_DEAD_LETTERS: u8 = 3;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = parse();
    init_logging();
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
        Command::Inspect(args) => inspect::run(args),
        Command::Bench(args) => bench::run(args),
        Command::SdkWorker(args) => sdk_worker::run(args),
        Command::Token(args) => token::run(args),
        Command::PermitUsers(args) => permit_users::run(args),
        Command::CheckAgree(args) => check_agree::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("WECOM_ARCHIVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

/// A flag set by the first Ctrl-C / SIGTERM (finish the current batch, commit, exit); a second
/// one exits at once.
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered before the flag so that the second signal (flag already set) exits.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
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
