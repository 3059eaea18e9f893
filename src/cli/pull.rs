//! `wecom-archive pull`: the official SDK → pipeline → Hive-partitioned Parquet, per corp,
//! checkpointed; once, or following the archive.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use wecom_archive::config::Config;
use wecom_archive::pipeline::progress::{summary, Progress};
use wecom_archive::pull::{self, Observer, PullOptions};

/// Arguments of `wecom-archive pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    #[command(flatten)]
    corp: super::args::CorpFilter,

    #[command(flatten)]
    pub(super) threads: super::args::ThreadsArg,

    /// Pull until caught up, then exit (the default).
    #[arg(long, conflicts_with = "follow")]
    once: bool,

    /// Keep pulling: poll every `poll_interval_secs` after catching up, until Ctrl-C / SIGTERM.
    #[arg(long)]
    follow: bool,

    /// Start after this seq instead of the stored checkpoint (sets the checkpoint).
    #[arg(long)]
    since_seq: Option<u64>,

    /// Records per commit (each commit moves the checkpoint).
    #[arg(long, default_value_t = 100_000)]
    commit_every: u64,

    /// Exit with status 3 if any record was dead-lettered.
    #[arg(long)]
    strict: bool,

    /// Also download the media of the pulled messages after each corp's pull (as `media`;
    /// `[media] on_pull = true` in the config does the same).
    #[arg(long)]
    media: bool,

    #[command(flatten)]
    media_options: super::media::MediaArgs,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    config.require_corps()?;
    let corps = super::select_corps(&config, args.corp.as_deref(), &args.config)?;
    super::media::check_library(&config, &corps)?;
    if let Some(seq) = args.since_seq {
        // Once, before the first round: `--follow` must not rewind at every round.
        let store = wecom_archive::state::StateStore::open(&config.state_path())?;
        for corp in &corps {
            store.set_checkpoint(&corp.corp_id, seq)?;
        }
    }
    let options = PullOptions {
        commit_every: args.commit_every.max(1),
        media: if args.media || config.media.on_pull {
            Some(
                pull::media_options(&config, &args.media_options.filter())
                    .map_err(anyhow::Error::msg)?,
            )
        } else {
            None
        },
    };
    let stop = super::stop_flag();
    let mut dead_lettered = 0;
    let mut failed: Vec<String> = Vec::new();
    loop {
        let round = Instant::now();
        failed.clear();
        for corp in &corps {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // One corp's failure (a bad secret, a network outage) does not hold up the others;
            // its committed work is kept and the next round resumes it.
            let progress = Progress::new(&corp.corp_id, None);
            let media_bar = super::media::BytesProgress::new(&corp.corp_id);
            let report = pull::pull_corp(
                &config,
                corp,
                &options,
                &stop,
                &Observer {
                    progress: &|s| progress.update(s),
                    media_bytes: &|n| media_bar.add(n),
                },
            );
            progress.finish();
            media_bar.finish();
            dead_lettered += report.dead_lettered();
            match &report.error {
                None => println!("{}: {}", corp.corp_id, summary(&report.stats)),
                Some(e) => {
                    eprintln!("error: {e}");
                    failed.push(corp.corp_id.clone());
                }
            }
            match &report.media {
                Some(Ok(stats)) => println!("{} media: {}", corp.corp_id, stats.summary()),
                // Media fails like a pull: reported, the other corps go on.
                Some(Err(e)) => {
                    eprintln!("error: corp {} media: {e}", corp.corp_id);
                    failed.push(corp.corp_id.clone());
                }
                None => {}
            }
        }
        if !args.follow || stop.load(Ordering::Relaxed) {
            break;
        }
        let wait = Duration::from_secs(config.poll_interval_secs).saturating_sub(round.elapsed());
        tracing::info!(wait_secs = wait.as_secs(), "caught up; polling again later");
        let until = Instant::now() + wait;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    if !failed.is_empty() {
        failed.dedup();
        bail!(
            "pull failed for {} of {} corps: {}",
            failed.len(),
            corps.len(),
            failed.join(", ")
        );
    }
    if args.strict && dead_lettered > 0 {
        eprintln!("error: {dead_lettered} record(s) dead-lettered (--strict)");
        return Ok(ExitCode::from(super::EXIT_DEAD_LETTERS));
    }
    Ok(ExitCode::SUCCESS)
}
