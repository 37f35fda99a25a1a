//! The webhook outbox: one event for one endpoint, written in the transaction of the change it
//! reports, and where its delivery stands.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The event's id (one per event, the same for every endpoint and every attempt): what
    /// receivers deduplicate on.
    pub event_id: String,
    pub endpoint_id: i64,
    pub event_type: String,
    /// The JSON body posted (never a secret or a token).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub created_at: i64,
    pub attempts: i32,
    /// Not before this instant (unix seconds).
    pub next_attempt_at: i64,
    /// A worker holds the delivery until then.
    pub lease_until: Option<i64>,
    pub lease_owner: Option<String>,
    pub delivered_at: Option<i64>,
    /// Given up after the retry window.
    pub dead_at: Option<i64>,
    /// The receiver's last HTTP status (none when it could not be reached).
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
