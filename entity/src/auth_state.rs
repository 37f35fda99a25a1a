//! A pending step of the H5 two-hop authorization, found by the keyed hash of its `state` value.
//! `kind` is `entry` (silent hop on the entry account) or `base` (userinfo hop on the base
//! account, carrying the entry identity server-side).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub state_hash: String,
    pub kind: String,
    /// The account this hop authorizes with (entry account, then base account).
    pub appid: String,
    #[sea_orm(column_type = "Text")]
    pub next_url: String,
    pub entry_appid: Option<String>,
    pub entry_open_id: Option<String>,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    pub created_at: i64,
    /// Keyed hash of the cookie of the browser that started the sign-in, when bound to one.
    pub browser_hash: Option<String>,
    /// H5: the client the sign-in's login ticket is for (from `entryBuildUrl`'s `clientId`).
    pub client_id: Option<String>,
    /// H5: the page's `nonce` from `entryBuildUrl`, returned unchanged in the final redirect.
    pub nonce: Option<String>,
    /// The client IP that asked for the state (for the per-IP cap on live states).
    pub client_ip: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
