//! A faithful simulator of WeChat's servers (api.weixin.qq.com and open.weixin.qq.com), for the
//! test suite, `wxauth dev` and `wxauth simulator --listen ADDR`.
//!
//! It answers the same paths and JSON shapes as WeChat for every call the adapter makes, and
//! applies WeChat's rules (and content security verdicts tests choose): deterministic openids per app and unionids per Open Platform account,
//! secrets checked (40125), single-use (40163) codes that expire after 5 minutes (40029),
//! `snsapi_base` without unionid, tokens that retire 5 minutes after a refetch, daily quotas
//! (45009), and encrypted, signed component_verify_ticket pushes every 10 minutes.
//!
//! Tests drive it either in-process through [`Simulator`] or over HTTP through the control API
//! under `/__sim/` (mint codes, add users, inject faults, read call counters, move the clock).
//! The control API is unauthenticated: the simulator is a development tool, never expose it.
//!
//! - [`world`]: the model and its rules; [`routes`]: the HTTP surface; [`jssdk`]: the JS-SDK's
//!   `getticket` and the checks that tell tests whether a credential or a `wx.config` is real;
//!   [`demo`]: the demo apps and users `wxauth dev` registers on both sides; [`followers`]:
//!   Official Account followers (`cgi-bin/user/info`, event pushes to a message URL);
//!   [`wxacode`]: Mini Program codes (`wxa/getwxacodeunlimit`, and "scanning" one).

pub mod demo;
pub mod followers;
pub mod jssdk;
pub mod routes;
pub mod world;
pub mod wxacode;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::clock::{Clock, ManualClock};
use crate::wechat::crypto::MessageCrypt;

use world::{CodeKind, World};
pub use world::{ControlError, FaultPlan, SimApp, SimAppKind, SimComponent, SimRules, SimUser};

/// Open data as a Mini Program page receives it from WeChat's client (`wx.getUserInfo`, the
/// older `getPhoneNumber`), field names as in WeChat's JS API.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MiniProgramOpenData {
    pub encrypted_data: String,
    pub iv: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// How to run a simulator.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    pub rules: SimRules,
    /// Apps registered at start.
    pub apps: Vec<SimApp>,
    /// Users registered at start.
    pub users: Vec<SimUser>,
    /// Interval between component_verify_ticket pushes (WeChat: 10 minutes).
    pub ticket_push_interval: Duration,
    /// Pause before retrying a push that failed (e.g. the receiver is not up yet).
    pub ticket_push_retry: Duration,
}

impl Default for SimulatorConfig {
    /// No apps, no users, WeChat's rules.
    fn default() -> Self {
        Self {
            rules: SimRules::default(),
            apps: Vec::new(),
            users: Vec::new(),
            ticket_push_interval: Duration::from_secs(600),
            ticket_push_retry: Duration::from_secs(5),
        }
    }
}

impl SimulatorConfig {
    /// The demo apps and users of [`demo`], pushing tickets to `ticket_push_url` if given.
    pub fn demo(ticket_push_url: Option<String>) -> Self {
        Self {
            apps: demo::apps(ticket_push_url),
            users: demo::users(),
            ..Self::default()
        }
    }
}

pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    pub(crate) clock: ManualClock,
    pub(crate) push_client: reqwest::Client,
    pub(crate) config: SimulatorConfig,
}

/// A running (or ready to run) simulator; cheap to clone, all clones share one world.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Self {
        let mut world = World::new(config.rules.clone());
        for app in &config.apps {
            world.apps.insert(app.appid.clone(), app.clone());
        }
        for user in &config.users {
            world.users.insert(user.id.clone(), user.clone());
        }
        let push_client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            shared: Arc::new(Shared {
                world: Mutex::new(world),
                clock: ManualClock::default(),
                push_client,
                config,
            }),
        }
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock cannot leave the world half-updated in a way that
        // matters to a test double; keep serving.
        self.shared
            .world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The axum app: WeChat's API and authorize pages plus the `/__sim/` control API.
    pub fn router(&self) -> Router {
        routes::router(self.clone())
    }

    /// Serves on `listener` until the task is dropped or aborted.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Binds `addr` (e.g. `127.0.0.1:0`), serves in the background, returns the bound address.
    pub async fn spawn(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        // Browsers reach an unspecified listen address (0.0.0.0) by loopback.
        let named = if bound.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
        } else {
            bound
        };
        self.world().base_url = Some(format!("http://{named}"));
        let this = self.clone();
        let handle = tokio::spawn(async move {
            if let Err(error) = this.serve(listener).await {
                tracing::error!(%error, "simulator stopped");
            }
        });
        Ok((bound, handle))
    }

    /// The simulator's "now" (unix seconds), which [`Simulator::advance_clock`] moves.
    pub fn now(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Moves the simulated clock forward (codes and tokens expire accordingly).
    pub fn advance_clock(&self, secs: i64) {
        self.shared.clock.advance(secs);
    }

    pub fn register_app(&self, app: SimApp) {
        self.world().apps.insert(app.appid.clone(), app);
    }

    pub fn apps(&self) -> Vec<SimApp> {
        self.world().apps.values().cloned().collect()
    }

    pub fn add_user(&self, user: SimUser) {
        self.world().users.insert(user.id.clone(), user);
    }

    pub fn users(&self) -> Vec<SimUser> {
        self.world().users.values().cloned().collect()
    }

    /// The user's openid in `appid`.
    pub fn openid(&self, appid: &str, user_id: &str) -> String {
        self.world().openid(appid, user_id)
    }

    /// The user's unionid as seen through `appid` (None when the app has no Open Platform).
    pub fn unionid(&self, appid: &str, user_id: &str) -> Option<String> {
        self.world().unionid(appid, user_id)
    }

    /// What `wx.login()` gives user `user_id` in mini program `appid`.
    pub fn mint_js_code(&self, appid: &str, user_id: &str) -> Result<String, ControlError> {
        let now = self.now();
        self.world()
            .mint_code(CodeKind::JsCode, appid, user_id, now)
    }

    /// A web-auth code as the authorize page would give it (`scope` = `snsapi_base`,
    /// `snsapi_userinfo` or `snsapi_login`).
    pub fn mint_web_code(
        &self,
        appid: &str,
        user_id: &str,
        scope: &str,
        component_appid: Option<&str>,
    ) -> Result<String, ControlError> {
        let now = self.now();
        self.world().mint_code(
            CodeKind::Web {
                scope: scope.to_owned(),
                component_appid: component_appid.map(str::to_owned),
            },
            appid,
            user_id,
            now,
        )
    }

    /// What the `getPhoneNumber` button gives user `user_id` in mini program `appid`.
    pub fn mint_phone_code(&self, appid: &str, user_id: &str) -> Result<String, ControlError> {
        let now = self.now();
        self.world().mint_code(CodeKind::Phone, appid, user_id, now)
    }

    /// The session_key of the user's latest code2Session in mini program `appid` (for tests that
    /// check it never leaks).
    pub fn session_key(&self, appid: &str, user_id: &str) -> Option<String> {
        self.world().session_key(appid, user_id)
    }

    /// What `wx.getUserInfo` hands a Mini Program page: the user's profile (with watermark and,
    /// when the app has an Open Platform, unionId) encrypted with the session_key of the user's
    /// latest code2Session, plus `rawData` and `signature = sha1(rawData + session_key)`.
    pub fn mini_program_user_info(
        &self,
        appid: &str,
        user_id: &str,
    ) -> Result<MiniProgramOpenData, ControlError> {
        let now = self.now();
        let world = self.world();
        let (session_key, user) = Self::device_session(&world, appid, user_id)?;
        let profile = serde_json::json!({
            "nickName": user.nickname,
            "gender": user.sex,
            "language": "zh_CN",
            "city": "Guangzhou",
            "province": "Guangdong",
            "country": "China",
            "avatarUrl": world.avatar_url(&user),
        });
        let mut full = profile.clone();
        full["openId"] = world.openid(appid, user_id).into();
        if let Some(unionid) = world.unionid(appid, user_id) {
            full["unionId"] = unionid.into();
        }
        full["watermark"] = serde_json::json!({ "timestamp": now, "appid": appid });
        let raw_data = profile.to_string();
        let signature = crate::wechat::crypto::raw_data_signature(
            &raw_data,
            &crate::wechat::SessionKey::new(session_key.as_str()),
        );
        let (encrypted_data, iv) = Self::encrypt_open_data(&session_key, &full)?;
        Ok(MiniProgramOpenData {
            encrypted_data,
            iv,
            raw_data: Some(raw_data),
            signature: Some(signature),
        })
    }

    /// What the older `getPhoneNumber` button hands a Mini Program page: the phone number
    /// encrypted with the session_key of the user's latest code2Session.
    pub fn mini_program_phone_data(
        &self,
        appid: &str,
        user_id: &str,
    ) -> Result<MiniProgramOpenData, ControlError> {
        let now = self.now();
        let world = self.world();
        let (session_key, user) = Self::device_session(&world, appid, user_id)?;
        let plain = serde_json::json!({
            "phoneNumber": user.phone,
            "purePhoneNumber": user.phone,
            "countryCode": "86",
            "watermark": { "timestamp": now, "appid": appid },
        });
        let (encrypted_data, iv) = Self::encrypt_open_data(&session_key, &plain)?;
        Ok(MiniProgramOpenData {
            encrypted_data,
            iv,
            raw_data: None,
            signature: None,
        })
    }

    fn device_session(
        world: &World,
        appid: &str,
        user_id: &str,
    ) -> Result<(String, SimUser), ControlError> {
        let user = world
            .users
            .get(user_id)
            .cloned()
            .ok_or_else(|| ControlError(format!("unknown user {user_id}")))?;
        let session_key = world.session_key(appid, user_id).ok_or_else(|| {
            ControlError(format!(
                "{user_id} has no session in {appid}: exchange a wx.login code first"
            ))
        })?;
        Ok((session_key, user))
    }

    fn encrypt_open_data(
        session_key: &str,
        plain: &serde_json::Value,
    ) -> Result<(String, String), ControlError> {
        use base64::Engine;
        use rand::Rng;
        let iv: [u8; 16] = rand::thread_rng().r#gen();
        let encrypted = crate::wechat::crypto::encrypt_mini_program_data(
            &crate::wechat::SessionKey::new(session_key),
            &plain.to_string(),
            &iv,
        )
        .map_err(|e| ControlError(e.to_string()))?;
        Ok((
            encrypted,
            base64::engine::general_purpose::STANDARD.encode(iv),
        ))
    }

    /// An authorizer account consents to a component: returns the authorization code for
    /// `api_query_auth`.
    pub fn authorize_component(
        &self,
        component_appid: &str,
        authorizer_appid: &str,
    ) -> Result<String, ControlError> {
        let now = self.now();
        let mut world = self.world();
        if !world.apps.contains_key(component_appid) {
            return Err(ControlError(format!("unknown component {component_appid}")));
        }
        let user = world
            .users
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| ControlError("add a user first".to_owned()))?;
        world.mint_code(
            CodeKind::Authorization {
                component_appid: component_appid.to_owned(),
            },
            authorizer_appid,
            &user,
            now,
        )
    }

    /// What `msg_sec_check` says from now on: the first rule whose `contains` the text
    /// contains decides; other texts pass.
    pub fn set_text_verdicts(&self, rules: Vec<world::TextVerdictRule>) {
        self.world().text_verdicts = rules;
    }

    /// Add one rule in front of the others: texts containing `contains` get `suggest`
    /// (`pass`, `review` or `risky`) with `label`.
    pub fn set_text_verdict(&self, contains: &str, suggest: &str, label: i64) {
        self.world().text_verdicts.insert(
            0,
            world::TextVerdictRule {
                contains: contains.to_owned(),
                suggest: suggest.to_owned(),
                label,
            },
        );
    }

    pub fn text_verdicts(&self) -> Vec<world::TextVerdictRule> {
        self.world().text_verdicts.clone()
    }

    /// Replaces the fault plan.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.world().faults = plan;
    }

    pub fn faults(&self) -> FaultPlan {
        self.world().faults.clone()
    }

    pub fn clear_faults(&self) {
        self.set_faults(FaultPlan::default());
    }

    /// Answer errcode -1 to the next `n` calls.
    pub fn fail_busy(&self, n: u32) {
        self.world().faults.busy_next = n;
    }

    /// Answer HTTP 503 to the next `n` calls.
    pub fn fail_http(&self, n: u32) {
        self.world().faults.http_error_next = n;
    }

    /// Hold every upstream token fetch unanswered until [`Simulator::release_token_fetches`].
    pub fn hold_token_fetches(&self) {
        self.world().faults.hold_token_fetches = true;
    }

    /// Let held token fetches (and later ones) through.
    pub fn release_token_fetches(&self) {
        self.world().faults.hold_token_fetches = false;
    }

    /// Never answer the next `n` calls.
    pub fn hang(&self, n: u32) {
        self.world().faults.hang_next = n;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.world().faults.latency_ms = latency.as_millis() as u64;
    }

    /// Every call for `appid` answers 45009 until [`Simulator::clear_faults`].
    pub fn exhaust_quota(&self, appid: &str) {
        self.world().faults.quota_exhausted.push(appid.to_owned());
    }

    /// Upstream calls per path (e.g. `/cgi-bin/stable_token`), faulty ones included.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.world().counters.clone()
    }

    /// Calls so far to `path`.
    pub fn calls(&self, path: &str) -> u64 {
        self.world().counters.get(path).copied().unwrap_or(0)
    }

    pub fn reset_counters(&self) {
        self.world().counters.clear();
    }

    /// The last ticket pushed for `component_appid`.
    pub fn current_component_ticket(&self, component_appid: &str) -> Option<String> {
        self.world().current_ticket(component_appid)
    }

    /// Issues a new component_verify_ticket without pushing it (tests store it directly).
    pub fn issue_component_ticket(&self, component_appid: &str) -> String {
        let now = self.now();
        self.world().new_ticket(component_appid, now)
    }

    /// Issues a new ticket and pushes it, encrypted and signed, to the component's push URL.
    pub async fn push_component_ticket(
        &self,
        component_appid: &str,
    ) -> Result<String, ControlError> {
        let now = self.now();
        let (component, url, ticket) = {
            let mut world = self.world();
            let component = world
                .apps
                .get(component_appid)
                .and_then(|app| app.component.clone())
                .ok_or_else(|| ControlError(format!("{component_appid} is not a component")))?;
            let url = component
                .ticket_push_url
                .clone()
                .ok_or_else(|| ControlError(format!("{component_appid} has no ticket push URL")))?;
            let ticket = world.new_ticket(component_appid, now);
            (component, url, ticket)
        };
        let crypt = MessageCrypt::new(
            &component.token,
            &component.encoding_aes_key,
            component_appid,
        )
        .map_err(|e| ControlError(e.to_string()))?;
        let inner = format!(
            "<xml><AppId><![CDATA[{component_appid}]]></AppId><CreateTime>{now}</CreateTime>\
             <InfoType><![CDATA[component_verify_ticket]]></InfoType>\
             <ComponentVerifyTicket><![CDATA[{ticket}]]></ComponentVerifyTicket></xml>"
        );
        let encrypt = crypt.encrypt(&inner);
        let timestamp = now.to_string();
        let nonce = world::random_alnum(10);
        let msg_signature = crypt.signature(&timestamp, &nonce, &encrypt);
        let body = format!(
            "<xml><AppId><![CDATA[{component_appid}]]></AppId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        let response = self
            .shared
            .push_client
            .post(&url)
            .query(&[
                ("timestamp", timestamp.as_str()),
                ("nonce", nonce.as_str()),
                ("encrypt_type", "aes"),
                ("msg_signature", msg_signature.as_str()),
            ])
            .header(reqwest::header::CONTENT_TYPE, "text/xml")
            .body(body)
            .send()
            .await
            .map_err(|e| ControlError(format!("ticket push failed: {}", e.without_url())))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() || text.trim() != "success" {
            return Err(ControlError(format!(
                "ticket push answered {status} {:?}",
                text.chars().take(100).collect::<String>()
            )));
        }
        Ok(ticket)
    }

    /// Pushes a ticket to every component with a push URL now and then every
    /// `ticket_push_interval` (retrying failed pushes every `ticket_push_retry`).
    pub fn spawn_ticket_pusher(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let components: Vec<String> = this
                    .apps()
                    .into_iter()
                    .filter(|app| {
                        app.component
                            .as_ref()
                            .is_some_and(|c| c.ticket_push_url.is_some())
                    })
                    .map(|app| app.appid)
                    .collect();
                let mut all_ok = true;
                for component in components {
                    match this.push_component_ticket(&component).await {
                        Ok(_) => tracing::info!(%component, "pushed component_verify_ticket"),
                        Err(error) => {
                            all_ok = false;
                            tracing::warn!(%component, %error, "component_verify_ticket push failed");
                        }
                    }
                }
                let pause = if all_ok {
                    this.shared.config.ticket_push_interval
                } else {
                    this.shared.config.ticket_push_retry
                };
                tokio::time::sleep(pause).await;
            }
        })
    }
}

/// `wxauth simulator --listen ADDR`: serves a simulator with `config` (use
/// [`SimulatorConfig::demo`] for the demo apps) and pushes tickets, until the process ends.
pub async fn run(listen: SocketAddr, config: SimulatorConfig) -> std::io::Result<()> {
    let simulator = Simulator::new(config);
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "WeChat simulator listening");
    let pusher = simulator.spawn_ticket_pusher();
    let served = simulator.serve(listener).await;
    pusher.abort();
    served
}
