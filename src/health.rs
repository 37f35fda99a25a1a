//! What the operators' probes read, through a service that owns the database connection so that
//! no handler holds it: whether the database answers (`/readyz`, and the token endpoint telling a
//! database that went away from a failure of its own) and the Prometheus scrape, with the pool
//! gauges read at scrape time.

use sea_orm::DatabaseConnection;

/// The database's health, and the scrape that reports its pool.
#[derive(Clone)]
pub struct Health {
    db: DatabaseConnection,
}

impl Health {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Whether the database answers a trivial query now.
    pub async fn database_answers(&self) -> bool {
        crate::db::ping(&self.db).await
    }

    /// The scrape text ([`crate::metrics::render`]); `None` when another metrics recorder was
    /// installed first.
    pub fn scrape(&self) -> Option<String> {
        crate::metrics::render(&self.db)
    }
}
