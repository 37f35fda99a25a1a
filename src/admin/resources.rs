//! Resources (RFC 8707) as administrators change them: the
//! [`ResourceRegistry`](crate::oauth::resources::ResourceRegistry) with every change audited
//! (`resource_changed`, naming the actor) and every refusal naming its field. The admin API
//! (`/admin/api/v1/resources`) and `wxauth resource` both call these.

use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::oauth::resources::{
    NewResource, Resource, ResourceChanges, ResourceError, ResourceRegistry,
};

use super::{Actor, Admin, AdminError};

impl From<ResourceError> for AdminError {
    fn from(e: ResourceError) -> Self {
        let reason = e.to_string();
        let field = match &e {
            ResourceError::InvalidIdentifier(_) => "identifier",
            ResourceError::InvalidScope(_) | ResourceError::NoScopes => "scopes",
            ResourceError::InvalidDisplayName => "display_name",
            ResourceError::AlreadyExists(_) => return AdminError::Conflict(reason),
            ResourceError::NotFound(_) => return AdminError::NotFound(reason),
            ResourceError::Db(_) => return AdminError::Internal(reason),
        };
        AdminError::invalid(field, reason)
    }
}

fn resource_changed(identifier: &str) -> AuditEvent {
    AuditEvent::new(AuditKind::ResourceChanged, Outcome::Ok).detail("resource", identifier)
}

impl Admin {
    fn resource_registry(&self) -> ResourceRegistry {
        self.tokens.resources()
    }

    /// Every resource, by identifier.
    pub async fn resources(&self) -> Result<Vec<Resource>, AdminError> {
        Ok(self.resource_registry().list().await?)
    }

    /// One resource.
    pub async fn resource(&self, identifier: &str) -> Result<Resource, AdminError> {
        self.resource_registry()
            .get(identifier)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no resource {identifier:?}")))
    }

    /// Register a resource.
    pub async fn create_resource(
        &self,
        actor: &Actor,
        new: NewResource,
    ) -> Result<Resource, AdminError> {
        let resource = self
            .resource_registry()
            .create(new, self.clock.now())
            .await?;
        self.record(actor, resource_changed(&resource.identifier), "create")
            .await;
        Ok(resource)
    }

    /// Change a resource's name or scopes.
    pub async fn update_resource(
        &self,
        actor: &Actor,
        identifier: &str,
        changes: ResourceChanges,
    ) -> Result<Resource, AdminError> {
        let resource = self
            .resource_registry()
            .update(identifier, changes, self.clock.now())
            .await?;
        self.record(actor, resource_changed(identifier), "update")
            .await;
        Ok(resource)
    }

    /// Remove a resource. Refused while a client is still allowed it (update those clients
    /// first), so that no client's list names a resource that no longer exists.
    pub async fn delete_resource(&self, actor: &Actor, identifier: &str) -> Result<(), AdminError> {
        let users: Vec<String> = self
            .clients
            .list()
            .await?
            .into_iter()
            .filter(|c| c.resources.iter().any(|r| r == identifier))
            .map(|c| c.client_id)
            .collect();
        if !users.is_empty() {
            return Err(AdminError::Conflict(format!(
                "resource {identifier:?} is still allowed to clients {}; remove it from them first",
                users.join(", ")
            )));
        }
        self.resource_registry().delete(identifier).await?;
        self.record(actor, resource_changed(identifier), "delete")
            .await;
        Ok(())
    }
}
