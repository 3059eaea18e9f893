//! The WeCom HTTP client: base URL, timeouts, errcode → typed error, and the retry policy of
//! spec auth-callback §1.11.
//!
//! * 40014 / 42001 / 40082 / 42009: the token is dropped (only if it is still the one that
//!   failed), refreshed once, and the call retried **once** ([`ApiClient::call`]).
//! * -1 (busy) and connection failures: exponential backoff with jitter, at most
//!   [`RetryPolicy::max_retries`] retries.
//! * 45009: the API is not called again for [`RetryPolicy::rate_limit_window_secs`] (per corp and
//!   path, as WeCom counts); callers get [`ApiError::RateLimited`] at once, with no request sent.
//!   Hit again right after the window, the wait becomes
//!   [`RetryPolicy::rate_limit_long_window_secs`] (WeCom's per-hour block).
//! * 45033 (concurrency): jittered backoff like -1, then the same window.
//! * Configuration errcodes (40001, 40013, 40083, 40084, 40085, 40091, 48002, 60020): fail at
//!   once with a hint; never retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::error::{config_hint, reaction, ApiError, CallContext, Reaction};
use crate::auth::TokenProvider;
use crate::clock::{Clock, SystemClock};

/// The real WeCom API host.
pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";

/// HTTP method of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET with query parameters only.
    Get,
    /// POST with a JSON body.
    Post,
}

/// Retry and backoff settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt for -1, 45033 and connection failures (spec: ≤3).
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further retry, plus up to the same amount
    /// of random jitter so that many clients do not retry in lockstep.
    pub base_delay: Duration,
    /// How long an API is left alone after 45009. WeCom blocks for 60 s (per-minute limit) or
    /// 60 min (per-hour limit) and does not say which, so the shorter comes first.
    pub rate_limit_window_secs: i64,
    /// The window used when the limit is hit again right after a window ended (no successful
    /// call in between): then it is probably the per-hour limit.
    pub rate_limit_long_window_secs: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            rate_limit_window_secs: 60,
            rate_limit_long_window_secs: 3600,
        }
    }
}

/// Settings of an [`ApiClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, default [`DEFAULT_BASE_URL`]; the emulator's address in tests.
    pub base_url: String,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
        }
    }
}

/// A rate-limit window of one (corp, path).
#[derive(Debug, Clone, Copy)]
struct Block {
    /// Unix time before which the API is not called.
    until: i64,
    /// Length of the window, seconds.
    window: i64,
}

/// An HTTP client for the WeCom API. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    /// (corp, path) → the current or last rate-limit window (after 45009/45033), until a call
    /// succeeds.
    blocked: Mutex<HashMap<(String, String), Block>>,
}

impl ApiClient {
    /// A client with `config`, using the system clock.
    pub fn new(config: ClientConfig) -> Result<Self, reqwest::Error> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A client with `config` and an injected clock (rate-limit windows follow it).
    pub fn with_clock(config: ClientConfig, clock: Arc<dyn Clock>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("wecom-archive/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ApiClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            retry: config.retry,
            clock,
            blocked: Mutex::new(HashMap::new()),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The client's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Calls a token-authenticated API and decodes its response.
    ///
    /// The token from `token` is sent as query parameter `token_param` (`access_token`,
    /// `suite_access_token`, …). If WeCom rejects it (40014, 42001, 40082, 42009), the token is
    /// invalidated (only if unchanged), refreshed, and the call retried exactly once.
    pub async fn call<T: DeserializeOwned>(
        &self,
        token: &dyn TokenProvider,
        token_param: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let ctx = CallContext::new(token.corp(), token.app().map(str::to_owned), path);
        self.call_as(ctx, token, token_param, method, path, query, body)
            .await
    }

    /// [`ApiClient::call`] with an explicit context for error messages.
    #[allow(clippy::too_many_arguments)]
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        ctx: CallContext,
        token: &dyn TokenProvider,
        token_param: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let mut refreshed = false;
        loop {
            let tok = token.token().await?;
            let mut q: Vec<(&str, &str)> = Vec::with_capacity(query.len() + 1);
            q.push((token_param, tok.expose()));
            q.extend_from_slice(query);
            match self
                .send(&ctx, method, path, &q, body, &[tok.expose()])
                .await
            {
                Err(ApiError::TokenRejected { code, .. }) if !refreshed => {
                    tracing::info!(%ctx, code, "token rejected; refreshing once and retrying");
                    token.invalidate(&tok);
                    refreshed = true;
                }
                Ok(v) => return decode(&ctx, v),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one API request with the retry policy for -1, 45009, 45033 and connection errors,
    /// and maps errcodes to errors. Token-rejection errcodes come back as
    /// [`ApiError::TokenRejected`] for the caller to handle. `scrub` lists secret values (the
    /// token or secret sent) to remove from WeCom's errmsg before it goes into an error.
    pub async fn send(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        scrub: &[&str],
    ) -> Result<Value, ApiError> {
        let block_key = (ctx.corp().to_owned(), path.to_owned());
        let mut retries = 0u32;
        loop {
            self.check_window(ctx, &block_key)?;
            let url = format!("{}{}", self.base_url, path);
            let req = match method {
                Method::Get => self.http.get(&url),
                Method::Post => self
                    .http
                    .post(&url)
                    .json(body.unwrap_or(&Value::Object(Default::default()))),
            };
            let resp = match req.query(query).send().await {
                Ok(r) => r,
                Err(e) => {
                    // Only connection failures are retried: the request never reached WeCom, so
                    // retrying cannot consume a single-use code twice.
                    if e.is_connect() && retries < self.retry.max_retries {
                        self.backoff(retries).await;
                        retries += 1;
                        continue;
                    }
                    return Err(ApiError::Http {
                        ctx: ctx.clone(),
                        source: e.without_url(),
                    });
                }
            };
            let status = resp.status();
            if !status.is_success() {
                return Err(ApiError::Status {
                    ctx: ctx.clone(),
                    status: status.as_u16(),
                });
            }
            let value: Value = resp.json().await.map_err(|e| ApiError::Decode {
                ctx: ctx.clone(),
                detail: format!("body is not JSON: {}", e.without_url()),
            })?;
            // Some APIs (get_suite_token, get_corp_token, get_provider_token) omit errcode on
            // success: missing means 0.
            let code = value.get("errcode").and_then(Value::as_i64).unwrap_or(0);
            let errmsg = || {
                let raw = value.get("errmsg").and_then(Value::as_str).unwrap_or("");
                scrub_secrets(raw, scrub)
            };
            match reaction(code) {
                Reaction::Ok => {
                    let mut blocked = self.blocked.lock().expect("rate-limit map poisoned");
                    if !blocked.is_empty() {
                        blocked.remove(&block_key);
                    }
                    return Ok(value);
                }
                Reaction::RefreshToken => {
                    return Err(ApiError::TokenRejected {
                        ctx: ctx.clone(),
                        code,
                        errmsg: errmsg(),
                    })
                }
                Reaction::Backoff | Reaction::Concurrency if retries < self.retry.max_retries => {
                    tracing::warn!(%ctx, code, retry = retries + 1, "WeCom busy; backing off");
                    self.backoff(retries).await;
                    retries += 1;
                }
                Reaction::Backoff => {
                    return Err(ApiError::Busy {
                        ctx: ctx.clone(),
                        attempts: retries + 1,
                    })
                }
                Reaction::Concurrency | Reaction::RateLimitWindow => {
                    let now = self.clock.now_unix();
                    let mut blocked = self.blocked.lock().expect("rate-limit map poisoned");
                    // Limited again within one window of the last one ending, with no success
                    // in between: the per-hour limit, so wait the long window.
                    let window = match blocked.get(&block_key) {
                        Some(b) if now < b.until + b.window => {
                            self.retry.rate_limit_long_window_secs
                        }
                        _ => self.retry.rate_limit_window_secs,
                    };
                    let until = now + window;
                    blocked.insert(block_key, Block { until, window });
                    drop(blocked);
                    tracing::warn!(%ctx, code, window, "WeCom rate limit; pausing this API");
                    return Err(ApiError::RateLimited {
                        ctx: ctx.clone(),
                        code,
                        until_unix: until,
                        retry_after_secs: window,
                    });
                }
                Reaction::Config => {
                    return Err(ApiError::Config {
                        ctx: ctx.clone(),
                        code,
                        errmsg: errmsg(),
                        hint: config_hint(code, ctx),
                    })
                }
                Reaction::Fail => {
                    return Err(ApiError::Api {
                        ctx: ctx.clone(),
                        code,
                        errmsg: errmsg(),
                    })
                }
            }
        }
    }

    /// Fails fast while (corp, path) is inside a rate-limit window.
    fn check_window(&self, ctx: &CallContext, key: &(String, String)) -> Result<(), ApiError> {
        let now = self.clock.now_unix();
        let blocked = self.blocked.lock().expect("rate-limit map poisoned");
        match blocked.get(key) {
            Some(b) if now < b.until => Err(ApiError::RateLimited {
                ctx: ctx.clone(),
                code: 45009,
                until_unix: b.until,
                retry_after_secs: b.until - now,
            }),
            // The window is over; the record stays until a call succeeds (see escalation).
            _ => Ok(()),
        }
    }

    async fn backoff(&self, retry: u32) {
        let base = self.retry.base_delay.saturating_mul(1 << retry.min(10));
        let jitter_ms = if base.as_millis() == 0 {
            0
        } else {
            rand::random::<u64>() % (base.as_millis() as u64 + 1)
        };
        tokio::time::sleep(base + Duration::from_millis(jitter_ms)).await;
    }
}

/// Decodes an API response into `T`. The error detail keeps serde's description but drops quoted
/// values, which could be tokens.
pub(crate) fn decode<T: DeserializeOwned>(ctx: &CallContext, v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::Decode {
        ctx: ctx.clone(),
        detail: redact_quoted(&e.to_string()),
    })
}

fn scrub_secrets(msg: &str, secrets: &[&str]) -> String {
    let mut out = msg.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "***");
    }
    out
}

fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for ch in msg.chars() {
        if ch == '"' {
            inside = !inside;
            if inside {
                out.push_str("\"…");
            } else {
                out.push('"');
            }
        } else if !inside {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errmsg_is_scrubbed_of_sent_secrets() {
        assert_eq!(
            scrub_secrets("invalid access_token tok123, hint", &["tok123", ""]),
            "invalid access_token ***, hint"
        );
    }

    #[test]
    fn decode_errors_drop_quoted_values() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "tok-secret", expected u64"#),
            r#"invalid type: string "…", expected u64"#
        );
    }
}
