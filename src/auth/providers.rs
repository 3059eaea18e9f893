//! The four token kinds of spec auth-callback §1.1–1.4, each a [`TokenProvider`] cached through
//! a shared [`TokenCache`]:
//!
//! | provider | request | cache key |
//! |---|---|---|
//! | [`CorpToken`] | `GET /cgi-bin/gettoken?corpid&corpsecret` | `corp|corpid|app|sha256(secret)[..8]` |
//! | [`SuiteToken`] | `POST /cgi-bin/service/get_suite_token` (suite_id, suite_secret, latest suite_ticket) | `suite|suite_id|sha256(secret)[..8]` |
//! | [`ProviderToken`] | `POST /cgi-bin/service/get_provider_token` | `provider|corpid|sha256(secret)[..8]` |
//! | [`AuthCorpToken`] | `POST /cgi-bin/service/get_corp_token?suite_access_token` | `authcorp|suite_id|auth_corpid|sha256(permanent_code)[..8]` |
//!
//! Keys include a hash of the secret: each app's secret gives its own token (a cache keyed on the
//! corpid alone is a classic bug), and a rotated secret gets a fresh entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::json;

use crate::api::client::{decode, ApiClient, Method};
use crate::api::error::{ApiError, CallContext};
use crate::auth::token::{FetchedToken, StoredToken, TokenCache, TokenOrigin};
use crate::auth::{BoxFuture, TokenProvider};
use crate::clock::Clock;
use crate::secret::Secret;

/// Path of the self-built / 代开发 token API.
pub const GETTOKEN_PATH: &str = "/cgi-bin/gettoken";
/// Path of the suite token API.
pub const SUITE_TOKEN_PATH: &str = "/cgi-bin/service/get_suite_token";
/// Path of the provider token API.
pub const PROVIDER_TOKEN_PATH: &str = "/cgi-bin/service/get_provider_token";
/// Path of the authorized-corp token API.
pub const CORP_TOKEN_PATH: &str = "/cgi-bin/service/get_corp_token";

/// How long a suite_ticket is usable after its push `TimeStamp` (doc 97162: 30 minutes).
pub const SUITE_TICKET_TTL_SECS: i64 = 30 * 60;

/// How far ahead of our clock a ticket's push `TimeStamp` may be (the callback window).
const MAX_TICKET_SKEW_SECS: i64 = 300;

/// Where the latest `suite_ticket` of a suite comes from (the callback server stores pushes).
pub trait SuiteTicketSource: Send + Sync {
    /// The latest valid ticket for `suite_id`, if one has been received.
    fn latest(&self, suite_id: &str) -> Option<Secret>;
}

/// A fixed ticket (CLI: read from an environment variable or a file).
#[derive(Debug, Clone)]
pub struct StaticSuiteTicket(pub Secret);

impl SuiteTicketSource for StaticSuiteTicket {
    fn latest(&self, _suite_id: &str) -> Option<Secret> {
        Some(self.0.clone())
    }
}

/// Tickets in memory, keeping per suite only the ticket with the newest push `TimeStamp`
/// (pushes can arrive out of order) and only for [`SUITE_TICKET_TTL_SECS`].
#[derive(Debug)]
pub struct MemorySuiteTickets {
    clock: Arc<dyn Clock>,
    tickets: Mutex<HashMap<String, (Secret, i64)>>,
}

impl MemorySuiteTickets {
    /// An empty ticket store.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemorySuiteTickets {
            clock,
            tickets: Mutex::new(HashMap::new()),
        }
    }

    /// Offers a pushed ticket; kept only if its `TimeStamp` is newer than the stored one.
    /// Returns whether it was kept.
    pub fn offer(&self, suite_id: &str, ticket: Secret, timestamp: i64) -> bool {
        // A push from the future would shadow every later ticket (newest wins): refuse it.
        if timestamp > self.clock.now_unix().saturating_add(MAX_TICKET_SKEW_SECS) {
            return false;
        }
        let mut map = self.tickets.lock().expect("ticket store poisoned");
        match map.get(suite_id) {
            Some((_, ts)) if *ts >= timestamp => false,
            _ => {
                map.insert(suite_id.to_owned(), (ticket, timestamp));
                true
            }
        }
    }
}

impl SuiteTicketSource for MemorySuiteTickets {
    fn latest(&self, suite_id: &str) -> Option<Secret> {
        let now = self.clock.now_unix();
        let map = self.tickets.lock().expect("ticket store poisoned");
        map.get(suite_id)
            // Saturating: the TimeStamp comes from a callback, and an absurd one must neither
            // overflow nor keep a ticket valid forever.
            .filter(|(_, ts)| (0..SUITE_TICKET_TTL_SECS).contains(&now.saturating_sub(*ts)))
            .map(|(t, _)| t.clone())
    }
}

/// The response shape shared by the token APIs, under the field name each one uses.
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(alias = "suite_access_token", alias = "provider_access_token")]
    access_token: Secret,
    expires_in: i64,
}

fn fetched(ctx: &CallContext, v: serde_json::Value) -> Result<FetchedToken, ApiError> {
    let r: TokenResponse = decode(ctx, v)?;
    Ok(FetchedToken {
        value: r.access_token,
        expires_in: r.expires_in,
    })
}

/// A self-built (or 代开发, secret = permanent_code) app's `access_token` via `gettoken`.
/// For the msgaudit APIs, the secret is the 会话内容存档 secret.
pub struct CorpToken {
    client: Arc<ApiClient>,
    cache: Arc<TokenCache>,
    corpid: String,
    app: Option<String>,
    secret: Secret,
    key: String,
}

impl std::fmt::Debug for CorpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpToken")
            .field("corpid", &self.corpid)
            .field("app", &self.app)
            .field("secret", &self.secret)
            .finish()
    }
}

impl CorpToken {
    /// The token of `corpid`'s app with `secret`; `app` (agentid or label) names it in errors.
    pub fn new(
        client: Arc<ApiClient>,
        cache: Arc<TokenCache>,
        corpid: impl Into<String>,
        app: Option<String>,
        secret: Secret,
    ) -> Self {
        let corpid = corpid.into();
        let key = format!(
            "corp|{corpid}|{}|{}",
            app.as_deref().unwrap_or("-"),
            secret.fingerprint()
        );
        CorpToken {
            client,
            cache,
            corpid,
            app,
            secret,
            key,
        }
    }

    /// The cache key of this credential.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The token with its expiry and origin (for `wecom-archive token`).
    pub async fn status(&self) -> Result<(StoredToken, TokenOrigin), ApiError> {
        self.cache.get_with_origin(&self.key, || self.fetch()).await
    }

    async fn fetch(&self) -> Result<FetchedToken, ApiError> {
        let ctx = CallContext::new(&self.corpid, self.app.clone(), GETTOKEN_PATH);
        let v = self
            .client
            .send(
                &ctx,
                Method::Get,
                GETTOKEN_PATH,
                &[
                    ("corpid", &self.corpid),
                    ("corpsecret", self.secret.expose()),
                ],
                None,
                &[self.secret.expose()],
            )
            .await?;
        fetched(&ctx, v)
    }
}

impl TokenProvider for CorpToken {
    fn token(&self) -> BoxFuture<'_, Result<Secret, ApiError>> {
        Box::pin(self.cache.get(&self.key, || self.fetch()))
    }
    fn invalidate(&self, rejected: &Secret) {
        self.cache.invalidate_if_same(&self.key, rejected);
    }
    fn corp(&self) -> &str {
        &self.corpid
    }
    fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }
}

/// A third-party / 代开发 suite's `suite_access_token`, fetched with the latest `suite_ticket`.
pub struct SuiteToken {
    client: Arc<ApiClient>,
    cache: Arc<TokenCache>,
    suite_id: String,
    suite_secret: Secret,
    tickets: Arc<dyn SuiteTicketSource>,
    key: String,
    /// Fingerprint of a ticket WeCom rejected with 40085, and that error: the same ticket is
    /// not sent again (no loop), a newly pushed one is.
    rejected_ticket: Mutex<Option<(String, ApiError)>>,
}

impl std::fmt::Debug for SuiteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuiteToken")
            .field("suite_id", &self.suite_id)
            .field("suite_secret", &self.suite_secret)
            .finish()
    }
}

impl SuiteToken {
    /// The token of `suite_id` with `suite_secret`, tickets from `tickets`.
    pub fn new(
        client: Arc<ApiClient>,
        cache: Arc<TokenCache>,
        suite_id: impl Into<String>,
        suite_secret: Secret,
        tickets: Arc<dyn SuiteTicketSource>,
    ) -> Self {
        let suite_id = suite_id.into();
        let key = format!("suite|{suite_id}|{}", suite_secret.fingerprint());
        SuiteToken {
            client,
            cache,
            suite_id,
            suite_secret,
            tickets,
            key,
            rejected_ticket: Mutex::new(None),
        }
    }

    /// The suite_id.
    pub fn suite_id(&self) -> &str {
        &self.suite_id
    }

    /// The token with its expiry and origin (for `wecom-archive token`).
    pub async fn status(&self) -> Result<(StoredToken, TokenOrigin), ApiError> {
        self.cache.get_with_origin(&self.key, || self.fetch()).await
    }

    async fn fetch(&self) -> Result<FetchedToken, ApiError> {
        let ctx = CallContext::new(&self.suite_id, None, SUITE_TOKEN_PATH);
        let ticket = self
            .tickets
            .latest(&self.suite_id)
            .ok_or_else(|| ApiError::Missing {
                ctx: ctx.clone(),
                what: format!(
                    "no valid suite_ticket for suite {} yet; WeCom pushes one to the command \
                     callback URL about every 10 minutes (or refresh the push in the provider console)",
                    self.suite_id
                ),
            })?;
        let fingerprint = ticket.fingerprint();
        if let Some((fp, e)) = self.rejected_ticket.lock().expect("poisoned").as_ref() {
            if *fp == fingerprint {
                return Err(e.duplicate());
            }
        }
        let body = json!({
            "suite_id": self.suite_id,
            "suite_secret": self.suite_secret.expose(),
            "suite_ticket": ticket.expose(),
        });
        let v = self
            .client
            .send(
                &ctx,
                Method::Post,
                SUITE_TOKEN_PATH,
                &[],
                Some(&body),
                &[self.suite_secret.expose(), ticket.expose()],
            )
            .await;
        // The JSON body holds plain copies of the secret and ticket (not zeroized: serde_json
        // and reqwest own them); keep their life as short as the request.
        drop(body);
        if let Err(e) = &v {
            if e.errcode() == Some(40085) {
                *self.rejected_ticket.lock().expect("poisoned") =
                    Some((fingerprint, e.duplicate()));
            }
        }
        fetched(&ctx, v?)
    }
}

impl TokenProvider for SuiteToken {
    fn token(&self) -> BoxFuture<'_, Result<Secret, ApiError>> {
        Box::pin(self.cache.get(&self.key, || self.fetch()))
    }
    fn invalidate(&self, rejected: &Secret) {
        self.cache.invalidate_if_same(&self.key, rejected);
    }
    fn corp(&self) -> &str {
        &self.suite_id
    }
}

/// The service provider's `provider_access_token` (QR login, register codes, id conversion).
pub struct ProviderToken {
    client: Arc<ApiClient>,
    cache: Arc<TokenCache>,
    corpid: String,
    provider_secret: Secret,
    key: String,
}

impl std::fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderToken")
            .field("corpid", &self.corpid)
            .field("provider_secret", &self.provider_secret)
            .finish()
    }
}

impl ProviderToken {
    /// The token of the provider `corpid` with `provider_secret`.
    pub fn new(
        client: Arc<ApiClient>,
        cache: Arc<TokenCache>,
        corpid: impl Into<String>,
        provider_secret: Secret,
    ) -> Self {
        let corpid = corpid.into();
        let key = format!("provider|{corpid}|{}", provider_secret.fingerprint());
        ProviderToken {
            client,
            cache,
            corpid,
            provider_secret,
            key,
        }
    }

    /// The token with its expiry and origin (for `wecom-archive token`).
    pub async fn status(&self) -> Result<(StoredToken, TokenOrigin), ApiError> {
        self.cache.get_with_origin(&self.key, || self.fetch()).await
    }

    async fn fetch(&self) -> Result<FetchedToken, ApiError> {
        let ctx = CallContext::new(&self.corpid, Some("provider".into()), PROVIDER_TOKEN_PATH);
        let body = json!({
            "corpid": self.corpid,
            "provider_secret": self.provider_secret.expose(),
        });
        let v = self
            .client
            .send(
                &ctx,
                Method::Post,
                PROVIDER_TOKEN_PATH,
                &[],
                Some(&body),
                &[self.provider_secret.expose()],
            )
            .await;
        drop(body);
        fetched(&ctx, v?)
    }
}

impl TokenProvider for ProviderToken {
    fn token(&self) -> BoxFuture<'_, Result<Secret, ApiError>> {
        Box::pin(self.cache.get(&self.key, || self.fetch()))
    }
    fn invalidate(&self, rejected: &Secret) {
        self.cache.invalidate_if_same(&self.key, rejected);
    }
    fn corp(&self) -> &str {
        &self.corpid
    }
    fn app(&self) -> Option<&str> {
        Some("provider")
    }
}

/// An authorized corp's `access_token` for a third-party suite, from its permanent code.
pub struct AuthCorpToken {
    client: Arc<ApiClient>,
    cache: Arc<TokenCache>,
    suite: Arc<SuiteToken>,
    auth_corpid: String,
    permanent_code: Secret,
    app: String,
    key: String,
}

impl std::fmt::Debug for AuthCorpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCorpToken")
            .field("suite_id", &self.suite.suite_id)
            .field("auth_corpid", &self.auth_corpid)
            .field("permanent_code", &self.permanent_code)
            .finish()
    }
}

impl AuthCorpToken {
    /// The token of `auth_corpid` as authorized to `suite`, with its `permanent_code`.
    pub fn new(
        client: Arc<ApiClient>,
        cache: Arc<TokenCache>,
        suite: Arc<SuiteToken>,
        auth_corpid: impl Into<String>,
        permanent_code: Secret,
    ) -> Self {
        let auth_corpid = auth_corpid.into();
        let key = format!(
            "authcorp|{}|{auth_corpid}|{}",
            suite.suite_id,
            permanent_code.fingerprint()
        );
        let app = format!("suite {}", suite.suite_id);
        AuthCorpToken {
            client,
            cache,
            suite,
            auth_corpid,
            permanent_code,
            app,
            key,
        }
    }

    /// The token with its expiry and origin (for `wecom-archive token`).
    pub async fn status(&self) -> Result<(StoredToken, TokenOrigin), ApiError> {
        self.cache.get_with_origin(&self.key, || self.fetch()).await
    }

    async fn fetch(&self) -> Result<FetchedToken, ApiError> {
        let ctx = CallContext::new(&self.auth_corpid, Some(self.app.clone()), CORP_TOKEN_PATH);
        let body = json!({
            "auth_corpid": self.auth_corpid,
            "permanent_code": self.permanent_code.expose(),
        });
        // Goes through `call_as`: a rejected suite token is refreshed and the call retried once.
        let r: Result<TokenResponse, ApiError> = self
            .client
            .call_as(
                ctx,
                self.suite.as_ref(),
                "suite_access_token",
                Method::Post,
                CORP_TOKEN_PATH,
                &[],
                Some(&body),
            )
            .await;
        drop(body);
        let r = r?;
        Ok(FetchedToken {
            value: r.access_token,
            expires_in: r.expires_in,
        })
    }
}

impl TokenProvider for AuthCorpToken {
    fn token(&self) -> BoxFuture<'_, Result<Secret, ApiError>> {
        Box::pin(self.cache.get(&self.key, || self.fetch()))
    }
    fn invalidate(&self, rejected: &Secret) {
        self.cache.invalidate_if_same(&self.key, rejected);
    }
    fn corp(&self) -> &str {
        &self.auth_corpid
    }
    fn app(&self) -> Option<&str> {
        Some(&self.app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn newer_suite_ticket_wins_and_expires_after_30_min() {
        let clock = Arc::new(ManualClock::new(10_000));
        let t = MemorySuiteTickets::new(clock.clone());
        assert!(t.latest("ww1").is_none());
        assert!(t.offer("ww1", Secret::new("new"), 9_990));
        // An older push arriving late does not overwrite the newer ticket.
        assert!(!t.offer("ww1", Secret::new("old"), 9_000));
        assert_eq!(t.latest("ww1").unwrap().expose(), "new");
        assert!(t.latest("ww2").is_none());
        clock.advance(SUITE_TICKET_TTL_SECS);
        assert!(t.latest("ww1").is_none());
        // A TimeStamp from the far future or the far past is never valid, and does not overflow.
        assert!(!t.offer("ww3", Secret::new("future"), i64::MAX));
        assert!(t.latest("ww3").is_none());
        assert!(t.offer("ww4", Secret::new("past"), i64::MIN));
        assert!(t.latest("ww4").is_none());
    }
}
