//! The configuration file (TOML) and its environment overrides. Secrets are typed
//! ([`Secret`]) so that they never print, and come from the environment or a file, never from
//! the TOML text itself.
//!
//! ```toml
//! # wecom-archive.toml
//! out = "archive"                    # Parquet root (Hive partitions corp_id=/date=)
//! state = "archive/state.sqlite"     # checkpoints; default: <out>/state.sqlite
//!                                    # or "postgres://user@host/db" (docs/scale-out.md)
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
//! [fleet]                            # with a postgres:// state only
//! lease_secs = 60                    # a dead worker's corps wait at most this long
//!
//! [media]                            # optional; see docs/media.md
//! on_pull = true                     # download media after each pull, as `pull --media`
//! types = ["image", "file"]          # default: every kind
//! max_size = 20000000                # bytes announced by the message
//! concurrency = 2
//!
//! [compaction]                       # optional; merges a closed day's small files
//! auto = true                        # after each pull of `pull --follow` and `serve`
//! target_file_mb = 128
//!
//! [alerts]                         # optional; findings to webhooks (docs/compliance.md)
//! min_severity = "warn"
//! [[alerts.webhook]]
//! name = "compliance-robot"
//! kind = "wecom_robot"               # or "json"
//! url_env = "WECOM_ROBOT_URL"        # a secret (the URL holds the key); or url_file, or url
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
//! `[app]`, `[suite]`, `[provider]` and `[[authcorp]]` (resolved into an [`AuthConfig`] by
//! [`Config::auth`]; see `docs/auth.md`), and for `serve` the `[callback]` and `[serve]` sections
//! (see [`CallbackSection`], [`ServeSection`] and `docs/serve.md`).
//!
//! Relative paths are relative to the config file's directory. Every secret follows one rule,
//! stated in [`secret`].

mod secret;
mod sections;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::secret::Secret;
pub use secret::SecretRef;
use sections::{default_out, default_poll, default_tz};
pub use sections::{
    AlertsSection, AppCallback, AppSection, AuthConfig, AuthCorpSection, CallbackSection,
    CompactionSection, CorpSection, FleetSection, MediaSection, ProviderSection, SdkSection,
    ServeSection, SourceKind, SuiteCallback, SuiteSection, WebhookKind, WebhookSection,
};

/// A configuration problem, naming the file or section and what to fix; never a secret value.
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
    /// A section needed by the command is absent.
    #[error("config has no [{0}] section")]
    MissingSection(&'static str),
    /// No authorized corp matches.
    #[error("config has no [[authcorp]] entry{}", .0.as_ref().map(|c| format!(" for corp {c}")).unwrap_or_default())]
    NoAuthCorp(Option<String>),
    /// Neither `…_env` nor `…_file` is given, or both are.
    #[error("[{section}]: give exactly one of {field}_env or {field}_file")]
    SecretSource {
        /// The section.
        section: String,
        /// The field prefix (`secret`, `ticket`, `permanent_code`).
        field: &'static str,
    },
    /// The environment variable is unset or empty.
    #[error("[{section}]: environment variable {var} ({field}) is unset or empty")]
    EnvUnset {
        /// The section.
        section: String,
        /// The variable.
        var: String,
        /// The field prefix.
        field: &'static str,
    },
    /// The secret file cannot be read or is empty.
    #[error("[{section}]: cannot read {field} from {path}: {reason}")]
    SecretFile {
        /// The section.
        section: String,
        /// The file.
        path: PathBuf,
        /// The field prefix.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The HTTP client cannot be built from the configured values.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Output root: a folder, or with `format = "delta"` also a `file://` or
    /// `s3://bucket/prefix` URL.
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// Table format: `parquet` (default) or `delta`.
    #[serde(default)]
    pub format: crate::sink::Format,
    /// State database: a SQLite file (default `<out>/state.sqlite`), or a
    /// `postgres://USER@HOST:PORT/DB` URL shared by many workers (see docs/scale-out.md).
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
    /// Compaction of closed days.
    #[serde(default)]
    pub compaction: CompactionSection,
    /// `rules.toml`: the compliance rules screening every message (findings table); relative to
    /// the config file's folder.
    pub rules: Option<PathBuf>,
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
    /// `[alerts]`: findings delivered to webhooks.
    pub alerts: Option<AlertsSection>,
    /// `[fleet]`: corp leases when many workers share a PostgreSQL state.
    #[serde(default)]
    pub fleet: FleetSection,
    #[serde(skip)]
    base_dir: PathBuf,
    #[serde(skip)]
    path: PathBuf,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| {
            // The parser's message and the line, not its snippet of the file: the offending line
            // may be a secret written inline by mistake.
            let mut message = e.message().trim_end().to_owned();
            if let Some(span) = e.span() {
                let line = text[..span.start].matches('\n').count() + 1;
                message = format!("line {line}: {message}");
            }
            // The auth section used to be a [corp] table; it clashes with the [[corp]] list.
            if message.contains("expected a sequence") && text.lines().any(|l| l.trim() == "[corp]") {
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

    /// The rules of `rules = "…"`, read and compiled; `None` without the key.
    pub fn rule_set(
        &self,
    ) -> Result<
        Option<std::sync::Arc<crate::compliance::rules::RuleSet>>,
        crate::compliance::rules::RulesError,
    > {
        self.rules
            .as_ref()
            .map(|p| crate::compliance::rules::RuleSet::load(&self.resolve(p)).map(Into::into))
            .transpose()
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

    /// The lowest severity a configured webhook wants: findings at or above it go to the alert
    /// outbox. `None` when there is no `[alerts]` section or it has no webhook.
    pub fn alerts_min_severity(&self) -> Option<crate::compliance::rules::Severity> {
        let alerts = self.alerts.as_ref()?;
        alerts.webhooks.iter().map(|w| w.min_severity(alerts)).min()
    }

    /// The URL of `webhook` (a secret: a robot's URL holds its key).
    pub fn webhook_url(&self, webhook: &WebhookSection) -> Result<Secret, ConfigError> {
        let section = format!("alerts.webhook {}", webhook.name);
        if let Some(url) = &webhook.url {
            return Ok(url.clone());
        }
        let file = webhook.url_file.as_ref().map(|p| self.resolve(p));
        SecretRef {
            section: &section,
            field: "url",
            env: webhook.url_env.as_deref(),
            file: file.as_deref(),
        }
        .read()
    }

    fn check_alerts(&self) -> Result<(), ConfigError> {
        let Some(alerts) = &self.alerts else {
            return Ok(());
        };
        let mut names = std::collections::BTreeSet::new();
        for w in &alerts.webhooks {
            let name = w.name.trim();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(self.invalid(format!(
                    "[[alerts.webhook]] name {:?}: give each webhook a short name (1 to 64 characters)",
                    w.name
                )));
            }
            if !names.insert(name) {
                return Err(self.invalid(format!(
                    "[[alerts.webhook]] {name} is listed twice: names must be unique"
                )));
            }
            let sources = [w.url.is_some(), w.url_env.is_some(), w.url_file.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(self.invalid(format!(
                    "[[alerts.webhook]] {name}: give exactly one of url_env, url_file or url"
                )));
            }
            if let Some(url) = &w.url {
                check_webhook_url(url.expose())
                    .map_err(|why| self.invalid(format!("[[alerts.webhook]] {name}: url {why}")))?;
            }
            for (key, value) in [
                ("batch_max", w.batch_max.map(|v| v as u64)),
                ("per_minute", w.per_minute.map(u64::from)),
                ("max_attempts", Some(u64::from(w.max_attempts))),
                ("backoff_secs", Some(w.backoff_secs)),
                ("timeout_secs", Some(w.timeout_secs)),
            ] {
                if value == Some(0) {
                    return Err(self.invalid(format!(
                        "[[alerts.webhook]] {name}: {key} must be at least 1"
                    )));
                }
            }
            if w.batch_max.is_some_and(|n| n > 1000) {
                return Err(self.invalid(format!(
                    "[[alerts.webhook]] {name}: batch_max must be at most 1000"
                )));
            }
            if w.max_backoff_secs < w.backoff_secs {
                return Err(self.invalid(format!(
                    "[[alerts.webhook]] {name}: max_backoff_secs must be at least backoff_secs"
                )));
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.check_alerts()?;
        if self.out_is_url() {
            if self.format != crate::sink::Format::Delta {
                return Err(self.invalid(format!(
                    "out = {:?} is a URL: object storage needs format = \"delta\"",
                    self.out.display()
                )));
            }
            if self.state.is_none() {
                return Err(self.invalid(format!(
                    "out = {:?} is a URL: set state = \"PATH\" to a local state database \
                     (run history, tokens, alerts)",
                    self.out.display()
                )));
            }
            if self.media.on_pull {
                self.media_dir()?;
            }
        } else if self.media.dir.is_some() {
            return Err(self.invalid(
                "[media] dir is for an object-storage out (s3://): with a folder out, media files \
                 go under it, where the media table's paths point"
                    .to_owned(),
            ));
        }
        jiff::tz::TimeZone::get(&self.timezone).map_err(|e| {
            self.invalid(format!(
                "timezone {:?} is not an IANA time zone: {e}",
                self.timezone
            ))
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for corp in &self.corps {
            crate::sink::layout::check_corp_id(&corp.corp_id).map_err(|e| self.invalid(e))?;
            if !seen.insert(&corp.corp_id) {
                return Err(self.invalid(format!("corp {} is listed twice", corp.corp_id)));
            }
            if corp.source == SourceKind::Sim {
                continue;
            }
            if corp.secret_env.is_some() == corp.secret_file.is_some() {
                return Err(self.invalid(format!(
                    "corp {}: set exactly one of secret_env or secret_file (the 会话内容存档 Secret)",
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

    /// The local folder of downloaded media files: `[media] dir`, else the output folder (a
    /// `file://` URL's path). An `s3://` output has none unless `[media] dir` names one.
    pub fn media_dir(&self) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = &self.media.dir {
            return Ok(self.resolve(dir));
        }
        if !self.out_is_url() {
            return Ok(self.out_dir());
        }
        let out = self.out.to_string_lossy();
        url::Url::parse(&out)
            .ok()
            .filter(|u| u.scheme() == "file")
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| {
                self.invalid(format!(
                    "out = {out:?} is object storage: media files are downloaded to a local \
                     folder, set [media] dir = \"PATH\""
                ))
            })
    }

    /// The Parquet root (a URL `out` is returned as it is).
    pub fn out_dir(&self) -> PathBuf {
        if self.out_is_url() {
            return self.out.clone();
        }
        self.resolve(&self.out)
    }

    /// True when `out` is a `file://` or `s3://` URL.
    pub fn out_is_url(&self) -> bool {
        crate::sink::delta::is_url(&self.out.to_string_lossy())
    }

    /// The Delta target of `format = "delta"`; `None` for Parquet.
    pub fn delta_target(
        &self,
    ) -> Result<
        Option<std::sync::Arc<crate::sink::delta::DeltaTarget>>,
        crate::sink::delta::DeltaError,
    > {
        match self.format {
            crate::sink::Format::Parquet => Ok(None),
            crate::sink::Format::Delta => {
                crate::sink::delta::DeltaTarget::open(&self.out_dir().to_string_lossy())
                    .map(|t| Some(std::sync::Arc::new(t)))
            }
        }
    }

    /// The state database.
    pub fn state_path(&self) -> PathBuf {
        match &self.state {
            Some(p) if self.state_is_shared() => p.clone(),
            Some(p) => self.resolve(p),
            None => crate::sink::layout::state_path(&self.out_dir()),
        }
    }

    /// Whether the state is a PostgreSQL database shared by workers (`state = "postgres://…"`):
    /// then every pull of a corp holds its lease.
    pub fn state_is_shared(&self) -> bool {
        self.state
            .as_ref()
            .and_then(|p| p.to_str())
            .is_some_and(crate::state::is_postgres_url)
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

    /// The SDK proxy's `user:password`, when `proxy_password_env` names one (else empty).
    pub fn proxy_password(&self) -> Result<Secret, ConfigError> {
        match &self.sdk.proxy_password_env {
            None => Ok(Secret::default()),
            Some(var) => SecretRef {
                section: "sdk",
                field: "proxy_password",
                env: Some(var),
                file: None,
            }
            .read(),
        }
    }

    /// The archive secret of `corp` (see [`secret`] for the rule).
    pub fn secret(&self, corp: &CorpSection) -> Result<Secret, ConfigError> {
        let section = format!("corp {}", corp.corp_id);
        let file = corp.secret_file.as_ref().map(|p| self.resolve(p));
        SecretRef {
            section: &section,
            field: "secret",
            env: corp.secret_env.as_deref(),
            file: file.as_deref(),
        }
        .read()
    }

    /// The key files of `corp`, by version.
    pub fn keys(&self, corp: &CorpSection) -> Vec<(u32, PathBuf)> {
        corp.keys
            .iter()
            .map(|(v, p)| (v.parse().expect("checked at load"), self.resolve(p)))
            .collect()
    }
}

/// Whether `url` can be a webhook: `http` or `https` with a host. The reason never repeats the
/// URL (it may hold a key).
pub fn check_webhook_url(url: &str) -> Result<(), &'static str> {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) if !["http", "https"].contains(&u.scheme()) => {
            Err("must start with http:// or https://")
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Err("has no host"),
        Ok(_) => Ok(()),
        Err(_) => Err("is not a URL"),
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
        assert_eq!(
            c.state_path(),
            dir.path().join("arch/_wecom_archive/state.sqlite")
        );
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
    fn media_files_go_under_the_folder_out_or_media_dir_for_object_storage() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| Config::load(&write(dir.path(), text));
        let c = load("out = \"arch\"\n").unwrap();
        assert_eq!(c.media_dir().unwrap(), dir.path().join("arch"));
        let c =
            load("out = \"file:///data/arch\"\nformat = \"delta\"\nstate = \"s.db\"\n").unwrap();
        assert_eq!(c.media_dir().unwrap(), PathBuf::from("/data/arch"));
        let s3 = "out = \"s3://b/p\"\nformat = \"delta\"\nstate = \"s.db\"\n";
        let err = load(s3).unwrap().media_dir().unwrap_err();
        assert!(err.to_string().contains("set [media] dir"), "{err}");
        let err = load(&format!("{s3}[media]\non_pull = true\n")).unwrap_err();
        assert!(err.to_string().contains("set [media] dir"), "{err}");
        let c = load(&format!("{s3}[media]\non_pull = true\ndir = \"m\"\n")).unwrap();
        assert_eq!(c.media_dir().unwrap(), dir.path().join("m"));
        // A folder out keeps its media under it, where the media table's paths point.
        let err = load("out = \"arch\"\n[media]\ndir = \"m\"\n").unwrap_err();
        assert!(err.to_string().contains("[media] dir is for"), "{err}");
    }

    #[test]
    fn compaction_is_on_by_default_and_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&write(dir.path(), "")).unwrap();
        assert!(c.compaction.auto);
        assert_eq!(c.compaction.target_file_mb, 128);
        let day = jiff::civil::date(2026, 11, 21);
        let o = c.compaction.options(day);
        assert_eq!((o.target_file_bytes, o.before), (128 << 20, Some(day)));
        let c = Config::load(&write(
            dir.path(),
            "[compaction]\nauto = false\ntarget_file_mb = 16\n",
        ))
        .unwrap();
        assert!(!c.compaction.auto);
        assert_eq!(c.compaction.options(day).target_file_bytes, 16 << 20);
        let err = Config::load(&write(dir.path(), "[compaction]\nauto_ = true\n")).unwrap_err();
        assert!(err.to_string().contains("auto_"), "{err}");
    }

    #[test]
    fn alerts_webhooks_filters_and_masked_urls() {
        use crate::compliance::rules::Severity;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("robot_url"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=file-key-123\n",
        )
        .unwrap();
        let c = Config::load(&write(dir.path(), "")).unwrap();
        assert_eq!(c.alerts_min_severity(), None, "no [alerts]");
        let c = Config::load(&write(dir.path(), "[alerts]\nmin_severity = \"info\"\n")).unwrap();
        assert_eq!(c.alerts_min_severity(), None, "no webhook");
        let c = Config::load(&write(
            dir.path(),
            r#"
[alerts]
min_severity = "critical"
[[alerts.webhook]]
name = "robot"
kind = "wecom_robot"
url_file = "robot_url"
[[alerts.webhook]]
name = "siem"
kind = "json"
url = "http://127.0.0.1:9000/hook?token=inline-key-456"
min_severity = "warn"
batch_max = 50
"#,
        ))
        .unwrap();
        assert_eq!(c.alerts_min_severity(), Some(Severity::Warn));
        let alerts = c.alerts.as_ref().unwrap();
        let (robot, siem) = (&alerts.webhooks[0], &alerts.webhooks[1]);
        assert_eq!(robot.min_severity(alerts), Severity::Critical);
        assert_eq!((robot.batch_max(), robot.per_minute()), (10, Some(20)));
        assert_eq!((siem.batch_max(), siem.per_minute()), (50, None));
        assert_eq!((robot.max_attempts, alerts.send_wait_secs), (8, 30));
        assert!(c
            .webhook_url(robot)
            .unwrap()
            .expose()
            .ends_with("key=file-key-123"));
        assert!(c
            .webhook_url(siem)
            .unwrap()
            .expose()
            .ends_with("inline-key-456"));
        let debug = format!("{c:?}");
        assert!(!debug.contains("inline-key-456"), "{debug}");
    }

    #[test]
    fn alerts_mistakes_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let hook = |extra: &str| {
            format!("[alerts]\n[[alerts.webhook]]\nname = \"h\"\nkind = \"json\"\n{extra}")
        };
        let cases = [
            (
                hook("url = \"http://x/secret-path\"\nretries = 3\n"),
                "unknown field `retries`",
            ),
            (
                hook("url_env = \"U\"\nurl = \"http://x/secret-path\"\n"),
                "exactly one of url_env, url_file or url",
            ),
            (hook(""), "exactly one of url_env, url_file or url"),
            (
                hook("url = \"ftp://x/secret-path\"\n"),
                "must start with http",
            ),
            (hook("url = \"not a url secret-path\"\n"), "is not a URL"),
            (
                hook("url_env = \"U\"\nmin_severity = \"high\"\n"),
                "\"high\" is not a severity",
            ),
            (
                hook("url_env = \"U\"\nper_minute = 0\n"),
                "per_minute must be at least 1",
            ),
            (
                hook("url_env = \"U\"\nbatch_max = 5000\n"),
                "batch_max must be at most 1000",
            ),
            (
                hook("url_env = \"U\"\nkind2 = 1\n"),
                "unknown field `kind2`",
            ),
            (
                "[alerts]\n[[alerts.webhook]]\nname = \"h\"\nkind = \"slack\"\nurl_env = \"U\"\n"
                    .into(),
                "unknown variant `slack`",
            ),
            (
                format!(
                    "{}[[alerts.webhook]]\nname = \"h\"\nkind = \"json\"\nurl_env = \"V\"\n",
                    hook("url_env = \"U\"\n")
                ),
                "h is listed twice",
            ),
        ];
        for (text, want) in cases {
            let err = Config::load(&write(dir.path(), &text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains("secret-path"), "{text:?}: {err}");
        }
        // An unset variable is named, when the URL is needed.
        let c = Config::load(&write(
            dir.path(),
            &hook("url_env = \"WECOM_ARCHIVE_TEST_UNSET_URL\"\n"),
        ))
        .unwrap();
        let err = c
            .webhook_url(&c.alerts.as_ref().unwrap().webhooks[0])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WECOM_ARCHIVE_TEST_UNSET_URL") && err.contains("alerts.webhook h"),
            "{err}"
        );
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
            (
                "[[corp]]\ncorp_id = \"../../x\"\nsecret_env = \"X\"\nkeys = { 1 = \"a\" }\n",
                "corp id \"../../x\" contains '.'",
            ),
            ("[corp]\ncorpid = \"ww1\"\n", "now [app]"),
            ("[app]\ncorpid = \"w\"\nsecret = \"inline-value\"\n", "line 3: unknown field"),
            (
                "[[corp]]\ncorp_id = \"ww1\"\nsecret_env = \"X\"\nsecret_file = \"f\"\nkeys = { 1 = \"a\" }\n",
                "exactly one of secret_env or secret_file",
            ),
        ];
        for (text, want) in cases {
            let err = Config::load(&write(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("c.toml"), "{text:?}: {err}");
            assert!(!err.contains("inline-value"), "{text:?}: {err}");
        }
    }
}
