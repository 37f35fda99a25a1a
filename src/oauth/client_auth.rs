//! Client authentication (RFC 6749 §2.3): `client_secret_basic`, with the id and secret
//! form-url-decoded as §2.3.1 requires (oxide-auth does not decode them), and
//! `client_secret_post`; a public client names itself with `client_id` alone. Using two methods
//! at once is refused (§2.3). Failed authentications are throttled per (client_id, IP).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::oauth::client_registry::{ClientAuthError, ClientRegistry, RegisteredClient};
use crate::oauth::error::OAuthError;
use crate::oauth::params::Params;
use crate::request_context;

/// Credentials as the client presented them.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `application/x-www-form-urlencoded` decoding of one component (`+` is a space).
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Parse an `Authorization: Basic …` header value. `Ok(None)` for other schemes.
pub fn parse_basic(header: &str) -> Result<Option<ClientCredentials>, OAuthError> {
    let Some((scheme, rest)) = header.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let raw = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let client_id = form_decode(id).ok_or_else(bad)?;
    let secret = form_decode(secret).ok_or_else(bad)?;
    if client_id.is_empty() {
        return Err(bad());
    }
    Ok(Some(ClientCredentials {
        client_id,
        secret: Some(secret),
    }))
}

/// Work out which credentials a request carries: the Basic header, or `client_id` (and
/// `client_secret`) parameters, never both.
pub fn credentials_from(
    authorization: Option<&str>,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let basic = match authorization {
        Some(h) => parse_basic(h)?,
        None => None,
    };
    match (basic, client_id, client_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not both Basic and client_secret",
        )),
        (Some(b), Some(id), None) if id != b.client_id => Err(OAuthError::invalid_request(
            "client_id does not match the Basic credentials",
        )),
        (Some(b), _, None) => Ok(Some(b)),
        (None, Some(id), secret) => Ok(Some(ClientCredentials {
            client_id: id.to_string(),
            secret: secret.map(str::to_string),
        })),
        (None, None, Some(_)) => Err(OAuthError::invalid_request(
            "client_secret without client_id",
        )),
        (None, None, None) => Ok(None),
    }
}

/// Authenticate the presented credentials; every failure is `invalid_client`.
///
/// Online guessing is throttled per (client_id, client IP) by the request's
/// [`Limits`](crate::limits::Limits): after a few failures the pair is blocked for a doubling
/// time and answered 429 with `Retry-After` before the secret is even checked. Other addresses,
/// the rightful client's among them, are not affected.
pub async fn authenticate(
    registry: &ClientRegistry,
    credentials: Option<&ClientCredentials>,
) -> Result<RegisteredClient, OAuthError> {
    let Some(creds) = credentials else {
        return Err(OAuthError::invalid_client(
            "client authentication is required",
        ));
    };
    let throttle = crate::limits::current().zip(request_context::client_ip());
    if let Some((limits, ip)) = &throttle
        && let Some(refused) = limits.client_auth_blocked(&creds.client_id, *ip)
    {
        return Err(OAuthError::too_many_requests(
            refused.retry_after_secs(),
            "too many failed client authentications from this address; retry later",
        ));
    }
    match registry
        .authenticate(&creds.client_id, creds.secret.as_deref())
        .await
    {
        Ok(client) => {
            if let Some((limits, ip)) = &throttle {
                limits.client_auth_succeeded(&creds.client_id, *ip).await;
            }
            Ok(client)
        }
        Err(ClientAuthError::BadCredentials) => {
            if let Some((limits, ip)) = &throttle {
                limits.client_auth_failed(&creds.client_id, *ip).await;
            }
            Err(OAuthError::invalid_client("client authentication failed"))
        }
        Err(ClientAuthError::Db(e)) => {
            tracing::error!(error = %e, "client authentication");
            Err(OAuthError::server_error())
        }
    }
}

/// Authenticate the client of a request to the token, introspection or revocation endpoint: the
/// credentials it carries (Basic header, or `client_id` / `client_secret` parameters) checked
/// against the registry. Returns the client and the credentials it used.
pub async fn authenticate_request(
    registry: &ClientRegistry,
    authorization: Option<&str>,
    params: &Params,
) -> Result<(RegisteredClient, ClientCredentials), OAuthError> {
    let credentials = credentials_from(
        authorization,
        params.get("client_id"),
        params.get("client_secret"),
    )?
    .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
    let client = authenticate(registry, Some(&credentials)).await?;
    crate::request_context::note_client(&client.client_id);
    Ok((client, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_form_url_decoded() {
        let creds = parse_basic(&basic("my%20app:s%3Acret+x%2B")).ok().flatten();
        assert_eq!(
            creds,
            Some(ClientCredentials {
                client_id: "my app".into(),
                secret: Some("s:cret x+".into())
            })
        );
    }

    #[test]
    fn the_seed_header_parses() {
        // The seed's own example: xiaozao_flow:dJJ0Z5b7gfJHzCP4c58J
        let creds = parse_basic("Basic eGlhb3phb19mbG93OmRKSjBaNWI3Z2ZKSHpDUDRjNThK")
            .ok()
            .flatten();
        assert_eq!(creds.map(|c| c.client_id), Some("xiaozao_flow".to_string()));
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        for h in ["Basic !!!", "Basic bm9jb2xvbg==", "Basic OnNlY3JldA=="] {
            let err = parse_basic(h).err();
            assert_eq!(
                err.map(|e| e.code),
                Some(crate::oauth::OAuthErrorCode::InvalidClient),
                "{h}"
            );
        }
        assert!(matches!(parse_basic("Bearer abc"), Ok(None)));
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let err = credentials_from(Some(&basic("a:b")), Some("a"), Some("b")).err();
        assert_eq!(
            err.map(|e| e.code),
            Some(crate::oauth::OAuthErrorCode::InvalidRequest)
        );
    }
}
