//! A `wx.login` code being exchanged (or just exchanged) with WeChat, found by the keyed hash of
//! the code: the instance that inserted the row (`owner`) calls WeChat and stores the sealed
//! outcome; a request with the same code at the same moment, on any instance, waits for it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_code_exchange")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code_hash: String,
    /// Which exchange (instance and request) is calling WeChat.
    pub owner: String,
    /// The sealed outcome, once known.
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome_enc: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
