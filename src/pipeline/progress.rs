//! Progress of a run: a live bar on a terminal, plain log lines otherwise, and the final
//! summary. The pipeline only calls [`Progress::update`]; how it is shown is decided here.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::RunStats;

/// The bar on screen, if any: log lines are written above it instead of through it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Writes a log line to stderr, above the progress bar when one is shown (so the bar is
/// redrawn below the line instead of being torn).
pub fn write_log(buf: &[u8]) -> std::io::Result<()> {
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match active {
        Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)),
        None => std::io::stderr().write_all(buf),
    }
}

/// Makes `bar` the bar that log lines are written above (a bar of another kind of run, such as
/// the media download's); `None` when it is gone.
pub fn set_active_bar(bar: Option<&ProgressBar>) {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = bar.cloned();
}

/// Shows the progress of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    /// A progress display for a run of about `expected` records (`None`: unknown), labelled
    /// `label` (a corp id, a file name). A bar when stderr is a terminal, log lines otherwise.
    pub fn new(label: &str, expected: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match expected {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::no_length(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let template = if expected.is_some() {
                "{prefix} [{bar:30}] {pos}/{len} records  {msg}  eta {eta}"
            } else {
                "{prefix} {spinner} {pos} records  {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(250));
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
        }
    }

    /// Reports the stats so far.
    pub fn update(&self, s: &RunStats) {
        let rate = format!(
            "{:.0} msgs/s, {} written, {} dead-lettered",
            s.msgs_per_sec(),
            s.written,
            s.dead_lettered
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(s.records_in);
                bar.set_message(rate);
            }
            None => tracing::info!(
                target: "progress",
                label = %self.label,
                records = s.records_in,
                written = s.written,
                dead_lettered = s.dead_lettered,
                checkpoint = s.checkpoint,
                msgs_per_sec = format!("{:.0}", s.msgs_per_sec()),
                "progress"
            ),
        }
    }

    /// Removes the bar (the summary is printed by the caller).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
            bar.finish_and_clear();
        }
    }
}

/// The one-line summary of a run.
pub fn summary(s: &RunStats) -> String {
    let seqs = match s.seq_range {
        Some((a, b)) => format!("seq {a}..={b}"),
        None => "no rows".to_string(),
    };
    let checkpoint = match s.checkpoint {
        Some(c) => format!(", checkpoint {c}"),
        None => String::new(),
    };
    let findings = match s.findings {
        0 => String::new(),
        n => format!(", {n} findings"),
    };
    format!(
        "{} records in, {} written, {} dead-lettered, {} duplicates skipped, {:.1} MiB in, \
         {:.0} msgs/s ({:.2} s), {seqs}{checkpoint}{findings}",
        s.records_in,
        s.written,
        s.dead_lettered,
        s.duplicates,
        s.input_bytes as f64 / (1024.0 * 1024.0),
        s.msgs_per_sec(),
        s.elapsed.as_secs_f64()
    )
}
