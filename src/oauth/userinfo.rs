//! The OpenID Connect UserInfo endpoint's core (Core §5.3): a bearer access token with scope
//! `openid` gets the account's `sub`, under `profile` its name and picture, and under
//! `wechat_follow` whether it follows the base official account (`oa_subscribed`).

use serde::Serialize;

use crate::oauth::OAuthServices;
use crate::oauth::error::{OAuthError, OAuthErrorCode};
use crate::oauth::id_token::{ProfileClaims, follower_claim};

/// The UserInfo response.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oa_subscribed: Option<bool>,
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Who the token's user is.
pub async fn userinfo(
    services: &OAuthServices,
    token: Option<&str>,
) -> Result<UserInfo, OAuthError> {
    let token = token.ok_or_else(|| {
        OAuthError::new(OAuthErrorCode::InvalidToken, "a bearer token is required")
    })?;
    let claims = services
        .tokens
        .verify_access_token(token)
        .await
        .ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::InvalidToken,
                "the access token is invalid, expired or revoked",
            )
        })?;
    // A token for another resource (RFC 8707) is not for this endpoint.
    if !claims.aud.contains(services.tokens.issuer()) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidToken,
            "the access token is for another audience",
        ));
    }
    let scope: Vec<&str> = claims.scope.split(' ').collect();
    if !scope.contains(&"openid") || claims.flow_user_id.is_none() {
        return Err(OAuthError::new(
            OAuthErrorCode::InsufficientScope,
            "the access token lacks scope openid",
        ));
    }
    let account_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| OAuthError::new(OAuthErrorCode::InvalidToken, "the token has no user"))?;
    let account = services
        .users
        .account(account_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "loading the account for userinfo");
            OAuthError::server_error()
        })?
        .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidToken, "the user is gone"))?;
    let profile = ProfileClaims::of(&account, &scope);
    let oa_subscribed = follower_claim(services.users.as_ref(), account.id, &scope)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading the follower status for userinfo");
            OAuthError::server_error()
        })?;
    Ok(UserInfo {
        sub: claims.sub,
        name: profile.name,
        picture: profile.picture,
        oa_subscribed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
