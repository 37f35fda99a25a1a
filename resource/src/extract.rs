//! axum extractors: [`Bearer`] (any valid token) and [`Scoped`] (a valid token with given
//! scopes), and the RFC 6750 §3 responses for refusals.
//!
//! Both take the [`Verifier`] from the router state through `FromRef`, so the state may be the
//! verifier itself or any struct with a `Verifier` field and a `FromRef` impl.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::claims::StandardClaims;
use crate::error::VerifyError;
use crate::verifier::Verifier;

/// The claims of a valid `Authorization: Bearer` access token.
///
/// ```
/// # use wxauth_resource::Bearer;
/// async fn me(Bearer(claims): Bearer) -> String { claims.sub }
/// ```
/// Use `Bearer<MyClaims>` to decode into your own claim type.
#[derive(Debug, Clone)]
pub struct Bearer<C = StandardClaims>(pub C);

impl<C> Deref for Bearer<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<S, C> FromRequestParts<S> for Bearer<C>
where
    Verifier: FromRef<S>,
    S: Send + Sync,
    C: DeserializeOwned + Send,
{
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, VerifyError> {
        let token = bearer_token(parts)?;
        let verifier = Verifier::from_ref(state);
        let verified = verifier.verify_as::<C>(token).await?;
        Ok(Bearer(verified.claims))
    }
}

/// The scopes a [`Scoped`] extractor demands.
///
/// ```
/// # use wxauth_resource::{ScopeRequirement, Scoped};
/// struct Admin;
/// impl ScopeRequirement for Admin {
///     const SCOPES: &'static [&'static str] = &["admin"];
/// }
/// async fn admin(token: Scoped<Admin>) -> String { token.claims.sub }
/// ```
pub trait ScopeRequirement {
    /// Every one of these scopes must have been granted.
    const SCOPES: &'static [&'static str];
}

/// Like [`Bearer`], and the token must carry every scope of `R` (403 `insufficient_scope`
/// otherwise).
pub struct Scoped<R, C = StandardClaims> {
    /// The token's claims.
    pub claims: C,
    requirement: PhantomData<fn() -> R>,
}

impl<R, C> Scoped<R, C> {
    /// The claims.
    pub fn into_inner(self) -> C {
        self.claims
    }
}

impl<R, C> Deref for Scoped<R, C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.claims
    }
}

impl<R, C: std::fmt::Debug> std::fmt::Debug for Scoped<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("claims", &self.claims)
            .finish()
    }
}

impl<S, R, C> FromRequestParts<S> for Scoped<R, C>
where
    Verifier: FromRef<S>,
    S: Send + Sync,
    R: ScopeRequirement,
    C: DeserializeOwned + Send,
{
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, VerifyError> {
        let token = bearer_token(parts)?;
        let verifier = Verifier::from_ref(state);
        let verified = verifier.verify_as::<C>(token).await?;
        verified.require_scopes(R::SCOPES)?;
        Ok(Scoped {
            claims: verified.claims,
            requirement: PhantomData,
        })
    }
}

/// The token from `Authorization: Bearer <token>` (RFC 6750 §2.1). Tokens in query strings or
/// form bodies are deliberately not accepted.
fn bearer_token(parts: &Parts) -> Result<&str, VerifyError> {
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::MissingToken);
    };
    if values.next().is_some() {
        return Err(VerifyError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| VerifyError::InvalidRequest("Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, …): to us, no bearer credentials at all.
        return Err(VerifyError::MissingToken);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(VerifyError::InvalidRequest(
            "Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token)
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match &self {
            VerifyError::KeysUnavailable(_) => {
                tracing::warn!(error = %self, "refusing a request: cannot check tokens");
            }
            _ => tracing::debug!(error = %self, "refusing a bearer token"),
        }
        let body = match self.error_code() {
            Some(code) => serde_json::json!({
                "error": code,
                "error_description": self.description(),
            }),
            None => serde_json::json!({ "error_description": self.description() }),
        };
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self
            .www_authenticate()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if matches!(self, VerifyError::KeysUnavailable(_)) {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(values: &[&str]) -> Parts {
        let mut builder = Request::builder();
        for v in values {
            builder = builder.header(AUTHORIZATION, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn authorization_header_parsing() {
        assert_eq!(
            bearer_token(&parts(&["Bearer abc.def.ghi"])),
            Ok("abc.def.ghi")
        );
        assert_eq!(bearer_token(&parts(&["bearer   abc"])), Ok("abc"));
        assert_eq!(bearer_token(&parts(&[])), Err(VerifyError::MissingToken));
        assert_eq!(
            bearer_token(&parts(&["Basic Zm9vOmJhcg=="])),
            Err(VerifyError::MissingToken)
        );
        assert!(matches!(
            bearer_token(&parts(&["Bearer"])),
            Err(VerifyError::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&parts(&["Bearer a b"])),
            Err(VerifyError::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&parts(&["Bearer a", "Bearer b"])),
            Err(VerifyError::InvalidRequest(_))
        ));
    }
}
