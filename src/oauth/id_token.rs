//! OpenID Connect ID tokens (Core §2, §3.1.3.6): signed with the same keys as access tokens, for
//! authorization-code grants whose scope includes `openid`.

use serde::{Deserialize, Serialize};

use crate::oauth::keys::KeyError;
use crate::oauth::token_service::{TokenService, expiry};
use crate::users::Account;

/// The `typ` of an ID token's header.
pub const ID_TOKEN_TYP: &str = "JWT";

/// The claims of an ID token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The account id (the same `sub` as in access tokens and userinfo).
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The browser session the user signed in with (Back-Channel Logout 1.0 §2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Under scope `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

/// The standard claims wxauth knows of an account, as userinfo and ID tokens show them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileClaims {
    pub name: Option<String>,
    pub picture: Option<String>,
}

impl ProfileClaims {
    /// The profile claims of `account` when `scope` includes `profile`.
    pub fn of(account: &Account, scope: &[&str]) -> Self {
        if scope.contains(&"profile") {
            Self {
                name: account.nick_name.clone(),
                picture: account.avatar.clone(),
            }
        } else {
            Self::default()
        }
    }
}

/// What an ID token says beyond the account.
pub struct IdTokenRequest<'a> {
    pub client_id: &'a str,
    pub account: &'a Account,
    pub scope: &'a [&'a str],
    pub nonce: Option<String>,
    pub auth_time: Option<i64>,
    /// The browser session's id, when there is one.
    pub sid: Option<String>,
    /// Lifetime in seconds (the access token's).
    pub ttl: i64,
}

/// Sign an ID token.
pub async fn mint(tokens: &TokenService, request: IdTokenRequest<'_>) -> Result<String, KeyError> {
    let now = tokens.now();
    let profile = ProfileClaims::of(request.account, request.scope);
    let claims = IdTokenClaims {
        iss: tokens.issuer().to_owned(),
        sub: request.account.id.to_string(),
        aud: request.client_id.to_owned(),
        azp: request.client_id.to_owned(),
        iat: now,
        exp: expiry(now, request.ttl).map_err(|e| KeyError::Sign(e.to_string()))?,
        auth_time: request.auth_time,
        nonce: request.nonce,
        sid: request.sid,
        name: profile.name,
        picture: profile.picture,
    };
    tokens.keys().sign(ID_TOKEN_TYP, &claims).await
}
