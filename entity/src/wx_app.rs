//! A WeChat application wxauth talks to: a Mini Program, an Official Account, an Open Platform
//! component (third-party platform) or a website app.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wx_app")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub appid: String,
    /// `mini_program`, `official_account`, `component` or `website`.
    pub kind: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub secret_enc: Option<String>,
    pub component_appid: Option<String>,
    pub is_base: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub token_enc: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub aes_key_enc: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub authorizer_refresh_token_enc: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
