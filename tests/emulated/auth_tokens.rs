//! Token behaviour against the local WeCom emulator: single-flight, refresh after early
//! invalidation with exactly one retry, no loop on configuration errors, rate-limit windows,
//! backoff on -1, expiry on the shared clock, and persistence across a restart.

use std::sync::Arc;

use crate::common::*;
use wecom_archive::api::error::ApiError;
use wecom_archive::api::msgaudit::{MsgAudit, PERMIT_USER_LIST_PATH};
use wecom_archive::auth::providers::{
    AuthCorpToken, CorpToken, MemorySuiteTickets, ProviderToken, StaticSuiteTicket, SuiteToken,
    CORP_TOKEN_PATH, GETTOKEN_PATH, PROVIDER_TOKEN_PATH, SUITE_TOKEN_PATH,
};
use wecom_archive::auth::token::{
    CachePolicy, JsonFileTokenStore, TokenCache, TokenOrigin, TokenStore,
};
use wecom_archive::auth::TokenProvider;
use wecom_archive::clock::Clock;
use wecom_archive::secret::Secret;

fn archive_token(e: &Env, secret: &str) -> Arc<CorpToken> {
    Arc::new(CorpToken::new(
        e.client.clone(),
        e.cache.clone(),
        CORP,
        Some("archive".into()),
        Secret::new(secret),
    ))
}

fn msgaudit(e: &Env, token: Arc<CorpToken>) -> MsgAudit {
    MsgAudit::new(e.client.clone(), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_1000_concurrent_callers_make_one_request() {
    let e = env().await;
    let token = archive_token(&e, ARCHIVE_SECRET);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let t = token.clone();
        tasks.push(tokio::spawn(async move { t.token().await }));
    }
    let mut values = std::collections::HashSet::new();
    for t in tasks {
        values.insert(t.await.unwrap().unwrap().expose().to_owned());
    }
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1);
    assert_eq!(values.len(), 1, "every caller got the same token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_invalidation_refreshes_once_even_under_a_herd() {
    let e = env().await;
    let api = Arc::new(msgaudit(&e, archive_token(&e, ARCHIVE_SECRET)));
    assert_eq!(api.get_permit_user_list(None).await.unwrap().len(), 3);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1);

    // WeCom revokes the token early: concurrent calls get 40014, and only one of them refetches (invalidate-if-same + single-flight); each call is retried exactly once.
    e.emu.invalidate_all_tokens();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let api = api.clone();
        tasks.push(tokio::spawn(
            async move { api.get_permit_user_list(None).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().len(), 3);
    }
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 2);
    // Callers that started after the refresh go straight through; the others were retried
    // once each — never more.
    let calls = e.emu.calls(PERMIT_USER_LIST_PATH) - 1;
    assert!((200..=400).contains(&calls), "{calls}");
}

#[tokio::test]
async fn a_token_rejected_twice_is_retried_exactly_once() {
    let e = env().await;
    let api = msgaudit(&e, archive_token(&e, ARCHIVE_SECRET));
    api.get_permit_user_list(None).await.unwrap();
    // 42001 then 40014 again after the refresh: one refresh, one retry, then a typed error.
    e.emu
        .inject_errcodes(PERMIT_USER_LIST_PATH, &[42001, 40014, 40014]);
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(
        matches!(err, ApiError::TokenRejected { code: 40014, .. }),
        "{err}"
    );
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 3);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 2);
    assert!(err.to_string().contains(CORP));
    // The leftover injected 40014 is consumed by the next call, which refreshes once and works.
    assert_eq!(api.get_permit_user_list(None).await.unwrap().len(), 3);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 3);
}

#[tokio::test]
async fn a_bad_secret_is_a_configuration_error_and_never_loops() {
    let e = env().await;
    let api = msgaudit(&e, archive_token(&e, "wrong-secret-value"));
    for _ in 0..5 {
        let err = api.get_permit_user_list(None).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ApiError::Config { code: 40001, .. }),
            "{text}"
        );
        assert!(
            text.contains(&format!("check the secret for corp {CORP} app archive")),
            "{text}"
        );
        assert!(text.contains("/cgi-bin/gettoken"), "{text}");
        assert!(!text.contains("wrong-secret-value"), "{text}");
        assert!(!format!("{err:?}").contains("wrong-secret-value"));
    }
    // One upstream gettoken, whatever the number of calls; the API itself was never called.
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1);
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 0);

    // A wrong corpid: 40013.
    let bad_corp = CorpToken::new(
        e.client.clone(),
        e.cache.clone(),
        "wwnosuchcorp",
        None,
        Secret::new(ARCHIVE_SECRET),
    );
    let err = bad_corp.token().await.unwrap_err();
    assert!(matches!(err, ApiError::Config { code: 40013, .. }), "{err}");
    assert!(err.to_string().contains("wwnosuchcorp"));
}

#[tokio::test]
async fn configuration_errcodes_from_apis_are_not_retried() {
    let e = env().await;
    // An ordinary app secret may not call msgaudit: 48002, one call, no retry, a hint.
    let api = msgaudit(&e, archive_token(&e, APP_SECRET));
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(matches!(err, ApiError::Config { code: 48002, .. }), "{err}");
    assert!(err.to_string().contains("会话内容存档"), "{err}");
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 1);

    let api = msgaudit(&e, archive_token(&e, ARCHIVE_SECRET));
    e.emu.inject_errcodes(PERMIT_USER_LIST_PATH, &[60020]);
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(matches!(err, ApiError::Config { code: 60020, .. }), "{err}");
    assert!(err.to_string().contains("可信IP"), "{err}");
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 2);
}

#[tokio::test]
async fn rate_limit_window_is_honoured_without_calling_wecom() {
    let e = env().await;
    let api = msgaudit(&e, archive_token(&e, ARCHIVE_SECRET));
    e.emu.set_rate_limit(PERMIT_USER_LIST_PATH, 2, 60);
    api.get_permit_user_list(None).await.unwrap();
    api.get_permit_user_list(None).await.unwrap();
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::RateLimited {
                code: 45009,
                retry_after_secs: 60,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 3);
    // Inside the window the client answers itself: no request reaches WeCom.
    e.clock.advance(30);
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::RateLimited {
                retry_after_secs: 30,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 3);
    // A rate limit is never "fixed" by refetching the token.
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1);
    // After the window, calls go through again.
    e.clock.advance(30);
    assert_eq!(api.get_permit_user_list(None).await.unwrap().len(), 3);
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 4);
}

#[tokio::test]
async fn a_limit_hit_again_after_the_window_waits_an_hour() {
    let e = env().await;
    let api = msgaudit(&e, archive_token(&e, ARCHIVE_SECRET));
    api.get_permit_user_list(None).await.unwrap();
    // WeCom's per-hour limit: blocked far longer than one minute.
    e.emu.set_rate_limit(PERMIT_USER_LIST_PATH, 0, 3600);
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::RateLimited {
                retry_after_secs: 60,
                ..
            }
        ),
        "{err}"
    );
    e.clock.advance(60);
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::RateLimited {
                retry_after_secs: 3600,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 3);
    e.clock.advance(3599);
    assert!(api.get_permit_user_list(None).await.is_err());
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 3);
    // The hour is over and WeCom lets calls through again: success resets the escalation.
    e.clock.advance(1);
    e.emu.set_rate_limit(PERMIT_USER_LIST_PATH, 1000, 60);
    api.get_permit_user_list(None).await.unwrap();
    e.emu.set_rate_limit(PERMIT_USER_LIST_PATH, 0, 3600);
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::RateLimited {
                retry_after_secs: 60,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn busy_is_retried_with_backoff_at_most_three_times() {
    let e = env().await;
    let api = msgaudit(&e, archive_token(&e, ARCHIVE_SECRET));
    e.emu.inject_errcodes(PERMIT_USER_LIST_PATH, &[-1, -1]);
    assert_eq!(api.get_permit_user_list(None).await.unwrap().len(), 3);
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 3);

    e.emu
        .inject_errcodes(PERMIT_USER_LIST_PATH, &[-1, -1, -1, -1, -1]);
    let err = api.get_permit_user_list(None).await.unwrap_err();
    assert!(matches!(err, ApiError::Busy { attempts: 4, .. }), "{err}");
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 3 + 4);

    // 45033 (concurrency) is retried the same way.
    e.emu.inject_errcodes(PERMIT_USER_LIST_PATH, &[-1, 45033]);
    assert_eq!(api.get_permit_user_list(None).await.unwrap().len(), 3);
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 7 + 1 + 3);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1);
}

#[tokio::test]
async fn tokens_are_refetched_before_they_expire() {
    let e = env().await;
    let token = archive_token(&e, ARCHIVE_SECRET);
    let api = msgaudit(&e, token.clone());
    let t1 = token.token().await.unwrap();
    e.clock.advance(3600);
    assert_eq!(token.token().await.unwrap(), t1);
    // Two hours later the emulator would answer 42001; the cache knows and refetches first.
    e.clock.advance(3600);
    api.get_permit_user_list(None).await.unwrap();
    assert_ne!(token.token().await.unwrap(), t1);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 2);
    assert_eq!(e.emu.calls(PERMIT_USER_LIST_PATH), 1);
}

#[tokio::test]
async fn tokens_persist_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store: Arc<dyn TokenStore> = Arc::new(JsonFileTokenStore::open(&path));
    let e = env_with(store).await;
    let first = archive_token(&e, ARCHIVE_SECRET);
    let (t1, origin) = first.status().await.unwrap();
    assert_eq!(origin, TokenOrigin::Fetched);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1);
    assert!(!std::fs::read_to_string(&path)
        .unwrap()
        .contains(ARCHIVE_SECRET));

    // "Restart": a new store and cache over the same file, a new provider.
    let restarted = || {
        let store: Arc<dyn TokenStore> = Arc::new(JsonFileTokenStore::open(&path));
        let cache = Arc::new(TokenCache::new(
            e.clock.clone(),
            store,
            CachePolicy::default(),
        ));
        Arc::new(CorpToken::new(
            e.client.clone(),
            cache,
            CORP,
            Some("archive".into()),
            Secret::new(ARCHIVE_SECRET),
        ))
    };
    let second = restarted();
    let (t2, origin) = second.status().await.unwrap();
    assert_eq!(origin, TokenOrigin::Store);
    assert_eq!(t2, t1);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1, "no refetch after a restart");
    // The stored token really works upstream.
    let api = msgaudit(&e, second.clone());
    api.get_permit_user_list(None).await.unwrap();
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 1);

    // A rejected token is also dropped from the file, so the next restart does not reuse it.
    e.emu.invalidate_all_tokens();
    api.get_permit_user_list(None).await.unwrap();
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 2);
    let (t3, origin) = restarted().status().await.unwrap();
    assert_eq!(origin, TokenOrigin::Store);
    assert_ne!(t3.value, t1.value);

    // Past expiry, a restart fetches again.
    e.clock.advance(7200);
    let (_, origin) = restarted().status().await.unwrap();
    assert_eq!(origin, TokenOrigin::Fetched);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 3);
}

#[tokio::test]
async fn cache_keys_separate_apps_of_one_corp() {
    let e = env().await;
    let archive = archive_token(&e, ARCHIVE_SECRET);
    let app = CorpToken::new(
        e.client.clone(),
        e.cache.clone(),
        CORP,
        Some("1000002".into()),
        Secret::new(APP_SECRET),
    );
    let a = archive.token().await.unwrap();
    let b = app.token().await.unwrap();
    assert_ne!(a, b);
    assert_ne!(archive.key(), app.key());
    assert!(!archive.key().contains(ARCHIVE_SECRET));
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 2);
}

fn suite(e: &Env, ticket: &str) -> Arc<SuiteToken> {
    // A fixed ticket, as the CLI reads it from its configuration.
    Arc::new(SuiteToken::new(
        e.client.clone(),
        e.cache.clone(),
        SUITE,
        Secret::new(SUITE_SECRET),
        Arc::new(StaticSuiteTicket(Secret::new(ticket))),
    ))
}

#[tokio::test]
async fn suite_token_needs_the_latest_ticket() {
    let e = env().await;
    // No ticket received yet: a clear error, and no request.
    let tickets = Arc::new(MemorySuiteTickets::new(e.clock.clone()));
    let s = SuiteToken::new(
        e.client.clone(),
        e.cache.clone(),
        SUITE,
        Secret::new(SUITE_SECRET),
        tickets.clone(),
    );
    let err = s.token().await.unwrap_err();
    assert!(matches!(err, ApiError::Missing { .. }), "{err}");
    assert!(err.to_string().contains(SUITE));
    assert_eq!(e.emu.calls(SUITE_TOKEN_PATH), 0);
    // Once the push arrives, the token is fetched (the success response has no errcode).
    tickets.offer(SUITE, Secret::new(TICKET), e.clock.now_unix());
    assert!(s.token().await.unwrap().expose().starts_with("emuST"));
    assert_eq!(e.emu.calls(SUITE_TOKEN_PATH), 1);

    // A stale ticket: 40085, a configuration error; the same ticket is not sent again...
    let e = env().await;
    let tickets = Arc::new(MemorySuiteTickets::new(e.clock.clone()));
    tickets.offer(SUITE, Secret::new("old-ticket"), e.clock.now_unix() - 60);
    let s = SuiteToken::new(
        e.client.clone(),
        e.cache.clone(),
        SUITE,
        Secret::new(SUITE_SECRET),
        tickets.clone(),
    );
    for _ in 0..3 {
        let err = s.token().await.unwrap_err();
        assert!(matches!(err, ApiError::Config { code: 40085, .. }), "{err}");
        assert!(err.to_string().contains("suite_ticket"));
        assert!(!err.to_string().contains("old-ticket"));
    }
    assert_eq!(e.emu.calls(SUITE_TOKEN_PATH), 1);
    // ...but the next push fixes it without a restart.
    tickets.offer(SUITE, Secret::new(TICKET), e.clock.now_unix());
    assert!(s.token().await.unwrap().expose().starts_with("emuST"));
    assert_eq!(e.emu.calls(SUITE_TOKEN_PATH), 2);
}

#[tokio::test]
async fn refresh_ahead_replaces_the_token_before_expiry() {
    let e = env().await;
    let token = archive_token(&e, ARCHIVE_SECRET);
    let t1 = token.token().await.unwrap();
    // Inside the refresh-ahead window (default: 900 s to 300 s before expiry): one new fetch,
    // and the new token is served from then on.
    e.clock.advance(7200 - 800);
    let t2 = token.token().await.unwrap();
    assert_ne!(t1, t2);
    assert_eq!(token.token().await.unwrap(), t2);
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 2);
    // During the window the one refresher fetched; everyone after it is served from memory.
    let api = msgaudit(&e, token.clone());
    api.get_permit_user_list(None).await.unwrap();
    assert_eq!(e.emu.calls(GETTOKEN_PATH), 2);
}

#[tokio::test]
async fn authorized_corp_token_refreshes_through_the_suite_token() {
    let e = env().await;
    let s = suite(&e, TICKET);
    let corp = AuthCorpToken::new(
        e.client.clone(),
        e.cache.clone(),
        s.clone(),
        AUTH_CORP,
        Secret::new(PERMANENT_CODE),
    );
    let t1 = corp.token().await.unwrap();
    assert_eq!(e.emu.calls(SUITE_TOKEN_PATH), 1);
    assert_eq!(e.emu.calls(CORP_TOKEN_PATH), 1);

    // Revoke everything; the authorized corp's token is rejected, and its refresh meets a
    // rejected suite token, which is refreshed once too.
    e.emu.invalidate_all_tokens();
    corp.invalidate(&t1);
    let t2 = corp.token().await.unwrap();
    assert_ne!(t1, t2);
    assert_eq!(e.emu.calls(SUITE_TOKEN_PATH), 2);
    assert_eq!(e.emu.calls(CORP_TOKEN_PATH), 3);

    // A wrong permanent code: 40084, configuration error naming the corp.
    let bad = AuthCorpToken::new(
        e.client.clone(),
        e.cache.clone(),
        s,
        AUTH_CORP,
        Secret::new("revoked-code"),
    );
    let err = bad.token().await.unwrap_err();
    assert!(matches!(err, ApiError::Config { code: 40084, .. }), "{err}");
    assert!(err.to_string().contains(AUTH_CORP), "{err}");
    assert!(!format!("{err} {err:?} {bad:?}").contains("revoked-code"));
}

#[tokio::test]
async fn provider_token_is_fetched_and_cached() {
    let e = env().await;
    let p = ProviderToken::new(
        e.client.clone(),
        e.cache.clone(),
        PROVIDER,
        Secret::new(PROVIDER_SECRET),
    );
    let t = p.token().await.unwrap();
    assert!(t.expose().starts_with("emuPT"));
    assert_eq!(p.token().await.unwrap(), t);
    assert_eq!(e.emu.calls(PROVIDER_TOKEN_PATH), 1);
    assert!(!format!("{p:?}").contains(PROVIDER_SECRET));
}
