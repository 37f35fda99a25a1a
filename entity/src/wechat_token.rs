//! A cached upstream WeChat token (app, component or authorizer access token, or an account's
//! jsapi_ticket) and its refresh lease.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_token")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `access_token`, `component_access_token`, `authorizer_access_token` or `jsapi_ticket`.
    pub kind: String,
    pub appid: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub value_enc: Option<String>,
    pub expires_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub updated_at: i64,
    /// When a forced refresh (the credential broker's `force`) last dropped this token (unix
    /// seconds; 0 for never).
    pub forced_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
