//! The admin API, `/admin/api/v1`: JSON over the [`admin`](crate::admin) core, for the bearer of
//! `WXAUTH_ADMIN_TOKEN`. Users, clients, signing keys and the audit trail. Each handler
//! extracts, calls one core function and maps the result; a refused value is 400 naming the
//! field, an unknown id 404, a contradiction 409. No token and a wrong token get the same 401;
//! repeated failures from one address are throttled (429) like failed client authentication.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::admin::users::{UserQuery, event_json};
use crate::admin::{AccessRefused, Actor, Admin, AdminError};
use crate::audit::{AuditFilter, AuditKind};
use crate::oauth::client_registry::{DEFAULT_ACCESS_TTL, DEFAULT_FAMILY_TTL, DEFAULT_REFRESH_TTL};
use crate::oauth::keys::KeyInfo;
use crate::oauth::{ClientChanges, FlowTicketPolicy, NewClient, RegisteredClient};
use crate::secret::Secret;
use crate::state::AppState;

/// Where the API lives.
pub const BASE_PATH: &str = "/admin/api/v1";

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
        .route("/keys", get(list_keys).post(rotate_key))
        .route("/keys/{kid}/retire", post(retire_key))
        .route("/audit", get(audit_events))
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

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self.0 {
            AdminError::Invalid { field, reason } => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_request", "field": field, "error_description": reason}),
            ),
            AdminError::NotFound(m) => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "error_description": m}),
            ),
            AdminError::Conflict(m) => (
                StatusCode::CONFLICT,
                json!({"error": "conflict", "error_description": m}),
            ),
            AdminError::Db(e) if crate::db::is_unavailable(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily_unavailable", "error_description": crate::db::BUSY_MESSAGE}),
            ),
            AdminError::Db(_) | AdminError::Internal(_) => {
                tracing::error!(error = %self.0, "admin API");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "server_error", "error_description": "the server could not complete the request"}),
                )
            }
        };
        no_store((status, Json(body)).into_response())
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
        Json(json!({"error": "unauthorized", "error_description": "a valid admin bearer token is required"})),
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
        Json(json!({"error": "slow_down", "error_description": "too many failed attempts; try again later"})),
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

#[derive(Deserialize)]
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

async fn show_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller.admin.show_user(account_id(&id)?).await?)
}

async fn disable_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .disable_user(&caller.actor, account_id(&id)?)
        .await?)
}

async fn enable_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .enable_user(&caller.actor, account_id(&id)?)
        .await?)
}

async fn revoke_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .revoke_user(&caller.actor, account_id(&id)?)
        .await?)
}

async fn export_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(caller
        .admin
        .export_user(&caller.actor, account_id(&id)?)
        .await?)
}

async fn delete_user(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller
        .admin
        .delete_user(&caller.actor, account_id(&id)?)
        .await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

// ---- clients --------------------------------------------------------------------------------

/// A client as the API shows it (never its secret).
fn client_json(c: &RegisteredClient) -> Value {
    json!({
        "client_id": c.client_id,
        "display_name": c.display_name,
        "logo_url": c.logo_url,
        "type": if c.public { "public" } else { "confidential" },
        "grant_types": c.grant_types,
        "scopes": c.scopes,
        "redirect_uris": c.redirect_uris,
        "first_party": c.first_party,
        "access_token_ttl": c.access_token_ttl,
        "refresh_token_ttl": c.refresh_token_ttl,
        "refresh_family_ttl": c.refresh_family_ttl,
        "flow_ticket": c.flow_ticket.as_str(),
        "introspect": c.introspect,
        "previous_secret_valid_until": c.previous_secret_until,
    })
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

#[derive(Deserialize)]
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
}

async fn list_clients(caller: Caller) -> ApiResult {
    let clients = caller.admin.clients().await?;
    ok(json!({ "clients": clients.iter().map(client_json).collect::<Vec<_>>() }))
}

async fn show_client(caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(client_json(&caller.admin.client(&id).await?))
}

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
    };
    let (client, secret) = caller.admin.create_client(&caller.actor, new).await?;
    let mut shown = client_json(&client);
    if let Some(secret) = secret {
        shown["client_secret"] = Value::String(secret.expose().to_owned());
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateClient {
    #[serde(default, deserialize_with = "double_option")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
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
}

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
    };
    ok(client_json(
        &caller
            .admin
            .update_client(&caller.actor, &id, changes)
            .await?,
    ))
}

async fn delete_client(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin.delete_client(&caller.actor, &id).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    /// How long the old secret keeps working (seconds); default
    /// `WXAUTH_CLIENT_SECRET_OVERLAP_SECS`.
    overlap_secs: Option<i64>,
}

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
    ok(json!({
        "client_id": id,
        "client_secret": rotated.secret.expose(),
        "previous_secret_valid_until": rotated.previous_valid_until,
    }))
}

// ---- keys -----------------------------------------------------------------------------------

fn key_json(k: &KeyInfo) -> Value {
    json!({
        "kid": k.kid,
        "alg": k.alg,
        "state": k.state.as_str(),
        "created_at": k.created_at,
        "activates_at": k.activates_at,
        "retired_at": k.retired_at,
    })
}

async fn list_keys(caller: Caller) -> ApiResult {
    let keys = caller.admin.keys().await?;
    ok(json!({ "keys": keys.iter().map(key_json).collect::<Vec<_>>() }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// Seconds until the new key signs; default `WXAUTH_KEY_ACTIVATION_DELAY_SECS`.
    activate_after: Option<i64>,
}

async fn rotate_key(caller: Caller, OptionalJson(body): OptionalJson<RotateKey>) -> ApiResult {
    let delay = body.activate_after;
    let key = caller.admin.rotate_key(&caller.actor, delay).await?;
    Ok(no_store(
        (StatusCode::CREATED, Json(key_json(&key))).into_response(),
    ))
}

async fn retire_key(caller: Caller, Path(kid): Path<String>) -> ApiResult {
    ok(key_json(
        &caller.admin.retire_key(&caller.actor, &kid).await?,
    ))
}

// ---- audit ----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    account_id: Option<i64>,
    client_id: Option<String>,
    kind: Option<String>,
    /// Unix seconds.
    since: Option<i64>,
    limit: Option<u64>,
}

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
    let events = caller.admin.events(&filter).await?;
    ok(json!({ "events": events.iter().map(event_json).collect::<Vec<_>>() }))
}
