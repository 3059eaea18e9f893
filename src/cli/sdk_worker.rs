//! `wecom-archive sdk-worker`: the child process that hosts the official SDK (see
//! [`wecom_archive::source::sdk::worker`]). Not for humans: it speaks JSON lines on stdin/stdout.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wecom_archive::source::sdk::worker;

/// Arguments of `wecom-archive sdk-worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of libWeWorkFinanceSdk_C.so.
    #[arg(long)]
    library: PathBuf,
}

/// Runs the worker until its stdin closes.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let protocol = worker::take_stdout().context("taking stdout for the worker protocol")?;
    let mut out = std::io::BufWriter::new(protocol);
    let code = worker::worker_main(
        &args.library,
        BufReader::new(std::io::stdin().lock()),
        &mut out,
    );
    out.flush()?;
    Ok(ExitCode::from(code as u8))
}
