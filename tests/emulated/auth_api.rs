//! The msgaudit, service and OAuth APIs against the local WeCom emulator: request shapes
//! (including the official `exteranalopenid` spelling), response decoding and error mapping.

use std::sync::Arc;

use crate::common::*;
use wecom_archive::api::error::ApiError;
use wecom_archive::api::msgaudit::{
    MsgAudit, PermitType, SingleAgreeQuery, CHECK_SINGLE_AGREE_PATH, ROBOT_INFO_PATH,
};
use wecom_archive::api::service::{AuthType, Service, PERMANENT_CODE_V2_PATH};
use wecom_archive::auth::oauth;
use wecom_archive::auth::providers::{CorpToken, ProviderToken, StaticSuiteTicket, SuiteToken};
use wecom_archive::secret::Secret;

fn archive(e: &Env) -> Arc<CorpToken> {
    Arc::new(CorpToken::new(
        e.client.clone(),
        e.cache.clone(),
        CORP,
        Some("archive".into()),
        Secret::new(ARCHIVE_SECRET),
    ))
}

fn suite(e: &Env) -> Arc<SuiteToken> {
    Arc::new(SuiteToken::new(
        e.client.clone(),
        e.cache.clone(),
        SUITE,
        Secret::new(SUITE_SECRET),
        Arc::new(StaticSuiteTicket(Secret::new(TICKET))),
    ))
}

#[tokio::test]
async fn msgaudit_endpoints_round_trip() {
    let e = env().await;
    let api = MsgAudit::new(e.client.clone(), archive(&e));

    assert_eq!(
        api.get_permit_user_list(None).await.unwrap(),
        ["zhangsan", "lisi", "wangwu"]
    );
    assert_eq!(
        api.get_permit_user_list(Some(PermitType::Service))
            .await
            .unwrap(),
        ["lisi"]
    );

    let agree = api
        .check_single_agree(&[
            SingleAgreeQuery {
                userid: "zhangsan".into(),
                external_openid: "wmAgree01".into(),
            },
            SingleAgreeQuery {
                userid: "zhangsan".into(),
                external_openid: "wmDisagree01".into(),
            },
        ])
        .await
        .unwrap();
    // The emulator reads `exteranalopenid` from the request: the pairs come back matched.
    assert_eq!(agree.len(), 2);
    assert_eq!(agree[0].external_openid, "wmAgree01");
    assert!(agree[0].agreed());
    assert_eq!(agree[1].external_openid, "wmDisagree01");
    assert!(!agree[1].agreed());
    assert_eq!(agree[1].userid.as_deref(), Some("zhangsan"));
    assert_eq!(e.emu.calls(CHECK_SINGLE_AGREE_PATH), 1);

    let room = api.check_room_agree("wrRoom01").await.unwrap();
    let statuses: Vec<(&str, bool)> = room
        .iter()
        .map(|a| (a.external_openid.as_str(), a.agreed()))
        .collect();
    assert_eq!(statuses, [("wmAgree01", true), ("wmDisagree01", false)]);

    let chat = api.groupchat_get("wrRoom01").await.unwrap();
    assert_eq!(chat.roomname, "项目群");
    assert_eq!(chat.creator, "zhangsan");
    assert_eq!(chat.members.len(), 3);
    let err = api.groupchat_get("wrMissing").await.unwrap_err();
    assert!(matches!(err, ApiError::Api { code: 40050, .. }), "{err}");
    assert!(err.to_string().contains("/cgi-bin/msgaudit/groupchat/get"));

    let robot = api.get_robot_info("wbRobot01").await.unwrap();
    assert_eq!(robot.name, "机器人A");
    assert_eq!(robot.creator_userid, "zhangsan");
    assert_eq!(e.emu.calls(ROBOT_INFO_PATH), 1);
}

#[tokio::test]
async fn install_flow_pre_auth_code_to_permanent_code() {
    let e = env().await;
    let s = suite(&e);
    let svc = Service::new(e.client.clone(), s.clone());

    let pre = svc.get_pre_auth_code().await.unwrap();
    assert_eq!(pre.expires_in, 1200);
    svc.set_session_info(&pre.pre_auth_code, &[1], AuthType::Test)
        .await
        .unwrap();
    let err = svc
        .set_session_info(&Secret::new("bogus"), &[], AuthType::Formal)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Api { code: 42007, .. }), "{err}");

    // A new corp installs: the auth_code is exchanged once (v2), a second use is 40078.
    let code = Secret::new(e.emu.state().issue_auth_code(SUITE, "wwnewcorp0000001"));
    let pc = svc.get_permanent_code_v2(&code).await.unwrap();
    assert_eq!(pc.auth_corp_info.corpid, "wwnewcorp0000001");
    assert!(pc.access_token.is_none() && pc.auth_info.is_none());
    let err = svc.get_permanent_code_v2(&code).await.unwrap_err();
    assert!(matches!(err, ApiError::Api { code: 40078, .. }), "{err}");
    assert_eq!(e.emu.calls(PERMANENT_CODE_V2_PATH), 2);

    // Classic exchange: also an access_token and auth_info.
    let code = Secret::new(e.emu.state().issue_auth_code(SUITE, AUTH_CORP));
    let classic = svc.get_permanent_code(&code).await.unwrap();
    assert_eq!(classic.permanent_code.expose(), PERMANENT_CODE);
    assert!(classic.access_token.is_some());
    assert_eq!(classic.auth_info.unwrap().agent[0].agentid, 1000002);

    let info = svc
        .get_auth_info("wwnewcorp0000001", &pc.permanent_code)
        .await
        .unwrap();
    assert_eq!(info.auth_corp_info.corpid, "wwnewcorp0000001");
    assert_eq!(info.auth_info.agent.len(), 1);
    let err = svc
        .get_auth_info(AUTH_CORP, &Secret::new("nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Config { code: 40084, .. }), "{err}");
    // One suite token served every call.
    assert_eq!(e.emu.calls("/cgi-bin/service/get_suite_token"), 1);
}

#[tokio::test]
async fn oauth_code_exchange_self_built_and_third_party() {
    let e = env().await;
    // Self-built: the code belongs to the corp's app; snsapi_privateinfo gives a user_ticket.
    let app = CorpToken::new(
        e.client.clone(),
        e.cache.clone(),
        CORP,
        Some("1000002".into()),
        Secret::new(APP_SECRET),
    );
    let code = e.emu.state().issue_oauth_code(CORP, CORP, "lisi", true);
    let who = oauth::get_user_info(&e.client, &app, &code).await.unwrap();
    assert!(who.is_member());
    assert_eq!(who.userid.as_deref(), Some("lisi"));
    let ticket = who
        .user_ticket
        .clone()
        .expect("privateinfo gives a user_ticket");
    assert!(!format!("{who:?}").contains(ticket.expose()));
    let detail = oauth::get_user_detail(&e.client, &app, &ticket)
        .await
        .unwrap();
    assert_eq!(detail.userid, "lisi");
    assert!(detail.mobile.is_some());
    // Codes are single use: 40029.
    let err = oauth::get_user_info(&e.client, &app, &code)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Api { code: 40029, .. }), "{err}");

    // Third-party: suite token, corpid and open_userid in the answer.
    let s = suite(&e);
    let code = e
        .emu
        .state()
        .issue_oauth_code(SUITE, AUTH_CORP, "wangwu", true);
    let who = oauth::get_user_info_3rd(&e.client, s.as_ref(), &code)
        .await
        .unwrap();
    assert_eq!(who.corpid.as_deref(), Some(AUTH_CORP));
    assert_eq!(who.userid.as_deref(), Some("wangwu"));
    let detail = oauth::get_user_detail_3rd(&e.client, s.as_ref(), &who.user_ticket.unwrap())
        .await
        .unwrap();
    assert_eq!(detail.corpid.as_deref(), Some(AUTH_CORP));
    assert!(detail.mobile.is_none());
}

#[tokio::test]
async fn qr_login_needs_the_provider_token() {
    let e = env().await;
    let provider = ProviderToken::new(
        e.client.clone(),
        e.cache.clone(),
        PROVIDER,
        Secret::new(PROVIDER_SECRET),
    );
    let code = e
        .emu
        .state()
        .issue_login_code(PROVIDER, CORP, "zhangsan", 1);
    let info = oauth::get_login_info(&e.client, &provider, &code)
        .await
        .unwrap();
    assert_eq!(info.usertype, 1);
    assert_eq!(info.corpid(), Some(CORP));
    assert_eq!(info.userid(), Some("zhangsan"));

    // The wrong token kind (a suite token) is rejected, refreshed once, rejected again: a typed
    // error after exactly two calls, not a loop.
    let s = suite(&e);
    let code = e
        .emu
        .state()
        .issue_login_code(PROVIDER, CORP, "zhangsan", 1);
    let before = e.emu.calls(oauth::GET_LOGIN_INFO_PATH);
    let err = oauth::get_login_info(&e.client, s.as_ref(), &code)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::TokenRejected { code: 40082, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("right token kind"));
    assert_eq!(e.emu.calls(oauth::GET_LOGIN_INFO_PATH) - before, 2);
}

#[tokio::test]
async fn http_failures_name_the_corp_and_hide_the_token() {
    // Nothing listens on this port any more: a connection error, retried and then reported
    // without the URL (which would carry the secret in `corpsecret=`).
    let e = env().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = Arc::new(
        wecom_archive::api::client::ApiClient::with_clock(
            wecom_archive::api::client::ClientConfig {
                base_url: format!("http://{dead}"),
                retry: wecom_archive::api::client::RetryPolicy {
                    max_retries: 1,
                    base_delay: std::time::Duration::from_millis(1),
                    rate_limit_window_secs: 60,
                    rate_limit_long_window_secs: 3600,
                },
                ..Default::default()
            },
            e.clock.clone(),
        )
        .unwrap(),
    );
    let token = CorpToken::new(
        client,
        e.cache.clone(),
        CORP,
        None,
        Secret::new(ARCHIVE_SECRET),
    );
    let err = wecom_archive::auth::TokenProvider::token(&token)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Http { .. }), "{err}");
    let text = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
    assert!(text.contains(CORP), "{text}");
    assert!(!text.contains(ARCHIVE_SECRET), "{text}");
    assert!(!text.contains("corpsecret"), "{text}");
}

#[tokio::test]
async fn emulator_admin_routes_over_http() {
    let e = env().await;
    let token = archive(&e);
    let api = MsgAudit::new(e.client.clone(), token);
    api.get_permit_user_list(None).await.unwrap();

    let http = reqwest::Client::new();
    let calls: serde_json::Value = http
        .get(format!("{}/_emulator/calls", e.emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["calls"]["/cgi-bin/gettoken"], 1);
    assert_eq!(calls["calls"]["/cgi-bin/msgaudit/get_permit_user_list"], 1);

    assert_eq!(e.emu.state().issued_tokens(), 1);
    http.post(format!("{}/_emulator/invalidate_tokens", e.emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(e.emu.state().issued_tokens(), 0);
    // The client recovers with one refresh.
    api.get_permit_user_list(None).await.unwrap();
    assert_eq!(e.emu.calls("/cgi-bin/gettoken"), 2);
}
