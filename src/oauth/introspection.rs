//! Token introspection (RFC 7662), and the rule for who may ask about other clients' tokens and
//! users. Revocation (RFC 7009) is its neighbour, `oauth::revocation`.
//!
//! - Introspection takes a confidential client. It may always ask about its own tokens; only a
//!   resource server (a client created with `--introspect`) may ask about other clients' tokens
//!   and gets `{"active": false}` otherwise, exactly as for an unknown token. Every token type is
//!   searched whatever `token_type_hint` says (RFC 7662 §2.1).
//! - [`resource_server`]: the same rule for other questions about users (`by-unionid`).

use serde_json::{Value, json};

use crate::oauth::client_auth::authenticate_request;
use crate::oauth::error::OAuthError;
use crate::oauth::params::Params;
use crate::oauth::{ClientRegistry, OAuthServices, RegisteredClient};

async fn confidential_client(
    clients: &ClientRegistry,
    authorization: Option<&str>,
    params: &Params,
) -> Result<RegisteredClient, OAuthError> {
    let (client, _) = authenticate_request(clients, authorization, params).await?;
    if client.public {
        return Err(OAuthError::invalid_client(
            "a confidential client is required",
        ));
    }
    Ok(client)
}

/// The client of a request about other clients' tokens or users: an authenticated confidential
/// client marked as a resource server (`wxauth client create --introspect`).
pub async fn resource_server(
    clients: &ClientRegistry,
    authorization: Option<&str>,
) -> Result<RegisteredClient, OAuthError> {
    let client = confidential_client(clients, authorization, &Params::default()).await?;
    if !client.introspect {
        return Err(OAuthError::unauthorized_client(
            "only resource-server clients (client create --introspect) may ask this",
        ));
    }
    Ok(client)
}

fn inactive() -> Value {
    json!({ "active": false })
}

/// RFC 7662: `{"active": false}` for anything unknown, expired, revoked, or not the caller's to
/// ask about.
pub async fn introspect(
    services: &OAuthServices,
    authorization: Option<&str>,
    params: Params,
) -> Result<Value, OAuthError> {
    let client = confidential_client(&services.clients, authorization, &params).await?;
    let token = params.token()?;
    // `token_type_hint` only says where to look first; both kinds are searched (RFC 7662 §2.1),
    // and a JWT is cheap to tell from an opaque refresh token.
    let may_see = |owner: &str| client.introspect || owner == client.client_id;
    if let Some(claims) = services.tokens.verify_access_token(token).await {
        if !may_see(&claims.client_id) {
            return Ok(inactive());
        }
        let mut body = serde_json::to_value(&claims).map_err(|_| OAuthError::server_error())?;
        if let Some(map) = body.as_object_mut() {
            map.insert("active".into(), json!(true));
            map.insert("token_type".into(), json!("Bearer"));
        }
        return Ok(body);
    }
    match services.tokens.find_refresh(token).await {
        Ok(Some(stored))
            if stored.is_live(services.tokens.now()) && may_see(&stored.token.client_id) =>
        {
            Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": stored.token.client_id,
                "sub": stored.subject().subject(&stored.token.owner_id),
                "scope": stored.token.scope,
                "exp": stored.token.expires_at,
                "iat": stored.token.created_at,
                "iss": services.tokens.issuer(),
            }))
        }
        Ok(_) => Ok(inactive()),
        Err(e) => {
            tracing::error!(error = %e, "introspection");
            Err(OAuthError::server_error())
        }
    }
}
