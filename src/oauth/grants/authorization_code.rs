//! `grant_type=authorization_code` (RFC 6749 §4.1.3) through oxide-auth's access-token state
//! machine, with PKCE verification (RFC 7636 §4.6) and, for scope `openid`, an ID token.
//!
//! Closing oxide-auth's gaps here: an unknown, expired or spent code is `invalid_grant` (not
//! `invalid_request`); a spent code presented again revokes the tokens issued from it (RFC 6749
//! §4.1.2), which were chosen before the code was spent and recorded by the statement that spent
//! it, so that a replay at the same instant finds them; a `code_verifier` for a code that had no
//! challenge is refused (RFC 9700 §4.8.2). Replays are audited (`code_replay`).

use std::borrow::Cow;

use oxide_auth::code_grant::accesstoken::{Authorization, Request};
use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::primitives::grant::Extensions;
use oxide_auth_async::code_grant::access_token::{Endpoint, Extension, access_token};
use oxide_auth_async::primitives::{Authorizer, Issuer, Registrar};

use super::{GrantRequest, from_access_token_error, optional, required};
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::oauth::GrantType;
use crate::oauth::OAuthError;
use crate::oauth::OAuthServices;
use crate::oauth::authenticated_client::AuthenticatedClient;
use crate::oauth::codes::{
    AUTH_TIME_EXTENSION, CodeOutcome, CodeStore, NONCE_EXTENSION, SID_EXTENSION, public_extension,
};
use crate::oauth::id_token;
use crate::oauth::params::Params;
use crate::oauth::token_issuer::TokenIssuer;
use crate::oauth::token_service::Issued;

/// The parameters of an `authorization_code` request.
pub struct AuthorizationCodeParams {
    pub code: String,
    pub redirect_uri: String,
    /// PKCE (RFC 7636 §4.5).
    pub code_verifier: Option<String>,
}

impl AuthorizationCodeParams {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        Ok(Self {
            code: required(params, "code")?,
            redirect_uri: required(params, "redirect_uri")?,
            code_verifier: optional(params, "code_verifier"),
        })
    }
}

struct CodeRequest<'a> {
    grant: &'a GrantRequest<'a>,
    params: &'a AuthorizationCodeParams,
}

impl Request for CodeRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.params.code.as_str()))
    }
    fn authorization(&self) -> Authorization<'_> {
        let creds = self.grant.credentials;
        match creds.secret.as_deref() {
            Some(secret) => Authorization::UsernamePassword(
                Cow::Borrowed(creds.client_id.as_str()),
                Cow::Borrowed(secret.as_bytes()),
            ),
            // A public client names itself; the code must have been issued to it.
            None => Authorization::Username(Cow::Borrowed(creds.client_id.as_str())),
        }
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.params.redirect_uri.as_str()))
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed("authorization_code"))
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        match key {
            "code_verifier" => self.params.code_verifier.as_deref().map(Cow::Borrowed),
            _ => None,
        }
    }
}

/// Verifies PKCE and carries the OIDC data of the code to the response.
#[derive(Default)]
struct CodeExtension {
    pkce_failed: bool,
    nonce: Option<String>,
    auth_time: Option<i64>,
    sid: Option<String>,
}

#[async_trait::async_trait]
impl Extension for CodeExtension {
    async fn extend(
        &mut self,
        request: &(dyn Request + Sync),
        mut data: Extensions,
    ) -> Result<Extensions, ()> {
        let pkce = Pkce::optional();
        let challenge = data.remove(&pkce);
        let verifier = request.extension("code_verifier");
        let verified = match (&challenge, &verifier) {
            // A verifier for a code without a challenge: a downgrade attempt.
            (None, Some(_)) => Err(()),
            _ => pkce.verify(challenge, verifier),
        };
        if verified.is_err() {
            self.pkce_failed = true;
            return Err(());
        }
        self.nonce = public_extension(&data, NONCE_EXTENSION).map(str::to_owned);
        self.auth_time = public_extension(&data, AUTH_TIME_EXTENSION).and_then(|t| t.parse().ok());
        self.sid = public_extension(&data, SID_EXTENSION).map(str::to_owned);
        Ok(data)
    }
}

struct CodeEndpoint<'a> {
    registrar: AuthenticatedClient<'a>,
    codes: CodeStore,
    issuer: TokenIssuer<'a>,
    extension: CodeExtension,
}

impl Endpoint for CodeEndpoint<'_> {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registrar
    }
    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.codes
    }
    fn issuer(&mut self) -> &mut (dyn Issuer + Send) {
        &mut self.issuer
    }
    fn extension(&mut self) -> &mut (dyn Extension + Send) {
        &mut self.extension
    }
}

fn internal(context: &str, error: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %error, "{context}");
    OAuthError::server_error()
}

/// Exchange a code; returns what was issued and, for scope `openid`, the ID token.
pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    params: AuthorizationCodeParams,
) -> Result<(Issued, Option<String>), OAuthError> {
    let tokens = &services.tokens;
    let with_refresh = request.client.allows_grant(GrantType::RefreshToken);
    // Chosen before the code is spent, and recorded by the statement that spends it.
    let plan = tokens
        .plan(request.client, with_refresh)
        .map_err(|e| internal("planning the tokens of a code", &e))?;
    let mut codes = services.authorization.code_store();
    codes.plan = Some(plan.clone());
    let mut endpoint = CodeEndpoint {
        registrar: AuthenticatedClient {
            client: request.client,
        },
        codes,
        issuer: tokens
            .for_client(request.client, with_refresh)
            .with_plan(plan.family_stored())
            .with_resources(request.resources),
        extension: CodeExtension::default(),
    };
    let result = access_token(
        &mut endpoint,
        &CodeRequest {
            grant: request,
            params: &params,
        },
    )
    .await;
    if let Err(mut error) = result {
        if let CodeOutcome::Replayed {
            family_id,
            jti,
            owner_id,
        } = &endpoint.codes.outcome
        {
            tracing::warn!(client_id = %request.client.client_id, "authorization code replayed; revoking its tokens");
            if let Some((jti, exp)) = jti {
                tokens
                    .deny_access_token(jti, *exp)
                    .await
                    .map_err(|e| internal("denying a jti", &e))?;
            }
            if let Some(family) = family_id {
                tokens
                    .revoke_family(family)
                    .await
                    .map_err(|e| internal("revoking a family", &e))?;
            }
            let mut event = AuditEvent::new(AuditKind::CodeReplay, Outcome::Refused)
                .client(request.client.client_id.as_str());
            if let Ok(account) = owner_id.parse() {
                event = event.account(account);
            }
            if let Some(family) = family_id {
                event = event.detail("family", family.as_str());
            }
            if let Some((jti, _)) = jti {
                event = event.detail("jti", jti.as_str());
            }
            services.audit.record(event).await;
        }
        return Err(
            match (&endpoint.codes.outcome, endpoint.extension.pkce_failed) {
                (CodeOutcome::Invalid | CodeOutcome::Replayed { .. }, _) => {
                    OAuthError::invalid_grant("the code is invalid, expired or already used")
                }
                (CodeOutcome::Failed { worth_retrying }, _) => OAuthError::failed(*worth_retrying),
                (_, true) => {
                    OAuthError::invalid_grant("code_verifier does not match the code_challenge")
                }
                // RFC 8707: a resource the code was not bound to (the code is spent).
                _ if endpoint.issuer.target_refused() => {
                    OAuthError::invalid_target("the resource was not bound to this authorization")
                }
                // A replay revoked the family while this exchange was issuing.
                _ if endpoint.issuer.family_revoked_meanwhile() => {
                    OAuthError::invalid_grant("the code is invalid, expired or already used")
                }
                // Anything else; an issuer that failed after the code was spent, too: the same
                // request again would be a replay, so it is not worth retrying (no 503).
                _ => from_access_token_error(error.description()),
            },
        );
    }
    let issued = endpoint
        .issuer
        .take_issued()
        .ok_or_else(OAuthError::server_error)?;

    // The grant's scope decides the ID token: an access token for a resource may carry less.
    let granted = endpoint
        .issuer
        .granted_scope()
        .unwrap_or(&issued.claims.scope)
        .to_owned();
    let id_token = id_token::for_issued(
        tokens,
        services.users.as_ref(),
        request.client,
        &issued,
        &granted,
        id_token::SignInClaims {
            nonce: endpoint.extension.nonce.take(),
            auth_time: endpoint.extension.auth_time,
            sid: endpoint.extension.sid.take(),
        },
    )
    .await
    .map_err(|e| internal("signing an ID token", &e))?;
    Ok((issued, id_token))
}
