//! `wecom-archive sdk-worker`: the child process that hosts the official SDK (see
//! [`wecom_archive::source::sdk`]). Not for humans: it speaks JSON lines on stdin/stdout.

use std::io::{BufReader, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `wecom-archive sdk-worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of libWeWorkFinanceSdk_C.so.
    #[arg(long)]
    library: PathBuf,
}

/// Runs the worker until its stdin closes.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The protocol owns the original stdout; fd 1 is pointed at stderr so that anything the
    // native library prints cannot corrupt it.
    // SAFETY: plain fd duplication on fds this process owns; `protocol` takes sole ownership of
    // the duplicate.
    let protocol = unsafe {
        let fd = libc::dup(1);
        anyhow::ensure!(fd >= 0, "dup(stdout) failed");
        anyhow::ensure!(libc::dup2(2, 1) >= 0, "dup2(stderr, stdout) failed");
        std::fs::File::from_raw_fd(fd)
    };
    let mut out = std::io::BufWriter::new(protocol);
    let code = wecom_archive::source::sdk::worker_main(
        &args.library,
        BufReader::new(std::io::stdin().lock()),
        &mut out,
    );
    out.flush()?;
    Ok(ExitCode::from(code as u8))
}
