//! Command-line interface: one file per subcommand. Only this module knows about the terminal.

mod check_agree;
mod decrypt;
mod permit_users;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Turns the WeCom session archive (会话内容存档) into Parquet.
#[derive(Debug, Parser)]
#[command(name = "wecom-archive", version, about, long_about = None)]
struct Cli {
    /// Worker threads for decryption (default: one per core).
    #[arg(long, global = true, env = "WECOM_ARCHIVE_THREADS")]
    threads: Option<usize>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decrypt a GetChatData dump (JSON or JSON Lines, plain or gzip) into Parquet.
    Decrypt(decrypt::Args),
    /// Print the status of a WeCom token (masked) and its expiry, fetching it if needed.
    Token(token::Args),
    /// List members with the session-archive licence (msgaudit/get_permit_user_list).
    PermitUsers(permit_users::Args),
    /// Check whether external contacts agreed to archiving (check_single_agree / check_room_agree).
    CheckAgree(check_agree::Args),
}

/// Exit code when the run finished but `--strict` was given and records were dead-lettered.
pub const EXIT_DEAD_LETTERS: u8 = 3;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} worker threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Decrypt(args) => decrypt::run(args),
        Command::Token(args) => token::run(args),
        Command::PermitUsers(args) => permit_users::run(args),
        Command::CheckAgree(args) => check_agree::run(args),
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
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .init();
}
