//! What a database failure means for the request that met it: whether it is "not now" (the
//! database could not be reached in time, or chose this statement as a deadlock's victim:
//! answered 503 with `Retry-After`) rather than broken (500). A kernel of its own, below the
//! audit trail and the group commits that retry failed batches row by row, which must not retry
//! what only waiting can cure.

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

/// Whether a request that met `error` should be told to try again (503 with `Retry-After`): the
/// database could not be reached in time ([`is_unavailable`]), or it ended the statement to
/// settle a deadlock or a serialization conflict ([`is_deadlock`]), which the same request sent
/// again does not meet. The group commits use [`is_unavailable`] alone: a batch that lost a
/// deadlock is retried row by row at once.
pub fn is_worth_retrying(error: &DbErr) -> bool {
    is_unavailable(error) || is_deadlock(error)
}

/// Whether `error` is the database ending the statement to settle a conflict with another one
/// running at the same time: SQLSTATE `40001` (MySQL and MariaDB's deadlock, 1213;
/// PostgreSQL's serialization failure) or `40P01` (PostgreSQL's deadlock). The statement's
/// changes were undone; sent again, it normally succeeds.
pub fn is_deadlock(error: &DbErr) -> bool {
    database_error(error)
        .and_then(|error| error.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// The database's own error inside `error`, if the database answered with one.
fn database_error(error: &DbErr) -> Option<&(dyn DatabaseError + 'static)> {
    let (DbErr::Exec(RuntimeErr::SqlxError(error))
    | DbErr::Query(RuntimeErr::SqlxError(error))
    | DbErr::Conn(RuntimeErr::SqlxError(error))) = error
    else {
        return None;
    };
    match error.as_ref() {
        sea_orm::sqlx::Error::Database(error) => Some(error.as_ref()),
        _ => None,
    }
}

/// Whether `error` is SQLite's "database is locked" (`SQLITE_BUSY` and its extended codes): the
/// write lock stayed taken for all of the connection's wait.
pub fn is_sqlite_locked(error: &DbErr) -> bool {
    database_error(error)
        .and_then(|error| error.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>())
        .and_then(|error| error.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == libsqlite3_sys::SQLITE_BUSY)
}

/// A statement's failure, for every caller a group commit answers from it (`DbErr` is not
/// `Clone`): its text, and whether it [`is_worth_retrying`], which the trip back to a `DbErr`
/// keeps. Such an error comes back as a pool timeout, whose text then stands for a lock or a
/// deadlock too; any other comes back as its text.
#[derive(Debug, Clone)]
pub struct SharedDbErr {
    worth_retrying: bool,
    message: String,
}

impl From<&DbErr> for SharedDbErr {
    fn from(error: &DbErr) -> Self {
        Self {
            worth_retrying: is_worth_retrying(error),
            message: error.to_string(),
        }
    }
}

impl From<SharedDbErr> for DbErr {
    fn from(shared: SharedDbErr) -> Self {
        if shared.worth_retrying {
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout)
        } else {
            DbErr::Custom(shared.message)
        }
    }
}
