//! The Mini Program sign-ins' session writes as a group commit ([`crate::group_commit`]): each
//! sign-in ends the person's sessions holding another session_key, stores its own session and, for
//! the `flow` grant, a login ticket. Under load one task writes every sign-in queued while its
//! previous batch was in flight: one `DELETE` of the replaced sessions, one multi-row `INSERT` of
//! the sessions and one of the tickets, in one round trip ([`crate::round_trip`]), instead of
//! three statements (three commits on SQLite) per sign-in. Each caller is answered once its rows
//! are written.
//!
//! A batch leaves the database as the same sign-ins written one after the other in queue order
//! would: for a person signed in more than once in a batch, the `DELETE` keeps only the sessions
//! holding the key of that person's last sign-in, and only the sessions holding that key are
//! inserted (an earlier one holding another key would be replaced by the next sign-in at once).
//! Every ticket is inserted.
//!
//! On every backend. On MariaDB, where statements are sent one by one, a batch is still three
//! statements instead of three per sign-in, each sent again after a lost deadlock. Batches are
//! written one after another, so one instance's sign-ins of one person never interleave their
//! `DELETE`s and `INSERT`s.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait};
use sea_orm::{QueryFilter, QueryTrait};

use entity::{login_ticket, mini_session};

use crate::db_error::SharedDbErr;
use crate::group_commit::{GroupCommit, write_through};

/// At most this many sign-ins go into one batch (their bound values stay well under every
/// backend's limit: ~20 per sign-in).
const BATCH: usize = 64;

/// Sign-ins queued before a caller waits for room.
const QUEUE: usize = 1024;

/// One sign-in's rows: the session, which replaces the person's sessions holding another
/// session_key, and the login ticket minted with it, if any.
pub(super) struct SessionWrite {
    pub appid: String,
    pub open_id: String,
    /// The keyed fingerprint of the session_key the new session holds.
    pub key_hash: String,
    pub session: mini_session::ActiveModel,
    pub ticket: Option<login_ticket::ActiveModel>,
}

/// The group commit of session writes (outside a Tokio runtime each sign-in is written alone).
#[derive(Clone)]
pub(super) struct SessionWrites {
    db: DatabaseConnection,
    batches: GroupCommit<SessionWrite, Result<(), SharedDbErr>>,
}

impl SessionWrites {
    pub fn new(db: DatabaseConnection) -> Self {
        let writer = db.clone();
        let batches = GroupCommit::start(BATCH, QUEUE, move |batch| {
            write_or_each_alone(writer.clone(), batch)
        });
        Self { db, batches }
    }

    /// Write `write`'s rows; `Ok` once they are in the database.
    pub async fn write(&self, write: SessionWrite) -> Result<(), DbErr> {
        let written = write_through(Some(&self.batches), write, |alone| {
            write_or_each_alone(self.db.clone(), alone)
        })
        .await;
        match written {
            Some(answer) => answer.map_err(DbErr::from),
            None => Err(DbErr::Custom("the session writer stopped".into())),
        }
    }
}

/// The batch at once; when the database refuses it, each sign-in alone, so that one bad row costs
/// only its own request. Not when the database could not be reached in time (a locked SQLite, no
/// free connection): each would wait as long again, so all share that answer.
async fn write_or_each_alone(
    db: DatabaseConnection,
    batch: Vec<SessionWrite>,
) -> Vec<Result<(), SharedDbErr>> {
    if batch.len() > 1 {
        match write_batch(&db, &batch).await {
            Ok(()) => return batch.iter().map(|_| Ok(())).collect(),
            Err(e) if crate::db_error::is_unavailable(&e) => {
                let shared = SharedDbErr::from(&e);
                return batch.iter().map(|_| Err(shared.clone())).collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, "a batch of session writes failed; writing each alone")
            }
        }
    }
    let mut answers = Vec::with_capacity(batch.len());
    for write in batch {
        answers.push(
            write_batch(&db, std::slice::from_ref(&write))
                .await
                .map_err(|e| SharedDbErr::from(&e)),
        );
    }
    answers
}

/// The replaced sessions' `DELETE`, the sessions' `INSERT` and the tickets' `INSERT`, in that
/// order (a ticket never outlives a failed session write), in one round trip, outside any
/// transaction ([`crate::round_trip::write_together_outside_transactions`]). Nothing is read
/// back: a sign-in of the same person on another instance may already have replaced a session
/// (a read-back raced there and answered 500).
async fn write_batch(db: &DatabaseConnection, batch: &[SessionWrite]) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    // Each person's last session_key in the batch: the one their sessions are left holding.
    let mut kept: HashMap<(&str, &str), &str> = HashMap::with_capacity(batch.len());
    for write in batch {
        kept.insert((&write.appid, &write.open_id), &write.key_hash);
    }
    let mut replaced = Condition::any();
    for ((appid, open_id), key_hash) in &kept {
        replaced = replaced.add(
            Condition::all()
                .add(mini_session::Column::Appid.eq(*appid))
                .add(mini_session::Column::OpenId.eq(*open_id))
                .add(
                    Condition::any()
                        .add(mini_session::Column::SessionKeyHash.ne(*key_hash))
                        .add(mini_session::Column::SessionKeyHash.is_null()),
                ),
        );
    }
    let sessions = batch
        .iter()
        .filter(|w| kept.get(&(w.appid.as_str(), w.open_id.as_str())) == Some(&w.key_hash.as_str()))
        .map(|w| w.session.clone());
    let tickets: Vec<_> = batch.iter().filter_map(|w| w.ticket.clone()).collect();
    let mut statements = vec![
        mini_session::Entity::delete_many()
            .filter(replaced)
            .build(backend),
        mini_session::Entity::insert_many(sessions).build(backend),
    ];
    if !tickets.is_empty() {
        statements.push(login_ticket::Entity::insert_many(tickets).build(backend));
    }
    crate::round_trip::write_together_outside_transactions(db, statements).await
}
