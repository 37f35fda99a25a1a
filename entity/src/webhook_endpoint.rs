//! A webhook receiver: where events are posted, which events it wants, and the secret its
//! deliveries are signed with (sealed by the vault, bound to this row).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoint")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// Event types separated by spaces (`user.created user.merged`), or `*` for every event.
    #[sea_orm(column_type = "Text")]
    pub events: String,
    /// The signing secret, sealed at (`webhook_endpoint`, `secret_enc`, id).
    #[sea_orm(column_type = "Text")]
    pub secret_enc: String,
    pub description: Option<String>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
