//! Calls to WeChat per app and day, for the admin API and the console ("calls and errors
//! today"). The [`WeChatClient`](super::WeChatClient) counts every attempt it sends in
//! [`CallCounts`], in memory, at the cost of a map update; the [`CallLedger`] adds what was
//! counted to the `wechat_call_day` row of each (app, day) every [`FLUSH_INTERVAL`] with one
//! atomic `INSERT … ON CONFLICT DO UPDATE SET calls = calls + n` (MySQL: `ON DUPLICATE KEY
//! UPDATE`). So several instances sum into one row, a busy sign-in path writes nothing per call,
//! and the database sees at most one statement per app and instance per interval. Reading
//! flushes this instance's counts first; another instance's reach the row within the interval.
//!
//! A day is a Beijing-time day (UTC+8): WeChat's daily quotas reset at midnight in China.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entity::wechat_call_day;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::clock::SharedClock;

/// How often an instance adds its counts to the database.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);
pub use crate::clock::beijing_day as day_of;

/// Calls and failed calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: i64,
    pub errors: i64,
}

/// Counts not yet in the database, by (appid, day). Cheap to clone (shared).
#[derive(Clone)]
pub struct CallCounts {
    clock: SharedClock,
    pending: Arc<Mutex<HashMap<(String, i64), Tally>>>,
}

impl std::fmt::Debug for CallCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCounts").finish_non_exhaustive()
    }
}

impl CallCounts {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            pending: Arc::default(),
        }
    }

    /// Count one call for `appid` (calls attributed to no app are not counted here).
    pub fn record(&self, appid: &str, failed: bool) {
        if appid.is_empty() {
            return;
        }
        let day = day_of(self.clock.now());
        if let Ok(mut pending) = self.pending.lock() {
            let tally = pending.entry((appid.to_owned(), day)).or_default();
            tally.calls += 1;
            tally.errors += i64::from(failed);
        }
    }

    fn take(&self) -> HashMap<(String, i64), Tally> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    /// Put back counts a failed flush could not store.
    fn restore(&self, counts: HashMap<(String, i64), Tally>) {
        if let Ok(mut pending) = self.pending.lock() {
            for (key, t) in counts {
                let tally = pending.entry(key).or_default();
                tally.calls += t.calls;
                tally.errors += t.errors;
            }
        }
    }
}

/// The per-app, per-day call counts shared by every instance.
#[derive(Clone)]
pub struct CallLedger {
    db: DatabaseConnection,
    clock: SharedClock,
    counts: CallCounts,
}

impl std::fmt::Debug for CallLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLedger").finish_non_exhaustive()
    }
}

impl CallLedger {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self {
            counts: CallCounts::new(clock.clone()),
            db,
            clock,
        }
    }

    /// What the WeChat client counts into.
    pub fn counts(&self) -> &CallCounts {
        &self.counts
    }

    /// Add this instance's counts to the database; on failure they are kept for the next try.
    pub async fn flush(&self) -> Result<(), DbErr> {
        let mut pending = self.counts.take();
        let keys: Vec<(String, i64)> = pending.keys().cloned().collect();
        for key in keys {
            let Some(tally) = pending.get(&key).copied() else {
                continue;
            };
            if let Err(e) = self.add(&key.0, key.1, tally).await {
                self.counts.restore(pending);
                return Err(e);
            }
            pending.remove(&key);
        }
        Ok(())
    }

    async fn add(&self, appid: &str, day: i64, tally: Tally) -> Result<(), DbErr> {
        let row = wechat_call_day::ActiveModel {
            appid: Set(appid.to_owned()),
            day: Set(day),
            calls: Set(tally.calls),
            errors: Set(tally.errors),
            updated_at: Set(self.clock.now()),
        };
        // The stored row's columns, qualified: unqualified, PostgreSQL finds them ambiguous
        // beside `excluded`.
        let stored = |c: wechat_call_day::Column| Expr::col((wechat_call_day::Entity, c));
        wechat_call_day::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([wechat_call_day::Column::Appid, wechat_call_day::Column::Day])
                    .value(
                        wechat_call_day::Column::Calls,
                        stored(wechat_call_day::Column::Calls).add(tally.calls),
                    )
                    .value(
                        wechat_call_day::Column::Errors,
                        stored(wechat_call_day::Column::Errors).add(tally.errors),
                    )
                    .value(wechat_call_day::Column::UpdatedAt, self.clock.now())
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Today's calls and errors (Beijing time) for each of `appids`, every instance's counts
    /// included up to the last flush (this instance's up to now).
    pub async fn today(&self, appids: &[String]) -> Result<HashMap<String, Tally>, DbErr> {
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "WeChat call counts not stored; showing the stored ones");
        }
        let day = day_of(self.clock.now());
        let rows = wechat_call_day::Entity::find()
            .filter(wechat_call_day::Column::Day.eq(day))
            .filter(wechat_call_day::Column::Appid.is_in(appids.iter().cloned()))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.appid,
                    Tally {
                        calls: r.calls,
                        errors: r.errors,
                    },
                )
            })
            .collect())
    }

    /// Flush every [`FLUSH_INTERVAL`] until the task is dropped (the server flushes once more
    /// as it stops).
    pub async fn run(self) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "WeChat call counts not stored; trying again later");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_turn_at_beijing_midnight() {
        // 2026-12-02 15:59:59 UTC is 23:59:59 in Beijing; a second later it is the 3rd there.
        let before = 1_796_227_199;
        assert_eq!(day_of(before) + 1, day_of(before + 1));
        assert_eq!(day_of(0), 0);
    }
}
