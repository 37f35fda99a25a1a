//! Clients as administrators change them: the [`ClientRegistry`](crate::oauth::ClientRegistry)
//! with every change audited and every refusal naming its field.

use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::oauth::client_registry::ClientRegistryError;
use crate::oauth::{ClientChanges, NewClient, RegisteredClient};
use crate::secret::Secret;

use super::{Actor, Admin, AdminError};

/// A rotated secret, shown once, and when the one it replaced stops working.
#[derive(Debug)]
pub struct RotatedSecret {
    pub secret: Secret,
    /// `None`: the old secret stopped at once.
    pub previous_valid_until: Option<i64>,
}

impl From<ClientRegistryError> for AdminError {
    fn from(e: ClientRegistryError) -> Self {
        let reason = e.to_string();
        let field = match &e {
            ClientRegistryError::InvalidClientId => "client_id",
            ClientRegistryError::SecretTooShort | ClientRegistryError::PublicWithSecret => "secret",
            ClientRegistryError::UnknownGrantType(_)
            | ClientRegistryError::PublicClientCredentials => "grant_types",
            ClientRegistryError::CodeWithoutRedirectUri => "redirect_uris",
            ClientRegistryError::InvalidScope(_) => "scopes",
            ClientRegistryError::InvalidRedirectUri(_) => "redirect_uris",
            ClientRegistryError::InvalidDisplayName => "display_name",
            ClientRegistryError::InvalidLogoUrl(_) => "logo_url",
            ClientRegistryError::InvalidPostLogoutRedirectUri(_) => "post_logout_redirect_uris",
            ClientRegistryError::InvalidBackchannelLogoutUri(_) => "backchannel_logout_uri",
            ClientRegistryError::InvalidOrigin(_) => "allowed_origins",
            ClientRegistryError::InvalidWeChatAppId(_) => "wechat_appids",
            ClientRegistryError::InvalidOverlap { .. } => "overlap_secs",
            ClientRegistryError::InvalidTtl { option, .. } => match *option {
                "--access-token-ttl" => "access_token_ttl",
                "--refresh-token-ttl" => "refresh_token_ttl",
                _ => "refresh_family_ttl",
            },
            ClientRegistryError::AlreadyExists(_) => return AdminError::Conflict(reason),
            ClientRegistryError::NotFound(_) => return AdminError::NotFound(reason),
            ClientRegistryError::Db(_) => return AdminError::Internal(reason),
        };
        // Lifetimes are named by their CLI option in the registry's message; say the field.
        let reason = reason
            .strip_prefix("--access-token-ttl ")
            .or_else(|| reason.strip_prefix("--refresh-token-ttl "))
            .or_else(|| reason.strip_prefix("--refresh-family-ttl "))
            .map(str::to_owned)
            .unwrap_or(reason);
        AdminError::invalid(field, reason)
    }
}

fn client_changed(client_id: &str) -> AuditEvent {
    AuditEvent::new(AuditKind::ClientChanged, Outcome::Ok).client(client_id)
}

impl Admin {
    /// A client may be allowed registered resources (RFC 8707) only.
    async fn check_resources(&self, resources: &[String]) -> Result<(), AdminError> {
        match self.tokens.resources().first_unknown(resources).await? {
            Some(unknown) => Err(AdminError::invalid(
                "resources",
                format!("resource {unknown:?} is not registered (wxauth resource add)"),
            )),
            None => Ok(()),
        }
    }

    /// Every client, by id.
    pub async fn clients(&self) -> Result<Vec<RegisteredClient>, AdminError> {
        Ok(self.clients.list().await?)
    }

    /// One client.
    pub async fn client(&self, client_id: &str) -> Result<RegisteredClient, AdminError> {
        self.clients
            .get(client_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no client {client_id:?}")))
    }

    /// Register a client; the generated secret (if any) is returned once and never kept.
    pub async fn create_client(
        &self,
        actor: &Actor,
        new: NewClient,
    ) -> Result<(RegisteredClient, Option<Secret>), AdminError> {
        self.check_resources(&new.resources).await?;
        let (client, secret) = self.clients.create(new).await?;
        self.record(actor, client_changed(&client.client_id), "create")
            .await;
        Ok((client, secret))
    }

    /// Change a client's settings.
    pub async fn update_client(
        &self,
        actor: &Actor,
        client_id: &str,
        changes: ClientChanges,
    ) -> Result<RegisteredClient, AdminError> {
        if let Some(resources) = &changes.resources {
            self.check_resources(resources).await?;
        }
        let client = self.clients.update(client_id, changes).await?;
        self.record(actor, client_changed(client_id), "update")
            .await;
        Ok(client)
    }

    /// Give a confidential client a new secret; the old one keeps working for `overlap`
    /// seconds (default `WXAUTH_CLIENT_SECRET_OVERLAP_SECS`).
    pub async fn rotate_client_secret(
        &self,
        actor: &Actor,
        client_id: &str,
        overlap: Option<i64>,
    ) -> Result<RotatedSecret, AdminError> {
        let overlap = overlap.unwrap_or(self.client_secret_overlap);
        let (secret, previous_valid_until) = self
            .clients
            .rotate_secret_with_overlap(client_id, overlap)
            .await?;
        self.record(
            actor,
            client_changed(client_id).detail("overlap_secs", overlap),
            "rotate_secret",
        )
        .await;
        Ok(RotatedSecret {
            secret,
            previous_valid_until,
        })
    }

    /// Remove a client.
    pub async fn delete_client(&self, actor: &Actor, client_id: &str) -> Result<(), AdminError> {
        self.clients.delete(client_id).await?;
        self.record(actor, client_changed(client_id), "delete")
            .await;
        Ok(())
    }
}
