//! What a database failure means for the request that met it: whether it is "not now" (the
//! database could not be reached in time: answered 503 with `Retry-After`) rather than broken
//! (500). A kernel of its own, below the audit trail and the group commits that retry failed
//! batches row by row, which must not retry what only waiting can cure.

use sea_orm::sqlx::error::DatabaseError;
use sea_orm::{DbErr, RuntimeErr};

/// What a request is told when the database cannot be reached in time (a 503 with `Retry-After`).
pub const BUSY_MESSAGE: &str = "the database is busy, try again";

/// Whether `error` says the database could not be reached in time (every pooled connection busy,
/// or none could be opened, or SQLite's write lock stayed taken for all of a writer's wait): a
/// temporary condition, answered 503 with `Retry-After`, not 500.
pub fn is_unavailable(error: &DbErr) -> bool {
    matches!(error, DbErr::ConnectionAcquire(_)) || is_sqlite_locked(error)
}

/// Whether `error` is SQLite's "database is locked" (`SQLITE_BUSY` and its extended codes): the
/// write lock stayed taken for all of the connection's wait.
pub fn is_sqlite_locked(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(error))
    | DbErr::Query(RuntimeErr::SqlxError(error))
    | DbErr::Conn(RuntimeErr::SqlxError(error))) = error
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(error) = error.as_ref() else {
        return false;
    };
    error
        .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .and_then(|error| error.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == libsqlite3_sys::SQLITE_BUSY)
}
