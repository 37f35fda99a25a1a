//! The browser side of OAuth 2.0 / OpenID Connect:
//! - `GET /oauth/authorize`: validate, then sign the user in with WeChat, ask for consent, or
//!   send the browser back to the client with a code (or an error);
//! - `POST /oauth/authorize`: the consent form's answer (CSRF-protected);
//! - `GET /oauth/callback/wechat`: WeChat's redirect after sign-in; starts the browser session
//!   and resumes the authorization request;
//!
//! The end-session endpoint (`/oauth/logout`) is `super::logout`.
//! The decisions live in `oauth::authorize` and `login::web_sign_in`; this file reads cookies,
//! headers and forms, and renders pages and redirects.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;

use super::cookies;
use super::messages::{self, Text};
use super::pages::{self, PageError};
use crate::config::Config;
use crate::login::browser_session::{BROWSER_SESSION_TTL, SESSION_COOKIE};
use crate::login::web_sign_in::{AUTHORIZE_PATH, SIGN_IN_TTL, WECHAT_CALLBACK_PATH};
use crate::login::{BrowserSession, BrowserSessions, LoginError, WeChatSignIn, WebViewSignIn};
use crate::oauth::authorize::{AuthorizationService, AuthorizeError, NextStep, ValidatedRequest};
use crate::oauth::login_tickets::is_web_view_ticket;
use crate::oauth::params::Params;
use crate::state::AppState;

/// Binds a sign-in's `state` to the browser that started it (against login CSRF).
const SIGN_IN_COOKIE: &str = "wxauth_signin";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize).post(consent_answer))
        .route(WECHAT_CALLBACK_PATH, get(wechat_callback))
}

/// The browser's side of the pages under `/oauth` (authorization, device verification): its
/// session, its WeChat sign-in, and the configuration its cookies and pages follow. A sub-state
/// of the application state.
#[derive(Clone)]
pub(crate) struct Browser {
    pub(crate) config: Arc<Config>,
    pub(crate) sessions: BrowserSessions,
    pub(crate) sign_in: WeChatSignIn,
}

impl FromRef<AppState> for Browser {
    fn from_ref(state: &AppState) -> Self {
        Self {
            config: FromRef::from_ref(state),
            sessions: FromRef::from_ref(state),
            sign_in: FromRef::from_ref(state),
        }
    }
}

impl Browser {
    /// The live browser session the request's cookie names.
    pub(crate) async fn current_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<BrowserSession>, PageError> {
        match cookies::read(&self.config.public_url, headers, SESSION_COOKIE) {
            Some(value) => self.sessions.current(&value).await.map_err(storage_error),
            None => Ok(None),
        }
    }

    /// Send the browser to WeChat to sign in (QR page, or the official account inside WeChat),
    /// coming back to `return_to` (the authorization request, or the device verification page).
    pub(crate) async fn start_sign_in(&self, headers: &HeaderMap, return_to: &str) -> Response {
        let held = cookies::read(&self.config.public_url, headers, SIGN_IN_COOKIE);
        match self
            .sign_in
            .start(in_wechat(headers), return_to, held.as_deref())
            .await
        {
            Ok(started) => {
                let mut response = redirect(&started.url);
                if let Some(value) = sign_in_cookie(&self.config, &started.bindings, SIGN_IN_TTL) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
                response
            }
            Err(e) => login_error(e).into_response(),
        }
    }
}

pub(crate) fn redirect(location: &str) -> Response {
    let mut headers = pages::page_headers();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(header::LOCATION, value);
            (StatusCode::FOUND, headers).into_response()
        }
        Err(_) => PageError::bad_request(messages::OAUTH_BAD_REQUEST)
            .detail("the redirect target is not a valid header value")
            .into_response(),
    }
}

fn authorize_error(error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page(message) => PageError::bad_request(messages::OAUTH_BAD_REQUEST)
            .detail(message)
            .into_response(),
        AuthorizeError::Redirect(url) => redirect(url.as_str()),
        AuthorizeError::Internal(message) => {
            tracing::error!(error = %message, "authorization request failed");
            PageError::unavailable(messages::UNAVAILABLE)
                .detail(message)
                .into_response()
        }
    }
}

fn login_error(error: LoginError) -> PageError {
    PageError::from(error.fault())
}

pub(crate) fn storage_error(error: impl std::fmt::Display) -> PageError {
    tracing::error!(error = %error, "browser session storage");
    PageError::unavailable(messages::UNAVAILABLE)
        .detail(format!("browser session storage: {error}"))
}

/// The browser session cookie.
pub(super) fn session_cookie(config: &Config, value: &str, max_age: i64) -> Option<HeaderValue> {
    cookies::set(&config.public_url, SESSION_COOKIE, value, "/oauth", max_age)
}

/// The sign-in binding cookie: over http sent back to the authorization endpoint (which carries
/// the bindings of the browser's other sign-ins along) and the WeChat callback (on https the
/// `__Host-` prefix needs `Path=/`).
fn sign_in_cookie(config: &Config, value: &str, max_age: i64) -> Option<HeaderValue> {
    cookies::set(&config.public_url, SIGN_IN_COOKIE, value, "/oauth", max_age)
}

fn in_wechat(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("MicroMessenger"))
}

fn parse_params(text: &[u8]) -> Result<Params, PageError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(text).map_err(|_| {
        PageError::bad_request(messages::OAUTH_BAD_REQUEST).detail("malformed request parameters")
    })?;
    Params::merge(pairs, Vec::new()).map_err(|e| {
        PageError::bad_request(messages::OAUTH_BAD_REQUEST)
            .detail(e.description.unwrap_or_else(|| "malformed request".into()))
    })
}

/// The authorization request to resume after sign-in: the same parameters without what asked
/// for the sign-in itself (`prompt=login`, `max_age`), so it does not ask again.
fn resume_path(params: &Params) -> String {
    let pairs: Vec<(String, String)> = params
        .pairs()
        .filter(|(k, _)| *k != "max_age")
        .filter_map(|(k, v)| {
            if k == "prompt" {
                let rest: Vec<&str> = v.split(' ').filter(|w| *w != "login").collect();
                (!rest.is_empty()).then(|| (k.to_owned(), rest.join(" ")))
            } else {
                Some((k.to_owned(), v.to_owned()))
            }
        })
        .collect();
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("{AUTHORIZE_PATH}?{query}")
}

/// What to tell the user a scope means, with its place on the page: the standard scopes first
/// in a fixed order, then the others by name.
fn scope_label(scope: &str) -> (u8, Text) {
    match scope {
        "openid" => (0, messages::SCOPE_OPENID),
        "profile" => (1, messages::SCOPE_PROFILE),
        "flow" => (2, messages::SCOPE_FLOW),
        _ => (3, messages::SCOPE_OTHER),
    }
}

/// The host the browser returns to, with its port when it is not the scheme's default.
pub(super) fn return_host(redirect_uri: &url::Url) -> String {
    match (redirect_uri.host_str(), redirect_uri.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        // A native app's private-use scheme has no host: name the app's scheme.
        (None, _) => format!("{}:", redirect_uri.scheme()),
    }
}

/// The scopes as the consent page lists them (name and label), in the page's order.
pub(crate) fn scope_items(scope: &[String]) -> Vec<minijinja::Value> {
    let mut scopes: Vec<(u8, &String, Text)> = scope
        .iter()
        .map(|s| {
            let (rank, label) = scope_label(s);
            (rank, s, label)
        })
        .collect();
    scopes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    scopes
        .into_iter()
        .map(|(_, name, label)| context! { name => name, label => pages::text(label) })
        .collect()
}

async fn consent_page(
    browser: &Browser,
    request: &ValidatedRequest,
    session: &BrowserSession,
    params: &Params,
) -> Response {
    let user_name = match browser.sign_in.account_name(session.account_id).await {
        Ok(name) => name,
        Err(e) => return storage_error(e).into_response(),
    };
    let scopes = scope_items(&request.scope);
    let mut fields: Vec<(String, String)> = params
        .pairs()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    fields.sort();
    let redirect_uri = params
        .get("redirect_uri")
        .and_then(|r| url::Url::parse(r).ok());
    let redirect_host = redirect_uri.as_ref().map(return_host).unwrap_or_default();
    let client = &request.client;
    let mut response = pages::page(
        StatusCode::OK,
        "consent.html",
        context! {
            client_name => client.display_name.as_deref().unwrap_or(&client.client_id),
            client_id => &client.client_id,
            client_logo => &client.logo_url,
            user_name => user_name,
            scopes => scopes,
            fields => fields,
            csrf_token => browser.sessions.csrf_token(session),
            redirect_host => redirect_host,
            t => context! {
                heading => pages::text(messages::CONSENT_HEADING),
                signed_in_as => pages::text(messages::CONSENT_SIGNED_IN_AS),
                asks => pages::text(messages::CONSENT_ASKS),
                allow => pages::text(messages::CONSENT_ALLOW),
                deny => pages::text(messages::CONSENT_DENY),
                returns_to => pages::text(messages::CONSENT_RETURNS_TO),
            },
        },
    );
    // The answer redirects to the client (or, if the session ended meanwhile, to WeChat's sign-in):
    // without these in `form-action` the browser refuses to follow the redirect.
    if response.status() == StatusCode::OK
        && let Some(redirect_uri) = &redirect_uri
        && let Some(csp) =
            pages::csp_with_form_targets(&[redirect_uri, &browser.config.wechat_open_base])
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// Take a valid request as far as it can go for this browser.
async fn proceed(
    authorization: &AuthorizationService,
    browser: &Browser,
    headers: &HeaderMap,
    params: &Params,
    request: ValidatedRequest,
    session: Option<BrowserSession>,
) -> Response {
    let user = session.as_ref().map(|s| browser.sessions.signed_in_user(s));
    match authorization.next_step(&request, user).await {
        Ok(NextStep::Redirect(url)) => redirect(url.as_str()),
        Ok(NextStep::Consent) => match &session {
            Some(session) => consent_page(browser, &request, session, params).await,
            None => PageError::bad_request(messages::OAUTH_FORM_EXPIRED)
                .detail("consent asked without a browser session")
                .into_response(),
        },
        Ok(NextStep::SignIn) => browser.start_sign_in(headers, &resume_path(params)).await,
        Err(e) => authorize_error(e),
    }
}

async fn authorize(
    State(authorization): State<AuthorizationService>,
    State(browser): State<Browser>,
    State(web_view): State<WebViewSignIn>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match parse_params(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let request = match authorization.validate(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(e),
    };
    if let Some(ticket) = params.get("login_hint").filter(|h| is_web_view_ticket(h)) {
        return web_view_sign_in(
            &authorization,
            &browser,
            &web_view,
            &headers,
            &params,
            request,
            ticket,
        )
        .await;
    }
    let session = match browser.current_session(&headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    proceed(
        &authorization,
        &browser,
        &headers,
        &params,
        request,
        session,
    )
    .await
}

/// A page in a Mini Program's `<web-view>` started the request with a web-view ticket as its
/// `login_hint`: spend it for the request's client and go on signed in as its user, in this
/// browser (which gets the session cookie), with no WeChat hop. A ticket that does not redeem
/// sends the client `login_required`, whatever the reason.
async fn web_view_sign_in(
    authorization: &AuthorizationService,
    browser: &Browser,
    web_view: &WebViewSignIn,
    headers: &HeaderMap,
    params: &Params,
    request: ValidatedRequest,
    ticket: &str,
) -> Response {
    let signed_in = match web_view.redeem(ticket, &request.client.client_id).await {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => {
            return redirect(
                request
                    .error_redirect(
                        "login_required",
                        "the web-view ticket is unknown, used, expired or for another client: open the page from the Mini Program again",
                    )
                    .as_str(),
            );
        }
        Err(e) => return login_error(e).into_response(),
    };
    let mut response = proceed(
        authorization,
        browser,
        headers,
        params,
        request,
        Some(signed_in.session),
    )
    .await;
    if let Some(value) = session_cookie(&browser.config, &signed_in.cookie, BROWSER_SESSION_TTL) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The consent form: the original request's parameters, `csrf_token` and `decision`.
async fn consent_answer(
    State(authorization): State<AuthorizationService>,
    State(browser): State<Browser>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = match parse_params(&body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let csrf = params.take("csrf_token").unwrap_or_default();
    let decision = params.take("decision").unwrap_or_default();
    let request = match authorization.validate(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(e),
    };
    let session = match browser.current_session(&headers).await {
        Ok(Some(s)) => s,
        // The session ended while the page was open: sign in again, then ask again.
        Ok(None) => {
            return proceed(&authorization, &browser, &headers, &params, request, None).await;
        }
        Err(e) => return e.into_response(),
    };
    if !browser.sessions.csrf_matches(&session, &csrf) {
        return PageError::bad_request(messages::OAUTH_FORM_EXPIRED)
            .detail("consent form CSRF token does not match the browser session")
            .into_response();
    }
    let user = browser.sessions.signed_in_user(&session);
    match decision.as_str() {
        "approve" => match authorization.approve(&request, user).await {
            Ok(url) => redirect(url.as_str()),
            Err(e) => authorize_error(e),
        },
        "deny" => redirect(authorization.deny(&request).as_str()),
        _ => PageError::bad_request(messages::OAUTH_BAD_REQUEST)
            .detail("decision must be approve or deny")
            .into_response(),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

async fn wechat_callback(
    State(authorization): State<AuthorizationService>,
    State(browser): State<Browser>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return PageError::bad_request(messages::OAUTH_SIGN_IN_REFUSED)
            .detail("malformed WeChat callback query")
            .into_response();
    };
    let held = cookies::read(&browser.config.public_url, &headers, SIGN_IN_COOKIE);
    if query.code.as_deref().is_none_or(str::is_empty) {
        return sign_in_cancelled(
            &authorization,
            &browser.sign_in,
            query.state.as_deref(),
            held.as_deref(),
        )
        .await;
    }
    let signed_in = match browser
        .sign_in
        .finish(
            query.code.as_deref(),
            query.state.as_deref(),
            held.as_deref(),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return login_error(e).into_response(),
    };
    let mut response = redirect(&signed_in.return_to);
    if let Some(value) = session_cookie(&browser.config, &signed_in.cookie, BROWSER_SESSION_TTL) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The user cancelled at WeChat, which came back with `state` only: the client of the request
/// the sign-in was for gets `access_denied` and its own `state` (only in the browser that
/// started the sign-in; elsewhere, and for a sign-in that was not for an authorization request,
/// an error page).
async fn sign_in_cancelled(
    authorization: &AuthorizationService,
    sign_in: &WeChatSignIn,
    state: Option<&str>,
    held: Option<&str>,
) -> Response {
    let return_to = match sign_in.cancelled(state, held).await {
        Ok(r) => r,
        Err(e) => return login_error(e).into_response(),
    };
    let query = return_to
        .strip_prefix(AUTHORIZE_PATH)
        .and_then(|rest| rest.strip_prefix('?'));
    let Some(query) = query else {
        return PageError::bad_request(messages::OAUTH_SIGN_IN_REFUSED)
            .detail("the sign-in was cancelled at WeChat")
            .into_response();
    };
    let params = match parse_params(query.as_bytes()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match authorization.sign_in_cancelled(&params).await {
        Ok(url) => redirect(url.as_str()),
        Err(e) => authorize_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_drops_what_asked_for_the_sign_in() {
        let params = Params::merge(
            vec![
                ("client_id".into(), "c".into()),
                ("prompt".into(), "login consent".into()),
                ("max_age".into(), "0".into()),
                ("state".into(), "a b&c".into()),
            ],
            vec![],
        )
        .unwrap();
        let path = resume_path(&params);
        let query = path.strip_prefix("/oauth/authorize?").unwrap();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        assert!(pairs.contains(&("prompt".into(), "consent".into())));
        assert!(pairs.contains(&("state".into(), "a b&c".into())));
        assert!(!pairs.iter().any(|(k, _)| k == "max_age"));
    }

    #[test]
    fn the_wechat_browser_is_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!in_wechat(&headers));
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static("Mozilla/5.0 (iPhone) MicroMessenger/8.0.49"),
        );
        assert!(in_wechat(&headers));
    }
}
