//! `wecom-archive decrypt`: a GetChatData dump → Parquet + dead letters.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::unwrap::Backend;

use wecom_archive::pipeline::progress::summary;
use wecom_archive::pipeline::{self, Layout, Output, RunOptions, RunStats};
use wecom_archive::source::file::{DumpReader, ReaderOptions};
use wecom_archive::source::DumpSource;

use super::output::{print_json, RunSummary};

/// Exit status when the dump was damaged (truncated gzip, trailing garbage, unreadable):
/// every record before the fault was written, and the fault is a dead letter.
const EXIT_INPUT_DAMAGED: u8 = 4;

/// Arguments of `wecom-archive decrypt`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("key", |a| a.required(true)))]
pub struct Args {
    /// The dump: a GetChatData response (`{"chatdata":[...]}`), JSON Lines of records or of
    /// responses; gzip is detected; `-` reads stdin.
    #[arg(long, short)]
    input: PathBuf,

    #[command(flatten)]
    keys: super::args::KeyArgs,

    /// Output directory: rows go to `OUT/messages/`, dead letters to `OUT/dead_letters/`; with
    /// `--format delta` also a `file://` or `s3://bucket/prefix` URL.
    #[arg(long, short)]
    out: PathBuf,

    /// Table format: Parquet files, or Delta Lake tables partitioned by corp and date (needs
    /// --corp-id; decrypting the same dump again then adds nothing).
    #[arg(long, value_enum, default_value_t = wecom_archive::sink::Format::Parquet)]
    format: wecom_archive::sink::Format,

    /// The corp the dump belongs to (the Delta tables' partition and transaction id).
    #[arg(long, value_parser = wecom_archive::sink::layout::parse_corp_id)]
    corp_id: Option<String>,

    /// Time zone of the date= partitions of Delta tables.
    #[arg(long, default_value = "Asia/Shanghai")]
    timezone: String,

    /// Exit with status 3 if any record was dead-lettered.
    #[arg(long)]
    strict: bool,

    /// RSA backend: aws-lc (default) or rustcrypto (needs the `rustcrypto` feature).
    #[arg(long, default_value = "aws-lc")]
    backend: Backend,

    /// Records per decrypt chunk / Arrow batch.
    #[arg(long, default_value_t = 4096)]
    chunk: usize,

    /// Rows per Parquet file.
    #[arg(long, default_value_t = 1_000_000)]
    rows_per_file: usize,

    /// A line or record longer than this many bytes is dead-lettered (its line named, its
    /// beginning kept) instead of being read whole.
    #[arg(long, default_value_t = wecom_archive::source::file::DEFAULT_MAX_RECORD_BYTES)]
    max_record_bytes: usize,

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
    // A stop ends the reading early; what was read is still written and committed, and the exit
    // status (130 / 143) says that the dump was not decrypted whole.
    let stop = super::Stop::install();
    let mut keyring = Keyring::new(args.backend);
    for (ver, path) in &args.keys {
        if keyring.versions().contains(ver) {
            bail!("key version {ver} given twice");
        }
        keyring
            .add_pem_file(*ver, path)
            .with_context(|| format!("loading the key for publickey_ver {ver}"))?;
    }
    let reader = DumpReader::open_with(
        &args.input,
        ReaderOptions {
            max_record_bytes: args.max_record_bytes,
        },
    )?;
    let damage = reader.damage_report();
    let (layout, delta) = match (args.format, &args.corp_id) {
        (wecom_archive::sink::Format::Delta, Some(corp)) => {
            let tz = jiff::tz::TimeZone::get(&args.timezone)
                .with_context(|| format!("time zone {:?}", args.timezone))?;
            let target =
                wecom_archive::sink::delta::DeltaTarget::open(&args.out.to_string_lossy())?;
            let layout = Layout::Hive {
                corp_id: corp.clone(),
                tz,
            };
            (layout, Some(std::sync::Arc::new(target)))
        }
        (wecom_archive::sink::Format::Delta, None) => {
            bail!("--format delta needs --corp-id: the tables are partitioned by corp")
        }
        (wecom_archive::sink::Format::Parquet, _) => {
            wecom_archive::migrate::refuse_legacy(&args.out)?;
            // decrypt keeps no commit journal: what a killed run left is garbage.
            for dir in [
                Layout::Flat.messages_dir(&args.out),
                Layout::Flat.dead_letter_dir(&args.out),
                Layout::Flat.findings_dir(&args.out),
            ] {
                wecom_archive::sink::atomic::remove_stale_temporaries(&dir);
            }
            (Layout::Flat, None)
        }
    };
    let mut source = DumpSource::new(reader, args.input.display().to_string());
    let mut options = RunOptions {
        chunk_records: args.chunk,
        // One commit at the end: a dump is decrypted whole or not at all.
        commit_every: u64::MAX,
        rules: args.rules.load()?,
        ..RunOptions::default()
    };
    options.parquet.rows_per_file = args.rows_per_file;
    tracing::info!(
        input = %args.input.display(),
        out = %args.out.display(),
        key_versions = ?keyring.versions(),
        backend = keyring.backend().name(),
        threads = rayon::current_num_threads(),
        "decrypting"
    );
    let progress = super::progress("decrypt", None);
    let output = Output {
        dir: &args.out,
        layout,
        state: None,
        delta,
    };
    let stats = pipeline::run(&mut source, &keyring, output, &options, stop.flag(), &|s| {
        if let Some(p) = &progress {
            p.update(s);
        }
    });
    if let Some(p) = &progress {
        p.finish();
    }
    let stats = stats?;
    if args.json {
        print_json(&RunSummary::new(None, &stats).interrupted_by(stop.signal_name()))?;
    } else {
        print_summary(&stats, &args.out);
    }
    if let Some(code) = stop.exit_code() {
        eprintln!(
            "stopped by {}: the dump was not decrypted whole ({} records read, {} written)",
            stop.signal_name().unwrap_or("a signal"),
            stats.records_in,
            stats.written
        );
        return Ok(code);
    }
    if let Some(what) = damage.get() {
        eprintln!("error: {what}");
        return Ok(ExitCode::from(EXIT_INPUT_DAMAGED));
    }
    if args.strict && stats.dead_lettered > 0 {
        eprintln!(
            "error: {} record(s) dead-lettered (--strict)",
            stats.dead_lettered
        );
        return Ok(ExitCode::from(super::EXIT_DEAD_LETTERS));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &RunStats, out: &std::path::Path) {
    println!("{}", summary(s));
    for f in &s.files {
        println!("  wrote {} ({} rows)", f.path.display(), f.rows);
    }
    for f in &s.dead_letter_files {
        println!("  dead letters: {}", f.display());
    }
    for f in &s.findings_files {
        println!("  findings: {} ({} rows)", f.path.display(), f.rows);
    }
    if s.files.is_empty() {
        println!("  no Parquet written under {}", out.display());
    }
}
