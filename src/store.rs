//! [`Store`]: what every storage-backed service is built from — the database connection, the
//! vault that seals and fingerprints secrets, and the clock that says when things expire.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::clock::SharedClock;
use crate::vault::Vault;

/// The database, the vault and the clock, shared (cheap to clone).
#[derive(Clone)]
pub struct Store {
    pub db: DatabaseConnection,
    pub vault: Arc<Vault>,
    pub clock: SharedClock,
}

impl Store {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self { db, vault, clock }
    }
}
