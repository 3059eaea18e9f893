//! Shared setup for the tests that run against the local WeCom emulator.
#![allow(dead_code)]

pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use wecom_archive::api::client::{ApiClient, ClientConfig, RetryPolicy};
use wecom_archive::auth::token::{CachePolicy, MemoryTokenStore, TokenCache, TokenStore};
use wecom_archive::clock::ManualClock;
use wecom_archive::emulator::{Emulator, EmulatorConfig, Room};

pub const CORP: &str = "wwcorp0000000001";
pub const ARCHIVE_SECRET: &str = "archive-secret-0123456789";
pub const APP_SECRET: &str = "app-secret-0123456789";
pub const SUITE: &str = "wwsuite000000001";
pub const SUITE_SECRET: &str = "suite-secret-0123456789";
pub const TICKET: &str = "ticket-0001";
pub const PROVIDER: &str = "wwprovider000001";
pub const PROVIDER_SECRET: &str = "provider-secret-0123456789";
pub const AUTH_CORP: &str = "wwclient00000001";
pub const PERMANENT_CODE: &str = "permanent-code-0123456789";

/// The emulator's world: one corp with an archive and an app secret, a suite with one
/// authorized corp, a provider, and some archive data.
pub fn world() -> EmulatorConfig {
    let mut cfg = EmulatorConfig::default()
        .archive_corp(CORP, ARCHIVE_SECRET)
        .corp(CORP, APP_SECRET)
        .suite(SUITE, SUITE_SECRET, TICKET)
        .provider(PROVIDER, PROVIDER_SECRET)
        .authorization(SUITE, AUTH_CORP, PERMANENT_CODE);
    cfg.permit_users = vec![
        ("zhangsan".into(), 1),
        ("lisi".into(), 2),
        ("wangwu".into(), 3),
    ];
    cfg.disagreeing = vec!["wmDisagree01".into()];
    cfg.rooms = vec![Room {
        roomid: "wrRoom01".into(),
        roomname: "项目群".into(),
        creator: "zhangsan".into(),
        members: vec!["zhangsan".into(), "wmAgree01".into(), "wmDisagree01".into()],
    }];
    cfg.robots = vec![("wbRobot01".into(), "机器人A".into(), "zhangsan".into())];
    cfg
}

pub struct Env {
    pub emu: Emulator,
    pub clock: Arc<ManualClock>,
    pub client: Arc<ApiClient>,
    pub store: Arc<dyn TokenStore>,
    pub cache: Arc<TokenCache>,
}

/// Fast retries (1 ms base) so backoff tests take milliseconds; 60 s rate-limit window on the
/// shared manual clock.
pub fn fast_client(emu: &Emulator, clock: &Arc<ManualClock>) -> Arc<ApiClient> {
    let cfg = ClientConfig {
        base_url: emu.base_url(),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            rate_limit_window_secs: 60,
            rate_limit_long_window_secs: 3600,
        },
    };
    Arc::new(ApiClient::with_clock(cfg, clock.clone()).unwrap())
}

pub async fn env_with(store: Arc<dyn TokenStore>) -> Env {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let emu = Emulator::start(world(), clock.clone()).await.unwrap();
    let client = fast_client(&emu, &clock);
    let cache = Arc::new(TokenCache::new(
        clock.clone(),
        store.clone(),
        CachePolicy::default(),
    ));
    Env {
        emu,
        clock,
        client,
        store,
        cache,
    }
}

pub async fn env() -> Env {
    env_with(Arc::new(MemoryTokenStore::new())).await
}
