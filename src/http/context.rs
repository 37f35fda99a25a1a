//! The per-request context layer: opens a [`request_context`](crate::request_context) scope
//! around every handler with the client's IP address (the socket peer that `serve` records) and
//! the request id and client slot of [`observe`](super::observe).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;

use super::observe::RequestTrace;
use crate::request_context::{self, RequestContext};

/// Middleware: run the rest of the stack inside the request's context.
pub async fn layer(request: Request, next: Next) -> Response {
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let trace = request.extensions().get::<RequestTrace>().cloned();
    let context = RequestContext {
        client_ip,
        request_id: trace.as_ref().map(|t| t.id.clone()),
        client_id: trace.map(|t| t.client_id).unwrap_or_default(),
    };
    request_context::scope(context, next.run(request)).await
}
