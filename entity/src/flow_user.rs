//! The account (the seed's flowUser): one person, unified across apps by unionid.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_user")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub union_id: Option<String>,
    pub nick_name: Option<String>,
    /// How WeChat's content security check of `nick_name` fared when it was not a plain pass:
    /// `review` (stored, flagged for a human look) or `pending` (WeChat could not be asked yet).
    pub nick_name_status: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub avatar: Option<String>,
    pub mobile: Option<String>,
    /// Where `mobile` came from: `code_api` or `encrypted_data`.
    pub mobile_source: Option<String>,
    /// When `mobile` was verified (unix seconds).
    pub mobile_verified_at: Option<i64>,
    /// `mobile` without its country code, as WeChat's code API gave it.
    pub mobile_pure: Option<String>,
    /// `mobile`'s country code (`86`), as WeChat's code API gave it.
    pub mobile_country_code: Option<String>,
    pub created_at: i64,
    /// When an administrator disabled the account; `None` while it is enabled.
    pub disabled_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::wx_user::Entity")]
    WxUser,
}

impl Related<super::wx_user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WxUser.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
