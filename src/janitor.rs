//! The janitor: every few minutes, delete rows whose time is over — spent or expired login
//! tickets, Mini Program sessions and their people's current keys, refresh tokens and their
//! families, denylisted access-token ids, authorization codes, device authorizations, browser
//! sessions, sign-in states and code exchanges, receipts of pushed Official Account messages — so
//! that tables of short-lived things stay small, audit events older than the retention, and
//! WeChat call counts older than a month. `wxauth janitor` runs one sweep now.
//! Each sweep also runs the [`Chore`]s the layers above hand it (such as asking WeChat again
//! about nicknames it could not check), without this module knowing what they do.
//!
//! Rows go in batches of [`BATCH_ROWS`] (select the keys on the indexed `expires_at`, delete those
//! keys) with a [`BATCH_PAUSE`] between batches: one DELETE of 300,000 rows held SQLite's single
//! writer for seconds and every request that wanted to write waited behind it. Several instances
//! sweeping at once only repeat each other's work.

use std::time::Duration;

use sea_orm::sea_query::SimpleExpr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    TryGetableMany, Value,
};

use entity::{
    audit_event, auth_state, authorization_code, browser_session, device_authorization,
    login_ticket, mini_current_key, mini_session, refresh_token, refresh_token_family,
    revoked_access_token, wechat_call_day, wechat_code_exchange, wechat_message_receipt,
};

use crate::clock::SharedClock;

/// How often the janitor sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// Rows deleted per statement.
pub const BATCH_ROWS: u64 = 1000;
/// The pause between two batches, in which requests get the database.
pub const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// Delete, batch by batch, the rows of `E` whose `key` column is among those `expired` selects.
async fn delete_in_batches<E, K>(
    db: &DatabaseConnection,
    key: E::Column,
    expired: SimpleExpr,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    K: TryGetableMany + Into<Value> + Send + Sync,
{
    let mut gone = 0;
    loop {
        let keys: Vec<K> = E::find()
            .select_only()
            .column(key)
            .filter(expired.clone())
            .limit(BATCH_ROWS)
            .into_tuple()
            .all(db)
            .await?;
        let selected = keys.len() as u64;
        if selected == 0 {
            return Ok(gone);
        }
        let deleted = E::delete_many()
            .filter(key.is_in(keys))
            .exec(db)
            .await?
            .rows_affected;
        metrics::counter!(crate::metrics::JANITOR_DELETED, "table" => E::default().table_name())
            .increment(deleted);
        gone += deleted;
        if selected < BATCH_ROWS {
            return Ok(gone);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// How long a person's current session_key (`mini_current_key`) is kept past its expiry. While
/// it is there, the person's sessions holding another key are not live; an instance whose clock
/// runs ahead can have written such a session with an expiry a little after it
/// ([`crate::db::mini_sessions`]).
pub const CURRENT_KEY_GRACE: i64 = 3600;

/// The current session_keys that expired before `cutoff`, in batches as [`delete_in_batches`]
/// (their key is two columns). A row a sign-in renewed meanwhile is not deleted.
async fn delete_current_keys(db: &DatabaseConnection, cutoff: i64) -> Result<u64, DbErr> {
    let mut gone = 0;
    loop {
        let people: Vec<(String, String)> = mini_current_key::Entity::find()
            .select_only()
            .column(mini_current_key::Column::Appid)
            .column(mini_current_key::Column::OpenId)
            .filter(mini_current_key::Column::ExpiresAt.lt(cutoff))
            .limit(BATCH_ROWS)
            .into_tuple()
            .all(db)
            .await?;
        let selected = people.len() as u64;
        if selected == 0 {
            return Ok(gone);
        }
        let mut these = Condition::any();
        for (appid, open_id) in people {
            these = these.add(
                Condition::all()
                    .add(mini_current_key::Column::Appid.eq(appid))
                    .add(mini_current_key::Column::OpenId.eq(open_id)),
            );
        }
        let deleted = mini_current_key::Entity::delete_many()
            .filter(these)
            .filter(mini_current_key::Column::ExpiresAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected;
        metrics::counter!(crate::metrics::JANITOR_DELETED, "table" => "mini_current_key")
            .increment(deleted);
        gone += deleted;
        if selected < BATCH_ROWS {
            return Ok(gone);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// How many days of WeChat call counts (`wechat_call_day`, Beijing-time days) are kept.
pub const WECHAT_CALL_DAYS_KEPT: i64 = 31;

/// Delete every expired row, and audit events older than `audit_retention` seconds; returns how
/// many went.
pub async fn sweep(db: &DatabaseConnection, now: i64, audit_retention: i64) -> Result<u64, DbErr> {
    let mut gone = 0;
    gone += delete_in_batches::<login_ticket::Entity, String>(
        db,
        login_ticket::Column::TicketHash,
        login_ticket::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<mini_session::Entity, String>(
        db,
        mini_session::Column::IdHash,
        mini_session::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_current_keys(db, now.saturating_sub(CURRENT_KEY_GRACE)).await?;
    gone += delete_in_batches::<refresh_token::Entity, String>(
        db,
        refresh_token::Column::TokenHash,
        refresh_token::Column::ExpiresAt.lt(now),
    )
    .await?;
    // A family ends at a fixed instant no token of it outlives: past it, only its row is left.
    gone += delete_in_batches::<refresh_token_family::Entity, String>(
        db,
        refresh_token_family::Column::FamilyId,
        refresh_token_family::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<revoked_access_token::Entity, String>(
        db,
        revoked_access_token::Column::Jti,
        revoked_access_token::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<authorization_code::Entity, String>(
        db,
        authorization_code::Column::CodeHash,
        authorization_code::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<browser_session::Entity, String>(
        db,
        browser_session::Column::IdHash,
        browser_session::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<auth_state::Entity, String>(
        db,
        auth_state::Column::StateHash,
        auth_state::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<wechat_code_exchange::Entity, String>(
        db,
        wechat_code_exchange::Column::CodeHash,
        wechat_code_exchange::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<device_authorization::Entity, String>(
        db,
        device_authorization::Column::DeviceCodeHash,
        device_authorization::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<wechat_message_receipt::Entity, String>(
        db,
        wechat_message_receipt::Column::ReceiptKey,
        wechat_message_receipt::Column::ExpiresAt.lt(now),
    )
    .await?;
    gone += delete_in_batches::<audit_event::Entity, i64>(
        db,
        audit_event::Column::Id,
        audit_event::Column::At.lt(now.saturating_sub(audit_retention)),
    )
    .await?;
    // A row per app and day: a month of them is a few hundred rows, one statement.
    let first_kept = crate::clock::beijing_day(now) - WECHAT_CALL_DAYS_KEPT;
    gone += wechat_call_day::Entity::delete_many()
        .filter(wechat_call_day::Column::Day.lt(first_kept))
        .exec(db)
        .await?
        .rows_affected;
    Ok(gone)
}

/// Periodic work of a layer above that the janitor runs after each sweep.
#[async_trait::async_trait]
pub trait Chore: Send + Sync {
    /// For the log.
    fn name(&self) -> &'static str;
    /// Do what is due; returns how many things were done.
    async fn run(&self) -> Result<u64, String>;
}

/// Sweep every [`SWEEP_INTERVAL`] until dropped (the first sweep after one interval), then run
/// `chores`.
pub async fn run(
    db: DatabaseConnection,
    clock: SharedClock,
    audit_retention: i64,
    chores: Vec<std::sync::Arc<dyn Chore>>,
) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match sweep(&db, clock.now(), audit_retention).await {
            Ok(0) => {}
            Ok(gone) => tracing::debug!(rows = gone, "janitor swept expired rows"),
            Err(error) => tracing::warn!(%error, "janitor sweep failed"),
        }
        for chore in &chores {
            match chore.run().await {
                Ok(0) => {}
                Ok(done) => tracing::debug!(chore = chore.name(), done, "janitor chore ran"),
                Err(error) => tracing::warn!(chore = chore.name(), %error, "janitor chore failed"),
            }
        }
    }
}
