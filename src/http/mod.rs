//! The HTTP layer: one file per endpoint family. Handlers extract, call one core function and map
//! the result; there is no SQL and no outbound HTTP here.

pub mod admin;
pub mod authorize;
pub mod component;
pub mod context;
pub mod cookies;
pub mod edge;
pub mod h5;
pub mod health;
pub mod metrics;
pub mod mini_program;
pub mod oauth;
pub mod observe;
pub mod pages;

use axum::Router;

use crate::state::AppState;

/// Every route wxauth serves.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(health::routes())
        .merge(oauth::routes())
        .merge(authorize::routes())
        .merge(component::routes())
        .merge(mini_program::routes())
        .merge(h5::routes())
        .merge(pages::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
}
