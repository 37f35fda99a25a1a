//! The delivery worker: every server runs one. It claims a due outbox row with one conditional
//! UPDATE that also sets a lease (so several instances never post the same row at once, and a
//! row whose worker died is taken up again when the lease runs out), posts it signed, and
//! records the outcome: delivered, retried after an exponential back-off, or dead once the
//! event is older than [`RETRY_WINDOW_SECS`]. Delivery is at least once: a receiver that
//! answered 2xx but whose answer was lost gets the event again, with the same event id.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use entity::{webhook_delivery, webhook_endpoint};

use crate::clock::SharedClock;
use crate::vault::{SealedAt, Vault};

use super::signature::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign};

/// How long an event is retried before its delivery is marked dead: 24 hours.
pub const RETRY_WINDOW_SECS: i64 = 86_400;
/// How long a claim holds a delivery (longer than one attempt can take).
pub const LEASE_SECS: i64 = 30;
/// The wait after the first failure; it doubles with each failure up to [`MAX_BACKOFF_SECS`].
pub const FIRST_BACKOFF_SECS: i64 = 10;
pub const MAX_BACKOFF_SECS: i64 = 3_600;
/// How long one POST may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle worker looks for due deliveries.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The most of a receiver's error kept for the console.
const MAX_ERROR_CHARS: usize = 200;

/// Where the sealed secret of endpoint `id` is stored.
pub fn secret_at(id: &str) -> SealedAt<'_> {
    SealedAt::new("webhook_endpoint", "secret_enc", id)
}

/// The wait after `failures` failed attempts.
pub fn backoff(failures: i32) -> i64 {
    let doublings = failures.saturating_sub(1).clamp(0, 20) as u32;
    std::cmp::min(
        FIRST_BACKOFF_SECS.saturating_mul(1_i64 << doublings),
        MAX_BACKOFF_SECS,
    )
}

/// What one attempt came to.
enum Attempt {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

/// Posts due outbox rows.
#[derive(Clone)]
pub struct Deliverer {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    http: reqwest::Client,
    /// This worker's name in the leases it takes.
    owner: String,
}

impl Deliverer {
    pub fn new(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
    ) -> Result<Self, reqwest::Error> {
        // A receiver's redirect is not followed: the delivery goes where it was registered.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent("wxauth-webhooks")
            .build()?;
        Ok(Self {
            db,
            vault,
            clock,
            http,
            owner: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// Deliver until dropped: everything due, then a short pause.
    pub async fn run(self) {
        loop {
            loop {
                match self.deliver_next().await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        tracing::warn!(%error, "webhook delivery failed to read the outbox");
                        break;
                    }
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Claim one due delivery and attempt it; `false` when nothing was due.
    pub async fn deliver_next(&self) -> Result<bool, DbErr> {
        let now = self.clock.now();
        let candidates: Vec<i64> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .filter(due(now))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .order_by_asc(webhook_delivery::Column::Id)
            .limit(8)
            .into_tuple()
            .all(&self.db)
            .await?;
        for id in candidates {
            if let Some(row) = self.claim(id, now).await? {
                self.attempt(row).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Take delivery `id` if it is still due and unclaimed: one conditional UPDATE, so of
    /// several workers exactly one gets it.
    async fn claim(&self, id: i64, now: i64) -> Result<Option<webhook_delivery::Model>, DbErr> {
        let claimed = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::LeaseUntil,
                Expr::value(now + LEASE_SECS),
            )
            .col_expr(
                webhook_delivery::Column::LeaseOwner,
                Expr::value(self.owner.clone()),
            )
            .filter(webhook_delivery::Column::Id.eq(id))
            .filter(due(now))
            .exec(&self.db)
            .await?;
        if claimed.rows_affected != 1 {
            return Ok(None);
        }
        webhook_delivery::Entity::find_by_id(id).one(&self.db).await
    }

    async fn attempt(&self, row: webhook_delivery::Model) -> Result<(), DbErr> {
        let endpoint = webhook_endpoint::Entity::find_by_id(row.endpoint_id)
            .one(&self.db)
            .await?;
        let outcome = match endpoint {
            None => Attempt::Failed {
                status: None,
                error: "the endpoint was removed".into(),
            },
            Some(endpoint) => self.post(&endpoint, &row).await,
        };
        self.record(&row, outcome).await
    }

    async fn post(
        &self,
        endpoint: &webhook_endpoint::Model,
        row: &webhook_delivery::Model,
    ) -> Attempt {
        let id = endpoint.id.to_string();
        let secret = match self.vault.open(&endpoint.secret_enc, secret_at(&id)) {
            Ok(secret) => secret,
            Err(error) => {
                tracing::error!(endpoint = endpoint.id, %error, "webhook secret does not open");
                return Attempt::Failed {
                    status: None,
                    error: "the endpoint's secret does not open with this master key".into(),
                };
            }
        };
        let timestamp = self.clock.now();
        let signature = sign(&secret, timestamp, row.payload.as_bytes());
        let sent = self
            .http
            .post(&endpoint.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, &row.event_id)
            .header(EVENT_TYPE_HEADER, &row.event_type)
            .body(row.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Attempt::Delivered(response.status().as_u16())
            }
            Ok(response) => Attempt::Failed {
                status: Some(response.status().as_u16()),
                error: format!("the receiver answered {}", response.status()),
            },
            Err(error) => {
                // reqwest's error names the URL, which the operator registered; no secret.
                let error = error.without_url();
                Attempt::Failed {
                    status: None,
                    error: format!("the receiver could not be reached: {error}"),
                }
            }
        }
    }

    /// Record `outcome` on `row` and let go of its lease.
    async fn record(&self, row: &webhook_delivery::Model, outcome: Attempt) -> Result<(), DbErr> {
        let now = self.clock.now();
        let attempts = row.attempts.saturating_add(1);
        let mut update = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
            .col_expr(
                webhook_delivery::Column::LeaseUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                webhook_delivery::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            );
        match outcome {
            Attempt::Delivered(status) => {
                update = update
                    .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(now))
                    .col_expr(
                        webhook_delivery::Column::LastStatus,
                        Expr::value(i32::from(status)),
                    )
                    .col_expr(
                        webhook_delivery::Column::LastError,
                        Expr::value(Option::<String>::None),
                    );
            }
            Attempt::Failed { status, error } => {
                let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
                tracing::debug!(delivery = row.id, attempts, %error, "webhook attempt failed");
                update = update
                    .col_expr(
                        webhook_delivery::Column::LastStatus,
                        Expr::value(status.map(i32::from)),
                    )
                    .col_expr(webhook_delivery::Column::LastError, Expr::value(error));
                update = if now >= row.created_at.saturating_add(RETRY_WINDOW_SECS) {
                    tracing::warn!(
                        delivery = row.id,
                        event = %row.event_id,
                        "webhook delivery is dead after the retry window"
                    );
                    update.col_expr(webhook_delivery::Column::DeadAt, Expr::value(now))
                } else {
                    update.col_expr(
                        webhook_delivery::Column::NextAttemptAt,
                        Expr::value(now.saturating_add(backoff(attempts))),
                    )
                };
            }
        }
        update
            .filter(webhook_delivery::Column::Id.eq(row.id))
            .filter(webhook_delivery::Column::LeaseOwner.eq(self.owner.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// Deliveries that may be attempted at `now`: not delivered, not dead, due, and not held by a
/// live lease.
fn due(now: i64) -> Condition {
    Condition::all()
        .add(webhook_delivery::Column::DeliveredAt.is_null())
        .add(webhook_delivery::Column::DeadAt.is_null())
        .add(webhook_delivery::Column::NextAttemptAt.lte(now))
        .add(
            Condition::any()
                .add(webhook_delivery::Column::LeaseUntil.is_null())
                .add(webhook_delivery::Column::LeaseUntil.lt(now)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(2), 20);
        assert_eq!(backoff(3), 40);
        assert_eq!(backoff(30), MAX_BACKOFF_SECS);
    }
}
