//! `GET /api/wechat/jssdk/config?appId=…&url=…`: the `wx.config` an official account's H5 page
//! needs (`{appId, timestamp, nonceStr, signature}`), for pages on the redirect allowlist; CORS
//! for the registered clients' origins and a per-IP limit (`WXAUTH_LIMIT_JSSDK_CONFIG`). The
//! work is [`JsSdk`] in `login::jssdk`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::no_store;
use crate::error::AppError;
use crate::login::{JsSdk, JsSdkConfig, JsSdkError};
use crate::state::AppState;

pub const JSSDK_CONFIG_PATH: &str = "/api/wechat/jssdk/config";

pub fn routes() -> Router<AppState> {
    Router::new().route(JSSDK_CONFIG_PATH, get(config))
}

impl From<JsSdkError> for AppError {
    fn from(error: JsSdkError) -> Self {
        error.fault().into()
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(crate) struct ConfigQuery {
    /// The official account's appid.
    app_id: String,
    /// The page's full URL (location.href); the `#` fragment is not signed.
    url: String,
}

/// What the page passes to `wx.config` (with its `jsApiList`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigResponse {
    app_id: String,
    timestamp: i64,
    nonce_str: String,
    signature: String,
}

impl From<JsSdkConfig> for ConfigResponse {
    fn from(config: JsSdkConfig) -> Self {
        Self {
            app_id: config.app_id,
            timestamp: config.timestamp,
            nonce_str: config.nonce_str,
            signature: config.signature,
        }
    }
}

/// The JS-SDK configuration of a page.
#[utoipa::path(get, path = "/api/wechat/jssdk/config", tag = "official_account",
    summary = "The wx.config signature of an H5 page on an allowed host",
    params(ConfigQuery),
    responses(
        (status = 200, description = "appId, timestamp, nonceStr and signature for wx.config", body = ConfigResponse),
        (status = 400, description = "A malformed appId, an account wxauth does not serve, or a page URL whose host is not allowed"),
        (status = 429, description = "Too many requests from this address"),
        (status = 503, description = "WeChat cannot be reached now (Retry-After)"),
    ),
    security(()),
)]
pub(crate) async fn config(
    State(jssdk): State<JsSdk>,
    query: Result<Query<ConfigQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let config = jssdk.config(&query.app_id, &query.url).await?;
    Ok(no_store(Json(ConfigResponse::from(config))))
}
