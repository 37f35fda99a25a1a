//! Time as a dependency: the core asks a [`Clock`] for "now" so that expiry logic can be tested
//! without sleeping. Also the calendar day WeChat counts its daily quotas in ([`beijing_day`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Beijing time is UTC+8 all year.
const BEIJING_OFFSET_SECS: i64 = 8 * 3600;

/// The Beijing-time day (days since 1970-01-01) of the unix time `at`: WeChat's daily quotas
/// reset at midnight there.
pub fn beijing_day(at: i64) -> i64 {
    (at + BEIJING_OFFSET_SECS).div_euclid(86_400)
}

/// A source of the current time in unix seconds.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the unix epoch.
    fn now(&self) -> i64;

    /// Milliseconds since the unix epoch (for ordering events across instances, which share
    /// only the wall clock).
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

/// The clock shared through application state.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    }

    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default()
    }
}

/// A clock that follows the wall clock plus an offset that tests can move forward.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset: AtomicI64,
}

impl ManualClock {
    /// Move this clock `secs` seconds into the future.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        SystemClock.now() + self.offset.load(Ordering::SeqCst)
    }

    fn now_millis(&self) -> i64 {
        SystemClock.now_millis() + self.offset.load(Ordering::SeqCst) * 1000
    }
}
