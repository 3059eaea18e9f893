//! The auth sections of the configuration file, and the wiring they build ([`AuthContext`]).
//!
//! They live in the one `wecom-archive.toml` that `pull`, `serve`, `token`, `permit-users` and
//! `check-agree` all read ([`crate::config::Config`] parses the file and hands these sections
//! over with [`crate::config::Config::auth`]); [`AuthConfig::from_toml`] parses the auth keys
//! alone, for library users.
//!
//! Secrets are never written in the file itself: each is named by an environment variable
//! (`…_env`) or a file (`…_file`, trailing newline ignored; keep it mode 0600).
//!
//! ```toml
//! # Optional. Default: https://qyapi.weixin.qq.com (point it at the emulator in tests).
//! api_base = "http://127.0.0.1:8080"
//! # Optional. Tokens cached across runs (JSON, mode 0600); memory only when absent.
//! token_store = "/var/lib/wecom-archive/tokens.json"
//! # Optional. Whole-request timeout in seconds (default 15).
//! timeout_secs = 15
//!
//! # Self-built app or the 会话内容存档 (session archive) secret: `token --kind app`,
//! # and the credential of `permit-users` / `check-agree` (which need the archive secret).
//! # (Named [app] so that it does not clash with the [[corp]] list of corps to pull.)
//! [app]
//! corpid = "ww0123456789abcdef"
//! agentid = "archive"                       # optional label for messages
//! secret_env = "WECOM_ARCHIVE_SECRET"       # or: secret_file = "/run/secrets/archive"
//!
//! # Third-party / 代开发 suite: --kind suite.
//! [suite]
//! suite_id = "wwsuite0123456789"
//! secret_env = "WECOM_SUITE_SECRET"
//! ticket_file = "/var/lib/wecom-archive/suite_ticket"  # latest pushed suite_ticket (or ticket_env)
//!
//! # Service provider: --kind provider.
//! [provider]
//! corpid = "wwprovider0123456"
//! secret_env = "WECOM_PROVIDER_SECRET"
//!
//! # Authorized corps of the suite: --kind authcorp [--corp ww…] (default: the first).
//! [[authcorp]]
//! corpid = "wwclient0123456789"
//! permanent_code_env = "WECOM_PERMANENT_CODE"  # or permanent_code_file
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::api::client::{ApiClient, ClientConfig, DEFAULT_BASE_URL};
use crate::auth::clock::Clock;
use crate::auth::providers::{
    AuthCorpToken, CorpToken, ProviderToken, StaticSuiteTicket, SuiteTicketSource, SuiteToken,
};
use crate::auth::secret::Secret;
use crate::auth::token::{
    CachePolicy, JsonFileTokenStore, MemoryTokenStore, TokenCache, TokenStore,
};

/// The whole auth configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// API base URL (default the real WeCom host).
    pub api_base: Option<String>,
    /// JSON token store path.
    pub token_store: Option<PathBuf>,
    /// Whole-request timeout in seconds.
    pub timeout_secs: Option<u64>,
    /// `[app]`: self-built app / session archive credential.
    pub app: Option<AppSection>,
    /// Third-party suite credential.
    pub suite: Option<SuiteSection>,
    /// Service provider credential.
    pub provider: Option<ProviderSection>,
    /// Authorized corps of the suite.
    #[serde(default)]
    pub authcorp: Vec<AuthCorpSection>,
}

/// `[app]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// The corpid.
    pub corpid: String,
    /// agentid or label, for messages.
    pub agentid: Option<String>,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
    /// File holding the secret.
    pub secret_file: Option<PathBuf>,
}

/// `[suite]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSection {
    /// The suite_id.
    pub suite_id: String,
    /// Environment variable holding the suite_secret.
    pub secret_env: Option<String>,
    /// File holding the suite_secret.
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the latest suite_ticket.
    pub ticket_env: Option<String>,
    /// File holding the latest suite_ticket.
    pub ticket_file: Option<PathBuf>,
}

/// `[provider]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// The provider's own corpid.
    pub corpid: String,
    /// Environment variable holding the provider_secret.
    pub secret_env: Option<String>,
    /// File holding the provider_secret.
    pub secret_file: Option<PathBuf>,
}

/// `[[authcorp]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCorpSection {
    /// The authorized corp's corpid.
    pub corpid: String,
    /// Environment variable holding the permanent_code.
    pub permanent_code_env: Option<String>,
    /// File holding the permanent_code.
    pub permanent_code_file: Option<PathBuf>,
}

/// A configuration problem (never contains a secret value).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this format.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
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
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl AuthConfig {
    /// Parses a configuration from TOML text.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }
}

/// Reads a secret from exactly one of an environment variable or a file.
pub fn resolve_secret(
    section: &str,
    field: &'static str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    match (env, file) {
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(ConfigError::EnvUnset {
                section: section.to_owned(),
                var: var.to_owned(),
                field,
            }),
        },
        (None, Some(path)) => {
            let err = |reason: String| ConfigError::SecretFile {
                section: section.to_owned(),
                path: path.to_owned(),
                field,
                reason,
            };
            let mut raw = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let value = Secret::new(raw.trim_end_matches(['\r', '\n']));
            zeroize::Zeroize::zeroize(&mut raw);
            if value.is_empty() {
                return Err(err("the file is empty".into()));
            }
            Ok(value)
        }
        _ => Err(ConfigError::SecretSource {
            section: section.to_owned(),
            field,
        }),
    }
}

/// The client and token cache built from an [`AuthConfig`], and the token providers on them.
pub struct AuthContext {
    /// The configuration.
    pub config: AuthConfig,
    /// The HTTP client.
    pub client: Arc<ApiClient>,
    /// The token cache (on the configured store).
    pub cache: Arc<TokenCache>,
}

impl std::fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthContext")
            .field("api_base", &self.client.base_url())
            .finish()
    }
}

impl AuthContext {
    /// Builds the client and cache from `config`, with `clock`; tokens persist in the JSON
    /// `token_store` when configured, else in memory.
    pub fn new(config: AuthConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let store: Arc<dyn TokenStore> = match &config.token_store {
            Some(p) => Arc::new(JsonFileTokenStore::open(p)),
            None => Arc::new(MemoryTokenStore::new()),
        };
        Self::with_store(config, clock, store)
    }

    /// Like [`Self::new`], with tokens persisted in `store` (`serve`: the state database).
    pub fn with_store(
        config: AuthConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, ConfigError> {
        let mut cc = ClientConfig {
            base_url: config
                .api_base
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            ..ClientConfig::default()
        };
        if let Some(t) = config.timeout_secs {
            cc.timeout = Duration::from_secs(t);
        }
        let client = ApiClient::with_clock(cc, clock.clone())
            .map_err(|e| ConfigError::Client(e.without_url().to_string()))?;
        let cache = TokenCache::new(clock, store, CachePolicy::default());
        Ok(AuthContext {
            config,
            client: Arc::new(client),
            cache: Arc::new(cache),
        })
    }

    /// The `[app]` access_token provider.
    pub fn app_token(&self) -> Result<CorpToken, ConfigError> {
        let c = self
            .config
            .app
            .as_ref()
            .ok_or(ConfigError::MissingSection("app"))?;
        let secret = resolve_secret(
            "app",
            "secret",
            c.secret_env.as_deref(),
            c.secret_file.as_deref(),
        )?;
        Ok(CorpToken::new(
            self.client.clone(),
            self.cache.clone(),
            &c.corpid,
            c.agentid.clone(),
            secret,
        ))
    }

    /// The `[suite]` suite_access_token provider (ticket from `ticket_env` / `ticket_file`).
    pub fn suite_token(&self) -> Result<SuiteToken, ConfigError> {
        let s = self
            .config
            .suite
            .as_ref()
            .ok_or(ConfigError::MissingSection("suite"))?;
        let ticket = resolve_secret(
            "suite",
            "ticket",
            s.ticket_env.as_deref(),
            s.ticket_file.as_deref(),
        )?;
        self.suite_token_with(Arc::new(StaticSuiteTicket(ticket)))
    }

    /// The `[suite]` suite_access_token provider with tickets from `tickets` (`serve`: the
    /// tickets WeCom pushed to the command callback, kept in the state database).
    pub fn suite_token_with(
        &self,
        tickets: Arc<dyn SuiteTicketSource>,
    ) -> Result<SuiteToken, ConfigError> {
        let s = self
            .config
            .suite
            .as_ref()
            .ok_or(ConfigError::MissingSection("suite"))?;
        let secret = resolve_secret(
            "suite",
            "secret",
            s.secret_env.as_deref(),
            s.secret_file.as_deref(),
        )?;
        Ok(SuiteToken::new(
            self.client.clone(),
            self.cache.clone(),
            &s.suite_id,
            secret,
            tickets,
        ))
    }

    /// The `[provider]` provider_access_token provider.
    pub fn provider_token(&self) -> Result<ProviderToken, ConfigError> {
        let p = self
            .config
            .provider
            .as_ref()
            .ok_or(ConfigError::MissingSection("provider"))?;
        let secret = resolve_secret(
            "provider",
            "secret",
            p.secret_env.as_deref(),
            p.secret_file.as_deref(),
        )?;
        Ok(ProviderToken::new(
            self.client.clone(),
            self.cache.clone(),
            &p.corpid,
            secret,
        ))
    }

    /// The token of an `[[authcorp]]` (the one for `corpid`, or the first).
    pub fn authcorp_token(&self, corpid: Option<&str>) -> Result<AuthCorpToken, ConfigError> {
        let a = self
            .config
            .authcorp
            .iter()
            .find(|a| match corpid {
                Some(c) => a.corpid == c,
                None => true,
            })
            .ok_or_else(|| ConfigError::NoAuthCorp(corpid.map(str::to_owned)))?;
        let code = resolve_secret(
            &format!("authcorp {}", a.corpid),
            "permanent_code",
            a.permanent_code_env.as_deref(),
            a.permanent_code_file.as_deref(),
        )?;
        let suite = Arc::new(self.suite_token()?);
        Ok(AuthCorpToken::new(
            self.client.clone(),
            self.cache.clone(),
            suite,
            &a.corpid,
            code,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::clock::SystemClock;

    const EXAMPLE: &str = r#"
api_base = "http://127.0.0.1:1"
timeout_secs = 3

[app]
corpid = "wwcorp"
agentid = "1000002"
secret_file = "SECRET_FILE"

[suite]
suite_id = "wwsuite"
secret_env = "WECOM_ARCHIVE_TEST_UNSET_VAR"
ticket_env = "WECOM_ARCHIVE_TEST_UNSET_VAR"

[[authcorp]]
corpid = "wwclient"
permanent_code_env = "X"
"#;

    #[test]
    fn parses_the_documented_example_and_debug_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secret_path = dir.path().join("secret");
        std::fs::write(&secret_path, "corp-secret-value\n").unwrap();
        let text = EXAMPLE.replace("SECRET_FILE", secret_path.to_str().unwrap());
        let cfg = AuthConfig::from_toml(&text, Path::new("x.toml")).unwrap();
        assert_eq!(cfg.authcorp.len(), 1);
        let ctx = AuthContext::new(cfg, Arc::new(SystemClock)).unwrap();
        let corp = ctx.app_token().unwrap();
        let dbg = format!("{corp:?} {ctx:?} {:?}", ctx.config);
        assert!(!dbg.contains("corp-secret-value"), "{dbg}");
        assert!(dbg.contains("wwcorp"));
        // The suite's variable is unset: the error names the variable and section, nothing else.
        let e = ctx.suite_token().unwrap_err().to_string();
        assert!(
            e.contains("WECOM_ARCHIVE_TEST_UNSET_VAR") && e.contains("[suite]"),
            "{e}"
        );
        assert!(matches!(
            ctx.provider_token().unwrap_err(),
            ConfigError::MissingSection("provider")
        ));
        assert!(matches!(
            ctx.authcorp_token(Some("wwother")).unwrap_err(),
            ConfigError::NoAuthCorp(Some(_))
        ));
    }

    #[test]
    fn a_secret_needs_exactly_one_source() {
        assert!(matches!(
            resolve_secret("corp", "secret", None, None),
            Err(ConfigError::SecretSource { .. })
        ));
        assert!(matches!(
            resolve_secret("corp", "secret", Some("A"), Some(Path::new("/b"))),
            Err(ConfigError::SecretSource { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(
            resolve_secret("corp", "secret", None, Some(&empty)),
            Err(ConfigError::SecretFile { .. })
        ));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = AuthConfig::from_toml("[app]\ncorpid='w'\nsecret='inline'\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml"), "{e}");
        assert!(!e.contains("inline"), "{e}");
    }
}
