//! The per-request context layer: opens a [`request_context`](crate::request_context) scope with
//! the client's IP address (the socket peer that `serve` records) around every handler.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::request_context::{self, RequestContext};

/// Middleware: run the rest of the stack inside the request's context.
pub async fn layer(request: Request, next: Next) -> Response {
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    request_context::scope(RequestContext { client_ip }, next.run(request)).await
}
