//! The edge of the HTTP layer, run before any handler:
//! - requests too large for us are refused in the shape the caller understands — JSON
//!   `{error, error_description}` on the API paths, the HTML error page on the page paths — with
//!   413 (body), 414 (URI) or 431 (headers); plain-text refusals from deeper layers are reshaped;
//! - the per-IP rate limits of the anonymous endpoints ([`limit_for`]) and the per-IP cap on
//!   live sign-in states answer 429 with `Retry-After`;
//! - an authorization request keeps only the known OAuth / OpenID Connect parameters, each within
//!   its length cap ([`crate::oauth::authorize::known_parameters`]); an oversized one is refused
//!   with an error page and never stored.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::h5::{BASE_CALLBACK_PATH, ENTRY_BUILD_PATH, ENTRY_CALLBACK_PATH};
use super::messages;
use super::pages;
use crate::limits::{Limit, Refused};
use crate::login::web_sign_in::{AUTHORIZE_PATH, DEVICE_VERIFICATION_PATH};
use crate::oauth::authorize::known_parameters;
use crate::request_context;
use crate::state::AppState;

/// The longest request target (path and query) we read.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) we read.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The largest request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The Mini Program profile upload (nickname and avatar, multipart).
pub const PROFILE_PATH: &str = "/api/wechat/ma/profile";
/// Its largest body: an avatar of at most 1 MB, the nickname, the session id and the multipart
/// framing around them.
pub const MAX_PROFILE_BODY_BYTES: usize = crate::users::avatars::MAX_UPLOAD_BYTES + 16 * 1024;

/// The largest body a request to `path` may carry.
pub fn max_body_bytes(path: &str) -> usize {
    if path == PROFILE_PATH {
        MAX_PROFILE_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Paths a browser shows: their refusals are HTML pages.
pub fn is_page_path(path: &str) -> bool {
    path == AUTHORIZE_PATH
        || path.starts_with("/oauth/callback/")
        || path == super::logout::LOGOUT_PATH
        || path == ENTRY_CALLBACK_PATH
        || path == BASE_CALLBACK_PATH
        || path.starts_with("/m/")
}

/// A refusal in the caller's shape: the HTML error page on page paths, RFC 6749-style JSON
/// elsewhere. Never cached.
pub fn refusal(status: StatusCode, path: &str, error: &str, message: &str) -> Response {
    if is_page_path(path) {
        // The person reads the catalogue's words; the reason is for the log.
        let (title, said) = match status {
            StatusCode::TOO_MANY_REQUESTS => (messages::TITLE_TOO_MANY, messages::TOO_MANY),
            s if s.is_server_error() => (messages::TITLE_UNAVAILABLE, messages::UNAVAILABLE),
            _ => (messages::TITLE_FAILED, messages::REQUEST_REFUSED),
        };
        let reference = pages::reference(said.code);
        tracing::info!(
            reference = %reference,
            status = status.as_u16(),
            detail = message,
            "error page shown"
        );
        return pages::page(
            status,
            "error.html",
            context! {
                title => pages::text(title),
                message => pages::text(said.text),
                reference => reference,
                reference_label => pages::text(messages::REFERENCE),
                status => status.as_u16(),
            },
        );
    }
    let mut response = (
        status,
        axum::Json(serde_json::json!({ "error": error, "error_description": message })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 429 with `Retry-After`.
pub fn too_many(path: &str, refused: Refused, message: &str) -> Response {
    let mut response = refusal(
        StatusCode::TOO_MANY_REQUESTS,
        path,
        "temporarily_unavailable",
        message,
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(refused.retry_after_secs()),
    );
    response
}

/// Which per-IP limit a request counts against.
pub fn limit_for(method: &Method, path: &str) -> Option<Limit> {
    if method == Method::OPTIONS {
        return None;
    }
    Some(match path {
        // The end-session endpoint verifies signatures for strangers: counted like authorize.
        AUTHORIZE_PATH | super::logout::LOGOUT_PATH => Limit::Authorize,
        ENTRY_BUILD_PATH => Limit::H5Entry,
        ENTRY_CALLBACK_PATH | BASE_CALLBACK_PATH => Limit::Callback,
        p if p.starts_with("/oauth/callback/") => Limit::Callback,
        "/api/wechat/ma/session" => Limit::MaSession,
        "/api/wechat/ma/user" => Limit::MaUser,
        PROFILE_PATH => Limit::MaProfile,
        "/api/wechat/ma/webview-ticket" => Limit::MaWebViewTicket,
        "/api/wechat/ma/phone" | "/api/wechat/ma/phone/known" => Limit::MaPhone,
        "/oauth/userinfo" => Limit::Userinfo,
        "/oauth/introspect" | "/oauth/revoke" => Limit::Introspection,
        "/api/wechat/component/ticket" => Limit::ComponentPush,
        p if p.starts_with(super::followers::EVENTS_PREFIX) => Limit::MpEvents,
        "/oauth/device_authorization" => Limit::DeviceAuthorization,
        super::jssdk::JSSDK_CONFIG_PATH => Limit::JssdkConfig,
        // The verification pages load like the authorization endpoint; the user codes tried
        // there have limits of their own (`oauth::device`).
        "/device" | DEVICE_VERIFICATION_PATH => Limit::Authorize,
        super::device::WXACODE_PATH
        | super::device::MA_DEVICE_PATH
        | super::device::MA_DEVICE_APPROVE_PATH => Limit::MaDeviceApprove,
        _ => return None,
    })
}

/// Paths that may store a new sign-in state.
fn mints_states(method: &Method, path: &str) -> bool {
    method == Method::GET
        && (path == AUTHORIZE_PATH
            || path == DEVICE_VERIFICATION_PATH
            || path == ENTRY_BUILD_PATH
            || path == ENTRY_CALLBACK_PATH)
}

fn header_bytes(request: &Request) -> usize {
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Middleware: sizes, per-IP limits, the live-state cap and the authorization parameters; then
/// reshape plain-text size refusals from deeper layers.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return refusal(
            StatusCode::URI_TOO_LONG,
            &path,
            "invalid_request",
            "the request URI is too long",
        );
    }
    if header_bytes(&request) > MAX_HEADER_BYTES {
        return refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &path,
            "invalid_request",
            "the request headers are too large",
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_bytes(&path) as u64) {
        return too_large(&path);
    }
    if let Some(ip) = request_context::client_ip()
        && let Some(refused) = over_limits(&state, &method, &path, ip).await
    {
        return refused;
    }
    let request = if path == AUTHORIZE_PATH {
        match authorization_parameters(request).await {
            Ok(request) => request,
            Err(refused) => return refused,
        }
    } else {
        request
    };
    let response = next.run(request).await;
    reshape(&path, response)
}

fn too_large(path: &str) -> Response {
    closing(refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        path,
        "invalid_request",
        "the request body is too large",
    ))
}

/// A 413 leaves the body unread, so the connection is not reused: say so (`Connection: close`),
/// or a client that pools connections sends its next request down one the server is closing.
fn closing(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn over_limits(
    state: &AppState,
    method: &Method,
    path: &str,
    ip: IpAddr,
) -> Option<Response> {
    if let Some(limit) = limit_for(method, path)
        && let Err(refused) = state.limits.check(limit, &ip.to_string()).await
    {
        if limit == Limit::ComponentPush {
            tracing::warn!(ip = %ip, "component push rate-limited");
        }
        return Some(too_many(path, refused, "too many requests; retry later"));
    }
    let cap = state.limits.config().live_states_per_ip;
    if state.limits.config().enabled && mints_states(method, path) {
        match state.h5.states.live_for_ip(ip).await {
            Ok(live) if live >= cap => {
                tracing::warn!(ip = %ip, live, "live sign-in states cap reached");
                return Some(too_many(
                    path,
                    Refused {
                        retry_after: std::time::Duration::from_secs(60),
                    },
                    "too many sign-ins in progress from your network; finish one or retry later",
                ));
            }
            Ok(_) => {}
            // The cap protects storage; an error reading it should not stop sign-ins.
            Err(error) => tracing::warn!(%error, "counting live sign-in states"),
        }
    }
    None
}

/// Keep only the known authorization parameters (query of GET, form of the consent POST).
async fn authorization_parameters(request: Request) -> Result<Request, Response> {
    let path = request.uri().path().to_owned();
    let refuse =
        |message: String| refusal(StatusCode::BAD_REQUEST, &path, "invalid_request", &message);
    let (mut parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| refuse("malformed request parameters".into()))?;
    let kept = known_parameters(pairs, &[]).map_err(refuse)?;
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    let target = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    parts.uri = target
        .parse::<Uri>()
        .map_err(|_| refuse("malformed request parameters".into()))?;
    if parts.method != Method::POST {
        return Ok(Request::from_parts(parts, body));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large(&path))?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| refuse("malformed form parameters".into()))?;
    let kept = known_parameters(pairs, &[("csrf_token", 128), ("decision", 16)]).map_err(refuse)?;
    let body = serde_urlencoded::to_string(&kept).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// Size refusals made deeper in the stack (the body limit, hyper's extractors) as plain text get
/// the caller's shape.
fn reshape(path: &str, response: Response) -> Response {
    let status = response.status();
    if !matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::URI_TOO_LONG
            | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    ) {
        return response;
    }
    let shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if shaped {
        return closing(response);
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::URI_TOO_LONG => "the request URI is too long",
        _ => "the request headers are too large",
    };
    closing(refusal(status, path, "invalid_request", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_endpoints_have_limits_and_the_rest_do_not() {
        assert_eq!(
            limit_for(&Method::POST, "/api/wechat/ma/session"),
            Some(Limit::MaSession)
        );
        assert_eq!(
            limit_for(&Method::GET, AUTHORIZE_PATH),
            Some(Limit::Authorize)
        );
        assert_eq!(
            limit_for(&Method::GET, ENTRY_CALLBACK_PATH),
            Some(Limit::Callback)
        );
        assert_eq!(limit_for(&Method::GET, "/healthz"), None);
        assert_eq!(limit_for(&Method::POST, "/oauth/token"), None);
    }

    #[test]
    fn pages_and_apis_are_told_apart() {
        assert!(is_page_path(AUTHORIZE_PATH));
        assert!(is_page_path(ENTRY_CALLBACK_PATH));
        assert!(!is_page_path("/oauth/token"));
        assert!(!is_page_path(ENTRY_BUILD_PATH));
    }
}
