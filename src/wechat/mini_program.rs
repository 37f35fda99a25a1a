//! Mini-program calls: `sns/jscode2session`, the app access token (`cgi-bin/stable_token`,
//! preferred, and the legacy `cgi-bin/token`) and `wxa/business/getuserphonenumber`.
//!
//! The open data a Mini Program page relays (`wx.getUserInfo`'s and the older phone button's
//! `encryptedData`) is opened here too, into typed values: WeChat's JSON keys stay in this file.
//!
//! These are the raw calls with explicit credentials; [`super::WeChat`] adds the stored secrets and
//! the shared token cache.

use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::client::{Replay, WeChatClient};
use super::crypto::{CryptoError, decrypt_mini_program_data};
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

/// The profile in `wx.getUserInfo`'s encrypted data. Empty strings are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenUserInfo {
    /// The openid the data names, when it names one.
    pub open_id: Option<String>,
    /// The unionid the data names, when it names one: to be checked, never adopted.
    pub union_id: Option<String>,
    pub nick_name: Option<String>,
    pub avatar_url: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    pub gender: Option<i32>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
}

/// A phone number from the phone button's older encrypted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPhoneNumber {
    /// With the country code for numbers outside mainland China.
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
}

/// Decrypt `wx.getUserInfo`'s `encryptedData` with the session's key, checking the watermark
/// names `appid`. An `openId` or `unionId` that is not a string is malformed.
pub fn decrypt_user_info(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
    appid: &AppId,
) -> Result<OpenUserInfo, CryptoError> {
    let data = decrypt_mini_program_data(session_key, encrypted_data, iv, appid)?;
    let id = |key: &str| match data.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CryptoError::Malformed),
    };
    let text = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(OpenUserInfo {
        open_id: id("openId")?,
        union_id: id("unionId")?,
        nick_name: text("nickName"),
        avatar_url: text("avatarUrl"),
        gender: data
            .get("gender")
            .and_then(Value::as_i64)
            .and_then(|g| i32::try_from(g).ok()),
        city: text("city"),
        province: text("province"),
        country: text("country"),
        language: text("language"),
    })
}

/// Decrypt the phone button's older `encryptedData` with the session's key, checking the
/// watermark names `appid`; every part of the number must be there.
pub fn decrypt_phone_number(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
    appid: &AppId,
) -> Result<OpenPhoneNumber, CryptoError> {
    let data = decrypt_mini_program_data(session_key, encrypted_data, iv, appid)?;
    let field = |key: &'static str| {
        data.get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or(CryptoError::MissingField(key))
    };
    Ok(OpenPhoneNumber {
        phone_number: field("phoneNumber")?,
        pure_phone_number: field("purePhoneNumber")?,
        country_code: field("countryCode")?,
    })
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
            appid.as_str(),
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
        self.post_json(
            "cgi-bin/stable_token",
            appid.as_str(),
            &[],
            &body,
            Replay::Safe,
        )
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
            appid.as_str(),
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
        appid: &AppId,
        access_token: &AccessToken,
        code: &str,
    ) -> Result<PhoneInfo, WeChatError> {
        let response: PhoneNumberResponse = self
            .post_json(
                "wxa/business/getuserphonenumber",
                appid.as_str(),
                &[("access_token", access_token.expose())],
                &serde_json::json!({ "code": code }),
                Replay::OnlyIfNotDelivered,
            )
            .await?;
        Ok(response.phone_info)
    }
}
