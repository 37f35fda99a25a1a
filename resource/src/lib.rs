//! Validate the access tokens that wxauth issues, in your own resource server.
//!
//! wxauth's access tokens are JWTs shaped by RFC 9068: header `typ: at+jwt` with a `kid`, signed
//! with ES256 (default), EdDSA or RS256 by keys published at `{issuer}/.well-known/jwks.json`, or
//! with HS256 and a secret shared out of band for legacy resource servers.
//!
//! # Layout
//! - [`Verifier`] (in `verifier.rs`) does every check of RFC 9068 §4: `typ`, algorithm, signature,
//!   `iss`, `aud`, `exp`/`nbf`, and optionally scopes. It needs no web framework.
//! - `jwks.rs` fetches and caches the issuer's JWKS, refetching (rate-limited) when a token names
//!   a key it does not know, so the issuer's key rotation is picked up without a restart.
//! - [`StandardClaims`] (in `claims.rs`) is the claim set wxauth puts in its tokens.
//! - [`VerifyError`] (in `error.rs`) says why a token was refused and, with the `axum` feature,
//!   answers as RFC 6750 §3 asks (401 `invalid_token`, 403 `insufficient_scope`, 503 when the
//!   keys cannot be fetched).
//! - With the `axum` feature (default), [`Bearer`] and [`Scoped`] (in `extract.rs`) are
//!   extractors that take the [`Verifier`] from your router state through `FromRef`.
//!
//! # Example
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Json, Router, routing::get};
//! use wxauth_resource::{Bearer, StandardClaims, Verifier};
//!
//! async fn me(Bearer(claims): Bearer) -> Json<StandardClaims> {
//!     Json(claims)
//! }
//!
//! let verifier = Verifier::builder("http://127.0.0.1:8080").build()?;
//! let app: Router = Router::new().route("/me", get(me)).with_state(verifier);
//! # let _ = app; Ok(()) }
//! ```
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![warn(missing_docs)]

mod claims;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod jwks;
mod verifier;

pub use claims::{Audience, CLIENT_SUBJECT_PREFIX, StandardClaims};
pub use error::{BuildError, VerifyError};
#[cfg(feature = "axum")]
pub use extract::{Bearer, ScopeRequirement, Scoped};
pub use jsonwebtoken::{Algorithm, Header};
pub use verifier::{Verified, Verifier, VerifierBuilder};
