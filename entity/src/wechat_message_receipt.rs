//! A message WeChat pushed to an Official Account's message URL, kept for a while so that
//! WeChat's retries of it are recognised (the primary key makes a retry a unique-key conflict).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_message_receipt")]
pub struct Model {
    /// `{appid}:msg:{MsgId}` or `{appid}:evt:{FromUserName}:{CreateTime}:{Event}`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub receipt_key: String,
    pub appid: String,
    pub received_at: i64,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
