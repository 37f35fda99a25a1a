//! Database connection and migrations, the same for SQLite, PostgreSQL and MySQL/MariaDB, and
//! the data migration that needs the master key ([`reseal`]).

pub mod reseal;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait, Select,
};

use migration::{Migrator, MigratorTrait};

use crate::config::{ConfigError, redacted_database_url};

/// Connect with the settings wxauth relies on: for SQLite, WAL journaling, a busy timeout and
/// foreign keys; for every backend, bounded connect/acquire timeouts so a dead database gives an
/// error instead of a hang.
pub async fn connect(url: &str) -> Result<DatabaseConnection, ConfigError> {
    let url = url.replacen("mariadb://", "mysql://", 1);
    let mut options = ConnectOptions::new(url.clone());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    if url.starts_with("sqlite:") {
        // SQLite has one writer; a small pool keeps writers from starving each other.
        options.max_connections(8).min_connections(1);
    } else {
        options.max_connections(32);
    }
    let db = Database::connect(options).await.map_err(|e| {
        ConfigError::new(
            "DATABASE_URL",
            format!(
                "cannot connect to {}: {}",
                redacted_database_url(&url),
                one_line(&e.to_string())
            ),
        )
    })?;
    Ok(db)
}

/// Apply every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// The row a primary or unique key selects. Unlike `Select::one`, this sends no `LIMIT ?`:
/// SQLite (3.47 and later) re-prepares a statement whose LIMIT is a bound parameter every time it
/// runs, which made parsing and planning a tenth of a token request's work. Use it only where
/// the filter matches at most one row.
pub async fn find_unique<E: EntityTrait>(
    select: Select<E>,
    db: &DatabaseConnection,
) -> Result<Option<E::Model>, DbErr> {
    Ok(select.all(db).await?.into_iter().next())
}

/// Whether the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
