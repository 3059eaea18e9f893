//! `wecom-archive token`: fetch (or reuse) a token and print its status, masked.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use wecom_archive::auth::context::AuthContext;
use wecom_archive::auth::token::{StoredToken, TokenOrigin};
use wecom_archive::auth::TokenProvider;
use wecom_archive::clock::{format_unix_utc, Clock, SystemClock};

/// Which credential's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `[app]`: access_token via gettoken (self-built app or the session-archive secret).
    #[value(alias = "corp")]
    App,
    /// `[suite]`: suite_access_token.
    Suite,
    /// `[provider]`: provider_access_token.
    Provider,
    /// `[[authcorp]]`: an authorized corp's access_token via get_corp_token.
    Authcorp,
}

/// Arguments of `wecom-archive token`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("corp", |a| a.help(
    "With `--kind authcorp`: the authorized corp (default: the first `[[authcorp]]`)"
)))]
pub struct Args {
    #[command(flatten)]
    config: super::args::ConfigArg,

    /// Which token.
    #[arg(long, value_enum, default_value = "app")]
    kind: Kind,

    #[command(flatten)]
    corp: super::args::CorpFilter,
}

/// Loads the configuration file and builds the client and token cache from its auth sections.
pub(crate) fn auth_context(path: &Path) -> anyhow::Result<AuthContext> {
    let config = wecom_archive::config::Config::load(path)?;
    Ok(AuthContext::new(config.auth(), Arc::new(SystemClock))?)
}

/// A small runtime for one command: the work is a handful of requests.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ctx = auth_context(&args.config)?;
    let rt = runtime()?;
    let (who, status) = rt.block_on(async {
        anyhow::Ok(match args.kind {
            Kind::App => {
                let t = ctx.app_token()?;
                let c = ctx.config.app.as_ref().expect("checked by app_token");
                let who = match &c.agentid {
                    Some(a) => format!("{} (app {a})", c.corpid),
                    None => c.corpid.clone(),
                };
                (who, t.status().await?)
            }
            Kind::Suite => {
                let t = ctx.suite_token()?;
                (t.suite_id().to_owned(), t.status().await?)
            }
            Kind::Provider => {
                let t = ctx.provider_token()?;
                let corpid = ctx.config.provider.as_ref().map(|p| p.corpid.clone());
                (corpid.unwrap_or_default(), t.status().await?)
            }
            Kind::Authcorp => {
                let t = ctx.authcorp_token(args.corp.as_deref())?;
                let who = format!("{} ({})", t.corp(), t.app().unwrap_or(""));
                (who, t.status().await?)
            }
        })
    })?;
    print_status(args.kind, &who, &status, SystemClock.now_unix());
    Ok(ExitCode::SUCCESS)
}

fn print_status(kind: Kind, who: &str, (token, origin): &(StoredToken, TokenOrigin), now: i64) {
    let kind = match kind {
        Kind::App => "corp access_token",
        Kind::Suite => "suite_access_token",
        Kind::Provider => "provider_access_token",
        Kind::Authcorp => "authorized-corp access_token",
    };
    let origin = match origin {
        TokenOrigin::Fetched => "fetched from WeCom",
        TokenOrigin::Store => "token store",
        TokenOrigin::Memory => "memory",
    };
    println!("kind:       {kind}");
    println!("corp:       {who}");
    // Only the first characters: enough to compare tokens by eye, useless to an onlooker.
    println!("token:      {} (masked)", token.value.masked_prefix());
    println!(
        "expires_at: {} (in {} s)",
        format_unix_utc(token.expires_at_unix),
        token.expires_at_unix - now
    );
    println!("source:     {origin}");
}
