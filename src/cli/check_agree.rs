//! `wecom-archive check-agree`: whether external contacts agreed to session archiving.

use std::process::ExitCode;
use std::sync::Arc;

use wecom_archive::api::msgaudit::{MsgAudit, SingleAgreeQuery};

use super::token::{auth_context, runtime};

/// Arguments of `wecom-archive check-agree`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["room", "pair"])))]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    /// A group chat (roomid): the agreement of each external member.
    #[arg(long)]
    room: Option<String>,

    /// A 1:1 chat as USERID:EXTERNAL_USERID. Repeat for several.
    #[arg(long, value_name = "USERID:EXTERNAL_ID", value_parser = parse_pair)]
    pair: Vec<SingleAgreeQuery>,
}

fn parse_pair(s: &str) -> Result<SingleAgreeQuery, String> {
    match s.split_once(':') {
        Some((u, x)) if !u.is_empty() && !x.is_empty() => Ok(SingleAgreeQuery {
            userid: u.to_owned(),
            external_openid: x.to_owned(),
        }),
        _ => Err(format!("expected USERID:EXTERNAL_ID, got {s:?}")),
    }
}

/// Runs the subcommand: one tab-separated line per contact
/// (`userid  external_id  Agree|Disagree  status_change_time`); exit status 0.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ctx = auth_context(&args.config)?;
    let token = Arc::new(ctx.app_token()?);
    let api = MsgAudit::new(ctx.client.clone(), token);
    let rt = runtime()?;
    let infos = match &args.room {
        Some(room) => rt.block_on(api.check_room_agree(room))?,
        None => rt.block_on(api.check_single_agree(&args.pair))?,
    };
    for i in &infos {
        println!(
            "{}\t{}\t{}\t{}",
            i.userid.as_deref().unwrap_or("-"),
            i.external_openid,
            i.agree_status,
            i.status_change_time
        );
    }
    let agreed = infos.iter().filter(|i| i.agreed()).count();
    eprintln!("{agreed} of {} agreed", infos.len());
    Ok(ExitCode::SUCCESS)
}
