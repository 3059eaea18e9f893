//! `wecom-archive scan`: applies the current rule set to what is already archived (see
//! `wecom_archive::scan`), without touching the pull checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde::Serialize;
use wecom_archive::config::Config;
use wecom_archive::scan::{self, ScanRange, ScanStats};
use wecom_archive::sink::{compact, layout};
use wecom_archive::state::StateStore;

use super::output::print_json;

/// Arguments of `wecom-archive scan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    // `--out` replaces it: see `OptionalConfigArg::yield_to_out`.
    #[command(flatten)]
    pub(super) config: super::args::OptionalConfigArg,

    /// Output root (of `demo`, `pull` or `serve`), instead of --config; needs --rules.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    #[command(flatten)]
    corp: super::args::CorpFilter,

    /// First day to scan (YYYY-MM-DD, a `date=` partition); default: the first.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = super::compact::parse_date)]
    from: Option<jiff::civil::Date>,

    /// Last day to scan (YYYY-MM-DD, inclusive); default: the last.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = super::compact::parse_date)]
    to: Option<jiff::civil::Date>,

    /// The rules (default: the config's `rules`).
    #[command(flatten)]
    rules: super::args::RulesArg,

    /// Print one JSON document on stdout instead of the summary lines (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

/// What `scan --json` prints.
#[derive(Debug, Default, Serialize)]
struct ScanSummary {
    /// One entry per corp scanned.
    corps: Vec<ScanStats>,
    /// Corps whose scan failed (their errors are on stderr).
    failed: Vec<String>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (out, state_path, config_rules) = match (&args.config.path, &args.out) {
        (Some(path), _) => {
            let config = Config::load(path)?;
            (config.out_dir(), config.state_path(), config.rule_set()?)
        }
        (None, Some(out)) => (out.clone(), layout::state_path(out), None),
        (None, None) => bail!("give --config FILE or --out DIR"),
    };
    super::refuse_delta(&out, "scan")?;
    let Some(rules) = args.rules.load()?.or(config_rules) else {
        bail!(
            "no rules to scan with: give --rules FILE, or `rules = \"rules.toml\"` in the config"
        );
    };
    if !layout::messages_root(&out).is_dir() {
        bail!(
            "{} has no messages folder: give the output root of demo, pull or serve",
            out.display()
        );
    }
    if let (Some(f), Some(t)) = (args.from, args.to) {
        if f > t {
            bail!("--from {f} is after --to {t}: nothing would be scanned");
        }
    }
    wecom_archive::migrate::refuse_legacy(&out)?;
    // Every corp on disk, not only the configured ones (as `compact`).
    let corps = match args.corp.as_deref() {
        Some(c) => {
            layout::check_corp_id(c).map_err(anyhow::Error::msg)?;
            vec![c.to_owned()]
        }
        None => compact::corps_in(&out)?,
    };
    let range = ScanRange {
        from: args.from,
        to: args.to,
    };
    let mut store = StateStore::open(&state_path)?;
    let mut summary = ScanSummary::default();
    for corp in &corps {
        match scan::scan_corp(&out, &mut store, corp, &rules, &range)
            .with_context(|| format!("scanning corp {corp}"))
        {
            Ok(stats) => {
                if !args.json {
                    println!(
                        "{corp}: rules {}…: {} files screened ({} already screened by this \
                         version), {} messages, {} findings{}",
                        &stats.rule_set_version[..12],
                        stats.files_scanned,
                        stats.files_already,
                        stats.messages,
                        stats.findings,
                        match stats.unparsed {
                            0 => String::new(),
                            n => format!(", {n} rows not screened (see the warnings)"),
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
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
