//! `wecom-archive permit-users`: members with the session-archive licence.

use std::process::ExitCode;
use std::sync::Arc;

use wecom_archive::api::msgaudit::{MsgAudit, PermitType};

use super::token::{auth_context, runtime};

/// Arguments of `wecom-archive permit-users`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    /// Only one licence type: 1 办公版, 2 服务版, 3 企业版 (default: all).
    #[arg(long = "type", value_parser = clap::value_parser!(u8).range(1..=3))]
    kind: Option<u8>,
}

/// Runs the subcommand: one userid per line on stdout, the count on stderr.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ctx = auth_context(&args.config)?;
    let token = Arc::new(ctx.app_token()?);
    let api = MsgAudit::new(ctx.client.clone(), token);
    let kind = args.kind.map(|k| match k {
        1 => PermitType::Office,
        2 => PermitType::Service,
        _ => PermitType::Enterprise,
    });
    let ids = runtime()?.block_on(api.get_permit_user_list(kind))?;
    for id in &ids {
        println!("{id}");
    }
    eprintln!("{} member(s) with the archive licence", ids.len());
    Ok(ExitCode::SUCCESS)
}
