//! oxide-auth's `Registrar` for a client that the token endpoint has already authenticated.
//!
//! Client authentication happens once, at our edge (form-url-decoded Basic, constant-time
//! comparison, RFC error shapes). oxide-auth's grant state machines then ask the registrar to
//! check, bind and negotiate; this registrar answers for exactly that client, so its secret is
//! not hashed twice and no other client can slip in.

use std::borrow::Cow;

use async_trait::async_trait;
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, ExactUrl, PreGrant, RegisteredUrl, RegistrarError,
};
use oxide_auth::primitives::scope::Scope;

use crate::oauth::client_registry::RegisteredClient;
use crate::oauth::token_issuer::NO_REDIRECT;

/// The registrar view of one authenticated client.
pub struct AuthenticatedClient<'a> {
    pub client: &'a RegisteredClient,
}

impl AuthenticatedClient<'_> {
    fn redirect(&self) -> Result<RegisteredUrl, RegistrarError> {
        let uri = self
            .client
            .redirect_uris
            .first()
            .map(String::as_str)
            .unwrap_or(NO_REDIRECT);
        let exact: ExactUrl = uri.parse().map_err(|_| RegistrarError::PrimitiveError)?;
        Ok(RegisteredUrl::Exact(exact))
    }
}

#[async_trait]
impl oxide_auth_async::primitives::Registrar for AuthenticatedClient<'_> {
    async fn bound_redirect<'b>(
        &self,
        bound: ClientUrl<'b>,
    ) -> Result<BoundClient<'b>, RegistrarError> {
        if bound.client_id != self.client.client_id {
            return Err(RegistrarError::Unspecified);
        }
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(self.redirect()?),
        })
    }

    async fn negotiate<'b>(
        &self,
        bound: BoundClient<'b>,
        scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        negotiate_scope(self.client, bound, scope)
    }

    async fn check(
        &self,
        client_id: &str,
        _passphrase: Option<&[u8]>,
    ) -> Result<(), RegistrarError> {
        if client_id == self.client.client_id {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

/// The scope a client gets: what it asked for if every scope is among its own, its own scopes
/// when it asked for none; anything else is refused (the flows answer `invalid_scope`).
pub(crate) fn negotiate_scope(
    client: &RegisteredClient,
    bound: BoundClient<'_>,
    scope: Option<Scope>,
) -> Result<PreGrant, RegistrarError> {
    let scope = match scope {
        Some(s) => s,
        None => client
            .scopes
            .join(" ")
            .parse()
            .map_err(|_| RegistrarError::Unspecified)?,
    };
    if !scope.iter().all(|s| client.allows_scope(s)) {
        return Err(RegistrarError::Unspecified);
    }
    Ok(PreGrant {
        client_id: bound.client_id.into_owned(),
        redirect_uri: bound.redirect_uri.into_owned(),
        scope,
    })
}
