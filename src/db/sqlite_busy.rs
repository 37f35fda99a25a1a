//! How a SQLite connection waits for another connection's write lock: in short steps (20 µs,
//! doubling to 1 ms) instead of SQLite's built-in busy timeout, whose first wait is a whole
//! millisecond and whose waits grow to 100 ms, while a wxauth commit holds the lock for tens of
//! microseconds. It gives up after the same ten seconds the timeout allowed; the statement then
//! fails with "database is locked" ([`crate::db_error::is_sqlite_locked`]), which the request it
//! belongs to answers 503 ([`crate::db_error::is_worth_retrying`]).

use std::ffi::{c_int, c_void};
use std::time::Duration;

use sea_orm::sqlx::SqliteConnection;

/// The first wait; each further wait doubles it, up to [`LONGEST_STEP`].
const FIRST_STEP: Duration = Duration::from_micros(20);

/// The longest single wait.
const LONGEST_STEP: Duration = Duration::from_millis(1);

/// How long a statement waits for the lock in all before SQLite answers "database is locked".
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// The wait before the next try, after `tries` tries have found the database locked; `None`
/// once the waits so far add up to [`GIVE_UP_AFTER`]. Computed without walking every earlier
/// try: past the few doublings, each wait is [`LONGEST_STEP`].
pub fn step(tries: u32) -> Option<Duration> {
    let mut waited = Duration::ZERO;
    let mut wait = FIRST_STEP;
    let mut left = tries;
    while left > 0 && wait < LONGEST_STEP {
        waited += wait;
        wait = (wait * 2).min(LONGEST_STEP);
        left -= 1;
    }
    waited += LONGEST_STEP * left;
    (waited < GIVE_UP_AFTER).then_some(wait)
}

/// SQLite's busy callback: sleep for this try's step and ask SQLite to try again (non-zero), or
/// give up (zero).
extern "C" fn wait_for_lock(_: *mut c_void, tries: c_int) -> c_int {
    match step(u32::try_from(tries).unwrap_or(u32::MAX)) {
        Some(wait) => {
            std::thread::sleep(wait);
            1
        }
        None => 0,
    }
}

/// Install [`wait_for_lock`] on a new pooled connection, replacing the busy timeout.
pub async fn install(connection: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is this connection's open database handle, held locked by `handle` for the
    // call, so no statement runs on it meanwhile; the callback is a plain function that touches
    // no shared state, and the null argument is never read.
    let code = unsafe {
        libsqlite3_sys::sqlite3_busy_handler(raw, Some(wait_for_lock), std::ptr::null_mut())
    };
    if code == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Protocol(format!(
            "sqlite3_busy_handler failed with code {code}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_short_and_double_to_a_millisecond() {
        let first: Vec<u64> = (0..8)
            .map(|tries| step(tries).map_or(0, |wait| wait.as_micros() as u64))
            .collect();
        assert_eq!(first, [20, 40, 80, 160, 320, 640, 1000, 1000]);
    }

    #[test]
    fn gives_up_once_the_waits_add_up_to_ten_seconds() {
        let mut waited = Duration::ZERO;
        let mut tries = 0;
        while let Some(wait) = step(tries) {
            waited += wait;
            tries += 1;
        }
        assert!(
            waited >= GIVE_UP_AFTER && waited < GIVE_UP_AFTER + LONGEST_STEP,
            "waited {waited:?} in {tries} tries"
        );
    }
}
