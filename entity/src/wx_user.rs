//! One WeChat identity (the seed's wxuser): an openid under one app, with its unionid and profile.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wx_user")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub appid: String,
    pub open_id: String,
    pub union_id: Option<String>,
    pub flow_user_id: Option<i64>,
    pub mobile: Option<String>,
    /// Where `mobile` came from: `code_api` or `encrypted_data`.
    pub mobile_source: Option<String>,
    /// When `mobile` was verified (unix seconds).
    pub mobile_verified_at: Option<i64>,
    pub nick_name: Option<String>,
    pub sex: Option<i32>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub avatar_url: Option<String>,
    pub language: Option<String>,
    pub subscribe_flag: Option<i32>,
    pub subscribe_time: Option<i64>,
    pub subscribe_scene: Option<String>,
    /// The numeric scene of the parametric QR code the user followed through.
    pub qr_scene: Option<i64>,
    /// The string scene of the parametric QR code the user followed through.
    pub qr_scene_str: Option<String>,
    /// The account's tags on the follower, as a JSON array of tag ids (`[2,101]`).
    pub tagid_list: Option<String>,
    pub last_login_time: Option<i64>,
    pub create_time: i64,
    pub update_time: i64,
    pub del_flag: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::flow_user::Entity",
        from = "Column::FlowUserId",
        to = "super::flow_user::Column::Id"
    )]
    FlowUser,
}

impl Related<super::flow_user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FlowUser.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
