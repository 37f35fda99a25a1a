//! The Official Account H5 endpoints (the `MpComponentCommonController` of the system wxauth replaces) and the
//! business landing page:
//! - `GET …/mp/common/entryBuildUrl?appId&next[&redirect=1]`: JSON `{"url": …}` (JSON errors),
//!   or with `redirect=1` a 302 to that URL (HTML error pages), so a link can start a sign-in;
//! - `GET …/mp/common/entryCallback` and `…/baseCallback`: WeChat's redirects; a 302 onwards or
//!   an HTML error page (4xx or 503, never a 500, never a redirect carrying an identity). The
//!   entry callback sets the sign-in's binding cookie ([`H5_BINDING_COOKIE`], HttpOnly, sent only
//!   to the base callback); the base callback reads it, and clears it once it is used;
//! - `GET /m/flow_landing`: the demo business landing page, and `GET /m/flow_landing/client.json`, the
//!   client it signs in with when `wxauth dev` provides one ([`LandingClient`]), else 404.
//!
//! The flow itself is [`H5Login`] in `login::h5`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::messages;
use super::pages::{self, PageError};
use super::{cookies, no_store};
use crate::error::AppError;
use crate::fault::Fault;
use crate::login::h5::STATE_TTL;
use crate::login::redirect::decode_seed_next;
use crate::login::{CallbackParams, H5Error, H5Failure, H5Login, SignInRequest};
use crate::secret::Secret;
use crate::state::AppState;

pub use crate::login::h5::{BASE_CALLBACK_PATH, ENTRY_BUILD_PATH, ENTRY_CALLBACK_PATH};
pub const LANDING_PATH: &str = "/m/flow_landing";
pub const LANDING_CLIENT_PATH: &str = "/m/flow_landing/client.json";
/// The cookie that binds an H5 sign-in's base hop to the browser that did its entry hop.
pub const H5_BINDING_COOKIE: &str = "wxauth_h5";

const LANDING_HTML: &str = include_str!("../../static/flow_landing.html");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ENTRY_BUILD_PATH, get(entry_build_url))
        .route(ENTRY_CALLBACK_PATH, get(entry_callback))
        .route(BASE_CALLBACK_PATH, get(base_callback))
        .route(LANDING_PATH, get(landing))
        .route(LANDING_CLIENT_PATH, get(landing_client))
}

/// The OAuth client the landing page signs in with. Only `wxauth dev` sets one (as a router
/// `Extension`), for its flow-only demo client: a real business page exchanges the ticket from
/// its own back end and never shows a client secret to the browser.
#[derive(Clone, Debug)]
pub struct LandingClient {
    pub client_id: String,
    pub client_secret: Secret,
    /// The entry official account a sign-in started from the page itself uses when the page's
    /// address names none (the demo's entry account).
    pub entry_appid: String,
}

/// A 302 that is never cached and sends no Referer onwards (the URLs carry states and tickets).
fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => {
            let mut response = (StatusCode::FOUND, pages::page_headers()).into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => PageError::unavailable(messages::UNAVAILABLE)
            .detail("the redirect target is not a valid header value")
            .into_response(),
    }
}

impl From<H5Failure> for PageError {
    fn from(failure: H5Failure) -> Self {
        let detail = failure.error.to_string();
        let page = match failure.error {
            H5Error::BadRequest(_) => PageError::bad_request(messages::H5_BAD_LINK),
            H5Error::Cancelled => PageError::bad_request(messages::H5_CANCELLED),
            H5Error::Next(_) => PageError::bad_request(messages::H5_NEXT_REFUSED),
            H5Error::UnknownState => PageError::bad_request(messages::H5_SPENT),
            H5Error::Mismatch(_) => PageError::bad_request(messages::H5_TAMPERED),
            H5Error::OtherBrowser => PageError::forbidden(messages::H5_OTHER_BROWSER),
            H5Error::Relink => PageError::forbidden(messages::H5_RELINK),
            H5Error::WeChat(error) => match error.fault() {
                Fault::Caller(_) => PageError::bad_request(messages::WECHAT_CODE_REFUSED),
                Fault::Unavailable(_) => PageError::unavailable(messages::WECHAT_UNAVAILABLE),
                Fault::Internal(message) => {
                    tracing::error!(error = %message, "H5 sign-in failed");
                    PageError::unavailable(messages::UNAVAILABLE)
                }
            },
            H5Error::NotConfigured(message) => {
                tracing::error!(reason = %message, "H5 sign-in is misconfigured");
                PageError::unavailable(messages::NOT_SET_UP)
            }
            H5Error::Store(message) => {
                tracing::error!(error = %message, "H5 sign-in store failure");
                PageError::unavailable(messages::UNAVAILABLE)
            }
        };
        let page = page.detail(detail);
        page.with_start_over(failure.start_over.map(String::from))
    }
}

impl From<H5Failure> for AppError {
    fn from(failure: H5Failure) -> Self {
        match failure.error {
            error @ (H5Error::BadRequest(_)
            | H5Error::Cancelled
            | H5Error::Next(_)
            | H5Error::UnknownState
            | H5Error::Mismatch(_)
            | H5Error::OtherBrowser
            | H5Error::Relink) => AppError::BadRequest(error.to_string()),
            // Never a 500 on the sign-in path; the detail of our own trouble is only logged.
            H5Error::WeChat(error) => match error.fault() {
                Fault::Internal(message) => {
                    tracing::error!(error = %message, "H5 sign-in failed");
                    AppError::TemporarilyUnavailable(
                        "sign-in is temporarily unavailable".to_owned(),
                    )
                }
                fault => fault.into(),
            },
            H5Error::NotConfigured(message) => {
                tracing::error!(reason = %message, "H5 sign-in is misconfigured");
                AppError::TemporarilyUnavailable(message)
            }
            H5Error::Store(message) => {
                tracing::error!(error = %message, "H5 sign-in store failure");
                AppError::TemporarilyUnavailable("sign-in is temporarily unavailable".to_owned())
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct BuildQuery {
    #[serde(rename = "appId")]
    app_id: Option<String>,
    next: Option<String>,
    redirect: Option<String>,
    /// The client that will redeem the ticket.
    #[serde(rename = "clientId")]
    client_id: Option<String>,
    /// The page's own value, returned unchanged in the final redirect.
    nonce: Option<String>,
}

/// Step 1. JSON by default (the replaced system's front ends fetch it); `redirect=1` for a plain link.
async fn entry_build_url(
    State(h5): State<Arc<H5Login>>,
    query: Result<Query<BuildQuery>, QueryRejection>,
) -> Response {
    let (query, rejected) = match query {
        Ok(Query(q)) => (q, None),
        Err(rejection) => (BuildQuery::default(), Some(rejection.body_text())),
    };
    let as_redirect = query.redirect.as_deref() == Some("1");
    let result = match rejected {
        Some(message) => Err(H5Failure::from(H5Error::BadRequest(message))),
        None => {
            let next = decode_seed_next(query.next.as_deref().unwrap_or_default());
            let request = SignInRequest {
                client_id: query.client_id.as_deref(),
                nonce: query.nonce.as_deref(),
            };
            h5.entry_build_url(query.app_id.as_deref().unwrap_or_default(), &next, request)
                .await
        }
    };
    match (result, as_redirect) {
        (Ok(url), true) => found(&url),
        (Ok(url), false) => no_store(Json(json!({ "url": url }))),
        (Err(failure), true) => PageError::from(failure).into_response(),
        (Err(failure), false) => AppError::from(failure).into_response(),
    }
}

/// What a callback handler needs: the flow, WeChat's parameters, the binding cookie the browser
/// sent and our public URL (for setting cookies). A malformed query string is a 400 page like
/// any other bad sign-in link.
struct Callback {
    flow: Arc<H5Login>,
    params: CallbackParams,
    binding: Option<String>,
    public_url: Url,
}

impl FromRequestParts<AppState> for Callback {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Query(params) = Query::<CallbackParams>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                PageError::bad_request(messages::H5_BAD_LINK).detail(rejection.body_text())
            })?;
        Ok(Self {
            flow: state.h5.clone(),
            params,
            binding: cookies::read(&state.config.public_url, &parts.headers, H5_BINDING_COOKIE),
            public_url: state.config.public_url.clone(),
        })
    }
}

/// The binding cookie: HttpOnly, sent back only to the base callback, living as long as the
/// base state (`max_age` 0 deletes it).
fn binding_cookie(public_url: &Url, value: &str, max_age: i64) -> Option<HeaderValue> {
    cookies::set(
        public_url,
        H5_BINDING_COOKIE,
        value,
        BASE_CALLBACK_PATH,
        max_age,
    )
}

/// Step 2: on to the base account, with this browser's binding cookie.
async fn entry_callback(callback: Callback) -> Result<Response, PageError> {
    let hop = callback.flow.entry_callback(&callback.params).await?;
    let mut response = found(&hop.authorize_url);
    match binding_cookie(&callback.public_url, &hop.binding, STATE_TTL) {
        Some(cookie) => {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        None => {
            return Err(PageError::unavailable(messages::UNAVAILABLE)
                .detail("the binding cookie could not be set"));
        }
    }
    Ok(response)
}

/// Step 3: back to `next` with the identity and a login ticket, if this browser started it.
async fn base_callback(callback: Callback) -> Result<Response, PageError> {
    let signed_in = callback
        .flow
        .base_callback(&callback.params, callback.binding.as_deref())
        .await?;
    tracing::info!(
        entry_appid = %signed_in.entry_appid,
        account = signed_in.account_id,
        "H5 sign-in complete"
    );
    let mut response = found(signed_in.redirect.as_str());
    if let Some(cookie) = binding_cookie(&callback.public_url, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn landing() -> Response {
    pages::html(StatusCode::OK, LANDING_HTML.to_owned())
}

async fn landing_client(client: Option<Extension<LandingClient>>) -> Response {
    match client {
        Some(Extension(client)) => no_store(Json(json!({
            "client_id": client.client_id,
            "client_secret": client.client_secret.expose(),
            "entry_app_id": client.entry_appid,
        }))),
        None => AppError::NotFound(
            "no landing-page client on this server (only `wxauth dev` provides one)".to_owned(),
        )
        .into_response(),
    }
}
