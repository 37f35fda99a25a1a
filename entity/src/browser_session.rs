//! A signed-in browser (the `wxauth_session` cookie): which account, how and when it signed in.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "browser_session")]
pub struct Model {
    /// Keyed hash of the cookie value.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub account_id: i64,
    /// How the user signed in (`wechat_web` or `wechat_qr`).
    pub method: String,
    pub auth_time: i64,
    pub expires_at: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
