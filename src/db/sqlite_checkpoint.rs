//! SQLite's WAL checkpoints, off the request path. By default SQLite copies the WAL back into the
//! database file inside whichever commit takes the WAL past 1,000 pages: that request pays for
//! the copy and its `fsync`, and the copy comes so often that the pages written again and again
//! (the indexes' hot leaves) are copied again each time. Profiled under logins, checkpoints were
//! a tenth of the server's CPU.
//!
//! Instead, a task asks for a `PASSIVE` checkpoint every [`INTERVAL`] (it waits for no reader or
//! writer, and copies what it can), and each connection checkpoints by itself only past
//! [`BACKSTOP_PAGES`], should the task fall behind. The database file also holds every write
//! within about [`INTERVAL`] of it, so a copy of the file alone (a careless backup) misses
//! little.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

/// How often the task checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// The WAL size (pages) past which a committing connection checkpoints by itself (`db::connect`
/// sets it on every connection; SQLite's default is 1,000).
pub const BACKSTOP_PAGES: u32 = 20_000;

/// Checkpoint `db` every [`INTERVAL`] until dropped (aborted); nothing for other backends.
pub async fn run(db: DatabaseConnection) {
    if db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::debug!(%error, "a WAL checkpoint failed; the next one copies what it left");
        }
    }
}
