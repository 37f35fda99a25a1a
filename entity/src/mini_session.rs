//! A Mini Program session: the session_key WeChat gave for one (appid, openid), sealed at rest.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mini_session")]
pub struct Model {
    /// Keyed hash of the opaque session id handed to the Mini Program.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub appid: String,
    pub open_id: String,
    pub union_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub session_key_enc: String,
    /// Keyed fingerprint of the session_key: a new `wx.login` ends the sessions holding another
    /// key, not those holding the same one (the answers to one repeated code).
    pub session_key_hash: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    /// Decryptions under this session_key that failed (the session ends at the cap).
    pub decrypt_failures: i32,
    /// Decryptions under way (reserved, not yet known to succeed or fail).
    pub decrypt_pending: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
