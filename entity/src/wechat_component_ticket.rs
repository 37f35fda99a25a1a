//! The last good component_verify_ticket pushed by WeChat for an Open Platform component.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_component_ticket")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub component_appid: String,
    #[sea_orm(column_type = "Text")]
    pub ticket_enc: String,
    pub received_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
