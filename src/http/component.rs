//! The Open Platform push endpoint: WeChat posts the component_verify_ticket (every 10 minutes)
//! and authorization notices here, encrypted with WXBizMsgCrypt.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::post;

use crate::error::AppError;
use crate::state::AppState;
use crate::wechat::PushParams;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/wechat/component/ticket", post(ticket_push))
}

/// Verify, decrypt and store; answer the plain text `success` WeChat expects. A push that does
/// not verify is a 400 and nothing is stored.
async fn ticket_push(
    State(state): State<AppState>,
    Query(params): Query<PushParams>,
    body: String,
) -> Result<&'static str, AppError> {
    match state.wechat.receive_component_push(&params, &body).await {
        Ok(push) => {
            tracing::info!(?push, "component push accepted");
            Ok("success")
        }
        Err(e) => match AppError::from(e) {
            AppError::Internal(m) => Err(AppError::Internal(m)),
            other => {
                tracing::warn!(error = %other, "component push refused");
                Err(AppError::BadRequest(
                    "push refused: signature, ciphertext or appid does not verify".into(),
                ))
            }
        },
    }
}
