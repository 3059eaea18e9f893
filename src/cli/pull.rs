//! `wecom-archive pull`: the official SDK → pipeline → Hive-partitioned Parquet, per corp,
//! checkpointed; once, or following the archive.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use wecom_archive::config::Config;
use wecom_archive::pipeline::progress::summary;
use wecom_archive::pull::{self, Observer, PullOptions};

use super::output::{print_json, PullSummary, RunSummary};

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

    /// Print one JSON document on stdout instead of the summary lines (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stop = super::Stop::install();
    let config = Config::load(&args.config)?;
    config.require_corps()?;
    let mut corps = super::select_corps(&config, args.corp.as_deref(), &args.config)?;
    if config.state_is_shared() && corps.len() > 1 {
        // Workers sharing the state start at different corps, so they meet at fewer leases.
        let start = rand::random::<u64>() as usize % corps.len();
        corps.rotate_left(start);
    }
    super::media::check_library(&config, &corps)?;
    wecom_archive::migrate::refuse_legacy(&config.out_dir())?;
    if let Some(seq) = args.since_seq {
        // Once, before the first round: `--follow` must not rewind at every round.
        let store = wecom_archive::state::StateStore::open(&config.state_path())?;
        for corp in &corps {
            store.set_checkpoint(&corp.corp_id, seq)?;
        }
    }
    let media = if args.media || config.media.on_pull {
        let options = pull::media_options(&config, &args.media_options.filter());
        Some(options.map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    // Only a follow loop compacts by itself: a one-off pull leaves that to `compact`.
    let compact = (args.follow && config.compaction.auto).then(|| {
        let today = jiff::Zoned::now().with_time_zone(config.tz()).date();
        config.compaction.options(today)
    });
    let options = PullOptions {
        commit_every: args.commit_every.max(1),
        media,
        compact,
        rules: config.rule_set()?,
        alert_min: config.alerts_min_severity(),
        once: !args.follow,
    };
    // Findings' alerts are delivered between polls and after the last round.
    let mut alerts = super::alerts::PullAlerts::new(&config)?;
    let mut out = Printer::default();
    let mut dead_lettered = 0;
    let mut failed: Vec<String> = Vec::new();
    let mut summary_json = PullSummary::default();
    loop {
        let round = Instant::now();
        failed.clear();
        for corp in &corps {
            if stop.flag().load(Ordering::Relaxed) {
                break;
            }
            // One corp's failure (a bad secret, a network outage) does not hold up the others;
            // its committed work is kept and the next round resumes it.
            let progress = super::progress(&corp.corp_id, None);
            let media_bar =
                (!super::quiet()).then(|| super::media::BytesProgress::new(&corp.corp_id));
            let report = pull::pull_corp(
                &config,
                corp,
                &options,
                stop.flag(),
                &Observer {
                    progress: &|s| {
                        if let Some(p) = &progress {
                            p.update(s);
                        }
                    },
                    media_bytes: &|n| {
                        if let Some(b) = &media_bar {
                            b.add(n);
                        }
                    },
                },
            );
            if let Some(p) = &progress {
                p.finish();
            }
            if let Some(b) = &media_bar {
                b.finish();
            }
            dead_lettered += report.dead_lettered();
            let media_failed = matches!(report.media, Some(Err(_)));
            if let Some(e) = &report.error {
                eprintln!("error: {e}");
            }
            if let Some(Err(e)) = &report.compaction {
                // Compaction only tidies committed files: the pull itself succeeded.
                eprintln!("warning: corp {} compaction: {e}", corp.corp_id);
            }
            if let Some(Err(e)) = &report.media {
                // Media fails like a pull: reported, the other corps go on.
                eprintln!("error: corp {} media: {e}", corp.corp_id);
            }
            if report.error.is_some() || media_failed {
                failed.push(corp.corp_id.clone());
            }
            if args.json {
                summary_json
                    .corps
                    .push(RunSummary::of_pull(&report, stop.signal_name()));
            } else {
                if let Some(lease) = &report.held_by {
                    let why = match lease.released_at_ms {
                        Some(_) => "pulled it during this run",
                        None => "holds its lease",
                    };
                    out.line(format_args!(
                        "{}: skipped: worker {} {why}",
                        corp.corp_id, lease.holder
                    ));
                } else if report.error.is_none() {
                    out.line(format_args!("{}: {}", corp.corp_id, summary(&report.stats)));
                }
                if let Some(Ok(stats)) = &report.media {
                    out.line(format_args!("{} media: {}", corp.corp_id, stats.summary()));
                }
                if let Some(Ok(stats)) = report
                    .compaction
                    .as_ref()
                    .filter(|c| c.as_ref().is_ok_and(|s| !s.partitions.is_empty()))
                {
                    let (before, after) = stats.files();
                    out.line(format_args!(
                        "{} compaction: {} closed days, {before} files -> {after}",
                        corp.corp_id,
                        stats.partitions.len()
                    ));
                }
            }
        }
        if !args.follow || stop.flag().load(Ordering::Relaxed) {
            break;
        }
        let wait = Duration::from_secs(config.poll_interval_secs).saturating_sub(round.elapsed());
        tracing::info!(wait_secs = wait.as_secs(), "caught up; polling again later");
        let until = Instant::now() + wait;
        if let Some(a) = &mut alerts {
            a.deliver(wait, stop.flag());
        }
        while Instant::now() < until && !stop.flag().load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if stop.flag().load(Ordering::Relaxed) {
            break;
        }
    }
    if let Some(a) = alerts.as_mut().filter(|_| stop.exit_code().is_none()) {
        let wait = if args.follow {
            Duration::ZERO
        } else {
            a.send_wait()
        };
        let sent = a.deliver(wait, stop.flag());
        if !args.json {
            out.line(format_args!(
                "alerts: {} delivered, {} pending, {} failed",
                sent.delivered, sent.pending, sent.failed
            ));
        }
        summary_json.alerts = Some(sent);
    }
    if args.json {
        summary_json.failed = failed.clone();
        print_json(&summary_json)?;
    }
    if !failed.is_empty() {
        bail!(
            "pull failed for {} of {} corps: {}",
            failed.len(),
            corps.len(),
            failed.join(", ")
        );
    }
    if let Some(code) = stop.exit_code() {
        if let Some(signal) = stop.signal_name() {
            eprintln!("stopped by {signal}: what was fetched is committed; run again to resume");
        }
        return Ok(code);
    }
    if args.strict && dead_lettered > 0 {
        eprintln!("error: {dead_lettered} record(s) dead-lettered (--strict)");
        return Ok(ExitCode::from(super::EXIT_DEAD_LETTERS));
    }
    Ok(ExitCode::SUCCESS)
}

/// Summary lines on stdout. `pull` keeps SIGPIPE ignored (it talks to SDK workers over pipes),
/// so a closed stdout is an error here, not a signal: stop printing quietly and let the pull go
/// on, since its output is on disk, not on stdout.
#[derive(Default)]
struct Printer {
    closed: bool,
}

impl Printer {
    fn line(&mut self, text: std::fmt::Arguments<'_>) {
        use std::io::Write;
        if !self.closed && writeln!(std::io::stdout(), "{text}").is_err() {
            self.closed = true;
        }
    }
}
