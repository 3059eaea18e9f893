//! The wiring the auth sections of the configuration build: an API client, a token cache and
//! the token providers on them ([`AuthContext`]).
//!
//! The sections are parsed by [`crate::config::Config`] (the one configuration file of every
//! command) and handed over as an [`AuthConfig`], with paths already resolved; secrets are read by
//! the configuration's one rule ([`crate::config::SecretRef`]) when a provider is built.

use std::sync::Arc;
use std::time::Duration;

use crate::api::client::{ApiClient, ClientConfig, DEFAULT_BASE_URL};
use crate::auth::providers::{
    AuthCorpToken, CorpToken, ProviderToken, StaticSuiteTicket, SuiteTicketSource, SuiteToken,
};
use crate::auth::token::{
    CachePolicy, JsonFileTokenStore, MemoryTokenStore, TokenCache, TokenStore,
};
use crate::clock::Clock;
use crate::config::{AuthConfig, ConfigError, SecretRef};

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
        let secret = SecretRef {
            section: "app",
            field: "secret",
            env: c.secret_env.as_deref(),
            file: c.secret_file.as_deref(),
        }
        .read()?;
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
        let ticket = SecretRef {
            section: "suite",
            field: "ticket",
            env: s.ticket_env.as_deref(),
            file: s.ticket_file.as_deref(),
        }
        .read()?;
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
        let secret = SecretRef {
            section: "suite",
            field: "secret",
            env: s.secret_env.as_deref(),
            file: s.secret_file.as_deref(),
        }
        .read()?;
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
        let secret = SecretRef {
            section: "provider",
            field: "secret",
            env: p.secret_env.as_deref(),
            file: p.secret_file.as_deref(),
        }
        .read()?;
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
        let code = SecretRef {
            section: &format!("authcorp {}", a.corpid),
            field: "permanent_code",
            env: a.permanent_code_env.as_deref(),
            file: a.permanent_code_file.as_deref(),
        }
        .read()?;
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
    use crate::clock::SystemClock;

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
        let path = dir.path().join("x.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = crate::config::Config::load(&path).unwrap().auth();
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
}
