//! `wecom-archive retry-dead-letters`: re-runs a corp's dead letters through the decrypt, for
//! example after the private key of a missing `publickey_ver` was added. Recovered records become
//! Parquet rows; the rest stay dead letters. Journaled like any commit: a crash leaves every
//! record either a row or a dead letter, exactly once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context};
use wecom_archive::config::Config;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::unwrap::Backend;
use wecom_archive::pipeline::progress::summary;
use wecom_archive::pipeline::{self, Layout, Output, RunOptions};
use wecom_archive::source::dead_letters::{dead_letter_files, DeadLetterSource};
use wecom_archive::state::StateStore;

/// Arguments of `wecom-archive retry-dead-letters`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("key", |a| a.help(
    "A private key as VERSION=PEM_FILE, when not using --config (repeat per version; adds to \
     the config's keys otherwise)"
)))]
pub struct Args {
    // `--out` replaces it: see `OptionalConfigArg::yield_to_out`.
    #[command(flatten)]
    pub(super) config: super::args::OptionalConfigArg,

    /// The corp whose dead letters to re-run.
    #[arg(long, value_name = "ID", value_parser = wecom_archive::sink::layout::parse_corp_id)]
    corp: String,

    /// Output root (of `demo` or `pull`), instead of --config.
    #[arg(long)]
    out: Option<PathBuf>,

    #[command(flatten)]
    keys: super::args::KeyArgs,

    #[command(flatten)]
    pub(super) threads: super::args::ThreadsArg,

    /// Time zone of the date= partitions, when not using --config.
    #[arg(long, default_value = "Asia/Shanghai")]
    timezone: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut keyring = Keyring::new(Backend::default());
    let (out, state_path, tz) = match &args.config.path {
        Some(path) => {
            let config = Config::load(path)?;
            let corp = config
                .corps
                .iter()
                .find(|c| c.corp_id == args.corp)
                .with_context(|| format!("corp {} is not in {}", args.corp, path.display()))?;
            for (ver, pem) in config.keys(corp) {
                keyring.add_pem_file(ver, &pem)?;
            }
            (config.out_dir(), config.state_path(), config.tz())
        }
        None => {
            let Some(out) = args.out.clone() else {
                bail!("give --config, or --out with --key VER=PEM");
            };
            let tz = jiff::tz::TimeZone::get(&args.timezone)
                .with_context(|| format!("time zone {:?}", args.timezone))?;
            (
                out.clone(),
                wecom_archive::sink::layout::state_path(&out),
                tz,
            )
        }
    };
    super::refuse_delta(&out, "retry-dead-letters")?;
    for (ver, pem) in &args.keys {
        keyring
            .add_pem_file(*ver, pem)
            .with_context(|| format!("loading the key for publickey_ver {ver}"))?;
    }
    if keyring.is_empty() {
        bail!("no private keys: give --key VER=PEM (or --config)");
    }
    wecom_archive::migrate::refuse_legacy(&out)?;
    let layout = Layout::Hive {
        corp_id: args.corp.clone(),
        tz,
    };
    let dead_dir = layout.dead_letter_dir(&out);
    let files =
        dead_letter_files(&dead_dir).with_context(|| format!("listing {}", dead_dir.display()))?;
    let mut source = DeadLetterSource::open(&files)?;
    if source.is_empty() {
        println!("no dead letters under {}", dead_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "re-running {} dead letters from {} files with key versions {:?}",
        source.len(),
        files.len(),
        keyring.versions()
    );
    // The corp's writer lock, as a pull takes it: the run's recovery must not delete a running
    // compaction's temporaries.
    let _lock = wecom_archive::sink::lock::CorpLock::acquire(&out, &args.corp)?;
    let mut store = StateStore::open(&state_path)?;
    let options = RunOptions {
        commit_every: u64::MAX,
        replaying: files,
        ..RunOptions::default()
    };
    let stats = pipeline::run(
        &mut source,
        &keyring,
        Output {
            dir: &out,
            layout,
            state: Some(&mut store),
            delta: None,
        },
        &options,
        &AtomicBool::new(false),
        &|_| {},
    )?;
    println!("{}", summary(&stats));
    println!(
        "recovered {} records into Parquet; {} remain dead letters",
        stats.written, stats.dead_lettered
    );
    Ok(ExitCode::SUCCESS)
}
