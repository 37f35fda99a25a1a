//! The HTTP layer: one file per endpoint family. Handlers extract, call one core function and map
//! the result; there is no SQL and no outbound HTTP here.

pub mod admin;
pub mod api_doc;
pub mod authorize;
pub mod component;
pub mod console;
pub mod console_i18n;
pub mod context;
pub mod cookies;
pub mod cors;
pub mod credentials;
pub mod device;
pub mod edge;
pub mod followers;
pub mod front_page;
pub mod h5;
pub mod health;
pub mod jssdk;
pub mod logout;
pub mod messages;
pub mod metrics;
pub mod mini_program;
pub mod oauth;
pub mod observe;
pub mod pages;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `response`, never cached (`Cache-Control: no-store`, and `Pragma: no-cache` for HTTP/1.0
/// caches): for answers that carry tokens, secrets, tickets or personal data (RFC 6749 §5.1).
pub fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Every route wxauth serves.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(health::routes())
        .merge(front_page::routes())
        .merge(oauth::routes())
        .merge(authorize::routes())
        .merge(logout::routes())
        .merge(device::routes())
        .merge(component::routes())
        .merge(followers::routes())
        .merge(mini_program::routes())
        .merge(h5::routes())
        .merge(jssdk::routes())
        .merge(credentials::routes())
        .merge(pages::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
        .merge(console::routes())
        .merge(api_doc::routes())
}
