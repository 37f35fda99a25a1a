//! The HTTP error type: every handler returns `Result<_, AppError>`, and this file holds the one
//! `IntoResponse` that turns an error into a status and a JSON body. Internal details are logged
//! here and never sent to the client.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::fault::Fault;
use crate::login::LoginError;
use crate::oauth::OAuthError;
use crate::wechat::WeChatError;

/// An error as a client sees it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 `invalid_request` with a message for the caller.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401, for admin and client-authenticated endpoints outside the token endpoint.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// 503 `temporarily_unavailable`: WeChat (or the database) cannot answer now.
    #[error("temporarily unavailable: {0}")]
    TemporarilyUnavailable(String),
    /// An OAuth 2.0 error in the RFC 6749 §5.2 shape.
    #[error("oauth error: {0}")]
    OAuth(#[from] OAuthError),
    /// 500; the message is logged, the client sees a generic body.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// Wrap any displayable internal failure.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        AppError::Internal(err.to_string())
    }
}

/// A domain failure as JSON: the caller's fault is a 400 with its message, unavailable is a 503
/// with `Retry-After`, internal is a 500 whose detail is only logged.
impl From<Fault> for AppError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Caller(message) => AppError::BadRequest(message),
            Fault::Unavailable(message) => AppError::TemporarilyUnavailable(message),
            Fault::Internal(message) => AppError::Internal(message),
        }
    }
}

impl From<WeChatError> for AppError {
    fn from(error: WeChatError) -> Self {
        error.fault().into()
    }
}

impl From<LoginError> for AppError {
    fn from(error: LoginError) -> Self {
        error.fault().into()
    }
}

/// A refused profile: a 429 with `Retry-After` when the user saved too often, else its fault.
impl From<crate::login::profile::ProfileError> for AppError {
    fn from(error: crate::login::profile::ProfileError) -> Self {
        match error.retry_after_secs() {
            Some(secs) => AppError::OAuth(OAuthError::too_many_requests(secs, error.to_string())),
            None => error.fault().into(),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        AppError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::BadRequest(rejection.body_text())
    }
}

fn body(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// RFC 6749 §5.2: JSON `{error, error_description}`, 401 with a Basic challenge for
/// `invalid_client`, `Retry-After` on 429 and 503, and never cached (RFC 6749 §5.1).
fn oauth_response(err: &OAuthError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(err.to_json())).into_response();
    let headers = response.headers_mut();
    if err.wants_basic_challenge() {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"wxauth\""),
        );
    }
    if let Some(challenge) = err.bearer_challenge()
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(secs) = err.retry_after_secs() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::BadRequest(msg) => body(StatusCode::BAD_REQUEST, "invalid_request", &msg),
            AppError::Unauthorized(msg) => body(StatusCode::UNAUTHORIZED, "unauthorized", &msg),
            AppError::NotFound(msg) => body(StatusCode::NOT_FOUND, "not_found", &msg),
            AppError::TemporarilyUnavailable(msg) => {
                tracing::warn!(reason = %msg, "answering 503");
                let mut response = body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    &msg,
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            AppError::OAuth(err) => oauth_response(&err),
            AppError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server could not complete the request",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::OAuthErrorCode;

    #[test]
    fn oauth_503_and_429_say_when_to_retry() {
        let unavailable = AppError::OAuth(OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "WeChat is busy",
        ))
        .into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "5");
        let throttled =
            AppError::OAuth(OAuthError::too_many_requests(8, "slow down")).into_response();
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.headers()[header::RETRY_AFTER], "8");
    }
}
