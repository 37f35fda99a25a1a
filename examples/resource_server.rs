//! A resource server that accepts wxauth's access tokens, in about fifty lines.
//!
//! ```text
//! cargo run --example resource_server -- --issuer http://127.0.0.1:8080 --listen 127.0.0.1:9090
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:9090/me     # any valid token
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:9090/admin  # needs scope `admin`
//! ```
//! Tokens are checked against the issuer's JWKS (`{issuer}/.well-known/jwks.json`, cached and
//! refetched when the issuer rotates keys): `typ: at+jwt`, signature, `iss`, `aud`, `exp`.
//! Refusals answer 401 / 403 with an RFC 6750 `WWW-Authenticate` header.

use std::net::SocketAddr;

use axum::{Json, Router, routing::get};
use clap::Parser;
use serde_json::{Value, json};
use wxauth_resource::{Bearer, ScopeRequirement, Scoped, StandardClaims, Verifier};

#[derive(Parser)]
struct Args {
    /// wxauth's public URL (`WXAUTH_PUBLIC_URL`), the `iss` of its tokens.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    issuer: String,
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// The `aud` to demand (default: the issuer URL, which wxauth puts in `aud` by default).
    #[arg(long)]
    audience: Option<String>,
}

/// `GET /me`: any valid access token; answers with its claims.
async fn me(Bearer(claims): Bearer) -> Json<StandardClaims> {
    Json(claims)
}

/// The scopes `GET /admin` demands.
struct AdminScope;
impl ScopeRequirement for AdminScope {
    const SCOPES: &'static [&'static str] = &["admin"];
}

/// `GET /admin`: a valid token that carries scope `admin` (else 403 `insufficient_scope`).
async fn admin(token: Scoped<AdminScope>) -> Json<Value> {
    Json(json!({ "hello": "admin", "sub": token.sub, "client_id": token.client_id }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wxauth_resource=debug".into()),
        )
        .init();
    let args = Args::parse();

    let mut verifier = Verifier::builder(&args.issuer);
    if let Some(audience) = args.audience {
        verifier = verifier.audience(audience);
    }
    let verifier = verifier.build()?;
    // Fetching the keys now reveals a wrong --issuer at once. If wxauth is not up yet, that is
    // fine: the verifier fetches again when the first token arrives.
    match verifier.refresh_keys().await {
        Ok(keys) => tracing::info!(keys, issuer = %args.issuer, "fetched the issuer's JWKS"),
        Err(e) => tracing::warn!(error = %e, "cannot fetch the JWKS yet; will retry on demand"),
    }

    let app = Router::new()
        .route("/me", get(me))
        .route("/admin", get(admin))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "resource server ready");
    axum::serve(listener, app).await?;
    Ok(())
}
