//! OpenID Connect ID tokens (Core §2, §3.1.3.6, §12.2): for authorization-code grants whose scope
//! includes `openid`, and for refreshes of them. Always signed with a published asymmetric key
//! (ES256, or RS256 for clients that registered it), whatever signs access tokens, so that every
//! relying party can verify them against the JWKS.

use serde::{Deserialize, Serialize};

pub use crate::oauth::client_registry::IdTokenAlg;
use crate::oauth::client_registry::RegisteredClient;
use crate::oauth::keys::KeyError;
use crate::oauth::token_service::{Issued, TokenService, expiry};
use crate::users::{Account, UserRepo};

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
    /// Under scope `wechat_follow`: whether the user follows the base official account (absent
    /// when wxauth has no status for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oa_subscribed: Option<bool>,
}

/// The scope that asks for `oa_subscribed`.
pub const FOLLOW_SCOPE: &str = "wechat_follow";

/// `oa_subscribed` for `account_id` when `scope` includes [`FOLLOW_SCOPE`].
pub async fn follower_claim(
    users: &dyn UserRepo,
    account_id: i64,
    scope: &[&str],
) -> Result<Option<bool>, crate::users::RepoError> {
    if scope.contains(&FOLLOW_SCOPE) {
        users.follows_base_account(account_id).await
    } else {
        Ok(None)
    }
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
    /// What the client registered; `None`: the server's default.
    pub alg: Option<IdTokenAlg>,
    /// [`follower_claim`]'s answer.
    pub oa_subscribed: Option<bool>,
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
        oa_subscribed: request.oa_subscribed,
    };
    let keys = tokens.keys();
    let alg = request
        .alg
        .map_or_else(|| keys.default_id_token_alg(), IdTokenAlg::jwt_alg);
    keys.sign_with(alg, ID_TOKEN_TYP, &claims).await
}

/// What the sign-in behind a grant puts in its ID token: `nonce` only for the code's first
/// exchange (never on refresh), `auth_time`, and `sid` when the grant came from a browser session.
#[derive(Debug, Default)]
pub struct SignInClaims {
    pub nonce: Option<String>,
    pub auth_time: Option<i64>,
    pub sid: Option<String>,
}

/// Why the ID token of an issuance could not be made (the caller answers `server_error`).
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error("loading the account: {0}")]
    Account(String),
    #[error("signing: {0}")]
    Key(#[from] KeyError),
}

/// The ID token that goes with tokens `issued` to `client` for a person: `None` unless the
/// grant's scope (`granted_scope`; the access token's may be narrower, for a resource) includes
/// `openid`.
pub async fn for_issued(
    tokens: &TokenService,
    users: &dyn UserRepo,
    client: &RegisteredClient,
    issued: &Issued,
    granted_scope: &str,
    sign_in: SignInClaims,
) -> Result<Option<String>, IdTokenError> {
    let scope: Vec<&str> = granted_scope.split(' ').collect();
    if !scope.contains(&"openid") {
        return Ok(None);
    }
    let account_id: i64 = issued
        .claims
        .sub
        .parse()
        .map_err(|e: std::num::ParseIntError| IdTokenError::Account(e.to_string()))?;
    let account = users
        .account(account_id)
        .await
        .map_err(|e| IdTokenError::Account(e.to_string()))?
        .ok_or_else(|| IdTokenError::Account(format!("no account {account_id}")))?;
    let oa_subscribed = follower_claim(users, account_id, &scope)
        .await
        .map_err(|e| IdTokenError::Account(e.to_string()))?;
    let token = mint(
        tokens,
        IdTokenRequest {
            client_id: &client.client_id,
            account: &account,
            scope: &scope,
            nonce: sign_in.nonce,
            auth_time: sign_in.auth_time,
            sid: sign_in.sid,
            ttl: issued.expires_in,
            alg: client.id_token_alg,
            oa_subscribed,
        },
    )
    .await?;
    Ok(Some(token))
}
