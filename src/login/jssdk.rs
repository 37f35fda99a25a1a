//! JS-SDK configuration for the official accounts' H5 pages: what a page passes to `wx.config`
//! (`appId`, `timestamp`, `nonceStr`, `signature`) to share, scan or pay, signed with the
//! account's jsapi_ticket (see [`crate::wechat::jssdk`] for the algorithm).
//!
//! A signature is only made for a page on an allow-listed host: the same
//! `WXAUTH_REDIRECT_ALLOWLIST` the H5 sign-in checks `next` against ([`RedirectPolicy`]), which
//! is meant to list the account's JS interface safe domains (JS接口安全域名). Nobody can thus
//! have wxauth sign `wx.config` for a page of theirs.

use std::sync::Arc;

use rand::Rng;
use rand::distributions::Alphanumeric;

use super::redirect::{RedirectError, RedirectPolicy};
use crate::app_registry::{AppKind, AppRegistry};
use crate::clock::SharedClock;
use crate::fault::Fault;
use crate::wechat::jssdk::config_signature;
use crate::wechat::{AppId, WeChat, WeChatError};

/// The length of a `nonceStr` (WeChat's examples use 16 characters; it allows up to 32).
const NONCE_LEN: usize = 16;

/// What a page passes to `wx.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsSdkConfig {
    pub app_id: String,
    /// Unix seconds.
    pub timestamp: i64,
    pub nonce_str: String,
    pub signature: String,
}

/// Why no configuration was made.
#[derive(Debug, thiserror::Error)]
pub enum JsSdkError {
    #[error("appId must be a WeChat appid (wx followed by 16 hexadecimal digits)")]
    BadAppId,
    #[error("appId is not an official account registered with wxauth")]
    NotAnAccount,
    #[error("{0}")]
    Url(&'static str),
    #[error(transparent)]
    WeChat(#[from] WeChatError),
    #[error("wx_app: {0}")]
    Store(String),
}

impl JsSdkError {
    pub fn fault(&self) -> Fault {
        match self {
            JsSdkError::WeChat(error) => error.fault(),
            JsSdkError::Store(message) => Fault::Unavailable(message.clone()),
            other => Fault::Caller(other.to_string()),
        }
    }
}

/// The allowlist's verdict on a page URL, in the caller's words.
fn url_refusal(error: RedirectError) -> JsSdkError {
    JsSdkError::Url(match error {
        RedirectError::Missing => "url is required",
        RedirectError::TooLong => "url is too long",
        RedirectError::ForbiddenCharacter => {
            "url must not contain backslashes, spaces or control characters"
        }
        RedirectError::NotAbsoluteHttp => "url must be the page's absolute http(s) URL",
        RedirectError::Authority => {
            "url must not carry a user name, password or encoded characters in its host part"
        }
        RedirectError::HostNotAllowed => {
            "url is on a host that is not allowed (see WXAUTH_REDIRECT_ALLOWLIST, the JS interface safe domains)"
        }
    })
}

/// The JS-SDK configuration service.
#[derive(Clone)]
pub struct JsSdk {
    wechat: Arc<WeChat>,
    apps: AppRegistry,
    policy: RedirectPolicy,
    clock: SharedClock,
}

impl JsSdk {
    pub fn new(
        wechat: Arc<WeChat>,
        apps: AppRegistry,
        policy: RedirectPolicy,
        clock: SharedClock,
    ) -> Self {
        Self {
            wechat,
            apps,
            policy,
            clock,
        }
    }

    /// The `wx.config` of the page at `url` (its `#` fragment is not signed) for the official
    /// account `appid`.
    pub async fn config(&self, appid: &str, url: &str) -> Result<JsSdkConfig, JsSdkError> {
        let appid = AppId::parse(appid.trim()).map_err(|_| JsSdkError::BadAppId)?;
        // The allowlist judges the page itself; its fragment never reaches a server anyway.
        let page = crate::wechat::jssdk::signed_url(url);
        self.policy.check(page).map_err(url_refusal)?;
        let app = self
            .apps
            .get(appid.as_str())
            .await
            .map_err(|e| JsSdkError::Store(e.to_string()))?;
        if app.is_none_or(|app| app.kind != AppKind::OfficialAccount) {
            return Err(JsSdkError::NotAnAccount);
        }
        let ticket = self.wechat.jsapi_ticket(&appid).await?;
        let timestamp = self.clock.now();
        let nonce_str: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(NONCE_LEN)
            .map(char::from)
            .collect();
        let signature = config_signature(ticket.token.expose(), &nonce_str, timestamp, page);
        Ok(JsSdkConfig {
            app_id: appid.to_string(),
            timestamp,
            nonce_str,
            signature,
        })
    }
}
