//! The simulator's JS-SDK and credential checks:
//! - `GET /cgi-bin/ticket/getticket?access_token=…&type=jsapi`, as WeChat answers it:
//!   `{"errcode":0,"errmsg":"ok","ticket":"…","expires_in":7200}`; 41001 without a token,
//!   40001 for a token WeChat never issued (or not an account's: a web or component token),
//!   42001 for an expired one, 40097 for another `type`. The account's own access token and the
//!   authorizer token of a component-authorized account both work. Each call issues a new
//!   ticket that lives `token_ttl_secs` (7200 s); earlier tickets keep working until their
//!   own expiry.
//! - the control API: `POST /__sim/credentials/check` `{token}` says whether WeChat would accept
//!   a token or ticket now (and whose it is), and `POST /__sim/jssdk/verify` checks a
//!   `wx.config` as WeChat's JS bridge does (`{appId, url, timestamp, nonceStr, signature}`
//!   against the account's live tickets), so tests can tell that what wxauth hands out is real.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha1::{Digest, Sha1};

use super::Simulator;
use super::world::{ErrcodeAnswer, IssuedTicket, World, random_alnum};

/// What the simulator says of a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CredentialCheck {
    /// Whether WeChat accepts it now.
    pub valid: bool,
    /// `app`, `component`, `authorizer`, `web` or `jsapi_ticket`, when WeChat issued it.
    pub kind: Option<String>,
    pub appid: Option<String>,
    /// 0 when valid, else the errcode an API would answer (40001 unknown, 42001 expired).
    pub errcode: i64,
}

/// A `wx.config` as the page passes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WxConfig {
    pub app_id: String,
    /// The page URL (WeChat signs it without the `#` fragment).
    pub url: String,
    pub timestamp: i64,
    pub nonce_str: String,
    pub signature: String,
}

/// WeChat's signature, computed independently of wxauth's adapter.
fn wx_config_signature(ticket: &str, config: &WxConfig) -> String {
    let url = config.url.split('#').next().unwrap_or_default();
    let text = format!(
        "jsapi_ticket={ticket}&noncestr={}&timestamp={}&url={url}",
        config.nonce_str, config.timestamp
    );
    hex::encode(Sha1::digest(text.as_bytes()))
}

impl World {
    /// An account token (the app's own or an authorizer's) presented to an official-account API.
    fn check_account_token(&self, token: Option<&str>, now: i64) -> Result<String, ErrcodeAnswer> {
        match self.check_token(token, "app", now) {
            Ok(issued) => Ok(issued.appid),
            Err(error) if error.errcode == 40001 => self
                .check_token(token, "authorizer", now)
                .map(|issued| issued.appid),
            Err(error) => Err(error),
        }
    }

    /// `cgi-bin/ticket/getticket`.
    pub(crate) fn jsapi_ticket(
        &mut self,
        access_token: Option<&str>,
        kind: &str,
        now: i64,
    ) -> Result<serde_json::Value, ErrcodeAnswer> {
        let appid = self.check_account_token(access_token, now)?;
        if kind != "jsapi" {
            return Err(ErrcodeAnswer::new(40097, "invalid args"));
        }
        let ticket = format!("{}-{}", random_alnum(40), random_alnum(45));
        let expires_in = self.rules.token_ttl_secs;
        self.js_tickets.insert(
            ticket.clone(),
            IssuedTicket {
                appid,
                expires_at: now + expires_in,
            },
        );
        Ok(json!({ "errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": expires_in }))
    }

    /// Whether WeChat accepts `credential` (a token or a jsapi_ticket) now.
    pub(crate) fn check_credential(&self, credential: &str, now: i64) -> CredentialCheck {
        if let Some(ticket) = self.js_tickets.get(credential) {
            let valid = ticket.expires_at > now;
            return CredentialCheck {
                valid,
                kind: Some("jsapi_ticket".to_owned()),
                appid: Some(ticket.appid.clone()),
                errcode: if valid { 0 } else { 42001 },
            };
        }
        for family in ["app", "component", "authorizer", "web"] {
            match self.check_token(Some(credential), family, now) {
                Ok(issued) => {
                    return CredentialCheck {
                        valid: true,
                        kind: Some(family.to_owned()),
                        appid: Some(issued.appid),
                        errcode: 0,
                    };
                }
                Err(error) if error.errcode == 40001 => continue,
                Err(error) => {
                    return CredentialCheck {
                        valid: false,
                        kind: Some(family.to_owned()),
                        appid: None,
                        errcode: error.errcode,
                    };
                }
            }
        }
        CredentialCheck {
            valid: false,
            kind: None,
            appid: None,
            errcode: 40001,
        }
    }

    /// Whether `config` is signed with one of the account's live tickets.
    pub(crate) fn verify_wx_config(&self, config: &WxConfig, now: i64) -> bool {
        self.js_tickets.iter().any(|(ticket, issued)| {
            issued.appid == config.app_id
                && issued.expires_at > now
                && wx_config_signature(ticket, config) == config.signature
        })
    }
}

impl Simulator {
    /// Whether WeChat accepts `credential` (an access token of any kind, or a jsapi_ticket) now.
    pub fn check_credential(&self, credential: &str) -> CredentialCheck {
        let now = self.now();
        self.world().check_credential(credential, now)
    }

    /// Whether WeChat's JS bridge would accept this `wx.config`.
    pub fn verify_wx_config(&self, config: &WxConfig) -> bool {
        let now = self.now();
        self.world().verify_wx_config(config, now)
    }
}

pub(crate) async fn getticket(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = sim.now();
    let answer = sim.world().jsapi_ticket(
        q.get("access_token").map(String::as_str),
        q.get("type").map(String::as_str).unwrap_or_default(),
        now,
    );
    match answer {
        Ok(value) => Json(value).into_response(),
        Err(error) => {
            Json(json!({ "errcode": error.errcode, "errmsg": error.errmsg })).into_response()
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CheckRequest {
    token: String,
}

pub(crate) async fn check_credential(
    State(sim): State<Simulator>,
    Json(request): Json<CheckRequest>,
) -> Response {
    Json(sim.check_credential(&request.token)).into_response()
}

pub(crate) async fn verify_wx_config(
    State(sim): State<Simulator>,
    Json(config): Json<WxConfig>,
) -> Response {
    Json(json!({ "valid": sim.verify_wx_config(&config) })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_signature_matches_wechats_sample() {
        let config = WxConfig {
            app_id: "wx0000000000000001".into(),
            url: "http://mp.weixin.qq.com?params=value#frag".into(),
            timestamp: 1414587457,
            nonce_str: "Wm3WZYTPz0wzccnW".into(),
            signature: String::new(),
        };
        assert_eq!(
            wx_config_signature(
                "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
                &config
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
    }
}
