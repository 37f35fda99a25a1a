//! Mini-program calls: `sns/jscode2session`, the app access token (`cgi-bin/stable_token`,
//! preferred, and the legacy `cgi-bin/token`) and `wxa/business/getuserphonenumber`.
//!
//! These are the raw calls with explicit credentials; [`super::WeChat`] adds the stored secrets and
//! the shared token cache.

use serde::{Deserialize, Serialize};

use super::client::{Replay, WeChatClient};
use super::error::WeChatError;
use super::types::{AccessToken, AppId, AppSecret, OpenId, SessionKey, UnionId};

/// What `jscode2session` returns for a `wx.login` code.
#[derive(Debug, Clone, Deserialize)]
pub struct CodeSession {
    pub openid: OpenId,
    pub session_key: SessionKey,
    /// Present when the mini program is bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<UnionId>,
}

/// A freshly fetched upstream token and its lifetime in seconds.
#[derive(Debug, Clone, Deserialize)]
pub struct FetchedToken {
    pub access_token: AccessToken,
    pub expires_in: i64,
}

/// The watermark WeChat stamps on user data: when and for which app.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Watermark {
    pub timestamp: i64,
    pub appid: String,
}

/// A user's phone number from `getuserphonenumber`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct PhoneInfo {
    /// With country code for non-mainland numbers.
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    #[serde(rename = "purePhoneNumber")]
    pub pure_phone_number: String,
    #[serde(rename = "countryCode")]
    pub country_code: String,
    pub watermark: Watermark,
}

#[derive(Deserialize)]
struct PhoneNumberResponse {
    phone_info: PhoneInfo,
}

#[derive(Serialize)]
struct StableTokenRequest<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

impl WeChatClient {
    /// Exchanges a `wx.login` code for the user's openid, unionid and session key.
    pub async fn jscode2session(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        js_code: &str,
    ) -> Result<CodeSession, WeChatError> {
        self.get(
            "sns/jscode2session",
            &[
                ("appid", appid.as_str()),
                ("secret", secret.expose()),
                ("js_code", js_code),
                ("grant_type", "authorization_code"),
            ],
            Replay::OnlyIfNotDelivered,
        )
        .await
    }

    /// `cgi-bin/stable_token`: returns the current token unless `force_refresh`, so it does not
    /// invalidate tokens other holders still use.
    pub async fn stable_token(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        force_refresh: bool,
    ) -> Result<FetchedToken, WeChatError> {
        let body = StableTokenRequest {
            grant_type: "client_credential",
            appid: appid.as_str(),
            secret: secret.expose(),
            force_refresh,
        };
        self.post_json("cgi-bin/stable_token", &[], &body, Replay::Safe)
            .await
    }

    /// Legacy `cgi-bin/token`: every call mints a new token and starts the old one's 5-minute
    /// countdown. wxauth's token cache never calls it (it uses [`Self::stable_token`], which does
    /// not invalidate the token other holders use); it stays for the integration test that both
    /// endpoints draw on the same daily quota, as WeChat's do.
    pub async fn legacy_token(
        &self,
        appid: &AppId,
        secret: &AppSecret,
    ) -> Result<FetchedToken, WeChatError> {
        self.get(
            "cgi-bin/token",
            &[
                ("grant_type", "client_credential"),
                ("appid", appid.as_str()),
                ("secret", secret.expose()),
            ],
            Replay::Safe,
        )
        .await
    }

    /// Exchanges a `getPhoneNumber` button code for the user's phone number.
    pub async fn user_phone_number(
        &self,
        access_token: &AccessToken,
        code: &str,
    ) -> Result<PhoneInfo, WeChatError> {
        let response: PhoneNumberResponse = self
            .post_json(
                "wxa/business/getuserphonenumber",
                &[("access_token", access_token.expose())],
                &serde_json::json!({ "code": code }),
                Replay::OnlyIfNotDelivered,
            )
            .await?;
        Ok(response.phone_info)
    }
}
