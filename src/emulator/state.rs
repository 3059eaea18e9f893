//! The emulator's state and request logic, free of HTTP so it stays easy to follow.
//!
//! Behaviour follows spec auth-callback §1 and §4 and spec archive §6. Where the spec is silent
//! the official docs' shape is used and a comment says so.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::clock::Clock;

/// Lifetime of every token the emulator issues, as WeCom documents (7200 s).
pub const TOKEN_LIFETIME_SECS: i64 = 7200;
/// Lifetime of a pre-auth code (doc 90601).
pub const PRE_AUTH_CODE_LIFETIME_SECS: i64 = 1200;

/// A self-built app (or the session-archive secret) known to the emulator.
#[derive(Debug, Clone)]
pub struct CorpApp {
    /// corpid.
    pub corpid: String,
    /// The app's secret.
    pub secret: String,
    /// Whether this is the 会话内容存档 secret (only its tokens may call msgaudit APIs).
    pub archive: bool,
}

/// A third-party suite known to the emulator.
#[derive(Debug, Clone)]
pub struct SuiteApp {
    /// suite_id.
    pub suite_id: String,
    /// suite_secret.
    pub suite_secret: String,
    /// The currently valid suite_ticket.
    pub ticket: String,
}

/// A corp's authorization of a suite.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The suite.
    pub suite_id: String,
    /// The authorizing corp.
    pub auth_corpid: String,
    /// Its permanent code.
    pub permanent_code: String,
}

/// An internal group chat for `msgaudit/groupchat/get` and `check_room_agree`.
#[derive(Debug, Clone)]
pub struct Room {
    /// roomid.
    pub roomid: String,
    /// Name.
    pub roomname: String,
    /// Creator userid.
    pub creator: String,
    /// Member ids (members and external contacts).
    pub members: Vec<String>,
}

/// What the emulator knows: corps, suites, providers, authorizations and archive data.
#[derive(Debug, Clone, Default)]
pub struct EmulatorConfig {
    /// Self-built apps / archive secrets.
    pub corps: Vec<CorpApp>,
    /// Suites.
    pub suites: Vec<SuiteApp>,
    /// Service providers: (corpid, provider_secret).
    pub providers: Vec<(String, String)>,
    /// Authorizations.
    pub authorizations: Vec<Authorization>,
    /// Members with the archive licence: (userid, licence type 1–3).
    pub permit_users: Vec<(String, u8)>,
    /// External contacts that disagreed to archiving (everyone else agreed).
    pub disagreeing: Vec<String>,
    /// Group chats.
    pub rooms: Vec<Room>,
    /// Robots: (robot_id, name, creator_userid).
    pub robots: Vec<(String, String, String)>,
}

impl EmulatorConfig {
    /// Adds a self-built app.
    pub fn corp(mut self, corpid: &str, secret: &str) -> Self {
        self.corps.push(CorpApp {
            corpid: corpid.into(),
            secret: secret.into(),
            archive: false,
        });
        self
    }
    /// Adds a corp's session-archive secret.
    pub fn archive_corp(mut self, corpid: &str, secret: &str) -> Self {
        self.corps.push(CorpApp {
            corpid: corpid.into(),
            secret: secret.into(),
            archive: true,
        });
        self
    }
    /// Adds a suite with its current ticket.
    pub fn suite(mut self, suite_id: &str, suite_secret: &str, ticket: &str) -> Self {
        self.suites.push(SuiteApp {
            suite_id: suite_id.into(),
            suite_secret: suite_secret.into(),
            ticket: ticket.into(),
        });
        self
    }
    /// Adds a service provider.
    pub fn provider(mut self, corpid: &str, secret: &str) -> Self {
        self.providers.push((corpid.into(), secret.into()));
        self
    }
    /// Adds an authorization of `suite_id` by `auth_corpid`.
    pub fn authorization(
        mut self,
        suite_id: &str,
        auth_corpid: &str,
        permanent_code: &str,
    ) -> Self {
        self.authorizations.push(Authorization {
            suite_id: suite_id.into(),
            auth_corpid: auth_corpid.into(),
            permanent_code: permanent_code.into(),
        });
        self
    }
}

/// Token kinds, as WeCom tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Access,
    Suite,
    Provider,
}

#[derive(Debug, Clone)]
struct Issued {
    kind: Kind,
    /// corpid (access, provider) or suite_id (suite).
    owner: String,
    archive: bool,
    expires_at: i64,
}

#[derive(Debug, Clone)]
struct RateLimit {
    max_calls: u64,
    window_secs: i64,
    window_start: i64,
    count: u64,
}

#[derive(Debug, Clone)]
struct OAuthGrant {
    /// corpid (self-built) or suite_id (third-party) the code was issued for.
    app: String,
    corpid: String,
    userid: String,
    privateinfo: bool,
}

#[derive(Debug, Clone)]
struct LoginGrant {
    provider: String,
    corpid: String,
    userid: String,
    usertype: i64,
}

/// The emulator's mutable state.
#[derive(Debug)]
pub struct EmulatorState {
    cfg: EmulatorConfig,
    clock: Arc<dyn Clock>,
    tokens: HashMap<String, Issued>,
    calls: HashMap<String, u64>,
    faults: HashMap<String, VecDeque<i64>>,
    limits: HashMap<String, RateLimit>,
    auth_codes: HashMap<String, (String, String)>,
    pre_auth_codes: HashMap<String, (String, i64)>,
    oauth_codes: HashMap<String, OAuthGrant>,
    user_tickets: HashMap<String, OAuthGrant>,
    login_codes: HashMap<String, LoginGrant>,
    seq: u64,
}

fn err(code: i64, msg: &str) -> Value {
    json!({ "errcode": code, "errmsg": msg })
}

fn ok(mut v: Value) -> Value {
    v["errcode"] = json!(0);
    v["errmsg"] = json!("ok");
    v
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

impl EmulatorState {
    /// A fresh state for `cfg`, on `clock`.
    pub fn new(cfg: EmulatorConfig, clock: Arc<dyn Clock>) -> Self {
        EmulatorState {
            cfg,
            clock,
            tokens: HashMap::new(),
            calls: HashMap::new(),
            faults: HashMap::new(),
            limits: HashMap::new(),
            auth_codes: HashMap::new(),
            pre_auth_codes: HashMap::new(),
            oauth_codes: HashMap::new(),
            user_tickets: HashMap::new(),
            login_codes: HashMap::new(),
            seq: 0,
        }
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{:04}{:08x}", self.seq, rand::random::<u32>())
    }

    fn issue(&mut self, kind: Kind, owner: &str, archive: bool) -> String {
        let prefix = match kind {
            Kind::Access => "emuAT",
            Kind::Suite => "emuST",
            Kind::Provider => "emuPT",
        };
        let token = self.next_id(prefix);
        let expires_at = self.clock.now_unix() + TOKEN_LIFETIME_SECS;
        self.tokens.insert(
            token.clone(),
            Issued {
                kind,
                owner: owner.to_owned(),
                archive,
                expires_at,
            },
        );
        token
    }

    /// Calls received on `path`.
    pub fn calls(&self, path: &str) -> u64 {
        self.calls.get(path).copied().unwrap_or(0)
    }

    /// Calls received in total.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// All call counters.
    pub fn call_counts(&self) -> HashMap<String, u64> {
        self.calls.clone()
    }

    /// Revokes every token early (WeCom may do so "出于运营需要").
    pub fn invalidate_all_tokens(&mut self) {
        self.tokens.clear();
    }

    /// Revokes one token early.
    pub fn invalidate_token(&mut self, token: &str) -> bool {
        self.tokens.remove(token).is_some()
    }

    /// Tokens issued and not revoked (expired ones included).
    pub fn issued_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Makes the next calls to `path` answer with `errcodes`, in order.
    pub fn inject_errcodes(&mut self, path: &str, errcodes: &[i64]) {
        self.faults
            .entry(path.to_owned())
            .or_default()
            .extend(errcodes.iter().copied());
    }

    /// Allows at most `max_calls` calls to `path` per `window_secs`; the rest get 45009.
    pub fn set_rate_limit(&mut self, path: &str, max_calls: u64, window_secs: i64) {
        self.limits.insert(
            path.to_owned(),
            RateLimit {
                max_calls,
                window_secs,
                window_start: self.clock.now_unix(),
                count: 0,
            },
        );
    }

    /// Replaces a suite's current ticket (a new push); the old one stops working.
    pub fn set_suite_ticket(&mut self, suite_id: &str, ticket: &str) {
        if let Some(s) = self.cfg.suites.iter_mut().find(|s| s.suite_id == suite_id) {
            s.ticket = ticket.to_owned();
        }
    }

    /// A single-use install `auth_code` for `auth_corpid` authorizing `suite_id`.
    pub fn issue_auth_code(&mut self, suite_id: &str, auth_corpid: &str) -> String {
        let code = self.next_id("emuAC");
        self.auth_codes
            .insert(code.clone(), (suite_id.to_owned(), auth_corpid.to_owned()));
        code
    }

    /// A single-use OAuth `code` for `userid` of `corpid`, issued to app `app` (the corpid for a
    /// self-built app, the suite_id for a third-party app).
    pub fn issue_oauth_code(
        &mut self,
        app: &str,
        corpid: &str,
        userid: &str,
        privateinfo: bool,
    ) -> String {
        let code = self.next_id("emuOC");
        self.oauth_codes.insert(
            code.clone(),
            OAuthGrant {
                app: app.to_owned(),
                corpid: corpid.to_owned(),
                userid: userid.to_owned(),
                privateinfo,
            },
        );
        code
    }

    /// A single-use QR-login `auth_code` for `provider`.
    pub fn issue_login_code(
        &mut self,
        provider: &str,
        corpid: &str,
        userid: &str,
        usertype: i64,
    ) -> String {
        let code = self.next_id("emuLC");
        self.login_codes.insert(
            code.clone(),
            LoginGrant {
                provider: provider.to_owned(),
                corpid: corpid.to_owned(),
                userid: userid.to_owned(),
                usertype,
            },
        );
        code
    }

    /// Handles one API request. `post` tells the method; `body` is `Null` for GET.
    pub fn handle(
        &mut self,
        post: bool,
        path: &str,
        query: &HashMap<String, String>,
        body: &Value,
    ) -> Value {
        *self.calls.entry(path.to_owned()).or_default() += 1;
        if let Some(code) = self.faults.get_mut(path).and_then(VecDeque::pop_front) {
            return err(code, "injected by the emulator");
        }
        if let Some(resp) = self.rate_limited(path) {
            return resp;
        }
        let q = |k: &str| query.get(k).map(String::as_str);
        match path {
            "/cgi-bin/gettoken" => self.gettoken(q("corpid"), q("corpsecret")),
            "/cgi-bin/service/get_suite_token" => self.get_suite_token(post, body),
            "/cgi-bin/service/get_provider_token" => self.get_provider_token(post, body),
            "/cgi-bin/service/get_corp_token" => self.with_suite(q("suite_access_token"), |st, suite| {
                st.get_corp_token(&suite, body)
            }),
            "/cgi-bin/service/get_pre_auth_code" => {
                self.with_suite(q("suite_access_token"), |st, suite| {
                    let code = st.next_id("emuPA");
                    let exp = st.clock.now_unix() + PRE_AUTH_CODE_LIFETIME_SECS;
                    st.pre_auth_codes.insert(code.clone(), (suite, exp));
                    ok(json!({ "pre_auth_code": code, "expires_in": PRE_AUTH_CODE_LIFETIME_SECS }))
                })
            }
            "/cgi-bin/service/set_session_info" => {
                self.with_suite(q("suite_access_token"), |st, suite| {
                    let now = st.clock.now_unix();
                    match st.pre_auth_codes.get(s(body, "pre_auth_code")) {
                        Some((sid, exp)) if *sid == suite && now < *exp => ok(json!({})),
                        // 42007: pre_auth_code expired (spec §1.11); also used for unknown codes.
                        _ => err(42007, "pre_auth_code expired or invalid"),
                    }
                })
            }
            "/cgi-bin/service/get_permanent_code" => {
                self.with_suite(q("suite_access_token"), |st, suite| {
                    st.get_permanent_code(&suite, body, false)
                })
            }
            "/cgi-bin/service/v2/get_permanent_code" => {
                self.with_suite(q("suite_access_token"), |st, suite| {
                    st.get_permanent_code(&suite, body, true)
                })
            }
            "/cgi-bin/service/get_auth_info" => self.with_suite(q("suite_access_token"), |st, suite| {
                match st.find_authorization(&suite, s(body, "auth_corpid"), s(body, "permanent_code")) {
                    Some(a) => ok(json!({
                        "auth_corp_info": { "corpid": a.auth_corpid, "corp_name": format!("corp {}", a.auth_corpid) },
                        "auth_info": { "agent": [{ "agentid": 1000002, "name": "archive app", "auth_mode": 0 }] },
                    })),
                    None => err(40084, "invalid permanent_code"),
                }
            }),
            "/cgi-bin/service/get_login_info" => self.get_login_info(q("access_token"), body),
            "/cgi-bin/service/auth/getuserinfo3rd" => {
                self.with_suite(q("suite_access_token"), |st, suite| st.getuserinfo(&suite, q("code"), true))
            }
            "/cgi-bin/service/auth/getuserdetail3rd" => {
                self.with_suite(q("suite_access_token"), |st, suite| st.getuserdetail(&suite, body, true))
            }
            "/cgi-bin/auth/getuserinfo" => self.with_access(q("access_token"), false, |st, corp| {
                st.getuserinfo(&corp, q("code"), false)
            }),
            "/cgi-bin/auth/getuserdetail" => self.with_access(q("access_token"), false, |st, corp| {
                st.getuserdetail(&corp, body, false)
            }),
            p if p.starts_with("/cgi-bin/msgaudit/") => {
                let p = p.to_owned();
                self.with_access(q("access_token"), true, |st, _corp| st.msgaudit(&p, q("robot_id"), body))
            }
            // Unknown path: WeCom answers 404 pages; a JSON error keeps tests readable.
            _ => err(40058, "emulator: unknown API path"),
        }
    }

    fn rate_limited(&mut self, path: &str) -> Option<Value> {
        let now = self.clock.now_unix();
        let l = self.limits.get_mut(path)?;
        if now >= l.window_start + l.window_secs {
            l.window_start = now;
            l.count = 0;
        }
        l.count += 1;
        (l.count > l.max_calls).then(|| err(45009, "api freq out of limit"))
    }

    fn gettoken(&mut self, corpid: Option<&str>, secret: Option<&str>) -> Value {
        let corpid = corpid.unwrap_or("");
        let apps: Vec<&CorpApp> = self
            .cfg
            .corps
            .iter()
            .filter(|c| c.corpid == corpid)
            .collect();
        if apps.is_empty() {
            return err(40013, "invalid corpid");
        }
        let Some(app) = apps.iter().find(|c| Some(c.secret.as_str()) == secret) else {
            return err(40001, "invalid credential");
        };
        let (owner, archive) = (app.corpid.clone(), app.archive);
        let token = self.issue(Kind::Access, &owner, archive);
        ok(json!({ "access_token": token, "expires_in": TOKEN_LIFETIME_SECS }))
    }

    fn get_suite_token(&mut self, post: bool, body: &Value) -> Value {
        // A GET drops the body, which WeCom reports as 40083 (community answer, spec §1.2).
        if !post {
            return err(40083, "invalid suite_id");
        }
        let Some(suite) = self
            .cfg
            .suites
            .iter()
            .find(|x| x.suite_id == s(body, "suite_id"))
        else {
            return err(40083, "invalid suite_id");
        };
        // Spec silent on a wrong suite_secret; the docs' global table gives 40001 (bad secret).
        if suite.suite_secret != s(body, "suite_secret") {
            return err(40001, "invalid credential");
        }
        if suite.ticket != s(body, "suite_ticket") {
            return err(40085, "invalid suite_ticket");
        }
        let id = suite.suite_id.clone();
        let token = self.issue(Kind::Suite, &id, false);
        // Success carries no errcode ("该接口在调用失败时才返回errcode").
        json!({ "suite_access_token": token, "expires_in": TOKEN_LIFETIME_SECS })
    }

    fn get_provider_token(&mut self, post: bool, body: &Value) -> Value {
        if !post {
            return err(40013, "invalid corpid");
        }
        let corpid = s(body, "corpid");
        let Some((_, secret)) = self.cfg.providers.iter().find(|(c, _)| c == corpid) else {
            return err(40013, "invalid corpid");
        };
        if secret != s(body, "provider_secret") {
            return err(40001, "invalid credential");
        }
        let corpid = corpid.to_owned();
        let token = self.issue(Kind::Provider, &corpid, false);
        // Documented success shape has no errcode.
        json!({ "provider_access_token": token, "expires_in": TOKEN_LIFETIME_SECS })
    }

    fn find_authorization(&self, suite: &str, corp: &str, code: &str) -> Option<&Authorization> {
        self.cfg
            .authorizations
            .iter()
            .find(|a| a.suite_id == suite && a.auth_corpid == corp && a.permanent_code == code)
    }

    fn get_corp_token(&mut self, suite: &str, body: &Value) -> Value {
        let Some(a) =
            self.find_authorization(suite, s(body, "auth_corpid"), s(body, "permanent_code"))
        else {
            return err(40084, "invalid permanent_code");
        };
        let corp = a.auth_corpid.clone();
        let token = self.issue(Kind::Access, &corp, false);
        // Success carries no errcode (doc 90605 quirk).
        json!({ "access_token": token, "expires_in": TOKEN_LIFETIME_SECS })
    }

    fn get_permanent_code(&mut self, suite: &str, body: &Value, v2: bool) -> Value {
        let code = s(body, "auth_code");
        // Single use: a second exchange gets 40078 (spec §1.7).
        let Some((sid, corp)) = self.auth_codes.remove(code) else {
            return err(40078, "invalid auth_code");
        };
        if sid != suite {
            return err(40078, "invalid auth_code");
        }
        let existing = self
            .cfg
            .authorizations
            .iter()
            .find(|a| a.suite_id == suite && a.auth_corpid == corp)
            .map(|a| a.permanent_code.clone());
        let permanent_code = match existing {
            Some(c) => c,
            None => {
                let c = self.next_id("emuPC");
                self.cfg.authorizations.push(Authorization {
                    suite_id: suite.to_owned(),
                    auth_corpid: corp.clone(),
                    permanent_code: c.clone(),
                });
                c
            }
        };
        let corp_info = json!({ "corpid": corp, "corp_name": format!("corp {corp}") });
        let user = json!({ "userid": "admin", "open_userid": "woAdmin", "name": "admin" });
        if v2 {
            return ok(json!({
                "permanent_code": permanent_code,
                "auth_corp_info": corp_info,
                "auth_user_info": user,
            }));
        }
        let token = self.issue(Kind::Access, &corp, false);
        ok(json!({
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_SECS,
            "permanent_code": permanent_code,
            "auth_corp_info": corp_info,
            "auth_info": { "agent": [{ "agentid": 1000002, "name": "archive app", "auth_mode": 0 }] },
            "auth_user_info": user,
        }))
    }

    /// Checks a suite_access_token: 40082 when unknown or of another kind, 42009 when expired.
    fn with_suite(
        &mut self,
        token: Option<&str>,
        f: impl FnOnce(&mut Self, String) -> Value,
    ) -> Value {
        let Some(token) = token else {
            return err(41001, "access_token missing");
        };
        match self.tokens.get(token) {
            Some(t) if t.kind == Kind::Suite => {
                if self.clock.now_unix() >= t.expires_at {
                    return err(42009, "suite_access_token expired");
                }
                let owner = t.owner.clone();
                f(self, owner)
            }
            _ => err(40082, "invalid suite_access_token"),
        }
    }

    /// Checks an access_token: 40014 when unknown or of another kind, 42001 when expired, and
    /// for msgaudit APIs 48002 unless it comes from the archive secret.
    fn with_access(
        &mut self,
        token: Option<&str>,
        archive_only: bool,
        f: impl FnOnce(&mut Self, String) -> Value,
    ) -> Value {
        let Some(token) = token else {
            return err(41001, "access_token missing");
        };
        match self.tokens.get(token) {
            Some(t) if t.kind == Kind::Access => {
                if self.clock.now_unix() >= t.expires_at {
                    return err(42001, "access_token expired");
                }
                if archive_only && !t.archive {
                    return err(48002, "api forbidden");
                }
                let owner = t.owner.clone();
                f(self, owner)
            }
            _ => err(40014, "invalid access_token"),
        }
    }

    fn getuserinfo(&mut self, app: &str, code: Option<&str>, third_party: bool) -> Value {
        let Some(grant) = code.and_then(|c| self.oauth_codes.remove(c)) else {
            return err(40029, "invalid code");
        };
        if grant.app != app {
            return err(40029, "invalid code");
        }
        let mut v = json!({ "userid": grant.userid });
        if third_party {
            v["corpid"] = json!(grant.corpid);
            v["open_userid"] = json!(format!("wo{}", grant.userid));
        }
        if grant.privateinfo {
            let ticket = self.next_id("emuUT");
            v["user_ticket"] = json!(ticket);
            v["expires_in"] = json!(1800);
            self.user_tickets.insert(ticket, grant);
        }
        ok(v)
    }

    fn getuserdetail(&mut self, app: &str, body: &Value, third_party: bool) -> Value {
        match self.user_tickets.get(s(body, "user_ticket")) {
            Some(g) if g.app == app => {
                let mut v = json!({
                    "userid": g.userid,
                    "gender": "1",
                    "avatar": "http://wework.qpic.cn/emulator/avatar",
                    "qr_code": "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=emulator",
                });
                if third_party {
                    v["corpid"] = json!(g.corpid);
                    v["name"] = json!(g.userid);
                } else {
                    v["mobile"] = json!("13800000000");
                    v["email"] = json!(format!("{}@example.com", g.userid));
                }
                ok(v)
            }
            // 84015: user_ticket invalid (spec §1.11).
            _ => err(84015, "invalid user_ticket"),
        }
    }

    fn get_login_info(&mut self, token: Option<&str>, body: &Value) -> Value {
        // Only a provider_access_token is accepted (WxJava PR#2253: another kind fails).
        let owner = match token.and_then(|t| self.tokens.get(t)) {
            Some(t) if t.kind == Kind::Provider => {
                if self.clock.now_unix() >= t.expires_at {
                    // Spec silent on the provider token's expiry code; 42001 is the generic one.
                    return err(42001, "provider_access_token expired");
                }
                t.owner.clone()
            }
            _ => {
                return err(
                    40082,
                    "invalid suite_acccess_token or provider_access_token",
                )
            }
        };
        match self.login_codes.remove(s(body, "auth_code")) {
            Some(g) if g.provider == owner => ok(json!({
                "usertype": g.usertype,
                "user_info": { "userid": g.userid, "open_userid": format!("wo{}", g.userid), "name": g.userid },
                "corp_info": { "corpid": g.corpid },
                "agent": [],
                "auth_info": { "department": [] },
            })),
            _ => err(40029, "invalid code"),
        }
    }

    fn msgaudit(&mut self, path: &str, robot_id: Option<&str>, body: &Value) -> Value {
        let agree_status = |ext: &str, cfg: &EmulatorConfig| {
            if cfg.disagreeing.iter().any(|d| d == ext) {
                "Disagree"
            } else {
                "Agree"
            }
        };
        match path {
            "/cgi-bin/msgaudit/get_permit_user_list" => {
                let kind = body.get("type").and_then(Value::as_u64);
                let ids: Vec<&str> = self
                    .cfg
                    .permit_users
                    .iter()
                    .filter(|(_, t)| match kind {
                        Some(k) => u64::from(*t) == k,
                        None => true,
                    })
                    .map(|(u, _)| u.as_str())
                    .collect();
                ok(json!({ "ids": ids }))
            }
            "/cgi-bin/msgaudit/check_single_agree" => {
                let info = body
                    .get("info")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let agreeinfo: Vec<Value> = info
                    .iter()
                    .map(|i| {
                        let ext = s(i, "exteranalopenid");
                        json!({
                            "status_change_time": 1_562_766_651,
                            "userid": s(i, "userid"),
                            "exteranalopenid": ext,
                            "agree_status": agree_status(ext, &self.cfg),
                        })
                    })
                    .collect();
                ok(json!({ "agreeinfo": agreeinfo }))
            }
            "/cgi-bin/msgaudit/check_room_agree" => match self
                .cfg
                .rooms
                .iter()
                .find(|r| r.roomid == s(body, "roomid"))
            {
                Some(room) => {
                    let agreeinfo: Vec<Value> = room
                        .members
                        .iter()
                        .filter(|m| m.starts_with("wm") || m.starts_with("wo"))
                        .map(|m| {
                            json!({
                                "status_change_time": 1_562_766_651,
                                "exteranalopenid": m,
                                "agree_status": agree_status(m, &self.cfg),
                            })
                        })
                        .collect();
                    ok(json!({ "agreeinfo": agreeinfo }))
                }
                // Spec silent on an unknown roomid; 40050 is the docs' "chatid不存在".
                None => err(40050, "chatid not found"),
            },
            "/cgi-bin/msgaudit/groupchat/get" => match self
                .cfg
                .rooms
                .iter()
                .find(|r| r.roomid == s(body, "roomid"))
            {
                Some(room) => ok(json!({
                    "roomname": room.roomname,
                    "creator": room.creator,
                    "room_create_time": 1_592_361_604,
                    "notice": "",
                    "members": room.members.iter().map(|m| json!({ "memberid": m, "jointime": 1_592_361_605 })).collect::<Vec<_>>(),
                })),
                None => err(40050, "chatid not found"),
            },
            "/cgi-bin/msgaudit/get_robot_info" => {
                match self
                    .cfg
                    .robots
                    .iter()
                    .find(|(id, _, _)| Some(id.as_str()) == robot_id)
                {
                    Some((id, name, creator)) => ok(json!({
                        "data": { "robot_id": id, "name": name, "creator_userid": creator }
                    })),
                    // Spec silent; 40003-style "invalid parameter" in the docs' global table.
                    None => err(40058, "invalid robot_id"),
                }
            }
            _ => err(40058, "emulator: unknown msgaudit API"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn state() -> (EmulatorState, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let cfg = EmulatorConfig::default()
            .archive_corp("wwcorp", "archive-secret")
            .corp("wwcorp", "app-secret");
        (EmulatorState::new(cfg, clock.clone()), clock)
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn gettoken_errcodes_and_expiry() {
        let (mut st, clock) = state();
        let r = st.handle(
            false,
            "/cgi-bin/gettoken",
            &q(&[("corpid", "wwnope"), ("corpsecret", "x")]),
            &Value::Null,
        );
        assert_eq!(r["errcode"], 40013);
        let r = st.handle(
            false,
            "/cgi-bin/gettoken",
            &q(&[("corpid", "wwcorp"), ("corpsecret", "x")]),
            &Value::Null,
        );
        assert_eq!(r["errcode"], 40001);
        let r = st.handle(
            false,
            "/cgi-bin/gettoken",
            &q(&[("corpid", "wwcorp"), ("corpsecret", "app-secret")]),
            &Value::Null,
        );
        assert_eq!(r["expires_in"], 7200);
        let tok = r["access_token"].as_str().unwrap().to_owned();
        let path = "/cgi-bin/msgaudit/get_permit_user_list";
        // An ordinary app secret's token may not call msgaudit APIs.
        let r = st.handle(true, path, &q(&[("access_token", &tok)]), &json!({}));
        assert_eq!(r["errcode"], 48002);
        let r = st.handle(
            false,
            "/cgi-bin/gettoken",
            &q(&[("corpid", "wwcorp"), ("corpsecret", "archive-secret")]),
            &Value::Null,
        );
        let tok = r["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            st.handle(true, path, &q(&[("access_token", &tok)]), &json!({}))["errcode"],
            0
        );
        clock.advance(TOKEN_LIFETIME_SECS);
        assert_eq!(
            st.handle(true, path, &q(&[("access_token", &tok)]), &json!({}))["errcode"],
            42001
        );
        assert_eq!(
            st.handle(true, path, &q(&[("access_token", "bogus")]), &json!({}))["errcode"],
            40014
        );
        assert_eq!(st.calls(path), 4);
        assert_eq!(st.calls("/cgi-bin/gettoken"), 4);
    }

    #[test]
    fn rate_limit_window() {
        let (mut st, clock) = state();
        st.set_rate_limit("/cgi-bin/gettoken", 1, 60);
        let query = q(&[("corpid", "wwcorp"), ("corpsecret", "app-secret")]);
        assert_eq!(
            st.handle(false, "/cgi-bin/gettoken", &query, &Value::Null)["errcode"],
            0
        );
        assert_eq!(
            st.handle(false, "/cgi-bin/gettoken", &query, &Value::Null)["errcode"],
            45009
        );
        clock.advance(60);
        assert_eq!(
            st.handle(false, "/cgi-bin/gettoken", &query, &Value::Null)["errcode"],
            0
        );
    }
}
