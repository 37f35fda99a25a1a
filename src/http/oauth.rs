//! The OAuth 2.0 endpoints: token (also at the seed's `/api/auth/oauth/token`), introspection,
//! revocation, metadata and JWKS. Every token-endpoint answer carries `Cache-Control: no-store`
//! and `Pragma: no-cache` (RFC 6749 §5.1).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use oxide_auth_axum::OAuthResource;

use super::no_store;
use crate::config::Config;
use crate::error::AppError;
use crate::health::Health;
use crate::oauth::params::Params;
use crate::oauth::token_endpoint;
use crate::oauth::token_service::TokenService;
use crate::oauth::{
    OAuthError, OAuthErrorCode, OAuthServices, introspection, metadata, revocation,
    userinfo as oidc_userinfo,
};
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

/// Whether a `Content-Type` value names `expected` (lower case): media types are
/// case-insensitive (RFC 9110 §8.3.1), parameters such as `charset` do not matter.
fn is_media_type(content_type: &str, expected: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// The parameters of an `application/x-www-form-urlencoded` body.
fn form(headers: &HeaderMap, body: &Bytes) -> Result<Vec<(String, String)>, OAuthError> {
    if body.is_empty() {
        Ok(Vec::new())
    } else {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| is_media_type(ct, "application/x-www-form-urlencoded"));
        if !form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        pairs(body)
    }
}

/// Parameters from the body only (introspection, revocation).
pub(super) fn params(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
    Params::merge(Vec::new(), form(headers, body)?)
}

pub(super) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The token endpoint's form parameters, as the document describes them (the endpoint reads them
/// with [`Params`], which also refuses repeats and query-string credentials).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form for the OpenAPI document only")]
pub(crate) struct TokenForm {
    /// `authorization_code`, `refresh_token`, `client_credentials`, or wxauth's `flow` (a
    /// Mini Program / H5 login ticket).
    grant_type: String,
    /// `authorization_code`: the code.
    code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier.
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    refresh_token: Option<String>,
    scope: Option<String>,
    /// RFC 8707: a registered resource the client is allowed (may repeat); the access token's
    /// `aud` becomes it. Unknown, malformed or not allowed: `invalid_target`.
    resource: Option<String>,
    /// A public client's id; confidential clients authenticate with HTTP Basic.
    client_id: Option<String>,
    /// `flow`: the Mini Program's appid.
    #[schema(rename = "appId")]
    app_id: Option<String>,
    /// `flow`: the openid from `/api/wechat/ma/session`.
    #[schema(rename = "openId")]
    open_id: Option<String>,
    /// `flow`: the unionid from `/api/wechat/ma/session`.
    #[schema(rename = "unionId")]
    union_id: Option<String>,
    /// `flow`: the one-time login ticket from `/api/wechat/ma/session`.
    ticket: Option<String>,
}

#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    summary = "Exchange a grant for tokens (also at /api/auth/oauth/token)",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens (never cached)", body = crate::oauth::token_endpoint::TokenResponse),
        (status = 400, description = "An RFC 6749 error: invalid_request, invalid_grant, unsupported_grant_type, invalid_target, ..."),
        (status = 401, description = "invalid_client"),
    ),
    security((), ("client_basic" = [])),
)]
pub(crate) async fn token(
    State(oauth): State<OAuthServices>,
    State(health): State<Health>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, AppError> {
    let query = pairs(query.unwrap_or_default().as_bytes())?;
    let params = Params::for_token_endpoint(query, form(&headers, &body)?)?;
    match token_endpoint::exchange(&oauth, authorization(&headers), params).await {
        Ok(response) => Ok(no_store(Json(response))),
        Err(error) => Err(database_down_is_temporary(&health, error).await.into()),
    }
}

/// A `server_error` while the database does not answer was the database going away (a restart,
/// a failover) where the grant could not tell: answer what `/readyz` and the pages answer then,
/// 503 `temporarily_unavailable` with `Retry-After`. Every grant answers a busy, locked,
/// unreachable or deadlocked database 503 itself when the same request may succeed again; this
/// covers a failure whose error was lost on its way up.
async fn database_down_is_temporary(health: &Health, error: OAuthError) -> OAuthError {
    if error.code != OAuthErrorCode::ServerError {
        return error;
    }
    if health.database_answers().await {
        return error;
    }
    tracing::warn!("token endpoint: the database does not answer; answering 503");
    OAuthError::new(
        OAuthErrorCode::TemporarilyUnavailable,
        "the database is unavailable, try again",
    )
}

#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    summary = "Token introspection (RFC 7662), for clients with the introspection right",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "token=...&token_type_hint=..."),
    responses(
        (status = 200, description = "`{\"active\": false}` or the token's claims", body = Object),
        (status = 401, description = "invalid_client"),
    ),
    security(("client_basic" = [])),
)]
pub(crate) async fn introspect(
    State(oauth): State<OAuthServices>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let params = params(&headers, &body)?;
    let answer = introspection::introspect(&oauth, authorization(&headers), params).await?;
    Ok(no_store(Json(answer)))
}

#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    summary = "Token revocation (RFC 7009)",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "token=...&token_type_hint=..."),
    responses(
        (status = 200, description = "Revoked, or the token was unknown"),
        (status = 401, description = "invalid_client"),
    ),
    security(("client_basic" = [])),
)]
pub(crate) async fn revoke(
    State(oauth): State<OAuthServices>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let params = params(&headers, &body)?;
    revocation::revoke(&oauth, authorization(&headers), params).await?;
    Ok(no_store(()))
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery",
    summary = "OpenID Connect discovery (also at /.well-known/oauth-authorization-server)",
    responses((status = 200, description = "The server metadata (RFC 8414)", body = Object)),
    security(()),
)]
pub(crate) async fn server_metadata(State(config): State<Arc<Config>>) -> Json<serde_json::Value> {
    Json(metadata::document(&config.issuer(), config.jwt_alg))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    summary = "The public signing keys",
    responses((status = 200, description = "A JWK set, cacheable for 5 minutes", body = Object)),
    security(()),
)]
pub(crate) async fn jwks(State(tokens): State<TokenService>) -> Result<Response, AppError> {
    let keys = tokens.keys().jwks().await.map_err(AppError::internal)?;
    let mut response = Json(keys).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

/// OpenID Connect UserInfo (GET or POST, bearer token in the `Authorization` header).
#[utoipa::path(get, path = "/oauth/userinfo", tag = "oauth",
    summary = "OpenID Connect UserInfo (GET or POST)",
    responses(
        (status = 200, description = "The claims the token's scopes allow", body = Object),
        (status = 401, description = "No token, or an invalid one"),
    ),
    security(("access_token" = [])),
)]
pub(crate) async fn userinfo(
    State(oauth): State<OAuthServices>,
    resource: Result<OAuthResource, oxide_auth_axum::WebError>,
) -> Result<Response, AppError> {
    // oxide-auth-axum's extractor reads the one `Authorization` header (two are refused);
    // README's architecture notes say why its resource flow does not judge the token.
    let resource = resource
        .map_err(|_| OAuthError::invalid_request("send exactly one Authorization header"))?;
    let token = oidc_userinfo::bearer(resource.authorization_header());
    let info = oidc_userinfo::userinfo(&oauth, token).await?;
    Ok(no_store(Json(info)))
}
