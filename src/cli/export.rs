//! `wecom-archive export`: transcripts of one conversation, or of every conversation of one
//! user, with a hash manifest and an audit entry (see `compliance::export`, docs/compliance.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use wecom_archive::compliance::export::{self, ExportTarget, Format, Query, Selector};
use wecom_archive::config::Config;
use wecom_archive::sink::layout;

use super::output::print_json;

/// The transcript format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    /// A self-contained web page per conversation.
    Html,
    /// RFC 4180 CSV (UTF-8 with BOM) per conversation.
    Csv,
    /// JSON Lines per conversation.
    Jsonl,
}

/// Arguments of `wecom-archive export`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["conversation", "user"])))]
pub struct Args {
    // `--out` replaces it: see `OptionalConfigArg::yield_to_out`.
    #[command(flatten)]
    pub(super) config: super::args::OptionalConfigArg,

    /// Output root (of `demo`, `pull` or `serve`), instead of --config.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// The corp whose archive is exported.
    #[arg(long, value_name = "ID", value_parser = layout::parse_corp_id)]
    corp: String,

    /// Export this conversation: a roomid, or `single:<a>:<b>` (the two ids sorted) for a
    /// one-to-one chat (see docs/compliance.md).
    #[arg(long, value_name = "ID")]
    conversation: Option<String>,

    /// Export every conversation in which this user sent or received a message, one
    /// transcript each.
    #[arg(long, value_name = "USERID")]
    user: Option<String>,

    /// First day, inclusive (YYYY-MM-DD, in the corp's time zone).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    from: Option<jiff::civil::Date>,

    /// Last day, inclusive (YYYY-MM-DD, in the corp's time zone).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    to: Option<jiff::civil::Date>,

    /// The transcripts' format.
    #[arg(long, value_enum)]
    format: FormatArg,

    /// The export folder: created if missing; must be empty.
    #[arg(long, value_name = "EXPORT_DIR")]
    to_dir: PathBuf,

    /// Time zone of the date= partitions and of the transcripts' times, with --out (default
    /// Asia/Shanghai, as `demo` and the config); with --config the config's `timezone` applies.
    #[arg(long, value_name = "TZ")]
    timezone: Option<String>,

    /// Print one JSON document on stdout instead of the summary lines (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

fn parse_date(s: &str) -> Result<jiff::civil::Date, String> {
    s.parse()
        .map_err(|e| format!("{s:?} is not a date as YYYY-MM-DD: {e}"))
}

/// The default time zone, as the config's.
const DEFAULT_TZ: &str = "Asia/Shanghai";

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (out, state_path, tz_name) = match (&args.config.path, &args.out) {
        (Some(path), _) => {
            if args.timezone.is_some() {
                bail!(
                    "--timezone goes with --out; with --config the config's `timezone` ({}) \
                     applies, as its date= folders were written in it",
                    path.display()
                );
            }
            let config = Config::load(path)?;
            (
                config.out_dir(),
                config.state_path(),
                config.timezone.clone(),
            )
        }
        (None, Some(out)) => {
            if !out.is_dir() {
                bail!(
                    "{} is not a folder (give the output root of demo or pull)",
                    out.display()
                );
            }
            (
                out.clone(),
                layout::state_path(out),
                args.timezone
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TZ.to_owned()),
            )
        }
        (None, None) => bail!("give --config FILE or --out DIR"),
    };
    let tz = jiff::tz::TimeZone::get(&tz_name)
        .with_context(|| format!("time zone {tz_name:?} is not an IANA time zone"))?;
    super::refuse_delta(&out, "export")?;
    wecom_archive::migrate::refuse_legacy(&out)?;
    let selector = match (&args.conversation, &args.user) {
        (Some(c), _) => Selector::Conversation(c.clone()),
        (None, Some(u)) => Selector::User(u.clone()),
        (None, None) => bail!("give --conversation ID or --user USERID"),
    };
    let format = match args.format {
        FormatArg::Html => Format::Html,
        FormatArg::Csv => Format::Csv,
        FormatArg::Jsonl => Format::Jsonl,
    };
    let query = Query::new(&args.corp, selector, args.from, args.to, format, &tz_name);
    let report = export::export(
        &query,
        &ExportTarget {
            out,
            state_path,
            tz,
            to_dir: args.to_dir.clone(),
        },
    )
    .with_context(|| format!("exporting corp {}", args.corp))?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in &report.conversations {
        println!(
            "{}: {} messages -> {}",
            c.conversation_id, c.messages, c.path
        );
    }
    println!(
        "exported {} messages of {} conversations ({}) to {}; {} media files copied{}",
        report.messages,
        report.conversations.len(),
        format.as_str(),
        report.export_dir.display(),
        report.media_files,
        match report.media_missing {
            0 => String::new(),
            n => format!(", {n} not downloaded (run `wecom-archive media` first to include them)"),
        }
    );
    println!(
        "manifest.json sha256 {}; audit entry {}",
        report.manifest_sha256, report.audit_id
    );
    println!(
        "verify: cd {} && jq -r '.files[] | \"\\(.sha256)  \\(.path)\"' manifest.json | sha256sum -c",
        report.export_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
