//! What `--json` prints: one JSON document on stdout per command, instead of the human summary.
//! The shapes are documented in `docs/cli.md`; a field is added, never renamed or removed.
//!
//! A run (`demo`, `decrypt`, and per corp `pull`) is a [`RunSummary`]; `pull` prints a
//! [`PullSummary`] holding one per corp, so a script reads every run the same way.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use wecom_archive::pipeline::RunStats;
use wecom_archive::pull::{Outcome, PullReport};
use wecom_archive::sink::inventory::Inventory;
use wecom_archive::state::RunRecord;

/// Prints `value` as one JSON document (pretty, newline-terminated) on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A path as text (lossy for the rare path that is not UTF-8: JSON strings must be).
fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The lowest and highest seq of a set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeqRange {
    /// Lowest seq.
    pub first: u64,
    /// Highest seq.
    pub last: u64,
}

impl SeqRange {
    fn from_pair((first, last): (u64, u64)) -> Self {
        SeqRange { first, last }
    }
}

/// One committed Parquet file of a run.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    /// Where it is.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Its lowest seq.
    pub first_seq: u64,
    /// Its highest seq.
    pub last_seq: u64,
}

/// What one pipeline run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The corp (`null` for `decrypt`, which has none).
    pub corp_id: Option<String>,
    /// Entries received from the source (records and malformed entries).
    pub records_in: u64,
    /// Rows written to Parquet.
    pub written: u64,
    /// Entries sent to the dead letters.
    pub dead_lettered: u64,
    /// Records skipped as already committed (seq at or below the checkpoint, or msgid seen).
    pub duplicates: u64,
    /// Lowest and highest seq written (`null`: no rows).
    pub seq_range: Option<SeqRange>,
    /// The checkpoint after the last commit (`null`: the run keeps none, as `decrypt`).
    pub checkpoint: Option<u64>,
    /// Commits made.
    pub commits: u64,
    /// Bytes of encrypted input.
    pub input_bytes: u64,
    /// Parquet files committed.
    pub files: Vec<FileSummary>,
    /// Dead-letter files committed.
    pub dead_letter_files: Vec<String>,
    /// Findings rows written (one per message and rule that fired; 0 without rules).
    pub findings: u64,
    /// Findings files committed.
    pub findings_files: Vec<FileSummary>,
    /// Input entries per second.
    pub msgs_per_sec: f64,
    /// Wall time of the run, in seconds.
    pub elapsed_secs: f64,
    /// `"SIGINT"` or `"SIGTERM"` when a signal stopped the run early (what was read before it
    /// is committed); `null` when the run went to its end.
    pub interrupted_by: Option<String>,
    /// How the run ended: `ok`, `interrupted` or `failed` (as the run history records it).
    pub outcome: &'static str,
    /// Why it failed (`null` unless `outcome` is `failed`).
    pub error: Option<String>,
    /// `pull` with media: what the download after the pull did (`null`: none ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaSummary>,
    /// `pull --follow`: what the compaction of closed days after the pull did (`null`: none
    /// ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compaction: Option<CompactionSummary>,
}

/// What a compaction of closed days after a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionSummary {
    /// Partitions rewritten.
    pub partitions: usize,
    /// Their files before.
    pub files_before: usize,
    /// Their files after.
    pub files_after: usize,
    /// Why the compaction failed (`null`: it ran).
    pub error: Option<String>,
}

/// What a media download after a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct MediaSummary {
    /// Files tried.
    pub attempted: u64,
    /// Files complete with a matching md5.
    pub verified: u64,
    /// Files that failed this run (tried again next run).
    pub failed: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Why the download failed as a whole (`null`: it ran).
    pub error: Option<String>,
}

impl RunSummary {
    /// The summary of `stats`, for `corp_id`.
    pub fn new(corp_id: Option<&str>, stats: &RunStats) -> Self {
        RunSummary {
            corp_id: corp_id.map(str::to_owned),
            records_in: stats.records_in,
            written: stats.written,
            dead_lettered: stats.dead_lettered,
            duplicates: stats.duplicates,
            seq_range: stats.seq_range.map(SeqRange::from_pair),
            checkpoint: stats.checkpoint,
            commits: stats.commits,
            input_bytes: stats.input_bytes,
            files: stats
                .files
                .iter()
                .map(|f| FileSummary {
                    path: text(&f.path),
                    rows: f.rows,
                    first_seq: f.first_seq,
                    last_seq: f.last_seq,
                })
                .collect(),
            dead_letter_files: stats.dead_letter_files.iter().map(|p| text(p)).collect(),
            findings: stats.findings,
            findings_files: stats
                .findings_files
                .iter()
                .map(|f| FileSummary {
                    path: text(&f.path),
                    rows: f.rows,
                    first_seq: f.first_seq,
                    last_seq: f.last_seq,
                })
                .collect(),
            msgs_per_sec: stats.msgs_per_sec(),
            elapsed_secs: stats.elapsed.as_secs_f64(),
            interrupted_by: None,
            outcome: Outcome::Ok.as_str(),
            error: None,
            media: None,
            compaction: None,
        }
    }

    /// Marks the run as stopped early by `signal` (a name such as `SIGINT`), if any.
    pub fn interrupted_by(mut self, signal: Option<&str>) -> Self {
        self.interrupted_by = signal.map(str::to_owned);
        if signal.is_some() {
            self.outcome = Outcome::Interrupted.as_str();
        }
        self
    }

    /// The summary of one corp's pull.
    pub fn of_pull(report: &PullReport, signal: Option<&str>) -> Self {
        let mut s = RunSummary::new(Some(&report.corp_id), &report.stats);
        s.outcome = report.outcome.as_str();
        s.error = report.error.clone();
        if report.outcome == Outcome::Interrupted {
            s.interrupted_by = signal.map(str::to_owned);
        }
        s.media = report.media.as_ref().map(|m| match m {
            Ok(stats) => MediaSummary {
                attempted: stats.attempted,
                verified: stats.verified,
                failed: stats.failed,
                bytes: stats.bytes,
                error: None,
            },
            Err(e) => MediaSummary {
                attempted: 0,
                verified: 0,
                failed: 0,
                bytes: 0,
                error: Some(e.clone()),
            },
        });
        s.compaction = report.compaction.as_ref().map(|c| match c {
            Ok(stats) => {
                let (files_before, files_after) = stats.files();
                CompactionSummary {
                    partitions: stats.partitions.len(),
                    files_before,
                    files_after,
                    error: None,
                }
            }
            Err(e) => CompactionSummary {
                partitions: 0,
                files_before: 0,
                files_after: 0,
                error: Some(e.clone()),
            },
        });
        s
    }
}

/// What `pull --json` prints: one run per corp, in the order pulled.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullSummary {
    /// The corps' runs.
    pub corps: Vec<RunSummary>,
    /// Corps whose pull (or media download) failed; their errors are on stderr.
    pub failed: Vec<String>,
    /// With `[alerts]` webhooks: the alert delivery after the pull.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<PullAlertsSummary>,
}

/// Rows of one `corp_id=…/date=…` partition (both empty for a flat `decrypt` output).
#[derive(Debug, Clone, Serialize)]
pub struct PartitionRows {
    /// The corp.
    pub corp_id: String,
    /// The local day.
    pub date: String,
    /// Rows.
    pub rows: u64,
}

/// A corp's checkpoint and its latest runs, from the state store.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointSummary {
    /// The corp.
    pub corp_id: String,
    /// The last committed seq.
    pub seq: u64,
    /// The latest runs, newest first.
    pub runs: Vec<RunHistory>,
}

/// One run of the history.
#[derive(Debug, Clone, Serialize)]
pub struct RunHistory {
    /// Unix seconds at start.
    pub started_at: i64,
    /// Unix seconds at the end.
    pub finished_at: i64,
    /// Checkpoint before the run.
    pub from_seq: u64,
    /// Checkpoint after the run.
    pub to_seq: u64,
    /// Rows written.
    pub written: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// `ok`, or the error that stopped the run.
    pub outcome: String,
}

impl From<RunRecord> for RunHistory {
    fn from(r: RunRecord) -> Self {
        RunHistory {
            started_at: r.started_at,
            finished_at: r.finished_at,
            from_seq: r.from_seq,
            to_seq: r.to_seq,
            written: r.written,
            dead_lettered: r.dead_lettered,
            outcome: r.outcome,
        }
    }
}

/// What `inspect` finds in an output directory. The human output is printed from it too.
#[derive(Debug, Clone, Serialize)]
pub struct InspectSummary {
    /// The directory.
    pub dir: String,
    /// Rows in all committed Parquet files.
    pub rows: u64,
    /// Committed Parquet files.
    pub files: u64,
    /// Lowest and highest seq of the rows (`null`: no rows).
    pub seq_range: Option<SeqRange>,
    /// Rows by partition.
    pub partitions: Vec<PartitionRows>,
    /// Rows by msgtype.
    pub msgtypes: BTreeMap<String, u64>,
    /// Dead letters in all.
    pub dead_letters: u64,
    /// Dead letters by error kind.
    pub dead_letters_by_kind: BTreeMap<String, u64>,
    /// Seqs found more than once across rows and dead letters (should be empty).
    pub duplicate_seqs: Vec<u64>,
    /// Ranges of seqs missing between rows and dead letters, `[first, last]`; at most
    /// `--max-gaps` of them (`gap_count` has them all).
    pub gaps: Vec<[u64; 2]>,
    /// Gaps in all.
    pub gap_count: u64,
    /// Seqs missing in all the gaps.
    pub missing_seqs: u64,
    /// Uncommitted temporaries (a run in progress, or crashed).
    pub temporaries: u64,
    /// Checkpoints, when the directory has a state store.
    pub checkpoints: Vec<CheckpointSummary>,
    /// Findings rows by rule-set version, rule and severity (empty without rules).
    pub findings: Vec<FindingsCount>,
}

/// Findings of one rule under one rule-set version (`inspect`).
#[derive(Debug, Clone, Serialize)]
pub struct FindingsCount {
    /// The rule set's version.
    pub rule_set_version: String,
    /// The rule.
    pub rule_id: String,
    /// Its severity.
    pub severity: String,
    /// Findings rows.
    pub rows: u64,
}

impl InspectSummary {
    /// The summary of `inv`, scanned from `dir`, listing at most `max_gaps` gaps.
    pub fn new(
        dir: &Path,
        inv: &Inventory,
        max_gaps: usize,
        checkpoints: Vec<CheckpointSummary>,
    ) -> Self {
        let gaps = inv.gaps();
        InspectSummary {
            dir: text(dir),
            rows: inv.rows(),
            files: inv.files,
            seq_range: inv
                .seqs
                .first()
                .zip(inv.seqs.last())
                .map(|(&a, &b)| SeqRange::from_pair((a, b))),
            partitions: inv
                .by_partition
                .iter()
                .map(|((corp_id, date), &rows)| PartitionRows {
                    corp_id: corp_id.clone(),
                    date: date.clone(),
                    rows,
                })
                .collect(),
            msgtypes: inv.by_msgtype.clone(),
            dead_letters: inv.dead_by_kind.values().sum(),
            dead_letters_by_kind: inv.dead_by_kind.clone(),
            duplicate_seqs: inv.duplicate_seqs(),
            gap_count: gaps.len() as u64,
            missing_seqs: gaps.iter().map(|(a, b)| b - a + 1).sum(),
            gaps: gaps.iter().take(max_gaps).map(|&(a, b)| [a, b]).collect(),
            temporaries: inv.temporaries,
            checkpoints,
            findings: inv
                .findings
                .iter()
                .map(|((v, r, sev), &rows)| FindingsCount {
                    rule_set_version: v.clone(),
                    rule_id: r.clone(),
                    severity: sev.clone(),
                    rows,
                })
                .collect(),
        }
    }
}

/// The rule set `bench` screened with.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRules {
    /// Rules.
    pub rules: usize,
    /// Keywords of all rules.
    pub keywords: usize,
    /// Regexes of all rules.
    pub regexes: usize,
    /// The rule-set version.
    pub version: String,
}

/// One round of `bench`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRound {
    /// 1-based.
    pub round: u32,
    /// Raw RSA unwraps per second on one core.
    pub raw_unwrap_ops_per_sec: f64,
    /// The pipeline with every stage pinned to one CPU (`null` with `--skip-single`).
    pub pipeline_one_core_msgs_per_sec: Option<f64>,
    /// The pipeline on all cores (or `--threads`).
    pub pipeline_all_cores_msgs_per_sec: f64,
}

/// The best pipeline run of `bench` on some cores.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRun {
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Messages in the run.
    pub messages: u64,
    /// Wall time, in seconds.
    pub elapsed_secs: f64,
    /// Encrypted input, in MiB.
    pub input_mib: f64,
}

impl BenchRun {
    /// The figures of `stats`.
    pub fn new(stats: &RunStats) -> Self {
        BenchRun {
            msgs_per_sec: stats.msgs_per_sec(),
            messages: stats.records_in,
            elapsed_secs: stats.elapsed.as_secs_f64(),
            input_mib: stats.input_bytes as f64 / (1024.0 * 1024.0),
        }
    }
}

/// What `bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchSummary {
    /// RSA backend.
    pub backend: String,
    /// The pipeline runs' output format: `parquet` or `delta`.
    pub format: &'static str,
    /// The rules of `--rules` (`null`: none).
    pub rules: Option<BenchRules>,
    /// Findings rows of the best all-core run.
    pub findings: u64,
    /// Threads of the "all cores" runs.
    pub cores: usize,
    /// Records the simulator generates per second on one core.
    pub simulator_records_per_sec: f64,
    /// Every round.
    pub rounds: Vec<BenchRound>,
    /// Best raw RSA unwrap rate on one core.
    pub raw_unwrap_ops_per_sec: f64,
    /// Best one-core pipeline run (`null` with `--skip-single`).
    pub pipeline_one_core: Option<BenchRun>,
    /// Best all-core pipeline run.
    pub pipeline_all_cores: BenchRun,
    /// pipeline(1 core) / raw unwrap(1 core).
    pub ratio_one_core_to_unwrap: Option<f64>,
    /// pipeline(all cores) / pipeline(1 core).
    pub ratio_all_cores_to_one_core: Option<f64>,
    /// pipeline(all cores) / (cores × raw unwrap).
    pub ratio_all_cores_to_unwrap_per_core: f64,
    /// Peak resident set, in MiB (`null` where /proc does not tell).
    pub peak_rss_mib: Option<f64>,
}

/// What the delivery after a pull did, for `pull --json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullAlertsSummary {
    /// Alerts the receivers accepted during this pass.
    pub delivered: u64,
    /// Deliveries still pending afterwards (kept for the next run).
    pub pending: u64,
    /// Deliveries that used up their attempts (over all time).
    pub failed: u64,
    /// Why the pass could not run (`null`: it ran).
    pub error: Option<String>,
}
