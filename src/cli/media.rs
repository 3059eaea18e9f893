//! `wecom-archive media`: download the media files of the messages already pulled, resumable
//! and verified, and write the media table (see `docs/media.md`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wecom_archive::config::{Config, CorpSection, SourceKind};
use wecom_archive::pipeline::progress::set_active_bar;
use wecom_archive::pull::{self, MediaFilter};

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
    /// These arguments as the library's filter (over the config's `[media]` section).
    pub fn filter(&self) -> MediaFilter {
        MediaFilter {
            types: self.types.clone(),
            max_size: self.max_size,
            concurrency: self.concurrency,
        }
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let corps = super::select_corps(&config, args.corp.as_deref(), &args.config)?;
    check_library(&config, &corps)?;
    let options =
        pull::media_options(&config, &args.options.filter()).map_err(anyhow::Error::msg)?;
    let stop = super::Stop::install();
    let mut failed = 0;
    for corp in corps {
        if stop.flag().load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let progress = (!super::quiet()).then(|| BytesProgress::new(&corp.corp_id));
        let on_bytes = |n| {
            if let Some(p) = &progress {
                p.add(n);
            }
        };
        let result = pull::download_media(&config, corp, &options, stop.flag(), &on_bytes);
        if let Some(p) = &progress {
            p.finish();
        }
        let stats = result.with_context(|| format!("corp {} media", corp.corp_id))?;
        println!("{} media: {}", corp.corp_id, stats.summary());
        failed += stats.failed;
    }
    if failed > 0 {
        eprintln!("{failed} file(s) failed; run `wecom-archive media` again to resume them");
    }
    // Stopped between chunks: every finished chunk is recorded, the next run resumes.
    Ok(stop.exit_code().unwrap_or(ExitCode::SUCCESS))
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

/// Download progress: a bytes and bytes/s bar on a terminal, else a log line every few seconds.
pub struct BytesProgress {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    logged: Mutex<(Instant, u64)>,
}

impl BytesProgress {
    /// Progress of `label`'s (a corp's) downloads.
    pub fn new(label: &str) -> Self {
        BytesProgress {
            label: label.to_owned(),
            bar: bytes_bar(label),
            started: Instant::now(),
            logged: Mutex::new((Instant::now(), 0)),
        }
    }

    /// `n` more bytes arrived.
    pub fn add(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            return;
        }
        let mut l = self.logged.lock().expect("progress lock");
        l.1 += n;
        if l.0.elapsed() >= Duration::from_secs(5) {
            l.0 = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                target: "progress",
                corp = %self.label,
                mib = format!("{:.1}", l.1 as f64 / 1048576.0),
                mib_per_sec = format!("{:.1}", l.1 as f64 / 1048576.0 / secs),
                "media progress"
            );
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            set_active_bar(None);
            b.finish_and_clear();
        }
    }
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
