//! `wecom-archive man [COMMAND]`: the manual page, as roff on stdout.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `wecom-archive man`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The page of this subcommand (`wecom-archive-COMMAND(1)`) instead of the main page.
    command: Option<String>,
}

/// Runs the subcommand on the whole command line's definition, `cmd`.
pub fn run(args: Args, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    // Built, so that global arguments reach the subcommands and each subcommand is named
    // `wecom-archive-COMMAND` on its page.
    let mut cmd = cmd;
    cmd.build();
    let page = match &args.command {
        None => cmd,
        Some(name) => cmd
            .find_subcommand(name)
            .filter(|s| !s.is_hide_set())
            .cloned()
            .map(|sub| sub.version(env!("WECOM_ARCHIVE_VERSION")))
            .with_context(|| format!("no subcommand {name:?} (see `wecom-archive --help`)"))?,
    };
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(page).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
