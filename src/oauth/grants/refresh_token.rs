//! `grant_type=refresh_token` (RFC 6749 §6) through oxide-auth's refresh state machine. Every use
//! rotates the token within its family's absolute lifetime; a spent token presented again revokes
//! its whole family and what it produced (RFC 9700 §4.14), and is audited (`refresh_reuse`).

use std::borrow::Cow;

use oxide_auth::code_grant::refresh::{Error as RefreshError, Request};
use oxide_auth_async::code_grant::refresh::{Endpoint, refresh};
use oxide_auth_async::primitives::{Issuer, Registrar};

use super::{GrantRequest, from_access_token_error, optional, required};
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::oauth::authenticated_client::AuthenticatedClient;
use crate::oauth::id_token;
use crate::oauth::params::Params;
use crate::oauth::token_issuer::TokenIssuer;
use crate::oauth::token_service::{Issued, SubjectKind};
use crate::oauth::{OAuthError, OAuthServices};

/// The parameters of a `refresh_token` request.
pub struct RefreshTokenParams {
    pub refresh_token: String,
    pub scope: Option<String>,
}

impl RefreshTokenParams {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        Ok(Self {
            refresh_token: required(params, "refresh_token")?,
            scope: optional(params, "scope"),
        })
    }
}

struct RefreshRequest<'a> {
    grant: &'a GrantRequest<'a>,
    params: &'a RefreshTokenParams,
}

impl Request for RefreshRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn refresh_token(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.params.refresh_token.as_str()))
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.params.scope.as_deref().map(Cow::Borrowed)
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed("refresh_token"))
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        let creds = self.grant.credentials;
        // A public client authenticates by name only; oxide-auth then checks the token's client.
        let secret = creds.secret.as_deref()?;
        Some((
            Cow::Borrowed(creds.client_id.as_str()),
            Cow::Borrowed(secret.as_bytes()),
        ))
    }
    fn extension(&self, _key: &str) -> Option<Cow<'_, str>> {
        None
    }
}

struct RefreshEndpoint<'a> {
    registrar: AuthenticatedClient<'a>,
    issuer: TokenIssuer<'a>,
}

impl Endpoint for RefreshEndpoint<'_> {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registrar
    }
    fn issuer(&mut self) -> &mut (dyn Issuer + Send) {
        &mut self.issuer
    }
}

/// Exchange a refresh token; returns what was issued and, when the scope includes `openid`, a
/// fresh ID token for the same person (`auth_time` kept from the sign-in, no `nonce`: OIDC Core
/// §12.2).
pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    params: RefreshTokenParams,
) -> Result<(Issued, Option<String>), OAuthError> {
    let tokens = &services.tokens;
    let mut endpoint = RefreshEndpoint {
        registrar: AuthenticatedClient {
            client: request.client,
        },
        issuer: tokens
            .for_client(request.client, true)
            .with_resources(request.resources),
    };
    let result = refresh(
        &mut endpoint,
        &RefreshRequest {
            grant: request,
            params: &params,
        },
    )
    .await;
    if endpoint.issuer.reuse_detected() {
        let mut event = AuditEvent::new(AuditKind::RefreshReuse, Outcome::Refused)
            .client(request.client.client_id.as_str());
        if let Some(stored) = endpoint.issuer.presented() {
            event = event.detail("family", stored.token.family_id.as_str());
            if stored.subject() == SubjectKind::User
                && let Ok(account) = stored.token.owner_id.parse()
            {
                event = event.account(account);
            }
        }
        services.audit.record(event).await;
        return Err(OAuthError::invalid_grant(
            "the refresh token was already used; its token family is revoked",
        ));
    }
    match result {
        Ok(_) => {
            let issued = endpoint
                .issuer
                .take_issued()
                .ok_or_else(OAuthError::server_error)?;
            let person = endpoint
                .issuer
                .presented()
                .filter(|p| p.subject() == SubjectKind::User);
            let granted = endpoint
                .issuer
                .granted_scope()
                .unwrap_or(&issued.claims.scope)
                .to_owned();
            let id_token = match person {
                Some(presented) => id_token::for_issued(
                    tokens,
                    services.users.as_ref(),
                    request.client,
                    &issued,
                    &granted,
                    id_token::SignInClaims {
                        auth_time: presented.auth_time(),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "signing an ID token");
                    OAuthError::server_error()
                })?,
                None => None,
            };
            Ok((issued, id_token))
        }
        Err(RefreshError::Invalid(mut d)) => Err(from_access_token_error(Some(d.description()))),
        Err(RefreshError::Unauthorized(mut d, _)) => {
            Err(from_access_token_error(Some(d.description())))
        }
        // RFC 8707 §2.2: only resources bound to the grant; the refresh token stays usable.
        Err(RefreshError::Primitive) if endpoint.issuer.target_refused() => Err(
            OAuthError::invalid_target("the resource is not within the original grant"),
        ),
        // Our issuer refused the exchange (the token or its family is no longer live).
        Err(RefreshError::Primitive) if endpoint.issuer.family_revoked_meanwhile() => Err(
            OAuthError::invalid_grant("the refresh token is invalid, expired or revoked"),
        ),
        // A failed statement: 503 when the database was busy, locked, out of reach or chose it
        // as a deadlock's victim (the rotation rolled back; the token stays usable).
        Err(RefreshError::Primitive) => Err(endpoint.issuer.failure().into()),
    }
}
