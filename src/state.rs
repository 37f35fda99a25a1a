//! The application state shared by every handler: configuration, database, vault, clock and the
//! core services built on them. Cheap to clone (everything inside is shared).

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::app_registry::AppRegistry;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::oauth::ClientRegistry;
use crate::vault::Vault;

/// Why the server could not start. Its `Display` is the one line printed before exiting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Other(String),
}

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub vault: Arc<Vault>,
    pub clock: SharedClock,
    pub clients: ClientRegistry,
    pub apps: AppRegistry,
}

impl AppState {
    /// Connect to the database, apply migrations and assemble the services.
    pub async fn build(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        let db = crate::db::connect(config.database_url.expose()).await?;
        let master_key = config.load_master_key()?;
        crate::db::migrate(&db)
            .await
            .map_err(|e| StartError::Migration(e.to_string()))?;
        let vault = Arc::new(Vault::new(&master_key));
        Ok(Self {
            clients: ClientRegistry::new(db.clone(), vault.clone(), clock.clone()),
            apps: AppRegistry::new(db.clone(), vault.clone(), clock.clone()),
            config: Arc::new(config),
            db,
            vault,
            clock,
        })
    }
}
