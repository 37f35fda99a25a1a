//! The device authorization grant's HTTP face (RFC 8628):
//! - `POST /oauth/device_authorization`: a device asks for a device code and a user code;
//! - `GET /device`: the verification URI the device shows; it leads to `/oauth/device` (under
//!   `/oauth`, where the browser session cookie is sent), keeping `user_code` as a prefill only;
//! - `GET /oauth/device`: sign in with WeChat (the same sign-in as `/oauth/authorize`), then the
//!   form asking for the user code;
//! - `POST /oauth/device`: the code form (CSRF-protected) → the consent page naming the client;
//!   the consent form (`decision`) → approved or denied.
//!
//! - With a Mini Program set to approve devices (`WXAUTH_DEVICE_MINI_PROGRAM`), `GET /device`
//!   with a `user_code` shows the Mini Program code (`GET /device/wxacode?user_code=…`, a PNG)
//!   to scan with WeChat, and a link to sign in in the browser instead; the Mini Program asks
//!   `POST /api/wechat/ma/device` what the device wants and answers at
//!   `POST /api/wechat/ma/device/approve` (`login::device_approval`).
//!
//! Nothing is approved by a GET: a `verification_uri_complete` link only fills in the form (or
//! shows the code), and the person still confirms it (a phishing link cannot approve anything by
//! being opened). The decisions live in `oauth::device`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, extract::Query};
use minijinja::context;
use serde::Deserialize;

use super::authorize::{Browser, redirect, scope_items, storage_error};
use super::messages::{self, Message};
use super::no_store;
use super::pages::{self, PageError};
use crate::config::Config;
use crate::error::AppError;
use crate::login::BrowserSession;
use crate::login::device_approval::{ApprovalError, DeviceApproval};
use crate::login::web_sign_in::DEVICE_VERIFICATION_PATH;
use crate::oauth::device::{
    self, Decision, DeviceAuthorizations, UserCodeError, VERIFICATION_PATH,
};
use crate::oauth::{ClientRegistry, OAuthError, OAuthServices};
use crate::state::AppState;

/// Where devices ask for codes.
pub const DEVICE_AUTHORIZATION_PATH: &str = "/oauth/device_authorization";
/// The Mini Program code of a user code (a PNG).
pub const WXACODE_PATH: &str = "/device/wxacode";
/// Where the Mini Program asks what a device wants.
pub const MA_DEVICE_PATH: &str = "/api/wechat/ma/device";
/// Where the Mini Program answers for a device.
pub const MA_DEVICE_APPROVE_PATH: &str = "/api/wechat/ma/device/approve";
/// The longest user code the pages take (a code is 9 characters; people add spaces).
const USER_CODE_CAP: usize = 32;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(DEVICE_AUTHORIZATION_PATH, post(device_authorization))
        .route(VERIFICATION_PATH, get(verification_uri))
        .route(DEVICE_VERIFICATION_PATH, get(code_form).post(answer))
        .route(WXACODE_PATH, get(wxacode))
        .route(MA_DEVICE_PATH, post(describe))
        .route(MA_DEVICE_APPROVE_PATH, post(approve))
}

#[utoipa::path(post, path = "/oauth/device_authorization", tag = "oauth",
    summary = "Device authorization request (RFC 8628 §3.1)",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "client_id=...&scope=... (confidential clients authenticate as at the token endpoint)"),
    responses(
        (status = 200, description = "Device code, user code and verification URI (never cached)",
            body = crate::oauth::device::DeviceAuthorizationResponse),
        (status = 400, description = "invalid_request, invalid_scope, unauthorized_client"),
        (status = 401, description = "invalid_client"),
    ),
    security((), ("client_basic" = [])),
)]
pub(crate) async fn device_authorization(
    State(oauth): State<OAuthServices>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let params = super::oauth::params(&headers, &body)?;
    let response = device::authorize_device(
        &oauth,
        super::oauth::authorization(&headers),
        params,
        &config.issuer(),
    )
    .await?;
    Ok(no_store(Json(response)))
}

#[derive(Deserialize)]
struct Prefill {
    user_code: Option<String>,
}

impl Prefill {
    /// The prefilled code, if it is of a sane length (it is only shown, never looked up here).
    fn code(&self) -> Option<&str> {
        self.user_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty() && c.len() <= USER_CODE_CAP)
    }
}

/// The path of the code form, prefilled with `code`.
fn form_path(code: Option<&str>) -> String {
    match code {
        Some(code) => format!(
            "{DEVICE_VERIFICATION_PATH}?{}",
            serde_urlencoded::to_string([("user_code", code)]).unwrap_or_default()
        ),
        None => DEVICE_VERIFICATION_PATH.to_owned(),
    }
}

/// `GET /device`: with a user code and a Mini Program set to approve devices, the page showing
/// its code; otherwise on to the page under `/oauth`.
async fn verification_uri(
    State(approval): State<DeviceApproval>,
    query: Result<Query<Prefill>, QueryRejection>,
) -> Response {
    let code = query.as_ref().ok().and_then(|Query(q)| q.code());
    match code {
        Some(code) if approval.enabled() => scan_page(code),
        _ => redirect(&form_path(code)),
    }
}

/// The page with the Mini Program code of `code` (drawn when the image is fetched).
fn scan_page(code: &str) -> Response {
    let code_src = format!(
        "{WXACODE_PATH}?{}",
        serde_urlencoded::to_string([("user_code", code)]).unwrap_or_default()
    );
    pages::page(
        StatusCode::OK,
        "device.html",
        context! {
            step => "scan",
            user_code => code,
            code_src => code_src,
            sign_in_href => form_path(Some(code)),
            t => context! {
                heading => pages::text(messages::DEVICE_HEADING),
                scan => pages::text(messages::DEVICE_SCAN),
                scan_alt => pages::text(messages::DEVICE_SCAN_ALT),
                or_here => pages::text(messages::DEVICE_OR_HERE),
            },
        },
    )
}

/// An approval failure as JSON (429 with `Retry-After` when too many codes were tried).
fn approval_error(error: ApprovalError) -> AppError {
    match error {
        ApprovalError::TooMany { retry_after_secs } => AppError::OAuth(
            OAuthError::too_many_requests(retry_after_secs, error.to_string()),
        ),
        error => error.fault().into(),
    }
}

/// `GET /device/wxacode?user_code=…`: the Mini Program code whose scene is the user code.
async fn wxacode(
    State(approval): State<DeviceApproval>,
    query: Result<Query<Prefill>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(prefill) = query?;
    let code = prefill.code().unwrap_or_default();
    let image = approval.code_image(code).await.map_err(approval_error)?;
    Ok((
        [
            (header::CONTENT_TYPE, image.content_type),
            // It names a user code: for this browser only, and not for long.
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        image.bytes.clone(),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MaDeviceRequest {
    /// The Mini Program session (`/api/wechat/ma/session`).
    session_id: String,
    /// The code the page got as its `scene` (`XXXXXXXX` or `XXXX-XXXX`).
    user_code: String,
    /// `approve` or `deny` (approve only).
    decision: Option<String>,
}

/// `POST /api/wechat/ma/device`: what the device waiting for the code asks, for the Mini
/// Program page to show before the person answers.
#[utoipa::path(post, path = "/api/wechat/ma/device", tag = "mini_program",
    summary = "What the device waiting for a user code asks (the Mini Program's approval page)",
    request_body = MaDeviceRequest,
    responses(
        (status = 200, description = "{clientId, clientName, scope, userCode}"),
        (status = 400, description = "Unknown session, or a user code that is not valid (one answer)"),
        (status = 429, description = "Too many user codes tried"),
    ),
    security(()),
)]
pub(crate) async fn describe(
    State(approval): State<DeviceApproval>,
    State(clients): State<ClientRegistry>,
    body: Result<Json<MaDeviceRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, AppError> {
    let Json(request) = body?;
    let asked = approval
        .describe(&request.session_id, &request.user_code)
        .await
        .map_err(approval_error)?;
    let client_name = clients
        .get(&asked.client_id)
        .await
        .map_err(AppError::internal)?
        .and_then(|c| c.display_name);
    Ok(no_store(Json(serde_json::json!({
        "clientId": asked.client_id,
        "clientName": client_name,
        "scope": asked.scope.join(" "),
        "userCode": asked.user_code,
    }))))
}

/// `POST /api/wechat/ma/device/approve`: the person's answer in the Mini Program.
#[utoipa::path(post, path = "/api/wechat/ma/device/approve", tag = "mini_program",
    summary = "Approve or deny a device (RFC 8628) from the Mini Program",
    request_body = MaDeviceRequest,
    responses(
        (status = 200, description = "{decision, clientId}: the device's next poll gets tokens (or access_denied)"),
        (status = 400, description = "Unknown session, or a user code that is not valid (one answer)"),
        (status = 429, description = "Too many user codes tried"),
        (status = 503, description = "No Mini Program is set to approve devices"),
    ),
    security(()),
)]
pub(crate) async fn approve(
    State(approval): State<DeviceApproval>,
    body: Result<Json<MaDeviceRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, AppError> {
    let Json(request) = body?;
    let decision = match request.decision.as_deref() {
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        _ => {
            return Err(AppError::BadRequest(
                "decision must be approve or deny".into(),
            ));
        }
    };
    let client_id = approval
        .decide(&request.session_id, &request.user_code, decision)
        .await
        .map_err(approval_error)?;
    Ok(no_store(Json(serde_json::json!({
        "decision": request.decision,
        "clientId": client_id,
    }))))
}

/// The code form, or the form again with `error` and the status it comes with.
fn code_page(
    browser: &Browser,
    session: &BrowserSession,
    code: Option<&str>,
    error: Option<(StatusCode, Message)>,
) -> Response {
    let (status, message) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    pages::page(
        status,
        "device.html",
        context! {
            step => "code",
            user_code => code.unwrap_or_default(),
            csrf_token => browser.sessions.csrf_token(session),
            error => message.map(|m| pages::text(m.text)),
            t => context! {
                heading => pages::text(messages::DEVICE_HEADING),
                enter_code => pages::text(messages::DEVICE_ENTER_CODE),
                code_label => pages::text(messages::DEVICE_CODE_LABEL),
                next => pages::text(messages::DEVICE_NEXT),
            },
        },
    )
}

/// `GET /oauth/device`: sign in first (returning here), then the code form.
async fn code_form(
    State(browser): State<Browser>,
    headers: HeaderMap,
    query: Result<Query<Prefill>, QueryRejection>,
) -> Response {
    let code = query.as_ref().ok().and_then(|Query(q)| q.code());
    match browser.current_session(&headers).await {
        Ok(Some(session)) => code_page(&browser, &session, code, None),
        Ok(None) => browser.start_sign_in(&headers, &form_path(code)).await,
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct AnswerForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    user_code: String,
    decision: Option<String>,
}

/// The consent page for the device waiting for `code`.
async fn consent_page(
    browser: &Browser,
    clients: &ClientRegistry,
    session: &BrowserSession,
    pending: device::PendingDevice,
) -> Response {
    let client = match clients.get(&pending.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return PageError::bad_request(messages::DEVICE_CODE_REFUSED)
                .detail("the device's client no longer exists")
                .into_response();
        }
        Err(e) => return storage_error(e).into_response(),
    };
    let user_name = match browser.sign_in.account_name(session.account_id).await {
        Ok(name) => name,
        Err(e) => return storage_error(e).into_response(),
    };
    pages::page(
        StatusCode::OK,
        "consent.html",
        context! {
            client_name => client.display_name.as_deref().unwrap_or(&client.client_id),
            client_id => &client.client_id,
            client_logo => &client.logo_url,
            user_name => user_name,
            scopes => scope_items(&pending.scope),
            fields => vec![("user_code", pending.user_code.as_str())],
            csrf_token => browser.sessions.csrf_token(session),
            form_action => DEVICE_VERIFICATION_PATH,
            device_code => &pending.user_code,
            t => context! {
                heading => pages::text(messages::CONSENT_HEADING),
                signed_in_as => pages::text(messages::CONSENT_SIGNED_IN_AS),
                asks => pages::text(messages::CONSENT_ASKS),
                allow => pages::text(messages::CONSENT_ALLOW),
                deny => pages::text(messages::CONSENT_DENY),
                device_check => pages::text(messages::DEVICE_CHECK_CODE),
            },
        },
    )
}

/// The page after the decision.
fn done_page(decision: Decision) -> Response {
    let (heading, message) = match decision {
        Decision::Approve => (messages::DEVICE_APPROVED, messages::DEVICE_RETURN),
        Decision::Deny => (messages::DEVICE_DENIED, messages::DEVICE_DENIED_HINT),
    };
    pages::page(
        StatusCode::OK,
        "device.html",
        context! {
            step => "done",
            approved => decision == Decision::Approve,
            t => context! {
                heading => pages::text(heading),
                message => pages::text(message),
            },
        },
    )
}

/// What a refused user code looks like: the form again, with one answer for every failure.
fn refused(
    browser: &Browser,
    session: &BrowserSession,
    code: &str,
    error: UserCodeError,
) -> Response {
    match error {
        UserCodeError::Refused => code_page(
            browser,
            session,
            Some(code),
            Some((StatusCode::BAD_REQUEST, messages::DEVICE_CODE_REFUSED)),
        ),
        UserCodeError::TooMany { retry_after_secs } => {
            let mut response = code_page(
                browser,
                session,
                Some(code),
                Some((StatusCode::TOO_MANY_REQUESTS, messages::TOO_MANY)),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
            response
        }
        UserCodeError::Storage(e) => storage_error(e).into_response(),
    }
}

/// `POST /oauth/device`: the code form (no `decision`) or the consent form.
async fn answer(
    State(browser): State<Browser>,
    State(devices): State<DeviceAuthorizations>,
    State(clients): State<ClientRegistry>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<AnswerForm>(&body) else {
        return PageError::bad_request(messages::OAUTH_BAD_REQUEST)
            .detail("malformed device form")
            .into_response();
    };
    let code: String = form.user_code.trim().chars().take(USER_CODE_CAP).collect();
    let session = match browser.current_session(&headers).await {
        Ok(Some(session)) => session,
        // The session ended while the page was open: sign in again, then confirm again.
        Ok(None) => {
            return browser
                .start_sign_in(&headers, &form_path(Some(&code)))
                .await;
        }
        Err(e) => return e.into_response(),
    };
    if !browser.sessions.csrf_matches(&session, &form.csrf_token) {
        return PageError::bad_request(messages::OAUTH_FORM_EXPIRED)
            .detail("device form CSRF token does not match the browser session")
            .into_response();
    }
    let decision = match form.decision.as_deref() {
        None => {
            return match devices.pending(&code).await {
                Ok(pending) => consent_page(&browser, &clients, &session, pending).await,
                Err(e) => refused(&browser, &session, &code, e),
            };
        }
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        Some(_) => {
            return PageError::bad_request(messages::OAUTH_BAD_REQUEST)
                .detail("decision must be approve or deny")
                .into_response();
        }
    };
    match devices
        .decide(&code, session.account_id, session.auth_time, decision)
        .await
    {
        Ok(_) => done_page(decision),
        Err(e) => refused(&browser, &session, &code, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefill_is_kept_as_a_query() {
        assert_eq!(form_path(None), "/oauth/device");
        assert_eq!(
            form_path(Some("BCDF-GHJK")),
            "/oauth/device?user_code=BCDF-GHJK"
        );
        assert_eq!(form_path(Some("a b&c")), "/oauth/device?user_code=a+b%26c");
    }
}
