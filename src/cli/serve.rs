//! `wecom-archive serve`: the callback server, the event handler and the per-corp scheduler,
//! until SIGTERM / Ctrl-C (graceful: stop accepting, finish the current batch, commit).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use wecom_archive::clock::SystemClock;
use wecom_archive::config::Config;
use wecom_archive::serve::{self, Options};

/// Arguments of `wecom-archive serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    #[command(flatten)]
    pub(super) threads: super::args::ThreadsArg,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::load(&args.config)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        // Installed before the socket is bound: a signal just after "listening on" is graceful.
        let mut signals = Signals::install().context("cannot install the signal handlers")?;
        let running = serve::start(
            config,
            Options {
                clock: Arc::new(SystemClock),
                puller: None,
            },
        )
        .await?;
        // On stdout for scripts and tests (the port may be OS-assigned).
        println!("listening on {}", running.addr());
        signals.next().await;
        tracing::info!("stopping: no new callbacks; running pulls finish their batch and commit");
        // A second signal exits at once.
        tokio::spawn(async move {
            signals.next().await;
            eprintln!("second signal: exiting without waiting");
            std::process::exit(130);
        });
        running.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT, registered when created (a signal that arrives before anyone waits is
/// kept, not lost to the default action).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
