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

    // The "all cores" runs use this many threads instead of one per core.
    #[command(flatten)]
    pub(super) threads: super::args::ThreadsArg,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let keyring = demo_keyring(args.backend)?;
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
    println!("simulator record generation, 1 core: {sim_rate:.0} records/s");

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
        if !args.skip_single {
            // One core for everything: the fetch, decrypt and writer threads all inherit this
            // thread's affinity, so "per core" includes every stage's cost.
            let all_cpus = pin_to_one_cpu();
            let s = pipeline_run(&keyring, args.messages, 1);
            if let Some(set) = all_cpus {
                restore_affinity(&set);
            }
            let s = s?;
            line += &format!(", pipeline 1 core {:.0} msgs/s", s.msgs_per_sec());
            single = better(single, s);
        }
        let s = pipeline_run(&keyring, args.messages, cores)?;
        line += &format!(", pipeline {cores} cores {:.0} msgs/s", s.msgs_per_sec());
        all = better(all, s);
        println!("{line}");
    }
    let all = all.expect("at least one round");
    println!(
        "raw RSA unwrap ({}), 1 core, best: {unwrap_rate:.0} ops/s",
        keyring.backend().name()
    );
    if let Some(s) = &single {
        println!(
            "pipeline, 1 core (all stages pinned to one CPU), best: {:.0} msgs/s ({} msgs, {:.2} s)",
            s.msgs_per_sec(),
            s.records_in,
            s.elapsed.as_secs_f64()
        );
    }
    println!(
        "pipeline, {cores} cores, best: {:.0} msgs/s ({} msgs, {:.2} s, {:.1} MiB encrypted in)",
        all.msgs_per_sec(),
        all.records_in,
        all.elapsed.as_secs_f64(),
        all.input_bytes as f64 / 1048576.0
    );
    if let Some(s) = &single {
        println!(
            "ratio pipeline(1 core) / raw unwrap(1 core): {:.3}",
            s.msgs_per_sec() / unwrap_rate
        );
        println!(
            "ratio pipeline({cores} cores) / pipeline(1 core): {:.3}",
            all.msgs_per_sec() / s.msgs_per_sec()
        );
    }
    println!(
        "ratio pipeline({cores} cores) / ({cores} x raw unwrap): {:.3}",
        all.msgs_per_sec() / (cores as f64 * unwrap_rate)
    );
    if let Some(kib) = peak_rss_kib() {
        println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(ExitCode::SUCCESS)
}

fn pipeline_run(
    keyring: &wecom_archive::crypto::keyring::Keyring,
    messages: u64,
    threads: usize,
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
    let options = RunOptions {
        progress_every: Duration::from_secs(3600),
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
