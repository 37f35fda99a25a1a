//! The API documentation: two OpenAPI 3.1 documents generated from the handlers'
//! `#[utoipa::path]` attributes — the admin API at `/admin/api/openapi.json` and the public
//! endpoints people call most at `/api/openapi.json` — and an interactive page at
//! `/api/doc.html` (the path the seed's knife4j page had), Swagger UI with its assets served by
//! wxauth from the `utoipa-swagger-ui` crate, which vendors them: no CDN, no internet.
//!
//! The page loads only our own scripts (`script-src 'self'`, no inline script). Its one allowance
//! beyond the other pages' policy is `style-src 'unsafe-inline'`: Swagger UI applies inline
//! styles (its inline SVGs carry `<style>`; without the allowance Chromium logs "Applying inline
//! style violates ... 'style-src 'self''" and the logo loses its colours); and `img-src data:`
//! for its icons. Styles cannot run code, so the page stays script-tight.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, openapi};
use utoipa_swagger_ui::Config;

use crate::http::admin::{AdminApi, OPENAPI_PATH as ADMIN_OPENAPI_PATH};
use crate::http::{credentials, device, jssdk, mini_program, oauth};
use crate::state::AppState;

/// Where the public endpoints' document is served.
pub const PUBLIC_OPENAPI_PATH: &str = "/api/openapi.json";
/// The interactive documentation page.
pub const DOC_PAGE_PATH: &str = "/api/doc.html";
/// Where the page's assets are served from.
const ASSETS_PATH: &str = "/api/doc";

/// The page's Content-Security-Policy (see the module comment for why styles may be inline).
const DOC_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page: Swagger UI's own `index.html`, with our title and every asset under
/// [`ASSETS_PATH`]; `swagger-initializer.js` names the two documents.
const DOC_PAGE_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>wxauth API 接口文档</title>
    <link rel="stylesheet" type="text/css" href="/api/doc/swagger-ui.css">
    <link rel="stylesheet" type="text/css" href="/api/doc/index.css">
    <link rel="icon" type="image/png" href="/api/doc/favicon-32x32.png" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/api/doc/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="/api/doc/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="/api/doc/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"#;

/// The public endpoints people call most, generated from their handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxauth public API",
        description = "OAuth 2.0 / OpenID Connect endpoints and the Mini Program login. \
            Browser flows (/oauth/authorize, the H5 and QR sign-in) are redirects, described \
            in the README.",
    ),
    paths(
        oauth::token,
        oauth::introspect,
        oauth::revoke,
        oauth::userinfo,
        oauth::server_metadata,
        oauth::jwks,
        device::device_authorization,
        mini_program::session,
        jssdk::config,
        credentials::credentials,
        device::describe,
        device::approve,
    ),
    modifiers(&PublicSecuritySchemes),
    tags(
        (name = "oauth", description = "OAuth 2.0 and OpenID Connect"),
        (name = "discovery", description = "Metadata and keys"),
        (name = "mini_program", description = "WeChat Mini Program login"),
        (name = "official_account", description = "Official Account H5 pages (JS-SDK) and the WeChat credential broker"),
    ),
)]
pub struct PublicApi;

/// Client authentication (HTTP Basic) and access tokens (bearer).
struct PublicSecuritySchemes;

impl Modify for PublicSecuritySchemes {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("client_id and client_secret (RFC 6749 §2.3.1)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The two documents as JSON, built once.
static ADMIN_DOCUMENT: LazyLock<String> =
    LazyLock::new(|| AdminApi::openapi().to_json().unwrap_or_default());
static PUBLIC_DOCUMENT: LazyLock<String> =
    LazyLock::new(|| PublicApi::openapi().to_json().unwrap_or_default());

/// Swagger UI's configuration: the two documents, the admin one first.
static SWAGGER_CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(Config::new([ADMIN_OPENAPI_PATH, PUBLIC_OPENAPI_PATH]).try_it_out_enabled(true))
});

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ADMIN_OPENAPI_PATH, get(admin_document))
        .route(PUBLIC_OPENAPI_PATH, get(public_document))
        .route(DOC_PAGE_PATH, get(doc_page))
        .route(&format!("{ASSETS_PATH}/{{file}}"), get(doc_asset))
}

fn json_document(text: &str) -> Response {
    if text.is_empty() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.to_owned(),
    )
        .into_response()
}

async fn admin_document() -> Response {
    json_document(&ADMIN_DOCUMENT)
}

async fn public_document() -> Response {
    json_document(&PUBLIC_DOCUMENT)
}

/// The headers of the page and its assets.
fn doc_headers(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOC_CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
}

async fn doc_page() -> Response {
    (doc_headers("text/html; charset=utf-8"), DOC_PAGE_HTML).into_response()
}

/// One of Swagger UI's files; `index.html` is not among them (the page is [`doc_page`]).
async fn doc_asset(Path(file): Path<String>) -> Response {
    if file == "index.html" {
        return StatusCode::NOT_FOUND.into_response();
    }
    match utoipa_swagger_ui::serve(&file, SWAGGER_CONFIG.clone()) {
        Ok(Some(asset)) => {
            let mut headers = doc_headers(&asset.content_type);
            if asset.gzpipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            (headers, asset.bytes.into_owned()).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::error!(%error, "swagger ui asset");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
