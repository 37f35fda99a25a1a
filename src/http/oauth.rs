//! The OAuth 2.0 endpoints: token (also at the seed's `/api/auth/oauth/token`), introspection,
//! revocation, metadata and JWKS. Every token-endpoint answer carries `Cache-Control: no-store`
//! and `Pragma: no-cache` (RFC 6749 §5.1).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::no_store;
use crate::error::AppError;
use crate::oauth::params::Params;
use crate::oauth::token_endpoint;
use crate::oauth::{OAuthError, introspection, metadata, revocation, userinfo as oidc_userinfo};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/api/auth/oauth/token", post(token))
        .route("/oauth/introspect", post(introspect))
        .route("/oauth/revoke", post(revoke))
        .route(
            "/.well-known/oauth-authorization-server",
            get(server_metadata),
        )
        .route("/.well-known/openid-configuration", get(server_metadata))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
}

fn pairs(text: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    serde_urlencoded::from_bytes(text)
        .map_err(|_| OAuthError::invalid_request("malformed form parameters"))
}

/// The parameters of an `application/x-www-form-urlencoded` body.
fn form(headers: &HeaderMap, body: &Bytes) -> Result<Vec<(String, String)>, OAuthError> {
    if body.is_empty() {
        Ok(Vec::new())
    } else {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        pairs(body)
    }
}

/// Parameters from the body only (introspection, revocation).
fn params(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
    Params::merge(Vec::new(), form(headers, body)?)
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, AppError> {
    let query = pairs(query.unwrap_or_default().as_bytes())?;
    let params = Params::for_token_endpoint(query, form(&headers, &body)?)?;
    let response = token_endpoint::exchange(&state.oauth, authorization(&headers), params).await?;
    Ok(no_store(Json(response)))
}

async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let params = params(&headers, &body)?;
    let answer = introspection::introspect(&state.oauth, authorization(&headers), params).await?;
    Ok(no_store(Json(answer)))
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let params = params(&headers, &body)?;
    revocation::revoke(&state.oauth, authorization(&headers), params).await?;
    Ok(no_store(()))
}

async fn server_metadata(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(metadata::document(
        &state.config.issuer(),
        state.config.jwt_alg,
    ))
}

async fn jwks(State(state): State<AppState>) -> Result<Response, AppError> {
    let keys = state
        .oauth
        .tokens
        .keys()
        .jwks()
        .await
        .map_err(AppError::internal)?;
    let mut response = Json(keys).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

/// OpenID Connect UserInfo (GET or POST, bearer token in the `Authorization` header).
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let token = oidc_userinfo::bearer(authorization(&headers));
    let info = oidc_userinfo::userinfo(&state.oauth, token).await?;
    Ok(no_store(Json(info)))
}
