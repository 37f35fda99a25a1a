//! The simulator's Official Account followers: `cgi-bin/user/info` in WeChat's shapes (someone
//! who does not follow gets only `subscribe: 0`, the openid and, on an Open Platform, the
//! unionid), and pushes of `subscribe`, `unsubscribe` and `SCAN` events to an account's message
//! URL as WeChat sends them: plain mode (`signature` over token, timestamp and nonce) or safe
//! mode (WXBizMsgCrypt, `msg_signature`), retried when no answer comes within 5 s (three tries
//! in all), and delivered more than once on request (what a slow answer causes).
//!
//! Control API: `POST /__sim/mp/endpoint` (the account's 服务器配置), `POST /__sim/mp/follow`,
//! `/__sim/mp/unfollow`, `/__sim/mp/scan`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Simulator;
use super::world::{ControlError, ErrcodeAnswer, SimFollow, SimMessageEndpoint, random_alnum};
use crate::wechat::crypto::{MessageCrypt, url_signature};

/// How long WeChat waits for an answer before it retries a push.
pub const PUSH_ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How many times WeChat tries a push in all.
pub const PUSH_TRIES: usize = 3;

pub(crate) fn api_routes() -> Router<Simulator> {
    Router::new().route("/cgi-bin/user/info", get(user_info))
}

pub(crate) fn control_routes() -> Router<Simulator> {
    Router::new()
        .route("/__sim/mp/endpoint", post(set_endpoint))
        .route("/__sim/mp/follow", post(follow))
        .route("/__sim/mp/unfollow", post(unfollow))
        .route("/__sim/mp/scan", post(scan))
}

/// A parametric QR code's scene: a number (`scene_id`) or a string (`scene_str`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SimQrScene {
    Id(i64),
    Str(String),
}

impl SimQrScene {
    fn event_key(&self) -> String {
        match self {
            Self::Id(id) => id.to_string(),
            Self::Str(s) => s.clone(),
        }
    }
}

/// One delivery of a push: what the receiver answered (or why there was no answer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delivery {
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The answer's body (at most 200 characters), or the transport error.
    pub answer: String,
}

impl Delivery {
    /// What WeChat accepts: `success` or an empty body, with a 200.
    pub fn accepted(&self) -> bool {
        self.status == Some(200) && matches!(self.answer.trim(), "success" | "")
    }
}

/// Which event to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerEvent {
    Subscribe,
    Unsubscribe,
    Scan,
}

impl FollowerEvent {
    fn name(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Scan => "SCAN",
        }
    }
}

fn cdata(value: &str) -> String {
    format!("<![CDATA[{}]]>", value.replace("]]>", ""))
}

impl Simulator {
    /// Sets where `appid`'s messages go. For an account under a component, the component's
    /// message token and key are used (WeChat pushes in safe mode, sealed for the component).
    pub fn set_message_endpoint(
        &self,
        appid: &str,
        url: &str,
        token: Option<&str>,
        encoding_aes_key: Option<&str>,
    ) -> Result<SimMessageEndpoint, ControlError> {
        let mut world = self.world();
        let app = world
            .apps
            .get(appid)
            .cloned()
            .ok_or_else(|| ControlError(format!("unknown app {appid}")))?;
        let endpoint = match &app.component_appid {
            Some(component_appid) => {
                let component = world
                    .apps
                    .get(component_appid)
                    .and_then(|c| c.component.clone())
                    .ok_or_else(|| ControlError(format!("unknown component {component_appid}")))?;
                SimMessageEndpoint {
                    url: url.to_owned(),
                    token: component.token,
                    encoding_aes_key: Some(component.encoding_aes_key),
                    cipher_appid: Some(component_appid.clone()),
                }
            }
            None => SimMessageEndpoint {
                url: url.to_owned(),
                token: token
                    .ok_or_else(|| ControlError("token is needed".to_owned()))?
                    .to_owned(),
                encoding_aes_key: encoding_aes_key.map(str::to_owned),
                cipher_appid: Some(appid.to_owned()),
            },
        };
        world
            .message_endpoints
            .insert(appid.to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    /// User `user_id` follows `appid` (through the QR code of `scene`, if any); the
    /// `subscribe` event is pushed `deliveries` times.
    pub async fn follow(
        &self,
        appid: &str,
        user_id: &str,
        scene: Option<SimQrScene>,
        deliveries: usize,
    ) -> Result<Vec<Delivery>, ControlError> {
        self.set_follower(appid, user_id, scene.clone());
        let key = scene
            .map(|s| format!("qrscene_{}", s.event_key()))
            .unwrap_or_default();
        self.push_event(appid, user_id, FollowerEvent::Subscribe, &key, deliveries)
            .await
    }

    /// User `user_id` follows `appid` (through the QR code of `scene`, if any), with no push:
    /// only `cgi-bin/user/info` knows.
    pub fn set_follower(&self, appid: &str, user_id: &str, scene: Option<SimQrScene>) {
        let now = self.now();
        let follow = SimFollow {
            subscribe_time: now,
            subscribe_scene: if scene.is_some() {
                "ADD_SCENE_QR_CODE"
            } else {
                "ADD_SCENE_SEARCH"
            }
            .to_owned(),
            qr_scene: match &scene {
                Some(SimQrScene::Id(id)) => *id,
                _ => 0,
            },
            qr_scene_str: match &scene {
                Some(SimQrScene::Str(s)) => s.clone(),
                _ => String::new(),
            },
            tagid_list: vec![2],
        };
        self.world()
            .followers
            .insert((appid.to_owned(), user_id.to_owned()), follow);
    }

    /// User `user_id` stops following `appid`; the `unsubscribe` event is pushed.
    pub async fn unfollow(
        &self,
        appid: &str,
        user_id: &str,
        deliveries: usize,
    ) -> Result<Vec<Delivery>, ControlError> {
        self.world()
            .followers
            .remove(&(appid.to_owned(), user_id.to_owned()));
        self.push_event(appid, user_id, FollowerEvent::Unsubscribe, "", deliveries)
            .await
    }

    /// A follower scans the QR code of `scene`; the `SCAN` event is pushed.
    pub async fn scan_qr(
        &self,
        appid: &str,
        user_id: &str,
        scene: SimQrScene,
        deliveries: usize,
    ) -> Result<Vec<Delivery>, ControlError> {
        self.push_event(
            appid,
            user_id,
            FollowerEvent::Scan,
            &scene.event_key(),
            deliveries,
        )
        .await
    }

    /// Push `event` from `user_id` to `appid`'s message URL, as WeChat does: one request
    /// (timestamp, nonce, signature) delivered `deliveries` times, each retried up to
    /// [`PUSH_TRIES`] tries when no answer comes within [`PUSH_ANSWER_WAIT`].
    pub async fn push_event(
        &self,
        appid: &str,
        user_id: &str,
        event: FollowerEvent,
        event_key: &str,
        deliveries: usize,
    ) -> Result<Vec<Delivery>, ControlError> {
        let now = self.now();
        let (endpoint, openid) = {
            let world = self.world();
            if !world.users.contains_key(user_id) {
                return Err(ControlError(format!("unknown user {user_id}")));
            }
            let endpoint = world.message_endpoints.get(appid).cloned().ok_or_else(|| {
                ControlError(format!(
                    "{appid} has no message URL: POST /__sim/mp/endpoint"
                ))
            })?;
            (endpoint, world.openid(appid, user_id))
        };
        let original_id = format!("gh_{}", &appid[appid.len().saturating_sub(12)..]);
        let mut message = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName>\
             <CreateTime>{now}</CreateTime><MsgType>{}</MsgType><Event>{}</Event>",
            cdata(&original_id),
            cdata(&openid),
            cdata("event"),
            cdata(event.name()),
        );
        if event != FollowerEvent::Unsubscribe {
            message.push_str(&format!("<EventKey>{}</EventKey>", cdata(event_key)));
            if !event_key.is_empty() {
                message.push_str(&format!(
                    "<Ticket>{}</Ticket>",
                    cdata(&format!("gQ{}", random_alnum(30)))
                ));
            }
        }
        message.push_str("</xml>");
        let timestamp = now.to_string();
        let nonce = random_alnum(10);
        let mut query = vec![
            (
                "signature",
                url_signature(&endpoint.token, &timestamp, &nonce),
            ),
            ("timestamp", timestamp.clone()),
            ("nonce", nonce.clone()),
            ("openid", openid.clone()),
        ];
        let body = match (&endpoint.encoding_aes_key, &endpoint.cipher_appid) {
            (Some(key), Some(cipher_appid)) => {
                let crypt = MessageCrypt::new(&endpoint.token, key, cipher_appid)
                    .map_err(|e| ControlError(e.to_string()))?;
                let encrypt = crypt.encrypt(&message);
                query.push(("encrypt_type", "aes".to_owned()));
                query.push((
                    "msg_signature",
                    crypt.signature(&timestamp, &nonce, &encrypt),
                ));
                format!(
                    "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
                    cdata(&original_id),
                    cdata(&encrypt)
                )
            }
            _ => message,
        };
        let mut answers = Vec::new();
        for _ in 0..deliveries.max(1) {
            answers.push(self.deliver(&endpoint.url, &query, &body).await);
        }
        Ok(answers)
    }

    /// One delivery, with WeChat's retries when no answer comes in time.
    async fn deliver(&self, url: &str, query: &[(&str, String)], body: &str) -> Delivery {
        let mut last = Delivery {
            status: None,
            answer: String::new(),
        };
        for _ in 0..PUSH_TRIES {
            let sent = self
                .shared
                .push_client
                .post(url)
                .query(query)
                .header(reqwest::header::CONTENT_TYPE, "text/xml")
                .timeout(PUSH_ANSWER_WAIT)
                .body(body.to_owned())
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    return Delivery {
                        status: Some(status),
                        answer: text.chars().take(200).collect(),
                    };
                }
                Err(error) => {
                    last.answer = error.without_url().to_string();
                }
            }
        }
        last
    }

    /// What `cgi-bin/user/info` answers for `openid` with `access_token`.
    pub(crate) fn user_info(
        &self,
        access_token: Option<&str>,
        openid: &str,
    ) -> Result<Value, ErrcodeAnswer> {
        let now = self.now();
        let world = self.world();
        let token = world
            .check_token(access_token, "app", now)
            .or_else(|_| world.check_token(access_token, "authorizer", now))?;
        let appid = token.appid.clone();
        let user_id = world
            .users
            .keys()
            .find(|id| world.openid(&appid, id) == openid)
            .cloned()
            .ok_or_else(|| ErrcodeAnswer::new(40003, "invalid openid"))?;
        let unionid = world.unionid(&appid, &user_id);
        let mut answer = match world.followers.get(&(appid.clone(), user_id)) {
            None => json!({ "subscribe": 0, "openid": openid }),
            Some(follow) => json!({
                "subscribe": 1,
                "openid": openid,
                "language": "zh_CN",
                "subscribe_time": follow.subscribe_time,
                "remark": "",
                "groupid": 0,
                "tagid_list": follow.tagid_list,
                "subscribe_scene": follow.subscribe_scene,
                "qr_scene": follow.qr_scene,
                "qr_scene_str": follow.qr_scene_str,
            }),
        };
        if let Some(unionid) = unionid {
            answer["unionid"] = unionid.into();
        }
        Ok(answer)
    }
}

async fn user_info(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let answer = match q.get("openid").filter(|o| !o.is_empty()) {
        None => Err(ErrcodeAnswer::new(40003, "invalid openid")),
        Some(openid) => sim.user_info(q.get("access_token").map(String::as_str), openid),
    };
    match answer {
        Ok(value) => Json(value).into_response(),
        Err(error) => {
            Json(json!({ "errcode": error.errcode, "errmsg": error.errmsg })).into_response()
        }
    }
}

fn control_answer(result: Result<Value, ControlError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointRequest {
    appid: String,
    url: String,
    token: Option<String>,
    encoding_aes_key: Option<String>,
}

async fn set_endpoint(State(sim): State<Simulator>, Json(r): Json<EndpointRequest>) -> Response {
    control_answer(
        sim.set_message_endpoint(
            &r.appid,
            &r.url,
            r.token.as_deref(),
            r.encoding_aes_key.as_deref(),
        )
        .map(|e| json!({ "url": e.url, "safe": e.encoding_aes_key.is_some() })),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FollowRequest {
    appid: String,
    user: String,
    qr_scene: Option<SimQrScene>,
    /// How many times the identical push is delivered (WeChat's retries after a slow answer).
    #[serde(default = "one")]
    deliveries: usize,
}

fn one() -> usize {
    1
}

fn deliveries(result: Result<Vec<Delivery>, ControlError>) -> Response {
    control_answer(result.map(|d| json!({ "deliveries": d })))
}

async fn follow(State(sim): State<Simulator>, Json(r): Json<FollowRequest>) -> Response {
    deliveries(
        sim.follow(&r.appid, &r.user, r.qr_scene, r.deliveries.min(10))
            .await,
    )
}

async fn unfollow(State(sim): State<Simulator>, Json(r): Json<FollowRequest>) -> Response {
    deliveries(sim.unfollow(&r.appid, &r.user, r.deliveries.min(10)).await)
}

async fn scan(State(sim): State<Simulator>, Json(r): Json<FollowRequest>) -> Response {
    let Some(scene) = r.qr_scene else {
        return control_answer(Err(ControlError("qrScene is needed".to_owned())));
    };
    deliveries(
        sim.scan_qr(&r.appid, &r.user, scene, r.deliveries.min(10))
            .await,
    )
}
