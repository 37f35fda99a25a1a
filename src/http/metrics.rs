//! `GET /metrics`: the Prometheus scrape. On the public listener unless
//! `WXAUTH_METRICS_LISTEN` names an address of its own (then only there, see
//! [`crate::serve_metrics`]).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sea_orm::DatabaseConnection;

use crate::state::AppState;

pub const METRICS_PATH: &str = "/metrics";

pub fn routes() -> Router<AppState> {
    Router::new().route(METRICS_PATH, get(public_metrics))
}

async fn public_metrics(State(state): State<AppState>) -> Response {
    if state.config.metrics_listen.is_some() {
        return StatusCode::NOT_FOUND.into_response();
    }
    scrape(&state.db)
}

/// The scrape answer for `db`'s server.
pub fn scrape(db: &DatabaseConnection) -> Response {
    match crate::metrics::render(db) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available: another metrics recorder was installed first",
        )
            .into_response(),
    }
}

/// The router of the metrics-only listener.
pub fn metrics_only(db: DatabaseConnection) -> Router {
    Router::new().route(
        METRICS_PATH,
        get(move || {
            let db = db.clone();
            async move { scrape(&db) }
        }),
    )
}
