//! The login layer's one error type. [`LoginError::fault`] says whose fault a failure is; the HTTP
//! side renders that [`Fault`] as JSON, as a page, or as an RFC 6749 error at the token endpoint.

use crate::fault::Fault;
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

    /// Whose fault this failure is: what the caller brought (400 / `invalid_grant`), what cannot
    /// be served now (503 / `temporarily_unavailable`), or our own trouble (500 / `server_error`).
    pub fn fault(&self) -> Fault {
        match self {
            LoginError::Invalid(message) => Fault::Caller(message.clone()),
            LoginError::SessionUnknown | LoginError::OpenDataRefused => {
                Fault::Caller(self.to_string())
            }
            LoginError::Unavailable(message) => Fault::Unavailable(message.clone()),
            LoginError::WeChat(error) => error.fault(),
            LoginError::Storage(message) => Fault::Internal(message.clone()),
        }
    }
}

impl From<sea_orm::DbErr> for LoginError {
    fn from(error: sea_orm::DbErr) -> Self {
        if crate::db_error::is_worth_retrying(&error) {
            return Self::Unavailable(crate::db_error::BUSY_MESSAGE.into());
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
