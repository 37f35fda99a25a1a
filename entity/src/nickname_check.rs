//! A nickname WeChat's content security API could not be asked about yet: the janitor asks again.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nickname_check")]
pub struct Model {
    /// The account whose nickname waits (one check per account: a newer nickname replaces it).
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: i64,
    /// The Mini Program and the user's openid in it (`msg_sec_check` v2 names the user).
    pub appid: String,
    pub open_id: String,
    pub nick_name: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
