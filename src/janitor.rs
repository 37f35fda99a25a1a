//! The janitor: every few minutes, delete rows whose time is over — spent or expired login
//! tickets, Mini Program sessions, refresh tokens, denylisted access-token ids, authorization
//! codes, browser sessions and sign-in states — so that tables of short-lived things stay small,
//! and audit events older than the retention.
//! Each delete is one statement on an indexed `expires_at`; several instances sweeping at once
//! only repeat each other's work.

use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use entity::{
    audit_event, auth_state, authorization_code, browser_session, login_ticket, mini_session,
    refresh_token, revoked_access_token,
};

use crate::clock::SharedClock;

/// How often the janitor sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Delete every expired row, and audit events older than `audit_retention` seconds; returns how
/// many went.
pub async fn sweep(db: &DatabaseConnection, now: i64, audit_retention: i64) -> Result<u64, DbErr> {
    let mut gone = 0;
    gone += login_ticket::Entity::delete_many()
        .filter(login_ticket::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    gone += mini_session::Entity::delete_many()
        .filter(mini_session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    gone += refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    gone += revoked_access_token::Entity::delete_many()
        .filter(revoked_access_token::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    gone += authorization_code::Entity::delete_many()
        .filter(authorization_code::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    gone += browser_session::Entity::delete_many()
        .filter(browser_session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    gone += auth_state::Entity::delete_many()
        .filter(auth_state::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    gone += audit_event::Entity::delete_many()
        .filter(audit_event::Column::At.lt(now.saturating_sub(audit_retention)))
        .exec(db)
        .await?
        .rows_affected;
    Ok(gone)
}

/// Sweep every [`SWEEP_INTERVAL`] until dropped (the first sweep after one interval).
pub async fn run(db: DatabaseConnection, clock: SharedClock, audit_retention: i64) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match sweep(&db, clock.now(), audit_retention).await {
            Ok(0) => {}
            Ok(gone) => tracing::debug!(rows = gone, "janitor swept expired rows"),
            Err(error) => tracing::warn!(%error, "janitor sweep failed"),
        }
    }
}
