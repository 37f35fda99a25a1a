//! The Open Platform push endpoint: WeChat posts the component_verify_ticket (every 10 minutes)
//! and authorization notices here, encrypted with WXBizMsgCrypt. Anyone can post here, so a push
//! that does not verify is logged at `warn` (never `error`) and the endpoint is rate-limited per
//! IP at the edge (`WXAUTH_LIMIT_COMPONENT_PUSH`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::post;

use crate::error::AppError;
use crate::state::AppState;
use crate::wechat::{PushParams, WeChat, WeChatError};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/wechat/component/ticket", post(ticket_push))
}

/// Verify, decrypt and store; answer the plain text `success` WeChat expects. A push that does
/// not verify is a 400 and nothing is stored.
async fn ticket_push(
    State(wechat): State<Arc<WeChat>>,
    Query(params): Query<PushParams>,
    body: String,
) -> Result<&'static str, AppError> {
    match wechat.receive_component_push(&params, &body).await {
        Ok(push) => {
            tracing::info!(?push, "component push accepted");
            Ok("success")
        }
        // Our own storage failing is ours to fix; anything else is the sender's doing. Not
        // through `AppError::from`, which logs unknown apps as our misconfiguration at `error`.
        Err(WeChatError::Store(message)) => Err(AppError::Internal(message)),
        Err(error @ WeChatError::StoreBusy(_)) => Err(error.into()),
        Err(error) => {
            tracing::warn!(%error, "component push refused");
            Err(AppError::BadRequest(
                "push refused: signature, ciphertext or appid does not verify".into(),
            ))
        }
    }
}
