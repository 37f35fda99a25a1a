//! `POST /api/wechat/credentials`: the WeChat credential broker for the company's other
//! services (`{appId, kind, force?}` → `{appId, kind, token, expires_in, refreshed}`), with HTTP
//! Basic client authentication. The work is [`CredentialBroker`].

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::no_store;
use crate::credential_broker::{BrokerError, CredentialBroker, CredentialRequest, HandedOut};
use crate::error::AppError;
use crate::oauth::{OAuthError, OAuthErrorCode};
use crate::state::AppState;

pub const CREDENTIALS_PATH: &str = "/api/wechat/credentials";

pub fn routes() -> Router<AppState> {
    Router::new().route(CREDENTIALS_PATH, post(credentials))
}

impl From<BrokerError> for AppError {
    fn from(error: BrokerError) -> Self {
        match error {
            BrokerError::Client(error) => AppError::OAuth(error),
            BrokerError::ScopeMissing | BrokerError::AppNotAllowed => AppError::OAuth(
                OAuthError::new(OAuthErrorCode::AccessDenied, error.to_string()),
            ),
            error => error.fault().into(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CredentialsRequest {
    app_id: String,
    /// `access_token`, `jsapi_ticket`, `authorizer_access_token` or `component_access_token`.
    kind: String,
    /// The credential was refused (40001): refresh it (at most once a minute per app and kind).
    #[serde(default)]
    force: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CredentialsResponse {
    #[serde(rename = "appId")]
    app_id: String,
    kind: &'static str,
    /// The credential every service shares.
    token: String,
    /// Seconds it has left.
    expires_in: i64,
    /// Whether this request's `force` caused a refetch.
    refreshed: bool,
}

impl From<HandedOut> for CredentialsResponse {
    fn from(handed: HandedOut) -> Self {
        Self {
            app_id: handed.appid,
            kind: handed.kind.as_str(),
            token: handed.credential.expose().to_owned(),
            expires_in: handed.expires_in,
            refreshed: handed.refreshed,
        }
    }
}

/// The shared WeChat credential of an app.
#[utoipa::path(post, path = "/api/wechat/credentials", tag = "official_account",
    summary = "Fetch an app's shared WeChat credential instead of calling cgi-bin/token",
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "The credential wxauth itself uses, and its remaining lifetime", body = CredentialsResponse),
        (status = 400, description = "A malformed request, or a kind the app does not have"),
        (status = 401, description = "Client authentication failed"),
        (status = 403, description = "The client lacks the wechat:credentials scope or this appid"),
        (status = 429, description = "Too many failed client authentications from this address"),
        (status = 503, description = "WeChat cannot be reached now (Retry-After)"),
    ),
    security(("client_basic" = [])),
)]
pub(crate) async fn credentials(
    State(broker): State<CredentialBroker>,
    headers: HeaderMap,
    body: Result<Json<CredentialsRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(body) = body?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let request = CredentialRequest {
        appid: body.app_id,
        kind: body.kind,
        force: body.force,
    };
    let handed = broker.hand_out(authorization, request).await?;
    Ok(no_store(Json(CredentialsResponse::from(handed))))
}
