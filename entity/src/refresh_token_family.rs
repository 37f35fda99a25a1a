//! A refresh-token family: every token rotated from one grant. It expires at a fixed instant
//! (never sliding) and, once revoked, no token of it works again.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_token_family")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub family_id: String,
    pub client_id: String,
    /// The resource owner: a flow_user id, or the client id for client-only grants.
    pub owner_id: String,
    pub created_at: i64,
    /// The absolute end of the family: no token of it lives past this instant.
    pub expires_at: i64,
    /// When a token of the family was last exchanged for a new one.
    pub last_rotated_at: Option<i64>,
    /// Set when the family was revoked (reuse, code replay, revocation, sign-out).
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
