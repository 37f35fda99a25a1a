//! One file per grant type. Each takes the authenticated client and the request parameters and
//! returns what the [`TokenService`](crate::oauth::token_service::TokenService) issued.
//! `client_credentials`, `refresh_token` and `authorization_code` run oxide-auth's grant state
//! machines through the oxide-auth adapter (`token_issuer`); `flow` and `mini_program` are ours
//! and issue through [`issue_for_account`].

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod flow;
pub mod mini_program;
pub mod refresh_token;

use oxide_auth::code_grant::error::{AccessTokenError, AccessTokenErrorType};
use oxide_auth::primitives::scope::Scope;

use crate::oauth::GrantType;
use crate::oauth::OAuthError;
use crate::oauth::OAuthServices;
use crate::oauth::client_auth::ClientCredentials;
use crate::oauth::client_registry::RegisteredClient;
use crate::oauth::error::OAuthErrorCode;
use crate::oauth::params::Params;
use crate::oauth::resources::Resource;
use crate::oauth::token_service::Issued;
use crate::users::Account;

/// What every grant gets besides its own typed parameters: the authenticated client, and the
/// resources (RFC 8707) the request named, each registered and allowed to the client.
pub struct GrantRequest<'a> {
    pub client: &'a RegisteredClient,
    pub credentials: &'a ClientCredentials,
    pub resources: &'a [Resource],
}

/// A required parameter, or `invalid_request` naming it.
pub(crate) fn required(params: &Params, name: &str) -> Result<String, OAuthError> {
    params
        .get(name)
        .map(str::to_owned)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// An optional parameter.
pub(crate) fn optional(params: &Params, name: &str) -> Option<String> {
    params.get(name).map(str::to_owned)
}

/// Map an error oxide-auth's state machines produced to ours.
pub(crate) fn from_access_token_error(error: Option<&mut AccessTokenError>) -> OAuthError {
    match error.map(|e| e.kind()) {
        Some(AccessTokenErrorType::InvalidRequest) => {
            OAuthError::invalid_request("malformed token request")
        }
        Some(AccessTokenErrorType::InvalidClient) => {
            OAuthError::invalid_client("client authentication failed")
        }
        Some(AccessTokenErrorType::InvalidGrant) => {
            OAuthError::invalid_grant("the grant is invalid, expired or revoked")
        }
        Some(AccessTokenErrorType::UnauthorizedClient) => {
            OAuthError::unauthorized_client("the client may not use this grant")
        }
        Some(AccessTokenErrorType::UnsupportedGrantType) => {
            OAuthError::unsupported_grant_type("unsupported grant_type")
        }
        Some(AccessTokenErrorType::InvalidScope) => {
            OAuthError::invalid_scope("the requested scope is not allowed")
        }
        None => OAuthError::server_error(),
    }
}

/// Check a requested scope against the client's, answering `invalid_scope` per RFC 6749 §5.2.
/// Returns the effective scope (the client's scopes when none was requested).
pub(crate) fn effective_scope(
    client: &RegisteredClient,
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(client.scopes.join(" ")),
        Some(requested) => {
            let mut scopes: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(bad) = scopes.iter().find(|s| !client.allows_scope(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {bad:?} is not allowed for this client"
                )));
            }
            scopes.sort_unstable();
            scopes.dedup();
            Ok(scopes.join(" "))
        }
    }
}

/// What a grant answers when it failed after spending the request's single-use ticket or device
/// code: sent again, the request would be refused as a replay (and audited and counted as one),
/// so "try again" (503) is no answer; `server_error` is. Other answers pass unchanged.
pub(crate) fn after_spending(error: OAuthError) -> OAuthError {
    if error.code == OAuthErrorCode::TemporarilyUnavailable {
        OAuthError::server_error()
    } else {
        error
    }
}

/// Issue tokens for a user account, with a refresh token when the client may refresh.
pub(crate) async fn issue_for_account(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    grant: GrantType,
    account: &Account,
    scope: &str,
) -> Result<Issued, OAuthError> {
    if account.is_disabled() {
        return Err(OAuthError::invalid_grant("the account is disabled"));
    }
    let scope: Scope = scope
        .parse()
        .map_err(|_| OAuthError::invalid_scope("malformed scope"))?;
    let with_refresh = request.client.allows_grant(GrantType::RefreshToken);
    services
        .tokens
        .issue_for_user(
            request.client,
            account,
            &scope,
            with_refresh,
            request.resources,
            grant,
        )
        .await
        .map_err(OAuthError::from)
}
