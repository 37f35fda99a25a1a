//! The admin API, `/admin/api/v1`: JSON over the [`admin`](crate::admin) core, for the bearer of
//! `WXAUTH_ADMIN_TOKEN`. Users, clients, WeChat apps, resources (RFC 8707), signing keys and the
//! audit trail. Each handler extracts, calls one core function and maps the result; a refused
//! value is 400 naming the field, an unknown id 404, a contradiction 409. No token and a wrong token get the same 401;
//! repeated failures from one address are throttled (429) like failed client authentication.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::no_store;
use crate::admin::apps::{AppSecrets, AppView, app_kind};
use crate::admin::merges::PendingMerge;
use crate::admin::roles::{AccountRef, AdminView};
use crate::admin::users::{Revoked, UserDetail, UserPage, UserQuery, UserSummary, event_json};
use crate::admin::webhooks::{
    CreatedWebhook, DeliveryStatus, DeliveryView, NewWebhook, WebhookView,
};
use crate::admin::{AccessRefused, Actor, Admin, AdminError};
use crate::app_registry::NewApp;
use crate::audit::{AuditCursor, AuditFilter, AuditKind};
use crate::oauth::client_registry::IdTokenAlg;
use crate::oauth::client_registry::{DEFAULT_ACCESS_TTL, DEFAULT_FAMILY_TTL, DEFAULT_REFRESH_TTL};
use crate::oauth::keys::KeyInfo;
use crate::oauth::resources::{NewResource, Resource, ResourceChanges};
use crate::oauth::{ClientChanges, ClientLogout, FlowTicketPolicy, NewClient, RegisteredClient};
use crate::secret::Secret;
use crate::state::AppState;
use crate::users::merge::MergePlan;

/// Where the API lives.
pub const BASE_PATH: &str = "/admin/api/v1";

/// Where the API's OpenAPI 3.1 document is served (generated from the handlers below).
pub const OPENAPI_PATH: &str = "/admin/api/openapi.json";

/// The name of the bearer scheme in the document.
const ADMIN_TOKEN_SCHEME: &str = "admin_token";

/// The admin API's OpenAPI document: every route of [`routes`], generated from the handlers'
/// `#[utoipa::path]` attributes and the types they take and answer.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxauth admin API",
        description = "Users, clients, WeChat apps, signing keys and the audit trail, for the bearer of \
            `WXAUTH_ADMIN_TOKEN`. Every change is audited with the actor. A refused value is \
            400 naming the field, an unknown id 404, a contradiction 409; no token and a wrong \
            token get the same 401.",
    ),
    paths(
        find_users, show_user, delete_user, disable_user, enable_user, revoke_user, export_user,
        list_clients, create_client, show_client, update_client, delete_client, rotate_secret,
        list_apps, add_app, show_app, update_app, remove_app,
        list_keys, rotate_key, retire_key, audit_events, list_admins, grant_admin, revoke_admin,
        list_resources, create_resource, show_resource, update_resource, delete_resource,
        list_webhooks, create_webhook, remove_webhook, webhook_deliveries,
        pending_merges, merge_users, approve_merge, reject_merge,
    ),
    modifiers(&AdminTokenScheme),
    security(("admin_token" = [])),
    tags(
        (name = "users", description = "Accounts with their WeChat identities (PIPL access and deletion)"),
        (name = "clients", description = "OAuth clients and their secrets"),
        (name = "apps", description = "WeChat apps: secrets are write-only; upstream token state and calls today"),
        (name = "keys", description = "Signing keys and staged rotation"),
        (name = "audit", description = "The audit trail"),
        (name = "admins", description = "The admin role: who may sign in to the console"),
        (name = "resources", description = "Resources (APIs, RFC 8707) access tokens may be issued for"),
        (name = "webhooks", description = "Signed webhook endpoints and their deliveries (dead ones included)"),
        (name = "merges", description = "Accounts found to be one person: dry runs, merges, and merges queued for a decision"),
    ),
)]
pub struct AdminApi;

/// Adds the `WXAUTH_ADMIN_TOKEN` bearer scheme the document's `security` names.
struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_TOKEN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The value of `WXAUTH_ADMIN_TOKEN`."))
                    .build(),
            ),
        );
    }
}

/// The answer of every refusal: an error code, the reason, and for 400 the field refused.
#[derive(Serialize, ToSchema)]
pub struct ApiErrorBody {
    /// `invalid_request`, `not_found`, `conflict`, `unauthorized`, `slow_down`,
    /// `temporarily_unavailable` or `server_error`.
    error: &'static str,
    /// The refused field (400 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    error_description: String,
}

impl ApiErrorBody {
    fn new(error: &'static str, error_description: impl Into<String>) -> Json<Self> {
        Json(Self {
            error,
            field: None,
            error_description: error_description.into(),
        })
    }
}

/// The admin API's routes. Every handler's first extractor is [`Caller`], the token check, so
/// nothing else about a request is looked at before the caller is let in.
pub fn routes() -> Router<AppState> {
    let api = Router::new()
        .route("/users", get(find_users))
        .route("/users/{id}", get(show_user).delete(delete_user))
        .route("/users/{id}/disable", post(disable_user))
        .route("/users/{id}/enable", post(enable_user))
        .route("/users/{id}/revoke", post(revoke_user))
        .route("/users/{id}/export", get(export_user))
        .route("/clients", get(list_clients).post(create_client))
        .route(
            "/clients/{id}",
            get(show_client).patch(update_client).delete(delete_client),
        )
        .route("/clients/{id}/secret", post(rotate_secret))
        .route("/apps", get(list_apps).post(add_app))
        .route(
            "/apps/{appid}",
            get(show_app).patch(update_app).delete(remove_app),
        )
        .route("/keys", get(list_keys).post(rotate_key))
        .route("/keys/{kid}/retire", post(retire_key))
        .route("/audit", get(audit_events))
        .route("/admins", get(list_admins).post(grant_admin))
        .route("/admins/{id}", axum::routing::delete(revoke_admin))
        .route("/resources", get(list_resources).post(create_resource))
        .route(
            "/resources/{id}",
            get(show_resource)
                .patch(update_resource)
                .delete(delete_resource),
        )
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route("/webhooks/deliveries", get(webhook_deliveries))
        .route("/webhooks/{id}", axum::routing::delete(remove_webhook))
        .route("/merges", get(pending_merges).post(merge_users))
        .route("/merges/{id}/approve", post(approve_merge))
        .route("/merges/{id}/reject", post(reject_merge))
        .fallback(not_found);
    Router::new().nest(BASE_PATH, api)
}

/// An admin failure as the API answers it.
pub struct ApiError(AdminError);

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self.0 {
            AdminError::Invalid { field, reason } => (
                StatusCode::BAD_REQUEST,
                Json(ApiErrorBody {
                    error: "invalid_request",
                    field: Some(field),
                    error_description: reason.clone(),
                }),
            ),
            AdminError::NotFound(m) => (StatusCode::NOT_FOUND, ApiErrorBody::new("not_found", m)),
            AdminError::Conflict(m) => (StatusCode::CONFLICT, ApiErrorBody::new("conflict", m)),
            AdminError::Db(e) if crate::db_error::is_worth_retrying(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ApiErrorBody::new("temporarily_unavailable", crate::db_error::BUSY_MESSAGE),
            ),
            AdminError::Db(_) | AdminError::Internal(_) => {
                tracing::error!(error = %self.0, "admin API");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ApiErrorBody::new("server_error", "the server could not complete the request"),
                )
            }
        };
        no_store((status, body).into_response())
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(no_store(Json(value).into_response()))
}

/// The one answer for a missing or wrong token.
fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        ApiErrorBody::new("unauthorized", "a valid admin bearer token is required"),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"wxauth-admin\""),
    );
    no_store(response)
}

fn throttled(retry_after_secs: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        ApiErrorBody::new("slow_down", "too many failed attempts; try again later"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    no_store(response)
}

async fn not_found(_caller: Caller) -> ApiError {
    ApiError(AdminError::NotFound("no such admin resource".into()))
}

/// The bearer of `WXAUTH_ADMIN_TOKEN`, let in, with the core to call.
struct Caller {
    actor: Actor,
    admin: Admin,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::oauth::userinfo::bearer(Some(v)));
        let admin = Admin::new(state);
        match admin
            .authenticate(presented, crate::request_context::client_ip())
            .await
        {
            Ok(actor) => Ok(Self { actor, admin }),
            Err(AccessRefused::Unauthorized) => Err(unauthorized()),
            Err(AccessRefused::Throttled { retry_after_secs }) => Err(throttled(retry_after_secs)),
        }
    }
}

/// An optional JSON body: empty means every field absent.
struct OptionalJson<T>(T);

impl<T: DeserializeOwned + Default + Send> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError(AdminError::invalid("body", e.body_text())))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError(AdminError::invalid("body", e.to_string())))
    }
}

/// A query string, refused as 400 in the API's shape.
struct ApiQuery<T>(T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError(AdminError::invalid("query", e.body_text())))
    }
}

/// A JSON body, refused as 400 in the API's shape (the message names the field).
struct ApiJson<T>(T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|j| Self(j.0))
            .map_err(|e: JsonRejection| ApiError(AdminError::invalid("body", e.body_text())))
    }
}

/// An id in the path that must be a number.
fn account_id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError(AdminError::invalid("id", "must be an account number")))
}

// ---- users ----------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FindUsers {
    account_id: Option<i64>,
    union_id: Option<String>,
    open_id: Option<String>,
    phone: Option<String>,
    nickname: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

#[utoipa::path(get, path = "/admin/api/v1/users", tag = "users", summary = "Find accounts by id, unionid, openid, phone or nickname (substring), paginated",
    params(FindUsers),
    responses(
        (status = 200, description = "One page of accounts", body = UserPage),
        (status = 400, description = "A refused query parameter", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn find_users(caller: Caller, ApiQuery(q): ApiQuery<FindUsers>) -> ApiResult {
    let query = UserQuery {
        account_id: q.account_id,
        union_id: q.union_id,
        open_id: q.open_id,
        phone: q.phone,
        nickname: q.nickname,
        page: q.page.unwrap_or(1),
        per_page: q.per_page.unwrap_or(50),
    };
    ok(caller.admin.find_users(&query).await?)
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}", tag = "users", summary = "Show one account",
    params(("id" = i64, Path, description = "The account id")),
    responses(
        (status = 200, description = "The account, its identities, consents, sessions, refresh-token families and recent events", body = UserDetail),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn show_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller.admin.show_user(account_id(&id)?).await?)
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/disable", tag = "users", summary = "Disable an account: no new tokens, refresh fails, sign-ins show a clear page",
    params(("id" = i64, Path, description = "The account id")),
    responses(
        (status = 200, description = "The account, disabled; what it held is revoked", body = UserSummary),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn disable_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .disable_user(&caller.actor, account_id(&id)?)
        .await?)
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/enable", tag = "users", summary = "Enable a disabled account",
    params(("id" = i64, Path, description = "The account id")),
    responses(
        (status = 200, description = "The account, enabled", body = UserSummary),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn enable_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .enable_user(&caller.actor, account_id(&id)?)
        .await?)
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/revoke", tag = "users", summary = "Revoke all sessions and refresh-token families of an account",
    params(("id" = i64, Path, description = "The account id")),
    responses(
        (status = 200, description = "What was ended", body = Revoked),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn revoke_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .revoke_user(&caller.actor, account_id(&id)?)
        .await?)
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}/export", tag = "users", summary = "Export one account's data as JSON",
    params(("id" = i64, Path, description = "The account id")),
    responses(
        (status = 200, description = "Everything stored about the account (PIPL: the right to access)", body = Object),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn export_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .export_user(&caller.actor, account_id(&id)?)
        .await?)
}

#[utoipa::path(delete, path = "/admin/api/v1/users/{id}", tag = "users", summary = "Delete an account, its identities, sessions, consents and tokens (PIPL: the right to deletion)",
    params(("id" = i64, Path, description = "The account id")),
    responses(
        (status = 204, description = "Deleted; a tombstone audit event with no personal data stays"),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn delete_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller
        .admin
        .delete_user(&caller.actor, account_id(&id)?)
        .await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

// ---- clients --------------------------------------------------------------------------------

/// A client as the API shows it (never its secret).
#[derive(Serialize, ToSchema)]
struct ClientView {
    client_id: String,
    display_name: Option<String>,
    logo_url: Option<String>,
    /// `public` or `confidential`.
    #[serde(rename = "type")]
    client_type: &'static str,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    redirect_uris: Vec<String>,
    first_party: bool,
    /// Seconds.
    access_token_ttl: i64,
    /// Seconds.
    refresh_token_ttl: i64,
    /// Seconds.
    refresh_family_ttl: i64,
    /// `required` or `optional`.
    flow_ticket: &'static str,
    introspect: bool,
    /// Identifiers of the resources (RFC 8707) the client may ask tokens for.
    resources: Vec<String>,
    /// Unix seconds until which the secret before the last rotation still works.
    previous_secret_valid_until: Option<i64>,
    /// Web origins whose pages may call the token, userinfo and revocation endpoints (CORS),
    /// beyond the origins of `redirect_uris`.
    allowed_origins: Vec<String>,
    /// `ES256` or `RS256`; `null`: the server's default.
    id_token_signed_response_alg: Option<&'static str>,
    /// The token response also carries the seed's user fields.
    seed_fields: bool,
    /// Where RP-initiated logout may send the browser back (exact match).
    post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed when a session ends.
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    /// The WeChat apps whose upstream credentials the client may fetch at
    /// `POST /api/wechat/credentials` (with the `wechat:credentials` scope).
    wechat_appids: Vec<String>,
}

impl From<&RegisteredClient> for ClientView {
    fn from(c: &RegisteredClient) -> Self {
        Self {
            client_id: c.client_id.clone(),
            display_name: c.display_name.clone(),
            logo_url: c.logo_url.clone(),
            client_type: if c.public { "public" } else { "confidential" },
            grant_types: c.grant_types.clone(),
            scopes: c.scopes.clone(),
            redirect_uris: c.redirect_uris.clone(),
            first_party: c.first_party,
            access_token_ttl: c.access_token_ttl,
            refresh_token_ttl: c.refresh_token_ttl,
            refresh_family_ttl: c.refresh_family_ttl,
            flow_ticket: c.flow_ticket.as_str(),
            introspect: c.introspect,
            resources: c.resources.clone(),
            previous_secret_valid_until: c.previous_secret_until,
            allowed_origins: c.allowed_origins.clone(),
            id_token_signed_response_alg: c.id_token_alg.map(IdTokenAlg::as_str),
            seed_fields: c.seed_fields,
            post_logout_redirect_uris: c.logout.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.logout.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.logout.backchannel_logout_session_required,
            wechat_appids: c.wechat_appids.clone(),
        }
    }
}

/// A client just registered: a generated secret is shown here, once.
#[derive(Serialize, ToSchema)]
struct CreatedClient {
    #[serde(flatten)]
    client: ClientView,
    /// Present only when the server generated the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct ClientList {
    clients: Vec<ClientView>,
}

/// A rotated secret, shown once.
#[derive(Serialize, ToSchema)]
struct RotatedSecretView {
    client_id: String,
    client_secret: String,
    /// Unix seconds until which the old secret still works.
    previous_secret_valid_until: Option<i64>,
}

fn id_token_alg(text: Option<String>) -> Result<Option<IdTokenAlg>, ApiError> {
    text.map(|t| {
        IdTokenAlg::parse(&t).ok_or_else(|| {
            ApiError(AdminError::invalid(
                "id_token_signed_response_alg",
                "must be \"ES256\" or \"RS256\"",
            ))
        })
    })
    .transpose()
}

fn flow_ticket(text: Option<String>) -> Result<Option<FlowTicketPolicy>, ApiError> {
    text.map(|t| {
        FlowTicketPolicy::parse(&t).ok_or_else(|| {
            ApiError(AdminError::invalid(
                "flow_ticket",
                "must be \"required\" or \"optional\"",
            ))
        })
    })
    .transpose()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateClient {
    client_id: String,
    #[serde(default)]
    public: bool,
    /// An imported secret; absent: one is generated and shown once.
    secret: Option<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    first_party: bool,
    access_token_ttl: Option<i64>,
    refresh_token_ttl: Option<i64>,
    refresh_family_ttl: Option<i64>,
    flow_ticket: Option<String>,
    #[serde(default)]
    introspect: bool,
    display_name: Option<String>,
    logo_url: Option<String>,
    /// Identifiers of registered resources (RFC 8707) the client may ask tokens for.
    #[serde(default)]
    resources: Vec<String>,
    /// Web origins (`https://app.example.com`) allowed by CORS beyond the redirect URIs' own.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// `ES256` (default) or `RS256`.
    id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    seed_fields: bool,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
    /// WeChat appids whose credentials the client may fetch from the credential broker.
    #[serde(default)]
    wechat_appids: Vec<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/clients", tag = "clients", summary = "List clients",

    responses(
        (status = 200, description = "Every registered client (never a secret)", body = ClientList),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn list_clients(caller: Caller) -> ApiResult {
    let clients = caller.admin.clients().await?;
    ok(ClientList {
        clients: clients.iter().map(ClientView::from).collect(),
    })
}

#[utoipa::path(get, path = "/admin/api/v1/clients/{id}", tag = "clients", summary = "Show a client",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "The client (never its secret)", body = ClientView),
        (status = 404, description = "No such client", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn show_client(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(ClientView::from(&caller.admin.client(&id).await?))
}

#[utoipa::path(post, path = "/admin/api/v1/clients", tag = "clients", summary = "Register a client",
    request_body = CreateClient,
    responses(
        (status = 201, description = "The client; a generated secret is shown here once", body = CreatedClient),
        (status = 400, description = "A refused field", body = ApiErrorBody),
        (status = 409, description = "The client_id is taken", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn create_client(caller: Caller, ApiJson(body): ApiJson<CreateClient>) -> ApiResult {
    let new = NewClient {
        client_id: body.client_id,
        secret: body.secret.map(Secret::new),
        grant_types: body.grant_types,
        scopes: body.scopes,
        redirect_uris: body.redirect_uris,
        public: body.public,
        first_party: body.first_party,
        access_token_ttl: body.access_token_ttl.unwrap_or(DEFAULT_ACCESS_TTL),
        refresh_token_ttl: body.refresh_token_ttl.unwrap_or(DEFAULT_REFRESH_TTL),
        flow_ticket: flow_ticket(body.flow_ticket)?.unwrap_or(FlowTicketPolicy::Required),
        introspect: body.introspect,
        refresh_family_ttl: body.refresh_family_ttl.unwrap_or(DEFAULT_FAMILY_TTL),
        display_name: body.display_name,
        logo_url: body.logo_url,
        resources: body.resources,
        allowed_origins: body.allowed_origins,
        id_token_alg: id_token_alg(body.id_token_signed_response_alg)?,
        seed_fields: body.seed_fields,
        logout: ClientLogout {
            post_logout_redirect_uris: body.post_logout_redirect_uris,
            backchannel_logout_uri: body.backchannel_logout_uri,
            backchannel_logout_session_required: body.backchannel_logout_session_required,
        },
        wechat_appids: body.wechat_appids,
    };
    let (client, secret) = caller.admin.create_client(&caller.actor, new).await?;
    let shown = CreatedClient {
        client: ClientView::from(&client),
        client_secret: secret.map(|s| s.expose().to_owned()),
    };
    Ok(no_store((StatusCode::CREATED, Json(shown)).into_response()))
}

/// `Some(None)` for an explicit `null` (remove), `None` when the field is absent (keep).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateClient {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    logo_url: Option<Option<String>>,
    grant_types: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
    first_party: Option<bool>,
    access_token_ttl: Option<i64>,
    refresh_token_ttl: Option<i64>,
    refresh_family_ttl: Option<i64>,
    flow_ticket: Option<String>,
    introspect: Option<bool>,
    /// Replaces the resources (RFC 8707) the client may ask tokens for.
    resources: Option<Vec<String>>,
    /// Replaces the list; `[]` removes every allowed origin.
    allowed_origins: Option<Vec<String>>,
    /// `ES256` or `RS256`.
    id_token_signed_response_alg: Option<String>,
    seed_fields: Option<bool>,
    post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    backchannel_logout_uri: Option<Option<String>>,
    backchannel_logout_session_required: Option<bool>,
    /// Replaces the list; `[]` removes every WeChat app from the credential broker's list.
    wechat_appids: Option<Vec<String>>,
}

#[utoipa::path(patch, path = "/admin/api/v1/clients/{id}", tag = "clients", summary = "Change a client: absent fields are kept, `null` removes display_name or logo_url",
    params(("id" = String, Path, description = "The client_id")), request_body = UpdateClient,
    responses(
        (status = 200, description = "The client as changed", body = ClientView),
        (status = 400, description = "A refused field", body = ApiErrorBody),
        (status = 404, description = "No such client", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn update_client(
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateClient>,
) -> ApiResult {
    let changes = ClientChanges {
        display_name: body.display_name,
        logo_url: body.logo_url,
        grant_types: body.grant_types,
        scopes: body.scopes,
        redirect_uris: body.redirect_uris,
        first_party: body.first_party,
        access_token_ttl: body.access_token_ttl,
        refresh_token_ttl: body.refresh_token_ttl,
        refresh_family_ttl: body.refresh_family_ttl,
        flow_ticket: flow_ticket(body.flow_ticket)?,
        introspect: body.introspect,
        resources: body.resources,
        allowed_origins: body.allowed_origins,
        id_token_alg: id_token_alg(body.id_token_signed_response_alg)?,
        seed_fields: body.seed_fields,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        backchannel_logout_uri: body.backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
        wechat_appids: body.wechat_appids,
    };
    ok(ClientView::from(
        &caller
            .admin
            .update_client(&caller.actor, &id, changes)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/admin/api/v1/clients/{id}", tag = "clients", summary = "Delete a client",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such client", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn delete_client(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin.delete_client(&caller.actor, &id).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    /// How long the old secret keeps working (seconds); default
    /// `WXAUTH_CLIENT_SECRET_OVERLAP_SECS`.
    overlap_secs: Option<i64>,
}

#[utoipa::path(post, path = "/admin/api/v1/clients/{id}/secret", tag = "clients", summary = "Rotate a client secret with a grace period",
    params(("id" = String, Path, description = "The client_id")), request_body(content = Option<RotateSecret>, description = "Optional; an empty body takes the default overlap"),
    responses(
        (status = 200, description = "The new secret, shown once; the old one works until previous_secret_valid_until", body = RotatedSecretView),
        (status = 400, description = "A refused field, or a public client", body = ApiErrorBody),
        (status = 404, description = "No such client", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn rotate_secret(
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateSecret>,
) -> ApiResult {
    let overlap = body.overlap_secs;
    let rotated = caller
        .admin
        .rotate_client_secret(&caller.actor, &id, overlap)
        .await?;
    ok(RotatedSecretView {
        client_id: id,
        client_secret: rotated.secret.expose().to_owned(),
        previous_secret_valid_until: rotated.previous_valid_until,
    })
}

// ---- resources (RFC 8707) ------------------------------------------------------------------
// An identifier in the path is percent-encoded (`/resources/https%3A%2F%2Fapi.example.com`).

/// A registered resource.
#[derive(Serialize, ToSchema)]
struct ResourceView {
    /// The resource indicator (an absolute URI without a fragment): the `aud` of its tokens.
    id: String,
    name: Option<String>,
    /// The scopes it accepts; a token for it carries only these of the granted scopes.
    scopes: Vec<String>,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
}

impl From<Resource> for ResourceView {
    fn from(r: Resource) -> Self {
        Self {
            id: r.identifier,
            name: r.display_name,
            scopes: r.scopes,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Every registered resource.
#[derive(Serialize, ToSchema)]
struct ResourceList {
    resources: Vec<ResourceView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateResource {
    /// The resource indicator: an absolute URI without a fragment, at most 255 characters.
    id: String,
    name: Option<String>,
    /// At least one scope.
    scopes: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateResource {
    /// `null` removes the name.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    /// Replaces the scopes.
    scopes: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/admin/api/v1/resources", tag = "resources", summary = "List resources",
    responses(
        (status = 200, description = "Every registered resource", body = ResourceList),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn list_resources(caller: Caller) -> ApiResult {
    let resources = caller.admin.resources().await?;
    ok(ResourceList {
        resources: resources.into_iter().map(ResourceView::from).collect(),
    })
}

#[utoipa::path(post, path = "/admin/api/v1/resources", tag = "resources", summary = "Register a resource",
    request_body = CreateResource,
    responses(
        (status = 201, description = "The resource", body = ResourceView),
        (status = 400, description = "A refused field", body = ApiErrorBody),
        (status = 409, description = "The identifier is taken", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn create_resource(caller: Caller, ApiJson(body): ApiJson<CreateResource>) -> ApiResult {
    let new = NewResource {
        identifier: body.id,
        display_name: body.name,
        scopes: body.scopes,
    };
    let resource = caller.admin.create_resource(&caller.actor, new).await?;
    Ok(no_store(
        (StatusCode::CREATED, Json(ResourceView::from(resource))).into_response(),
    ))
}

#[utoipa::path(get, path = "/admin/api/v1/resources/{id}", tag = "resources", summary = "Show a resource",
    params(("id" = String, Path, description = "The identifier, percent-encoded")),
    responses(
        (status = 200, description = "The resource", body = ResourceView),
        (status = 404, description = "No such resource", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn show_resource(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(ResourceView::from(caller.admin.resource(&id).await?))
}

#[utoipa::path(patch, path = "/admin/api/v1/resources/{id}", tag = "resources", summary = "Change a resource: absent fields are kept, `null` removes the name",
    params(("id" = String, Path, description = "The identifier, percent-encoded")), request_body = UpdateResource,
    responses(
        (status = 200, description = "The resource as changed", body = ResourceView),
        (status = 400, description = "A refused field", body = ApiErrorBody),
        (status = 404, description = "No such resource", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn update_resource(
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateResource>,
) -> ApiResult {
    let changes = ResourceChanges {
        display_name: body.name,
        scopes: body.scopes,
    };
    ok(ResourceView::from(
        caller
            .admin
            .update_resource(&caller.actor, &id, changes)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/admin/api/v1/resources/{id}", tag = "resources", summary = "Remove a resource",
    params(("id" = String, Path, description = "The identifier, percent-encoded")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such resource", body = ApiErrorBody),
        (status = 409, description = "A client is still allowed the resource", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn delete_resource(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin.delete_resource(&caller.actor, &id).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

// ---- WeChat apps ----------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
struct AppList {
    apps: Vec<AppView>,
}

/// A WeChat app to register. `secret`, `token` and `aes_key` are write-only: no answer ever
/// contains them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddApp {
    /// `wx` followed by 16 hex digits.
    appid: String,
    /// `mini_program`, `official_account`, `component` or `website`.
    kind: String,
    /// The AppSecret (not needed by an official account under a component).
    secret: Option<String>,
    /// Official accounts: the Open Platform component it is authorized to.
    component_appid: Option<String>,
    /// Official accounts: the base account (snsapi_userinfo, gives the unionid).
    #[serde(default)]
    base: bool,
    /// With `base`: take the current base account's place (it stays registered).
    #[serde(default)]
    replace: bool,
    /// Components: the message token.
    token: Option<String>,
    /// Components: the 43-character EncodingAESKey.
    aes_key: Option<String>,
}

/// New write-only values after a reset in WeChat's console; at least one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateApp {
    secret: Option<String>,
    /// Components, and official accounts not under a component (their message URL).
    token: Option<String>,
    /// Components, and official accounts in safe mode: 43 characters.
    aes_key: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/apps", tag = "apps", summary = "List WeChat apps with their upstream token state and calls today",
    responses(
        (status = 200, description = "Every app (never a secret, token or key)", body = AppList),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn list_apps(caller: Caller) -> ApiResult {
    ok(AppList {
        apps: caller.admin.apps().await?,
    })
}

#[utoipa::path(get, path = "/admin/api/v1/apps/{appid}", tag = "apps", summary = "Show a WeChat app",
    params(("appid" = String, Path, description = "The appid")),
    responses(
        (status = 200, description = "The app (never a secret, token or key)", body = AppView),
        (status = 404, description = "No such app", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn show_app(caller: Caller, Path(appid): Path<String>) -> ApiResult {
    ok(caller.admin.app(&appid).await?)
}

#[utoipa::path(post, path = "/admin/api/v1/apps", tag = "apps", summary = "Register a WeChat app",
    request_body = AddApp,
    responses(
        (status = 201, description = "The app as registered (its secrets are not shown)", body = AppView),
        (status = 400, description = "A refused field", body = ApiErrorBody),
        (status = 409, description = "The appid is registered, or a base account exists and replace was not set", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn add_app(caller: Caller, ApiJson(body): ApiJson<AddApp>) -> ApiResult {
    let new = NewApp {
        appid: body.appid,
        kind: app_kind(&body.kind)?,
        secret: body.secret.map(Secret::new),
        component_appid: body.component_appid,
        is_base: body.base,
        token: body.token.map(Secret::new),
        aes_key: body.aes_key.map(Secret::new),
    };
    let (app, _) = caller
        .admin
        .add_app(&caller.actor, new, body.replace)
        .await?;
    Ok(no_store((StatusCode::CREATED, Json(app)).into_response()))
}

#[utoipa::path(patch, path = "/admin/api/v1/apps/{appid}", tag = "apps", summary = "Store a secret, message token or EncodingAESKey reset in WeChat's console",
    params(("appid" = String, Path, description = "The appid")), request_body = UpdateApp,
    responses(
        (status = 200, description = "The app (its secrets are not shown)", body = AppView),
        (status = 400, description = "A refused field, or none given", body = ApiErrorBody),
        (status = 404, description = "No such app", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn update_app(
    caller: Caller,
    Path(appid): Path<String>,
    ApiJson(body): ApiJson<UpdateApp>,
) -> ApiResult {
    let secrets = AppSecrets {
        secret: body.secret.map(Secret::new),
        token: body.token.map(Secret::new),
        aes_key: body.aes_key.map(Secret::new),
    };
    ok(caller
        .admin
        .update_app(&caller.actor, &appid, secrets)
        .await?)
}

#[utoipa::path(delete, path = "/admin/api/v1/apps/{appid}", tag = "apps", summary = "Remove a WeChat app",
    params(("appid" = String, Path, description = "The appid")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app", body = ApiErrorBody),
        (status = 409, description = "A component official accounts still use (the message names them)", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn remove_app(caller: Caller, Path(appid): Path<String>) -> ApiResult {
    caller.admin.remove_app(&caller.actor, &appid).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

// ---- keys -----------------------------------------------------------------------------------

/// A signing key (its public half is in the JWKS; the private half is never shown).
#[derive(Serialize, ToSchema)]
struct KeyView {
    kid: String,
    alg: String,
    /// `pending` (published, not yet signing), `active` (signing), `retiring` (published until
    /// its tokens expire) or `expired`.
    state: &'static str,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds when a staged key starts signing.
    activates_at: Option<i64>,
    /// Unix seconds.
    retired_at: Option<i64>,
}

impl From<&KeyInfo> for KeyView {
    fn from(k: &KeyInfo) -> Self {
        Self {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state.as_str(),
            created_at: k.created_at,
            activates_at: k.activates_at,
            retired_at: k.retired_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct KeyList {
    keys: Vec<KeyView>,
}

#[utoipa::path(get, path = "/admin/api/v1/keys", tag = "keys", summary = "List signing keys",

    responses(
        (status = 200, description = "Every signing key with its state", body = KeyList),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn list_keys(caller: Caller) -> ApiResult {
    let keys = caller.admin.keys().await?;
    ok(KeyList {
        keys: keys.iter().map(KeyView::from).collect(),
    })
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// Seconds until the new key signs; default `WXAUTH_KEY_ACTIVATION_DELAY_SECS`.
    activate_after: Option<i64>,
}

#[utoipa::path(post, path = "/admin/api/v1/keys", tag = "keys", summary = "Stage a new signing key",
    request_body(content = Option<RotateKey>, description = "Optional; an empty body takes the default delay"),
    responses(
        (status = 201, description = "The new key: published in the JWKS now, signing after the delay", body = KeyView),
        (status = 400, description = "A refused field", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn rotate_key(caller: Caller, OptionalJson(body): OptionalJson<RotateKey>) -> ApiResult {
    let delay = body.activate_after;
    let key = caller.admin.rotate_key(&caller.actor, delay).await?;
    Ok(no_store(
        (StatusCode::CREATED, Json(KeyView::from(&key))).into_response(),
    ))
}

#[utoipa::path(post, path = "/admin/api/v1/keys/{kid}/retire", tag = "keys", summary = "Retire a signing key",
    params(("kid" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "The key, retired; it stays published until its tokens have expired", body = KeyView),
        (status = 404, description = "No such key", body = ApiErrorBody),
        (status = 409, description = "The key cannot be retired (e.g. the only signing key)", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn retire_key(caller: Caller, Path(kid): Path<String>) -> ApiResult {
    ok(KeyView::from(
        &caller.admin.retire_key(&caller.actor, &kid).await?,
    ))
}

// ---- audit ----------------------------------------------------------------------------------

/// Audit events, newest first.
#[derive(Serialize, ToSchema)]
struct EventList {
    events: Vec<Value>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    account_id: Option<i64>,
    client_id: Option<String>,
    kind: Option<String>,
    /// Unix seconds.
    since: Option<i64>,
    limit: Option<u64>,
    /// Events older than this event id (the previous page's `next_before`).
    before: Option<i64>,
}

#[utoipa::path(get, path = "/admin/api/v1/audit", tag = "audit", summary = "Audit events by account, client, kind and time",
    params(AuditQuery),
    responses(
        (status = 200, description = "Matching events, newest first", body = EventList),
        (status = 400, description = "A refused query parameter (e.g. an unknown kind)", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn audit_events(caller: Caller, ApiQuery(q): ApiQuery<AuditQuery>) -> ApiResult {
    let kind = q
        .kind
        .map(|name| {
            AuditKind::parse(&name).ok_or_else(|| {
                let known: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
                ApiError(AdminError::invalid(
                    "kind",
                    format!("unknown kind {name:?}; one of {}", known.join(", ")),
                ))
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        account_id: q.account_id,
        client_id: q.client_id,
        kind,
        since: q.since,
        limit: q.limit.unwrap_or(100),
    };
    let cursor = q.before.map_or(AuditCursor::Newest, AuditCursor::Before);
    let page = caller.admin.events_page(&filter, cursor).await?;
    ok(EventList {
        events: page.events.iter().map(event_json).collect(),
        next_before: page.older,
    })
}

// ---- admins ---------------------------------------------------------------------------------

/// The accounts holding the admin role.
#[derive(Serialize, ToSchema)]
struct AdminList {
    admins: Vec<AdminView>,
}

/// Which account to grant the role: exactly one of `account_id` and `union_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantAdmin {
    account_id: Option<i64>,
    union_id: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/admins", tag = "admins", summary = "List the accounts holding the admin role",
    responses(
        (status = 200, description = "Every admin", body = AdminList),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn list_admins(caller: Caller) -> ApiResult {
    ok(AdminList {
        admins: caller.admin.admins().await?,
    })
}

#[utoipa::path(post, path = "/admin/api/v1/admins", tag = "admins", summary = "Grant an account the admin role (by account id or unionid)",
    request_body = GrantAdmin,
    responses(
        (status = 200, description = "The admin (granting again changes nothing)", body = AdminView),
        (status = 400, description = "Neither or both of account_id and union_id", body = ApiErrorBody),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn grant_admin(caller: Caller, ApiJson(body): ApiJson<GrantAdmin>) -> ApiResult {
    let which = match (body.account_id, body.union_id) {
        (Some(id), None) => AccountRef::Id(id),
        (None, Some(union_id)) => AccountRef::UnionId(union_id),
        _ => {
            return Err(ApiError(AdminError::invalid(
                "account_id",
                "give exactly one of account_id and union_id",
            )));
        }
    };
    ok(caller.admin.grant_admin(&caller.actor, &which).await?)
}

#[utoipa::path(delete, path = "/admin/api/v1/admins/{id}", tag = "admins", summary = "Revoke an account's admin role",
    params(("id" = i64, Path, description = "The account id")),
    responses(
        (status = 204, description = "Revoked; the account's console sessions end at their next request"),
        (status = 404, description = "No such account, or it is not an admin", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn revoke_admin(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller
        .admin
        .revoke_admin(&caller.actor, &AccountRef::Id(account_id(&id)?))
        .await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

// ---- webhooks -------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    /// Where events are posted (`https://…`).
    url: String,
    /// Event types (`user.created`, `user.signed_in`, `user.merged`, `user.disabled`,
    /// `user.deleted`, `follower.subscribed`, `follower.unsubscribed`), or `["*"]`.
    events: Vec<String>,
    description: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/webhooks", tag = "webhooks", summary = "List webhook endpoints with their pending and dead deliveries",
    responses(
        (status = 200, description = "Every endpoint (never a secret)", body = Vec<WebhookView>),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn list_webhooks(caller: Caller) -> ApiResult {
    ok(caller.admin.list_webhooks().await?)
}

#[utoipa::path(post, path = "/admin/api/v1/webhooks", tag = "webhooks", summary = "Register a webhook endpoint; its signing secret is shown once",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The endpoint, with its secret (not shown again)", body = CreatedWebhook),
        (status = 400, description = "A refused field", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn create_webhook(caller: Caller, ApiJson(body): ApiJson<CreateWebhook>) -> ApiResult {
    let created = caller
        .admin
        .create_webhook(
            &caller.actor,
            NewWebhook {
                url: body.url,
                events: body.events,
                description: body.description,
            },
        )
        .await?;
    Ok(no_store(
        (StatusCode::CREATED, Json(created)).into_response(),
    ))
}

#[utoipa::path(delete, path = "/admin/api/v1/webhooks/{id}", tag = "webhooks", summary = "Remove a webhook endpoint and its waiting deliveries",
    params(("id" = i64, Path, description = "The endpoint id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn remove_webhook(caller: Caller, Path(id): Path<String>) -> ApiResult {
    let id = id
        .parse()
        .map_err(|_| ApiError(AdminError::invalid("id", "must be an endpoint number")))?;
    caller.admin.remove_webhook(&caller.actor, id).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    /// `pending`, `delivered` or `dead`; all when absent.
    status: Option<String>,
    /// At most this many, newest first (default 50, at most 500).
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/admin/api/v1/webhooks/deliveries", tag = "webhooks", summary = "Webhook deliveries, newest first (status=dead: those given up after 24 h of retries)",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "Deliveries with their attempts and last answer", body = Vec<DeliveryView>),
        (status = 400, description = "A refused query parameter", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn webhook_deliveries(caller: Caller, ApiQuery(q): ApiQuery<DeliveryQuery>) -> ApiResult {
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            ApiError(AdminError::invalid(
                "status",
                "expected pending, delivered or dead",
            ))
        })?),
    };
    ok(caller
        .admin
        .webhook_deliveries(status, q.limit.unwrap_or(50))
        .await?)
}

// ---- merges ---------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MergeRequest {
    /// One account.
    a: i64,
    /// The other; the older of the two keeps everything.
    b: i64,
    /// Only say what would move.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(get, path = "/admin/api/v1/merges", tag = "merges", summary = "Merges waiting for a decision (WXAUTH_MERGE_POLICY=queue)",
    responses(
        (status = 200, description = "Pending merges with what each would move", body = Vec<PendingMerge>),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn pending_merges(caller: Caller) -> ApiResult {
    ok(caller.admin.pending_merges().await?)
}

#[utoipa::path(post, path = "/admin/api/v1/merges", tag = "merges", summary = "Merge two accounts into the older one (dry_run: only say what would move)",
    request_body = MergeRequest,
    responses(
        (status = 200, description = "What moved (or would move)", body = MergePlan),
        (status = 404, description = "No such account", body = ApiErrorBody),
        (status = 409, description = "One account twice, or two different unionids", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn merge_users(caller: Caller, ApiJson(body): ApiJson<MergeRequest>) -> ApiResult {
    if body.dry_run {
        return ok(caller.admin.plan_merge(body.a, body.b).await?);
    }
    ok(caller
        .admin
        .merge_users(&caller.actor, body.a, body.b)
        .await?)
}

fn merge_id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError(AdminError::invalid("id", "must be a merge number")))
}

#[utoipa::path(post, path = "/admin/api/v1/merges/{id}/approve", tag = "merges", summary = "Carry out a queued merge",
    params(("id" = i64, Path, description = "The pending merge id")),
    responses(
        (status = 200, description = "What moved", body = MergePlan),
        (status = 404, description = "No such pending merge", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn approve_merge(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .approve_merge(&caller.actor, merge_id(&id)?)
        .await?)
}

#[utoipa::path(post, path = "/admin/api/v1/merges/{id}/reject", tag = "merges", summary = "Refuse a queued merge: the accounts stay apart",
    params(("id" = i64, Path, description = "The pending merge id")),
    responses(
        (status = 204, description = "Refused"),
        (status = 404, description = "No such pending merge", body = ApiErrorBody),
        (status = 401, description = "No token or a wrong one", body = ApiErrorBody),
        (status = 429, description = "Too many failed attempts from this address", body = ApiErrorBody),
    ),
)]
async fn reject_merge(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller
        .admin
        .reject_merge(&caller.actor, merge_id(&id)?)
        .await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
