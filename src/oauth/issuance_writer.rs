//! The group commit of our own grants' issuances (`flow`, `mini_program`): each one writes a new
//! refresh-token family, its first token and the `token_issued` audit event, then reads whether
//! the account may still hold tokens (a merge or a disable may have revoked its families just
//! before this one was written). Under load, one task does that for every issuance queued while
//! its previous batch was in flight: three multi-row inserts in one round trip
//! ([`crate::db::insert_together`]), then one read of all the batch's accounts, instead of two
//! round trips per request. Each caller waits for its own answer; nothing is acknowledged before
//! it is written, and the account is read after the write, as it was one request at a time.
//!
//! A batch the database refuses is written again one issuance at a time, so that one bad row
//! costs only its own request.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};
use tokio::sync::{mpsc, oneshot};

use entity::{audit_event, flow_user, refresh_token, refresh_token_family};

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

type Waiting = (IssuanceRows, oneshot::Sender<Result<MayHold, String>>);

/// The queue to the group-commit task (direct writes outside a Tokio runtime).
#[derive(Clone)]
pub(super) struct IssuanceWriter {
    db: DatabaseConnection,
    queue: Option<mpsc::Sender<Waiting>>,
}

impl IssuanceWriter {
    /// Starts the task on the current Tokio runtime, if there is one; it ends when the last
    /// clone of this writer is dropped.
    pub fn new(db: DatabaseConnection) -> Self {
        let queue = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (queue, waiting) = mpsc::channel(QUEUE);
            runtime.spawn(group_commit(db.clone(), waiting));
            queue
        });
        Self { db, queue }
    }

    /// Write `rows` and say whether their account may hold them, once they are in the database.
    pub async fn write(&self, rows: IssuanceRows) -> Result<MayHold, String> {
        let rows = match &self.queue {
            Some(queue) => {
                let (done, written) = oneshot::channel();
                match queue.send((rows, done)).await {
                    Ok(()) => {
                        return written
                            .await
                            .unwrap_or_else(|_| Err("the issuance writer stopped".to_owned()));
                    }
                    Err(mpsc::error::SendError((rows, _))) => rows,
                }
            }
            None => rows,
        };
        let account_id = rows.account_id;
        write_batch(&self.db, vec![rows])
            .await
            .map(|live| live.contains(&account_id))
            .map_err(|e| e.to_string())
    }
}

async fn group_commit(db: DatabaseConnection, mut waiting: mpsc::Receiver<Waiting>) {
    let mut batch = Vec::with_capacity(BATCH);
    while waiting.recv_many(&mut batch, BATCH).await > 0 {
        let (issuances, callers): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let accounts: Vec<i64> = issuances.iter().map(|i| i.account_id).collect();
        match write_batch(&db, issuances.clone()).await {
            Ok(live) => {
                for (caller, account) in callers.into_iter().zip(accounts) {
                    let _ = caller.send(Ok(live.contains(&account)));
                }
            }
            Err(_) => {
                for ((issuance, caller), account) in
                    issuances.into_iter().zip(callers).zip(accounts)
                {
                    let answer = write_batch(&db, vec![issuance])
                        .await
                        .map(|live| live.contains(&account))
                        .map_err(|e| e.to_string());
                    let _ = caller.send(answer);
                }
            }
        }
    }
}

/// Write the families, then their tokens, then the events (what is harmless alone first), in one
/// round trip; then read which of their accounts exist and are not disabled.
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
    crate::db::insert_together(
        db,
        vec![
            refresh_token_family::Entity::insert_many(families).build(backend),
            refresh_token::Entity::insert_many(tokens).build(backend),
            audit_event::Entity::insert_many(events).build(backend),
        ],
    )
    .await?;
    accounts.sort_unstable();
    accounts.dedup();
    let live: Vec<i64> = flow_user::Entity::find()
        .select_only()
        .column(flow_user::Column::Id)
        .filter(flow_user::Column::Id.is_in(accounts))
        .filter(flow_user::Column::DisabledAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    Ok(live.into_iter().collect())
}
