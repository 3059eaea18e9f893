//! The real [`Puller`]: each scheduled pull is [`crate::pull::pull_corp`] with the config's
//! `[serve] commit_every`, `[media] on_pull` and `[compaction] auto`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::pull::{Observer, PullOptions, PullReport};
use crate::serve::scheduler::Puller;

/// Pulls the corps of a [`Config`] with the pipeline.
#[derive(Debug)]
pub struct PipelinePuller {
    config: Arc<Config>,
    options: PullOptions,
}

impl PipelinePuller {
    /// Pulls with `config`'s sources and output, committing every `commit_every` records.
    ///
    /// A `[media]` section that does not parse, or a rules file that does not load, is reported
    /// here, at start, rather than at each pull.
    pub fn new(config: Arc<Config>, commit_every: u64) -> Result<Self, String> {
        let media = match config.media.on_pull {
            true => Some(crate::pull::media_options(&config, &Default::default())?),
            false => None,
        };
        Ok(PipelinePuller {
            options: PullOptions {
                commit_every: commit_every.max(1),
                media,
                compact: config.compaction.auto.then(|| {
                    let today = jiff::Zoned::now().with_time_zone(config.tz()).date();
                    config.compaction.options(today)
                }),
                rules: config.rule_set().map_err(|e| e.to_string())?,
                alert_min: config.alerts_min_severity(),
                // Every notify asks for a pull, whoever pulled last.
                once: false,
            },
            config,
        })
    }
}

impl Puller for PipelinePuller {
    fn pull(&self, corp_id: &str, stop: &AtomicBool) -> PullReport {
        let corp = match crate::pull::corp(&self.config, corp_id) {
            Ok(c) => c,
            Err(e) => return PullReport::failed(corp_id, &e),
        };
        let report =
            crate::pull::pull_corp(&self.config, corp, &self.options, stop, &Observer::quiet());
        // A media failure never fails the pull: downloads resume at the next one.
        match &report.media {
            Some(Ok(stats)) => tracing::info!(corp = corp_id, stats = ?stats, "media downloaded"),
            Some(Err(e)) => tracing::warn!(corp = corp_id, error = %e, "media download failed"),
            None => {}
        }
        // Nor does a compaction failure: the small files stay until the next one.
        if let Some(Err(e)) = &report.compaction {
            tracing::warn!(corp = corp_id, error = %e, "compaction of closed days failed");
        }
        report
    }
}
