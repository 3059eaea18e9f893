//! `wecom-archive inspect DIR`: what an output directory holds.

use std::path::PathBuf;
use std::process::ExitCode;

use wecom_archive::sink::inventory::scan;
use wecom_archive::state::StateStore;

/// Arguments of `wecom-archive inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The output directory of `demo`, `pull` or `decrypt`.
    dir: PathBuf,

    /// Gaps to list at most.
    #[arg(long, default_value_t = 20)]
    max_gaps: usize,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let inv = scan(&args.dir)?;
    println!(
        "{}: {} rows in {} Parquet files",
        args.dir.display(),
        inv.rows(),
        inv.files
    );
    if let (Some(first), Some(last)) = (inv.seqs.first(), inv.seqs.last()) {
        println!("seq range of rows: {first}..={last}");
    }
    if !inv.by_partition.is_empty() {
        println!("\nrows by partition:");
        for ((corp, date), n) in &inv.by_partition {
            match (corp.is_empty(), date.is_empty()) {
                (true, true) => println!("  (flat)                         {n:>10}"),
                _ => println!("  corp_id={corp} date={date}  {n:>10}"),
            }
        }
    }
    if !inv.by_msgtype.is_empty() {
        println!("\nrows by msgtype:");
        let mut types: Vec<_> = inv.by_msgtype.iter().collect();
        types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (t, n) in types {
            println!("  {t:<24} {n:>10}");
        }
    }
    let dead: u64 = inv.dead_by_kind.values().sum();
    println!("\ndead letters: {dead}");
    for (k, n) in &inv.dead_by_kind {
        println!("  {k:<24} {n:>10}");
    }
    let dups = inv.duplicate_seqs();
    println!(
        "\nduplicate seqs: {}{}",
        dups.len(),
        if dups.is_empty() {
            String::new()
        } else {
            format!(" (first: {:?})", &dups[..dups.len().min(10)])
        }
    );
    let gaps = inv.gaps();
    let missing: u64 = gaps.iter().map(|(a, b)| b - a + 1).sum();
    println!(
        "gaps: {} ({} seqs missing between rows and dead letters)",
        gaps.len(),
        missing
    );
    for (a, b) in gaps.iter().take(args.max_gaps) {
        println!("  {a}..={b}");
    }
    if inv.temporaries > 0 {
        println!(
            "uncommitted temporaries: {} (a run is in progress, or crashed: the next run cleans them up)",
            inv.temporaries
        );
    }
    let state = wecom_archive::sink::layout::state_path(&args.dir);
    if state.exists() {
        let store = StateStore::open(&state)?;
        println!("\ncheckpoints ({}):", state.display());
        for (corp, seq) in store.checkpoints()? {
            println!("  {corp}: last committed seq {seq}");
            for r in store.runs(&corp, 3)? {
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
    Ok(ExitCode::SUCCESS)
}
