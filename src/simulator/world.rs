//! The simulator's model of WeChat: apps, simulated users, codes, tokens, tickets, quotas,
//! faults and call counters, with the rules WeChat applies to them. Pure logic behind one mutex;
//! the HTTP layer in [`super::routes`] only translates.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What kind of WeChat application a simulated app is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimAppKind {
    MiniProgram,
    OfficialAccount,
    Component,
    Website,
}

/// A component's message settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimComponent {
    /// The message token used in `msg_signature`.
    pub token: String,
    /// The 43-character EncodingAESKey.
    pub encoding_aes_key: String,
    /// Where component_verify_ticket pushes go (`None`: no pushes).
    #[serde(default)]
    pub ticket_push_url: Option<String>,
}

/// A simulated WeChat application.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimApp {
    pub appid: String,
    pub secret: String,
    pub kind: SimAppKind,
    /// The Open Platform account the app is bound to; apps bound to the same one share unionids.
    #[serde(default)]
    pub open_platform: Option<String>,
    /// For an official account managed by a third-party platform.
    #[serde(default)]
    pub component_appid: Option<String>,
    /// For a component.
    #[serde(default)]
    pub component: Option<SimComponent>,
}

/// A simulated WeChat user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimUser {
    pub id: String,
    pub nickname: String,
    #[serde(default)]
    pub avatar_url: String,
    /// Mainland number without country code.
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub sex: i64,
    /// WeChat flags the user as high risk: code exchanges answer 40226.
    #[serde(default)]
    pub blocked: bool,
}

impl SimUser {
    pub fn new(id: &str, nickname: &str) -> Self {
        Self {
            id: id.to_owned(),
            nickname: nickname.to_owned(),
            // A path on the simulator: WeChat's answers carry it as an absolute URL
            // ([`World::avatar_url`]), and the simulator serves the picture itself.
            avatar_url: format!("{AVATAR_PATH}/{id}"),
            phone: String::new(),
            sex: 0,
            blocked: false,
        }
    }
}

/// Faults to inject into the next WeChat API calls (control paths are never affected).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultPlan {
    /// Answer `{"errcode":-1}` to the next N calls.
    #[serde(default)]
    pub busy_next: u32,
    /// Answer HTTP 503 to the next N calls.
    #[serde(default)]
    pub http_error_next: u32,
    /// Never answer (until the client gives up) the next N calls.
    #[serde(default)]
    pub hang_next: u32,
    /// Delay every call by this many milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Apps whose daily quota is used up (45009 on every call).
    #[serde(default)]
    pub quota_exhausted: Vec<String>,
    /// Hold every upstream token fetch (`stable_token`, `token`, the component and authorizer
    /// tokens) unanswered until this is cleared (or `hang_duration` passes); other calls go on.
    #[serde(default)]
    pub hold_token_fetches: bool,
}

/// A verdict `msg_sec_check` gives texts containing `contains` (the first matching rule
/// wins; texts no rule matches pass with label 100).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TextVerdictRule {
    pub contains: String,
    /// `pass`, `review` or `risky`.
    pub suggest: String,
    /// WeChat's label: 100 normal, 10001 advertising, 20001 politics, 20002 porn, 20003 abuse,
    /// 20006 crime, 20008 fraud, 20012 vulgar, 20013 copyright, 21000 other.
    #[serde(default = "default_risk_label")]
    pub label: i64,
}

fn default_risk_label() -> i64 {
    20003
}

/// A WeChat-style error answer (`errcode`, `errmsg`) that a simulated endpoint sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrcodeAnswer {
    pub errcode: i64,
    pub errmsg: String,
}

impl ErrcodeAnswer {
    pub fn new(errcode: i64, errmsg: &str) -> Self {
        Self {
            errcode,
            errmsg: format!("{errmsg} rid: sim-{}", random_alnum(8)),
        }
    }
}

/// A misuse of the simulator's control API (unknown app or user …), for the test or operator
/// driving it; never sent as a WeChat answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ControlError(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CodeKind {
    JsCode,
    Web {
        scope: String,
        component_appid: Option<String>,
    },
    Phone,
    Authorization {
        component_appid: String,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct IssuedCode {
    kind: CodeKind,
    appid: String,
    user_id: String,
    issued_at: i64,
    used: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TokenClass {
    App,
    Component,
    Authorizer,
    Web { user_id: String, scope: String },
}

impl TokenClass {
    fn family(&self) -> &'static str {
        match self {
            TokenClass::App => "app",
            TokenClass::Component => "component",
            TokenClass::Authorizer => "authorizer",
            TokenClass::Web { .. } => "web",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    pub(crate) class: TokenClass,
    pub(crate) appid: String,
    pub(crate) expires_at: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct WebRefresh {
    appid: String,
    user_id: String,
    scope: String,
    component_appid: Option<String>,
    expires_at: i64,
}

/// Tunables of the simulation.
#[derive(Clone, Debug)]
pub struct SimRules {
    pub seed: String,
    pub code_ttl_secs: i64,
    pub token_ttl_secs: i64,
    /// How long a replaced token keeps working.
    pub token_overlap_secs: i64,
    pub ticket_ttl_secs: i64,
    /// Token fetches per app per day before 45009.
    pub daily_token_quota: u32,
    /// Codes contain `+`, `/` and `=` to prove they travel URL-encoded.
    pub awkward_codes: bool,
    pub hang_duration: Duration,
}

impl Default for SimRules {
    fn default() -> Self {
        Self {
            seed: "wxauth-simulator".to_owned(),
            code_ttl_secs: 300,
            token_ttl_secs: 7200,
            token_overlap_secs: 300,
            ticket_ttl_secs: 12 * 3600,
            daily_token_quota: 2000,
            awkward_codes: true,
            hang_duration: Duration::from_secs(120),
        }
    }
}

/// A jsapi_ticket the simulator issued (`simulator::jssdk`).
#[derive(Clone, Debug)]
pub(crate) struct IssuedTicket {
    pub(crate) appid: String,
    pub(crate) expires_at: i64,
}

/// The simulated state of WeChat.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) rules: SimRules,
    pub(crate) apps: BTreeMap<String, SimApp>,
    pub(crate) users: BTreeMap<String, SimUser>,
    codes: HashMap<String, IssuedCode>,
    tokens: HashMap<String, IssuedToken>,
    latest_token: HashMap<(&'static str, String), String>,
    web_refresh: HashMap<String, WebRefresh>,
    authorizer_refresh: HashMap<(String, String), String>,
    tickets: HashMap<String, Vec<(String, i64)>>,
    quota_used: HashMap<(String, i64), u32>,
    /// The session_key of each (mini program, user)'s latest code2Session: what the device
    /// encrypts open data (user info, phone number) with.
    session_keys: HashMap<(String, String), String>,
    /// Issued jsapi_tickets (`cgi-bin/ticket/getticket`, served by `simulator::jssdk`).
    pub(crate) js_tickets: HashMap<String, IssuedTicket>,
    pub(crate) faults: FaultPlan,
    /// What `msg_sec_check` says about texts (see [`TextVerdictRule`]).
    pub(crate) text_verdicts: Vec<TextVerdictRule>,
    pub(crate) counters: BTreeMap<String, u64>,
    /// The simulator's own base URL once it listens (for the demo avatars it serves).
    pub(crate) base_url: Option<String>,
    /// Who follows which official account: (account appid, user id) → the follow.
    pub(crate) followers: HashMap<(String, String), SimFollow>,
    /// Where each official account's messages are pushed (its console's 服务器配置).
    pub(crate) message_endpoints: HashMap<String, SimMessageEndpoint>,
    /// The pages of each Mini Program's released version (what `getwxacodeunlimit` checks
    /// `page` against when `check_path` is true).
    pub(crate) mini_program_pages: HashMap<String, Vec<String>>,
}

/// A user following an official account, as `cgi-bin/user/info` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct SimFollow {
    pub subscribe_time: i64,
    /// `ADD_SCENE_QR_CODE`, `ADD_SCENE_SEARCH`, ….
    pub subscribe_scene: String,
    pub qr_scene: i64,
    pub qr_scene_str: String,
    pub tagid_list: Vec<i64>,
}

/// How an official account's message URL is set in WeChat's console.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimMessageEndpoint {
    pub url: String,
    pub token: String,
    /// Safe mode's key (43 characters); `None`: plain mode.
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
    /// The appid the ciphertext names (the account's, or its component's).
    #[serde(default)]
    pub cipher_appid: Option<String>,
}

/// Where the simulator serves its demo users' avatars (`/__sim/avatar/{user id}`).
pub const AVATAR_PATH: &str = "/__sim/avatar";

pub(crate) fn random_alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    STANDARD.encode(buf)
}

/// The answer of a token fetch.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TokenAnswer {
    pub(crate) token: String,
    pub(crate) expires_in: i64,
}

impl World {
    /// A user's avatar as WeChat hands it out: an absolute URL (one of the simulator's own when
    /// the user has the default avatar and the simulator listens).
    pub(crate) fn avatar_url(&self, user: &SimUser) -> String {
        match (&self.base_url, user.avatar_url.starts_with('/')) {
            (Some(base), true) => format!("{base}{}", user.avatar_url),
            _ => user.avatar_url.clone(),
        }
    }

    pub(crate) fn new(rules: SimRules) -> Self {
        Self {
            rules,
            apps: BTreeMap::new(),
            users: BTreeMap::new(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            latest_token: HashMap::new(),
            web_refresh: HashMap::new(),
            authorizer_refresh: HashMap::new(),
            tickets: HashMap::new(),
            quota_used: HashMap::new(),
            session_keys: HashMap::new(),
            js_tickets: HashMap::new(),
            faults: FaultPlan::default(),
            text_verdicts: Vec::new(),
            counters: BTreeMap::new(),
            base_url: None,
            followers: HashMap::new(),
            message_endpoints: HashMap::new(),
            mini_program_pages: HashMap::new(),
        }
    }

    fn hmac_id(&self, purpose: &str, scope: &str, user_id: &str) -> String {
        let mac = Hmac::<Sha256>::new_from_slice(self.rules.seed.as_bytes())
            .map(|mut mac| {
                mac.update(purpose.as_bytes());
                mac.update(b"\0");
                mac.update(scope.as_bytes());
                mac.update(b"\0");
                mac.update(user_id.as_bytes());
                mac.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default();
        let encoded = URL_SAFE_NO_PAD.encode(mac);
        format!("o{}", &encoded[..27.min(encoded.len())])
    }

    /// The session_key of the user's latest code2Session in mini program `appid`.
    pub(crate) fn session_key(&self, appid: &str, user_id: &str) -> Option<String> {
        self.session_keys
            .get(&(appid.to_owned(), user_id.to_owned()))
            .cloned()
    }

    /// The user's openid in `appid`: deterministic per (seed, app, user).
    pub(crate) fn openid(&self, appid: &str, user_id: &str) -> String {
        self.hmac_id("openid", appid, user_id)
    }

    /// The user's unionid, when `appid` is bound to an Open Platform account.
    pub(crate) fn unionid(&self, appid: &str, user_id: &str) -> Option<String> {
        let platform = self.apps.get(appid)?.open_platform.as_deref()?;
        Some(self.hmac_id("unionid", platform, user_id))
    }

    fn new_code(&self) -> String {
        if self.rules.awkward_codes {
            format!(
                "{}+{}/{}=",
                random_alnum(10),
                random_alnum(10),
                random_alnum(8)
            )
        } else {
            random_alnum(32)
        }
    }

    pub(crate) fn app(&self, appid: &str) -> Result<&SimApp, ErrcodeAnswer> {
        self.apps
            .get(appid)
            .ok_or_else(|| ErrcodeAnswer::new(40013, "invalid appid"))
    }

    /// 40013 for an unknown app, 40125 for a wrong secret, 45009 when its quota is exhausted.
    pub(crate) fn check_secret(&self, appid: &str, secret: &str) -> Result<&SimApp, ErrcodeAnswer> {
        let app = self.app(appid)?;
        if app.secret != secret {
            return Err(ErrcodeAnswer::new(40125, "invalid appsecret"));
        }
        self.check_quota_flag(appid)?;
        Ok(app)
    }

    pub(crate) fn check_quota_flag(&self, appid: &str) -> Result<(), ErrcodeAnswer> {
        if self.faults.quota_exhausted.iter().any(|a| a == appid) {
            return Err(ErrcodeAnswer::new(45009, "reach max api daily quota limit"));
        }
        Ok(())
    }

    fn charge_token_quota(&mut self, appid: &str, now: i64) -> Result<(), ErrcodeAnswer> {
        self.check_quota_flag(appid)?;
        let used = self
            .quota_used
            .entry((appid.to_owned(), now.div_euclid(86400)))
            .or_default();
        if *used >= self.rules.daily_token_quota {
            return Err(ErrcodeAnswer::new(45009, "reach max api daily quota limit"));
        }
        *used += 1;
        Ok(())
    }

    pub(crate) fn mint_code(
        &mut self,
        kind: CodeKind,
        appid: &str,
        user_id: &str,
        now: i64,
    ) -> Result<String, ControlError> {
        if !self.apps.contains_key(appid) {
            return Err(ControlError(format!("unknown app {appid}")));
        }
        if !self.users.contains_key(user_id) {
            return Err(ControlError(format!("unknown user {user_id}")));
        }
        let code = self.new_code();
        self.codes.insert(
            code.clone(),
            IssuedCode {
                kind,
                appid: appid.to_owned(),
                user_id: user_id.to_owned(),
                issued_at: now,
                used: false,
            },
        );
        Ok(code)
    }

    /// Consumes a code: 40029 unknown/expired/wrong app or kind, 40163 already used,
    /// 40226 blocked user.
    pub(crate) fn consume_code(
        &mut self,
        code: &str,
        appid: &str,
        accepts: impl Fn(&CodeKind) -> bool,
        now: i64,
    ) -> Result<IssuedCode, ErrcodeAnswer> {
        let ttl = self.rules.code_ttl_secs;
        let Some(issued) = self.codes.get_mut(code) else {
            return Err(ErrcodeAnswer::new(40029, "invalid code"));
        };
        if issued.appid != appid || !accepts(&issued.kind) {
            return Err(ErrcodeAnswer::new(40029, "invalid code"));
        }
        if issued.used {
            return Err(ErrcodeAnswer::new(40163, "code been used"));
        }
        if now - issued.issued_at > ttl {
            return Err(ErrcodeAnswer::new(40029, "invalid code"));
        }
        issued.used = true;
        let issued = issued.clone();
        if self
            .users
            .get(&issued.user_id)
            .is_some_and(|user| user.blocked)
        {
            return Err(ErrcodeAnswer::new(40226, "risky user"));
        }
        Ok(issued)
    }

    /// Issues a new token; the previous one of the same family keeps working for the overlap.
    fn issue_token(&mut self, class: TokenClass, appid: &str, now: i64) -> TokenAnswer {
        let token = random_b64(96).replace(['+', '/', '='], "_");
        let key = (class.family(), appid.to_owned());
        let shared = !matches!(class, TokenClass::Web { .. });
        if shared
            && let Some(previous) = self.latest_token.get(&key)
            && let Some(previous) = self.tokens.get_mut(previous)
        {
            previous.expires_at = previous.expires_at.min(now + self.rules.token_overlap_secs);
        }
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                class,
                appid: appid.to_owned(),
                expires_at: now + self.rules.token_ttl_secs,
            },
        );
        if shared {
            self.latest_token.insert(key, token.clone());
        }
        TokenAnswer {
            token,
            expires_in: self.rules.token_ttl_secs,
        }
    }

    /// `cgi-bin/token`: always a new token.
    pub(crate) fn app_token(
        &mut self,
        appid: &str,
        secret: &str,
        now: i64,
    ) -> Result<TokenAnswer, ErrcodeAnswer> {
        self.check_secret(appid, secret)?;
        self.charge_token_quota(appid, now)?;
        Ok(self.issue_token(TokenClass::App, appid, now))
    }

    /// `cgi-bin/stable_token`: the current token unless forced or about to expire.
    pub(crate) fn stable_token(
        &mut self,
        appid: &str,
        secret: &str,
        force_refresh: bool,
        now: i64,
    ) -> Result<TokenAnswer, ErrcodeAnswer> {
        self.check_secret(appid, secret)?;
        self.charge_token_quota(appid, now)?;
        if !force_refresh
            && let Some(current) = self.latest_token.get(&("app", appid.to_owned()))
            && let Some(issued) = self.tokens.get(current)
            && issued.expires_at - now > 300
        {
            return Ok(TokenAnswer {
                token: current.clone(),
                expires_in: issued.expires_at - now,
            });
        }
        Ok(self.issue_token(TokenClass::App, appid, now))
    }

    /// Checks a token presented to an API: 41001 missing, 40001 unknown or of another kind,
    /// 42001 expired.
    pub(crate) fn check_token(
        &self,
        token: Option<&str>,
        family: &str,
        now: i64,
    ) -> Result<IssuedToken, ErrcodeAnswer> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ErrcodeAnswer::new(41001, "access_token missing"))?;
        let issued = self
            .tokens
            .get(token)
            .filter(|issued| issued.class.family() == family)
            .ok_or_else(|| {
                ErrcodeAnswer::new(
                    40001,
                    "invalid credential, access_token is invalid or not latest",
                )
            })?;
        if issued.expires_at <= now {
            return Err(ErrcodeAnswer::new(42001, "access_token expired"));
        }
        self.check_quota_flag(&issued.appid)?;
        Ok(issued.clone())
    }

    pub(crate) fn phone_number(
        &mut self,
        access_token: Option<&str>,
        code: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let token = self.check_token(access_token, "app", now)?;
        let issued = self.consume_code(code, &token.appid, |k| *k == CodeKind::Phone, now)?;
        let phone = self
            .users
            .get(&issued.user_id)
            .map(|u| u.phone.clone())
            .unwrap_or_default();
        Ok(serde_json::json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": "86",
                "watermark": { "timestamp": now, "appid": token.appid }
            }
        }))
    }

    /// `wxa/msg_sec_check`: version 2 names the user (an openid of the token's app, 40003
    /// otherwise) and a scene (1 profile, 2 comment, 3 forum, 4 social log; 40097 otherwise) and
    /// answers `result` with the per-strategy `detail` and a `trace_id`; version 1 (the old
    /// form) answers 87014 for risky content and ok otherwise.
    pub(crate) fn msg_sec_check(
        &self,
        access_token: Option<&str>,
        body: &serde_json::Value,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let token = self.check_token(access_token, "app", now)?;
        let content = body
            .get("content")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ErrcodeAnswer::new(47001, "data format error: content missing"))?;
        let rule = self
            .text_verdicts
            .iter()
            .find(|rule| !rule.contains.is_empty() && content.contains(&rule.contains));
        let (suggest, label) = rule
            .map(|rule| (rule.suggest.as_str(), rule.label))
            .unwrap_or(("pass", 100));
        let version = body.get("version").and_then(serde_json::Value::as_i64);
        if version != Some(2) {
            if suggest == "risky" {
                return Err(ErrcodeAnswer::new(87014, "risky content"));
            }
            return Ok(serde_json::json!({ "errcode": 0, "errmsg": "ok" }));
        }
        let openid = body
            .get("openid")
            .and_then(serde_json::Value::as_str)
            .filter(|o| !o.is_empty())
            .ok_or_else(|| ErrcodeAnswer::new(47001, "data format error: openid missing"))?;
        if !self
            .users
            .keys()
            .any(|user| self.openid(&token.appid, user) == openid)
        {
            return Err(ErrcodeAnswer::new(40003, "invalid openid"));
        }
        match body.get("scene").and_then(serde_json::Value::as_i64) {
            Some(1..=4) => {}
            None => {
                return Err(ErrcodeAnswer::new(
                    47001,
                    "data format error: scene missing",
                ));
            }
            Some(_) => return Err(ErrcodeAnswer::new(40097, "invalid args: scene")),
        }
        let mut keyword = serde_json::json!({
            "strategy": "keyword", "errcode": 0, "suggest": "pass", "label": 100
        });
        if let Some(rule) = rule {
            keyword = serde_json::json!({
                "strategy": "keyword", "errcode": 0, "suggest": suggest, "label": label,
                "level": 20, "keyword": rule.contains
            });
        }
        Ok(serde_json::json!({
            "errcode": 0,
            "errmsg": "ok",
            "result": { "suggest": suggest, "label": label },
            "detail": [
                {
                    "strategy": "content_model", "errcode": 0, "suggest": suggest,
                    "label": label, "prob": if rule.is_some() { 90 } else { 0 }
                },
                keyword
            ],
            "trace_id": format!("{:x}-{}", now, random_alnum(8)),
        }))
    }

    pub(crate) fn code_to_session(
        &mut self,
        appid: &str,
        secret: &str,
        js_code: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        self.check_secret(appid, secret)?;
        let issued = self.consume_code(js_code, appid, |k| *k == CodeKind::JsCode, now)?;
        let session_key = random_b64(16);
        self.session_keys.insert(
            (appid.to_owned(), issued.user_id.clone()),
            session_key.clone(),
        );
        let mut answer = serde_json::json!({
            "openid": self.openid(appid, &issued.user_id),
            "session_key": session_key,
        });
        if let Some(unionid) = self.unionid(appid, &issued.user_id) {
            answer["unionid"] = unionid.into();
        }
        Ok(answer)
    }

    fn web_grant(
        &mut self,
        appid: &str,
        user_id: &str,
        scope: &str,
        component_appid: Option<String>,
        now: i64,
    ) -> serde_json::Value {
        let access = self.issue_token(
            TokenClass::Web {
                user_id: user_id.to_owned(),
                scope: scope.to_owned(),
            },
            appid,
            now,
        );
        let refresh_token = random_b64(64).replace(['+', '/', '='], "_");
        self.web_refresh.insert(
            refresh_token.clone(),
            WebRefresh {
                appid: appid.to_owned(),
                user_id: user_id.to_owned(),
                scope: scope.to_owned(),
                component_appid,
                expires_at: now + 30 * 86400,
            },
        );
        let mut answer = serde_json::json!({
            "access_token": access.token,
            "expires_in": access.expires_in,
            "refresh_token": refresh_token,
            "openid": self.openid(appid, user_id),
            "scope": scope,
        });
        if scope == "snsapi_userinfo"
            && let Some(unionid) = self.unionid(appid, user_id)
        {
            answer["unionid"] = unionid.into();
        }
        answer
    }

    /// `sns/oauth2/access_token` with the app's own secret.
    pub(crate) fn web_access_token(
        &mut self,
        appid: &str,
        secret: &str,
        code: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        self.check_secret(appid, secret)?;
        let issued = self.consume_code(
            code,
            appid,
            |k| {
                matches!(
                    k,
                    CodeKind::Web {
                        component_appid: None,
                        ..
                    }
                )
            },
            now,
        )?;
        let CodeKind::Web { scope, .. } = issued.kind else {
            return Err(ErrcodeAnswer::new(40029, "invalid code"));
        };
        Ok(self.web_grant(appid, &issued.user_id, &scope, None, now))
    }

    /// `sns/oauth2/component/access_token`.
    pub(crate) fn component_web_access_token(
        &mut self,
        appid: &str,
        code: &str,
        component_appid: &str,
        component_access_token: Option<&str>,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let token = self.check_token(component_access_token, "component", now)?;
        if token.appid != component_appid {
            return Err(ErrcodeAnswer::new(40001, "invalid credential"));
        }
        let app = self.app(appid)?;
        if app.component_appid.as_deref() != Some(component_appid) {
            return Err(ErrcodeAnswer::new(
                61003,
                "component is not authorized by this account",
            ));
        }
        let issued = self.consume_code(
            code,
            appid,
            |k| matches!(k, CodeKind::Web { component_appid: Some(c), .. } if c == component_appid),
            now,
        )?;
        let CodeKind::Web { scope, .. } = issued.kind else {
            return Err(ErrcodeAnswer::new(40029, "invalid code"));
        };
        Ok(self.web_grant(
            appid,
            &issued.user_id,
            &scope,
            Some(component_appid.to_owned()),
            now,
        ))
    }

    /// `sns/oauth2/refresh_token`.
    pub(crate) fn web_refresh_token(
        &mut self,
        appid: &str,
        refresh_token: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let grant = self
            .web_refresh
            .get(refresh_token)
            .filter(|g| g.appid == appid)
            .cloned()
            .ok_or_else(|| ErrcodeAnswer::new(40030, "invalid refresh_token"))?;
        if grant.expires_at <= now {
            return Err(ErrcodeAnswer::new(42002, "refresh_token expired"));
        }
        let access = self.issue_token(
            TokenClass::Web {
                user_id: grant.user_id.clone(),
                scope: grant.scope.clone(),
            },
            appid,
            now,
        );
        let _ = grant.component_appid;
        Ok(serde_json::json!({
            "access_token": access.token,
            "expires_in": access.expires_in,
            "refresh_token": refresh_token,
            "openid": self.openid(appid, &grant.user_id),
            "scope": grant.scope,
        }))
    }

    /// `sns/userinfo`: needs a web token with `snsapi_userinfo` (official accounts) or
    /// `snsapi_login` (website QR login) for this openid.
    pub(crate) fn web_user_info(
        &self,
        access_token: Option<&str>,
        openid: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let token = self.check_token(access_token, "web", now)?;
        let TokenClass::Web { user_id, scope } = &token.class else {
            return Err(ErrcodeAnswer::new(40001, "invalid credential"));
        };
        if self.openid(&token.appid, user_id) != openid {
            return Err(ErrcodeAnswer::new(40003, "invalid openid"));
        }
        if scope != "snsapi_userinfo" && scope != "snsapi_login" {
            return Err(ErrcodeAnswer::new(48001, "api unauthorized"));
        }
        let user = self
            .users
            .get(user_id)
            .ok_or_else(|| ErrcodeAnswer::new(40003, "invalid openid"))?;
        let mut answer = serde_json::json!({
            "openid": openid,
            "nickname": user.nickname,
            "sex": user.sex,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": self.avatar_url(user),
            "privilege": [],
        });
        if let Some(unionid) = self.unionid(&token.appid, user_id) {
            answer["unionid"] = unionid.into();
        }
        Ok(answer)
    }

    // ---- component ----

    /// Records a freshly pushed ticket.
    pub(crate) fn new_ticket(&mut self, component_appid: &str, now: i64) -> String {
        let ticket = format!("ticket@@@{}", random_alnum(64));
        let ttl = self.rules.ticket_ttl_secs;
        let tickets = self.tickets.entry(component_appid.to_owned()).or_default();
        tickets.retain(|(_, at)| now - at < ttl);
        tickets.push((ticket.clone(), now));
        ticket
    }

    pub(crate) fn current_ticket(&self, component_appid: &str) -> Option<String> {
        self.tickets
            .get(component_appid)
            .and_then(|t| t.last())
            .map(|(ticket, _)| ticket.clone())
    }

    pub(crate) fn component_token(
        &mut self,
        component_appid: &str,
        secret: &str,
        ticket: &str,
        now: i64,
    ) -> Result<TokenAnswer, ErrcodeAnswer> {
        let app = self.check_secret(component_appid, secret)?;
        if app.kind != SimAppKind::Component {
            return Err(ErrcodeAnswer::new(61003, "not a component"));
        }
        let ttl = self.rules.ticket_ttl_secs;
        let valid = self
            .tickets
            .get(component_appid)
            .is_some_and(|t| t.iter().any(|(v, at)| v == ticket && now - at < ttl));
        if !valid {
            return Err(ErrcodeAnswer::new(61006, "component ticket is invalid"));
        }
        self.charge_token_quota(component_appid, now)?;
        Ok(self.issue_token(TokenClass::Component, component_appid, now))
    }

    pub(crate) fn query_auth(
        &mut self,
        component_access_token: Option<&str>,
        component_appid: &str,
        authorization_code: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let token = self.check_token(component_access_token, "component", now)?;
        if token.appid != component_appid {
            return Err(ErrcodeAnswer::new(40001, "invalid credential"));
        }
        let Some(issued) = self.codes.get(authorization_code).cloned() else {
            return Err(ErrcodeAnswer::new(61010, "authorization code is invalid"));
        };
        let authorizer = issued.appid.clone();
        self.consume_code(
            authorization_code,
            &authorizer,
            |k| matches!(k, CodeKind::Authorization { component_appid: c } if c == component_appid),
            now,
        )?;
        let access = self.issue_token(TokenClass::Authorizer, &authorizer, now);
        let refresh = format!("refreshtoken@@@{}", random_alnum(40));
        self.authorizer_refresh.insert(
            (component_appid.to_owned(), authorizer.clone()),
            refresh.clone(),
        );
        Ok(serde_json::json!({
            "authorization_info": {
                "authorizer_appid": authorizer,
                "authorizer_access_token": access.token,
                "expires_in": access.expires_in,
                "authorizer_refresh_token": refresh,
                "func_info": []
            }
        }))
    }

    pub(crate) fn authorizer_token(
        &mut self,
        component_access_token: Option<&str>,
        component_appid: &str,
        authorizer_appid: &str,
        refresh_token: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let token = self.check_token(component_access_token, "component", now)?;
        if token.appid != component_appid {
            return Err(ErrcodeAnswer::new(40001, "invalid credential"));
        }
        let expected = self
            .authorizer_refresh
            .get(&(component_appid.to_owned(), authorizer_appid.to_owned()));
        if expected.map(String::as_str) != Some(refresh_token) {
            return Err(ErrcodeAnswer::new(61023, "refresh_token is invalid"));
        }
        self.charge_token_quota(authorizer_appid, now)?;
        let access = self.issue_token(TokenClass::Authorizer, authorizer_appid, now);
        Ok(serde_json::json!({
            "authorizer_access_token": access.token,
            "expires_in": access.expires_in,
            "authorizer_refresh_token": refresh_token,
        }))
    }

    /// Counts an upstream call and applies the fault plan; `Some` is the faulty answer.
    pub(crate) fn enter_call(&mut self, path: &str, apply_faults: bool) -> CallFault {
        *self.counters.entry(path.to_owned()).or_default() += 1;
        if !apply_faults {
            return CallFault::None(Duration::ZERO);
        }
        let latency = Duration::from_millis(self.faults.latency_ms);
        if self.faults.hang_next > 0 {
            self.faults.hang_next -= 1;
            return CallFault::Hang(self.rules.hang_duration);
        }
        if self.faults.http_error_next > 0 {
            self.faults.http_error_next -= 1;
            return CallFault::HttpError(latency);
        }
        if self.faults.busy_next > 0 {
            self.faults.busy_next -= 1;
            return CallFault::Busy(latency);
        }
        CallFault::None(latency)
    }
}

/// What the fault plan does to one call.
pub(crate) enum CallFault {
    None(Duration),
    Busy(Duration),
    HttpError(Duration),
    Hang(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let mut world = World::new(SimRules {
            awkward_codes: true,
            daily_token_quota: 3,
            ..SimRules::default()
        });
        for (appid, platform) in [
            ("wxa000000000000001", Some("p1")),
            ("wxa000000000000002", None),
        ] {
            world.apps.insert(
                appid.into(),
                SimApp {
                    appid: appid.into(),
                    secret: "s".into(),
                    kind: SimAppKind::MiniProgram,
                    open_platform: platform.map(Into::into),
                    component_appid: None,
                    component: None,
                },
            );
        }
        world.users.insert("u".into(), SimUser::new("u", "U"));
        world.users.insert("v".into(), SimUser::new("v", "V"));
        world
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let w = world();
        assert_eq!(
            w.openid("wxa000000000000001", "u"),
            w.openid("wxa000000000000001", "u")
        );
        assert_ne!(
            w.openid("wxa000000000000001", "u"),
            w.openid("wxa000000000000002", "u")
        );
        assert_ne!(
            w.openid("wxa000000000000001", "u"),
            w.openid("wxa000000000000001", "v")
        );
        assert_eq!(w.openid("wxa000000000000001", "u").len(), 28);
        assert!(w.unionid("wxa000000000000001", "u").is_some());
        assert!(w.unionid("wxa000000000000002", "u").is_none());
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let mut w = world();
        let appid = "wxa000000000000001";
        let code = w.mint_code(CodeKind::JsCode, appid, "u", 1000).unwrap();
        assert!(code.contains('+') && code.contains('/') && code.ends_with('='));
        assert!(w.code_to_session(appid, "s", &code, 1001).is_ok());
        assert_eq!(
            w.code_to_session(appid, "s", &code, 1002)
                .unwrap_err()
                .errcode,
            40163
        );
        let code = w.mint_code(CodeKind::JsCode, appid, "u", 1000).unwrap();
        assert_eq!(
            w.code_to_session(appid, "s", &code, 1301)
                .unwrap_err()
                .errcode,
            40029
        );
        assert_eq!(
            w.code_to_session(appid, "bad", &code, 1000)
                .unwrap_err()
                .errcode,
            40125
        );
    }

    #[test]
    fn new_token_retires_the_old_after_overlap_and_quota_applies() {
        let mut w = world();
        let appid = "wxa000000000000001";
        let first = w.app_token(appid, "s", 0).unwrap().token;
        let second = w.app_token(appid, "s", 10).unwrap().token;
        assert!(w.check_token(Some(&first), "app", 309).is_ok());
        assert_eq!(
            w.check_token(Some(&first), "app", 310).unwrap_err().errcode,
            42001
        );
        assert!(w.check_token(Some(&second), "app", 310).is_ok());
        assert_eq!(
            w.check_token(Some("nope"), "app", 0).unwrap_err().errcode,
            40001
        );
        assert!(w.stable_token(appid, "s", false, 20).is_ok());
        assert_eq!(
            w.stable_token(appid, "s", false, 30).unwrap_err().errcode,
            45009
        );
        assert!(w.stable_token(appid, "s", false, 86400).is_ok());
    }
}
