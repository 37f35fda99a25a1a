//! A single-use login ticket: proof that WeChat vouched for an identity moments ago.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_ticket")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ticket_hash: String,
    pub appid: String,
    pub open_id: String,
    pub union_id: Option<String>,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub created_at: i64,
    /// The client that may redeem it; `None`: any client allowed the `flow` grant.
    pub client_id: Option<String>,
    /// `login` (redeemed with the identity it vouches for) or `web_view` (redeemed alone, by the
    /// page a Mini Program opened in its `<web-view>`).
    pub kind: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
