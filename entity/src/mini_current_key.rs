//! A Mini Program identity's current session_key, by its keyed fingerprint: the key its last
//! sign-in got from WeChat. Its sessions holding another key are ended, whatever is left of them
//! in `mini_session`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mini_current_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub appid: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub open_id: String,
    /// The keyed fingerprint of the session_key (as `mini_session.session_key_hash`).
    pub session_key_hash: String,
    /// When the last session holding it ends (unix seconds); the janitor removes the row after.
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
