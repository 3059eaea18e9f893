//! The emulator's callback sender: builds callbacks exactly as WeCom sends them (encrypted,
//! signed, percent-encoded query) and delivers them to a callback server over HTTP.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::crypto::msgcrypt::MsgCrypt;

/// A signed, encrypted callback request, ready to send (or to tamper with in tests).
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// Path and query, e.g. `/callback/app?msg_signature=…&timestamp=…&nonce=…`.
    pub path_and_query: String,
    /// The POST body (the XML envelope); empty for a GET URL check.
    pub body: String,
}

/// Sends callbacks for one (Token, EncodingAESKey) pair, as WeCom would.
#[derive(Debug, Clone)]
pub struct CallbackSender {
    crypto: MsgCrypt,
    base_url: String,
    http: reqwest::Client,
}

/// A response: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl CallbackSender {
    /// A sender to the server at `base_url` (`http://127.0.0.1:PORT`).
    pub fn new(token: &str, encoding_aes_key: &str, base_url: &str) -> Self {
        CallbackSender {
            crypto: MsgCrypt::new(token, encoding_aes_key).expect("a valid EncodingAESKey"),
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The codec (to build tampered requests).
    pub fn crypto(&self) -> &MsgCrypt {
        &self.crypto
    }

    /// A POST of `plaintext` encrypted for `receiveid`, signed with `timestamp` and a fresh
    /// nonce. The envelope carries `ToUserName` like WeCom's.
    pub fn post_request(
        &self,
        path: &str,
        receiveid: &str,
        plaintext: &str,
        timestamp: i64,
    ) -> SignedRequest {
        let encrypt = self.crypto.encrypt(plaintext.as_bytes(), receiveid);
        let nonce = rand::random::<u32>().to_string();
        let ts = timestamp.to_string();
        let sig = self.crypto.signature(&ts, &nonce, &encrypt);
        SignedRequest {
            path_and_query: format!(
                "{path}?msg_signature={sig}&timestamp={ts}&nonce={}",
                enc(&nonce)
            ),
            body: format!(
                "<xml><ToUserName><![CDATA[{receiveid}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
            ),
        }
    }

    /// A GET URL check with `echostr` (the plain answer expected back) for `receiveid`.
    pub fn verify_request(
        &self,
        path: &str,
        receiveid: &str,
        echostr: &str,
        timestamp: i64,
    ) -> SignedRequest {
        let encrypted = self.crypto.encrypt(echostr.as_bytes(), receiveid);
        let nonce = rand::random::<u32>().to_string();
        let ts = timestamp.to_string();
        let sig = self.crypto.signature(&ts, &nonce, &encrypted);
        SignedRequest {
            path_and_query: format!(
                "{path}?msg_signature={sig}&timestamp={ts}&nonce={}&echostr={}",
                enc(&nonce),
                enc(&encrypted)
            ),
            body: String::new(),
        }
    }

    /// Sends `req` as a POST.
    pub async fn send_post(&self, req: &SignedRequest) -> reqwest::Result<Reply> {
        let r = self
            .http
            .post(format!("{}{}", self.base_url, req.path_and_query))
            .header("content-type", "text/xml")
            .body(req.body.clone())
            .send()
            .await?;
        Ok(Reply {
            status: r.status().as_u16(),
            body: r.text().await?,
        })
    }

    /// Sends `req` as a GET.
    pub async fn send_get(&self, req: &SignedRequest) -> reqwest::Result<Reply> {
        let r = self
            .http
            .get(format!("{}{}", self.base_url, req.path_and_query))
            .send()
            .await?;
        Ok(Reply {
            status: r.status().as_u16(),
            body: r.text().await?,
        })
    }

    /// Encrypts, signs and POSTs `plaintext`.
    pub async fn post(
        &self,
        path: &str,
        receiveid: &str,
        plaintext: &str,
        timestamp: i64,
    ) -> reqwest::Result<Reply> {
        self.send_post(&self.post_request(path, receiveid, plaintext, timestamp))
            .await
    }
}

/// `suite_ticket` push XML (spec §3.1).
pub fn suite_ticket_xml(suite_id: &str, ticket: &str, timestamp: i64) -> String {
    format!(
        "<xml><SuiteId><![CDATA[{suite_id}]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>\
         <TimeStamp>{timestamp}</TimeStamp><SuiteTicket><![CDATA[{ticket}]]></SuiteTicket></xml>"
    )
}

/// `create_auth` XML (spec §3.2).
pub fn create_auth_xml(suite_id: &str, auth_code: &str, timestamp: i64) -> String {
    format!(
        "<xml><SuiteId><![CDATA[{suite_id}]]></SuiteId><AuthCode><![CDATA[{auth_code}]]></AuthCode>\
         <InfoType><![CDATA[create_auth]]></InfoType><TimeStamp>{timestamp}</TimeStamp>\
         <State><![CDATA[state1]]></State><ExtraInfo></ExtraInfo></xml>"
    )
}

/// `change_auth` / `cancel_auth` XML (spec §3.2).
pub fn auth_change_xml(
    info_type: &str,
    suite_id: &str,
    auth_corpid: &str,
    timestamp: i64,
) -> String {
    format!(
        "<xml><SuiteId><![CDATA[{suite_id}]]></SuiteId><InfoType><![CDATA[{info_type}]]></InfoType>\
         <TimeStamp>{timestamp}</TimeStamp><AuthCorpId><![CDATA[{auth_corpid}]]></AuthCorpId></xml>"
    )
}

/// `reset_permanent_code` XML (spec §3.4).
pub fn reset_permanent_code_xml(suite_id: &str, auth_code: &str, timestamp: i64) -> String {
    format!(
        "<xml><SuiteId><![CDATA[{suite_id}]]></SuiteId><AuthCode><![CDATA[{auth_code}]]></AuthCode>\
         <InfoType><![CDATA[reset_permanent_code]]></InfoType><TimeStamp>{timestamp}</TimeStamp></xml>"
    )
}

/// `msgaudit_notify` XML (spec §3.6).
pub fn msgaudit_notify_xml(corp_id: &str, create_time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <AgentID>2000004</AgentID><Event><![CDATA[msgaudit_notify]]></Event></xml>"
    )
}
