//! The login layer's one error type. Its mapping to HTTP lives in `impl From<LoginError> for
//! AppError` (JSON endpoints) and `LoginError::into_oauth` (grants at the token endpoint).

use crate::error::AppError;
use crate::oauth::OAuthError;
use crate::oauth::error::OAuthErrorCode;
use crate::users::RepoError;
use crate::wechat::WeChatError;

/// Why a login step failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The request is wrong in a way the caller can fix (400, with this message).
    #[error("{0}")]
    Invalid(String),
    /// The session id is unknown or expired: log in again (400).
    #[error("the session is unknown or expired: call wx.login and start a new session")]
    SessionUnknown,
    /// Data relayed under the session_key (`encryptedData`, `rawData` + `signature`) did not
    /// verify, for whatever reason: one answer for every failure, so that it is no oracle (400).
    #[error(
        "the encrypted data does not verify for this session: call wx.login, then get the data again"
    )]
    OpenDataRefused,
    /// Cannot serve this now: configuration missing (503, with this message).
    #[error("{0}")]
    Unavailable(String),
    /// WeChat refused or could not answer.
    #[error(transparent)]
    WeChat(#[from] WeChatError),
    /// Our own storage failed (500; the detail is logged, never sent).
    #[error("storage: {0}")]
    Storage(String),
}

impl LoginError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// The same failure at the token endpoint: what the user brought is `invalid_grant`,
    /// WeChat trouble is `temporarily_unavailable` (503), our trouble is `server_error`.
    pub fn into_oauth(self) -> OAuthError {
        match AppError::from(self) {
            AppError::BadRequest(message) => OAuthError::invalid_grant(message),
            AppError::TemporarilyUnavailable(message) => {
                OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, message)
            }
            AppError::OAuth(error) => error,
            other => {
                tracing::error!(error = %other, "login step failed");
                OAuthError::server_error()
            }
        }
    }
}

impl From<sea_orm::DbErr> for LoginError {
    fn from(error: sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(&error) {
            return Self::Unavailable(crate::db::BUSY_MESSAGE.into());
        }
        Self::Storage(error.to_string())
    }
}

impl From<RepoError> for LoginError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Db(error) => error.into(),
            other => Self::Storage(other.to_string()),
        }
    }
}

impl From<LoginError> for AppError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::Invalid(message) => AppError::BadRequest(message),
            error @ (LoginError::SessionUnknown | LoginError::OpenDataRefused) => {
                AppError::BadRequest(error.to_string())
            }
            LoginError::Unavailable(message) => AppError::TemporarilyUnavailable(message),
            LoginError::WeChat(error) => error.into(),
            LoginError::Storage(message) => AppError::Internal(message),
        }
    }
}
