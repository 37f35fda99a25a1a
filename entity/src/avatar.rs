//! An avatar a person chose, as wxauth re-encoded it, addressed by the SHA-256 of its bytes.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "avatar")]
pub struct Model {
    /// Lowercase hex SHA-256 of `bytes`: the avatar's URL names it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub content_hash: String,
    /// `image/jpeg`.
    pub content_type: String,
    #[sea_orm(column_type = "Blob")]
    pub bytes: Vec<u8>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
