//! Signed webhooks: what wxauth tells the company's other systems (a CRM, a data warehouse)
//! about accounts and followers, at least once, signed so that receivers can trust it.
//!
//! - [`enqueue`] writes an event into the outbox (`webhook_delivery`, one row per endpoint that
//!   wants it) on the caller's connection: call it with the transaction of the change the event
//!   reports, and the event exists exactly when the change does, whatever happens to the process
//!   after the commit.
//! - [`delivery`]: the worker every server runs. It claims a due row with a conditional UPDATE
//!   and a lease (so several instances never post one row at once), posts it, and retries with
//!   exponential back-off for [`delivery::RETRY_WINDOW_SECS`] before marking it dead.
//! - [`signature`]: the `Wxauth-Signature` header and the recipe receivers verify it with.
//!
//! Payloads carry ids only (account ids, appid and openid): never a token, a secret or a
//! session key.

pub mod delivery;
pub mod signature;

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, Statement};
use serde_json::{Value, json};

use entity::{webhook_delivery, webhook_endpoint};

/// Something that happened that receivers may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A new account (a WeChat identity seen for the first time, or a unionid new to wxauth).
    UserCreated { account_id: i64 },
    /// A person signed in; `channel` is `mini_program`, `h5`, `qr` or `wechat_oauth`.
    UserSignedIn { account_id: i64, channel: String },
    /// Two accounts were one person: `merged_id` moved into `survivor_id` and no longer exists.
    UserMerged { survivor_id: i64, merged_id: i64 },
    /// An administrator disabled the account.
    UserDisabled { account_id: i64 },
    /// The account was deleted (PIPL: the right to deletion).
    UserDeleted { account_id: i64 },
    /// A WeChat user followed an official account (the account is known when wxauth has seen
    /// the identity sign in).
    FollowerSubscribed {
        appid: String,
        open_id: String,
        account_id: Option<i64>,
    },
    /// A WeChat user unfollowed an official account.
    FollowerUnsubscribed {
        appid: String,
        open_id: String,
        account_id: Option<i64>,
    },
}

/// Every event type, as receivers see it in `type` and endpoints subscribe to it.
pub const EVENT_TYPES: &[&str] = &[
    "user.created",
    "user.signed_in",
    "user.merged",
    "user.disabled",
    "user.deleted",
    "follower.subscribed",
    "follower.unsubscribed",
];

/// An endpoint's subscription to every event type.
pub const ALL_EVENTS: &str = "*";

impl WebhookEvent {
    /// The event's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::UserCreated { .. } => "user.created",
            Self::UserSignedIn { .. } => "user.signed_in",
            Self::UserMerged { .. } => "user.merged",
            Self::UserDisabled { .. } => "user.disabled",
            Self::UserDeleted { .. } => "user.deleted",
            Self::FollowerSubscribed { .. } => "follower.subscribed",
            Self::FollowerUnsubscribed { .. } => "follower.unsubscribed",
        }
    }

    /// The event's `data`.
    fn data(&self) -> Value {
        match self {
            Self::UserCreated { account_id }
            | Self::UserDisabled { account_id }
            | Self::UserDeleted { account_id } => json!({ "account_id": account_id }),
            Self::UserSignedIn {
                account_id,
                channel,
            } => json!({ "account_id": account_id, "channel": channel }),
            Self::UserMerged {
                survivor_id,
                merged_id,
            } => json!({ "account_id": survivor_id, "merged_account_id": merged_id }),
            Self::FollowerSubscribed {
                appid,
                open_id,
                account_id,
            }
            | Self::FollowerUnsubscribed {
                appid,
                open_id,
                account_id,
            } => json!({ "appid": appid, "openid": open_id, "account_id": account_id }),
        }
    }

    /// The JSON body receivers get: `{id, type, created_at, data}`.
    pub fn body(&self, event_id: &str, created_at: i64) -> String {
        json!({
            "id": event_id,
            "type": self.type_name(),
            "created_at": created_at,
            "data": self.data(),
        })
        .to_string()
    }
}

/// Whether an endpoint subscribed to `events` (as stored) wants `type_name`.
pub fn subscribed(events: &str, type_name: &str) -> bool {
    events
        .split_whitespace()
        .any(|e| e == ALL_EVENTS || e == type_name)
}

/// The one statement that puts `event` in the outbox for every endpoint subscribed to it when the
/// statement runs: an `INSERT … SELECT` over the endpoints, so nothing is read first and nothing
/// is written when none wants the event. Run it in the transaction (or the one statement, see
/// [`crate::round_trip::write_together`]) of the change it reports.
pub fn enqueue_statement(
    event: &WebhookEvent,
    now: i64,
    backend: DbBackend,
) -> Result<Statement, DbErr> {
    let type_name = event.type_name();
    let event_id = new_event_id();
    let payload = event.body(&event_id, now);
    // `events` holds known type names (or `*`), one space between them (admin/webhooks.rs):
    // the endpoint wants the event when ` {events} ` holds ` * ` or ` {type} `. A position
    // search, not `LIKE`: SQLite prepares a statement whose `LIKE` pattern is bound again on every
    // run, and this one runs with every audit batch that holds a sign-in. (`concat` is in SQLite
    // since 3.44; the bundled one is 3.51.)
    let position = match backend {
        DbBackend::Postgres => "strpos",
        _ => "instr",
    };
    let has_word = |word: &str| {
        let padded_events = Func::cust("concat").args([
            Expr::val(" "),
            Expr::col(webhook_endpoint::Column::Events),
            Expr::val(" "),
        ]);
        Func::cust(position)
            .args([Expr::expr(padded_events), Expr::val(format!(" {word} "))])
            .gt(0)
    };
    let wanted = Condition::any()
        .add(has_word(ALL_EVENTS))
        .add(has_word(type_name));
    let endpoints = Query::select()
        .expr(Expr::val(event_id))
        .column(webhook_endpoint::Column::Id)
        .expr(Expr::val(type_name))
        .expr(Expr::val(payload))
        .expr(Expr::val(now))
        .expr(Expr::val(0i32))
        .expr(Expr::val(now))
        .from(webhook_endpoint::Entity)
        .cond_where(wanted)
        .to_owned();
    let mut insert = Query::insert();
    insert.into_table(webhook_delivery::Entity).columns([
        webhook_delivery::Column::EventId,
        webhook_delivery::Column::EndpointId,
        webhook_delivery::Column::EventType,
        webhook_delivery::Column::Payload,
        webhook_delivery::Column::CreatedAt,
        webhook_delivery::Column::Attempts,
        webhook_delivery::Column::NextAttemptAt,
    ]);
    // `select_from` refuses only a column count unlike the select's.
    insert
        .select_from(endpoints)
        .map_err(|e| DbErr::Custom(format!("the webhook outbox insert: {e}")))?;
    Ok(backend.build(&insert))
}

/// A new event id.
fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4().simple())
}

/// Put `event` in the outbox for every endpoint that wants it, on `conn`: pass the transaction
/// of the change the event reports, so that the event is committed with it or not at all.
/// Returns the event id (what receivers deduplicate on), or `None` when no endpoint wants the
/// event.
///
/// ```ignore
/// let txn = db.begin().await?;
/// // ... the change ...
/// webhooks::enqueue(&txn, &WebhookEvent::FollowerSubscribed { appid, open_id, account_id }, now).await?;
/// txn.commit().await?;
/// ```
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    event: &WebhookEvent,
    now: i64,
) -> Result<Option<String>, DbErr> {
    let type_name = event.type_name();
    let endpoints: Vec<i64> = webhook_endpoint::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .filter(|e| subscribed(&e.events, type_name))
        .map(|e| e.id)
        .collect();
    if endpoints.is_empty() {
        return Ok(None);
    }
    let event_id = new_event_id();
    let payload = event.body(&event_id, now);
    let rows = endpoints
        .into_iter()
        .map(|endpoint_id| webhook_delivery::ActiveModel {
            id: NotSet,
            event_id: Set(event_id.clone()),
            endpoint_id: Set(endpoint_id),
            event_type: Set(type_name.to_owned()),
            payload: Set(payload.clone()),
            created_at: Set(now),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            lease_owner: Set(None),
            delivered_at: Set(None),
            dead_at: Set(None),
            last_status: Set(None),
            last_error: Set(None),
        });
    webhook_delivery::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(Some(event_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_match_by_type_or_star() {
        assert!(subscribed("user.created user.merged", "user.merged"));
        assert!(!subscribed("user.created", "user.merged"));
        assert!(subscribed("*", "follower.subscribed"));
    }

    #[test]
    fn bodies_name_the_event_and_carry_ids_only() {
        let body: Value = serde_json::from_str(
            &WebhookEvent::UserMerged {
                survivor_id: 1,
                merged_id: 2,
            }
            .body("evt_1", 5),
        )
        .unwrap();
        assert_eq!(body["type"], "user.merged");
        assert_eq!(body["data"]["account_id"], 1);
        assert_eq!(body["data"]["merged_account_id"], 2);
    }
}
