//! The Mini Program sign-ins' session writes as a group commit ([`crate::group_commit`]): each
//! sign-in ends the person's sessions holding another session_key, records its key as the
//! person's current one, stores its own session and, for the `flow` grant, a login ticket. Under
//! load one task writes every sign-in queued while its previous batch was in flight: one `DELETE`
//! of the replaced sessions, one multi-row upsert of the current keys, one multi-row `INSERT` of
//! the sessions and one of the tickets, in one round trip ([`crate::round_trip`]), instead of
//! four statements (four commits on SQLite) per sign-in. Each caller is answered once its rows
//! are written.
//!
//! A batch leaves the database as the same sign-ins written one after the other in queue order
//! would: for a person signed in more than once in a batch, the `DELETE` keeps only the sessions
//! holding the key of that person's last sign-in, that key is the current one, and only the
//! sessions holding it are inserted (an earlier one holding another key would be replaced by the
//! next sign-in at once). Every ticket is inserted.
//!
//! Several instances sign one person in at the same instant with nothing ordering their writes
//! but the database. A session is therefore live only while it holds its person's current key
//! ([`crate::db::mini_sessions::live_at`]): the current key is one row per person, so whichever
//! upsert comes last names the one live key, however the instances' statements interleave. Each
//! sign-in's `DELETE` comes before its own upsert, so what it removes (sessions already inserted,
//! after their own upserts) is what its upsert ends anyway. A session inserted after another
//! instance's upsert replaced its key stays in the table, not live, until the person's next
//! sign-in or its expiry.
//!
//! On every backend. On MariaDB, where statements are sent one by one, a batch is still four
//! statements instead of four per sign-in, each sent again after a lost deadlock. Batches are
//! written one after another, so one instance's sign-ins of one person never interleave their
//! statements.

use std::collections::HashMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, Set};
use sea_orm::{QueryFilter, QueryTrait};

use entity::{login_ticket, mini_current_key, mini_session};

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
    /// When the new session ends (unix seconds).
    pub expires_at: i64,
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

/// The replaced sessions' `DELETE`, the current keys' upsert, the sessions' `INSERT` and the
/// tickets' `INSERT`, in that order (the `DELETE` before the upsert, see the module's comment; a
/// ticket never outlives a failed session write), in one round trip, outside any
/// transaction ([`crate::round_trip::write_together_outside_transactions`]). Nothing is read
/// back: a sign-in of the same person on another instance may already have replaced a session
/// (a read-back raced there and answered 500).
async fn write_batch(db: &DatabaseConnection, batch: &[SessionWrite]) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    // Each person's last session_key in the batch: the one their sessions are left holding.
    let mut kept: HashMap<(&str, &str), (&str, i64)> = HashMap::with_capacity(batch.len());
    for write in batch {
        kept.insert(
            (&write.appid, &write.open_id),
            (&write.key_hash, write.expires_at),
        );
    }
    let mut replaced = Condition::any();
    for ((appid, open_id), (key_hash, _)) in &kept {
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
        .filter(|w| {
            kept.get(&(w.appid.as_str(), w.open_id.as_str()))
                .is_some_and(|(key_hash, _)| *key_hash == w.key_hash)
        })
        .map(|w| w.session.clone());
    // In one order on every instance, so that two batches' upserts wait for each other rather
    // than deadlock.
    let mut people: Vec<_> = kept.iter().collect();
    people.sort_unstable();
    let current_keys = people
        .into_iter()
        .map(
            |((appid, open_id), (key_hash, expires_at))| mini_current_key::ActiveModel {
                appid: Set((*appid).to_owned()),
                open_id: Set((*open_id).to_owned()),
                session_key_hash: Set((*key_hash).to_owned()),
                expires_at: Set(*expires_at),
            },
        );
    let tickets: Vec<_> = batch.iter().filter_map(|w| w.ticket.clone()).collect();
    let mut statements = vec![
        mini_session::Entity::delete_many()
            .filter(replaced)
            .build(backend),
        mini_current_key::Entity::insert_many(current_keys)
            .on_conflict(
                OnConflict::columns([
                    mini_current_key::Column::Appid,
                    mini_current_key::Column::OpenId,
                ])
                .update_columns([
                    mini_current_key::Column::SessionKeyHash,
                    mini_current_key::Column::ExpiresAt,
                ])
                .to_owned(),
            )
            .build(backend),
        mini_session::Entity::insert_many(sessions).build(backend),
    ];
    if !tickets.is_empty() {
        statements.push(login_ticket::Entity::insert_many(tickets).build(backend));
    }
    crate::round_trip::write_together_outside_transactions(db, statements).await
}
