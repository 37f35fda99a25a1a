//! [`Verifier`]: every check RFC 9068 §4 asks of a resource server, without any web framework.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

use crate::claims::StandardClaims;
use crate::error::{BuildError, VerifyError};
use crate::jwks::{JwksCache, JwksLocation};

/// Checks wxauth access tokens. Cheap to clone (the JWKS cache is shared); put one in your
/// router state and use it from every request.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    /// `None`: the audience is not checked.
    audiences: Option<Vec<String>>,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    required_scopes: Vec<String>,
    keys: Keys,
}

enum Keys {
    Jwks(Box<JwksCache>),
    /// HS256 with a secret shared out of band (legacy resource servers).
    Shared(DecodingKey),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("algorithms", &self.inner.algorithms)
            .field(
                "keys",
                &match self.inner.keys {
                    Keys::Jwks(_) => "jwks",
                    Keys::Shared(_) => "shared secret (redacted)",
                },
            )
            .finish()
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified<C = StandardClaims> {
    /// The claims, decoded into the type you asked for.
    pub claims: C,
    /// The JOSE header (`alg`, `kid`, `typ`).
    pub header: Header,
    scopes: Vec<String>,
}

impl<C> Verified<C> {
    /// The granted scopes (from the `scope` claim).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// `Ok` when every scope in `required` was granted, else
    /// [`VerifyError::InsufficientScope`] (403).
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), VerifyError> {
        if required.iter().all(|r| self.has_scope(r)) {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope {
                required: required.iter().map(|s| s.to_string()).collect(),
            })
        }
    }
}

impl Verifier {
    /// Start configuring a verifier for tokens from `issuer` (wxauth's public URL, e.g.
    /// `https://auth.example.com`; a trailing slash is ignored).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer.into())
    }

    /// The issuer this verifier accepts.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Fetch the JWKS now (for example at start-up, to fail early); returns how many usable
    /// keys it holds. A no-op returning 1 for a shared-secret verifier.
    pub async fn refresh_keys(&self) -> Result<usize, VerifyError> {
        match &self.inner.keys {
            Keys::Jwks(cache) => cache.refresh().await,
            Keys::Shared(_) => Ok(1),
        }
    }

    /// Verify `token` (the compact JWT, without `Bearer `) into wxauth's [`StandardClaims`].
    pub async fn verify(&self, token: &str) -> Result<Verified<StandardClaims>, VerifyError> {
        self.verify_as(token).await
    }

    /// Verify `token` and decode its claims into `C` (your own claim struct).
    pub async fn verify_as<C: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<Verified<C>, VerifyError> {
        let inner = &*self.inner;
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;

        // RFC 9068 §4: the typ header must be at+jwt (or application/at+jwt), compared
        // case-insensitively; this is what keeps ID tokens and other JWTs out.
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        if !inner.algorithms.contains(&header.alg) {
            return Err(VerifyError::AlgorithmNotAccepted(header.alg));
        }

        let jwks_key;
        let key = match &inner.keys {
            Keys::Shared(key) => key,
            Keys::Jwks(cache) => {
                let kid = header.kid.as_deref().ok_or(VerifyError::MissingKeyId)?;
                jwks_key = cache.key(kid).await?;
                if !jwks_key.accepts(header.alg) {
                    return Err(VerifyError::AlgorithmNotAccepted(header.alg));
                }
                &jwks_key.key
            }
        };

        let mut validation = Validation::new(header.alg);
        validation.leeway = inner.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[inner.issuer.as_str()]);
        match &inner.audiences {
            Some(audiences) => {
                validation.set_audience(audiences);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            }
        }

        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| map_jwt_error(e.into_kind(), header.alg))?;
        let scopes = match data.claims.get("scope") {
            None => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(_) => {
                return Err(VerifyError::InvalidClaims(
                    "scope is not a space-separated string".into(),
                ));
            }
        };
        let claims = serde_json::from_value::<C>(Value::Object(data.claims))
            .map_err(|e| VerifyError::InvalidClaims(e.to_string()))?;
        let verified = Verified {
            claims,
            header: data.header,
            scopes,
        };
        if !inner.required_scopes.is_empty() {
            let required: Vec<&str> = inner.required_scopes.iter().map(String::as_str).collect();
            verified.require_scopes(&required)?;
        }
        Ok(verified)
    }
}

fn map_jwt_error(kind: ErrorKind, alg: Algorithm) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => VerifyError::MissingClaim(claim),
        ErrorKind::InvalidClaimFormat(claim) => {
            VerifyError::InvalidClaims(format!("{claim} has the wrong type"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            VerifyError::AlgorithmNotAccepted(alg)
        }
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            VerifyError::InvalidClaims("the payload is not a JSON object".into())
        }
        // Key-format and crypto-provider failures while verifying mean the signature (or the key
        // it names) cannot be right; report it as a bad signature rather than leaking details.
        _ => VerifyError::BadSignature,
    }
}

/// How the JWKS is found.
#[derive(Debug, Clone)]
enum JwksSource {
    /// `{issuer}/.well-known/jwks.json` (wxauth's fixed path).
    WellKnown,
    /// RFC 8414 discovery: `{issuer}/.well-known/oauth-authorization-server` → `jwks_uri`.
    Discover,
    /// An explicit URL.
    Uri(String),
}

/// Configures a [`Verifier`]; see [`Verifier::builder`].
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Option<Vec<String>>,
    leeway: Duration,
    algorithms: Option<Vec<Algorithm>>,
    required_scopes: Vec<String>,
    source: JwksSource,
    shared_secret: Option<Vec<u8>>,
    http: Option<reqwest::Client>,
    cache_ttl: Duration,
    refetch_cooldown: Duration,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("source", &self.source)
            .field("shared_secret", &self.shared_secret.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// The default leeway for `exp` / `nbf`.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    /// How long a fetched JWKS is used before it is fetched again.
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
    /// The least time between two refetches caused by unknown key ids.
    pub const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);

    fn new(issuer: String) -> Self {
        let issuer = issuer.trim_end_matches('/').to_string();
        Self {
            // wxauth puts its issuer URL in `aud` unless a client is configured otherwise.
            audiences: Some(vec![issuer.clone()]),
            issuer,
            leeway: Self::DEFAULT_LEEWAY,
            algorithms: None,
            required_scopes: Vec::new(),
            source: JwksSource::WellKnown,
            shared_secret: None,
            http: None,
            cache_ttl: Self::DEFAULT_CACHE_TTL,
            refetch_cooldown: Self::DEFAULT_REFETCH_COOLDOWN,
        }
    }

    /// Accept tokens whose `aud` contains `audience` (replaces the default, the issuer URL).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.audiences([audience])
    }

    /// Accept tokens whose `aud` contains any of `audiences`.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
        self
    }

    /// Do not check `aud` at all. Only for a resource server that is the issuer's sole audience.
    pub fn skip_audience_check(mut self) -> Self {
        self.audiences = None;
        self
    }

    /// Clock skew tolerated on `exp` / `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The accepted signing algorithms (default ES256, EdDSA, RS256; HS256 with a shared secret).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Scopes every token must carry (403 `insufficient_scope` otherwise).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Find the JWKS through RFC 8414 metadata at `{issuer}/.well-known/oauth-authorization-server`
    /// instead of the fixed `{issuer}/.well-known/jwks.json`.
    pub fn discover(mut self) -> Self {
        self.source = JwksSource::Discover;
        self
    }

    /// Fetch the JWKS from this URL.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.source = JwksSource::Uri(uri.into());
        self
    }

    /// Verify HS256 tokens with a secret shared with wxauth (`WXAUTH_JWT_HS256_SECRET`) instead
    /// of public keys. Only for legacy resource servers: anyone holding the secret can mint
    /// tokens. Only HS256 is then accepted.
    pub fn hs256_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.shared_secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Use this HTTP client for JWKS fetches (default: 5 s timeout, no redirects).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// How long a fetched JWKS is trusted before a refresh (default 5 min).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The least time between two refetches caused by unknown key ids (default 30 s).
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.refetch_cooldown = cooldown;
        self
    }

    /// Check the configuration and build the verifier. Nothing is fetched yet; see
    /// [`Verifier::refresh_keys`].
    pub fn build(self) -> Result<Verifier, BuildError> {
        let issuer_url =
            http_url(&self.issuer).ok_or_else(|| BuildError::InvalidIssuer(self.issuer.clone()))?;
        let is_symmetric =
            |a: &Algorithm| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);

        let (algorithms, keys) = match self.shared_secret {
            Some(secret) => {
                if secret.len() < 32 {
                    return Err(BuildError::WeakSecret);
                }
                let algorithms = self.algorithms.unwrap_or_else(|| vec![Algorithm::HS256]);
                if !algorithms.iter().all(is_symmetric) {
                    // Mixing would let a public key verify as an HMAC secret elsewhere; keep
                    // the shared-secret mode purely symmetric.
                    return Err(BuildError::SymmetricWithoutSecret);
                }
                (algorithms, Keys::Shared(DecodingKey::from_secret(&secret)))
            }
            None => {
                let algorithms = self
                    .algorithms
                    .unwrap_or_else(|| vec![Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256]);
                if algorithms.iter().any(is_symmetric) {
                    return Err(BuildError::SymmetricWithoutSecret);
                }
                let location = match &self.source {
                    JwksSource::WellKnown => JwksLocation::Direct(
                        http_url(&format!("{}/.well-known/jwks.json", self.issuer))
                            .ok_or_else(|| BuildError::InvalidIssuer(self.issuer.clone()))?,
                    ),
                    JwksSource::Uri(uri) => JwksLocation::Direct(
                        http_url(uri).ok_or_else(|| BuildError::InvalidJwksUri(uri.clone()))?,
                    ),
                    JwksSource::Discover => JwksLocation::Discover {
                        metadata: issuer_url
                            .join(&format!(
                                "{}/.well-known/oauth-authorization-server",
                                issuer_url.path().trim_end_matches('/')
                            ))
                            .map_err(|_| BuildError::InvalidIssuer(self.issuer.clone()))?,
                        issuer: self.issuer.clone(),
                    },
                };
                let http = match self.http {
                    Some(client) => client,
                    None => reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .redirect(reqwest::redirect::Policy::none())
                        .build()?,
                };
                let cache = JwksCache::new(http, location, self.cache_ttl, self.refetch_cooldown);
                (algorithms, Keys::Jwks(Box::new(cache)))
            }
        };
        if algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }

        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences: self.audiences.map(dedup),
                leeway: self.leeway,
                algorithms,
                required_scopes: self.required_scopes,
                keys,
            }),
        })
    }
}

fn http_url(text: &str) -> Option<Url> {
    Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    list.into_iter()
        .filter(|a| seen.insert(a.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_refuses_unsafe_configurations() {
        assert!(matches!(
            Verifier::builder("not a url").build(),
            Err(BuildError::InvalidIssuer(_))
        ));
        assert!(matches!(
            Verifier::builder("http://i")
                .algorithms([Algorithm::ES256, Algorithm::HS256])
                .build(),
            Err(BuildError::SymmetricWithoutSecret)
        ));
        assert!(matches!(
            Verifier::builder("http://i").hs256_secret("short").build(),
            Err(BuildError::WeakSecret)
        ));
        assert!(matches!(
            Verifier::builder("http://i")
                .hs256_secret([7u8; 32])
                .algorithms([Algorithm::ES256])
                .build(),
            Err(BuildError::SymmetricWithoutSecret)
        ));
        assert!(matches!(
            Verifier::builder("http://i").algorithms([]).build(),
            Err(BuildError::NoAlgorithms)
        ));
        let v = Verifier::builder("http://i/").build().unwrap();
        assert_eq!(v.issuer(), "http://i");
        assert!(
            !format!(
                "{:?}",
                Verifier::builder("http://i").hs256_secret([7u8; 32])
            )
            .contains('7')
        );
    }
}
