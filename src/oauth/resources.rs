//! Resource indicators (RFC 8707): the protected APIs ("resources") access tokens may be issued
//! for, and the rules of the `resource` parameter.
//!
//! - A resource is registered by its identifier, an absolute URI without a fragment (§2), with a
//!   display name and the scopes it accepts. A client may ask tokens only for the resources it is
//!   allowed (`client create --resource`).
//! - A token request naming resources gets an access token whose `aud` is those identifiers, and
//!   whose `scope` keeps only the granted scopes at least one of them accepts; the rest stay in
//!   the grant (the refresh token) for tokens for other resources. Without `resource`, nothing
//!   changes: `aud` is the issuer.
//! - [`ResourceRegistry::resolve`] checks what a request named: a malformed, unknown or not
//!   allowed identifier is `invalid_target` (§2). The authorization endpoint binds what it
//!   resolved to the code; the token endpoint then allows only those (or a subset).
//!
//! [`crate::admin::resources`] is where operators change resources (audited); this module only
//! reads and writes the table and validates values.

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use url::Url;

use entity::resource;

use crate::oauth::client_registry::{RegisteredClient, valid_scope_token};
use crate::oauth::error::OAuthError;

/// The longest resource identifier (characters).
pub const MAX_IDENTIFIER_LEN: usize = 255;
/// The longest display name (characters).
pub const MAX_NAME_CHARS: usize = 64;
/// The most resources one request may name.
pub const MAX_PER_REQUEST: usize = 10;

/// A registered resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource indicator; what the access token's `aud` says.
    pub identifier: String,
    pub display_name: Option<String>,
    /// The scopes the resource accepts.
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Resource {
    pub fn accepts(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// What an operator gives to register a resource.
#[derive(Debug, Clone, Default)]
pub struct NewResource {
    pub identifier: String,
    pub display_name: Option<String>,
    pub scopes: Vec<String>,
}

/// A change to a resource: `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct ResourceChanges {
    /// `Some(None)` removes the name.
    pub display_name: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
}

/// Why a resource could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "resource identifier {0:?} must be an absolute URI without a fragment, at most {MAX_IDENTIFIER_LEN} characters"
    )]
    InvalidIdentifier(String),
    #[error("scope {0:?} is not a valid scope token")]
    InvalidScope(String),
    #[error("a resource accepts at least one scope")]
    NoScopes,
    #[error("display name must be 1-{MAX_NAME_CHARS} characters without control characters")]
    InvalidDisplayName,
    #[error("resource {0:?} already exists")]
    AlreadyExists(String),
    #[error("no resource {0:?}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Whether `text` may be a resource identifier (RFC 8707 §2: an absolute URI, no fragment).
pub fn valid_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_IDENTIFIER_LEN
        && !text.contains('#')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && Url::parse(text).is_ok_and(|url| url.fragment().is_none())
}

fn check_scopes(scopes: &[String]) -> Result<(), ResourceError> {
    if scopes.is_empty() {
        return Err(ResourceError::NoScopes);
    }
    match scopes.iter().find(|s| !valid_scope_token(s)) {
        Some(bad) => Err(ResourceError::InvalidScope(bad.clone())),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), ResourceError> {
    let chars = name.chars().count();
    if (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ResourceError::InvalidDisplayName)
    }
}

fn normalized(scopes: &[String]) -> Vec<String> {
    let mut scopes: Vec<String> = scopes
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

fn to_resource(m: resource::Model) -> Resource {
    Resource {
        identifier: m.identifier,
        display_name: m.display_name,
        scopes: m
            .scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// The granted `scope` narrowed to what at least one of `resources` accepts; unchanged when
/// there are none (the token is for the issuer).
pub fn narrow_scope(scope: &str, resources: &[Resource]) -> String {
    if resources.is_empty() {
        return scope.to_owned();
    }
    scope
        .split(' ')
        .filter(|s| !s.is_empty() && resources.iter().any(|r| r.accepts(s)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads and writes the `resource` table.
#[derive(Clone)]
pub struct ResourceRegistry {
    db: DatabaseConnection,
}

impl ResourceRegistry {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Every resource, by identifier.
    pub async fn list(&self) -> Result<Vec<Resource>, DbErr> {
        Ok(resource::Entity::find()
            .order_by_asc(resource::Column::Identifier)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_resource)
            .collect())
    }

    pub async fn get(&self, identifier: &str) -> Result<Option<Resource>, DbErr> {
        Ok(resource::Entity::find_by_id(identifier.to_owned())
            .one(&self.db)
            .await?
            .map(to_resource))
    }

    /// The registered resources among `identifiers` (unknown ones are left out).
    pub async fn get_many(&self, identifiers: &[String]) -> Result<Vec<Resource>, DbErr> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        Ok(resource::Entity::find()
            .filter(resource::Column::Identifier.is_in(identifiers.iter().cloned()))
            .order_by_asc(resource::Column::Identifier)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_resource)
            .collect())
    }

    /// The first of `identifiers` that is not registered.
    pub async fn first_unknown(&self, identifiers: &[String]) -> Result<Option<String>, DbErr> {
        let known = self.get_many(identifiers).await?;
        Ok(identifiers
            .iter()
            .find(|id| !known.iter().any(|r| &r.identifier == *id))
            .cloned())
    }

    pub async fn create(&self, new: NewResource, now: i64) -> Result<Resource, ResourceError> {
        if !valid_identifier(&new.identifier) {
            return Err(ResourceError::InvalidIdentifier(new.identifier));
        }
        let scopes = normalized(&new.scopes);
        check_scopes(&scopes)?;
        if let Some(name) = &new.display_name {
            check_name(name)?;
        }
        if self.get(&new.identifier).await?.is_some() {
            return Err(ResourceError::AlreadyExists(new.identifier));
        }
        let model = resource::ActiveModel {
            identifier: Set(new.identifier.clone()),
            display_name: Set(new.display_name),
            scopes: Set(scopes.join(" ")),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                ResourceError::AlreadyExists(new.identifier.clone())
            }
            _ => ResourceError::Db(e),
        })?;
        Ok(to_resource(model))
    }

    pub async fn update(
        &self,
        identifier: &str,
        changes: ResourceChanges,
        now: i64,
    ) -> Result<Resource, ResourceError> {
        let model = resource::Entity::find_by_id(identifier.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| ResourceError::NotFound(identifier.to_owned()))?;
        let mut active: resource::ActiveModel = model.into();
        if let Some(scopes) = changes.scopes {
            let scopes = normalized(&scopes);
            check_scopes(&scopes)?;
            active.scopes = Set(scopes.join(" "));
        }
        if let Some(name) = changes.display_name {
            if let Some(name) = &name {
                check_name(name)?;
            }
            active.display_name = Set(name);
        }
        active.updated_at = Set(now);
        Ok(to_resource(active.update(&self.db).await?))
    }

    pub async fn delete(&self, identifier: &str) -> Result<(), ResourceError> {
        let deleted = resource::Entity::delete_by_id(identifier.to_owned())
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(ResourceError::NotFound(identifier.to_owned()));
        }
        Ok(())
    }

    /// Check the `resource` values of a request by `client`: each must be a well-formed
    /// identifier of a registered resource the client is allowed (`invalid_target` otherwise,
    /// one answer for unknown and not allowed). Returns them in the order asked, without
    /// repeats.
    pub async fn resolve(
        &self,
        client: &RegisteredClient,
        requested: &[String],
    ) -> Result<Vec<Resource>, OAuthError> {
        if requested.len() > MAX_PER_REQUEST {
            return Err(OAuthError::invalid_target(format!(
                "at most {MAX_PER_REQUEST} resources per request"
            )));
        }
        let mut wanted: Vec<String> = Vec::new();
        for id in requested {
            if !valid_identifier(id) {
                return Err(OAuthError::invalid_target(
                    "a resource must be an absolute URI without a fragment",
                ));
            }
            if !wanted.contains(id) {
                wanted.push(id.clone());
            }
        }
        if let Some(refused) = wanted.iter().find(|id| !client.resources.contains(id)) {
            return Err(unknown_or_not_allowed(refused));
        }
        let found = self.get_many(&wanted).await.map_err(|e| {
            tracing::error!(error = %e, "loading resources");
            OAuthError::server_error()
        })?;
        wanted
            .iter()
            .map(|id| {
                found
                    .iter()
                    .find(|r| &r.identifier == id)
                    .cloned()
                    .ok_or_else(|| unknown_or_not_allowed(id))
            })
            .collect()
    }
}

fn unknown_or_not_allowed(identifier: &str) -> OAuthError {
    OAuthError::invalid_target(format!(
        "resource {identifier:?} is unknown or not allowed for this client"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_absolute_uris_without_fragments() {
        assert!(valid_identifier("https://api.example.com"));
        assert!(valid_identifier("https://api.example.com/v1?x=1"));
        assert!(valid_identifier("urn:example:orders"));
        assert!(!valid_identifier("/relative"));
        assert!(!valid_identifier("api.example.com"));
        assert!(!valid_identifier("https://api.example.com/#frag"));
        assert!(!valid_identifier("https://api.example.com/#"));
        assert!(!valid_identifier(&format!("https://{}", "a".repeat(260))));
    }

    fn api(scopes: &[&str]) -> Resource {
        Resource {
            identifier: "https://api".into(),
            display_name: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn scopes_are_narrowed_to_what_the_resources_accept() {
        assert_eq!(narrow_scope("openid orders", &[]), "openid orders");
        assert_eq!(narrow_scope("openid orders", &[api(&["orders"])]), "orders");
        assert_eq!(narrow_scope("openid", &[api(&["orders"])]), "");
    }
}
