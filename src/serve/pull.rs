//! The real [`Puller`]: one pipeline run of a configured corp into the Hive-partitioned output,
//! checkpointed in the state database, recorded in the run history.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::auth::clock::Clock;
use crate::config::Config;
use crate::pipeline::{self, Layout, Output, RunOptions};
use crate::serve::metrics::PullReport;
use crate::serve::scheduler::Puller;
use crate::state::{RunRecord, StateStore};

/// Pulls the corps of a [`Config`] with the pipeline.
#[derive(Debug)]
pub struct PipelinePuller {
    config: Arc<Config>,
    options: RunOptions,
    clock: Arc<dyn Clock>,
}

impl PipelinePuller {
    /// Pulls with `config`'s sources and output, committing every `commit_every` records.
    pub fn new(config: Arc<Config>, commit_every: u64, clock: Arc<dyn Clock>) -> Self {
        PipelinePuller {
            config,
            options: RunOptions {
                commit_every: commit_every.max(1),
                ..RunOptions::default()
            },
            clock,
        }
    }

    fn run(&self, corp_id: &str, stop: &AtomicBool) -> Result<PullReport, String> {
        let corp = self
            .config
            .corps
            .iter()
            .find(|c| c.corp_id == corp_id)
            .ok_or_else(|| format!("corp {corp_id} has no [[corp]] section"))?;
        let (mut source, keyring) =
            crate::source::for_corp(&self.config, corp).map_err(|e| e.to_string())?;
        // Its own connection: the pull holds it for the whole run, so sharing the callback
        // side's connection would stall callbacks behind it. SQLite WAL allows both.
        let mut store = StateStore::open(&self.config.state_path()).map_err(|e| e.to_string())?;
        let before = store.checkpoint(corp_id).map_err(|e| e.to_string())?;
        let started_at = self.clock.now_unix();
        let result = pipeline::run(
            source.as_mut(),
            &keyring,
            Output {
                dir: &self.config.out_dir(),
                layout: Layout::Hive {
                    corp_id: corp_id.to_owned(),
                    tz: self.config.tz(),
                },
                state: Some(&mut store),
            },
            &self.options,
            stop,
            &|_| {},
        );
        let after = store.checkpoint(corp_id).ok().flatten();
        let stopped = stop.load(std::sync::atomic::Ordering::SeqCst);
        if result.is_ok() && !stopped && self.config.media.on_pull {
            self.download_media(corp, stop);
        }
        let report = PullReport {
            written: result.as_ref().map_or(0, |s| s.written),
            dead_lettered: result.as_ref().map_or(0, |s| s.dead_lettered),
            from_seq: before.unwrap_or(0),
            to_seq: after.unwrap_or(0),
            caught_up: result.is_ok() && !stopped,
            error: result
                .as_ref()
                .err()
                .map(|e| format!("corp {corp_id}: {e}")),
        };
        let run = RunRecord {
            corp_id: corp_id.to_owned(),
            started_at,
            finished_at: self.clock.now_unix(),
            from_seq: report.from_seq,
            to_seq: report.to_seq,
            written: report.written,
            dead_lettered: report.dead_lettered,
            outcome: match &result {
                Ok(_) if stopped => "stopped".to_owned(),
                Ok(_) => "ok".to_owned(),
                Err(e) => e.to_string(),
            },
        };
        if let Err(e) = store.record_run(&run) {
            tracing::warn!(corp = corp_id, error = %e, "could not record the run history");
        }
        Ok(report)
    }
}

impl PipelinePuller {
    /// `[media] on_pull`: fetches the media of what just landed. A media failure is logged and
    /// retried at the next pull (downloads resume); it never fails the pull itself.
    fn download_media(&self, corp: &crate::config::CorpSection, stop: &AtomicBool) {
        let section = &self.config.media;
        let options = match crate::media::MediaOptions::build(
            section.types.as_ref(),
            section.max_size,
            section.concurrency,
        ) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(corp = %corp.corp_id, error = %e, "media download skipped");
                return;
            }
        };
        let make_source = || {
            crate::source::media_for_corp(&self.config, corp)
                .map_err(|e| crate::media::ChunkError::Fatal(e.to_string()))
        };
        let corp_dir = crate::media::store::corp_dir(&self.config.out_dir(), &corp.corp_id);
        match crate::media::run_corp(
            &self.config.state_path(),
            &corp.corp_id,
            &corp_dir,
            &options,
            &make_source,
            &|_| {},
            stop,
        ) {
            Ok(stats) => tracing::info!(corp = %corp.corp_id, stats = ?stats, "media downloaded"),
            Err(e) => tracing::warn!(corp = %corp.corp_id, error = %e, "media download failed"),
        }
    }
}

impl Puller for PipelinePuller {
    fn pull(&self, corp_id: &str, stop: &AtomicBool) -> PullReport {
        self.run(corp_id, stop).unwrap_or_else(|e| PullReport {
            error: Some(e),
            ..PullReport::default()
        })
    }
}
