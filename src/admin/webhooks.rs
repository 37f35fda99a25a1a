//! Webhook endpoints as administrators manage them: register one (its signing secret is shown
//! once, then kept sealed by the vault), list them with their delivery counts, remove one, and
//! read the deliveries, the dead ones above all (what the console shows).

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::Serialize;

use entity::{webhook_delivery, webhook_endpoint};

use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::secret::Secret;
use crate::vault::random_token;
use crate::webhooks::delivery::secret_at;
use crate::webhooks::signature::SECRET_PREFIX;
use crate::webhooks::{ALL_EVENTS, EVENT_TYPES};

use super::{Actor, Admin, AdminError, MAX_PAGE};

/// A receiver to register.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    /// An absolute `https://` URL (or `http://` for a receiver on the same network).
    pub url: String,
    /// The event types it wants (see [`EVENT_TYPES`]), or `*` for all.
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// A registered receiver (never its secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub created_at: i64,
    /// Deliveries still to be made (including retries).
    pub pending: u64,
    /// Deliveries given up after the retry window.
    pub dead: u64,
}

/// A receiver just registered, with its signing secret: shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The HMAC key of `Wxauth-Signature` (`whsec_…`). Not shown again.
    pub secret: String,
}

/// Where deliveries stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

/// One event for one endpoint, and how its delivery went.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    /// The event id receivers deduplicate on.
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: i64,
    /// `pending`, `delivered` or `dead`.
    pub status: &'static str,
    pub created_at: i64,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub dead_at: Option<i64>,
    /// The receiver's last HTTP status (none when it could not be reached).
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

fn delivery_view(m: webhook_delivery::Model) -> DeliveryView {
    let status = if m.delivered_at.is_some() {
        DeliveryStatus::Delivered
    } else if m.dead_at.is_some() {
        DeliveryStatus::Dead
    } else {
        DeliveryStatus::Pending
    };
    DeliveryView {
        id: m.id,
        event_id: m.event_id,
        event_type: m.event_type,
        endpoint_id: m.endpoint_id,
        status: status.as_str(),
        created_at: m.created_at,
        attempts: m.attempts,
        next_attempt_at: (status == DeliveryStatus::Pending).then_some(m.next_attempt_at),
        delivered_at: m.delivered_at,
        dead_at: m.dead_at,
        last_status: m.last_status,
        last_error: m.last_error,
    }
}

/// The event list as stored: known types (or `*`), deduplicated, space-separated.
fn stored_events(events: &[String]) -> Result<String, AdminError> {
    let mut kept: Vec<&str> = Vec::new();
    for event in events.iter().flat_map(|e| e.split([',', ' '])) {
        let event = event.trim();
        if event.is_empty() {
            continue;
        }
        if event != ALL_EVENTS && !EVENT_TYPES.contains(&event) {
            return Err(AdminError::invalid(
                "events",
                format!(
                    "unknown event {event:?}; expected * or some of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !kept.contains(&event) {
            kept.push(event);
        }
    }
    if kept.is_empty() {
        return Err(AdminError::invalid(
            "events",
            format!("name at least one event: * or {}", EVENT_TYPES.join(", ")),
        ));
    }
    Ok(kept.join(" "))
}

fn receiver_url(text: &str) -> Result<String, AdminError> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| AdminError::invalid("url", format!("not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(AdminError::invalid(
            "url",
            "must be an http(s) URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AdminError::invalid(
            "url",
            "must not carry credentials: receivers check the signature instead",
        ));
    }
    if url.as_str().len() > 2000 {
        return Err(AdminError::invalid(
            "url",
            "must be at most 2000 characters",
        ));
    }
    Ok(url.to_string())
}

impl Admin {
    /// Register a receiver. Its signing secret is generated here and returned this once.
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        new: NewWebhook,
    ) -> Result<CreatedWebhook, AdminError> {
        let url = receiver_url(&new.url)?;
        let events = stored_events(&new.events)?;
        let description = match new.description.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d) if d.chars().count() > 200 => {
                return Err(AdminError::invalid(
                    "description",
                    "must be at most 200 characters",
                ));
            }
            Some(d) => Some(d.to_owned()),
        };
        let secret = Secret::new(format!("{SECRET_PREFIX}{}", random_token(32)));
        let now = self.clock.now();
        // The secret is sealed to the row's id, known once the row exists: insert, then seal.
        let txn = self.db.begin().await?;
        let inserted = webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel {
            id: NotSet,
            url: Set(url),
            events: Set(events),
            secret_enc: Set(String::new()),
            description: Set(description),
            created_at: Set(now),
        })
        .exec(&txn)
        .await?;
        let id = inserted.last_insert_id;
        let sealed = self.vault.seal(secret.expose(), secret_at(&id.to_string()));
        webhook_endpoint::Entity::update(webhook_endpoint::ActiveModel {
            id: Set(id),
            secret_enc: Set(sealed),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        self.record(
            actor,
            AuditEvent::new(AuditKind::WebhookChanged, Outcome::Ok).subject(id.to_string()),
            "create",
        )
        .await;
        Ok(CreatedWebhook {
            webhook: self.webhook(id).await?,
            secret: secret.expose().to_owned(),
        })
    }

    async fn webhook(&self, id: i64) -> Result<WebhookView, AdminError> {
        let row = webhook_endpoint::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no webhook {id}")))?;
        self.webhook_view(row).await
    }

    async fn webhook_view(&self, row: webhook_endpoint::Model) -> Result<WebhookView, AdminError> {
        let of_endpoint = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::EndpointId.eq(row.id))
            .filter(webhook_delivery::Column::DeliveredAt.is_null());
        let pending = of_endpoint
            .clone()
            .filter(webhook_delivery::Column::DeadAt.is_null())
            .count(&self.db)
            .await?;
        let dead = of_endpoint
            .filter(webhook_delivery::Column::DeadAt.is_not_null())
            .count(&self.db)
            .await?;
        Ok(WebhookView {
            id: row.id,
            url: row.url,
            events: row.events.split_whitespace().map(str::to_owned).collect(),
            description: row.description,
            created_at: row.created_at,
            pending,
            dead,
        })
    }

    /// Every registered receiver, oldest first.
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookView>, AdminError> {
        let rows = webhook_endpoint::Entity::find()
            .order_by_asc(webhook_endpoint::Column::Id)
            .all(&self.db)
            .await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.webhook_view(row).await?);
        }
        Ok(views)
    }

    /// Remove a receiver and the deliveries still waiting for it.
    pub async fn remove_webhook(&self, actor: &Actor, id: i64) -> Result<(), AdminError> {
        let txn = self.db.begin().await?;
        let gone = webhook_endpoint::Entity::delete_by_id(id)
            .exec(&txn)
            .await?;
        if gone.rows_affected == 0 {
            return Err(AdminError::NotFound(format!("no webhook {id}")));
        }
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.record(
            actor,
            AuditEvent::new(AuditKind::WebhookChanged, Outcome::Ok).subject(id.to_string()),
            "remove",
        )
        .await;
        Ok(())
    }

    /// Deliveries, newest first: all, or those in `status` (at most `limit`, itself at most
    /// [`MAX_PAGE`]).
    pub async fn webhook_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u64,
    ) -> Result<Vec<DeliveryView>, AdminError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AdminError::invalid(
                "limit",
                format!("must be from 1 to {MAX_PAGE}"),
            ));
        }
        let mut select = webhook_delivery::Entity::find();
        select = match status {
            None => select,
            Some(DeliveryStatus::Delivered) => {
                select.filter(webhook_delivery::Column::DeliveredAt.is_not_null())
            }
            Some(DeliveryStatus::Dead) => select
                .filter(webhook_delivery::Column::DeliveredAt.is_null())
                .filter(webhook_delivery::Column::DeadAt.is_not_null()),
            Some(DeliveryStatus::Pending) => select
                .filter(webhook_delivery::Column::DeliveredAt.is_null())
                .filter(webhook_delivery::Column::DeadAt.is_null()),
        };
        Ok(select
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(delivery_view)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_and_kept_once() {
        assert_eq!(
            stored_events(&["user.created,user.merged".into(), "user.created".into()]).unwrap(),
            "user.created user.merged"
        );
        assert!(stored_events(&["user.nope".into()]).is_err());
        assert!(stored_events(&[]).is_err());
    }

    #[test]
    fn receiver_urls_are_http_without_credentials() {
        assert!(receiver_url("https://crm.example.com/hook").is_ok());
        assert!(receiver_url("ftp://crm.example.com/hook").is_err());
        assert!(receiver_url("https://u:p@crm.example.com/hook").is_err());
    }
}
