//! A JWT signing key; the private half is sealed with the master key.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    pub alg: String,
    #[sea_orm(column_type = "Text")]
    pub private_key_enc: String,
    /// The public JWK (JSON), empty for HS256.
    #[sea_orm(column_type = "Text")]
    pub public_jwk: String,
    pub created_at: i64,
    /// A staged key signs only from this instant (published in the JWKS before); `None`: at once.
    pub activates_at: Option<i64>,
    /// When a newer key took over signing.
    pub retired_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
