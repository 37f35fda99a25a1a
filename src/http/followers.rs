//! An Official Account's message URL, `GET/POST /api/wechat/mp/{appId}/events`: WeChat's
//! `echostr` check (GET) and its pushes (POST, plain or safe mode). A component's authorized
//! accounts come here too: the component's "message and event URL" is
//! `…/api/wechat/mp/$APPID$/events`, and their pushes are verified with the component's keys.
//! Anyone can post here, so a push that does not verify is a 400 logged at `warn` (never
//! `error`), and the path is rate-limited per IP at the edge (`WXAUTH_LIMIT_MP_EVENTS`). A
//! verified push is answered `success` (WeChat wants an answer within 5 s, or it retries).

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;

use crate::error::AppError;
use crate::login::FollowerSync;
use crate::login::followers::{FollowerError, Received};
use crate::state::AppState;
use crate::wechat::account_messages::MessageQuery;

/// The message URL of official account `{appid}`.
pub const EVENTS_PATH: &str = "/api/wechat/mp/{appid}/events";
/// The prefix the edge counts against `WXAUTH_LIMIT_MP_EVENTS`.
pub const EVENTS_PREFIX: &str = "/api/wechat/mp/";

pub fn routes() -> Router<AppState> {
    Router::new().route(EVENTS_PATH, get(echo).post(push))
}

fn answer(appid: &str, error: FollowerError) -> AppError {
    if let FollowerError::Refused(reason) = &error {
        tracing::warn!(appid, reason = %reason, "message URL request refused");
    }
    error.fault().into()
}

/// The `echostr` check WeChat makes when the URL is saved in its console.
async fn echo(
    State(followers): State<FollowerSync>,
    Path(appid): Path<String>,
    query: Result<Query<MessageQuery>, QueryRejection>,
) -> Result<String, AppError> {
    let Query(query) = query?;
    followers
        .echo(&appid, &query)
        .await
        .map_err(|e| answer(&appid, e))
}

/// A pushed message or event: verified, applied once, answered `success`.
async fn push(
    State(followers): State<FollowerSync>,
    Path(appid): Path<String>,
    query: Result<Query<MessageQuery>, QueryRejection>,
    body: String,
) -> Result<&'static str, AppError> {
    let Query(query) = query?;
    let received = followers
        .receive(&appid, &query, &body)
        .await
        .map_err(|e| answer(&appid, e))?;
    tracing::debug!(appid, ?received, "message URL push");
    if received == Received::Unconfirmed {
        tracing::info!(
            appid,
            "plain-mode event left unconfirmed: WeChat did not answer"
        );
    }
    Ok("success")
}
