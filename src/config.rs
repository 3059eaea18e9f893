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
//! The same file carries the WeCom-facing sections: `api_base`, `token_store`, `timeout_secs`,
//! `[app]`, `[suite]`, `[provider]` and `[[authcorp]]` (see [`crate::auth::config`] and
//! `docs/auth.md`), and for `serve` the `[callback]` and `[serve]` sections (see
//! [`CallbackSection`], [`ServeSection`] and `docs/serve.md`).
//!
//! Relative paths are relative to the config file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::config::{AppSection, AuthConfig, AuthCorpSection, ProviderSection, SuiteSection};
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
    /// WeCom API base URL (default the real host; the emulator in tests).
    pub api_base: Option<String>,
    /// JSON token store for the one-shot commands (`serve` keeps tokens in the state database).
    pub token_store: Option<PathBuf>,
    /// Whole-request timeout of WeCom API calls, seconds.
    pub timeout_secs: Option<u64>,
    /// `[app]`: the self-built app / session-archive credential.
    pub app: Option<AppSection>,
    /// `[suite]`: the third-party / 代开发 suite.
    pub suite: Option<SuiteSection>,
    /// `[provider]`: the service provider.
    pub provider: Option<ProviderSection>,
    /// `[[authcorp]]`: authorized corps given by hand (`serve` also learns them from
    /// `create_auth`).
    #[serde(default)]
    pub authcorp: Vec<AuthCorpSection>,
    /// `[callback]`: the callback server of `serve`.
    pub callback: Option<CallbackSection>,
    /// `[serve]`: the scheduler of `serve`.
    #[serde(default)]
    pub serve: ServeSection,
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

/// `[callback]`: where and how `serve` receives WeCom callbacks.
///
/// ```toml
/// [callback]
/// listen = "127.0.0.1:8080"        # behind the TLS-terminating reverse proxy
/// timestamp_window_secs = 300      # reject callbacks whose timestamp is further off
/// max_body_bytes = 65536           # larger bodies get 413 before any parsing
/// dedupe_ttl_secs = 3600           # how long a delivery is remembered (WeCom retries 3 times)
/// queue_capacity = 4096            # events accepted but not yet handled; full = 503
///
/// [callback.app]                   # self-built app: receiveid = [app] corpid
/// path = "/callback/app"
/// token_env = "WECOM_CALLBACK_TOKEN"            # or token_file
/// aes_key_env = "WECOM_CALLBACK_AES_KEY"        # EncodingAESKey; or aes_key_file
///
/// [callback.suite]                 # third-party / 代开发 suite
/// command_path = "/callback/suite/command"      # receiveid = [suite] suite_id
/// data_path = "/callback/suite/data"            # receiveid = the authorizing corp
/// token_env = "WECOM_SUITE_CALLBACK_TOKEN"
/// aes_key_env = "WECOM_SUITE_CALLBACK_AES_KEY"
/// # GET URL checks on both paths: default [provider] corpid and [suite] suite_id
/// verify_receiveids = ["wwprovider0123456"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSection {
    /// Listen address (`host:port`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest accepted difference between a callback's `timestamp` and now, seconds.
    #[serde(default = "default_window")]
    pub timestamp_window_secs: i64,
    /// Largest accepted request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How long a delivery's dedupe key is remembered, seconds.
    #[serde(default = "default_dedupe_ttl")]
    pub dedupe_ttl_secs: i64,
    /// Capacity of the queue between the HTTP handlers and the event handler.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// The self-built app's receive URL.
    pub app: Option<AppCallback>,
    /// The suite's command and data URLs.
    pub suite: Option<SuiteCallback>,
}

/// `[callback.app]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCallback {
    /// URL path.
    #[serde(default = "default_app_path")]
    pub path: String,
    /// The corp (receiveid); default `[app] corpid`.
    pub corpid: Option<String>,
    /// Env var holding the callback Token.
    pub token_env: Option<String>,
    /// File holding the callback Token.
    pub token_file: Option<PathBuf>,
    /// Env var holding the EncodingAESKey.
    pub aes_key_env: Option<String>,
    /// File holding the EncodingAESKey.
    pub aes_key_file: Option<PathBuf>,
}

/// `[callback.suite]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteCallback {
    /// The command (指令) URL path.
    #[serde(default = "default_command_path")]
    pub command_path: String,
    /// The data (数据) URL path.
    #[serde(default = "default_data_path")]
    pub data_path: String,
    /// Env var holding the callback Token.
    pub token_env: Option<String>,
    /// File holding the callback Token.
    pub token_file: Option<PathBuf>,
    /// Env var holding the EncodingAESKey.
    pub aes_key_env: Option<String>,
    /// File holding the EncodingAESKey.
    pub aes_key_file: Option<PathBuf>,
    /// receiveids accepted by GET URL verification (default: `[provider] corpid` and the
    /// suite_id).
    #[serde(default)]
    pub verify_receiveids: Vec<String>,
}

/// `[serve]`: the pull scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Pulls running at the same time, over all corps.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_pulls: usize,
    /// Seconds between fallback polls of each corp (a lost `msgaudit_notify` is caught up);
    /// default `poll_interval_secs`.
    pub fallback_poll_secs: Option<u64>,
    /// Records per commit.
    #[serde(default = "default_commit_every")]
    pub commit_every: u64,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            max_concurrent_pulls: default_concurrency(),
            fallback_poll_secs: None,
            commit_every: default_commit_every(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_window() -> i64 {
    300
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_dedupe_ttl() -> i64 {
    3600
}
fn default_queue() -> usize {
    4096
}
fn default_app_path() -> String {
    "/callback/app".into()
}
fn default_command_path() -> String {
    "/callback/suite/command".into()
}
fn default_data_path() -> String {
    "/callback/suite/data".into()
}
fn default_concurrency() -> usize {
    4
}
fn default_commit_every() -> u64 {
    100_000
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
        let mut c: Config = toml::from_str(&text).map_err(|e| {
            let mut message = e.to_string();
            // The auth section used to be a [corp] table; it clashes with the [[corp]] list.
            if message.contains("corp") && message.contains("expected a sequence") {
                message.push_str(
                    "\n(the self-built app / archive secret section is now [app]; [[corp]] lists the corps to pull)",
                );
            }
            ConfigError::Parse {
                path: path.to_owned(),
                message,
            }
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

    /// `pull` needs at least one corp; the token commands and `serve` do not.
    pub fn require_corps(&self) -> Result<(), ConfigError> {
        if self.corps.is_empty() {
            return Err(self.invalid("no [[corp]] section: add one per corp to pull"));
        }
        Ok(())
    }

    /// The auth sections, with their file paths resolved against the config's directory.
    pub fn auth(&self) -> AuthConfig {
        let res = |p: &Option<PathBuf>| p.as_ref().map(|p| self.resolve(p));
        AuthConfig {
            api_base: self.api_base.clone(),
            token_store: res(&self.token_store),
            timeout_secs: self.timeout_secs,
            app: self.app.clone().map(|mut a| {
                a.secret_file = res(&a.secret_file);
                a
            }),
            suite: self.suite.clone().map(|mut s| {
                s.secret_file = res(&s.secret_file);
                s.ticket_file = res(&s.ticket_file);
                s
            }),
            provider: self.provider.clone().map(|mut p| {
                p.secret_file = res(&p.secret_file);
                p
            }),
            authcorp: self
                .authcorp
                .iter()
                .cloned()
                .map(|mut a| {
                    a.permanent_code_file = res(&a.permanent_code_file);
                    a
                })
                .collect(),
        }
    }

    /// The config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seconds between fallback polls in `serve`.
    pub fn fallback_poll_secs(&self) -> u64 {
        self.serve
            .fallback_poll_secs
            .unwrap_or(self.poll_interval_secs)
            .max(1)
    }

    fn check(&self) -> Result<(), ConfigError> {
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
    fn one_file_carries_the_auth_and_callback_sections() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"
api_base = "http://127.0.0.1:1"
[app]
corpid = "wwapp"
secret_file = "app.secret"
[suite]
suite_id = "wwsuite"
secret_env = "S"
[callback]
listen = "127.0.0.1:0"
[callback.app]
token_env = "T"
aes_key_file = "aes"
[serve]
max_concurrent_pulls = 2
"#,
        );
        let c = Config::load(&p).unwrap();
        assert!(c
            .require_corps()
            .unwrap_err()
            .to_string()
            .contains("no [[corp]]"));
        let auth = c.auth();
        assert_eq!(
            auth.app.unwrap().secret_file.unwrap(),
            dir.path().join("app.secret")
        );
        let cb = c.callback.clone().unwrap();
        assert_eq!(cb.timestamp_window_secs, 300);
        assert_eq!(cb.app.unwrap().path, "/callback/app");
        assert_eq!(c.serve.max_concurrent_pulls, 2);
        assert_eq!(c.fallback_poll_secs(), 60);
    }

    #[test]
    fn rejects_what_cannot_work_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[[corp]]\ncorp_id = \"ww1\"\nkeys = { 1 = \"a\" }\n", "secret_env or secret_file"),
            ("[[corp]]\ncorp_id = \"ww1\"\nsecret_env = \"X\"\n", "no keys"),
            (
                "timezone = \"Mars/Base\"\n[[corp]]\ncorp_id = \"ww1\"\nsecret_env = \"X\"\nkeys = { 1 = \"a\" }\n",
                "IANA",
            ),
            ("bogus = 1\n", "unknown field"),
            ("[corp]\ncorpid = \"ww1\"\n", "now [app]"),
        ];
        for (text, want) in cases {
            let err = Config::load(&write(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
