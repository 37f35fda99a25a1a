//! Token introspection (RFC 7662) and revocation (RFC 7009), both for authenticated clients.

use serde_json::{Value, json};

use crate::oauth::OAuthServices;
use crate::oauth::client_auth::authenticate_request;
use crate::oauth::error::OAuthError;
use crate::oauth::token_endpoint::Params;

async fn client_of(
    services: &OAuthServices,
    authorization: Option<&str>,
    params: &Params,
) -> Result<crate::oauth::RegisteredClient, OAuthError> {
    let (client, _) = authenticate_request(&services.clients, authorization, params).await?;
    if client.public {
        return Err(OAuthError::invalid_client(
            "a confidential client is required",
        ));
    }
    Ok(client)
}

fn token_param(params: &Params) -> Result<&str, OAuthError> {
    params
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is required"))
}

/// RFC 7662: `{"active": false}` for anything unknown, expired or revoked.
pub async fn introspect(
    services: &OAuthServices,
    authorization: Option<&str>,
    params: Params,
) -> Result<Value, OAuthError> {
    client_of(services, authorization, &params).await?;
    let token = token_param(&params)?;
    let hint = params.get("token_type_hint");
    if hint != Some("refresh_token")
        && let Some(c) = services.tokens.verify_access_token(token).await
    {
        let mut body = serde_json::to_value(&c).map_err(|_| OAuthError::server_error())?;
        if let Some(map) = body.as_object_mut() {
            map.insert("active".into(), json!(true));
            map.insert("token_type".into(), json!("Bearer"));
        }
        return Ok(body);
    }
    match services.tokens.find_refresh(token).await {
        Ok(Some(row)) if services.tokens.refresh_is_live(&row) => Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": row.client_id,
            "sub": row.owner_id,
            "scope": row.scope,
            "exp": row.expires_at,
            "iat": row.created_at,
            "iss": services.tokens.issuer(),
        })),
        Ok(_) => Ok(json!({ "active": false })),
        Err(e) => {
            tracing::error!(error = %e, "introspection");
            Err(OAuthError::server_error())
        }
    }
}

/// RFC 7009: revoke a refresh token (and its family) or an access token (its jti is denied until
/// it expires). Unknown tokens, and tokens of other clients, are answered 200 all the same.
pub async fn revoke(
    services: &OAuthServices,
    authorization: Option<&str>,
    params: Params,
) -> Result<(), OAuthError> {
    let client = client_of(services, authorization, &params).await?;
    let token = token_param(&params)?;
    let internal = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "revocation");
        OAuthError::server_error()
    };
    if let Some(row) = services
        .tokens
        .find_refresh(token)
        .await
        .map_err(internal)?
    {
        if row.client_id == client.client_id {
            services
                .tokens
                .revoke_family(&row.family_id)
                .await
                .map_err(internal)?;
        }
        return Ok(());
    }
    if let Some(claims) = services.tokens.verify_access_token(token).await
        && claims.client_id == client.client_id
    {
        services
            .tokens
            .deny_access_token(&claims.jti, claims.exp)
            .await
            .map_err(internal)?;
    }
    Ok(())
}
