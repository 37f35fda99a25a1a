//! A device authorization (RFC 8628): the device code and user code (keyed hashes), the client
//! and scope, the user's decision (`pending`, `approved`, `denied`, then `issued` once the device
//! took its tokens) and the polling interval the device must keep.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_authorization")]
pub struct Model {
    /// Keyed hash of the device code.
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_code_hash: String,
    /// Keyed hash of the normalised user code (unique).
    #[sea_orm(unique)]
    pub user_code_hash: String,
    pub client_id: String,
    #[sea_orm(column_type = "Text")]
    pub scope: String,
    /// `pending`, `approved`, `denied` or `issued`.
    pub status: String,
    /// The account that approved (or denied).
    pub account_id: Option<i64>,
    /// When that account signed in (OIDC `auth_time`).
    pub auth_time: Option<i64>,
    /// Seconds the device must wait between two polls (grows by 5 on `slow_down`).
    pub poll_interval: i32,
    pub last_polled_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
