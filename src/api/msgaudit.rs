//! The session-archive REST APIs (spec archive §6), called with the 会话内容存档 secret's token.
//!
//! All are `…?access_token=ACCESS_TOKEN`; a token from an ordinary app secret gets 48002.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::client::{ApiClient, Method};
use crate::api::error::ApiError;
use crate::auth::TokenProvider;

/// `POST /cgi-bin/msgaudit/get_permit_user_list`.
pub const PERMIT_USER_LIST_PATH: &str = "/cgi-bin/msgaudit/get_permit_user_list";
/// `POST /cgi-bin/msgaudit/check_single_agree`.
pub const CHECK_SINGLE_AGREE_PATH: &str = "/cgi-bin/msgaudit/check_single_agree";
/// `POST /cgi-bin/msgaudit/check_room_agree`.
pub const CHECK_ROOM_AGREE_PATH: &str = "/cgi-bin/msgaudit/check_room_agree";
/// `POST /cgi-bin/msgaudit/groupchat/get`.
pub const GROUPCHAT_GET_PATH: &str = "/cgi-bin/msgaudit/groupchat/get";
/// `GET /cgi-bin/msgaudit/get_robot_info`.
pub const ROBOT_INFO_PATH: &str = "/cgi-bin/msgaudit/get_robot_info";

/// Licence type filter of `get_permit_user_list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitType {
    /// 1 办公版.
    Office = 1,
    /// 2 服务版.
    Service = 2,
    /// 3 企业版.
    Enterprise = 3,
}

/// One (member, external contact) pair for `check_single_agree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleAgreeQuery {
    /// The member's userid.
    pub userid: String,
    /// The external contact's id. The field name is the official misspelling.
    #[serde(rename = "exteranalopenid")]
    pub external_openid: String,
}

/// One agreement status from `check_single_agree` / `check_room_agree`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgreeInfo {
    /// When the status last changed (Unix seconds).
    #[serde(default)]
    pub status_change_time: i64,
    /// The member (single chats only).
    #[serde(default)]
    pub userid: Option<String>,
    /// The external contact (official misspelling `exteranalopenid`).
    #[serde(rename = "exteranalopenid")]
    pub external_openid: String,
    /// `Agree` or `Disagree`.
    pub agree_status: String,
}

impl AgreeInfo {
    /// Whether the contact agreed to archiving.
    pub fn agreed(&self) -> bool {
        self.agree_status == "Agree"
    }
}

/// An internal group chat from `msgaudit/groupchat/get`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupChat {
    /// Group name.
    #[serde(default)]
    pub roomname: String,
    /// Creator userid.
    #[serde(default)]
    pub creator: String,
    /// Creation time (Unix seconds).
    #[serde(default)]
    pub room_create_time: i64,
    /// Group notice.
    #[serde(default)]
    pub notice: String,
    /// Members.
    #[serde(default)]
    pub members: Vec<GroupMember>,
}

/// A member of a [`GroupChat`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupMember {
    /// userid or external id.
    pub memberid: String,
    /// Join time (Unix seconds).
    #[serde(default)]
    pub jointime: i64,
}

/// A robot from `get_robot_info`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RobotInfo {
    /// Robot id (`wb…`).
    pub robot_id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// The member who created it.
    #[serde(default)]
    pub creator_userid: String,
}

#[derive(Deserialize)]
struct IdsResponse {
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Deserialize)]
struct AgreeResponse {
    #[serde(default)]
    agreeinfo: Vec<AgreeInfo>,
}

#[derive(Deserialize)]
struct RobotResponse {
    data: RobotInfo,
}

/// The msgaudit REST APIs of one corp.
pub struct MsgAudit {
    client: Arc<ApiClient>,
    token: Arc<dyn TokenProvider>,
}

impl std::fmt::Debug for MsgAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgAudit")
            .field("corp", &self.token.corp())
            .finish()
    }
}

impl MsgAudit {
    /// The APIs, called with `token` (the 会话内容存档 secret's access_token).
    pub fn new(client: Arc<ApiClient>, token: Arc<dyn TokenProvider>) -> Self {
        MsgAudit { client, token }
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, ApiError> {
        self.client
            .call(
                self.token.as_ref(),
                "access_token",
                Method::Post,
                path,
                &[],
                Some(&body),
            )
            .await
    }

    /// Members with the archive licence, optionally of one licence type.
    pub async fn get_permit_user_list(
        &self,
        kind: Option<PermitType>,
    ) -> Result<Vec<String>, ApiError> {
        let body = match kind {
            Some(k) => json!({ "type": k as u8 }),
            None => json!({}),
        };
        let r: IdsResponse = self.post(PERMIT_USER_LIST_PATH, body).await?;
        Ok(r.ids)
    }

    /// Whether each external contact agreed to archiving of their 1:1 chat with the member.
    pub async fn check_single_agree(
        &self,
        pairs: &[SingleAgreeQuery],
    ) -> Result<Vec<AgreeInfo>, ApiError> {
        let r: AgreeResponse = self
            .post(CHECK_SINGLE_AGREE_PATH, json!({ "info": pairs }))
            .await?;
        Ok(r.agreeinfo)
    }

    /// Whether the external members of group `roomid` agreed to archiving.
    pub async fn check_room_agree(&self, roomid: &str) -> Result<Vec<AgreeInfo>, ApiError> {
        let r: AgreeResponse = self
            .post(CHECK_ROOM_AGREE_PATH, json!({ "roomid": roomid }))
            .await?;
        Ok(r.agreeinfo)
    }

    /// An internal group chat (customer groups use `externalcontact/groupchat/get` instead).
    pub async fn groupchat_get(&self, roomid: &str) -> Result<GroupChat, ApiError> {
        self.post(GROUPCHAT_GET_PATH, json!({ "roomid": roomid }))
            .await
    }

    /// A robot's name and creator (GET with `robot_id`).
    pub async fn get_robot_info(&self, robot_id: &str) -> Result<RobotInfo, ApiError> {
        let r: RobotResponse = self
            .client
            .call(
                self.token.as_ref(),
                "access_token",
                Method::Get,
                ROBOT_INFO_PATH,
                &[("robot_id", robot_id)],
                None,
            )
            .await?;
        Ok(r.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_agree_query_uses_the_official_misspelling() {
        let q = SingleAgreeQuery {
            userid: "XuJinSheng".into(),
            external_openid: "wmeDKaCQAAGd9oGiQWxVsAKwV2HxNAAA".into(),
        };
        assert_eq!(
            serde_json::to_string(&json!({ "info": [q] })).unwrap(),
            r#"{"info":[{"exteranalopenid":"wmeDKaCQAAGd9oGiQWxVsAKwV2HxNAAA","userid":"XuJinSheng"}]}"#
        );
    }

    #[test]
    fn agree_info_parses_the_documented_response() {
        let r: AgreeResponse = serde_json::from_str(
            r#"{"errcode":0,"errmsg":"ok","agreeinfo":[{"status_change_time":1562766651,"userid":"XuJinSheng","exteranalopenid":"wmeDKaCPAAGdvxciQWxVsAKwV2HxNAAA","agree_status":"Agree"}]}"#,
        )
        .unwrap();
        assert_eq!(r.agreeinfo.len(), 1);
        assert!(r.agreeinfo[0].agreed());
        assert_eq!(r.agreeinfo[0].userid.as_deref(), Some("XuJinSheng"));
    }
}
