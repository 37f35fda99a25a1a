//! `grant_type=client_credentials` (RFC 6749 §4.4) through oxide-auth's state machine. No refresh
//! token is issued (§4.4.3).

use std::borrow::Cow;

use oxide_auth::code_grant::client_credentials::Request;
use oxide_auth::primitives::grant::{Extensions, Grant};
use oxide_auth_async::code_grant::client_credentials::{Endpoint, client_credentials};
use oxide_auth_async::primitives::{Authorizer, Issuer, Registrar};

use super::{GrantRequest, effective_scope, from_access_token_error, optional};
use crate::oauth::authenticated_client::AuthenticatedClient;
use crate::oauth::params::Params;
use crate::oauth::resources::Resource;
use crate::oauth::token_issuer::{TokenIssuer, mark_resources, mark_subject};
use crate::oauth::token_service::{Issued, SubjectKind};
use crate::oauth::{OAuthError, OAuthServices};

struct CcRequest<'a> {
    grant: &'a GrantRequest<'a>,
    scope: String,
}

impl Request for CcRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        let secret = self.grant.credentials.secret.as_deref()?;
        Some((
            Cow::Borrowed(self.grant.credentials.client_id.as_str()),
            Cow::Borrowed(secret.as_bytes()),
        ))
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.scope.as_str()))
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed("client_credentials"))
    }
    fn extension(&self, _key: &str) -> Option<Cow<'_, str>> {
        None
    }
}

/// Authorization codes play no part in this grant; the endpoint trait still asks for a store.
struct NoCodes;

#[async_trait::async_trait]
impl Authorizer for NoCodes {
    async fn authorize(&mut self, _: Grant) -> Result<String, ()> {
        Err(())
    }
    async fn extract(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }
}

/// Marks every grant of this flow as being about the client itself, for the resources the
/// request named.
struct ClientSubject<'a> {
    resources: &'a [Resource],
}

#[async_trait::async_trait]
impl oxide_auth_async::code_grant::client_credentials::Extension for ClientSubject<'_> {
    async fn extend(&mut self, _: &(dyn Request + Sync)) -> Result<Extensions, ()> {
        let mut extensions = Extensions::new();
        mark_subject(&mut extensions, SubjectKind::Client);
        mark_resources(&mut extensions, self.resources);
        Ok(extensions)
    }
}

struct CcEndpoint<'a> {
    registrar: AuthenticatedClient<'a>,
    codes: NoCodes,
    issuer: TokenIssuer<'a>,
    extension: ClientSubject<'a>,
}

impl Endpoint for CcEndpoint<'_> {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registrar
    }
    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.codes
    }
    fn issuer(&mut self) -> &mut (dyn Issuer + Send) {
        &mut self.issuer
    }
    fn extension(
        &mut self,
    ) -> &mut (dyn oxide_auth_async::code_grant::client_credentials::Extension + Send) {
        &mut self.extension
    }
}

/// The parameters of a `client_credentials` request.
pub struct ClientCredentialsParams {
    pub scope: Option<String>,
}

impl ClientCredentialsParams {
    pub fn parse(params: &Params) -> Self {
        Self {
            scope: optional(params, "scope"),
        }
    }
}

pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    params: ClientCredentialsParams,
) -> Result<Issued, OAuthError> {
    if request.client.public {
        return Err(OAuthError::unauthorized_client(
            "a public client cannot use client_credentials",
        ));
    }
    let scope = effective_scope(request.client, params.scope.as_deref())?;
    let mut endpoint = CcEndpoint {
        registrar: AuthenticatedClient {
            client: request.client,
        },
        codes: NoCodes,
        issuer: services
            .tokens
            .for_client(request.client, false)
            .with_resources(request.resources),
        extension: ClientSubject {
            resources: request.resources,
        },
    };
    let cc_request = CcRequest {
        grant: request,
        scope,
    };
    let pending = client_credentials(&mut endpoint, &cc_request)
        .await
        .map_err(|mut e| from_access_token_error(e.description()))?;
    let issued = pending
        .issue(&mut endpoint, request.client.client_id.clone(), false)
        .await;
    if let Err(mut e) = issued {
        return Err(match e.description() {
            Some(description) => from_access_token_error(Some(description)),
            // Our issuer failed: 503 when its database was only "not now".
            None => endpoint.issuer.failure().into(),
        });
    }
    endpoint
        .issuer
        .take_issued()
        .ok_or_else(OAuthError::server_error)
}
