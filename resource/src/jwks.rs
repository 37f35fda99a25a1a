//! Fetching and caching the issuer's JWKS.
//!
//! The cache answers from memory while its copy is younger than the TTL. A token naming a `kid`
//! the cache does not hold triggers one refetch (the issuer may have rotated keys), but at most
//! once per cooldown for the whole cache: otherwise anyone could make us fetch the JWKS on every
//! request by inventing key ids. A stale copy is still used when a refresh fails, so a brief
//! outage of the issuer does not take resource servers down; only when there is no usable key
//! at all is the outcome [`VerifyError::KeysUnavailable`] (503).
//!
//! Symmetric (`oct`) keys in a JWKS are ignored: keys fetched from a URL are public.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::error::VerifyError;

/// Largest JWKS / metadata document we read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// After a failed fetch, wait this long before trying again (requests meanwhile use the stale
/// copy, or get 503 when there is none).
const FAILURE_BACKOFF: Duration = Duration::from_secs(1);

/// What kind of public key a JWK holds; it decides which algorithms may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

/// One usable verification key from the JWKS.
pub(crate) struct KeyEntry {
    kind: KeyKind,
    /// The JWK's `alg`, when it declares one.
    alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl KeyEntry {
    /// Whether a token signed with `alg` may be verified with this key.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        let fits_kind = match self.kind {
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
        };
        fits_kind && self.alg.is_none_or(|declared| declared == alg)
    }
}

/// Where the JWKS lives.
#[derive(Debug, Clone)]
pub(crate) enum JwksLocation {
    /// A known JWKS URL.
    Direct(Url),
    /// Read `jwks_uri` from RFC 8414 metadata at this URL; its `issuer` must equal ours.
    Discover { metadata: Url, issuer: String },
}

#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, Arc<KeyEntry>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct RefreshState {
    /// The last refetch caused by an unknown `kid` (the cooldown applies to these).
    last_miss_refetch: Option<Instant>,
    last_failure: Option<Instant>,
    /// The discovered JWKS URL, once known.
    jwks_uri: Option<Url>,
}

/// A JWKS cache shared by every request a [`Verifier`](crate::Verifier) serves.
pub(crate) struct JwksCache {
    http: reqwest::Client,
    location: JwksLocation,
    ttl: Duration,
    cooldown: Duration,
    snapshot: RwLock<Snapshot>,
    /// Held while fetching, so concurrent misses cause one fetch, not one each.
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl JwksCache {
    pub(crate) fn new(
        http: reqwest::Client,
        location: JwksLocation,
        ttl: Duration,
        cooldown: Duration,
    ) -> Self {
        Self {
            http,
            location,
            ttl,
            cooldown,
            snapshot: RwLock::new(Snapshot::default()),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }

    /// The key named `kid`, fetching or refetching the JWKS as the rules above allow.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<KeyEntry>, VerifyError> {
        let (found, fresh) = self.lookup(kid);
        if let (Some(key), true) = (&found, fresh) {
            return Ok(key.clone());
        }

        let mut state = self.refresh.lock().await;
        // Another request may have refreshed while we waited for the lock.
        let (found, fresh) = self.lookup(kid);
        let ever_fetched = self.read_snapshot().fetched_at.is_some();
        if let (Some(key), true) = (&found, fresh) {
            return Ok(key.clone());
        }
        let now = Instant::now();
        let backing_off = state
            .last_failure
            .is_some_and(|t| now.duration_since(t) < FAILURE_BACKOFF);
        let cooling_down = state
            .last_miss_refetch
            .is_some_and(|t| now.duration_since(t) < self.cooldown);

        match found {
            // Known but stale: refresh, and fall back to the stale key if that fails.
            Some(stale) => {
                if backing_off {
                    return Ok(stale);
                }
                match self.fetch(&mut state).await {
                    Ok(()) => self.lookup(kid).0.ok_or(VerifyError::UnknownKey),
                    Err(reason) => {
                        tracing::warn!(%reason, "JWKS refresh failed; using the cached keys");
                        Ok(stale)
                    }
                }
            }
            None => {
                // A fresh copy without this kid: refetch at most once per cooldown.
                if ever_fetched && fresh && cooling_down {
                    return Err(VerifyError::UnknownKey);
                }
                if backing_off {
                    return Err(VerifyError::KeysUnavailable(
                        "the last fetch failed moments ago".into(),
                    ));
                }
                if ever_fetched && fresh {
                    state.last_miss_refetch = Some(now);
                }
                match self.fetch(&mut state).await {
                    Ok(()) => self.lookup(kid).0.ok_or(VerifyError::UnknownKey),
                    Err(reason) => {
                        tracing::warn!(%reason, "JWKS fetch failed");
                        Err(VerifyError::KeysUnavailable(reason))
                    }
                }
            }
        }
    }

    /// Fetch now (e.g. at start-up), regardless of the cache's age.
    pub(crate) async fn refresh(&self) -> Result<usize, VerifyError> {
        let mut state = self.refresh.lock().await;
        self.fetch(&mut state)
            .await
            .map_err(VerifyError::KeysUnavailable)?;
        Ok(self.read_snapshot().keys.len())
    }

    fn read_snapshot(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        // A poisoned lock only means a panic elsewhere mid-write; the map is still whole.
        self.snapshot.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, kid: &str) -> (Option<Arc<KeyEntry>>, bool) {
        let snapshot = self.read_snapshot();
        let fresh = snapshot.fetched_at.is_some_and(|t| t.elapsed() < self.ttl);
        (snapshot.keys.get(kid).cloned(), fresh)
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<(), String> {
        let result = self.fetch_inner(state).await;
        match &result {
            Ok(keys) => {
                state.last_failure = None;
                tracing::debug!(keys = keys.len(), "JWKS fetched");
            }
            Err(_) => state.last_failure = Some(Instant::now()),
        }
        let keys = result?;
        let mut snapshot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        snapshot.keys = keys;
        snapshot.fetched_at = Some(Instant::now());
        Ok(())
    }

    async fn fetch_inner(
        &self,
        state: &mut RefreshState,
    ) -> Result<HashMap<String, Arc<KeyEntry>>, String> {
        let jwks_uri = match (&self.location, &state.jwks_uri) {
            (JwksLocation::Direct(uri), _) => uri.clone(),
            (JwksLocation::Discover { .. }, Some(uri)) => uri.clone(),
            (JwksLocation::Discover { metadata, issuer }, None) => {
                let uri = self.discover(metadata, issuer).await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let body = self.get(&jwks_uri).await?;
        let keys = parse_jwks(&body)?;
        if keys.is_empty() {
            return Err(format!("{jwks_uri} holds no usable signing key"));
        }
        Ok(keys)
    }

    async fn discover(&self, metadata: &Url, issuer: &str) -> Result<Url, String> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let body = self.get(metadata).await?;
        let doc: Metadata = serde_json::from_slice(&body)
            .map_err(|e| format!("{metadata} is not authorization server metadata: {e}"))?;
        // RFC 8414 §3.3: the metadata must name the issuer we asked about.
        if doc.issuer != issuer {
            return Err(format!(
                "{metadata} names issuer {:?}, expected {issuer:?}",
                doc.issuer
            ));
        }
        let uri = Url::parse(&doc.jwks_uri)
            .map_err(|e| format!("jwks_uri {:?} is not a URL: {e}", doc.jwks_uri))?;
        if !matches!(uri.scheme(), "http" | "https") {
            return Err(format!("jwks_uri {uri} is not http(s)"));
        }
        Ok(uri)
    }

    async fn get(&self, url: &Url) -> Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// One JWK as published; only the members we use.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The usable signing keys of a JWKS document, by `kid`. Keys without a `kid`, meant for
/// encryption, symmetric, of an unknown type or malformed are skipped, so one odd key cannot
/// make the whole set unusable.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<KeyEntry>>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.kid.clone() else {
            continue;
        };
        match key_entry(&jwk) {
            Some(entry) => {
                keys.insert(kid, Arc::new(entry));
            }
            None => tracing::debug!(%kid, kty = %jwk.kty, "skipping unusable JWK"),
        }
    }
    Ok(keys)
}

fn key_entry(jwk: &RawJwk) -> Option<KeyEntry> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<Algorithm>().ok()?),
    };
    let (kind, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let key = DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?;
            let kind = if crv == "P-256" {
                KeyKind::P256
            } else {
                KeyKind::P384
            };
            (kind, key)
        }
        ("OKP", Some("Ed25519")) => (
            KeyKind::Ed25519,
            DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?,
        ),
        ("RSA", _) => (
            KeyKind::Rsa,
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
        ),
        // `oct` keys never come from a public document; other curves we cannot verify.
        _ => return None,
    };
    let entry = KeyEntry { kind, alg, key };
    // A key whose declared alg does not fit its type is unusable.
    match alg {
        Some(a) if !entry.accepts(a) => None,
        _ => Some(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_keys_are_skipped_not_fatal() {
        let body = br#"{"keys":[
            {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
            {"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":"AA","y":"AA"},
            {"kty":"EC","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"rsa","alg":"RS256","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"rsa-es","alg":"ES256","n":"AQAB","e":"AQAB"},
            {"kty":"weird","kid":"w"},
            "not even an object"
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["rsa"]);
        let rsa = &keys["rsa"];
        assert!(rsa.accepts(Algorithm::RS256));
        assert!(!rsa.accepts(Algorithm::RS512), "declared alg pins the key");
        assert!(!rsa.accepts(Algorithm::HS256));
    }

    #[test]
    fn not_a_jwks_is_an_error() {
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }
}
