//! Official Account follower status (issue 17 §3): the seed's `qrScene`, `qrSceneStr` and
//! `tagidList` beside the subscribe columns `wx_user` already has, and `wechat_message_receipt`,
//! one row per message WeChat pushed to an account's message URL, whose primary key makes a
//! retried push a unique-key conflict (WeChat retries three times when it gets no answer in 5 s).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum WxUser {
    Table,
    QrScene,
    QrSceneStr,
    TagidList,
}

#[derive(DeriveIden)]
enum WechatMessageReceipt {
    Table,
    ReceiptKey,
    Appid,
    ReceivedAt,
    ExpiresAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            ColumnDef::new(WxUser::QrScene)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(WxUser::QrSceneStr)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(WxUser::TagidList)
                .string_len(512)
                .null()
                .to_owned(),
        ] {
            let mut column = column;
            m.alter_table(
                Table::alter()
                    .table(WxUser::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(WechatMessageReceipt::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(WechatMessageReceipt::ReceiptKey)
                        .string_len(191)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(WechatMessageReceipt::Appid)
                        .string_len(32)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(WechatMessageReceipt::ReceivedAt)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(WechatMessageReceipt::ExpiresAt)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_wechat_message_receipt_expires_at")
                .table(WechatMessageReceipt::Table)
                .col(WechatMessageReceipt::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WechatMessageReceipt::Table).to_owned())
            .await?;
        for column in [WxUser::QrScene, WxUser::QrSceneStr, WxUser::TagidList] {
            m.alter_table(
                Table::alter()
                    .table(WxUser::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
