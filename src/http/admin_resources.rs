//! The admin API's resources (RFC 8707), `/admin/api/v1/resources`: list, register, show,
//! change and remove the APIs access tokens may be issued for, over
//! [`crate::admin::resources`]. An identifier in the path is percent-encoded
//! (`/resources/https%3A%2F%2Fapi.example.com`).

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{ApiErrorBody, ApiJson, ApiResult, Caller, no_store, ok};
use crate::oauth::resources::{NewResource, Resource, ResourceChanges};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/resources", get(list_resources).post(create_resource))
        .route(
            "/resources/{id}",
            get(show_resource)
                .patch(update_resource)
                .delete(delete_resource),
        )
}

/// A registered resource.
#[derive(Serialize, ToSchema)]
pub(super) struct ResourceView {
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
pub(super) struct ResourceList {
    resources: Vec<ResourceView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateResource {
    /// The resource indicator: an absolute URI without a fragment, at most 255 characters.
    id: String,
    name: Option<String>,
    /// At least one scope.
    scopes: Vec<String>,
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
pub(super) struct UpdateResource {
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
pub(super) async fn list_resources(caller: Caller) -> ApiResult {
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
pub(super) async fn create_resource(
    caller: Caller,
    ApiJson(body): ApiJson<CreateResource>,
) -> ApiResult {
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
pub(super) async fn show_resource(caller: Caller, Path(id): Path<String>) -> ApiResult {
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
pub(super) async fn update_resource(
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
pub(super) async fn delete_resource(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin.delete_resource(&caller.actor, &id).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
