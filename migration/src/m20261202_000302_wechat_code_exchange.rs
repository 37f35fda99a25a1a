//! One row per `wx.login` code being exchanged, so that the same code sent twice at once (WeChat
//! clients retry) is exchanged with WeChat once and both requests get the same answer, across
//! instances. The row holds the sealed outcome for a short window, then the janitor removes it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WechatCodeExchange::Table)
                .if_not_exists()
                .col(string_len(WechatCodeExchange::CodeHash, 128).primary_key())
                .col(string_len(WechatCodeExchange::Owner, 64))
                .col(text_null(WechatCodeExchange::OutcomeEnc))
                .col(big_integer(WechatCodeExchange::CreatedAt))
                .col(big_integer(WechatCodeExchange::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_wechat_code_exchange_expires_at")
                .table(WechatCodeExchange::Table)
                .col(WechatCodeExchange::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WechatCodeExchange::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WechatCodeExchange {
    Table,
    CodeHash,
    Owner,
    OutcomeEnc,
    CreatedAt,
    ExpiresAt,
}
