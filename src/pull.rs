//! Pulling one configured corp end to end — the one path `pull`, `media` and `serve` share.
//!
//! ```text
//! pull_corp: source + keyring (config) -> pipeline::run (commits, checkpoint)
//!            -> run history (ok | interrupted | failed: …) -> media on pull (optional)
//!            -> compaction of the closed days (optional: `pull --follow`, `serve`)
//! ```
//!
//! The pipeline runs under the corp's writer lock ([`CorpLock`]): a compaction of the same corp
//! (`compact`, or another process's automatic one) never runs beside it.
//!
//! Each caller decides only how to show what happened: the CLI prints a summary and turns a
//! failure into an exit status, `serve` feeds its metrics and logs. What a run *is* — where it
//! starts, how it is recorded, which retry budget applies to pages and to media chunks — is
//! decided here once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Config, CorpSection, MediaSection};
use crate::crypto::keyring::Keyring;
use crate::media::{self, ChunkError, MediaError, MediaOptions, MediaStats};
use crate::pipeline::{self, Layout, Output, RunError, RunOptions, RunStats};
use crate::sink::compact::{self, CompactOptions, CompactStats};
use crate::sink::lock::{CorpLock, LockError};
use crate::source::{SetupError, Source};
use crate::state::{RunRecord, StateError, StateStore};

/// What one pull of a corp should do.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Records per commit (each commit moves the checkpoint).
    pub commit_every: u64,
    /// Download the media of what landed, after a pull that was neither stopped nor failed.
    pub media: Option<MediaOptions>,
    /// After a pull that was neither stopped nor failed, compact the days that are closed
    /// (before today in the configured time zone) with these options; their `before` is set at
    /// each pull. `None`: no compaction (`pull` without `--follow`, or `[compaction] auto =
    /// false`).
    pub compact: Option<CompactOptions>,
    /// The rules screening every message (`rules = "…"` in the config), loaded once.
    pub rules: Option<std::sync::Arc<crate::compliance::rules::RuleSet>>,
    /// Findings at or above this severity become alerts ([`Config::alerts_min_severity`]).
    pub alert_min: Option<crate::compliance::rules::Severity>,
    /// This run pulls each corp once (`pull --once`): with a PostgreSQL state, a corp another
    /// worker pulled to the end since the run began is skipped ([`crate::fleet::CorpLease::claim`]).
    pub once: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            commit_every: 100_000,
            media: None,
            compact: None,
            rules: None,
            alert_min: None,
            once: false,
        }
    }
}

/// How a pull ended; the run history records [`Outcome::as_str`] (with the error for
/// [`Outcome::Failed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Ran to the end of the archive and committed.
    #[default]
    Ok,
    /// Stopped on request (Ctrl-C, SIGTERM, shutdown) after committing what it had; the next
    /// pull resumes at the checkpoint.
    Interrupted,
    /// Failed; what was committed before the failure is kept.
    Failed,
    /// Not pulled: another worker holds the corp's lease (PostgreSQL state only).
    Held,
}

impl Outcome {
    /// The name used in the run history, `--json` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Interrupted => "interrupted",
            Outcome::Failed => "failed",
            Outcome::Held => "held",
        }
    }
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The corp is not configured.
    #[error("corp {0} has no [[corp]] section in the configuration")]
    UnknownCorp(String),
    /// The source or keys could not be set up from the configuration.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The state database failed before or after the run.
    #[error(transparent)]
    State(#[from] StateError),
    /// The pipeline failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Another process writes the corp (a compaction, another pull).
    #[error(transparent)]
    Locked(#[from] LockError),
}

/// What one pull of a corp did.
#[derive(Debug, Default)]
pub struct PullReport {
    /// The corp.
    pub corp_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The pipeline's figures (all zero when it did not run).
    pub stats: RunStats,
    /// The checkpoint before the pull (0: none).
    pub from_seq: u64,
    /// The checkpoint after the pull (0: none).
    pub to_seq: u64,
    /// Why it failed, for [`Outcome::Failed`]; never contains a secret.
    pub error: Option<String>,
    /// The media download after the pull, when it ran.
    pub media: Option<Result<MediaStats, String>>,
    /// The compaction of closed days after the pull, when it ran.
    pub compaction: Option<Result<CompactStats, String>>,
    /// For [`Outcome::Held`]: the other worker's lease.
    pub held_by: Option<crate::state::Lease>,
}

impl PullReport {
    /// Rows written.
    pub fn written(&self) -> u64 {
        self.stats.written
    }

    /// Records dead-lettered.
    pub fn dead_lettered(&self) -> u64 {
        self.stats.dead_lettered
    }

    /// The pull reached the end of the archive (neither stopped nor failed).
    pub fn caught_up(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// A report for a pull that failed before the pipeline started.
    pub fn failed(corp_id: &str, error: &dyn std::error::Error) -> Self {
        PullReport {
            corp_id: corp_id.to_owned(),
            outcome: Outcome::Failed,
            error: Some(error.to_string()),
            ..PullReport::default()
        }
    }
}

/// What a caller wants to see while a pull runs (progress bars, log lines).
pub struct Observer<'a> {
    /// Called with the running figures, about every `RunOptions::progress_every`.
    pub progress: &'a (dyn Fn(&RunStats) + Sync),
    /// Called with the size of every media chunk downloaded.
    pub media_bytes: &'a (dyn Fn(u64) + Sync),
}

impl Observer<'static> {
    /// Sees nothing (`serve`: metrics come from the report).
    pub fn quiet() -> Self {
        Observer {
            progress: &|_| {},
            media_bytes: &|_| {},
        }
    }
}

/// The corp `corp_id` of `config`.
pub fn corp<'c>(config: &'c Config, corp_id: &str) -> Result<&'c CorpSection, PullError> {
    config
        .corps
        .iter()
        .find(|c| c.corp_id == corp_id)
        .ok_or_else(|| PullError::UnknownCorp(corp_id.to_owned()))
}

/// Pulls `corp` (see [`pull_leased`]); with a PostgreSQL state, only while this process holds
/// the corp's lease ([`crate::fleet`]): a corp another worker holds is skipped
/// ([`Outcome::Held`]), and a lease lost mid-pull stops it like a signal would.
pub fn pull_corp(
    config: &Config,
    corp: &CorpSection,
    options: &PullOptions,
    stop: &AtomicBool,
    observer: &Observer<'_>,
) -> PullReport {
    if !config.state_is_shared() {
        return pull_leased(config, corp, options, stop, observer);
    }
    match crate::fleet::CorpLease::claim(config, &corp.corp_id, options.once) {
        Err(e) => PullReport::failed(&corp.corp_id, &e),
        Ok(crate::fleet::Claimed::Held(lease)) => PullReport {
            corp_id: corp.corp_id.clone(),
            outcome: Outcome::Held,
            held_by: Some(lease),
            ..PullReport::default()
        },
        Ok(crate::fleet::Claimed::Granted(lease)) => {
            let (mut report, lost) = lease.hold_while(
                stop,
                |stop| pull_leased(config, corp, options, stop, observer),
                PullReport::caught_up,
            );
            if lost && report.error.is_none() {
                report.error = Some(format!(
                    "corp {}: stopped: the lease ran out before it could be renewed \
                     (another worker may hold the corp now); the next round resumes at the \
                     checkpoint",
                    corp.corp_id
                ));
            }
            report
        }
    }
}

/// Pulls `corp` to the end of its archive (or until `stop` is set: then the batch in flight is
/// committed and the pull ends as [`Outcome::Interrupted`]), records the run in the history,
/// and downloads the new messages' media when `options.media` says so.
///
/// Opens its own state connection: `serve` runs pulls beside its callback handlers, and SQLite
/// (WAL) lets both write without one holding the other up for a whole run.
pub fn pull_leased(
    config: &Config,
    corp: &CorpSection,
    options: &PullOptions,
    stop: &AtomicBool,
    observer: &Observer<'_>,
) -> PullReport {
    let corp_id = corp.corp_id.as_str();
    let files = config.format == crate::sink::Format::Parquet;
    if let (true, Err(e)) = (files, crate::migrate::refuse_legacy(&config.out_dir())) {
        return PullReport::failed(corp_id, &e);
    }
    let mut store = match StateStore::open(&config.state_path()) {
        Ok(s) => s,
        Err(e) => return PullReport::failed(corp_id, &e),
    };
    let delta = match config.delta_target() {
        Ok(d) => d,
        Err(e) => return PullReport::failed(corp_id, &e),
    };
    let target = Target {
        out: &config.out_dir(),
        corp_id,
        tz: config.tz(),
        delta,
    };
    let run_options = RunOptions {
        commit_every: options.commit_every.max(1),
        rules: options.rules.clone(),
        alert_min: options.alert_min,
        ..RunOptions::default()
    };
    let mut report = match crate::source::for_corp(config, corp) {
        Ok((mut source, keyring)) => pull_source(
            &mut store,
            &target,
            source.as_mut(),
            &keyring,
            &run_options,
            stop,
            observer.progress,
        ),
        Err(e) => {
            let report = PullReport::failed(corp_id, &e);
            record(&store, &report, unix_now());
            report
        }
    };
    // Compaction after a pull works on Parquet files; Delta tables are optimized with `compact`
    // (OPTIMIZE) on their own.
    if let (Some(media_options), true) = (&options.media, report.caught_up()) {
        report.media = Some(
            download_media(config, corp, media_options, stop, observer.media_bytes)
                .map_err(|e| e.to_string()),
        );
    }
    if let (Some(compact_options), true, true) = (&options.compact, report.caught_up(), files) {
        report.compaction = Some(compact_closed_days(config, corp_id, compact_options));
    }
    report
}

/// Compacts `corp_id`'s partitions of the days before today in the configured time zone: a
/// closed day gets no new rows (but a late one, which the next compaction merges in).
pub fn compact_closed_days(
    config: &Config,
    corp_id: &str,
    options: &CompactOptions,
) -> Result<CompactStats, String> {
    let today = jiff::Zoned::now().with_time_zone(config.tz()).date();
    let options = CompactOptions {
        before: Some(today),
        ..options.clone()
    };
    let stats = compact::compact_corp(
        &config.out_dir(),
        &config.state_path(),
        corp_id,
        &options,
        &|_| {},
    )
    .map_err(|e| e.to_string())?;
    if !stats.partitions.is_empty() {
        let (before, after) = stats.files();
        tracing::info!(
            corp = corp_id,
            partitions = stats.partitions.len(),
            files_before = before,
            files_after = after,
            "compacted closed days"
        );
    }
    Ok(stats)
}

/// Where one corp's pull writes: the Hive-partitioned tree under `out`.
#[derive(Debug)]
pub struct Target<'a> {
    /// The output root.
    pub out: &'a Path,
    /// The corp (also the checkpoint key).
    pub corp_id: &'a str,
    /// Time zone of the `date=` partition.
    pub tz: jiff::tz::TimeZone,
    /// Delta tables instead of Parquet files (`out` is then unused, and the checkpoint is the
    /// corp's transaction version in the tables).
    pub delta: Option<std::sync::Arc<crate::sink::delta::DeltaTarget>>,
}

/// Runs the pipeline from `source` into `target`, checkpointed in `store`, and records the run
/// in the history: the part of [`pull_corp`] that does not care where records come from
/// (`demo` feeds it the simulator).
pub fn pull_source(
    store: &mut StateStore,
    target: &Target<'_>,
    source: &mut dyn Source,
    keyring: &Keyring,
    options: &RunOptions,
    stop: &AtomicBool,
    progress: &(dyn Fn(&RunStats) + Sync),
) -> PullReport {
    let corp_id = target.corp_id;
    let started_at = unix_now();
    let started = std::time::Instant::now();
    let mut report = PullReport {
        corp_id: corp_id.to_owned(),
        ..PullReport::default()
    };
    let result = (|| -> Result<RunStats, PullError> {
        // Held for the whole run: recovery deletes unjournaled temporaries, which would be a
        // running compaction's.
        // Delta tables need no lock: their commits are transactions, and a second writer of the
        // corp loses its commit rather than duplicating a row.
        let _lock = match target.delta {
            None => Some(CorpLock::acquire(target.out, corp_id)?),
            Some(_) => None,
        };
        report.from_seq = store.checkpoint(corp_id)?.unwrap_or(0);
        let output = Output {
            dir: target.out,
            layout: Layout::Hive {
                corp_id: corp_id.to_owned(),
                tz: target.tz.clone(),
            },
            state: Some(&mut *store),
            delta: target.delta.clone(),
        };
        Ok(pipeline::run(
            source, keyring, output, options, stop, progress,
        )?)
    })();
    report.to_seq = store.checkpoint(corp_id).ok().flatten().unwrap_or(0);
    match result {
        Ok(stats) if target.delta.is_some() => {
            report.from_seq = stats.resumed_from.unwrap_or(0);
            report.to_seq = stats.checkpoint.unwrap_or(0);
            report.stats = stats;
            report.outcome = if stop.load(Ordering::SeqCst) {
                Outcome::Interrupted
            } else {
                Outcome::Ok
            };
        }
        Ok(stats) => {
            report.stats = stats;
            report.outcome = if stop.load(Ordering::SeqCst) {
                Outcome::Interrupted
            } else {
                Outcome::Ok
            };
        }
        Err(e) => {
            report.stats.elapsed = started.elapsed();
            report.outcome = Outcome::Failed;
            // Most errors name the corp already; say it once.
            let e = e.to_string();
            let prefix = format!("corp {corp_id}: ");
            report.error = Some(if e.starts_with(&prefix) {
                e
            } else {
                format!("{prefix}{e}")
            });
        }
    }
    record(store, &report, started_at);
    report
}

/// Appends `report` to the run history; a failure here is logged, never fatal (the data and
/// the checkpoint are already committed).
fn record(store: &StateStore, report: &PullReport, started_at: i64) {
    let run = RunRecord {
        corp_id: report.corp_id.clone(),
        started_at,
        finished_at: unix_now(),
        from_seq: report.from_seq,
        to_seq: report.to_seq,
        written: report.written(),
        dead_lettered: report.dead_lettered(),
        outcome: match (&report.outcome, &report.error) {
            (Outcome::Failed, Some(e)) => format!("failed: {e}"),
            (o, _) => o.as_str().to_owned(),
        },
    };
    if let Err(e) = store.record_run(&run) {
        tracing::warn!(corp = %report.corp_id, error = %e, "could not record the run history");
    }
}

/// Media filters given on a command line, over the config's `[media]` section.
#[derive(Debug, Clone, Default)]
pub struct MediaFilter {
    /// Only these kinds.
    pub types: Option<Vec<String>>,
    /// Skip files announced larger than this.
    pub max_size: Option<u64>,
    /// Parallel downloads.
    pub concurrency: Option<usize>,
}

/// The media options of a run: `filter` over `[media]`, with `[sdk] max_attempts` as the retry
/// budget of each chunk — the same budget as each `GetChatData` page.
pub fn media_options(config: &Config, filter: &MediaFilter) -> Result<MediaOptions, String> {
    let section: &MediaSection = &config.media;
    let mut options = MediaOptions::build(
        filter.types.as_ref().or(section.types.as_ref()),
        filter.max_size.or(section.max_size),
        filter.concurrency.or(section.concurrency),
    )?;
    if let Some(n) = config.sdk.max_attempts {
        options.download.max_attempts = n.max(1);
    }
    Ok(options)
}

/// Downloads `corp`'s media (see [`media::run_corp`]): the `media` command, and the media step of
/// [`pull_corp`].
pub fn download_media(
    config: &Config,
    corp: &CorpSection,
    options: &MediaOptions,
    stop: &AtomicBool,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<MediaStats, MediaError> {
    let make_source = || {
        crate::source::media_for_corp(config, corp).map_err(|e| ChunkError::Fatal(e.to_string()))
    };
    let scan = |detail: String| MediaError::Scan {
        corp_id: corp.corp_id.clone(),
        detail,
    };
    let out = config.media_dir().map_err(|e| scan(e.to_string()))?;
    let delta = config.delta_target().map_err(|source| MediaError::Delta {
        corp_id: corp.corp_id.clone(),
        source: Box::new(source),
    })?;
    let tables = match &delta {
        Some(target) => media::Tables::Delta(target),
        None => {
            crate::migrate::refuse_legacy(&out).map_err(|e| scan(e.to_string()))?;
            media::Tables::Parquet
        }
    };
    media::run_corp(
        &config.state_path(),
        &corp.corp_id,
        &out,
        tables,
        options,
        &make_source,
        on_bytes,
        stop,
    )
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
