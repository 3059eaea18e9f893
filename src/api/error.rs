//! Typed errors of the WeCom API client.
//!
//! Every error names the corp (corpid or suite_id) and the API path it concerns, and never a
//! secret or token: tokens travel in query strings, so HTTP errors are stripped of their URL
//! ([`reqwest::Error::without_url`]) and WeCom's `errmsg` is scrubbed of the token that was sent.

use std::fmt;
use std::sync::Arc;

/// Which corp and API a call concerns, for error messages and logs. Cheap to clone (shared),
/// which also keeps [`ApiError`] small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext(Arc<ContextInner>);

#[derive(Debug, PartialEq, Eq)]
struct ContextInner {
    corp: String,
    app: Option<String>,
    path: String,
}

impl CallContext {
    /// A context for `path` on behalf of `corp` (corpid, suite_id or provider corpid), with the
    /// app (agentid or label) when known.
    pub fn new(corp: impl Into<String>, app: Option<String>, path: impl Into<String>) -> Self {
        CallContext(Arc::new(ContextInner {
            corp: corp.into(),
            app,
            path: path.into(),
        }))
    }

    /// The corpid / suite_id.
    pub fn corp(&self) -> &str {
        &self.0.corp
    }

    /// The app, when known.
    pub fn app(&self) -> Option<&str> {
        self.0.app.as_deref()
    }

    /// The API path, without query string (e.g. `/cgi-bin/gettoken`).
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// "corp ww… app 1000002" (the app part only when known).
    pub fn who(&self) -> String {
        match &self.0.app {
            Some(app) => format!("corp {} app {}", self.0.corp, app),
            None => format!("corp {}", self.0.corp),
        }
    }
}

impl fmt::Display for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.who(), self.0.path)
    }
}

/// An error from a WeCom API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The credentials or setup are wrong (bad secret, bad corpid, no permission, IP not
    /// trusted, …). Never retried: repeating bad-secret calls gets the IP blocked by WeCom.
    #[error("{ctx}: configuration error, errcode {code} ({errmsg}): {hint}")]
    Config {
        /// What the call concerned.
        ctx: CallContext,
        /// WeCom errcode.
        code: i64,
        /// WeCom errmsg (scrubbed of the token sent).
        errmsg: String,
        /// What to fix.
        hint: String,
    },
    /// The token was rejected again right after one refresh and one retry.
    #[error(
        "{ctx}: token rejected (errcode {code}: {errmsg}) even after one refresh and retry; \
         is it the right token kind for this API?"
    )]
    TokenRejected {
        /// What the call concerned.
        ctx: CallContext,
        /// WeCom errcode of the last attempt.
        code: i64,
        /// WeCom errmsg (scrubbed).
        errmsg: String,
    },
    /// WeCom's frequency limit: this API is not called again before `until_unix`.
    #[error(
        "{ctx}: rate limited by WeCom (errcode {code}); not calling this API again for {retry_after_secs} s"
    )]
    RateLimited {
        /// What the call concerned.
        ctx: CallContext,
        /// 45009 (frequency) or 45033 (concurrency).
        code: i64,
        /// Unix time before which the client does not call this API again.
        until_unix: i64,
        /// Seconds left in the window when the error was raised.
        retry_after_secs: i64,
    },
    /// WeCom stayed busy (errcode -1) through every retry.
    #[error("{ctx}: WeCom busy (errcode -1) after {attempts} attempts")]
    Busy {
        /// What the call concerned.
        ctx: CallContext,
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// Any other non-zero errcode.
    #[error("{ctx}: errcode {code}: {errmsg}")]
    Api {
        /// What the call concerned.
        ctx: CallContext,
        /// WeCom errcode.
        code: i64,
        /// WeCom errmsg (scrubbed).
        errmsg: String,
    },
    /// The HTTP request failed (connect, timeout, TLS). The URL is stripped from the source.
    #[error("{ctx}: HTTP request failed: {source}")]
    Http {
        /// What the call concerned.
        ctx: CallContext,
        /// The transport error, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// WeCom answered with a non-200 HTTP status.
    #[error("{ctx}: HTTP status {status}")]
    Status {
        /// What the call concerned.
        ctx: CallContext,
        /// The HTTP status code.
        status: u16,
    },
    /// The response is not the JSON the API documents.
    #[error("{ctx}: unexpected response: {detail}")]
    Decode {
        /// What the call concerned.
        ctx: CallContext,
        /// What was wrong with it (no response body: it may carry tokens).
        detail: String,
    },
    /// A credential needed for the call is not available (e.g. no suite_ticket received yet).
    #[error("{ctx}: {what}")]
    Missing {
        /// What the call concerned.
        ctx: CallContext,
        /// What is missing and what to do about it.
        what: String,
    },
}

impl ApiError {
    /// The WeCom errcode, for errors that carry one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            ApiError::Config { code, .. }
            | ApiError::TokenRejected { code, .. }
            | ApiError::RateLimited { code, .. }
            | ApiError::Api { code, .. } => Some(*code),
            ApiError::Busy { .. } => Some(-1),
            _ => None,
        }
    }

    /// The call the error concerns.
    pub fn context(&self) -> &CallContext {
        match self {
            ApiError::Config { ctx, .. }
            | ApiError::TokenRejected { ctx, .. }
            | ApiError::RateLimited { ctx, .. }
            | ApiError::Busy { ctx, .. }
            | ApiError::Api { ctx, .. }
            | ApiError::Http { ctx, .. }
            | ApiError::Status { ctx, .. }
            | ApiError::Decode { ctx, .. }
            | ApiError::Missing { ctx, .. } => ctx,
        }
    }

    /// Whether this is a configuration error (never to be retried automatically).
    pub fn is_config(&self) -> bool {
        matches!(self, ApiError::Config { .. })
    }

    /// Whether a token cache should remember this error for its credential and stop calling
    /// WeCom: configuration errors, except 40085 (suite_ticket), which the next ticket push fixes
    /// without any change to the credential.
    pub fn latches(&self) -> bool {
        self.is_config() && self.errcode() != Some(40085)
    }

    /// A copy suitable for handing to several waiters (the HTTP source error is flattened to
    /// text, as `reqwest::Error` is not `Clone`).
    pub fn duplicate(&self) -> ApiError {
        match self {
            ApiError::Config {
                ctx,
                code,
                errmsg,
                hint,
            } => ApiError::Config {
                ctx: ctx.clone(),
                code: *code,
                errmsg: errmsg.clone(),
                hint: hint.clone(),
            },
            ApiError::TokenRejected { ctx, code, errmsg } => ApiError::TokenRejected {
                ctx: ctx.clone(),
                code: *code,
                errmsg: errmsg.clone(),
            },
            ApiError::RateLimited {
                ctx,
                code,
                until_unix,
                retry_after_secs,
            } => ApiError::RateLimited {
                ctx: ctx.clone(),
                code: *code,
                until_unix: *until_unix,
                retry_after_secs: *retry_after_secs,
            },
            ApiError::Busy { ctx, attempts } => ApiError::Busy {
                ctx: ctx.clone(),
                attempts: *attempts,
            },
            ApiError::Api { ctx, code, errmsg } => ApiError::Api {
                ctx: ctx.clone(),
                code: *code,
                errmsg: errmsg.clone(),
            },
            ApiError::Http { ctx, source } => ApiError::Decode {
                ctx: ctx.clone(),
                detail: format!("HTTP request failed: {source}"),
            },
            ApiError::Status { ctx, status } => ApiError::Status {
                ctx: ctx.clone(),
                status: *status,
            },
            ApiError::Decode { ctx, detail } => ApiError::Decode {
                ctx: ctx.clone(),
                detail: detail.clone(),
            },
            ApiError::Missing { ctx, what } => ApiError::Missing {
                ctx: ctx.clone(),
                what: what.clone(),
            },
        }
    }
}

/// How the client reacts to an errcode (spec auth-callback §1.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// 0: success.
    Ok,
    /// 40014 / 42001 / 40082 / 42009: drop the token if unchanged, refresh once, retry once.
    RefreshToken,
    /// -1: exponential backoff with jitter, at most 3 retries.
    Backoff,
    /// 45009: stop calling this API until the limit window ends.
    RateLimitWindow,
    /// 45033: concurrency limit; jittered backoff, at most 3 retries, then a window.
    Concurrency,
    /// Configuration error: fail now, never loop.
    Config,
    /// Anything else: report it.
    Fail,
}

/// The client's reaction to `errcode`.
pub fn reaction(errcode: i64) -> Reaction {
    match errcode {
        0 => Reaction::Ok,
        40014 | 42001 | 40082 | 42009 => Reaction::RefreshToken,
        -1 => Reaction::Backoff,
        45009 => Reaction::RateLimitWindow,
        45033 => Reaction::Concurrency,
        40001 | 40013 | 40083 | 40084 | 40085 | 40091 | 48002 | 60020 => Reaction::Config,
        _ => Reaction::Fail,
    }
}

/// What to fix for a configuration errcode. Names the corp and app; never a secret.
pub fn config_hint(code: i64, ctx: &CallContext) -> String {
    let who = ctx.who();
    match code {
        40001 | 40091 => format!(
            "check the secret for {who} (corpid/secret mismatch, reset secret or disabled app); \
             WeCom blocks IPs that repeat bad-secret calls, so this is not retried"
        ),
        40013 => format!("check the corpid of {who}"),
        40083 => format!(
            "check the suite_id of {who} (also seen when a POST body is dropped by a proxy)"
        ),
        40084 => format!(
            "the permanent_code of {who} is invalid or the authorization was cancelled; \
             stop pulling and wait for create_auth / reset_permanent_code"
        ),
        40085 => format!(
            "the suite_ticket of {who} is missing, expired or belongs to another suite; wait for \
             the next push (about every 10 min) or refresh the ticket push in the provider console"
        ),
        48002 => format!(
            "{who} may not call this API: msgaudit APIs need the 会话内容存档 secret, and 代开发 \
             apps get their token with gettoken"
        ),
        60020 => format!(
            "the caller IP is not trusted for {who}: add this server's egress IP to 企业可信IP \
             (third-party: 服务商 IP白名单); it takes about a minute to apply"
        ),
        _ => format!("check the configuration of {who}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_follow_the_spec_table() {
        for c in [40014, 42001, 40082, 42009] {
            assert_eq!(reaction(c), Reaction::RefreshToken, "{c}");
        }
        for c in [40001, 40013, 40083, 40084, 48002, 60020] {
            assert_eq!(reaction(c), Reaction::Config, "{c}");
        }
        assert_eq!(reaction(-1), Reaction::Backoff);
        assert_eq!(reaction(45009), Reaction::RateLimitWindow);
        assert_eq!(reaction(45033), Reaction::Concurrency);
        assert_eq!(reaction(0), Reaction::Ok);
        assert_eq!(reaction(40029), Reaction::Fail);
    }

    #[test]
    fn config_error_says_what_to_fix_and_names_the_corp() {
        let ctx = CallContext::new("wwcorp", Some("1000002".into()), "/cgi-bin/gettoken");
        let e = ApiError::Config {
            code: 40001,
            errmsg: "invalid credential".into(),
            hint: config_hint(40001, &ctx),
            ctx,
        };
        let s = e.to_string();
        assert!(
            s.contains("check the secret for corp wwcorp app 1000002"),
            "{s}"
        );
        assert!(s.contains("/cgi-bin/gettoken"), "{s}");
        assert!(s.contains("blocks IPs"), "{s}");
        assert_eq!(e.errcode(), Some(40001));
        assert!(e.is_config());
    }
}
