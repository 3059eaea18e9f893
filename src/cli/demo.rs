//! `wecom-archive demo`: the simulator through the whole pipeline into Hive-partitioned
//! Parquet, checkpointed. No WeCom account needed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wecom_archive::crypto::unwrap::Backend;
use wecom_archive::pipeline::progress::summary;
use wecom_archive::pipeline::RunOptions;
use wecom_archive::pull::{self, Target};
use wecom_archive::sink::delta::{self, DeltaTarget};
use wecom_archive::sink::Format;
use wecom_archive::source::sim::{demo_keyring, SimConfig, SimSource};
use wecom_archive::state::StateStore;

use super::output::{print_json, RunSummary};

/// Arguments of `wecom-archive demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Messages in the simulated archive (seqs 1..=N).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,

    /// Output directory (Parquet under corp_id=…/date=…, dead letters, state.sqlite); with
    /// `--format delta` also a `file://` or `s3://bucket/prefix` URL.
    #[arg(long, default_value = "wecom-archive-demo")]
    out: PathBuf,

    /// Table format: Parquet files, or Delta Lake tables (see the README's "Delta Lake and
    /// object storage").
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    format: Format,

    /// Simulator seed: the same seed gives the same archive.
    #[arg(long, default_value_t = 2026)]
    seed: u64,

    /// Corrupt every Nth record in transit, to show the dead letters (0: none).
    #[arg(long, default_value_t = 5_000)]
    corrupt_every: u64,

    /// The simulated corp's id.
    #[arg(long, default_value = "wwdemo0000000001", value_parser = wecom_archive::sink::layout::parse_corp_id)]
    corp_id: String,

    /// Time zone of the date= partitions.
    #[arg(long, default_value = "Asia/Shanghai")]
    timezone: String,

    /// Records per commit (each commit moves the checkpoint).
    #[arg(long, default_value_t = 100_000)]
    commit_every: u64,

    /// Records per simulated GetChatData page (at most 1000).
    #[arg(long, default_value_t = 1000)]
    page_size: u32,

    /// Start over: delete the output directory first.
    #[arg(long)]
    fresh: bool,

    /// Print one JSON document (the run's summary, see docs/cli.md) instead of the text summary.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    pub(super) threads: super::args::ThreadsArg,

    #[command(flatten)]
    rules: super::args::RulesArg,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stop = super::Stop::install();
    let tz = jiff::tz::TimeZone::get(&args.timezone)
        .with_context(|| format!("time zone {:?}", args.timezone))?;
    let out_str = args.out.to_string_lossy().into_owned();
    let remote = delta::is_url(&out_str);
    if remote && args.format != Format::Delta {
        anyhow::bail!("--out {out_str}: a URL needs --format delta (Parquet files go to a folder)");
    }
    if args.fresh && remote {
        anyhow::bail!("--fresh deletes a folder; delete the tables under {out_str} yourself");
    }
    if args.fresh && args.out.exists() {
        std::fs::remove_dir_all(&args.out)
            .with_context(|| format!("removing {}", args.out.display()))?;
    }
    // Run history (and, for Parquet, the checkpoints) live in a local state store; an object
    // store output keeps the run history in the system's temporary folder.
    let state_path = if remote {
        std::env::temp_dir()
            .join("wecom-archive-demo-state")
            .join(wecom_archive::sink::layout::STATE_FILE)
    } else {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        wecom_archive::sink::layout::state_path(&args.out)
    };
    if args.format == Format::Parquet {
        wecom_archive::migrate::refuse_legacy(&args.out)?;
    }
    if let Some(dir) = state_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut store = StateStore::open(&state_path)?;
    let delta = match args.format {
        Format::Delta => Some(std::sync::Arc::new(DeltaTarget::open(&out_str)?)),
        Format::Parquet => None,
    };
    let keyring = demo_keyring(Backend::default())?;
    let mut source = SimSource::new(SimConfig {
        messages: args.messages,
        seed: args.seed,
        corrupt_every: args.corrupt_every,
        ..SimConfig::default()
    });
    let before = match &delta {
        Some(target) => delta::corp_checkpoint(target, &args.corp_id)?,
        None => store.checkpoint(&args.corp_id)?,
    };
    let options = RunOptions {
        commit_every: args.commit_every.max(1),
        page_size: args.page_size,
        rules: args.rules.load()?,
        ..RunOptions::default()
    };
    let remaining = args.messages.saturating_sub(before.unwrap_or(0));
    if !super::quiet() {
        eprintln!(
            "demo: {} -> {} (corp {}, {} threads{})",
            wecom_archive::source::Source::describe(&source),
            args.out.display(),
            args.corp_id,
            rayon::current_num_threads(),
            match before {
                Some(c) => format!(", resuming after checkpoint {c}"),
                None => String::new(),
            }
        );
    }
    let progress = super::progress("demo", Some(remaining));
    let report = pull::pull_source(
        &mut store,
        &Target {
            out: &args.out,
            corp_id: &args.corp_id,
            tz,
            delta: delta.clone(),
        },
        &mut source,
        &keyring,
        &options,
        stop.flag(),
        &|s| {
            if let Some(p) = &progress {
                p.update(s);
            }
        },
    );
    if let Some(p) = &progress {
        p.finish();
    }
    if let Some(e) = report.error {
        anyhow::bail!(e);
    }
    let stats = report.stats;
    let finished = stop.exit_code().unwrap_or(ExitCode::SUCCESS);
    if args.json {
        let summary =
            RunSummary::new(Some(&args.corp_id), &stats).interrupted_by(stop.signal_name());
        print_json(&summary)?;
        return Ok(finished);
    }
    println!("{}", summary(&stats));
    if let Some(signal) = stop.signal_name() {
        println!(
            "stopped by {signal}: committed up to checkpoint {}; run again to resume",
            stats.checkpoint.or(before).unwrap_or(0)
        );
        return Ok(finished);
    }
    if stats.records_in == 0 {
        println!(
            "nothing new after checkpoint {}: the archive is already in {} (use --fresh to start over)",
            before.unwrap_or(0),
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(target) = &delta {
        println!(
            "{} files added to the Delta tables messages, {} to dead_letters, under {}",
            stats.files.len(),
            stats.dead_letter_files.len(),
            target.root()
        );
        println!(
            "query: python3 -c \"import polars as pl; print(pl.read_delta('{}').group_by('msgtype').len().sort('len', descending=True))\"",
            target.table_url("messages")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} Parquet files, {} dead-letter files under {}",
        stats.files.len(),
        stats.dead_letter_files.len(),
        args.out.display()
    );
    println!(
        "query: duckdb -c \"SELECT msgtype, count(*) FROM read_parquet('{}', hive_partitioning=true) GROUP BY 1 ORDER BY 2 DESC\"",
        wecom_archive::sink::layout::messages_root(&args.out).display()
    );
    if stats.findings > 0 {
        println!(
            "findings: duckdb -c \"SELECT rule_id, severity, count(*) FROM read_parquet('{}', hive_partitioning=true) GROUP BY ALL ORDER BY 3 DESC\"",
            wecom_archive::sink::layout::findings_root(&args.out).display()
        );
    }
    println!("inspect: wecom-archive inspect {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
