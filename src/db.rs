//! Database connection and migrations, the same for SQLite, PostgreSQL and MySQL/MariaDB, the
//! data migration that needs the master key ([`reseal`]), and which Mini Program sessions are
//! live ([`mini_sessions`]).

pub mod mini_sessions;
pub mod reseal;
pub mod revocation;
mod sqlite_busy;
pub mod sqlite_checkpoint;
mod sqlite_memory;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait, Select,
    UpdateMany,
};

use migration::{Migrator, MigratorTrait};

use crate::config::{ConfigError, redacted_database_url};

/// How long a statement waits for a pooled connection (and a new connection to open). Under a
/// burst, requests queue here; the bound sits below the server's whole-request timeout (30 s by
/// default), so a request that cannot get a connection still gets its own 503 answer, while a
/// busy but healthy database is waited for rather than turned into errors after a few seconds.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long startup waits for the database before it reports `DATABASE_URL`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a pooled connection may sit idle before it is pinged when handed out again. A hot
/// connection is handed out without a ping: pinging on every checkout doubled each statement's
/// round trips and the time a burst of requests holds the pool.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// Connect with the settings wxauth relies on: for SQLite, WAL journaling, foreign keys and
/// writers that wait for each other's lock in short steps ([`sqlite_busy`]); for every backend, a
/// bounded wait for a connection ([`ACQUIRE_TIMEOUT`]) so a dead database gives an error instead
/// of a hang, and stale connections pinged before use.
pub async fn connect(url: &str) -> Result<DatabaseConnection, ConfigError> {
    let url = plain_on_loopback(&url.replacen("mariadb://", "mysql://", 1));
    let mut options = ConnectOptions::new(url.clone());
    options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                // Until `sqlite_busy::install` replaces it with short steps, just after connecting.
                .busy_timeout(sqlite_busy::GIVE_UP_AFTER)
                .foreign_keys(true)
                // Checkpoints are the task's ([`sqlite_checkpoint`]); a commit checkpoints only
                // past this many pages, should the task fall behind.
                .pragma(
                    "wal_autocheckpoint",
                    sqlite_checkpoint::BACKSTOP_PAGES.to_string(),
                )
        });
    if url.starts_with("sqlite:") {
        sqlite_memory::configure();
        // SQLite has one writer; a small pool keeps writers from starving each other.
        options.max_connections(8).min_connections(1);
        // A writer that finds the write lock taken waits in microseconds, not milliseconds.
        options.map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|connection, _| Box::pin(sqlite_busy::install(connection)))
        });
    } else {
        options.max_connections(32);
    }
    let cannot_connect = |e: DbErr| {
        ConfigError::new(
            "DATABASE_URL",
            format!(
                "cannot connect to {}: {}{}",
                redacted_database_url(&url),
                one_line(&e.to_string()),
                sqlite_hint(&url)
            ),
        )
    };
    // A wrong or dead database is reported within seconds at startup, not after the long wait
    // for a connection that serving allows: one probe connection with a short bound first.
    let mut probe = options.clone();
    probe
        .acquire_timeout(STARTUP_TIMEOUT)
        .max_connections(1)
        .min_connections(0);
    Database::connect(probe)
        .await
        .map_err(cannot_connect)?
        .close()
        .await
        .map_err(cannot_connect)?;
    Database::connect(options).await.map_err(cannot_connect)
}

/// A PostgreSQL URL for a server on this machine (`localhost`, `127.0.0.1`, `::1`) that names no
/// `sslmode` gets `sslmode=disable`: sqlx's default (`prefer`) negotiates TLS whenever the server
/// offers it (Debian's PostgreSQL does), and encrypting traffic that never leaves the machine cost
/// about 6 % of the flow grant's CPU (perf, design §10). A URL that says `sslmode=…` keeps it; any
/// other host keeps sqlx's default.
fn plain_on_loopback(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let postgres = matches!(parsed.scheme(), "postgres" | "postgresql");
    let loopback = match parsed.host() {
        // Hosts of URLs with schemes the URL standard does not know come back unparsed.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let says_sslmode = parsed
        .query_pairs()
        .any(|(key, _)| key.eq_ignore_ascii_case("sslmode"));
    if !postgres || !loopback || says_sslmode {
        return url.to_owned();
    }
    let separator = if parsed.query().is_some() { '&' } else { '?' };
    format!("{url}{separator}sslmode=disable")
}

/// Why a SQLite file could not be opened, in words an operator can act on: SQLite's own
/// "(code: 14) unable to open database file" says neither which file nor what to change.
fn sqlite_hint(url: &str) -> String {
    let Some(path) = crate::config::sqlite_file(url) else {
        return String::new();
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return format!(
            " (the directory {} does not exist: create it first)",
            dir.display()
        );
    }
    let creates = url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|pair| pair == "mode=rwc"));
    if !path.exists() && !creates {
        return format!(
            " (there is no file {}: add ?mode=rwc to DATABASE_URL to create it, e.g. sqlite://{}?mode=rwc)",
            path.display(),
            path.display()
        );
    }
    String::new()
}

/// Whether wxauth's schema was ever created in `db` (its migrations table exists). Checked by
/// commands that must not create one (see [`crate::state::AppState::open_existing`]).
pub async fn is_installed(db: &DatabaseConnection) -> bool {
    migration::SchemaManager::new(db)
        .has_table("seaql_migrations")
        .await
        .unwrap_or(false)
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

/// Spend a single-use row (a ticket, a state, a code, a refresh token) in one conditional
/// statement: `update` sets what spending records and filters on what makes the row live
/// (unspent, unexpired, …), so of two requests arriving at the same instant exactly one affects
/// the row. Whether this call was that one.
pub async fn spend<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    update: UpdateMany<E>,
) -> Result<bool, DbErr> {
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// [`spend`], answering the spent row; `None` when the row was not live. On SQLite and
/// PostgreSQL the update returns it (`UPDATE … RETURNING`, one statement); MariaDB has none, so
/// there the row is read back through `find` on the same connection (or transaction), keyed by
/// what the update matched.
pub async fn spend_once<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    update: UpdateMany<E>,
    find: Select<E>,
) -> Result<Option<E::Model>, DbErr> {
    if conn.support_returning() {
        let mut spent = update.exec_with_returning(conn).await?;
        return Ok(match spent.len() {
            1 => spent.pop(),
            _ => None,
        });
    }
    if !spend(conn, update).await? {
        return Ok(None);
    }
    Ok(find.all(conn).await?.into_iter().next())
}

/// Whether the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::plain_on_loopback;

    #[test]
    fn postgres_on_this_machine_skips_tls_unless_the_url_says_otherwise() {
        for (url, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
            ),
            (
                "postgresql://u:p@localhost/db?application_name=x",
                "postgresql://u:p@localhost/db?application_name=x&sslmode=disable",
            ),
            (
                "postgres://u@[::1]:5432/db",
                "postgres://u@[::1]:5432/db?sslmode=disable",
            ),
            // What the operator chose, and other hosts, are kept.
            (
                "postgres://u@127.0.0.1/db?sslmode=require",
                "postgres://u@127.0.0.1/db?sslmode=require",
            ),
            ("postgres://u@db.internal/db", "postgres://u@db.internal/db"),
            ("postgres://u@10.0.0.5/db", "postgres://u@10.0.0.5/db"),
            (
                "mysql://root@127.0.0.1:3306/test",
                "mysql://root@127.0.0.1:3306/test",
            ),
            ("sqlite://wxauth.db?mode=rwc", "sqlite://wxauth.db?mode=rwc"),
        ] {
            assert_eq!(plain_on_loopback(url), expected, "{url}");
        }
    }
}
