//! # wxauth
//!
//! An OAuth 2.0 / OpenID Connect authorization server for products whose users sign in with
//! WeChat (Mini Programs, Official Account pages, the Open Platform).
//!
//! # Layout
//! Imports point down this list (README's architecture section draws it; `tools/import-graph`
//! measures it):
//! - [`cli`], [`dev`], [`server`]: the `wxauth` command, `wxauth dev`, serving with timeouts and
//!   caps; [`state`]: the services the handlers share.
//! - [`http`]: thin axum handlers, one file per endpoint family (`/admin/api/v1` in
//!   `http::admin`, on the core functions of [`admin`]); [`error`]: `AppError`, the JSON
//!   error (with `http::pages::PageError` for pages), each mapping a domain [`fault::Fault`] once.
//! - [`login`]: where WeChat's word becomes our user (Mini Program sessions, H5 hops, browser
//!   sign-in); it mints `oauth` login tickets and implements the `mini_program` grant's
//!   `oauth::mini_program_sign_in::MiniProgramSignIn`. [`simulator`]: a faithful fake WeChat.
//!   [`credential_broker`]: the company's services fetch WeChat credentials here instead of
//!   each calling `cgi-bin/token` (client-authenticated, per-client appids).
//! - [`oauth`]: the OAuth 2.0 / OIDC core on oxide-auth (clients, grants, tokens, keys); it knows
//!   neither axum nor `login`.
//! - [`users`]: accounts and WeChat identities behind a repository trait; [`wechat`]: the adapter
//!   that hides every WeChat quirk; [`app_registry`]: the WeChat apps wxauth talks to.
//! - Storage and kernels: [`db`] (connections and migrations; schema in the `migration` crate,
//!   models in `entity`; `db::revocation`, the refresh-token revocation `oauth` and
//!   `users::merge` share), [`store`] (the database, vault and clock services are built from),
//!   [`vault`] (secrets at rest), [`secret`] (values that never print), [`ids`] (the typed
//!   appid, openid and unionid that `wechat` and `users` share), [`clock`] (time as input),
//!   [`config`] (environment variables, validated once; [`config_error`] its one error),
//!   [`fault`] (whose fault a failure is), [`audit`] (the audit trail), [`metrics`] (Prometheus
//!   series), [`health`] (readiness and the scrape, over the connection no handler holds),
//!   [`request_context`] (the caller's address, for the core), [`limits`] (rate limits and the
//!   guessing throttle, in process or shared through Redis), [`group_commit`] (many requests'
//!   writes in one round trip), [`round_trip`] (several statements sent as one), [`ttl_cache`] (short-lived caches of records read on every token
//!   request), [`janitor`] (expiry), [`webhooks`] (the signed-webhook outbox and its delivery
//!   worker).

pub mod admin;
pub mod app_registry;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_error;
pub mod credential_broker;
pub mod db;
pub mod db_error;
pub mod dev;
pub mod error;
pub mod fault;
pub mod group_commit;
pub mod health;
pub mod http;
pub mod ids;
pub mod janitor;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod oauth;
pub mod request_context;
pub mod round_trip;
pub mod secret;
pub mod server;
pub mod simulator;
pub mod state;
pub mod store;
pub mod ttl_cache;
pub mod users;
pub mod vault;
pub mod webhooks;
pub mod wechat;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// The whole HTTP application: the routes behind the edge (sizes, rate limits, authorization
/// parameters) and the request context (client IP, limits).
///
/// The middleware wraps the router once, as one stack, rather than every route through
/// `Router::layer`: there, each `from_fn` layer cloned the layers inside it on every request, each
/// of those boxed (a few µs of CPU per request; README, Performance). The one per-route layer
/// left tells the access log the route template ([`http::observe::record_route`]).
pub fn app(state: AppState) -> Router {
    let routes = http::routes()
        .layer(RequestBodyLimitLayer::new(http::edge::MAX_BODY_BYTES))
        // The one route that takes a picture has a larger cap of its own.
        .merge(
            http::mini_program::upload_routes().layer(RequestBodyLimitLayer::new(
                http::edge::MAX_PROFILE_BODY_BYTES,
            )),
        )
        .layer(axum::middleware::from_fn(http::observe::record_route))
        .with_state(state.clone());
    let stack = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(http::observe::layer))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::context::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(http::pages::Pages::load(
                state.config.templates_dir.as_deref(),
            )),
            http::pages::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(http::cors::Cors::new(state.clients.allowed_origins())),
            http::cors::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            http::edge::guard,
        ))
        .service(routes);
    Router::new().fallback_service(stack)
}

/// The span of one request: method and path only. The query string is left out on purpose:
/// it carries WeChat codes, states, login tickets and, from the seed's clients, credentials.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// Serve `app(state)` on `listener` (with the [`janitor`] sweeping expired rows) until `shutdown`
/// completes, then drain in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, state.clone(), app(state), shutdown).await
}

/// Serve `router` (the application of `state`, perhaps with extra layers) on `listener`, with the
/// [`janitor`] sweeping expired rows, until `shutdown` completes; then drain in-flight requests.
/// The server's timeouts and caps are [`server`]'s; each request carries its peer address
/// (`ConnectInfo`) for the request context.
pub async fn serve_router(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve_router(listener, state, router, shutdown).await
}

/// Serve `/metrics` alone on `listener` (`WXAUTH_METRICS_LISTEN`) until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    db: sea_orm::DatabaseConnection,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        http::metrics::metrics_only(health::Health::new(db)),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a request to the token endpoint leaves in the logs, at DEBUG, through the same
    /// layers the application uses: the request span and the access-log line name the method,
    /// the route and the path, and never the query string (codes, tickets, the seed's
    /// credentials travel there).
    #[tokio::test(flavor = "current_thread")]
    async fn request_logs_leave_the_query_string_out() {
        use tower::ServiceExt;
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let router = Router::new()
            .route(
                "/api/auth/oauth/token",
                axum::routing::post(|| async {
                    tracing::debug!("handled");
                    "ok"
                }),
            )
            .layer(axum::middleware::from_fn(http::observe::record_route))
            .layer(TraceLayer::new_for_http().make_span_with(request_span))
            .layer(axum::middleware::from_fn(http::observe::layer));
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/api/auth/oauth/token?grant_type=flow&ticket=T1CKET&client_secret=S3CRET")
            .header("x-request-id", "req-42")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "req-42");
        let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("/api/auth/oauth/token"), "{logged}");
        let access = logged
            .lines()
            .find(|l| l.contains("wxauth::access"))
            .unwrap_or_else(|| panic!("no access-log line: {logged}"));
        for field in [
            "method=POST",
            "route=/api/auth/oauth/token",
            "status=200",
            "request_id=req-42",
            "latency_ms=",
        ] {
            assert!(access.contains(field), "{field} missing: {access}");
        }
        assert!(
            !logged.contains("T1CKET")
                && !logged.contains("S3CRET")
                && !logged.contains("grant_type"),
            "{logged}"
        );
    }
}
