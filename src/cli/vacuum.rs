//! `wecom-archive vacuum`: deletes the files of Delta tables that no commit references any more
//! (merged by `compact`, or uploaded by a run that was killed before its commit).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;
use wecom_archive::config::Config;
use wecom_archive::sink::delta::maintain::{self, VacuumReport};
use wecom_archive::sink::delta::{read, DeltaTarget, TableKind};

use super::output::print_json;

/// Arguments of `wecom-archive vacuum`.
#[derive(Debug, clap::Args)]
pub struct Args {
    // `--out` replaces it: see `OptionalConfigArg::yield_to_out`.
    #[command(flatten)]
    pub(super) config: super::args::OptionalConfigArg,

    /// Output root of Delta tables (a folder, file:// or s3://bucket/prefix), instead of
    /// --config.
    #[arg(long, value_name = "DIR|URL")]
    out: Option<PathBuf>,

    /// Keep unreferenced files younger than this many hours. A file uploaded for a commit that
    /// is still being made is unreferenced until that commit lands: keep this longer than a
    /// commit of a running pull takes (0 only when nothing writes).
    #[arg(long, value_name = "N", default_value_t = 168)]
    retain_hours: u64,

    /// Print one JSON document on stdout instead of the summary lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, Serialize)]
struct VacuumSummary {
    tables: Vec<VacuumReport>,
}

/// The Delta root of `--config` or `--out`.
pub(super) fn delta_root(
    config: &Option<PathBuf>,
    out: &Option<PathBuf>,
) -> anyhow::Result<String> {
    match (config, out) {
        (Some(path), _) => {
            let config = Config::load(path)?;
            if config.format != wecom_archive::sink::Format::Delta {
                bail!(
                    "{}: format is not \"delta\"; vacuum works on Delta tables",
                    path.display()
                );
            }
            Ok(config.out_dir().to_string_lossy().into_owned())
        }
        (None, Some(out)) => Ok(out.to_string_lossy().into_owned()),
        (None, None) => bail!("give --config FILE or --out DIR|URL"),
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = delta_root(&args.config.path, &args.out)?;
    let target = DeltaTarget::open(&root)?;
    let mut summary = VacuumSummary::default();
    for kind in TableKind::ALL {
        if read::view(&target, kind)?.version.is_none() {
            continue;
        }
        let report = maintain::vacuum(&target, kind, args.retain_hours)?;
        if !args.json {
            println!(
                "{}: {} unreferenced files deleted",
                report.table,
                report.files_deleted.len()
            );
        }
        summary.tables.push(report);
    }
    if summary.tables.is_empty() {
        bail!("no Delta table under {root} (run demo or pull with format delta first)");
    }
    if args.json {
        print_json(&summary)?;
    }
    Ok(ExitCode::SUCCESS)
}
