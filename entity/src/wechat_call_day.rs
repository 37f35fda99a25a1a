//! Calls wxauth made to WeChat for one app on one day (Beijing time, when WeChat's daily quotas
//! reset), summed over every instance.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_call_day")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub appid: String,
    /// Days since 1970-01-01 in Beijing time (UTC+8).
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: i64,
    pub calls: i64,
    pub errors: i64,
    /// Unix seconds of the last addition.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
