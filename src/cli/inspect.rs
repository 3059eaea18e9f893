//! `wecom-archive inspect DIR`: what an output directory holds.

use std::path::PathBuf;
use std::process::ExitCode;

use wecom_archive::sink::inventory::scan;
use wecom_archive::state::StateStore;

use super::output::{print_json, CheckpointSummary, InspectSummary};

/// Runs shown per corp.
const RUNS_SHOWN: usize = 3;

/// Arguments of `wecom-archive inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The output directory of `demo`, `pull` or `decrypt`.
    dir: PathBuf,

    /// Gaps to list at most.
    #[arg(long, default_value_t = 20)]
    max_gaps: usize,

    /// Print one JSON document (see docs/cli.md) instead of the text report.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::refuse_delta(&args.dir, "inspect")?;
    wecom_archive::migrate::refuse_legacy(&args.dir)?;
    let inv = scan(&args.dir)?;
    let state = wecom_archive::sink::layout::state_path(&args.dir);
    let mut checkpoints = Vec::new();
    if state.exists() {
        let store = StateStore::open(&state)?;
        for (corp_id, seq) in store.checkpoints()? {
            let runs = store.runs(&corp_id, RUNS_SHOWN)?;
            checkpoints.push(CheckpointSummary {
                corp_id,
                seq,
                runs: runs.into_iter().map(Into::into).collect(),
            });
        }
    }
    let summary = InspectSummary::new(&args.dir, &inv, args.max_gaps, checkpoints);
    if args.json {
        print_json(&summary)?;
    } else {
        print_text(&summary, &state);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(s: &InspectSummary, state: &std::path::Path) {
    println!("{}: {} rows in {} Parquet files", s.dir, s.rows, s.files);
    if let Some(r) = s.seq_range {
        println!("seq range of rows: {}..={}", r.first, r.last);
    }
    if !s.partitions.is_empty() {
        println!("\nrows by partition:");
        for p in &s.partitions {
            let n = p.rows;
            match (p.corp_id.is_empty(), p.date.is_empty()) {
                (true, true) => println!("  (flat)                         {n:>10}"),
                _ => println!("  corp_id={} date={}  {n:>10}", p.corp_id, p.date),
            }
        }
    }
    if !s.msgtypes.is_empty() {
        println!("\nrows by msgtype:");
        let mut types: Vec<_> = s.msgtypes.iter().collect();
        types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (t, n) in types {
            println!("  {t:<24} {n:>10}");
        }
    }
    println!("\ndead letters: {}", s.dead_letters);
    for (k, n) in &s.dead_letters_by_kind {
        println!("  {k:<24} {n:>10}");
    }
    let dups = &s.duplicate_seqs;
    println!(
        "\nduplicate seqs: {}{}",
        dups.len(),
        if dups.is_empty() {
            String::new()
        } else {
            format!(" (first: {:?})", &dups[..dups.len().min(10)])
        }
    );
    println!(
        "gaps: {} ({} seqs missing between rows and dead letters)",
        s.gap_count, s.missing_seqs
    );
    for [a, b] in &s.gaps {
        println!("  {a}..={b}");
    }
    if !s.findings.is_empty() {
        println!(
            "\nfindings: {}",
            s.findings.iter().map(|f| f.rows).sum::<u64>()
        );
        for f in &s.findings {
            println!(
                "  rules {}…  {:<24} {:<9} {:>10}",
                f.rule_set_version.get(..12).unwrap_or(&f.rule_set_version),
                f.rule_id,
                f.severity,
                f.rows
            );
        }
    }
    if s.temporaries > 0 {
        println!(
            "uncommitted temporaries: {} (a run is in progress, or crashed: the next run cleans them up)",
            s.temporaries
        );
    }
    if state.exists() {
        println!("\ncheckpoints ({}):", state.display());
        for c in &s.checkpoints {
            println!("  {}: last committed seq {}", c.corp_id, c.seq);
            for r in &c.runs {
                println!(
                    "    run at {}: seq {} -> {}, {} written, {} dead-lettered, {}",
                    jiff::Timestamp::from_second(r.finished_at)
                        .map_or_else(|_| r.finished_at.to_string(), |t| t.to_string()),
                    r.from_seq,
                    r.to_seq,
                    r.written,
                    r.dead_lettered,
                    r.outcome
                );
            }
        }
    }
}
