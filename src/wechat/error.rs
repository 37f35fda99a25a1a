//! What can go wrong when talking to WeChat, and what our own clients see when it does.
//!
//! [`WeChatError`] names the documented errcodes that change what wxauth does (retry, refetch a
//! token, blame the user's code, blame our configuration). [`WeChatError::fault`] says whose fault
//! a failure is, once; the HTTP side renders that [`Fault`]:
//! - the user's code is bad, used or expired, or the user is blocked → the caller's fault (400
//!   `invalid_request`) naming the reason, so the front end can restart the login;
//! - WeChat busy, unreachable, slow, rate limiting or out of daily quota → unavailable (503
//!   `temporarily_unavailable`);
//! - our configuration is wrong (bad secret, unknown app, missing component ticket) → also
//!   unavailable, logged at `error`: the request is fine and will succeed once an operator fixes
//!   the app row, and WeChat trouble never surfaces as a 500. Only failures of our own machinery
//!   (database, vault) are internal.

use crate::fault::Fault;

/// WeChat's documented error codes that wxauth treats specially.
pub mod errcode {
    pub const BUSY: i64 = -1;
    pub const INVALID_CREDENTIAL: i64 = 40001;
    pub const INVALID_APPID: i64 = 40013;
    pub const INVALID_ACCESS_TOKEN: i64 = 40014;
    pub const INVALID_CODE: i64 = 40029;
    pub const INVALID_REFRESH_TOKEN: i64 = 40030;
    pub const INVALID_APPSECRET: i64 = 40125;
    pub const CODE_USED: i64 = 40163;
    pub const IP_NOT_WHITELISTED: i64 = 40164;
    pub const HIGH_RISK_USER: i64 = 40226;
    pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    pub const REFRESH_TOKEN_EXPIRED: i64 = 42002;
    pub const CODE_EXPIRED: i64 = 42003;
    pub const DAILY_QUOTA: i64 = 45009;
    pub const RATE_LIMITED: i64 = 45011;
    pub const API_UNAUTHORIZED: i64 = 48001;
    pub const COMPONENT_TICKET_INVALID: i64 = 61006;
    pub const AUTHORIZER_REFRESH_TOKEN_INVALID: i64 = 61023;
}

/// A failed WeChat call.
#[derive(Debug, thiserror::Error)]
pub enum WeChatError {
    /// errcode -1: WeChat is busy; still failing after our retries.
    #[error("WeChat is busy (errcode -1)")]
    Busy,
    /// 40001, 40014 or 42001: the access token we sent is invalid or expired.
    #[error("WeChat access token invalid or expired (errcode {errcode})")]
    AccessTokenInvalid { errcode: i64 },
    /// 40029 (or 42003): the code is invalid or has expired.
    #[error("the WeChat code is invalid or expired (errcode {errcode})")]
    InvalidCode { errcode: i64 },
    /// 40163: the code was already used.
    #[error("the WeChat code was already used (errcode 40163)")]
    CodeUsed,
    /// 40030 or 42002: a web-auth refresh token is invalid or expired.
    #[error("the WeChat refresh token is invalid or expired (errcode {errcode})")]
    InvalidRefreshToken { errcode: i64 },
    /// 40226: WeChat blocked this user as high risk.
    #[error("WeChat blocked this user as high risk (errcode 40226)")]
    HighRiskUser,
    /// 45011: API minute-level rate limit.
    #[error("WeChat rate limit reached (errcode 45011)")]
    RateLimited,
    /// 45009: the app's daily quota for this API is used up.
    #[error("WeChat daily API quota reached (errcode 45009)")]
    DailyQuotaExceeded,
    /// 40125: the app secret is wrong.
    #[error("WeChat rejected the app secret (errcode 40125)")]
    InvalidAppSecret,
    /// 40013: WeChat does not know this appid.
    #[error("WeChat rejected the appid (errcode 40013)")]
    InvalidAppId,
    /// 40164: our egress IP is not on the app's whitelist.
    #[error("our IP is not whitelisted for this app (errcode 40164)")]
    IpNotWhitelisted,
    /// 48001: the app is not authorized for this API (e.g. userinfo with snsapi_base).
    #[error("the app is not authorized for this WeChat API (errcode 48001)")]
    ApiUnauthorized,
    /// 61006: the component_verify_ticket is invalid or expired.
    #[error("the component_verify_ticket is invalid (errcode 61006)")]
    ComponentTicketInvalid,
    /// 61023: the authorizer refresh token is invalid; the authorizer must re-authorize.
    #[error("the authorizer refresh token is invalid (errcode 61023)")]
    AuthorizerRefreshTokenInvalid,
    /// Any other non-zero errcode.
    #[error("WeChat error {errcode}: {errmsg}")]
    Other { errcode: i64, errmsg: String },
    /// WeChat answered with a non-success HTTP status.
    #[error("WeChat answered HTTP {0}")]
    HttpStatus(u16),
    /// WeChat could not be reached or did not answer in time.
    #[error("WeChat unreachable: {0}")]
    Unreachable(String),
    /// WeChat answered something we could not decode.
    #[error("unexpected WeChat response: {0}")]
    Decode(String),
    /// An app, secret, ticket or refresh token wxauth needs is not configured.
    #[error("WeChat app not configured: {0}")]
    NotConfigured(String),
    /// Decryption or signature check of user- or WeChat-supplied data failed.
    #[error(transparent)]
    Crypto(#[from] super::crypto::CryptoError),
    /// Another instance is refreshing the token and did not finish in time.
    #[error("timed out waiting for another instance to refresh the WeChat token")]
    TokenRefreshTimeout,
    /// Our database or vault failed.
    #[error("token store: {0}")]
    Store(String),
    /// Our database could not be reached in time (every pooled connection busy), or ended the
    /// statement to settle a deadlock: retry helps.
    #[error("store busy: {0}")]
    StoreBusy(String),
}

impl WeChatError {
    /// A database failure while reading or writing `table`: [`WeChatError::StoreBusy`] when
    /// sending it again may succeed ([`crate::db_error::is_worth_retrying`]),
    /// [`WeChatError::Store`] otherwise.
    pub fn store(table: &str, error: &sea_orm::DbErr) -> Self {
        if crate::db_error::is_worth_retrying(error) {
            WeChatError::StoreBusy(format!("{table}: {error}"))
        } else {
            WeChatError::Store(format!("{table}: {error}"))
        }
    }
}

impl WeChatError {
    /// Maps a non-zero errcode to its variant.
    pub fn from_errcode(code: i64, errmsg: &str) -> Self {
        use errcode::*;
        match code {
            BUSY => WeChatError::Busy,
            INVALID_CREDENTIAL | INVALID_ACCESS_TOKEN | ACCESS_TOKEN_EXPIRED => {
                WeChatError::AccessTokenInvalid { errcode: code }
            }
            INVALID_CODE | CODE_EXPIRED => WeChatError::InvalidCode { errcode: code },
            CODE_USED => WeChatError::CodeUsed,
            INVALID_REFRESH_TOKEN | REFRESH_TOKEN_EXPIRED => {
                WeChatError::InvalidRefreshToken { errcode: code }
            }
            HIGH_RISK_USER => WeChatError::HighRiskUser,
            RATE_LIMITED => WeChatError::RateLimited,
            DAILY_QUOTA => WeChatError::DailyQuotaExceeded,
            INVALID_APPSECRET => WeChatError::InvalidAppSecret,
            INVALID_APPID => WeChatError::InvalidAppId,
            IP_NOT_WHITELISTED => WeChatError::IpNotWhitelisted,
            API_UNAUTHORIZED => WeChatError::ApiUnauthorized,
            COMPONENT_TICKET_INVALID => WeChatError::ComponentTicketInvalid,
            AUTHORIZER_REFRESH_TOKEN_INVALID => WeChatError::AuthorizerRefreshTokenInvalid,
            _ => WeChatError::Other {
                errcode: code,
                errmsg: errmsg.chars().take(200).collect(),
            },
        }
    }

    /// The WeChat errcode behind this error, when there is one.
    pub fn errcode(&self) -> Option<i64> {
        use errcode::*;
        Some(match self {
            WeChatError::Busy => BUSY,
            WeChatError::AccessTokenInvalid { errcode }
            | WeChatError::InvalidCode { errcode }
            | WeChatError::InvalidRefreshToken { errcode }
            | WeChatError::Other { errcode, .. } => *errcode,
            WeChatError::CodeUsed => CODE_USED,
            WeChatError::HighRiskUser => HIGH_RISK_USER,
            WeChatError::RateLimited => RATE_LIMITED,
            WeChatError::DailyQuotaExceeded => DAILY_QUOTA,
            WeChatError::InvalidAppSecret => INVALID_APPSECRET,
            WeChatError::InvalidAppId => INVALID_APPID,
            WeChatError::IpNotWhitelisted => IP_NOT_WHITELISTED,
            WeChatError::ApiUnauthorized => API_UNAUTHORIZED,
            WeChatError::ComponentTicketInvalid => COMPONENT_TICKET_INVALID,
            WeChatError::AuthorizerRefreshTokenInvalid => AUTHORIZER_REFRESH_TOKEN_INVALID,
            _ => return None,
        })
    }

    /// Whether the same request may simply be sent again after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            WeChatError::Busy | WeChatError::Unreachable(_) | WeChatError::HttpStatus(500..=599)
        )
    }

    /// Whether the cached access token should be dropped and the call retried once.
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, WeChatError::AccessTokenInvalid { .. })
    }
}

impl WeChatError {
    /// Whose fault this failure is: see the module documentation.
    pub fn fault(&self) -> Fault {
        match self {
            WeChatError::InvalidCode { .. } => {
                Fault::Caller("the WeChat code is invalid or expired".to_owned())
            }
            WeChatError::CodeUsed => Fault::Caller("the WeChat code was already used".to_owned()),
            WeChatError::InvalidRefreshToken { .. } => {
                Fault::Caller("the WeChat refresh token is invalid or expired".to_owned())
            }
            WeChatError::HighRiskUser => {
                Fault::Caller("WeChat blocked this user as high risk".to_owned())
            }
            WeChatError::Crypto(crypto) => {
                Fault::Caller(format!("WeChat encrypted data rejected: {crypto}"))
            }
            WeChatError::Busy
            | WeChatError::Unreachable(_)
            | WeChatError::HttpStatus(_)
            | WeChatError::Decode(_)
            | WeChatError::TokenRefreshTimeout => {
                tracing::warn!(error = %self, "WeChat unavailable");
                Fault::Unavailable("WeChat is unavailable, try again".to_owned())
            }
            WeChatError::RateLimited | WeChatError::DailyQuotaExceeded => {
                tracing::warn!(error = %self, "WeChat quota or rate limit");
                Fault::Unavailable(
                    "WeChat API quota or rate limit reached, try again later".to_owned(),
                )
            }
            WeChatError::AccessTokenInvalid { .. }
            | WeChatError::InvalidAppSecret
            | WeChatError::InvalidAppId
            | WeChatError::IpNotWhitelisted
            | WeChatError::ApiUnauthorized
            | WeChatError::ComponentTicketInvalid
            | WeChatError::AuthorizerRefreshTokenInvalid
            | WeChatError::NotConfigured(_)
            | WeChatError::Other { .. } => {
                tracing::error!(error = %self, "WeChat rejected our configuration");
                Fault::Unavailable("WeChat login is misconfigured on this server".to_owned())
            }
            WeChatError::Store(message) => Fault::Internal(message.clone()),
            WeChatError::StoreBusy(message) => {
                tracing::warn!(reason = %message, "database busy");
                Fault::Unavailable(crate::db_error::BUSY_MESSAGE.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_error_kind(error: WeChatError) -> (&'static str, String) {
        match error.fault() {
            Fault::Caller(message) => ("bad_request", message),
            Fault::Unavailable(message) => ("unavailable", message),
            Fault::Internal(message) => ("internal", message),
        }
    }

    #[test]
    fn every_documented_errcode_maps_to_its_variant_and_back() {
        let codes = [
            -1, 40001, 40013, 40014, 40029, 40030, 40125, 40163, 40164, 40226, 42001, 42002, 42003,
            45009, 45011, 48001, 61006, 61023,
        ];
        for code in codes {
            let error = WeChatError::from_errcode(code, "msg");
            assert!(
                !matches!(error, WeChatError::Other { .. }),
                "{code} should be named"
            );
            assert_eq!(error.errcode(), Some(code), "{code}");
        }
        assert!(matches!(
            WeChatError::from_errcode(99999, "x"),
            WeChatError::Other { errcode: 99999, .. }
        ));
    }

    #[test]
    fn user_code_problems_are_bad_requests_naming_the_reason() {
        let (kind, message) = app_error_kind(WeChatError::from_errcode(40029, ""));
        assert_eq!(kind, "bad_request");
        assert!(message.contains("invalid or expired"));
        let (kind, message) = app_error_kind(WeChatError::from_errcode(40163, ""));
        assert_eq!(kind, "bad_request");
        assert!(message.contains("already used"));
        assert_eq!(
            app_error_kind(WeChatError::from_errcode(42003, "")).0,
            "bad_request"
        );
        assert_eq!(
            app_error_kind(WeChatError::from_errcode(40226, "")).0,
            "bad_request"
        );
        assert_eq!(
            app_error_kind(WeChatError::from_errcode(40030, "")).0,
            "bad_request"
        );
        assert_eq!(
            app_error_kind(WeChatError::Crypto(
                crate::wechat::crypto::CryptoError::WatermarkMismatch
            ))
            .0,
            "bad_request"
        );
    }

    #[test]
    fn wechat_trouble_is_temporarily_unavailable_never_internal() {
        for error in [
            WeChatError::from_errcode(-1, ""),
            WeChatError::from_errcode(45009, ""),
            WeChatError::from_errcode(45011, ""),
            WeChatError::from_errcode(40125, ""),
            WeChatError::from_errcode(40013, ""),
            WeChatError::from_errcode(40164, ""),
            WeChatError::from_errcode(40001, ""),
            WeChatError::from_errcode(40014, ""),
            WeChatError::from_errcode(42001, ""),
            WeChatError::from_errcode(48001, ""),
            WeChatError::from_errcode(61006, ""),
            WeChatError::from_errcode(61023, ""),
            WeChatError::from_errcode(12345, "secret detail"),
            WeChatError::HttpStatus(502),
            WeChatError::Unreachable("connect refused".into()),
            WeChatError::Decode("x".into()),
            WeChatError::NotConfigured("x".into()),
            WeChatError::TokenRefreshTimeout,
        ] {
            let (kind, message) = app_error_kind(error);
            assert_eq!(kind, "unavailable");
            assert!(!message.contains("secret detail"));
        }
    }

    #[test]
    fn store_failures_are_internal() {
        assert_eq!(
            app_error_kind(WeChatError::Store("db down".into())).0,
            "internal"
        );
    }

    #[test]
    fn transient_and_token_invalid_classification() {
        assert!(WeChatError::Busy.is_transient());
        assert!(WeChatError::Unreachable("x".into()).is_transient());
        assert!(WeChatError::HttpStatus(503).is_transient());
        assert!(!WeChatError::HttpStatus(404).is_transient());
        assert!(!WeChatError::CodeUsed.is_transient());
        for code in [40001, 40014, 42001] {
            assert!(WeChatError::from_errcode(code, "").is_token_invalid());
        }
        assert!(!WeChatError::from_errcode(40029, "").is_token_invalid());
    }
}
