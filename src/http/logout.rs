//! The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0), `GET` and `POST`
//! `/oauth/logout`: reads the parameters (query or form) and the session cookie, asks
//! [`crate::login::logout`] what to do, and renders the confirmation page, the signed-out page,
//! a refusal page or the redirect back to the client.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;

use super::authorize::{redirect, return_host, session_cookie, storage_error};
use super::cookies;
use super::messages;
use super::pages::{self, PageError};
use crate::config::Config;
use crate::login::browser_session::SESSION_COOKIE;
use crate::login::logout::{Logout, LogoutError, LogoutStep};
use crate::oauth::end_session::{EndSessionParams, EndSessionRequest};
use crate::state::AppState;

/// The end-session endpoint.
pub const LOGOUT_PATH: &str = "/oauth/logout";

pub fn routes() -> Router<AppState> {
    Router::new().route(
        LOGOUT_PATH,
        get(
            |logout, config, headers, RawQuery(query): RawQuery| async move {
                end_session(
                    logout,
                    config,
                    headers,
                    query.unwrap_or_default().into_bytes(),
                )
                .await
            },
        )
        .post(post_end_session),
    )
}

/// A form POST from the client's site brings no session cookie (it is `SameSite=Lax`): the
/// browser is sent on to `GET` with the same parameters, a top-level navigation that carries the
/// cookie. The confirmation form (same-site, with its CSRF token) is answered here.
async fn post_end_session(
    State(logout): State<Logout>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let has_cookie = cookies::read(&config.public_url, &headers, SESSION_COOKIE).is_some();
    let confirmation = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .is_ok_and(|pairs| pairs.iter().any(|(k, _)| k == "csrf_token"));
    if !has_cookie && !confirmation {
        let query = String::from_utf8_lossy(&body);
        let mut response = redirect(&format!("{LOGOUT_PATH}?{query}"));
        *response.status_mut() = StatusCode::SEE_OTHER;
        return response;
    }
    end_session(State(logout), State(config), headers, body.to_vec()).await
}

/// The parameters, and the confirmation form's CSRF token.
#[derive(Deserialize)]
struct EndSessionForm {
    #[serde(flatten)]
    params: EndSessionParams,
    csrf_token: Option<String>,
}

fn refused(detail: impl std::fmt::Display) -> Response {
    PageError::bad_request(messages::LOGOUT_REFUSED)
        .detail(detail)
        .into_response()
}

async fn end_session(
    State(logout): State<Logout>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    input: Vec<u8>,
) -> Response {
    // A repeated parameter is refused like any other malformed request.
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(&input) {
        Ok(pairs) => pairs,
        Err(_) => return refused("malformed end-session parameters"),
    };
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return refused("a repeated end-session parameter");
    }
    let form: EndSessionForm = match serde_urlencoded::from_bytes(&input) {
        Ok(form) => form,
        Err(_) => return refused("malformed end-session parameters"),
    };
    let cookie = cookies::read(&config.public_url, &headers, SESSION_COOKIE);
    match logout
        .end_session(cookie.as_deref(), &form.params, form.csrf_token.as_deref())
        .await
    {
        Ok(LogoutStep::Confirm {
            csrf_token,
            user_name,
            request,
        }) => confirm_page(&form.params, user_name, &csrf_token, &request),
        Ok(LogoutStep::Done {
            redirect: to,
            ended,
        }) => {
            let mut response = match to {
                Some(url) => redirect(url.as_str()),
                None => signed_out_page(),
            };
            if (ended || cookie.is_some())
                && let Some(value) = session_cookie(&config, "", 0)
            {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(LogoutError::Refused(e)) => refused(e),
        Err(LogoutError::Storage(e)) => storage_error(e).into_response(),
    }
}

/// The plain page that says the person is signed out.
fn signed_out_page() -> Response {
    pages::page(
        StatusCode::OK,
        "signed_out.html",
        context! {
            t => context! {
                heading => pages::text(messages::TITLE_SIGNED_OUT),
                message => pages::text(messages::SIGNED_OUT.text),
                close => pages::text(messages::SIGNED_OUT_CLOSE),
            },
        },
    )
}

/// Ask before signing out: the request's parameters go back with the session's CSRF token.
fn confirm_page(
    params: &EndSessionParams,
    user_name: Option<String>,
    csrf_token: &str,
    request: &EndSessionRequest,
) -> Response {
    let fields: Vec<(&str, &str)> = [
        ("id_token_hint", &params.id_token_hint),
        ("client_id", &params.client_id),
        ("post_logout_redirect_uri", &params.post_logout_redirect_uri),
        ("state", &params.state),
        ("ui_locales", &params.ui_locales),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect();
    let mut response = pages::page(
        StatusCode::OK,
        "logout_confirm.html",
        context! {
            user_name => user_name,
            fields => fields,
            csrf_token => csrf_token,
            redirect_host => request.redirect.as_ref().map(return_host),
            t => context! {
                heading => pages::text(messages::LOGOUT_HEADING),
                question => pages::text(messages::LOGOUT_QUESTION),
                confirm => pages::text(messages::LOGOUT_CONFIRM),
                signed_in_as => pages::text(messages::CONSENT_SIGNED_IN_AS),
                returns_to => pages::text(messages::LOGOUT_RETURNS_TO),
            },
        },
    );
    // The answer redirects to the client: `form-action` must allow it.
    if response.status() == StatusCode::OK
        && let Some(to) = &request.redirect
        && let Some(csp) = pages::csp_with_form_targets(&[to])
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}
