//! # wxauth
//!
//! An OAuth 2.0 / OpenID Connect authorization server for products whose users sign in with
//! WeChat (Mini Programs, Official Account pages, the Open Platform).
//!
//! # Layout
//! - [`config`]: environment variables, validated once; [`state`]: what handlers share;
//!   [`error`]: the one HTTP error type.
//! - [`http`]: thin axum handlers, one file per endpoint family.
//! - [`oauth`]: the OAuth 2.0 core on oxide-auth (clients, grants, tokens, keys).
//! - [`users`]: accounts and WeChat identities behind a repository trait.
//! - [`login`]: where WeChat's word becomes our user (login tickets, sessions, H5 hops).
//! - [`wechat`]: the adapter that hides every WeChat quirk; [`simulator`]: a faithful fake WeChat.
//! - [`app_registry`]: the WeChat apps wxauth talks to.
//! - [`vault`]: secrets at rest; [`secret`]: values that never print; [`clock`]: time as input.
//! - [`db`]: connections and migrations (schema in the `migration` crate, models in `entity`);
//!   [`ttl_cache`]: short-lived caches of records read on every token request.
//! - [`cli`]: the `wxauth` command.

pub mod app_registry;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod dev;
pub mod error;
pub mod http;
pub mod janitor;
pub mod login;
pub mod oauth;
pub mod secret;
pub mod simulator;
pub mod state;
pub mod ttl_cache;
pub mod users;
pub mod vault;
pub mod wechat;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    http::routes()
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve `app(state)` on `listener` (with the [`janitor`] sweeping expired rows) until `shutdown`
/// completes, then drain in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let janitor = tokio::spawn(janitor::run(state.db.clone(), state.clock.clone()));
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    janitor.abort();
    served
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
