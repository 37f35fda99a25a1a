//! `GET /metrics`: the Prometheus scrape. On the public listener unless
//! `WXAUTH_METRICS_LISTEN` names an address of its own (then only there, see
//! [`crate::serve_metrics`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::Config;
use crate::health::Health;
use crate::state::AppState;

pub const METRICS_PATH: &str = "/metrics";

pub fn routes() -> Router<AppState> {
    Router::new().route(METRICS_PATH, get(public_metrics))
}

async fn public_metrics(
    State(config): State<Arc<Config>>,
    State(health): State<Health>,
) -> Response {
    if config.metrics_listen.is_some() {
        return StatusCode::NOT_FOUND.into_response();
    }
    scrape(&health)
}

/// The scrape answer for `health`'s database server.
pub fn scrape(health: &Health) -> Response {
    match health.scrape() {
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
pub fn metrics_only(health: Health) -> Router {
    Router::new().route(
        METRICS_PATH,
        get(move || {
            let health = health.clone();
            async move { scrape(&health) }
        }),
    )
}
