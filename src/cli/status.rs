//! `wecom-archive status --config FILE`: the operator's view of every configured corp — who
//! holds its lease, where its checkpoint is, how its last run ended, what was dead-lettered.

use std::process::ExitCode;

use serde::Serialize;
use wecom_archive::config::Config;
use wecom_archive::state::{Lease, StateStore};

use super::output::print_json;

/// Arguments of `wecom-archive status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// One corp's line.
#[derive(Debug, Serialize)]
struct CorpStatus {
    corp_id: String,
    /// The worker holding the lease now (`null`: nobody).
    lease_holder: Option<String>,
    /// When the current lease ends unless renewed (Unix ms).
    lease_expires_at_ms: Option<i64>,
    /// The last worker that held it, while nobody does.
    last_holder: Option<String>,
    /// The last committed seq (0: none).
    checkpoint_seq: u64,
    /// Seconds since the last run that ended `ok` (`null`: none yet).
    lag_secs: Option<i64>,
    /// `ok`, `interrupted` or `failed`, of the newest run.
    last_outcome: Option<String>,
    /// When the newest run finished (Unix seconds).
    last_run_at: Option<i64>,
    /// Records dead-lettered over the run history.
    dead_letters: u64,
}

#[derive(Debug, Serialize)]
struct Status {
    state: String,
    now_ms: i64,
    corps: Vec<CorpStatus>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    config.require_corps()?;
    let store = StateStore::open(&config.state_path())?;
    let now_ms = store.db_now_ms()?;
    let leases: std::collections::HashMap<String, Lease> = store
        .leases()?
        .into_iter()
        .map(|l| (l.corp_id.clone(), l))
        .collect();
    // Delta checkpoints come from the log, read once for every corp.
    let delta_checkpoints = match config.delta_target()? {
        Some(target) => {
            let ids: Vec<&str> = config.corps.iter().map(|c| c.corp_id.as_str()).collect();
            Some(wecom_archive::sink::delta::corp_checkpoints(&target, &ids)?)
        }
        None => None,
    };
    let mut corps = Vec::with_capacity(config.corps.len());
    for (i, corp) in config.corps.iter().enumerate() {
        let corp_id = corp.corp_id.clone();
        let runs = store.runs(&corp_id, 1)?;
        let last = runs.first();
        let checkpoint_seq = match &delta_checkpoints {
            Some(seqs) => seqs[i],
            None => store.checkpoint(&corp_id)?,
        }
        .unwrap_or(0);
        let lease = leases.get(&corp_id);
        let held = lease.filter(|l| l.expires_at_ms > now_ms);
        corps.push(CorpStatus {
            lease_holder: held.map(|l| l.holder.clone()),
            lease_expires_at_ms: held.map(|l| l.expires_at_ms),
            last_holder: lease.filter(|_| held.is_none()).map(|l| l.holder.clone()),
            checkpoint_seq,
            lag_secs: store
                .last_run_with_outcome(&corp_id, "ok")?
                .map(|r| (now_ms / 1000 - r.finished_at).max(0)),
            last_outcome: last.map(|r| r.outcome.clone()),
            last_run_at: last.map(|r| r.finished_at),
            dead_letters: store.dead_lettered_total(&corp_id)?,
            corp_id,
        });
    }
    let status = Status {
        state: store.path().display().to_string(),
        now_ms,
        corps,
    };
    if args.json {
        print_json(&status)?;
    } else {
        print_text(&status);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(s: &Status) {
    println!("state: {}", s.state);
    println!(
        "{:<24} {:<28} {:>9} {:>12} {:>8} {:<12} {:>6}",
        "corp", "lease holder", "lease s", "checkpoint", "lag s", "last run", "dead"
    );
    for c in &s.corps {
        let holder = match (&c.lease_holder, &c.last_holder) {
            (Some(h), _) => h.clone(),
            (None, Some(h)) => format!("free (last {h})"),
            (None, None) => "free".into(),
        };
        let left = c
            .lease_expires_at_ms
            .map(|t| ((t - s.now_ms) / 1000).to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:<28} {:>9} {:>12} {:>8} {:<12} {:>6}",
            c.corp_id,
            holder,
            left,
            c.checkpoint_seq,
            c.lag_secs.map_or("-".into(), |l| l.to_string()),
            c.last_outcome.as_deref().unwrap_or("-"),
            c.dead_letters
        );
    }
}
