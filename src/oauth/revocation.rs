//! Token revocation (RFC 7009). It takes a confidential client, or a public one naming itself
//! with `client_id` alone (RFC 7009 §2.1), and revokes only that client's tokens. Revoking a
//! refresh token revokes its family and denies the access tokens the family produced.

use crate::oauth::OAuthServices;
use crate::oauth::client_auth::authenticate_request;
use crate::oauth::error::OAuthError;
use crate::oauth::params::Params;

/// RFC 7009: revoke a refresh token (its family, and the access tokens the family produced) or
/// an access token (its jti is denied until it expires). Unknown tokens, and tokens of other
/// clients, are answered 200 all the same.
pub async fn revoke(
    services: &OAuthServices,
    authorization: Option<&str>,
    params: Params,
) -> Result<(), OAuthError> {
    // A public client authenticates by naming itself (RFC 7009 §2.1): it can only revoke
    // tokens issued to it, which whoever holds them could use anyway.
    let (client, _) = authenticate_request(&services.clients, authorization, &params).await?;
    let token = params.token()?;
    // RFC 7009 §2.2.1: a database that cannot be reached in time, or that ended the statement to
    // settle a deadlock, is a 503 the client may retry.
    let internal = |e: sea_orm::DbErr| {
        if crate::db_error::is_worth_retrying(&e) {
            tracing::warn!(error = %e, "revocation: the database is busy");
            return OAuthError::temporarily_unavailable();
        }
        tracing::error!(error = %e, "revocation");
        OAuthError::server_error()
    };
    if let Some(stored) = services
        .tokens
        .find_refresh(token)
        .await
        .map_err(internal)?
    {
        if stored.token.client_id == client.client_id {
            services
                .tokens
                .revoke_family(&stored.token.family_id)
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
