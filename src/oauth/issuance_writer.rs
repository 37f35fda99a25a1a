//! The group commit of the issuances for a person (`flow`, `mini_program`, `device_code`): each
//! writes a new refresh-token family, its first token and the `token_issued` audit event, then
//! reads whether the account may still hold tokens (a merge or a disable may have revoked its
//! families just before this one was written). Under load, one task does that for every issuance
//! queued while its previous batch was in flight: three multi-row inserts in one round trip
//! ([`crate::round_trip::write_together`]), then one read of all the batch's accounts, instead of
//! two round trips per request. Each caller waits for its own answer; nothing is acknowledged before
//! it is written, and the account is read after the write, as it was one request at a time.
//!
//! The queueing is [`crate::group_commit`]'s. A batch the database refuses is written again one
//! issuance at a time, so that one bad row costs only its own request.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};

use entity::{audit_event, flow_user, refresh_token, refresh_token_family};

use crate::db_error::SharedDbErr;
use crate::group_commit::GroupCommit;

/// At most this many issuances go into one batch (its bound values stay well under every
/// backend's limit).
const BATCH: usize = 64;

/// Issuances queued before a caller waits for room.
const QUEUE: usize = 1024;

/// The rows of one issuance, and the account that will hold them.
#[derive(Clone)]
pub(super) struct IssuanceRows {
    pub family: refresh_token_family::ActiveModel,
    pub token: refresh_token::ActiveModel,
    pub event: audit_event::ActiveModel,
    pub account_id: i64,
}

/// Whether the account could still hold the tokens once they were written (`false`: it was
/// merged away, deleted or disabled meanwhile, and the caller revokes the family).
pub(super) type MayHold = bool;

/// The group commit of issuances (direct writes outside a Tokio runtime).
#[derive(Clone)]
pub(super) struct IssuanceWriter {
    db: DatabaseConnection,
    issuances: GroupCommit<IssuanceRows, Result<MayHold, SharedDbErr>>,
}

impl IssuanceWriter {
    /// Starts the task on the current Tokio runtime, if there is one; it ends when the last
    /// clone of this writer is dropped.
    pub fn new(db: DatabaseConnection) -> Self {
        let writer = db.clone();
        let issuances = GroupCommit::start(BATCH, QUEUE, move |batch| {
            write_or_each_alone(writer.clone(), batch)
        });
        Self { db, issuances }
    }

    /// Write `rows` and say whether their account may hold them, once they are in the database.
    pub async fn write(&self, rows: IssuanceRows) -> Result<MayHold, DbErr> {
        let stopped = |what: &str| DbErr::Custom(what.to_owned());
        match self.issuances.submit(rows).await {
            Ok(Some(answer)) => answer.map_err(DbErr::from),
            Ok(None) => Err(stopped("the issuance writer stopped")),
            Err(rows) => write_or_each_alone(self.db.clone(), vec![rows])
                .await
                .pop()
                .unwrap_or_else(|| Err(SharedDbErr::from(&stopped("nothing was written"))))
                .map_err(DbErr::from),
        }
    }
}

/// The batch at once; when the database refuses it, each issuance alone, so that one bad row
/// costs only its own request. Not when the database could not be reached in time (a locked
/// SQLite, no free connection): each would wait as long again, so all share that answer.
async fn write_or_each_alone(
    db: DatabaseConnection,
    batch: Vec<IssuanceRows>,
) -> Vec<Result<MayHold, SharedDbErr>> {
    let accounts: Vec<i64> = batch.iter().map(|i| i.account_id).collect();
    match write_batch(&db, batch.clone()).await {
        Ok(live) => return accounts.iter().map(|a| Ok(live.contains(a))).collect(),
        Err(e) if crate::db_error::is_unavailable(&e) => {
            return accounts
                .iter()
                .map(|_| Err(SharedDbErr::from(&e)))
                .collect();
        }
        Err(_) => {}
    }
    let mut answers = Vec::with_capacity(batch.len());
    for issuance in batch {
        let account = issuance.account_id;
        answers.push(
            write_batch(&db, vec![issuance])
                .await
                .map(|live| live.contains(&account))
                .map_err(|e| SharedDbErr::from(&e)),
        );
    }
    answers
}

/// Write the families, then their tokens, then the events (what is harmless alone first), in one
/// round trip; then read which of their accounts exist and are not disabled (on SQLite in the
/// same round trip, once the writes have committed:
/// [`crate::round_trip::write_together_then_read`]).
async fn write_batch(
    db: &DatabaseConnection,
    issuances: Vec<IssuanceRows>,
) -> Result<HashSet<i64>, DbErr> {
    let backend = db.get_database_backend();
    let mut families = Vec::with_capacity(issuances.len());
    let mut tokens = Vec::with_capacity(issuances.len());
    let mut events = Vec::with_capacity(issuances.len());
    let mut accounts = Vec::with_capacity(issuances.len());
    for issuance in issuances {
        families.push(issuance.family);
        tokens.push(issuance.token);
        events.push(issuance.event);
        accounts.push(issuance.account_id);
    }
    accounts.sort_unstable();
    accounts.dedup();
    let live = flow_user::Entity::find()
        .select_only()
        .column(flow_user::Column::Id)
        .filter(flow_user::Column::Id.is_in(accounts))
        .filter(flow_user::Column::DisabledAt.is_null())
        .build(backend);
    let rows = crate::round_trip::write_together_then_read(
        db,
        vec![
            refresh_token_family::Entity::insert_many(families).build(backend),
            refresh_token::Entity::insert_many(tokens).build(backend),
            audit_event::Entity::insert_many(events).build(backend),
        ],
        live,
    )
    .await?;
    rows.iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect()
}
