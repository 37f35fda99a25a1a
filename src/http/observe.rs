//! Seeing what the server does, per request: the request id (taken from `X-Request-Id` when it
//! is well-formed, else made up, and echoed back), one access-log line at `info` (method, route
//! template, status, latency, client id when known, request id — never the query string), and
//! the HTTP metrics by route template.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS};

/// The request id header, read and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the access log learns while a request is served; the context layer hands the slots to
/// the core.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    pub id: String,
    /// The client the request authenticated as, once known.
    pub client_id: Arc<OnceLock<String>>,
}

/// A caller's request id is kept when it is 1–128 visible characters of `[A-Za-z0-9._:-]`;
/// anything else (it ends up in logs) is replaced.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Middleware: trace, time, log and count one request.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let trace = RequestTrace {
        id: request_id(&request),
        client_id: Arc::new(OnceLock::new()),
    };
    let method = request.method().as_str().to_owned();
    request.extensions_mut().insert(trace.clone());

    let mut response = next.run(request).await;

    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    tracing::info!(
        target: "wxauth::access",
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        client_id = trace.client_id.get().map(String::as_str),
        request_id = %trace.id,
        "request"
    );
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&trace.id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Per-route middleware: hand the route template the router matched (`/oauth/token`, never the
/// path with its ids) to [`layer`], which runs outside the router and cannot see it, in the
/// response's extensions. A request no route matched has none: "unmatched".
pub async fn record_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: Option<&str>) -> String {
        let mut builder = axum::http::Request::builder().uri("/x");
        if let Some(id) = id {
            builder = builder.header("x-request-id", id);
        }
        request_id(&builder.body(axum::body::Body::empty()).unwrap())
    }

    #[test]
    fn a_well_formed_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(with_id(Some("abc-123_x.y:z")), "abc-123_x.y:z");
        for bad in ["", "has space", &"x".repeat(129), "quote\"d", "semi;colon"] {
            let made = with_id(Some(bad));
            assert_ne!(made, bad);
            assert_eq!(made.len(), 32, "a made-up id is a uuid: {made}");
        }
        assert_ne!(with_id(None), with_id(None));
    }
}
