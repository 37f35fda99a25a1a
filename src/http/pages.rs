//! HTML for people: minijinja templates from `static/templates/`, embedded at compile time and
//! auto-escaped (every template name ends in `.html`), sent with the headers every wxauth page
//! shares (a strict Content-Security-Policy, `no-store`, `no-referrer`, `nosniff`); the shared
//! stylesheet and scripts under `/static/`; and [`PageError`], the HTML counterpart of
//! [`AppError`](crate::error::AppError) for endpoints a browser navigates to, where a JSON body
//! would be a dead end. A page error is a 4xx or a 503, never a 500 and never a redirect.

use std::sync::{Arc, LazyLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use minijinja::{Environment, Value, context};

use super::messages::{self, Lang, Message, Text};
use crate::fault::Fault;
use crate::state::AppState;

/// What `wxauth dev` adds to the front page (it layers this as an extension).
#[derive(Debug, Clone)]
pub struct DevDemo {
    /// The H5 two-hop sign-in, ending on the landing page.
    pub h5_walk: String,
    /// The OpenID Connect single-page demo.
    pub oidc_demo: String,
    /// The WeChat simulator's base URL.
    pub simulator: String,
    /// The demo Mini Program's appid.
    pub mini_program_appid: String,
    /// The demo client (its secret is printed in the terminal, never on a page).
    pub demo_client_id: String,
}

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
    (
        "signed_out.html",
        include_str!("../../static/templates/signed_out.html"),
    ),
    (
        "logout_confirm.html",
        include_str!("../../static/templates/logout_confirm.html"),
    ),
    (
        "device.html",
        include_str!("../../static/templates/device.html"),
    ),
];

/// Static files served under `/static/`: path, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
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

/// The OpenID Connect demo relying party (a single-page app, public client `demo-spa`), served
/// only under `wxauth dev` (elsewhere the client it signs in with does not exist).
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

/// The templates and the stylesheet a server renders with: the embedded ones, each replaced by
/// the file of the same name in `WXAUTH_TEMPLATES_DIR` when that file exists (read once, at
/// start-up). An override that does not compile is logged and the embedded template is used.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
    stylesheet: String,
    /// The names of the files taken from the templates directory.
    pub overridden: Vec<String>,
}

/// The stylesheet's file name in the templates directory and under `/static/`.
const STYLESHEET: &str = "wxauth.css";
const STYLESHEET_SOURCE: &str = include_str!("../../static/wxauth.css");

impl Pages {
    /// The embedded templates and stylesheet.
    pub fn embedded() -> Self {
        Self::load(None)
    }

    /// The embedded templates and stylesheet, with the files found in `dir` in their place.
    pub fn load(dir: Option<&std::path::Path>) -> Self {
        let mut overridden = Vec::new();
        let mut read = |name: &str| -> Option<String> {
            let path = dir?.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    overridden.push(name.to_owned());
                    Some(text)
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "template override unreadable; the embedded one is used");
                    None
                }
            }
        };
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            let own = read(name);
            let added = match own {
                Some(text) => match env.add_template_owned(name.to_string(), text) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::error!(template = name, %error, "template override does not compile; the embedded one is used");
                        false
                    }
                },
                None => false,
            };
            if !added && let Err(error) = env.add_template(name, source) {
                tracing::error!(template = name, %error, "template does not compile");
            }
        }
        let stylesheet = read(STYLESHEET).unwrap_or_else(|| STYLESHEET_SOURCE.to_owned());
        if !overridden.is_empty() {
            tracing::info!(files = ?overridden, "pages: templates overridden from WXAUTH_TEMPLATES_DIR");
        }
        Self {
            env,
            stylesheet,
            overridden,
        }
    }

    fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// The embedded pages, for rendering outside a request (unit tests).
static EMBEDDED: LazyLock<Arc<Pages>> = LazyLock::new(|| Arc::new(Pages::embedded()));

/// What a page rendered during a request knows: the server's templates and the language the
/// browser asked for.
#[derive(Debug, Clone)]
struct PageScope {
    pages: Arc<Pages>,
    lang: Lang,
}

tokio::task_local! {
    static SCOPE: PageScope;
}

/// Middleware: serve the request with these pages, in the language of its `Accept-Language`.
pub async fn layer(State(pages): State<Arc<Pages>>, request: Request, next: Next) -> Response {
    let lang = Lang::from_accept_language(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    SCOPE
        .scope(PageScope { pages, lang }, next.run(request))
        .await
}

/// The language of the current request's pages (Chinese outside a request).
pub fn lang() -> Lang {
    SCOPE.try_with(|s| s.lang).unwrap_or_default()
}

fn current_pages() -> Arc<Pages> {
    SCOPE
        .try_with(|s| s.pages.clone())
        .unwrap_or_else(|_| EMBEDDED.clone())
}

/// A text of the catalogue as a template sees it: `first` in the page's language, `second`
/// beside it.
pub fn text(text: Text) -> Value {
    let (first, second) = text.in_lang(lang());
    context! { first => first, second => second }
}

/// Render template `name` with `ctx`, plus `lang` (the page's `lang` attribute).
pub fn render(name: &str, ctx: Value) -> Result<String, minijinja::Error> {
    let ctx = context! { lang => lang().tag(), ..ctx };
    current_pages().render(name, ctx)
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

/// The static files under `/static/` (the stylesheet is the server's, see [`Pages`]) and the
/// OpenID Connect demo page, which answers 404 unless `wxauth dev` layered its [`DevDemo`].
pub fn routes() -> Router<AppState> {
    let base = Router::new()
        .route(OIDC_DEMO_PATH, get(oidc_demo))
        .route(&format!("/static/{STYLESHEET}"), get(stylesheet));
    ASSETS
        .iter()
        .fold(base, |router, (path, content_type, body)| {
            router.route(
                path,
                get(move || async move { asset(content_type, (*body).to_owned()) }),
            )
        })
}

fn asset(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        current_pages().stylesheet.clone(),
    )
}

async fn oidc_demo(demo: Option<Extension<DevDemo>>) -> Response {
    match demo {
        Some(_) => html(StatusCode::OK, OIDC_DEMO_HTML.to_owned()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
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

/// An error shown as a small HTML page: a message of the catalogue for the person, the detail
/// for the log.
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: PageStatus,
    /// Shown to the person, in their language first.
    pub message: Message,
    /// For developers and operators: logged with the page's reference, never shown.
    pub detail: Option<String>,
    /// Where to start the sign-in again, when known.
    pub start_over: Option<String>,
}

impl PageError {
    fn new(status: PageStatus, message: Message) -> Self {
        Self {
            status,
            message,
            detail: None,
            start_over: None,
        }
    }

    pub fn bad_request(message: Message) -> Self {
        Self::new(PageStatus::BadRequest, message)
    }

    pub fn forbidden(message: Message) -> Self {
        Self::new(PageStatus::Forbidden, message)
    }

    pub fn unavailable(message: Message) -> Self {
        Self::new(PageStatus::Unavailable, message)
    }

    /// What went wrong, for the log.
    pub fn detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    pub fn with_start_over(mut self, url: Option<String>) -> Self {
        self.start_over = url;
        self
    }

    fn reference(&self) -> String {
        reference(self.message.code)
    }
}

/// The reference an error page shows and logs with its detail: the message's code and the
/// start of the request id (which the access log carries in full).
pub fn reference(code: &str) -> String {
    match crate::request_context::request_id() {
        Some(id) => format!("{code}-{}", id.chars().take(8).collect::<String>()),
        None => code.to_owned(),
    }
}

/// A domain failure as a page: the caller's fault is a 400, unavailable is a 503, and our own
/// trouble is a 503 too (a page is never a 500). The domain's message is developer detail: it
/// goes to the log.
impl From<Fault> for PageError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Caller(message) => {
                PageError::bad_request(messages::OAUTH_SIGN_IN_REFUSED).detail(message)
            }
            Fault::Unavailable(message) => {
                PageError::unavailable(messages::UNAVAILABLE).detail(message)
            }
            Fault::Internal(message) => {
                tracing::error!(error = %message, "sign-in failed");
                PageError::unavailable(messages::UNAVAILABLE).detail(message)
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title) = match self.status {
            PageStatus::BadRequest => (StatusCode::BAD_REQUEST, messages::TITLE_FAILED),
            PageStatus::Forbidden => (StatusCode::FORBIDDEN, messages::TITLE_FAILED),
            PageStatus::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, messages::TITLE_UNAVAILABLE)
            }
        };
        let reference = self.reference();
        tracing::info!(
            reference = %reference,
            status = status.as_u16(),
            detail = self.detail.as_deref().unwrap_or(""),
            "error page shown"
        );
        let (action, action_label) = match (&self.start_over, self.status) {
            (Some(url), _) => (Some(url.clone()), messages::START_AGAIN),
            // Nothing to start again from: a 503 can at least be retried where it stands.
            (None, PageStatus::Unavailable) => (None, messages::TRY_AGAIN),
            (None, _) => (None, messages::START_AGAIN),
        };
        let mut response = page(
            status,
            "error.html",
            context! {
                title => text(title),
                message => text(self.message.text),
                start_over => action,
                start_over_label => text(action_label),
                retry => self.start_over.is_none() && self.status == PageStatus::Unavailable,
                reference => reference,
                reference_label => text(messages::REFERENCE),
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
        let pages = Pages::embedded();
        for (name, _) in TEMPLATES {
            assert!(pages.env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn error_page_escapes_what_it_shows() {
        let body = render(
            "error.html",
            context! {
                title => context! { first => "t", second => "t" },
                message => context! { first => "<script>alert(1)</script>", second => "m" },
                start_over => "https://a.example/?x=1&y=\"2\"",
                start_over_label => text(messages::START_AGAIN),
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
        assert!(body.contains("<html lang=\"zh-CN\">"));
    }

    #[test]
    fn page_errors_are_4xx_or_503_html_never_redirects() {
        for (error, status) in [
            (PageError::bad_request(messages::H5_SPENT), 400),
            (PageError::unavailable(messages::UNAVAILABLE), 503),
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
