//! A protected resource (an API) that access tokens may be issued for (RFC 8707).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resource")]
pub struct Model {
    /// The resource indicator: an absolute URI without a fragment; the tokens' `aud`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub identifier: String,
    pub display_name: Option<String>,
    /// Space-separated scopes the resource accepts.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
