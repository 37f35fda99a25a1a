//! HTML for people: minijinja templates from `static/templates/`, embedded at compile time and
//! auto-escaped (every template name ends in `.html`), sent with the headers every wxauth page
//! shares (a strict Content-Security-Policy, `no-store`, `no-referrer`, `nosniff`); the shared
//! stylesheet and scripts under `/static/`; and [`PageError`], the HTML counterpart of
//! [`AppError`](crate::error::AppError) for endpoints a browser navigates to, where a JSON body
//! would be a dead end. A page error is a 4xx or a 503, never a 500 and never a redirect.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::{Environment, Value, context};

use crate::fault::Fault;
use crate::state::AppState;

/// The templates, by name; `base.html` is the layout the others extend.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../static/templates/base.html"),
    ),
    (
        "error.html",
        include_str!("../../static/templates/error.html"),
    ),
    (
        "consent.html",
        include_str!("../../static/templates/consent.html"),
    ),
    (
        "home.html",
        include_str!("../../static/templates/home.html"),
    ),
];

/// Static files served under `/static/`: path, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/static/wxauth.css",
        "text/css; charset=utf-8",
        include_str!("../../static/wxauth.css"),
    ),
    (
        "/static/flow_landing.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/flow_landing.js"),
    ),
    (
        "/static/oidc_demo.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/oidc_demo.js"),
    ),
];

/// The OpenID Connect demo relying party (a single-page app, public client `demo-spa` in
/// `wxauth dev`).
pub const OIDC_DEMO_PATH: &str = "/m/oidc_demo";
const OIDC_DEMO_HTML: &str = include_str!("../../static/oidc_demo.html");

/// Pages load only our own styles and scripts, call only us, and show avatars from anywhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     connect-src 'self'; img-src 'self' https: http: data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";
const FORM_ACTION: &str = "form-action 'self'";

/// The pages' Content-Security-Policy, with `form-action` also allowing the origins of
/// `targets`. Browsers check `form-action` against every redirect that follows a submission
/// (Chromium does), so a form whose answer redirects elsewhere — the consent form sends the
/// browser back to the client, or to WeChat to sign in again — must name where it may land.
pub fn csp_with_form_targets(targets: &[&url::Url]) -> Option<HeaderValue> {
    let sources: Vec<String> = targets
        .iter()
        .map(|target| match target.origin() {
            url::Origin::Tuple(..) => target.origin().ascii_serialization(),
            // A native app's private-use scheme (RFC 8252 §7.1): a scheme source.
            url::Origin::Opaque(_) => format!("{}:", target.scheme()),
        })
        .collect();
    let form_action = format!("{FORM_ACTION} {}", sources.join(" "));
    HeaderValue::from_str(&CONTENT_SECURITY_POLICY.replace(FORM_ACTION, form_action.trim_end()))
        .ok()
}

/// The compiled templates: constant data built once from the embedded sources (a template that
/// does not compile is logged and then fails to render; a unit test keeps that from shipping).
static TEMPLATE_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(template = name, %error, "template does not compile");
        }
    }
    env
});

/// Render template `name` with `ctx`.
pub fn render(name: &str, ctx: Value) -> Result<String, minijinja::Error> {
    TEMPLATE_ENV.get_template(name)?.render(ctx)
}

/// The headers of every page and of redirects that carry login results.
pub fn page_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
}

/// An HTML response with the page headers.
pub fn html(status: StatusCode, body: String) -> Response {
    (status, page_headers(), Html(body)).into_response()
}

/// Render `name` into a page; a template failure is logged and becomes a plain 503 page.
pub fn page(status: StatusCode, name: &str, ctx: Value) -> Response {
    match render(name, ctx) {
        Ok(body) => html(status, body),
        Err(error) => {
            tracing::error!(template = name, %error, "page could not be rendered");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                "<!doctype html><meta charset=\"utf-8\"><title>wxauth</title>\
                 <p>This page is temporarily unavailable.</p>"
                    .to_owned(),
            )
        }
    }
}

/// The static files under `/static/` and the OpenID Connect demo page.
pub fn routes() -> Router<AppState> {
    let demo = Router::new().route(
        OIDC_DEMO_PATH,
        get(|| async { html(StatusCode::OK, OIDC_DEMO_HTML.to_owned()) }),
    );
    ASSETS
        .iter()
        .fold(demo, |router, (path, content_type, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, *content_type),
                            (header::CACHE_CONTROL, "no-cache"),
                            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                        ],
                        *body,
                    )
                }),
            )
        })
}

/// How a page error looks to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStatus {
    /// 400: the request (a parameter, a state, a WeChat code) is wrong; starting over helps.
    BadRequest,
    /// 403: this browser may not finish this sign-in (another browser started it); starting
    /// over here helps.
    Forbidden,
    /// 503: WeChat, our configuration or our database cannot serve this now; retrying helps.
    Unavailable,
}

/// An error shown as a small HTML page.
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: PageStatus,
    /// Shown to the user: no codes, tokens or internal details.
    pub message: String,
    /// Where to start the sign-in again, when known.
    pub start_over: Option<String>,
}

impl PageError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: PageStatus::BadRequest,
            message: message.into(),
            start_over: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: PageStatus::Forbidden,
            message: message.into(),
            start_over: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: PageStatus::Unavailable,
            message: message.into(),
            start_over: None,
        }
    }

    pub fn with_start_over(mut self, url: Option<String>) -> Self {
        self.start_over = url;
        self
    }
}

/// A domain failure as a page: the caller's fault is a 400 with its message, unavailable is a 503
/// with its message, and our own trouble is a 503 too (a page is never a 500), its detail logged.
impl From<Fault> for PageError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Caller(message) => PageError::bad_request(message),
            Fault::Unavailable(message) => PageError::unavailable(message),
            Fault::Internal(message) => {
                tracing::error!(error = %message, "sign-in failed");
                PageError::unavailable("sign-in is temporarily unavailable; please try again")
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title) = match self.status {
            PageStatus::BadRequest => (StatusCode::BAD_REQUEST, "登录失败 · Sign-in failed"),
            PageStatus::Forbidden => (StatusCode::FORBIDDEN, "登录失败 · Sign-in failed"),
            PageStatus::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "暂时无法登录 · Sign-in temporarily unavailable",
            ),
        };
        let mut response = page(
            status,
            "error.html",
            context! {
                title => title,
                message => self.message,
                start_over => self.start_over,
                status => status.as_u16(),
            },
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_may_redirect_to_the_origins_it_names() {
        let client = url::Url::parse("https://app.example.com:8443/cb?x=1").unwrap();
        let native = url::Url::parse("com.example.app:/oauth/cb").unwrap();
        let csp = csp_with_form_targets(&[&client, &native]).unwrap();
        let csp = csp.to_str().unwrap();
        assert!(
            csp.contains("; form-action 'self' https://app.example.com:8443 com.example.app:;"),
            "{csp}"
        );
        assert_eq!(
            csp.replace(" https://app.example.com:8443 com.example.app:", ""),
            CONTENT_SECURITY_POLICY
        );
    }

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(TEMPLATE_ENV.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn error_page_escapes_what_it_shows() {
        let body = render(
            "error.html",
            context! {
                title => "t",
                message => "<script>alert(1)</script>",
                start_over => "https://a.example/?x=1&y=\"2\"",
                status => 400,
            },
        )
        .unwrap();
        assert!(body.contains(
            r#"<p class="message" id="message">&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</p>"#
        ));
        assert!(
            body.contains(r#"href="https:&#x2f;&#x2f;a.example&#x2f;?x=1&amp;y=&quot;2&quot;""#)
        );
        assert!(body.contains("width=device-width"));
    }

    #[test]
    fn page_errors_are_4xx_or_503_html_never_redirects() {
        for (error, status) in [
            (PageError::bad_request("no"), 400),
            (PageError::unavailable("later"), 503),
        ] {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert!(response.headers().get(header::LOCATION).is_none());
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            assert!(
                response.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
        }
    }
}
