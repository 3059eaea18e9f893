//! `wecom-archive pull`: the official SDK → pipeline → Hive-partitioned Parquet, per corp,
//! checkpointed; once, or following the archive.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use wecom_archive::config::{Config, CorpSection};
use wecom_archive::pipeline::progress::{summary, Progress};
use wecom_archive::pipeline::{self, Layout, Output, RunOptions, RunStats};
use wecom_archive::state::StateStore;

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
    let corps: Vec<&CorpSection> = config
        .corps
        .iter()
        .filter(|c| args.corp.as_ref().is_none_or(|id| &c.corp_id == id))
        .collect();
    if corps.is_empty() {
        bail!(
            "corp {} is not in {}",
            args.corp.as_deref().unwrap_or("?"),
            args.config.display()
        );
    }
    let out = config.out_dir();
    let mut store = StateStore::open(&config.state_path())?;
    super::media::check_library(&config, &corps)?;
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
            match pull_corp(&config, corp, &out, &mut store, &args, &stop) {
                Ok(stats) => {
                    dead_lettered += stats.dead_lettered;
                    if (args.media || config.media.on_pull) && !stop.load(Ordering::Relaxed) {
                        // Media fails like a pull: reported, the other corps go on.
                        let media =
                            super::media::download_corp(&config, corp, &args.media_options, &stop);
                        if let Err(e) = media {
                            eprintln!("error: {e:#}");
                            failed.push(corp.corp_id.clone());
                        }
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    failed.push(corp.corp_id.clone());
                }
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

fn pull_corp(
    config: &Config,
    corp: &CorpSection,
    out: &std::path::Path,
    store: &mut StateStore,
    args: &Args,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<RunStats> {
    if let Some(seq) = args.since_seq {
        store.set_checkpoint(&corp.corp_id, seq)?;
    }
    let (mut source, keyring) = wecom_archive::source::for_corp(config, corp)?;
    let before = store.checkpoint(&corp.corp_id)?;
    let options = RunOptions {
        commit_every: args.commit_every.max(1),
        ..RunOptions::default()
    };
    let progress = Progress::new(&corp.corp_id, None);
    let started = super::unix_now();
    let result = pipeline::run(
        source.as_mut(),
        &keyring,
        Output {
            dir: out,
            layout: Layout::Hive {
                corp_id: corp.corp_id.clone(),
                tz: config.tz(),
            },
            state: Some(store),
        },
        &options,
        stop,
        &|s| progress.update(s),
    );
    progress.finish();
    super::record_run(store, &corp.corp_id, started, before, &result);
    let stats = result.with_context(|| format!("corp {}", corp.corp_id))?;
    println!("{}: {}", corp.corp_id, summary(&stats));
    Ok(stats)
}
