//! A merge of two accounts that turned out to be one person (a unionid arrived late): pending
//! an administrator's decision under `WXAUTH_MERGE_POLICY=queue`, or decided.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account_merge")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The older account, which keeps everything.
    pub survivor_id: i64,
    /// The account merged into it.
    pub merged_id: i64,
    pub union_id: String,
    /// `pending`, `merged` or `rejected`.
    pub status: String,
    pub requested_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
