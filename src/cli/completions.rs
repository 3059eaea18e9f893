//! `wecom-archive completions SHELL`: a completion script for the shell, on stdout.

use std::process::ExitCode;

use clap_complete::Shell;

/// Arguments of `wecom-archive completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell.
    shell: Shell,
}

/// Runs the subcommand on the whole command line's definition, `cmd`.
pub fn run(args: Args, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout().lock());
    Ok(ExitCode::SUCCESS)
}
