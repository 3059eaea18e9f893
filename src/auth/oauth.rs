//! Member OAuth2 (spec auth-callback §4): authorize URLs, code exchange, user detail, the legacy
//! service-provider QR login, and detection of the WeCom in-app browser.
//!
//! URL builders are pure functions; the endpoints' hosts are fixed by WeCom (they are not the API
//! host). Exchanges go through an [`ApiClient`], so they use its base URL (the emulator in tests).

use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::client::{ApiClient, Method};
use crate::api::error::ApiError;
use crate::auth::TokenProvider;
use crate::secret::Secret;

/// Percent-encoding of one URL component, like JavaScript's `encodeURIComponent`: everything but
/// `A-Z a-z 0-9 - _ . ~` is encoded (so `:`, `/`, `?`, `&`, `=` and `#` in a redirect_uri are).
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The in-app OAuth2 authorize endpoint (inside WeCom).
pub const AUTHORIZE_ENDPOINT: &str = "https://open.weixin.qq.com/connect/oauth2/authorize";
/// The desktop-browser web login endpoint (doc 98171).
pub const WEB_LOGIN_ENDPOINT: &str = "https://login.work.weixin.qq.com/wwlogin/sso/login";
/// The legacy service-provider QR login endpoint.
pub const QR_CONNECT_3RD_ENDPOINT: &str =
    "https://open.work.weixin.qq.com/wwopen/sso/3rd_qrConnect";
/// The legacy self-built QR login endpoint.
pub const QR_CONNECT_ENDPOINT: &str = "https://open.work.weixin.qq.com/wwopen/sso/qrConnect";

/// `GET /cgi-bin/auth/getuserinfo` (self-built / 代开发).
pub const GETUSERINFO_PATH: &str = "/cgi-bin/auth/getuserinfo";
/// `POST /cgi-bin/auth/getuserdetail` (self-built / 代开发).
pub const GETUSERDETAIL_PATH: &str = "/cgi-bin/auth/getuserdetail";
/// `GET /cgi-bin/service/auth/getuserinfo3rd` (third-party).
pub const GETUSERINFO3RD_PATH: &str = "/cgi-bin/service/auth/getuserinfo3rd";
/// `POST /cgi-bin/service/auth/getuserdetail3rd` (third-party).
pub const GETUSERDETAIL3RD_PATH: &str = "/cgi-bin/service/auth/getuserdetail3rd";
/// `POST /cgi-bin/service/get_login_info` (legacy QR login; needs the provider_access_token).
pub const GET_LOGIN_INFO_PATH: &str = "/cgi-bin/service/get_login_info";

/// OAuth2 scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `snsapi_base`: silent, gives the userid.
    Base,
    /// `snsapi_privateinfo`: with consent, gives a `user_ticket` for sensitive fields.
    PrivateInfo,
    /// `snsapi_userinfo`: legacy (only in older pages); prefer [`Scope::Base`] or
    /// [`Scope::PrivateInfo`].
    UserInfo,
}

impl Scope {
    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::PrivateInfo => "snsapi_privateinfo",
            Scope::UserInfo => "snsapi_userinfo",
        }
    }
}

/// Who logs in with the legacy third-party QR login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrUserType {
    /// `usertype=admin`.
    Admin,
    /// `usertype=member`.
    Member,
}

/// A URL that cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthUrlError {
    /// `state` must be `[a-zA-Z0-9]`, at most 128 bytes (doc 96441).
    #[error("OAuth state must be letters and digits only, at most 128 bytes")]
    InvalidState,
    /// `snsapi_privateinfo` for a self-built app needs the agentid (else WeCom errors or
    /// silently downgrades to snsapi_base).
    #[error("scope snsapi_privateinfo needs the agentid for corp {corpid}")]
    PrivateInfoNeedsAgentId {
        /// The corp.
        corpid: String,
    },
    /// The redirect URI is empty.
    #[error("redirect_uri is empty")]
    EmptyRedirect,
}

fn check(redirect_uri: &str, state: &str) -> Result<(), OAuthUrlError> {
    if redirect_uri.is_empty() {
        return Err(OAuthUrlError::EmptyRedirect);
    }
    if state.len() > 128 || !state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(OAuthUrlError::InvalidState);
    }
    Ok(())
}

fn enc(s: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(s, COMPONENT)
}

/// The authorize URL of a self-built or 代开发 app (doc 96441): `appid` is the corpid.
///
/// ```
/// use wecom_archive::auth::oauth::{authorize_url_corp, Scope};
/// let url = authorize_url_corp("ww123", Some("1000002"), "https://a.example.com/cb", Scope::Base, "s1").unwrap();
/// assert_eq!(url, "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww123\
///     &redirect_uri=https%3A%2F%2Fa.example.com%2Fcb&response_type=code&scope=snsapi_base\
///     &state=s1&agentid=1000002#wechat_redirect");
/// ```
pub fn authorize_url_corp(
    corpid: &str,
    agentid: Option<&str>,
    redirect_uri: &str,
    scope: Scope,
    state: &str,
) -> Result<String, OAuthUrlError> {
    check(redirect_uri, state)?;
    if scope == Scope::PrivateInfo && agentid.is_none() {
        return Err(OAuthUrlError::PrivateInfoNeedsAgentId {
            corpid: corpid.to_owned(),
        });
    }
    let mut url = format!(
        "{AUTHORIZE_ENDPOINT}?appid={}&redirect_uri={}&response_type=code&scope={}&state={}",
        enc(corpid),
        enc(redirect_uri),
        scope.as_str(),
        state
    );
    if let Some(a) = agentid {
        url.push_str("&agentid=");
        url.push_str(&enc(a).to_string());
    }
    url.push_str("#wechat_redirect");
    Ok(url)
}

/// The authorize URL of a third-party app (doc 91120): `appid` is the suite_id, no agentid.
pub fn authorize_url_suite(
    suite_id: &str,
    redirect_uri: &str,
    scope: Scope,
    state: &str,
) -> Result<String, OAuthUrlError> {
    check(redirect_uri, state)?;
    Ok(format!(
        "{AUTHORIZE_ENDPOINT}?appid={}&redirect_uri={}&response_type=code&scope={}&state={}#wechat_redirect",
        enc(suite_id),
        enc(redirect_uri),
        scope.as_str(),
        state
    ))
}

/// Desktop-browser web login (doc 98171) for a self-built / 代开发 app (`login_type=CorpApp`).
pub fn web_login_url_corp(
    corpid: &str,
    agentid: &str,
    redirect_uri: &str,
    state: &str,
) -> Result<String, OAuthUrlError> {
    check(redirect_uri, state)?;
    Ok(format!(
        "{WEB_LOGIN_ENDPOINT}?login_type=CorpApp&appid={}&agentid={}&redirect_uri={}&state={}",
        enc(corpid),
        enc(agentid),
        enc(redirect_uri),
        state
    ))
}

/// Desktop-browser web login (doc 98171) for a provider (`login_type=ServiceApp`; appid is the
/// 登录授权 suite_id).
pub fn web_login_url_service(
    login_suite_id: &str,
    redirect_uri: &str,
    state: &str,
) -> Result<String, OAuthUrlError> {
    check(redirect_uri, state)?;
    Ok(format!(
        "{WEB_LOGIN_ENDPOINT}?login_type=ServiceApp&appid={}&redirect_uri={}&state={}",
        enc(login_suite_id),
        enc(redirect_uri),
        state
    ))
}

/// Legacy service-provider QR login link; the callback carries an `auth_code` for
/// [`get_login_info`].
pub fn qr_connect_url_3rd(
    provider_corpid: &str,
    redirect_uri: &str,
    state: &str,
    usertype: QrUserType,
) -> Result<String, OAuthUrlError> {
    check(redirect_uri, state)?;
    let usertype = match usertype {
        QrUserType::Admin => "admin",
        QrUserType::Member => "member",
    };
    Ok(format!(
        "{QR_CONNECT_3RD_ENDPOINT}?appid={}&redirect_uri={}&state={}&usertype={usertype}",
        enc(provider_corpid),
        enc(redirect_uri),
        state
    ))
}

/// Legacy self-built QR login link.
pub fn qr_connect_url_corp(
    corpid: &str,
    agentid: &str,
    redirect_uri: &str,
    state: &str,
) -> Result<String, OAuthUrlError> {
    check(redirect_uri, state)?;
    Ok(format!(
        "{QR_CONNECT_ENDPOINT}?appid={}&agentid={}&redirect_uri={}&state={}",
        enc(corpid),
        enc(agentid),
        enc(redirect_uri),
        state
    ))
}

/// Whether a User-Agent is the WeCom in-app browser (it carries `wxwork/<version>`; WeChat's
/// browser has `MicroMessenger` without it). Use it to pick the in-app authorize URL over the
/// desktop web login.
pub fn is_wecom_browser(user_agent: &str) -> bool {
    user_agent.to_ascii_lowercase().contains("wxwork/")
}

/// Who the OAuth code belongs to.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserIdentity {
    /// Member userid (ciphertext for a third-party app the corp has not authorized).
    #[serde(default, alias = "UserId")]
    pub userid: Option<String>,
    /// For `snsapi_privateinfo`: the ticket for the detail API.
    #[serde(default)]
    pub user_ticket: Option<Secret>,
    /// Lifetime of `user_ticket` (third-party responses).
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// Non-member: openid.
    #[serde(default, alias = "OpenId")]
    pub openid: Option<String>,
    /// Non-member external contact id.
    #[serde(default)]
    pub external_userid: Option<String>,
    /// Third-party: the member's corp.
    #[serde(default, alias = "CorpId")]
    pub corpid: Option<String>,
    /// Third-party: open_userid.
    #[serde(default)]
    pub open_userid: Option<String>,
    /// Legacy path only: device id.
    #[serde(default, alias = "DeviceId")]
    pub device_id: Option<String>,
}

impl UserIdentity {
    /// Whether the code belongs to a corp member (rather than a non-member with an openid).
    pub fn is_member(&self) -> bool {
        self.userid.is_some()
    }
}

/// Sensitive member fields from `getuserdetail` / `getuserdetail3rd` (only the fields the admin
/// exposed are present).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserDetail {
    /// userid.
    pub userid: String,
    /// Third-party: corpid.
    #[serde(default)]
    pub corpid: Option<String>,
    /// Third-party: name (returns the userid since 2020-06-30).
    #[serde(default)]
    pub name: Option<String>,
    /// "0" unknown, "1" male, "2" female.
    #[serde(default)]
    pub gender: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
    /// Personal QR code URL.
    #[serde(default)]
    pub qr_code: Option<String>,
    /// Self-built only: mobile.
    #[serde(default)]
    pub mobile: Option<String>,
    /// Self-built only: email.
    #[serde(default)]
    pub email: Option<String>,
    /// Self-built only: business mail.
    #[serde(default)]
    pub biz_mail: Option<String>,
    /// Self-built only: address.
    #[serde(default)]
    pub address: Option<String>,
}

/// Result of the legacy QR login exchange.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginInfo {
    /// 1 creator, 2 internal admin, 3 external admin, 4 sub-admin, 5 member.
    pub usertype: i64,
    /// The user.
    #[serde(default)]
    pub user_info: Value,
    /// The user's corp (`corpid`).
    #[serde(default)]
    pub corp_info: Value,
    /// Apps the admin may manage.
    #[serde(default)]
    pub agent: Vec<Value>,
    /// Departments.
    #[serde(default)]
    pub auth_info: Value,
}

impl LoginInfo {
    /// The corpid of the user's corp, if present.
    pub fn corpid(&self) -> Option<&str> {
        self.corp_info.get("corpid").and_then(Value::as_str)
    }
    /// The userid, if present.
    pub fn userid(&self) -> Option<&str> {
        self.user_info.get("userid").and_then(Value::as_str)
    }
}

/// Exchanges a self-built / 代开发 OAuth `code` (single use, 5 min) with the app's access_token.
/// 40029 means the code is invalid or was already used: restart the login.
pub async fn get_user_info(
    client: &Arc<ApiClient>,
    corp_token: &dyn TokenProvider,
    code: &str,
) -> Result<UserIdentity, ApiError> {
    client
        .call(
            corp_token,
            "access_token",
            Method::Get,
            GETUSERINFO_PATH,
            &[("code", code)],
            None,
        )
        .await
}

/// Exchanges a third-party OAuth `code` with the suite_access_token.
pub async fn get_user_info_3rd(
    client: &Arc<ApiClient>,
    suite_token: &dyn TokenProvider,
    code: &str,
) -> Result<UserIdentity, ApiError> {
    client
        .call(
            suite_token,
            "suite_access_token",
            Method::Get,
            GETUSERINFO3RD_PATH,
            &[("code", code)],
            None,
        )
        .await
}

/// Sensitive fields for a `user_ticket` (self-built / 代开发).
pub async fn get_user_detail(
    client: &Arc<ApiClient>,
    corp_token: &dyn TokenProvider,
    user_ticket: &Secret,
) -> Result<UserDetail, ApiError> {
    client
        .call(
            corp_token,
            "access_token",
            Method::Post,
            GETUSERDETAIL_PATH,
            &[],
            Some(&json!({ "user_ticket": user_ticket.expose() })),
        )
        .await
}

/// Sensitive fields for a `user_ticket` (third-party).
pub async fn get_user_detail_3rd(
    client: &Arc<ApiClient>,
    suite_token: &dyn TokenProvider,
    user_ticket: &Secret,
) -> Result<UserDetail, ApiError> {
    client
        .call(
            suite_token,
            "suite_access_token",
            Method::Post,
            GETUSERDETAIL3RD_PATH,
            &[],
            Some(&json!({ "user_ticket": user_ticket.expose() })),
        )
        .await
}

/// Exchanges a legacy QR-login `auth_code`. The token must be the provider_access_token (sent
/// as `access_token`); another kind is rejected.
pub async fn get_login_info(
    client: &Arc<ApiClient>,
    provider_token: &dyn TokenProvider,
    auth_code: &str,
) -> Result<LoginInfo, ApiError> {
    client
        .call(
            provider_token,
            "access_token",
            Method::Post,
            GET_LOGIN_INFO_PATH,
            &[],
            Some(&json!({ "auth_code": auth_code })),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "https://app.example.com:8443/oauth/cb?from=menu&x=a b";
    const CB_ENC: &str =
        "https%3A%2F%2Fapp.example.com%3A8443%2Foauth%2Fcb%3Ffrom%3Dmenu%26x%3Da%20b";

    #[test]
    fn self_built_base_url_is_exact() {
        assert_eq!(
            authorize_url_corp("wwcorp123", Some("1000002"), CB, Scope::Base, "STATE1").unwrap(),
            format!(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wwcorp123&redirect_uri={CB_ENC}\
                 &response_type=code&scope=snsapi_base&state=STATE1&agentid=1000002#wechat_redirect"
            )
        );
    }

    #[test]
    fn self_built_without_agentid_omits_it() {
        assert_eq!(
            authorize_url_corp("wwcorp123", None, "https://a.example.com/", Scope::Base, "s").unwrap(),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wwcorp123\
             &redirect_uri=https%3A%2F%2Fa.example.com%2F&response_type=code&scope=snsapi_base&state=s#wechat_redirect"
        );
    }

    #[test]
    fn self_built_privateinfo_url_is_exact_and_needs_agentid() {
        assert_eq!(
            authorize_url_corp("wwcorp123", Some("1000002"), CB, Scope::PrivateInfo, "abc").unwrap(),
            format!(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wwcorp123&redirect_uri={CB_ENC}\
                 &response_type=code&scope=snsapi_privateinfo&state=abc&agentid=1000002#wechat_redirect"
            )
        );
        assert_eq!(
            authorize_url_corp("wwcorp123", None, CB, Scope::PrivateInfo, "abc"),
            Err(OAuthUrlError::PrivateInfoNeedsAgentId {
                corpid: "wwcorp123".into()
            })
        );
    }

    #[test]
    fn third_party_urls_use_the_suite_id_and_no_agentid() {
        assert_eq!(
            authorize_url_suite("wwsuite777", CB, Scope::PrivateInfo, "S").unwrap(),
            format!(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wwsuite777&redirect_uri={CB_ENC}\
                 &response_type=code&scope=snsapi_privateinfo&state=S#wechat_redirect"
            )
        );
        assert_eq!(
            authorize_url_suite("wwsuite777", "https://b.example.com/x", Scope::UserInfo, "S").unwrap(),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wwsuite777\
             &redirect_uri=https%3A%2F%2Fb.example.com%2Fx&response_type=code&scope=snsapi_userinfo&state=S#wechat_redirect"
        );
    }

    #[test]
    fn state_is_validated() {
        let long = "a".repeat(129);
        for bad in ["a&b", "x y", "中文", long.as_str()] {
            assert_eq!(
                authorize_url_suite("ww", CB, Scope::Base, bad),
                Err(OAuthUrlError::InvalidState),
                "{bad}"
            );
        }
        assert!(authorize_url_suite("ww", CB, Scope::Base, &"a".repeat(128)).is_ok());
        assert_eq!(
            authorize_url_suite("ww", "", Scope::Base, "s"),
            Err(OAuthUrlError::EmptyRedirect)
        );
    }

    #[test]
    fn login_and_qr_urls_are_exact() {
        assert_eq!(
            web_login_url_corp("wwcorp123", "1000002", "https://a.example.com/cb", "s1").unwrap(),
            "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=wwcorp123\
             &agentid=1000002&redirect_uri=https%3A%2F%2Fa.example.com%2Fcb&state=s1"
        );
        assert_eq!(
            web_login_url_service("wwlogin9", "https://a.example.com/cb", "s1").unwrap(),
            "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=ServiceApp&appid=wwlogin9\
             &redirect_uri=https%3A%2F%2Fa.example.com%2Fcb&state=s1"
        );
        assert_eq!(
            qr_connect_url_3rd(
                "wwprov1",
                "https://a.example.com/cb",
                "s1",
                QrUserType::Admin
            )
            .unwrap(),
            "https://open.work.weixin.qq.com/wwopen/sso/3rd_qrConnect?appid=wwprov1\
             &redirect_uri=https%3A%2F%2Fa.example.com%2Fcb&state=s1&usertype=admin"
        );
        assert_eq!(
            qr_connect_url_corp("wwcorp123", "1000002", "https://a.example.com/cb", "s1").unwrap(),
            "https://open.work.weixin.qq.com/wwopen/sso/qrConnect?appid=wwcorp123&agentid=1000002\
             &redirect_uri=https%3A%2F%2Fa.example.com%2Fcb&state=s1"
        );
    }

    #[test]
    fn detects_the_wecom_browser() {
        let wecom = "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 \
                     (KHTML, like Gecko) Mobile/15E148 wxwork/4.1.10 MicroMessenger/7.0.1 Language/zh";
        let wechat = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Mobile Safari/537.36 \
                      MicroMessenger/8.0.40.2420(0x28002837) NetType/WIFI Language/zh_CN";
        let desktop =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                       Chrome/120.0 Safari/537.36 wxwork/4.1.16 (MicroMessenger/6.2) WindowsWechat";
        assert!(is_wecom_browser(wecom));
        assert!(is_wecom_browser(desktop));
        assert!(!is_wecom_browser(wechat));
        assert!(!is_wecom_browser("curl/8.0"));
    }

    #[test]
    fn identity_accepts_new_and_legacy_shapes() {
        let m: UserIdentity = serde_json::from_str(
            r#"{"errcode":0,"errmsg":"ok","userid":"USERID","user_ticket":"T"}"#,
        )
        .unwrap();
        assert!(m.is_member());
        assert!(!format!("{m:?}").contains("\"T\""));
        let legacy: UserIdentity =
            serde_json::from_str(r#"{"UserId":"lisi","DeviceId":"d1","errcode":0}"#).unwrap();
        assert_eq!(legacy.userid.as_deref(), Some("lisi"));
        let non: UserIdentity =
            serde_json::from_str(r#"{"openid":"OPENID","external_userid":"wmX"}"#).unwrap();
        assert!(!non.is_member());
    }
}
