//! The configuration file (TOML) and its environment overrides. Secrets are typed
//! ([`Secret`]) so that they never print, and come from the environment or a file, never from
//! the TOML text itself.
//!
//! ```toml
//! # wecom-archive.toml
//! out = "archive"                    # Parquet root (Hive partitions corp_id=/date=)
//! state = "archive/state.sqlite"     # checkpoints; default: <out>/state.sqlite
//! timezone = "Asia/Shanghai"         # of the date= partition
//! poll_interval_secs = 60            # --follow
//!
//! [sdk]
//! library = "/opt/wecom/libWeWorkFinanceSdk_C.so"   # or env WECOM_SDK
//! proxy = ""                         # socks5://host:port or http://host:port
//! proxy_password_env = "WECOM_PROXY_PASSWORD"       # user:password, optional
//! timeout_secs = 30
//! max_attempts = 6                   # per page, on SDK errors 10001-10003 or a worker crash
//!
//! [media]                            # optional; see docs/media.md
//! on_pull = true                     # download media after each pull, as `pull --media`
//! types = ["image", "file"]          # default: every kind
//! max_size = 20000000                # bytes announced by the message
//! concurrency = 2
//!
//! [[corp]]
//! corp_id = "ww0123456789abcdef"
//! secret_env = "WECOM_ARCHIVE_SECRET"   # or secret_file = "/run/secrets/archive"
//! keys = { 1 = "keys/v1.pem", 2 = "keys/v2.pem" }    # publickey_ver = private key PEM
//!
//! [[corp]]                             # a simulated corp: no WeCom account, built-in keys
//! corp_id = "wwsim0000000001"
//! source = "sim"
//! sim_messages = 5000
//! ```
//!
//! Relative paths are relative to the config file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::auth::secret::Secret;

/// A configuration problem, naming the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML is invalid.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is missing or wrong.
    #[error("config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What to fix.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Parquet root.
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// State database; default `<out>/state.sqlite`.
    pub state: Option<PathBuf>,
    /// IANA time zone of the `date=` partition.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Seconds between polls with `--follow`.
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
    /// The official SDK.
    #[serde(default)]
    pub sdk: SdkSection,
    /// Media download.
    #[serde(default)]
    pub media: MediaSection,
    /// The corps to pull.
    #[serde(default, rename = "corp")]
    pub corps: Vec<CorpSection>,
    #[serde(skip)]
    base_dir: PathBuf,
    #[serde(skip)]
    path: PathBuf,
}

/// `[sdk]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdkSection {
    /// `libWeWorkFinanceSdk_C.so`; env `WECOM_SDK` overrides.
    pub library: Option<PathBuf>,
    /// Proxy URL.
    #[serde(default)]
    pub proxy: String,
    /// Env var holding the proxy credentials.
    pub proxy_password_env: Option<String>,
    /// Per-call timeout, seconds.
    pub timeout_secs: Option<i32>,
    /// Attempts per page on retryable errors (network, parse, system, worker crash).
    pub max_attempts: Option<u32>,
}

/// `[media]`: media download defaults (command-line options override them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// Download the new messages' media after each pull (`pull`; `serve` as messages land).
    #[serde(default)]
    pub on_pull: bool,
    /// Only these kinds (`image`, `voice`, `video`, `emotion`, `file`, `meeting_voice_call`,
    /// `voip_doc_share`, `other`).
    pub types: Option<Vec<String>>,
    /// Skip files announced larger than this many bytes.
    pub max_size: Option<u64>,
    /// Parallel downloads.
    pub concurrency: Option<usize>,
}

/// Where a corp's records come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The official SDK (`GetChatData`).
    #[default]
    Sdk,
    /// The built-in simulator (demos, integration tests of `pull`/`serve` without WeCom): its
    /// own keys, no secret.
    Sim,
}

/// `[[corp]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpSection {
    /// The corp id (`ww…`).
    pub corp_id: String,
    /// `sdk` (default) or `sim`.
    #[serde(default)]
    pub source: SourceKind,
    /// With `source = "sim"`: messages in the simulated archive.
    pub sim_messages: Option<u64>,
    /// Env var holding the archive secret.
    pub secret_env: Option<String>,
    /// File holding the archive secret.
    pub secret_file: Option<PathBuf>,
    /// `publickey_ver` → private key PEM file.
    #[serde(default)]
    pub keys: BTreeMap<String, PathBuf>,
}

fn default_out() -> PathBuf {
    "archive".into()
}
fn default_tz() -> String {
    "Asia/Shanghai".into()
}
fn default_poll() -> u64 {
    60
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        c.path = path.to_owned();
        c.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        c.check()?;
        Ok(c)
    }

    fn invalid(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.corps.is_empty() {
            return Err(self.invalid("no [[corp]] section: add one per corp to pull"));
        }
        jiff::tz::TimeZone::get(&self.timezone).map_err(|e| {
            self.invalid(format!(
                "timezone {:?} is not an IANA time zone: {e}",
                self.timezone
            ))
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for corp in &self.corps {
            if !seen.insert(&corp.corp_id) {
                return Err(self.invalid(format!("corp {} is listed twice", corp.corp_id)));
            }
            if corp.source == SourceKind::Sim {
                continue;
            }
            if corp.secret_env.is_none() && corp.secret_file.is_none() {
                return Err(self.invalid(format!(
                    "corp {}: set secret_env or secret_file (the 会话内容存档 Secret)",
                    corp.corp_id
                )));
            }
            if corp.keys.is_empty() {
                return Err(self.invalid(format!(
                    "corp {}: no keys; add keys = {{ 1 = \"v1.pem\" }} (publickey_ver = private key PEM)",
                    corp.corp_id
                )));
            }
            for ver in corp.keys.keys() {
                ver.parse::<u32>().map_err(|_| {
                    self.invalid(format!(
                        "corp {}: key version {ver:?} is not a number",
                        corp.corp_id
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The Parquet root.
    pub fn out_dir(&self) -> PathBuf {
        self.resolve(&self.out)
    }

    /// The state database.
    pub fn state_path(&self) -> PathBuf {
        match &self.state {
            Some(p) => self.resolve(p),
            None => self.out_dir().join("state.sqlite"),
        }
    }

    /// The time zone of the `date=` partition (checked at load).
    pub fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.timezone).expect("checked at load")
    }

    /// The SDK library: env `WECOM_SDK`, else `[sdk] library`.
    pub fn sdk_library(&self) -> Result<PathBuf, ConfigError> {
        if let Some(p) = std::env::var_os("WECOM_SDK") {
            return Ok(PathBuf::from(p));
        }
        self.sdk
            .library
            .as_ref()
            .map(|p| self.resolve(p))
            .ok_or_else(|| {
                self.invalid(
                    "no SDK library: set [sdk] library or WECOM_SDK to libWeWorkFinanceSdk_C.so",
                )
            })
    }

    /// The proxy credentials, if configured.
    pub fn proxy_password(&self) -> Result<Secret, ConfigError> {
        match &self.sdk.proxy_password_env {
            None => Ok(Secret::default()),
            Some(var) => std::env::var(var).map(Secret::new).map_err(|_| {
                self.invalid(format!(
                    "proxy_password_env: environment variable {var} is not set"
                ))
            }),
        }
    }

    /// The archive secret of `corp`, from its env var or file.
    pub fn secret(&self, corp: &CorpSection) -> Result<Secret, ConfigError> {
        if let Some(var) = &corp.secret_env {
            if let Ok(v) = std::env::var(var) {
                return Ok(Secret::new(v.trim().to_owned()));
            }
            if corp.secret_file.is_none() {
                return Err(self.invalid(format!(
                    "corp {}: environment variable {var} (secret_env) is not set",
                    corp.corp_id
                )));
            }
        }
        let file = self.resolve(corp.secret_file.as_ref().expect("checked at load"));
        let text = std::fs::read_to_string(&file).map_err(|e| {
            self.invalid(format!(
                "corp {}: cannot read secret_file {}: {e}",
                corp.corp_id,
                file.display()
            ))
        })?;
        Ok(Secret::new(text.trim().to_owned()))
    }

    /// The key files of `corp`, by version.
    pub fn keys(&self, corp: &CorpSection) -> Vec<(u32, PathBuf)> {
        corp.keys
            .iter()
            .map(|(v, p)| (v.parse().expect("checked at load"), self.resolve(p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_resolves_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "top-secret-value\n").unwrap();
        let p = write(
            dir.path(),
            r#"
out = "arch"
[[corp]]
corp_id = "ww1"
secret_file = "secret"
keys = { 1 = "k1.pem", 2 = "/abs/k2.pem" }
"#,
        );
        let c = Config::load(&p).unwrap();
        assert_eq!(c.out_dir(), dir.path().join("arch"));
        assert_eq!(c.state_path(), dir.path().join("arch/state.sqlite"));
        let corp = &c.corps[0];
        let s = c.secret(corp).unwrap();
        assert_eq!(s.expose(), "top-secret-value");
        assert!(!format!("{s:?} {c:?}").contains("top-secret"));
        assert_eq!(
            c.keys(corp),
            vec![
                (1, dir.path().join("k1.pem")),
                (2, PathBuf::from("/abs/k2.pem"))
            ]
        );
        assert_eq!(c.timezone, "Asia/Shanghai");
    }

    #[test]
    fn rejects_what_cannot_work_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("", "no [[corp]]"),
            ("[[corp]]\ncorp_id = \"ww1\"\nkeys = { 1 = \"a\" }\n", "secret_env or secret_file"),
            ("[[corp]]\ncorp_id = \"ww1\"\nsecret_env = \"X\"\n", "no keys"),
            (
                "timezone = \"Mars/Base\"\n[[corp]]\ncorp_id = \"ww1\"\nsecret_env = \"X\"\nkeys = { 1 = \"a\" }\n",
                "IANA",
            ),
            ("bogus = 1\n", "unknown field"),
        ];
        for (text, want) in cases {
            let err = Config::load(&write(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
