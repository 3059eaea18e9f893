//! `wecom-archive bench`: measures, in one run, the raw RSA unwrap rate on one core and the
//! whole pipeline (simulator → decrypt → Parquet, checkpointed) on one core and on all cores,
//! and reports the ratios and the peak RSS.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use wecom_archive::crypto::unwrap::Backend;
use wecom_archive::pipeline::{self, Layout, Output, RunOptions, RunStats};
use wecom_archive::source::sim::{demo_keyring, SimConfig, SimSource};
use wecom_archive::state::StateStore;

use super::output::{print_json, BenchRound, BenchRules, BenchRun, BenchSummary};

/// Arguments of `wecom-archive bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Messages per pipeline run.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,

    /// Rounds: each measures the raw unwrap, the one-core and the all-core pipeline, one after
    /// the other; the best of each is reported. Shared machines are noisy: interleaved rounds
    /// keep a neighbour's burst from skewing one measurement against the others.
    #[arg(long, default_value_t = 3)]
    rounds: u32,

    /// Seconds spent measuring the raw unwrap rate per round.
    #[arg(long, default_value_t = 1.5)]
    unwrap_secs: f64,

    /// Skip the one-core pipeline run (for very large --messages).
    #[arg(long)]
    skip_single: bool,

    /// RSA backend.
    #[arg(long, default_value = "aws-lc")]
    backend: Backend,

    /// Print one JSON document (see docs/cli.md) instead of the text report.
    #[arg(long)]
    json: bool,

    // The "all cores" runs use this many threads instead of one per core.
    #[command(flatten)]
    pub(super) threads: super::args::ThreadsArg,

    /// Screen every message with these rules in the pipeline runs (to measure their cost).
    #[command(flatten)]
    rules: super::args::RulesArg,

    /// The pipeline runs' output: Parquet files, or Delta tables on the local disk.
    #[arg(long, value_enum, default_value_t = wecom_archive::sink::Format::Parquet)]
    format: wecom_archive::sink::Format,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The text report goes out line by line as the rounds finish; --json prints it all at the end.
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    let keyring = demo_keyring(args.backend)?;
    let rules = args.rules.load()?;
    let sim = SimSource::new(SimConfig::default());
    let samples: Vec<_> = (1..=64).map(|s| sim.record(s)).collect();

    // What the simulator itself costs (it stands in for WeCom + the network, and shares the
    // cores with the pipeline in the runs below). Warmed up first: it builds its media once.
    let n = 2000;
    for seq in 1..=n {
        std::hint::black_box(sim.record(seq));
    }
    let start = Instant::now();
    for seq in n + 1..=2 * n {
        std::hint::black_box(sim.record(seq));
    }
    let sim_rate = n as f64 / start.elapsed().as_secs_f64();
    say(format!(
        "simulator record generation, 1 core: {sim_rate:.0} records/s"
    ));

    let cores = args
        .threads
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (mut unwrap_rate, mut single, mut all): (f64, Option<RunStats>, Option<RunStats>) =
        (0.0, None, None);
    let better = |best: Option<RunStats>, s: RunStats| match best {
        Some(b) if b.msgs_per_sec() >= s.msgs_per_sec() => Some(b),
        _ => Some(s),
    };
    let mut rounds = Vec::new();
    for round in 1..=args.rounds.max(1) {
        // Raw unwrap on one core: base64 + RSA-2048 PKCS#1 v1.5 decrypt, nothing else.
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed().as_secs_f64() < args.unwrap_secs {
            for r in &samples {
                let k = keyring.unwrap(r.publickey_ver, &r.encrypt_random_key)?;
                std::hint::black_box(k);
            }
            ops += samples.len() as u64;
        }
        let rate = ops as f64 / start.elapsed().as_secs_f64();
        unwrap_rate = unwrap_rate.max(rate);
        let mut line = format!("round {round}: raw unwrap {rate:.0} ops/s");
        let mut one_core = None;
        if !args.skip_single {
            // One core for everything: the fetch, decrypt and writer threads all inherit this
            // thread's affinity, so "per core" includes every stage's cost.
            let all_cpus = pin_to_one_cpu();
            let s = pipeline_run(&keyring, rules.clone(), args.messages, 1, args.format);
            if let Some(set) = all_cpus {
                restore_affinity(&set);
            }
            let s = s?;
            line += &format!(", pipeline 1 core {:.0} msgs/s", s.msgs_per_sec());
            one_core = Some(s.msgs_per_sec());
            single = better(single, s);
        }
        let s = pipeline_run(&keyring, rules.clone(), args.messages, cores, args.format)?;
        line += &format!(", pipeline {cores} cores {:.0} msgs/s", s.msgs_per_sec());
        rounds.push(BenchRound {
            round,
            raw_unwrap_ops_per_sec: rate,
            pipeline_one_core_msgs_per_sec: one_core,
            pipeline_all_cores_msgs_per_sec: s.msgs_per_sec(),
        });
        all = better(all, s);
        say(line);
    }
    let all = all.expect("at least one round");
    let summary = BenchSummary {
        backend: keyring.backend().name().to_owned(),
        format: match args.format {
            wecom_archive::sink::Format::Parquet => "parquet",
            wecom_archive::sink::Format::Delta => "delta",
        },
        rules: rules.as_ref().map(|r| BenchRules {
            rules: r.rules().len(),
            keywords: r.rules().iter().map(|r| r.keywords.len()).sum(),
            regexes: r.rules().iter().map(|r| r.regex.len()).sum(),
            version: r.version().to_owned(),
        }),
        findings: all.findings,
        cores,
        simulator_records_per_sec: sim_rate,
        rounds,
        raw_unwrap_ops_per_sec: unwrap_rate,
        pipeline_one_core: single.as_ref().map(BenchRun::new),
        pipeline_all_cores: BenchRun::new(&all),
        ratio_one_core_to_unwrap: single.as_ref().map(|s| s.msgs_per_sec() / unwrap_rate),
        ratio_all_cores_to_one_core: single
            .as_ref()
            .map(|s| all.msgs_per_sec() / s.msgs_per_sec()),
        ratio_all_cores_to_unwrap_per_core: all.msgs_per_sec() / (cores as f64 * unwrap_rate),
        peak_rss_mib: peak_rss_kib().map(|kib| kib as f64 / 1024.0),
    };
    if args.json {
        print_json(&summary)?;
    } else {
        print_text(&summary);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(s: &BenchSummary) {
    let cores = s.cores;
    let delta_note = if s.format == "delta" {
        " (Delta tables)"
    } else {
        ""
    };
    if let Some(r) = &s.rules {
        println!(
            "rules: {} rules, {} keywords, {} regexes (version {}…), {} findings",
            r.rules,
            r.keywords,
            r.regexes,
            &r.version[..12],
            s.findings
        );
    }
    println!(
        "raw RSA unwrap ({}), 1 core, best: {:.0} ops/s",
        s.backend, s.raw_unwrap_ops_per_sec
    );
    if let Some(r) = &s.pipeline_one_core {
        println!(
            "pipeline{}, 1 core (all stages pinned to one CPU), best: {:.0} msgs/s ({} msgs, {:.2} s)",
            delta_note, r.msgs_per_sec, r.messages, r.elapsed_secs
        );
    }
    let r = &s.pipeline_all_cores;
    println!(
        "pipeline{delta_note}, {cores} cores, best: {:.0} msgs/s ({} msgs, {:.2} s, {:.1} MiB encrypted in)",
        r.msgs_per_sec, r.messages, r.elapsed_secs, r.input_mib
    );
    if let Some(ratio) = s.ratio_one_core_to_unwrap {
        println!("ratio pipeline(1 core) / raw unwrap(1 core): {ratio:.3}");
    }
    if let Some(ratio) = s.ratio_all_cores_to_one_core {
        println!("ratio pipeline({cores} cores) / pipeline(1 core): {ratio:.3}");
    }
    println!(
        "ratio pipeline({cores} cores) / ({cores} x raw unwrap): {:.3}",
        s.ratio_all_cores_to_unwrap_per_core
    );
    if let Some(mib) = s.peak_rss_mib {
        println!("peak RSS: {mib:.1} MiB");
    }
}

fn pipeline_run(
    keyring: &wecom_archive::crypto::keyring::Keyring,
    rules: Option<std::sync::Arc<wecom_archive::compliance::rules::RuleSet>>,
    messages: u64,
    threads: usize,
    format: wecom_archive::sink::Format,
) -> anyhow::Result<RunStats> {
    let dir = std::env::temp_dir().join(format!("wecom-archive-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut store = StateStore::open(&wecom_archive::sink::layout::state_path(&dir))?;
    let mut source = SimSource::new(SimConfig {
        messages,
        ..SimConfig::default()
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let delta = match format {
        wecom_archive::sink::Format::Delta => Some(std::sync::Arc::new(
            wecom_archive::sink::delta::DeltaTarget::open(&dir.to_string_lossy())?,
        )),
        wecom_archive::sink::Format::Parquet => None,
    };
    let options = RunOptions {
        progress_every: Duration::from_secs(3600),
        rules,
        ..RunOptions::default()
    };
    let stats = pool.install(|| {
        pipeline::run(
            &mut source,
            keyring,
            Output {
                dir: &dir,
                layout: Layout::Hive {
                    corp_id: "wwbench".into(),
                    tz: jiff::tz::TimeZone::get("Asia/Shanghai").expect("bundled tz"),
                },
                state: Some(&mut store),
                delta,
            },
            &options,
            &AtomicBool::new(false),
            &|_| {},
        )
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(stats?)
}

/// Pins the calling thread (and the threads it starts) to the first CPU it may run on; returns
/// the previous CPU set.
fn pin_to_one_cpu() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; the calls only read/write the sets passed.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) != 0 {
            return None;
        }
        let cpu = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &old))?;
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        (libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) == 0)
            .then_some(old)
    }
}

fn restore_affinity(set: &libc::cpu_set_t) {
    // SAFETY: restores a set obtained from sched_getaffinity.
    unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
    }
}

/// Peak resident set (VmHWM) of this process, from /proc.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
