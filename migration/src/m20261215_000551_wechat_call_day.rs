//! Calls to WeChat per app and day (issue 14): what the admin API and the console show as an
//! app's "calls and errors today". Each instance counts in memory and adds its counts to the
//! row every few seconds, so several instances sum into one row without a write per call.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WechatCallDay {
    Table,
    Appid,
    Day,
    Calls,
    Errors,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WechatCallDay::Table)
                .if_not_exists()
                .col(string_len(WechatCallDay::Appid, 32))
                .col(big_integer(WechatCallDay::Day))
                .col(big_integer(WechatCallDay::Calls).default(0))
                .col(big_integer(WechatCallDay::Errors).default(0))
                .col(big_integer(WechatCallDay::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(WechatCallDay::Appid)
                        .col(WechatCallDay::Day),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WechatCallDay::Table).to_owned())
            .await
    }
}
