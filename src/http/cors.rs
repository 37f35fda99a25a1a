//! Cross-origin requests (CORS) from browser apps, with tower-http's `CorsLayer`, on exactly the
//! endpoints a page on another origin calls:
//! - **public metadata** (discovery, the JWKS): any origin (`Access-Control-Allow-Origin: *`),
//!   `GET` only; they carry nothing private;
//! - **client endpoints** (the token endpoints, userinfo, revocation, the seed's Mini Program
//!   calls, `entryBuildUrl` and the JS-SDK configuration): only the origins of registered clients
//!   ([`AllowedOrigins`]: their redirect URIs' origins and their `allowed_origins`), echoed back
//!   with `Vary: Origin`; `GET` and `POST` with `Authorization` and `Content-Type`.
//!
//! Neither ever sends `Access-Control-Allow-Credentials`: these endpoints authenticate with
//! headers and parameters the page sets itself, never with cookies, so a page never needs the
//! browser's credentials, and no origin can ride on them. Every other path (the authorization
//! endpoint, pages, the admin API, introspection) gets no CORS headers, and a preflight there is
//! refused as before.
//!
//! The layer sits outside the edge guard, so that a refusal from it (429, 413) still reaches the
//! page with its CORS headers and the page can read it. Preflights are answered here and never
//! reach a handler; they cost no database read while the origin set is cached.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use super::h5::ENTRY_BUILD_PATH;
use super::jssdk::JSSDK_CONFIG_PATH;
use crate::oauth::allowed_origins::AllowedOrigins;

/// How long a browser may reuse a preflight's answer (seconds). Reuse only spares the
/// preflight: every actual response is checked again, so a removed origin stops at once.
pub const PREFLIGHT_MAX_AGE_SECS: u64 = 600;

/// Which CORS answer a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Any origin, no credentials.
    PublicMetadata,
    /// Only the registered clients' origins, no credentials.
    ClientEndpoint,
}

/// The CORS policy of `path`, if it has one.
pub fn policy_for(path: &str) -> Option<Policy> {
    match path {
        "/.well-known/openid-configuration"
        | "/.well-known/oauth-authorization-server"
        | "/.well-known/jwks.json" => Some(Policy::PublicMetadata),
        "/oauth/token" | "/api/auth/oauth/token" | "/oauth/userinfo" | "/oauth/revoke" => {
            Some(Policy::ClientEndpoint)
        }
        ENTRY_BUILD_PATH | JSSDK_CONFIG_PATH => Some(Policy::ClientEndpoint),
        p if p.starts_with("/api/wechat/ma/") => Some(Policy::ClientEndpoint),
        _ => None,
    }
}

/// The two layers, built once.
#[derive(Clone)]
pub struct Cors {
    public_metadata: CorsLayer,
    client_endpoint: CorsLayer,
}

impl Cors {
    pub fn new(origins: Arc<AllowedOrigins>) -> Self {
        let public_metadata = CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([Method::GET])
            .max_age(Duration::from_secs(PREFLIGHT_MAX_AGE_SECS));
        let client_endpoint = CorsLayer::new()
            .allow_origin(AllowOrigin::async_predicate(
                move |origin: HeaderValue, _parts| {
                    let origins = origins.clone();
                    async move {
                        match origin.to_str() {
                            Ok(origin) => origins.allows(origin).await,
                            Err(_) => false,
                        }
                    }
                },
            ))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            // A page reads why it was refused and when to come back.
            .expose_headers([
                header::WWW_AUTHENTICATE,
                header::RETRY_AFTER,
                super::observe::REQUEST_ID,
            ])
            .max_age(Duration::from_secs(PREFLIGHT_MAX_AGE_SECS));
        Self {
            public_metadata,
            client_endpoint,
        }
    }
}

/// Middleware: the path's CORS layer around the rest of the stack, or nothing.
pub async fn layer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    // Shared, not cloned per request: a request outside the CORS paths (most of them) paid for
    // cloning and dropping both layers (seen in the token endpoint's profile).
    let layer = match policy_for(request.uri().path()) {
        None => return next.run(request).await,
        Some(Policy::PublicMetadata) => &cors.public_metadata,
        Some(Policy::ClientEndpoint) => &cors.client_endpoint,
    };
    match tower::Layer::layer(layer, next).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_paths_have_a_policy() {
        assert_eq!(
            policy_for("/.well-known/jwks.json"),
            Some(Policy::PublicMetadata)
        );
        assert_eq!(policy_for("/oauth/token"), Some(Policy::ClientEndpoint));
        assert_eq!(
            policy_for("/api/wechat/ma/session"),
            Some(Policy::ClientEndpoint)
        );
        for none in [
            "/oauth/authorize",
            "/oauth/introspect",
            "/admin/api/v1/clients",
            "/api/wechat/user/by-unionid",
            "/healthz",
        ] {
            assert_eq!(policy_for(none), None, "{none}");
        }
    }
}
