//! An audit record of a security-relevant event: sign-ins, token issuance, refusals that look
//! like attacks, and every administrative change. Nothing in it is a secret.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_event")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// What happened (`sign_in`, `token_issued`, `refresh_reuse` …).
    pub kind: String,
    /// `ok`, `refused` or `failed`.
    pub outcome: String,
    pub client_id: Option<String>,
    /// The account (flow_user id) the event is about.
    pub account_id: Option<i64>,
    /// What else the event is about (an appid, a key id, a channel).
    pub subject: Option<String>,
    /// The client's IP address, for events a request caused.
    pub ip: Option<String>,
    /// Who made an administrative change (`cli:alice`, `admin-token`, `account:7`).
    pub actor: Option<String>,
    /// A small JSON object with the rest (never a secret).
    #[sea_orm(column_type = "Text")]
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
