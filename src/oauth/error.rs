//! OAuth 2.0 errors exactly as RFC 6749 §5.2 (and RFC 6750, RFC 7009) name them. The HTTP layer
//! renders them; this module only says which error, which status and what description.

use serde_json::{Value, json};

use crate::fault::Fault;

/// The `error` codes of RFC 6749 §5.2 and §4.1.2.1, plus the ones of RFC 6750 and RFC 7009.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2: the `resource` is unknown, malformed or not allowed.
    InvalidTarget,
    UnsupportedTokenType,
    AccessDenied,
    InvalidToken,
    InsufficientScope,
    TemporarilyUnavailable,
    ServerError,
    /// RFC 8628 §3.5: the user has not answered yet; poll again after the interval.
    AuthorizationPending,
    /// RFC 8628 §3.5: polling faster than the interval; the interval grew by 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired; start again.
    ExpiredToken,
    /// RFC 8628 §3.5: the user denied the device (`access_denied`, a 400 at the token endpoint).
    DeviceAccessDenied,
    /// Throttled (429): sent as `temporarily_unavailable` with `Retry-After`.
    TooManyRequests {
        retry_after_secs: u64,
    },
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::AccessDenied | Self::DeviceAccessDenied => "access_denied",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::TemporarilyUnavailable | Self::TooManyRequests { .. } => {
                "temporarily_unavailable"
            }
            Self::ServerError => "server_error",
        }
    }
}

/// An OAuth error with an optional human-readable description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", code.as_str(), description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: Option<String>,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: Some(description.into()),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::UnauthorizedClient, description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::UnsupportedGrantType, description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidScope, description)
    }

    /// RFC 8707 §2: a `resource` the client may not have a token for.
    pub fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidTarget, description)
    }

    /// Too many attempts: 429, retry after `retry_after_secs`.
    pub fn too_many_requests(retry_after_secs: u64, description: impl Into<String>) -> Self {
        Self::new(
            OAuthErrorCode::TooManyRequests { retry_after_secs },
            description,
        )
    }

    /// `Retry-After` (seconds) for a throttled or unavailable answer.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self.code {
            OAuthErrorCode::TooManyRequests { retry_after_secs } => Some(retry_after_secs),
            OAuthErrorCode::TemporarilyUnavailable => Some(5),
            _ => None,
        }
    }

    /// The database is busy or out of reach for now: 503 with `Retry-After`.
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            OAuthErrorCode::TemporarilyUnavailable,
            crate::db_error::BUSY_MESSAGE,
        )
    }

    /// A failure the caller logged: [`OAuthError::temporarily_unavailable`] when the same
    /// request sent again may succeed, else `server_error`.
    pub fn failed(worth_retrying: bool) -> Self {
        if worth_retrying {
            Self::temporarily_unavailable()
        } else {
            Self::server_error()
        }
    }

    /// A database failure the caller logged: [`OAuthError::failed`], worth retrying when the
    /// database was busy, locked, out of reach or chose the statement as a deadlock's victim
    /// ([`crate::db_error::is_worth_retrying`]).
    pub fn from_database(error: &sea_orm::DbErr) -> Self {
        Self::failed(crate::db_error::is_worth_retrying(error))
    }

    pub fn server_error() -> Self {
        Self::new(
            OAuthErrorCode::ServerError,
            "the server could not complete the request",
        )
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> u16 {
        match self.code {
            OAuthErrorCode::InvalidClient | OAuthErrorCode::InvalidToken => 401,
            OAuthErrorCode::AccessDenied | OAuthErrorCode::InsufficientScope => 403,
            OAuthErrorCode::TemporarilyUnavailable => 503,
            OAuthErrorCode::TooManyRequests { .. } => 429,
            OAuthErrorCode::ServerError => 500,
            _ => 400,
        }
    }

    /// `invalid_client` answers with `WWW-Authenticate: Basic realm="wxauth"` (RFC 6749 §5.2).
    pub fn wants_basic_challenge(&self) -> bool {
        self.code == OAuthErrorCode::InvalidClient
    }

    /// RFC 6750 §3: errors about a bearer token answer with a `Bearer` challenge.
    pub fn bearer_challenge(&self) -> Option<String> {
        matches!(
            self.code,
            OAuthErrorCode::InvalidToken | OAuthErrorCode::InsufficientScope
        )
        .then(|| {
            let description = self
                .description
                .as_deref()
                .unwrap_or_default()
                .replace(['"', '\\'], "'");
            format!(
                "Bearer realm=\"wxauth\", error=\"{}\", error_description=\"{description}\"",
                self.code.as_str()
            )
        })
    }

    /// The JSON body.
    pub fn to_json(&self) -> Value {
        match &self.description {
            Some(d) => json!({ "error": self.code.as_str(), "error_description": d }),
            None => json!({ "error": self.code.as_str() }),
        }
    }
}
/// A failure of what a grant brought, at the token endpoint: the caller's fault is
/// `invalid_grant`, unavailable is `temporarily_unavailable` (503), internal is `server_error`
/// (the detail is logged, never sent).
impl From<Fault> for OAuthError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Caller(message) => OAuthError::invalid_grant(message),
            Fault::Unavailable(message) => {
                OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, message)
            }
            Fault::Internal(message) => {
                tracing::error!(error = %message, "grant failed");
                OAuthError::server_error()
            }
        }
    }
}
