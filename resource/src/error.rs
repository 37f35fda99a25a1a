//! Why a token was refused ([`VerifyError`]) and why a verifier could not be built
//! ([`BuildError`]), with the RFC 6750 §3 wording each refusal is answered with.

use jsonwebtoken::Algorithm;

/// A refused request or token. Every variant maps to one HTTP answer: see
/// [`status`](Self::status) and [`www_authenticate`](Self::www_authenticate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `Authorization: Bearer` credentials at all (RFC 6750 §3.1: no error code).
    #[error("no bearer token")]
    MissingToken,
    /// The `Authorization` header is present but unusable (RFC 6750 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// Not a JWS compact serialization, or an undecodable header.
    #[error("malformed token")]
    Malformed,
    /// The header's `typ` is not `at+jwt` (RFC 9068 §4): an ID token or another JWT.
    #[error("token type is not at+jwt")]
    WrongType,
    /// The header's `alg` is not one this verifier accepts, or does not fit the key.
    #[error("signing algorithm {0:?} is not accepted")]
    AlgorithmNotAccepted(Algorithm),
    /// The header has no `kid`, so no published key can be chosen.
    #[error("token has no key id")]
    MissingKeyId,
    /// No published key has the token's `kid` (even after refetching the JWKS).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token was issued by another issuer")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    #[error("token is meant for another audience")]
    WrongAudience,
    /// A claim that must be present is missing.
    #[error("token lacks the {0} claim")]
    MissingClaim(String),
    /// The claims do not have the expected shape.
    #[error("token claims are invalid: {0}")]
    InvalidClaims(String),
    /// The token is valid but lacks a required scope (RFC 6750 `insufficient_scope`, 403).
    #[error("token lacks a required scope")]
    InsufficientScope {
        /// Every scope the resource requires.
        required: Vec<String>,
    },
    /// The issuer's keys could not be fetched (503): the token may be fine, we cannot tell.
    #[error("the issuer's signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl VerifyError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::InvalidRequest(_) => 400,
            VerifyError::InsufficientScope { .. } => 403,
            VerifyError::KeysUnavailable(_) => 503,
            _ => 401,
        }
    }

    /// The RFC 6750 §3.1 error code, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            VerifyError::MissingToken | VerifyError::KeysUnavailable(_) => None,
            VerifyError::InvalidRequest(_) => Some("invalid_request"),
            VerifyError::InsufficientScope { .. } => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    /// A description safe to show the client: it never carries fetch details.
    pub fn description(&self) -> String {
        match self {
            VerifyError::KeysUnavailable(_) => {
                "the issuer's signing keys are unavailable; try again later".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), or `None` for 503.
    pub fn www_authenticate(&self) -> Option<String> {
        let code = match (self, self.error_code()) {
            (VerifyError::KeysUnavailable(_), _) => return None,
            (_, None) => return Some("Bearer".to_string()),
            (_, Some(code)) => code,
        };
        let mut challenge = format!(
            "Bearer error=\"{code}\", error_description=\"{}\"",
            quotable(&self.description())
        );
        if let VerifyError::InsufficientScope { required } = self {
            challenge.push_str(&format!(", scope=\"{}\"", quotable(&required.join(" "))));
        }
        Some(challenge)
    }
}

/// Keep only the characters RFC 6750 §3 allows inside `error_description` / `scope`
/// (%x20-21 / %x23-5B / %x5D-7E: printable ASCII without `"` and `\`).
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// A [`Verifier`](crate::Verifier) could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer is not an absolute http(s) URL.
    #[error("issuer must be an absolute http(s) URL: {0}")]
    InvalidIssuer(String),
    /// The configured JWKS URI is not an absolute http(s) URL.
    #[error("jwks_uri must be an absolute http(s) URL: {0}")]
    InvalidJwksUri(String),
    /// A symmetric (HS*) algorithm was allowed without a shared secret: keys from a JWKS are
    /// public, so accepting HS* with them would let anyone forge tokens.
    #[error("HS* algorithms are accepted only with an explicit shared secret")]
    SymmetricWithoutSecret,
    /// The shared secret is too short to resist guessing.
    #[error("the HS256 shared secret must be at least 32 bytes")]
    WeakSecret,
    /// The list of accepted algorithms is empty.
    #[error("no signing algorithm is accepted")]
    NoAlgorithms,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc6750() {
        assert_eq!(
            VerifyError::MissingToken.www_authenticate().as_deref(),
            Some("Bearer")
        );
        assert_eq!(
            VerifyError::Expired.www_authenticate().as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"token has expired\"")
        );
        let scope = VerifyError::InsufficientScope {
            required: vec!["admin".into(), "api".into()],
        };
        assert_eq!(scope.status(), 403);
        assert_eq!(
            scope.www_authenticate().as_deref(),
            Some(
                "Bearer error=\"insufficient_scope\", error_description=\"token lacks a required scope\", scope=\"admin api\""
            )
        );
        assert_eq!(VerifyError::KeysUnavailable("x".into()).status(), 503);
        assert!(
            VerifyError::KeysUnavailable("x".into())
                .www_authenticate()
                .is_none()
        );
    }

    #[test]
    fn descriptions_are_quotable() {
        let e = VerifyError::InvalidClaims("expected \"string\" \\ é".into());
        let challenge = e.www_authenticate().unwrap();
        let inner = challenge
            .split_once("error_description=\"")
            .unwrap()
            .1
            .trim_end_matches('"');
        assert!(!inner.contains('"') && !inner.contains('\\') && inner.is_ascii());
    }
}
