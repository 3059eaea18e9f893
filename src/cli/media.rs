//! `wecom-archive media`: download the media files of the messages already pulled, resumable
//! and verified, and write the media table (see `docs/media.md`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wecom_archive::config::{Config, CorpSection, MediaSection, SourceKind};
use wecom_archive::media::{self, ChunkError, MediaOptions, MediaStats};
use wecom_archive::pipeline::progress::set_active_bar;

/// Arguments of `wecom-archive media`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    #[command(flatten)]
    corp: super::args::CorpFilter,

    #[command(flatten)]
    options: MediaArgs,
}

/// The options shared by `media` and `pull --media`.
#[derive(Debug, Clone, clap::Args)]
pub struct MediaArgs {
    /// Only these kinds, comma-separated: image, voice, video, emotion, file,
    /// meeting_voice_call, voip_doc_share, other (mixed/chatrecord items count as their kind).
    /// Default: `[media] types`, else every kind.
    #[arg(long, value_delimiter = ',')]
    types: Option<Vec<String>>,

    /// Skip files whose message announces more than this many bytes (default: `[media]
    /// max_size`, else no limit).
    #[arg(long)]
    max_size: Option<u64>,

    /// Parallel downloads, each with its own SDK worker process (default: `[media]
    /// concurrency`, else 2).
    #[arg(long)]
    concurrency: Option<usize>,
}

impl MediaArgs {
    /// The options: these arguments over the config's `[media]` section.
    fn options(&self, section: &MediaSection) -> anyhow::Result<MediaOptions> {
        MediaOptions::build(
            self.types.as_ref().or(section.types.as_ref()),
            self.max_size.or(section.max_size),
            self.concurrency.or(section.concurrency),
        )
        .map_err(anyhow::Error::msg)
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
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
    check_library(&config, &corps)?;
    let stop = super::stop_flag();
    let mut failed = 0;
    for corp in corps {
        let stats = download_corp(&config, corp, &args.options, &stop)?;
        failed += stats.failed;
    }
    if failed > 0 {
        eprintln!("{failed} file(s) failed; run `wecom-archive media` again to resume them");
    }
    Ok(ExitCode::SUCCESS)
}

/// Fails early when an SDK corp has no library.
pub fn check_library(config: &Config, corps: &[&CorpSection]) -> anyhow::Result<()> {
    if corps.iter().any(|c| c.source == SourceKind::Sdk) {
        let library = config.sdk_library()?;
        if !library.exists() {
            bail!(
                "the WeCom SDK {} does not exist: set [sdk] library or WECOM_SDK to libWeWorkFinanceSdk_C.so",
                library.display()
            );
        }
    }
    Ok(())
}

/// Downloads one corp's media and prints the summary.
pub fn download_corp(
    config: &Config,
    corp: &CorpSection,
    args: &MediaArgs,
    stop: &AtomicBool,
) -> anyhow::Result<MediaStats> {
    let mut options = args.options(&config.media)?;
    if let Some(n) = config.sdk.max_attempts {
        // The same budget per chunk as per GetChatData page.
        options.download.max_attempts = n.max(1);
    }
    let corp_dir = media::store::corp_dir(&config.out_dir(), &corp.corp_id);
    let bar = bytes_bar(&corp.corp_id);
    let make_source = || {
        wecom_archive::source::media_for_corp(config, corp)
            .map_err(|e| ChunkError::Fatal(e.to_string()))
    };
    // Without a terminal, a log line every few seconds instead of the bar.
    let started = Instant::now();
    let logged = Mutex::new((Instant::now(), 0u64));
    let on_bytes = |n: u64| match &bar {
        Some(b) => b.inc(n),
        None => {
            let mut l = logged.lock().expect("progress lock");
            l.1 += n;
            if l.0.elapsed() >= Duration::from_secs(5) {
                l.0 = Instant::now();
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                tracing::info!(
                    target: "progress",
                    corp = %corp.corp_id,
                    mib = format!("{:.1}", l.1 as f64 / 1048576.0),
                    mib_per_sec = format!("{:.1}", l.1 as f64 / 1048576.0 / secs),
                    "media progress"
                );
            }
        }
    };
    let result = media::run_corp(
        &config.state_path(),
        &corp.corp_id,
        &corp_dir,
        &options,
        &make_source,
        &on_bytes,
        stop,
    );
    if let Some(b) = &bar {
        set_active_bar(None);
        b.finish_and_clear();
    }
    let stats = result.with_context(|| format!("corp {} media", corp.corp_id))?;
    println!("{} media: {}", corp.corp_id, stats.summary());
    Ok(stats)
}

/// A bytes and bytes/s bar on a terminal; nothing otherwise (the summary says it all).
fn bytes_bar(label: &str) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::no_length();
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} media {spinner} {binary_bytes} at {binary_bytes_per_sec}  {elapsed}",
            )
            .expect("valid template"),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(250));
        set_active_bar(Some(&bar));
        bar
    })
}
