//! The admin console at `/admin`: server-rendered pages (minijinja templates under
//! `static/templates/console/`, the shared stylesheet plus `static/console.css`; no scripts at
//! all), in Chinese and English (see [`console_i18n`](super::console_i18n)).
//!
//! Sign-in and sessions are the [`admin::console`](crate::admin::console) core's: WeChat
//! through wxauth's own authorization code + PKCE flow, or `WXAUTH_ADMIN_TOKEN` typed into a
//! form (break-glass, throttled). The session cookie is HttpOnly, SameSite=Strict, `__Host-` on
//! https, and lives 30 minutes. Every change is a POST form carrying the session's CSRF token,
//! checked by the [`Change`] extractor before any handler runs; each handler then calls one
//! [`Admin`] function — the same ones the admin API and the CLI call — and renders the result.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value, context};
use serde::Deserialize;

use crate::admin::apps::{AppSecrets, app_kind};
use crate::admin::console::{ConsoleSession, SESSION_TTL_SECS, SIGN_IN_TTL_SECS, SignInRefused};
use crate::admin::roles::AccountRef;
use crate::admin::users::{UserQuery, event_json};
use crate::admin::webhooks::DeliveryStatus;
use crate::admin::{Admin, AdminError};
use crate::app_registry::NewApp;
use crate::audit::{AuditCursor, AuditFilter, AuditKind};
use crate::config::Config;
use crate::http::console_i18n::{Lang, word, words};
use crate::http::{cookies, pages};
use crate::oauth::client_registry::{DEFAULT_ACCESS_TTL, DEFAULT_FAMILY_TTL, DEFAULT_REFRESH_TTL};
use crate::oauth::{ClientChanges, FlowTicketPolicy, NewClient, RegisteredClient};
use crate::secret::Secret;
use crate::state::AppState;

const SESSION_COOKIE: &str = "wxauth_console";
const SIGN_IN_COOKIE: &str = "wxauth_console_signin";
const LANG_COOKIE: &str = "wxauth_lang";
const USERS_PER_PAGE: u64 = 20;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "console/layout.html",
        include_str!("../../static/templates/console/layout.html"),
    ),
    (
        "console/login.html",
        include_str!("../../static/templates/console/login.html"),
    ),
    (
        "console/message.html",
        include_str!("../../static/templates/console/message.html"),
    ),
    (
        "console/clients.html",
        include_str!("../../static/templates/console/clients.html"),
    ),
    (
        "console/client_form.html",
        include_str!("../../static/templates/console/client_form.html"),
    ),
    (
        "console/secret.html",
        include_str!("../../static/templates/console/secret.html"),
    ),
    (
        "console/users.html",
        include_str!("../../static/templates/console/users.html"),
    ),
    (
        "console/user.html",
        include_str!("../../static/templates/console/user.html"),
    ),
    (
        "console/keys.html",
        include_str!("../../static/templates/console/keys.html"),
    ),
    (
        "console/audit.html",
        include_str!("../../static/templates/console/audit.html"),
    ),
    (
        "console/admins.html",
        include_str!("../../static/templates/console/admins.html"),
    ),
    (
        "console/apps.html",
        include_str!("../../static/templates/console/apps.html"),
    ),
    (
        "console/app_form.html",
        include_str!("../../static/templates/console/app_form.html"),
    ),
    (
        "console/webhooks.html",
        include_str!("../../static/templates/console/webhooks.html"),
    ),
    (
        "console/merges.html",
        include_str!("../../static/templates/console/merges.html"),
    ),
];
const CONSOLE_CSS: &str = include_str!("../../static/console.css");

/// A unix time as `2026-12-02 19:40 UTC`; nothing as a dash.
fn ts(value: Value) -> String {
    i64::try_from(value)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_filter("ts", ts);
    env.add_filter("urlencode", |text: String| path_segment(&text));
    env.add_filter("tojson", |value: Value| {
        serde_json::to_string(&value).unwrap_or_default()
    });
    for (name, source) in TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(template = name, %error, "console template does not compile");
        }
    }
    env
});

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/users") }))
        .route("/admin/console.css", get(stylesheet))
        .route("/admin/login", get(login_page))
        .route("/admin/login/wechat", get(start_wechat))
        .route("/admin/login/token", post(token_sign_in))
        .route(crate::admin::console::CALLBACK_PATH, get(callback))
        .route("/admin/logout", post(logout))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}", get(user))
        .route("/admin/users/{id}/disable", post(disable_user))
        .route("/admin/users/{id}/enable", post(enable_user))
        .route("/admin/users/{id}/revoke", post(revoke_user))
        .route("/admin/users/{id}/export", post(export_user))
        .route("/admin/users/{id}/delete", post(delete_user))
        .route("/admin/clients", get(clients).post(create_client))
        .route("/admin/clients/new", get(new_client))
        .route("/admin/clients/{id}", get(client).post(update_client))
        .route("/admin/clients/{id}/secret", post(rotate_secret))
        .route("/admin/clients/{id}/delete", post(delete_client))
        .route("/admin/apps", get(apps).post(add_app))
        .route("/admin/apps/new", get(new_app))
        .route("/admin/apps/{appid}", get(app).post(update_app))
        .route("/admin/apps/{appid}/delete", post(remove_app))
        .route("/admin/keys", get(keys).post(rotate_key))
        .route("/admin/keys/{kid}/retire", post(retire_key))
        .route("/admin/audit", get(audit))
        .route("/admin/admins", get(admins).post(grant_admin))
        .route("/admin/admins/{id}/revoke", post(revoke_admin))
        .route("/admin/webhooks", get(webhooks))
        .route("/admin/merges", get(merges))
        .route("/admin/merges/{id}/approve", post(approve_merge))
        .route("/admin/merges/{id}/reject", post(reject_merge))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        CONSOLE_CSS,
    )
        .into_response()
}

// ---- language, cookies, rendering -----------------------------------------------------------

/// The request's language, and whether `?lang=` chose it (then it is remembered).
#[derive(Clone, Copy)]
struct Language {
    lang: Lang,
    chosen: bool,
}

fn language(parts: &Parts, config: &Config) -> Language {
    let from_query = parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    });
    if let Some(lang) = from_query {
        return Language { lang, chosen: true };
    }
    let lang = cookies::read(&config.public_url, &parts.headers, LANG_COOKIE)
        .and_then(|v| Lang::parse(&v))
        .unwrap_or_else(|| Lang::from_accept_language(&parts.headers));
    Language {
        lang,
        chosen: false,
    }
}

/// A console cookie: HttpOnly, SameSite=Strict, `__Host-` (Path=/, Secure) on https.
fn cookie(config: &Config, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    let url = &config.public_url;
    let (path, secure) = if url.scheme() == "https" {
        ("/", "; Secure")
    } else {
        ("/admin", "")
    };
    let name = cookies::name(url, name);
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// What every page knows: the language, and the session when signed in.
#[derive(Clone)]
struct Page {
    language: Language,
    session: Option<ConsoleSession>,
    config: Arc<Config>,
}

impl Page {
    fn lang(&self) -> Lang {
        self.language.lang
    }

    fn word(&self, key: &str) -> &'static str {
        word(self.lang(), key)
    }

    /// Render `template` with `ctx` and the shared context.
    fn render(&self, status: StatusCode, template: &str, nav: &str, ctx: Value) -> Response {
        let shared = context! {
            lang => self.lang().code(),
            t => words(self.lang()),
            session => self.session.as_ref().map(|s| context! { actor => &s.actor, csrf => &s.csrf }),
            nav => nav,
        };
        let body = ENV
            .get_template(template)
            .and_then(|t| t.render(context! { ..ctx, ..shared }));
        let mut response = match body {
            Ok(body) => pages::html(status, body),
            Err(error) => {
                tracing::error!(template, %error, "console page could not be rendered");
                pages::html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.word("unavailable").to_owned(),
                )
            }
        };
        if self.language.chosen
            && let Some(c) = cookie(&self.config, LANG_COOKIE, self.lang().code(), 365 * 86_400)
        {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        response
    }

    fn message(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        back: Option<String>,
    ) -> Response {
        self.render(
            status,
            "console/message.html",
            "",
            context! { title, message, back, error => !status.is_success() },
        )
    }

    /// Back to `to` after a change, with a note of what was done.
    fn done(&self, to: String, note: &str) -> Response {
        self.message(StatusCode::OK, self.word("done"), self.word(note), Some(to))
    }

    /// An administrative failure as a page: the reason, and a way back.
    fn failed(&self, error: AdminError) -> Response {
        let (status, title, message) = match &error {
            AdminError::Invalid { field, reason } => (
                StatusCode::BAD_REQUEST,
                self.word("refused"),
                format!("{field}: {reason}"),
            ),
            AdminError::NotFound(m) => (StatusCode::NOT_FOUND, self.word("not_found"), m.clone()),
            AdminError::Conflict(m) => (StatusCode::CONFLICT, self.word("refused"), m.clone()),
            AdminError::Db(_) | AdminError::Internal(_) => {
                tracing::error!(%error, "console");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.word("refused"),
                    self.word("unavailable").to_owned(),
                )
            }
        };
        self.message(status, title, &message, None)
    }
}

/// Any console page: the language, and the session if there is one.
impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let config = Arc::<Config>::from_ref(state);
        let language = language(parts, &config);
        let session = match cookies::read(&config.public_url, &parts.headers, SESSION_COOKIE) {
            Some(sealed) => Admin::from_ref(state)
                .console_session(&sealed)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        Ok(Self {
            language,
            session,
            config,
        })
    }
}

/// A signed-in admin, with the core to call; anyone else is sent to the sign-in page.
struct Signed {
    page: Page,
    admin: Admin,
    session: ConsoleSession,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let page = Page::from_request_parts(parts, state).await?;
        match page.session.clone() {
            Some(session) => Ok(Self {
                page,
                admin: Admin::from_ref(state),
                session,
            }),
            None => Err(Redirect::to("/admin/login").into_response()),
        }
    }
}

/// A change: a signed-in admin's POST form whose `csrf` field is the session's token. Anything
/// else is refused (403) before a handler sees it.
struct Change {
    signed: Signed,
    form: HashMap<String, String>,
}

impl Change {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

impl FromRequest<AppState> for Change {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&bytes).into_owned().collect();
        let presented = form.get("csrf").map(String::as_str).unwrap_or_default();
        if !signed.session.csrf_matches(presented) {
            let page = &signed.page;
            return Err(page.message(
                StatusCode::FORBIDDEN,
                page.word("forbidden"),
                page.word("csrf_refused"),
                None,
            ));
        }
        Ok(Self { signed, form })
    }
}

fn number(text: &str, field: &'static str) -> Result<i64, AdminError> {
    text.trim()
        .parse()
        .map_err(|_| AdminError::invalid(field, "must be a number"))
}

fn words_of(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---- sign-in --------------------------------------------------------------------------------

async fn login_page(page: Page) -> Response {
    page.render(StatusCode::OK, "console/login.html", "", context! {})
}

fn login_refused(page: &Page, status: StatusCode, key: &str, token: bool) -> Response {
    page.render(
        status,
        "console/login.html",
        "",
        context! { error => page.word(key), error_token => token },
    )
}

async fn start_wechat(page: Page, State(admin): State<Admin>) -> Response {
    match admin.start_console_sign_in(&page.config.issuer()).await {
        Ok(start) => {
            let mut response = Redirect::to(&start.authorize_url).into_response();
            // Lax, not Strict: it must come back with the redirect from WeChat.
            if let Some(c) = cookies::set(
                &page.config.public_url,
                SIGN_IN_COOKIE,
                &start.sealed_state,
                crate::admin::console::CALLBACK_PATH,
                SIGN_IN_TTL_SECS,
            ) {
                response.headers_mut().append(header::SET_COOKIE, c);
            }
            response
        }
        Err(e) => page.failed(e),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// Signed in: the session cookie, and a page that moves on to the console by itself (a
/// same-site navigation, so the SameSite=Strict cookie goes along; the redirect chain from
/// WeChat would not carry it).
fn signed_in(page: &Page, sealed: &str) -> Response {
    let mut response = page.render(
        StatusCode::OK,
        "console/message.html",
        "",
        context! { title => page.word("done"), message => page.word("signed_in"), back => "/admin/users", refresh => "/admin/users" },
    );
    if let Some(c) = cookie(&page.config, SESSION_COOKIE, sealed, SESSION_TTL_SECS) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    if let Some(c) = cookies::set(
        &page.config.public_url,
        SIGN_IN_COOKIE,
        "",
        crate::admin::console::CALLBACK_PATH,
        0,
    ) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn sign_in_refused(page: &Page, refused: SignInRefused) -> Response {
    match refused {
        SignInRefused::Failed => {
            login_refused(page, StatusCode::BAD_REQUEST, "sign_in_failed", false)
        }
        SignInRefused::NotAdmin => login_refused(page, StatusCode::FORBIDDEN, "not_admin", false),
        SignInRefused::WrongToken => {
            login_refused(page, StatusCode::UNAUTHORIZED, "wrong_token", true)
        }
        SignInRefused::Throttled(after) => {
            let mut response =
                login_refused(page, StatusCode::TOO_MANY_REQUESTS, "throttled", true);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after));
            response
        }
        SignInRefused::Admin(e) => page.failed(e),
    }
}

async fn callback(
    page: Page,
    State(admin): State<Admin>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let kept = cookies::read(&page.config.public_url, &headers, SIGN_IN_COOKIE);
    let outcome = admin
        .finish_console_sign_in(
            &page.config.issuer(),
            kept.as_deref(),
            q.state.as_deref().unwrap_or_default(),
            q.code.as_deref().unwrap_or_default(),
        )
        .await;
    match outcome {
        Ok((_, sealed)) => signed_in(&page, &sealed),
        Err(refused) => sign_in_refused(&page, refused),
    }
}

async fn token_sign_in(
    page: Page,
    State(admin): State<Admin>,
    body: axum::body::Bytes,
) -> Response {
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let outcome = admin
        .console_token_sign_in(&token, crate::request_context::client_ip())
        .await;
    match outcome {
        Ok((_, sealed)) => signed_in(&page, &sealed),
        Err(refused) => sign_in_refused(&page, refused),
    }
}

async fn logout(change: Change) -> Response {
    let config = &change.signed.page.config;
    let mut response = Redirect::to("/admin/login").into_response();
    if let Some(c) = cookie(config, SESSION_COOKIE, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

// ---- users ----------------------------------------------------------------------------------

#[derive(Deserialize, Default, serde::Serialize)]
struct UserSearch {
    account_id: Option<String>,
    union_id: Option<String>,
    open_id: Option<String>,
    phone: Option<String>,
    nickname: Option<String>,
    page: Option<u64>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn search_url(q: &UserSearch, page: u64) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("account_id", &q.account_id),
        ("union_id", &q.union_id),
        ("open_id", &q.open_id),
        ("phone", &q.phone),
        ("nickname", &q.nickname),
    ] {
        if let Some(v) = non_empty(v) {
            url.append_pair(k, &v);
        }
    }
    url.append_pair("page", &page.to_string());
    format!("/admin/users?{}", url.finish())
}

async fn users(signed: Signed, Query(q): Query<UserSearch>) -> Response {
    let account_id = match non_empty(&q.account_id)
        .map(|v| number(&v, "account_id"))
        .transpose()
    {
        Ok(id) => id,
        Err(e) => return signed.page.failed(e),
    };
    let query = UserQuery {
        account_id,
        union_id: non_empty(&q.union_id),
        open_id: non_empty(&q.open_id),
        phone: non_empty(&q.phone),
        nickname: non_empty(&q.nickname),
        page: q.page.unwrap_or(1).max(1),
        per_page: USERS_PER_PAGE,
    };
    match signed.admin.find_users(&query).await {
        Ok(found) => signed.page.render(
            StatusCode::OK,
            "console/users.html",
            "users",
            context! {
                page => Value::from_serialize(&found),
                q => Value::from_serialize(&q),
                prev_url => search_url(&q, found.page.saturating_sub(1)),
                next_url => search_url(&q, found.page + 1),
            },
        ),
        Err(e) => signed.page.failed(e),
    }
}

async fn user(signed: Signed, Path(id): Path<String>) -> Response {
    let shown = match number(&id, "id") {
        Ok(id) => signed.admin.show_user(id).await,
        Err(e) => Err(e),
    };
    match shown {
        Ok(detail) => signed.page.render(
            StatusCode::OK,
            "console/user.html",
            "users",
            context! { u => Value::from_serialize(&detail) },
        ),
        Err(e) => signed.page.failed(e),
    }
}

async fn disable_user(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let outcome = match number(&id, "id") {
        Ok(id) => s
            .admin
            .disable_user(&s.session.actor(), id)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => s.page.done(format!("/admin/users/{id}"), "disabled_done"),
        Err(e) => s.page.failed(e),
    }
}

async fn enable_user(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let outcome = match number(&id, "id") {
        Ok(id) => s
            .admin
            .enable_user(&s.session.actor(), id)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => s.page.done(format!("/admin/users/{id}"), "enabled_done"),
        Err(e) => s.page.failed(e),
    }
}

async fn revoke_user(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let outcome = match number(&id, "id") {
        Ok(id) => s
            .admin
            .revoke_user(&s.session.actor(), id)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => s.page.done(format!("/admin/users/{id}"), "revoked_done"),
        Err(e) => s.page.failed(e),
    }
}

/// The account's data as a JSON download (PIPL: the right to access).
async fn export_user(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let outcome = match number(&id, "id") {
        Ok(id) => s.admin.export_user(&s.session.actor(), id).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(export) => {
            let body = serde_json::to_string_pretty(&export).unwrap_or_default();
            let disposition = format!("attachment; filename=\"wxauth-account-{id}.json\"");
            let mut response = crate::http::no_store(body);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Err(e) => s.page.failed(e),
    }
}

async fn delete_user(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    if change.field("confirm") != Some("yes") {
        return s
            .page
            .failed(AdminError::invalid("confirm", "tick the box to delete"));
    }
    let outcome = match number(&id, "id") {
        Ok(id) => s.admin.delete_user(&s.session.actor(), id).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => s.page.done("/admin/users".into(), "deleted_done"),
        Err(e) => s.page.failed(e),
    }
}

// ---- clients --------------------------------------------------------------------------------

fn client_value(c: &RegisteredClient) -> Value {
    context! {
        client_id => &c.client_id,
        display_name => &c.display_name,
        logo_url => &c.logo_url,
        type => if c.public { "public" } else { "confidential" },
        grant_types => &c.grant_types,
        scopes => &c.scopes,
        redirect_uris => &c.redirect_uris,
        allowed_origins => &c.allowed_origins,
        access_token_ttl => c.access_token_ttl,
        refresh_token_ttl => c.refresh_token_ttl,
        flow_ticket => c.flow_ticket.as_str(),
        introspect => c.introspect,
        first_party => c.first_party,
        previous_secret_valid_until => c.previous_secret_until,
    }
}

async fn clients(signed: Signed) -> Response {
    match signed.admin.clients().await {
        Ok(list) => signed.page.render(
            StatusCode::OK,
            "console/clients.html",
            "clients",
            context! { clients => list.iter().map(client_value).collect::<Vec<_>>() },
        ),
        Err(e) => signed.page.failed(e),
    }
}

async fn new_client(signed: Signed) -> Response {
    signed.page.render(
        StatusCode::OK,
        "console/client_form.html",
        "clients",
        context! {},
    )
}

async fn client(signed: Signed, Path(id): Path<String>) -> Response {
    match signed.admin.client(&id).await {
        Ok(c) => signed.page.render(
            StatusCode::OK,
            "console/client_form.html",
            "clients",
            context! { client => client_value(&c) },
        ),
        Err(e) => signed.page.failed(e),
    }
}

fn ttl(change: &Change, field: &'static str) -> Result<Option<i64>, AdminError> {
    change.field(field).map(|v| number(v, field)).transpose()
}

/// A checkbox of the client form: ticked is `yes`, unticked is absent.
fn flag(change: &Change, field: &str) -> bool {
    change.field(field) == Some("yes")
}

fn flow_ticket(change: &Change) -> Result<Option<FlowTicketPolicy>, AdminError> {
    change
        .field("flow_ticket")
        .map(|v| {
            FlowTicketPolicy::parse(v).ok_or_else(|| {
                AdminError::invalid("flow_ticket", "must be \"required\" or \"optional\"")
            })
        })
        .transpose()
}

fn new_client_of(change: &Change) -> Result<NewClient, AdminError> {
    Ok(NewClient {
        client_id: change.field("client_id").unwrap_or_default().to_owned(),
        secret: None,
        grant_types: words_of(change.field("grant_types")),
        scopes: words_of(change.field("scopes")),
        redirect_uris: words_of(change.field("redirect_uris")),
        public: change.field("type") == Some("public"),
        first_party: flag(change, "first_party"),
        access_token_ttl: ttl(change, "access_token_ttl")?.unwrap_or(DEFAULT_ACCESS_TTL),
        refresh_token_ttl: ttl(change, "refresh_token_ttl")?.unwrap_or(DEFAULT_REFRESH_TTL),
        flow_ticket: flow_ticket(change)?.unwrap_or(FlowTicketPolicy::Required),
        introspect: flag(change, "introspect"),
        refresh_family_ttl: DEFAULT_FAMILY_TTL,
        display_name: change.field("display_name").map(str::to_owned),
        logo_url: change.field("logo_url").map(str::to_owned),
        // The console does not set resources yet: `wxauth client update --resource` or the API.
        resources: Vec::new(),
        allowed_origins: words_of(change.field("allowed_origins")),
        ..NewClient::default()
    })
}

fn show_secret(
    page: &Page,
    client_id: &str,
    secret: &Secret,
    previous_until: Option<i64>,
) -> Response {
    page.render(
        StatusCode::OK,
        "console/secret.html",
        "clients",
        context! { client_id, secret => secret.expose(), previous_until },
    )
}

async fn create_client(change: Change) -> Response {
    let s = &change.signed;
    let created = match new_client_of(&change) {
        Ok(new) => s.admin.create_client(&s.session.actor(), new).await,
        Err(e) => Err(e),
    };
    match created {
        Ok((client, Some(secret))) => show_secret(&s.page, &client.client_id, &secret, None),
        Ok((client, None)) => s.page.done(
            format!("/admin/clients/{}", urlencoding(&client.client_id)),
            "saved_done",
        ),
        Err(e) => s.page.failed(e),
    }
}

fn urlencoding(text: &str) -> String {
    path_segment(text)
}

/// `text` as one path segment: every byte but the unreserved ones percent-encoded.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn changes_of(change: &Change) -> Result<ClientChanges, AdminError> {
    Ok(ClientChanges {
        display_name: Some(change.field("display_name").map(str::to_owned)),
        logo_url: Some(change.field("logo_url").map(str::to_owned)),
        grant_types: Some(words_of(change.field("grant_types"))),
        scopes: Some(words_of(change.field("scopes"))),
        redirect_uris: Some(words_of(change.field("redirect_uris"))),
        allowed_origins: Some(words_of(change.field("allowed_origins"))),
        access_token_ttl: ttl(change, "access_token_ttl")?,
        refresh_token_ttl: ttl(change, "refresh_token_ttl")?,
        flow_ticket: flow_ticket(change)?,
        // The form always shows both boxes: an unticked one says "no".
        introspect: Some(flag(change, "introspect")),
        first_party: Some(flag(change, "first_party")),
        ..ClientChanges::default()
    })
}

async fn update_client(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let updated = match changes_of(&change) {
        Ok(changes) => {
            s.admin
                .update_client(&s.session.actor(), &id, changes)
                .await
        }
        Err(e) => Err(e),
    };
    match updated {
        Ok(_) => s
            .page
            .done(format!("/admin/clients/{}", urlencoding(&id)), "saved_done"),
        Err(e) => s.page.failed(e),
    }
}

async fn rotate_secret(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    match s
        .admin
        .rotate_client_secret(&s.session.actor(), &id, None)
        .await
    {
        Ok(rotated) => show_secret(&s.page, &id, &rotated.secret, rotated.previous_valid_until),
        Err(e) => s.page.failed(e),
    }
}

async fn delete_client(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    if change.field("confirm") != Some("yes") {
        return s
            .page
            .failed(AdminError::invalid("confirm", "tick the box to delete"));
    }
    match s.admin.delete_client(&s.session.actor(), &id).await {
        Ok(()) => s.page.done("/admin/clients".into(), "deleted_done"),
        Err(e) => s.page.failed(e),
    }
}

// ---- WeChat apps ------------------------------------------------------------------------------

async fn apps(signed: Signed) -> Response {
    match signed.admin.apps().await {
        Ok(list) => signed.page.render(
            StatusCode::OK,
            "console/apps.html",
            "apps",
            context! { apps => Value::from_serialize(&list) },
        ),
        Err(e) => signed.page.failed(e),
    }
}

async fn new_app(signed: Signed) -> Response {
    signed
        .page
        .render(StatusCode::OK, "console/app_form.html", "apps", context! {})
}

async fn app(signed: Signed, Path(appid): Path<String>) -> Response {
    match signed.admin.app(&appid).await {
        Ok(a) => signed.page.render(
            StatusCode::OK,
            "console/app_form.html",
            "apps",
            context! { app => Value::from_serialize(&a) },
        ),
        Err(e) => signed.page.failed(e),
    }
}

/// A write-only field of the app forms: empty means not given.
fn secret_field(change: &Change, name: &str) -> Option<Secret> {
    change.field(name).map(Secret::new)
}

fn new_app_of(change: &Change) -> Result<NewApp, AdminError> {
    Ok(NewApp {
        appid: change.field("appid").unwrap_or_default().to_owned(),
        kind: app_kind(change.field("kind").unwrap_or_default())?,
        secret: secret_field(change, "secret"),
        component_appid: change.field("component_appid").map(str::to_owned),
        is_base: change.field("base") == Some("yes"),
        token: secret_field(change, "token"),
        aes_key: secret_field(change, "aes_key"),
    })
}

async fn add_app(change: Change) -> Response {
    let s = &change.signed;
    let added = match new_app_of(&change) {
        Ok(new) => {
            let replace = change.field("replace") == Some("yes");
            s.admin.add_app(&s.session.actor(), new, replace).await
        }
        Err(e) => Err(e),
    };
    match added {
        Ok((app, _)) => s.page.done(
            format!("/admin/apps/{}", urlencoding(&app.appid)),
            "app_added",
        ),
        Err(e) => s.page.failed(e),
    }
}

async fn update_app(Path(appid): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let secrets = AppSecrets {
        secret: secret_field(&change, "secret"),
        token: secret_field(&change, "token"),
        aes_key: secret_field(&change, "aes_key"),
    };
    match s
        .admin
        .update_app(&s.session.actor(), &appid, secrets)
        .await
    {
        Ok(_) => s.page.done(
            format!("/admin/apps/{}", urlencoding(&appid)),
            "app_updated",
        ),
        Err(e) => s.page.failed(e),
    }
}

async fn remove_app(Path(appid): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    if change.field("confirm") != Some("yes") {
        return s
            .page
            .failed(AdminError::invalid("confirm", "tick the box to remove"));
    }
    match s.admin.remove_app(&s.session.actor(), &appid).await {
        Ok(()) => s.page.done("/admin/apps".into(), "app_removed"),
        Err(e) => s.page.failed(e),
    }
}

// ---- keys, audit, admins ----------------------------------------------------------------------

async fn keys(signed: Signed) -> Response {
    match signed.admin.keys().await {
        Ok(list) => {
            let keys: Vec<Value> = list
                .iter()
                .map(|k| {
                    context! {
                        kid => &k.kid, alg => &k.alg, state => k.state.as_str(),
                        created_at => k.created_at, activates_at => k.activates_at, retired_at => k.retired_at,
                    }
                })
                .collect();
            signed.page.render(
                StatusCode::OK,
                "console/keys.html",
                "keys",
                context! { keys },
            )
        }
        Err(e) => signed.page.failed(e),
    }
}

async fn rotate_key(change: Change) -> Response {
    let s = &change.signed;
    match s.admin.rotate_key(&s.session.actor(), None).await {
        Ok(_) => s.page.done("/admin/keys".into(), "key_done"),
        Err(e) => s.page.failed(e),
    }
}

async fn retire_key(Path(kid): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    match s.admin.retire_key(&s.session.actor(), &kid).await {
        Ok(_) => s.page.done("/admin/keys".into(), "retired_done"),
        Err(e) => s.page.failed(e),
    }
}

#[derive(Deserialize, Default, serde::Serialize)]
struct AuditSearch {
    account_id: Option<String>,
    client_id: Option<String>,
    kind: Option<String>,
    /// A date (`2026-12-01`).
    since: Option<String>,
    /// Keyset cursors: events older than this id …
    before: Option<i64>,
    /// … or newer than this one.
    after: Option<i64>,
}

/// Events on one console page of the audit trail.
const AUDIT_PER_PAGE: u64 = 50;

/// The audit page with the same filters, from `cursor`.
fn audit_url(q: &AuditSearch, cursor: Option<(&str, i64)>) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("account_id", &q.account_id),
        ("client_id", &q.client_id),
        ("kind", &q.kind),
        ("since", &q.since),
    ] {
        if let Some(v) = non_empty(v) {
            url.append_pair(k, &v);
        }
    }
    if let Some((k, id)) = cursor {
        url.append_pair(k, &id.to_string());
    }
    format!("/admin/audit?{}", url.finish())
}

fn audit_filter(q: &AuditSearch) -> Result<AuditFilter, AdminError> {
    let kind = non_empty(&q.kind)
        .map(|k| {
            AuditKind::parse(&k)
                .ok_or_else(|| AdminError::invalid("kind", format!("unknown kind {k:?}")))
        })
        .transpose()?;
    let since = non_empty(&q.since)
        .map(|d| {
            chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp())
                .ok_or_else(|| AdminError::invalid("since", "must be a date like 2026-12-01"))
        })
        .transpose()?;
    Ok(AuditFilter {
        account_id: non_empty(&q.account_id)
            .map(|v| number(&v, "account_id"))
            .transpose()?,
        client_id: non_empty(&q.client_id),
        kind,
        since,
        limit: AUDIT_PER_PAGE,
    })
}

async fn audit(signed: Signed, Query(q): Query<AuditSearch>) -> Response {
    let cursor = match (q.before, q.after) {
        (Some(id), _) => AuditCursor::Before(id),
        (None, Some(id)) => AuditCursor::After(id),
        (None, None) => AuditCursor::Newest,
    };
    let found = match audit_filter(&q) {
        Ok(filter) => signed.admin.events_page(&filter, cursor).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(page) => signed.page.render(
            StatusCode::OK,
            "console/audit.html",
            "audit",
            context! {
                events => page.events.iter().map(|e| Value::from_serialize(event_json(e))).collect::<Vec<_>>(),
                q => Value::from_serialize(&q),
                kinds => AuditKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                first_url => audit_url(&q, None),
                newer_url => page.newer.map(|id| audit_url(&q, Some(("after", id)))),
                older_url => page.older.map(|id| audit_url(&q, Some(("before", id)))),
            },
        ),
        Err(e) => signed.page.failed(e),
    }
}

async fn admins(signed: Signed) -> Response {
    match signed.admin.admins().await {
        Ok(list) => signed.page.render(
            StatusCode::OK,
            "console/admins.html",
            "admins",
            context! { admins => Value::from_serialize(&list) },
        ),
        Err(e) => signed.page.failed(e),
    }
}

fn account_ref(change: &Change) -> Result<AccountRef, AdminError> {
    match (change.field("account_id"), change.field("union_id")) {
        (Some(id), None) => Ok(AccountRef::Id(number(id, "account_id")?)),
        (None, Some(union_id)) => Ok(AccountRef::UnionId(union_id.to_owned())),
        _ => Err(AdminError::invalid(
            "account_id",
            "give exactly one of account ID and unionid",
        )),
    }
}

async fn grant_admin(change: Change) -> Response {
    let s = &change.signed;
    let granted = match account_ref(&change) {
        Ok(which) => s.admin.grant_admin(&s.session.actor(), &which).await,
        Err(e) => Err(e),
    };
    match granted {
        Ok(_) => s.page.done("/admin/admins".into(), "granted_done"),
        Err(e) => s.page.failed(e),
    }
}

async fn revoke_admin(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let revoked = match number(&id, "id") {
        Ok(id) => {
            s.admin
                .revoke_admin(&s.session.actor(), &AccountRef::Id(id))
                .await
        }
        Err(e) => Err(e),
    };
    match revoked {
        Ok(()) => s.page.done("/admin/admins".into(), "role_revoked_done"),
        Err(e) => s.page.failed(e),
    }
}

// ---- webhooks and merges -------------------------------------------------------------------

/// How many dead deliveries the webhooks page lists.
const DEAD_SHOWN: u64 = 100;

/// Webhook endpoints, and the deliveries given up after the retry window.
async fn webhooks(signed: Signed) -> Response {
    let found = async {
        Ok::<_, AdminError>((
            signed.admin.list_webhooks().await?,
            signed
                .admin
                .webhook_deliveries(Some(DeliveryStatus::Dead), DEAD_SHOWN)
                .await?,
        ))
    }
    .await;
    match found {
        Ok((endpoints, dead)) => signed.page.render(
            StatusCode::OK,
            "console/webhooks.html",
            "webhooks",
            context! {
                webhooks => Value::from_serialize(&endpoints),
                dead => Value::from_serialize(&dead),
            },
        ),
        Err(e) => signed.page.failed(e),
    }
}

/// Merges waiting for a decision (`WXAUTH_MERGE_POLICY=queue`).
async fn merges(signed: Signed) -> Response {
    match signed.admin.pending_merges().await {
        Ok(pending) => signed.page.render(
            StatusCode::OK,
            "console/merges.html",
            "merges",
            context! { merges => Value::from_serialize(&pending) },
        ),
        Err(e) => signed.page.failed(e),
    }
}

async fn approve_merge(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let outcome = match number(&id, "id") {
        Ok(id) => s
            .admin
            .approve_merge(&s.session.actor(), id)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => s.page.done("/admin/merges".into(), "merged_done"),
        Err(e) => s.page.failed(e),
    }
}

async fn reject_merge(Path(id): Path<String>, change: Change) -> Response {
    let s = &change.signed;
    let outcome = match number(&id, "id") {
        Ok(id) => s.admin.reject_merge(&s.session.actor(), id).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => s.page.done("/admin/merges".into(), "rejected_done"),
        Err(e) => s.page.failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }
}
