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
    #[arg(long, default_value_t = 20_000)]
    messages: u64,

    /// Seconds spent measuring the raw unwrap rate.
    #[arg(long, default_value_t = 3.0)]
    unwrap_secs: f64,

    /// Skip the one-core pipeline run (for very large --messages).
    #[arg(long)]
    skip_single: bool,

    /// RSA backend.
    #[arg(long, default_value = "aws-lc")]
    backend: Backend,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let keyring = demo_keyring(args.backend)?;
    let sim = SimSource::new(SimConfig::default());
    let samples: Vec<_> = (1..=64).map(|s| sim.record(s)).collect();

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
    let unwrap_rate = ops as f64 / start.elapsed().as_secs_f64();
    println!(
        "raw RSA unwrap ({}), 1 core: {unwrap_rate:.0} ops/s",
        keyring.backend().name()
    );

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let single = if args.skip_single {
        None
    } else {
        let s = pipeline_run(&keyring, args.messages, 1)?;
        println!(
            "pipeline, 1 decrypt thread:  {:.0} msgs/s ({} msgs, {:.2} s)",
            s.msgs_per_sec(),
            s.records_in,
            s.elapsed.as_secs_f64()
        );
        Some(s)
    };
    let all = pipeline_run(&keyring, args.messages, cores)?;
    println!(
        "pipeline, {cores} decrypt threads: {:.0} msgs/s ({} msgs, {:.2} s, {:.1} MiB encrypted in)",
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
    let mut store = StateStore::open(&dir.join("state.sqlite"))?;
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

/// Peak resident set (VmHWM) of this process, from /proc.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
