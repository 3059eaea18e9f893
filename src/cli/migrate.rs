//! `wecom-archive migrate`: moves an output tree of an earlier release into the current layout
//! (see `wecom_archive::migrate`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use wecom_archive::config::Config;
use wecom_archive::migrate::{is_legacy, migrate};

/// Arguments of `wecom-archive migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    // `--out` replaces it: see `OptionalConfigArg::yield_to_out`.
    #[command(flatten)]
    pub(super) config: super::args::OptionalConfigArg,

    /// Output root (of `demo`, `pull` or `decrypt`), instead of --config.
    #[arg(long)]
    out: Option<PathBuf>,

    /// Print one JSON document instead of the text report.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (out, state) = match (&args.config.path, &args.out) {
        (_, Some(out)) => (out.clone(), None),
        (Some(path), None) => {
            let config = Config::load(path)?;
            (
                config.out_dir(),
                config.state.is_some().then(|| config.state_path()),
            )
        }
        (None, None) => bail!("give --config FILE or --out DIR"),
    };
    super::refuse_delta(&out, "migrate")?;
    if !out.is_dir() {
        bail!(
            "{} is not a folder: give the output root of demo, pull or decrypt",
            out.display()
        );
    }
    let needed = is_legacy(&out);
    let report = migrate(&out, state.as_deref())?;
    if args.json {
        let doc = serde_json::json!({
            "out": out.display().to_string(),
            "migrated": needed,
            "corps": report.corps,
            "parquet_files": report.parquet_files,
            "rows": report.rows,
            "dead_letter_files": report.dead_letter_files,
            "media_dirs": report.media_dirs,
            "state_moved": report.state_moved,
        });
        super::output::print_json(&doc)?;
    } else if !needed && report.corps.is_empty() {
        println!(
            "{} is already in the current layout; nothing to do",
            out.display()
        );
    } else {
        println!(
            "{}: moved {} corp(s) into the current layout: {} Parquet files ({} rows) rewritten, \
             {} dead-letter files and {} media folders moved{}",
            out.display(),
            report.corps.len(),
            report.parquet_files,
            report.rows,
            report.dead_letter_files,
            report.media_dirs,
            if report.state_moved {
                ", state database moved to _wecom_archive/"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
