//! Serving: hyper's HTTP/1.1 server with timers, so that nobody holds the server open.
//!
//! - **Header-read timeout** (`WXAUTH_HEADER_READ_TIMEOUT_SECS`, 10 s): a connection must finish
//!   a request's headers in time or is closed. hyper starts this timer whenever it waits for a
//!   request head, so it is also the **keep-alive idle timeout**: a kept-alive connection that
//!   sends no next request within it is closed.
//! - **Whole-request timeout** (`WXAUTH_REQUEST_TIMEOUT_SECS`, 30 s): a request whose body is not
//!   complete by then is answered 408 (and the connection closed); one whose handler is still
//!   working is answered 503 with `Retry-After`. Never a hang.
//! - **Connection cap** (`WXAUTH_MAX_CONNECTIONS`, 1024): a connection beyond it is answered
//!   `503` with `Retry-After` and closed.
//! - **Request cap** (`WXAUTH_MAX_REQUESTS`, 256 in progress): beyond it, requests are shed with
//!   `503` and `Retry-After` at once rather than queued.
//!
//! TLS and HTTP/2 end at the reverse proxy in front (see README, "Running behind nginx").
//! Every request carries its peer address as `ConnectInfo` for [`crate::http::context`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::ServerLimits;
use crate::http::edge;
use crate::state::AppState;

/// How long in-flight requests may run after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// hyper's read buffer: request heads larger than this are refused by hyper itself (431).
const MAX_BUF_SIZE: usize = 64 * 1024;
/// `Retry-After` (seconds) of the 503 answers that shed load.
pub const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Serve `router` on `listener` with the server limits of `state`, the [`crate::janitor`]
/// sweeping expired rows, the [`crate::webhooks`] worker delivering the outbox and, on SQLite,
/// the WAL checkpoints ([`crate::db::sqlite_checkpoint`]), until `shutdown` completes; then
/// drain in-flight requests.
pub async fn serve_router(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let janitor = tokio::spawn(crate::janitor::run(
        state.db.clone(),
        state.clock.clone(),
        state.config.audit_retention_days.saturating_mul(86_400),
        vec![std::sync::Arc::new(state.profiles.clone())],
    ));
    let calls = state.wechat.calls().clone();
    let call_ledger = tokio::spawn(calls.clone().run());
    let checkpoints = tokio::spawn(crate::db::sqlite_checkpoint::run(state.db.clone()));
    let webhooks = match crate::webhooks::delivery::Deliverer::new(
        state.db.clone(),
        state.vault.clone(),
        state.clock.clone(),
    ) {
        Ok(deliverer) => Some(tokio::spawn(deliverer.run())),
        Err(error) => {
            tracing::error!(%error, "webhook delivery cannot start");
            None
        }
    };
    let limits = state.config.server.clone();
    let app = with_server_limits(router, &limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_BUF_SIZE);

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(shed_connection(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            tower::ServiceExt::map_request(app.clone(), move |mut request: Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, peer = %peer, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: some connections were still open after the drain timeout");
    }
    janitor.abort();
    call_ledger.abort();
    checkpoints.abort();
    if let Some(webhooks) = webhooks {
        webhooks.abort();
    }
    if let Err(error) = calls.flush().await {
        tracing::warn!(%error, "shutdown: WeChat call counts not stored");
    }
    Ok(())
}

/// The per-request limits: the whole-request timeout, and the cap on requests in progress that
/// sheds the excess with 503. (One semaphore for the whole router: a tower `ConcurrencyLimit`
/// layered onto an axum `Router` would be one limit per route.)
fn with_server_limits(router: Router, limits: &ServerLimits) -> Router {
    let timeout = limits.request_timeout;
    let in_progress = Arc::new(Semaphore::new(limits.max_requests));
    router
        .layer(axum::middleware::from_fn(move |request, next| {
            request_deadline(timeout, request, next)
        }))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let in_progress = in_progress.clone();
                async move {
                    match in_progress.try_acquire_owned() {
                        Ok(_permit) => next.run(request).await,
                        Err(_) => shed_response(),
                    }
                }
            },
        ))
}

fn shed_response() -> Response {
    let mut response = edge::refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "",
        "temporarily_unavailable",
        "the server is busy; retry shortly",
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(SHED_RETRY_AFTER_SECS),
    );
    response
}

/// A connection over the cap: read (briefly) what it sent, answer 503 and close.
async fn shed_connection(mut stream: TcpStream) {
    let body = r#"{"error":"temporarily_unavailable","error_description":"the server is busy; retry shortly"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {SHED_RETRY_AFTER_SECS}\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut head = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut head)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The whole-request timeout. 408 when the client has not finished sending the body (the
/// connection is closed), 503 with `Retry-After` when we are the slow ones.
async fn request_deadline(timeout: Duration, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let received = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(&body)));
    let body = Body::new(Watched {
        inner: body,
        received: received.clone(),
    });
    match tokio::time::timeout(timeout, next.run(Request::from_parts(parts, body))).await {
        Ok(response) => response,
        Err(_) if !received.load(Ordering::Acquire) => {
            let mut response = edge::refusal(
                StatusCode::REQUEST_TIMEOUT,
                &path,
                "invalid_request",
                "the request was not received in time",
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Err(_) => {
            tracing::warn!(path = %path, "request timed out");
            let mut response = edge::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                &path,
                "temporarily_unavailable",
                "the server could not answer in time; retry shortly",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}

/// A request body that notes when it has been received completely.
struct Watched {
    inner: Body,
    received: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.received.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
