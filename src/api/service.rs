//! Third-party (service provider) authorization APIs (spec auth-callback §1.5–1.8), called with
//! the `suite_access_token`.
//!
//! The install flow: [`Service::get_pre_auth_code`] → (test installs: [`Service::set_session_info`]
//! with auth type 1) → [`install_url`] → the admin confirms → `auth_code` on the redirect or in the
//! `create_auth` callback → [`Service::get_permanent_code_v2`] (faster) or
//! [`Service::get_permanent_code`] → store the permanent code → [`Service::get_auth_info`] after
//! each `change_auth`.

use std::sync::Arc;

use percent_encoding::utf8_percent_encode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::client::{ApiClient, Method};
use crate::api::error::ApiError;
use crate::auth::oauth::COMPONENT;
use crate::auth::TokenProvider;
use crate::secret::Secret;

/// `GET /cgi-bin/service/get_pre_auth_code`.
pub const PRE_AUTH_CODE_PATH: &str = "/cgi-bin/service/get_pre_auth_code";
/// `POST /cgi-bin/service/set_session_info`.
pub const SET_SESSION_INFO_PATH: &str = "/cgi-bin/service/set_session_info";
/// `POST /cgi-bin/service/get_permanent_code` (classic).
pub const PERMANENT_CODE_PATH: &str = "/cgi-bin/service/get_permanent_code";
/// `POST /cgi-bin/service/v2/get_permanent_code`.
pub const PERMANENT_CODE_V2_PATH: &str = "/cgi-bin/service/v2/get_permanent_code";
/// `POST /cgi-bin/service/get_auth_info`.
pub const AUTH_INFO_PATH: &str = "/cgi-bin/service/get_auth_info";

/// A pre-authorization code (valid `expires_in`, 1200 s).
#[derive(Debug, Clone, Deserialize)]
pub struct PreAuthCode {
    /// The code.
    pub pre_auth_code: Secret,
    /// Lifetime in seconds.
    pub expires_in: i64,
}

/// `session_info.auth_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// 0: production authorization.
    Formal = 0,
    /// 1: test authorization (needed for installs of an unpublished app).
    Test = 1,
}

/// Basic facts about the authorizing corp.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthCorpInfo {
    /// The corp's corpid.
    pub corpid: String,
    /// Short name.
    #[serde(default)]
    pub corp_name: String,
    /// `verified`, `unverified`, …
    #[serde(default)]
    pub corp_type: Option<String>,
    /// Full name.
    #[serde(default)]
    pub corp_full_name: Option<String>,
    /// Subject type.
    #[serde(default)]
    pub subject_type: Option<i64>,
    /// Member cap.
    #[serde(default)]
    pub corp_user_max: Option<i64>,
}

/// The admin who installed the app.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthUserInfo {
    /// userid (may be absent).
    #[serde(default)]
    pub userid: Option<String>,
    /// open_userid.
    #[serde(default)]
    pub open_userid: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
}

/// One authorized app of `auth_info.agent[]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthAgent {
    /// agentid inside the authorizing corp.
    pub agentid: i64,
    /// App name.
    #[serde(default)]
    pub name: String,
    /// Legacy app id inside the suite.
    #[serde(default)]
    pub appid: Option<i64>,
    /// 0 admin authorization, 1 member authorization.
    #[serde(default)]
    pub auth_mode: Option<i64>,
    /// Whether it is a 代开发 app.
    #[serde(default)]
    pub is_customized_app: Option<bool>,
    /// The visible range and permissions, as sent.
    #[serde(default)]
    pub privilege: Option<Value>,
}

/// `auth_info`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthInfo {
    /// The authorized apps.
    #[serde(default)]
    pub agent: Vec<AuthAgent>,
}

/// The response of the classic `get_permanent_code`.
#[derive(Debug, Clone, Deserialize)]
pub struct PermanentCode {
    /// The permanent code (for 代开发 apps: the app secret).
    pub permanent_code: Secret,
    /// The authorizing corp.
    pub auth_corp_info: AuthCorpInfo,
    /// The apps authorized (absent in v2).
    #[serde(default)]
    pub auth_info: Option<AuthInfo>,
    /// The installing admin.
    #[serde(default)]
    pub auth_user_info: Option<AuthUserInfo>,
    /// The corp's access_token, returned by the classic API only.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// Lifetime of `access_token`.
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// The `state` from the install link.
    #[serde(default)]
    pub state: Option<String>,
    /// Everything else (dealer_corp_info, edition_info, register_code_info, …), unparsed.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// The response of `get_auth_info`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthInfoResponse {
    /// The authorizing corp.
    pub auth_corp_info: AuthCorpInfo,
    /// The apps authorized.
    #[serde(default)]
    pub auth_info: AuthInfo,
    /// Everything else (dealer_corp_info, edition_info, …), unparsed.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// The install link for a pre-auth code (doc 90601):
/// `https://open.work.weixin.qq.com/3rdapp/install?suite_id=…&pre_auth_code=…&redirect_uri=…&state=…`.
pub fn install_url(
    suite_id: &str,
    pre_auth_code: &Secret,
    redirect_uri: &str,
    state: &str,
) -> String {
    format!(
        "https://open.work.weixin.qq.com/3rdapp/install?suite_id={}&pre_auth_code={}&redirect_uri={}&state={}",
        utf8_percent_encode(suite_id, COMPONENT),
        utf8_percent_encode(pre_auth_code.expose(), COMPONENT),
        utf8_percent_encode(redirect_uri, COMPONENT),
        utf8_percent_encode(state, COMPONENT),
    )
}

/// The service APIs of one suite.
pub struct Service {
    client: Arc<ApiClient>,
    suite: Arc<dyn TokenProvider>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("suite", &self.suite.corp())
            .finish()
    }
}

impl Service {
    /// The APIs, called with `suite`'s `suite_access_token`.
    pub fn new(client: Arc<ApiClient>, suite: Arc<dyn TokenProvider>) -> Self {
        Service { client, suite }
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Value,
    ) -> Result<T, ApiError> {
        self.client
            .call(
                self.suite.as_ref(),
                "suite_access_token",
                Method::Post,
                path,
                &[],
                Some(&body),
            )
            .await
    }

    /// A pre-authorization code for the install link.
    pub async fn get_pre_auth_code(&self) -> Result<PreAuthCode, ApiError> {
        self.client
            .call(
                self.suite.as_ref(),
                "suite_access_token",
                Method::Get,
                PRE_AUTH_CODE_PATH,
                &[],
                None,
            )
            .await
    }

    /// Sets the session of a pre-auth code: which apps (`appids`, empty = all) and the auth type.
    pub async fn set_session_info(
        &self,
        pre_auth_code: &Secret,
        appids: &[i64],
        auth_type: AuthType,
    ) -> Result<(), ApiError> {
        let mut session = json!({ "auth_type": auth_type as u8 });
        if !appids.is_empty() {
            session["appid"] = json!(appids);
        }
        let body = json!({ "pre_auth_code": pre_auth_code.expose(), "session_info": session });
        let _: Value = self.post(SET_SESSION_INFO_PATH, body).await?;
        Ok(())
    }

    /// Exchanges a single-use `auth_code` for the permanent code (classic API: also returns the
    /// corp's access_token and `auth_info`).
    pub async fn get_permanent_code(&self, auth_code: &Secret) -> Result<PermanentCode, ApiError> {
        self.post(
            PERMANENT_CODE_PATH,
            json!({ "auth_code": auth_code.expose() }),
        )
        .await
    }

    /// The v2 exchange (faster; no access_token and no auth_info in the response).
    pub async fn get_permanent_code_v2(
        &self,
        auth_code: &Secret,
    ) -> Result<PermanentCode, ApiError> {
        self.post(
            PERMANENT_CODE_V2_PATH,
            json!({ "auth_code": auth_code.expose() }),
        )
        .await
    }

    /// The corp's current authorization (call after `change_auth` and diff).
    pub async fn get_auth_info(
        &self,
        auth_corpid: &str,
        permanent_code: &Secret,
    ) -> Result<AuthInfoResponse, ApiError> {
        self.post(
            AUTH_INFO_PATH,
            json!({ "auth_corpid": auth_corpid, "permanent_code": permanent_code.expose() }),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_url_matches_the_documented_shape() {
        assert_eq!(
            install_url(
                "wwddddccc7775555aaa",
                &Secret::new("Cx_Dk6qiBE0Dmx4E"),
                "https://app.example.com/installed?x=1",
                "s1"
            ),
            "https://open.work.weixin.qq.com/3rdapp/install?suite_id=wwddddccc7775555aaa\
             &pre_auth_code=Cx_Dk6qiBE0Dmx4E\
             &redirect_uri=https%3A%2F%2Fapp.example.com%2Finstalled%3Fx%3D1&state=s1"
        );
    }

    #[test]
    fn permanent_code_response_parses_and_hides_the_code() {
        let p: PermanentCode = serde_json::from_str(
            r#"{"errcode":0,"errmsg":"ok","access_token":"acc-tok-secret","expires_in":7200,"permanent_code":"pc-secret",
               "dealer_corp_info":{"corpid":"xxxx","corp_name":"name"},
               "auth_corp_info":{"corpid":"wwcorp","corp_name":"name","corp_type":"verified","corp_user_max":50},
               "auth_info":{"agent":[{"agentid":1,"name":"NAME","appid":1,"auth_mode":1,"is_customized_app":false,
                 "privilege":{"level":1,"allow_party":[1,2,3]}}]},
               "auth_user_info":{"userid":"aa","open_userid":"xxxxxx","name":"xxx","avatar":"http://xxx"},
               "state":"state001"}"#,
        )
        .unwrap();
        assert_eq!(p.permanent_code.expose(), "pc-secret");
        assert_eq!(p.auth_corp_info.corpid, "wwcorp");
        assert_eq!(p.auth_info.as_ref().unwrap().agent[0].agentid, 1);
        assert_eq!(p.state.as_deref(), Some("state001"));
        assert!(p.extra.contains_key("dealer_corp_info"));
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("pc-secret") && !dbg.contains("acc-tok-secret"),
            "{dbg}"
        );
    }
}
