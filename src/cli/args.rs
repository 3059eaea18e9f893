//! Arguments that several commands share, stated once so that their names, environment
//! variables, defaults and help read the same everywhere. Commands take them with
//! `#[command(flatten)]`.
//!
//! | argument | commands |
//! |---|---|
//! | [`ConfigArg`] `--config/-c FILE`, env `WECOM_ARCHIVE_CONFIG` | pull, media, serve, token, permit-users, check-agree |
//! | [`OptionalConfigArg`] (the same, but `--out` may replace it) | retry-dead-letters |
//! | [`CorpFilter`] `--corp ID` | pull, media, token |
//! | [`KeyArgs`] `--key/-k VER=PEM`, repeatable | decrypt, retry-dead-letters |
//! | [`ThreadsArg`] `--threads N`, env `WECOM_ARCHIVE_THREADS` | demo, pull, decrypt, retry-dead-letters, bench, serve |
//! | [`RulesArg`] `--rules FILE` | demo, decrypt, bench |
//!
//! The newtypes dereference to the value they wrap, so a command reads `args.config` as a
//! `&Path` and `args.corp` as an `Option<String>`.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "WECOM_ARCHIVE_CONFIG";

/// The configuration file used when neither `--config` nor the environment names one.
pub const DEFAULT_CONFIG: &str = "wecom-archive.toml";

/// `--config/-c FILE`: the configuration file (TOML).
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The configuration file (TOML; see the README, docs/auth.md, docs/serve.md).
    #[arg(
        id = "config",
        long = "config",
        short = 'c',
        value_name = "FILE",
        env = CONFIG_ENV,
        default_value = DEFAULT_CONFIG
    )]
    pub path: PathBuf,
}

impl Deref for ConfigArg {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ConfigArg {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// `--config/-c FILE` for a command that can run from an output directory instead
/// (`retry-dead-letters --out DIR`): `None` once [`OptionalConfigArg::yield_to_out`] has seen
/// `--out`.
#[derive(Debug, Clone, clap::Args)]
pub struct OptionalConfigArg {
    /// The configuration of `pull` (gives the output, state, time zone and keys); not used with
    /// --out.
    #[arg(
        id = "config",
        long = "config",
        short = 'c',
        value_name = "FILE",
        env = CONFIG_ENV,
        default_value = DEFAULT_CONFIG
    )]
    pub path: Option<PathBuf>,
}

impl OptionalConfigArg {
    /// Settles `--config` against `--out` (`matches`: the subcommand's): an `--out` on the
    /// command line wins over a configuration that only the environment or the default names,
    /// and both on the command line is an error.
    ///
    /// clap cannot say this itself: it counts a value from the environment as given, so a
    /// `conflicts_with` would refuse `--out` whenever `WECOM_ARCHIVE_CONFIG` is set.
    pub fn yield_to_out(
        &mut self,
        matches: &clap::ArgMatches,
        out_id: &str,
    ) -> Result<(), clap::Error> {
        use clap::parser::ValueSource::CommandLine;
        if matches.value_source(out_id) != Some(CommandLine) {
            return Ok(());
        }
        if matches.value_source("config") == Some(CommandLine) {
            let mut cmd = <super::Cli as clap::CommandFactory>::command();
            return Err(cmd.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--config and --{out_id} exclude each other: give one of them"),
            ));
        }
        self.path = None;
        Ok(())
    }
}

/// `--corp ID`: only this corp (default: every corp of the configuration).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CorpFilter {
    /// Only this corp (default: every corp in the config).
    #[arg(long = "corp", value_name = "ID")]
    pub corp: Option<String>,
}

impl Deref for CorpFilter {
    type Target = Option<String>;
    fn deref(&self) -> &Option<String> {
        &self.corp
    }
}

/// `--key/-k VER=PEM`, repeatable: the private key of each `publickey_ver`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyArgs {
    /// A private key for one publickey_ver, as VERSION=PEM_FILE (PKCS#1 or PKCS#8). Repeat for
    /// every key version the archive uses.
    #[arg(
        id = "key",
        long = "key",
        short = 'k',
        value_name = "VER=PEM",
        value_parser = parse_key_arg
    )]
    pub keys: Vec<(u32, PathBuf)>,
}

impl Deref for KeyArgs {
    type Target = [(u32, PathBuf)];
    fn deref(&self) -> &[(u32, PathBuf)] {
        &self.keys
    }
}

impl<'a> IntoIterator for &'a KeyArgs {
    type Item = &'a (u32, PathBuf);
    type IntoIter = std::slice::Iter<'a, (u32, PathBuf)>;
    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

/// Parses `VERSION=PEM_FILE`.
pub fn parse_key_arg(s: &str) -> Result<(u32, PathBuf), String> {
    let (ver, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected VERSION=PEM_FILE, got {s:?}"))?;
    let ver = ver.trim().parse::<u32>().map_err(|_| {
        format!("key version {ver:?} is not a number (publickey_ver is an integer)")
    })?;
    Ok((ver, PathBuf::from(path)))
}

/// `--threads N`: the decrypt threads, on the commands that decrypt.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct ThreadsArg {
    /// Worker threads for decryption (default: one per core).
    #[arg(long = "threads", value_name = "N", env = "WECOM_ARCHIVE_THREADS")]
    pub threads: Option<usize>,
}

/// `--rules FILE`: the compliance rules that screen every message (see docs/compliance.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RulesArg {
    /// Screen every message with the rules of FILE (rules.toml) and write what fires to the
    /// `findings` table.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

impl RulesArg {
    /// The rules, read and compiled; `None` without `--rules`.
    pub fn load(
        &self,
    ) -> Result<
        Option<std::sync::Arc<wecom_archive::compliance::rules::RuleSet>>,
        wecom_archive::compliance::rules::RulesError,
    > {
        self.rules
            .as_deref()
            .map(|p| wecom_archive::compliance::rules::RuleSet::load(p).map(Into::into))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_arg_takes_version_and_path() {
        assert_eq!(
            parse_key_arg("2=keys/v2.pem"),
            Ok((2, PathBuf::from("keys/v2.pem")))
        );
        assert!(parse_key_arg("keys/v2.pem").is_err());
        assert!(parse_key_arg("v2=keys/v2.pem").is_err());
    }
}
