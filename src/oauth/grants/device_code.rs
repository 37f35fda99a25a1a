//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4–3.5): a device polls
//! with its device code; the answer follows where its user's decision stands (see
//! [`crate::oauth::device`]). Once approved, the first poll spends the device code and gets what
//! the authorization-code grant gives: an access token, a refresh token when the client may
//! refresh, and for scope `openid` an ID token.

use super::{GrantRequest, after_spending, issue_for_account, required};
use crate::oauth::GrantType;
use crate::oauth::OAuthServices;
use crate::oauth::device::PollOutcome;
use crate::oauth::error::{OAuthError, OAuthErrorCode};
use crate::oauth::id_token::{self, IdTokenRequest};
use crate::oauth::params::Params;
use crate::oauth::token_service::Issued;

/// The parameters of a device-code poll.
pub struct DeviceCodeParams {
    pub device_code: String,
}

impl DeviceCodeParams {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        Ok(Self {
            device_code: required(params, "device_code")?,
        })
    }
}

fn internal(context: &str, error: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %error, "{context}");
    OAuthError::server_error()
}

/// One poll; tokens (and for scope `openid` the ID token) once the user approved.
pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    params: DeviceCodeParams,
) -> Result<(Issued, Option<String>), OAuthError> {
    let outcome = services
        .devices
        .poll(&request.client.client_id, &params.device_code)
        .await
        .map_err(|e| {
            // Nothing is spent by a poll that failed: 503 when the database was only "not now".
            tracing::error!(error = %e, "polling a device authorization");
            OAuthError::from_database(&e)
        })?;
    let (account_id, auth_time, scope) = match outcome {
        PollOutcome::Pending => {
            return Err(OAuthError::new(
                OAuthErrorCode::AuthorizationPending,
                "the user has not answered yet",
            ));
        }
        PollOutcome::SlowDown => {
            return Err(OAuthError::new(
                OAuthErrorCode::SlowDown,
                "polling too fast: wait 5 seconds longer between polls",
            ));
        }
        PollOutcome::Expired => {
            return Err(OAuthError::new(
                OAuthErrorCode::ExpiredToken,
                "the device code has expired; start again",
            ));
        }
        PollOutcome::Denied => {
            return Err(OAuthError::new(
                OAuthErrorCode::DeviceAccessDenied,
                "the user denied the request",
            ));
        }
        PollOutcome::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the device code is invalid, expired or already used",
            ));
        }
        PollOutcome::Approved {
            account_id,
            auth_time,
            scope,
        } => (account_id, auth_time, scope),
    };
    let account = services
        .users
        .account(account_id)
        .await
        .map_err(|e| internal("loading the account", &e))?
        .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
    // The device code is spent: a failure from here on is no "try again".
    let issued = issue_for_account(services, request, GrantType::DeviceCode, &account, &scope)
        .await
        .map_err(after_spending)?;
    let scopes: Vec<&str> = issued.claims.scope.split(' ').collect();
    let id_token = if scopes.contains(&"openid") {
        let oa_subscribed = id_token::follower_claim(services.users.as_ref(), account.id, &scopes)
            .await
            .map_err(|e| internal("reading the follower status", &e))?;
        let token = id_token::mint(
            &services.tokens,
            IdTokenRequest {
                client_id: &request.client.client_id,
                account: &account,
                scope: &scopes,
                nonce: None,
                auth_time,
                // The device holds no browser session of ours.
                sid: None,
                ttl: issued.expires_in,
                alg: request.client.id_token_alg,
                oa_subscribed,
            },
        )
        .await
        .map_err(|e| internal("signing an ID token", &e))?;
        Some(token)
    } else {
        None
    };
    Ok((issued, id_token))
}
