//! A refresh token (stored hashed) and the family it belongs to, for rotation and reuse detection.
//! The family's own row is `refresh_token_family`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_token")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    /// The resource owner: a flow_user id, or the client id for client-only grants.
    pub owner_id: String,
    pub scope: String,
    /// JSON of extra grant data (e.g. auth_time, the code it came from).
    #[sea_orm(column_type = "Text")]
    pub extensions: String,
    pub expires_at: i64,
    pub created_at: i64,
    /// Set when the token was exchanged for a new one.
    pub rotated_at: Option<i64>,
    /// Set when its family was revoked.
    pub revoked_at: Option<i64>,
    /// The access token issued together with this refresh token (denied when the family is
    /// revoked), and when it expires.
    pub access_jti: Option<String>,
    pub access_expires_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The family the token belongs to (a join only; there is no foreign key).
    #[sea_orm(
        belongs_to = "super::refresh_token_family::Entity",
        from = "Column::FamilyId",
        to = "super::refresh_token_family::Column::FamilyId"
    )]
    Family,
}

impl Related<super::refresh_token_family::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Family.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
