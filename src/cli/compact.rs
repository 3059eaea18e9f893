//! `wecom-archive compact`: merges each partition's small Parquet files into files of about
//! `--target-file-mb`, sorted by seq, journaled like a commit (see `sink::compact`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde::Serialize;
use wecom_archive::config::Config;
use wecom_archive::sink::compact::{self, CompactOptions, CompactStats, PartitionCompaction};
use wecom_archive::sink::layout;

use super::output::print_json;

/// Arguments of `wecom-archive compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    // `--out` replaces it: see `OptionalConfigArg::yield_to_out`.
    #[command(flatten)]
    pub(super) config: super::args::OptionalConfigArg,

    /// Output root (of `demo`, `pull` or `serve`), instead of --config; its state database is
    /// created if missing. Delta tables (a folder holding them, file:// or s3://) are optimized.
    #[arg(long, value_name = "DIR|URL")]
    out: Option<PathBuf>,

    #[command(flatten)]
    corp: super::args::CorpFilter,

    /// Only the partitions of days before this one (YYYY-MM-DD); default: every partition.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    before: Option<jiff::civil::Date>,

    /// The size a compacted file aims at, MiB (default: the config's
    /// `[compaction] target_file_mb`, or 128).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    target_file_mb: Option<u64>,

    /// Print one JSON document on stdout instead of the summary lines (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

/// A `YYYY-MM-DD` argument.
pub(super) fn parse_date(s: &str) -> Result<jiff::civil::Date, String> {
    s.parse()
        .map_err(|e| format!("{s:?} is not a date as YYYY-MM-DD: {e}"))
}

/// What `compact --json` prints.
#[derive(Debug, Default, Serialize)]
struct CompactSummary {
    /// One entry per corp compacted.
    corps: Vec<CompactStats>,
    /// Corps whose compaction failed (their errors are on stderr).
    failed: Vec<String>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(root) = delta_root(&args)? {
        return optimize(&args, &root);
    }
    let (out, state_path, target_mb) = match (&args.config.path, &args.out) {
        (Some(path), _) => {
            let config = Config::load(path)?;
            (
                config.out_dir(),
                config.state_path(),
                config.compaction.target_file_mb,
            )
        }
        (None, Some(out)) => {
            if !out.is_dir() {
                bail!(
                    "{} is not a folder (give the output root of demo or pull)",
                    out.display()
                );
            }
            (
                out.clone(),
                layout::state_path(out),
                compact::DEFAULT_TARGET_FILE_MB,
            )
        }
        (None, None) => bail!("give --config FILE or --out DIR"),
    };
    // Every corp on disk, not only the configured ones: `serve` also pulls the corps it learns
    // from authorization events.
    let corps = match args.corp.as_deref() {
        Some(c) => {
            layout::check_corp_id(c).map_err(anyhow::Error::msg)?;
            vec![c.to_owned()]
        }
        None => compact::corps_in(&out)?,
    };
    wecom_archive::migrate::refuse_legacy(&out)?;
    let options = CompactOptions {
        target_file_bytes: args.target_file_mb.unwrap_or(target_mb).max(1) << 20,
        before: args.before,
        ..CompactOptions::default()
    };
    let mut summary = CompactSummary::default();
    let print = |p: &PartitionCompaction| {
        if !args.json {
            println!(
                "{} date={}: {} files -> {}, {} rows, {} -> {}",
                p.corp_id,
                p.date,
                p.files_before,
                p.files_after,
                p.rows,
                mib(p.bytes_before),
                mib(p.bytes_after)
            );
        }
    };
    for corp in &corps {
        // One corp's failure (a pull holds it) does not hold up the others.
        match compact::compact_corp(&out, &state_path, corp, &options, &print)
            .with_context(|| format!("compacting corp {corp}"))
        {
            Ok(stats) => {
                if !args.json {
                    let (before, after) = stats.files();
                    println!(
                        "{corp}: {} of {} partitions compacted, {before} files -> {after}{}",
                        stats.partitions.len(),
                        stats.partitions_seen,
                        match stats.skipped.len() {
                            0 => String::new(),
                            n => format!(", {n} skipped (see the warnings)"),
                        }
                    );
                }
                summary.corps.push(stats);
            }
            Err(e) => {
                eprintln!("error: {}", super::error_chain(&e));
                summary.failed.push(corp.clone());
            }
        }
    }
    if args.json {
        print_json(&summary)?;
    }
    if !summary.failed.is_empty() {
        bail!(
            "compaction failed for {} of {} corps: {}",
            summary.failed.len(),
            corps.len(),
            summary.failed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The root of Delta tables when the output holds them: `format = "delta"` in the config, a URL,
/// or a folder whose `messages` table has a Delta log.
fn delta_root(args: &Args) -> anyhow::Result<Option<String>> {
    let root = match (&args.config.path, &args.out) {
        (Some(path), _) => {
            let config = Config::load(path)?;
            if config.format != wecom_archive::sink::Format::Delta {
                return Ok(None);
            }
            config.out_dir()
        }
        (None, Some(out)) => out.clone(),
        (None, None) => return Ok(None),
    };
    let delta = wecom_archive::sink::delta::is_delta_tree(&root);
    Ok(delta.then(|| root.to_string_lossy().into_owned()))
}

/// What `compact --json` prints for Delta tables.
#[derive(Debug, Default, Serialize)]
struct OptimizeSummary {
    tables: Vec<wecom_archive::sink::delta::maintain::OptimizeReport>,
}

/// Delta OPTIMIZE: each table's small files bin-packed into files of about the target size, one
/// commit per table with `dataChange = false`.
fn optimize(args: &Args, root: &str) -> anyhow::Result<ExitCode> {
    use wecom_archive::sink::delta::{maintain, read, DeltaTarget, TableKind};
    if args.corp.is_some() || args.before.is_some() {
        bail!("--corp and --before apply to Parquet files; OPTIMIZE of Delta tables covers every partition");
    }
    let target_mb = match &args.config.path {
        Some(path) => Config::load(path)?.compaction.target_file_mb,
        None => compact::DEFAULT_TARGET_FILE_MB,
    };
    let target_bytes = (args.target_file_mb.unwrap_or(target_mb).max(1) << 20) as i64;
    let delta = DeltaTarget::open(root)?;
    let props = wecom_archive::sink::parquet::ParquetOptions::default().writer_properties()?;
    let mut summary = OptimizeSummary::default();
    for kind in TableKind::ALL {
        if read::view(&delta, kind)?.version.is_none() {
            continue;
        }
        let report = maintain::optimize(&delta, kind, target_bytes, &props)?;
        if !args.json {
            println!(
                "{}: {} files -> {}, {} rows{}",
                report.table,
                report.files_removed,
                report.files_added,
                report.rows,
                match report.version {
                    Some(v) => format!(" (OPTIMIZE at version {v})"),
                    None => " (nothing to merge)".to_owned(),
                }
            );
        }
        summary.tables.push(report);
    }
    if args.json {
        print_json(&summary)?;
    }
    Ok(ExitCode::SUCCESS)
}
