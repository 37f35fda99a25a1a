//! Nicknames checked with WeChat's content security API (`wxa/msg_sec_check`): the account says
//! how its nickname fared (`nick_name_status`: `review` when WeChat asked for a human look,
//! `pending` while WeChat could not be asked), and `nickname_check` queues the nicknames the
//! janitor asks WeChat about again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FlowUser {
    Table,
    NickNameStatus,
}

#[derive(DeriveIden)]
enum NicknameCheck {
    Table,
    AccountId,
    Appid,
    OpenId,
    NickName,
    Attempts,
    NextAttemptAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(FlowUser::Table)
                .add_column(string_len_null(FlowUser::NickNameStatus, 16))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NicknameCheck::Table)
                .if_not_exists()
                .col(big_integer(NicknameCheck::AccountId).primary_key())
                .col(string_len(NicknameCheck::Appid, 32))
                .col(string_len(NicknameCheck::OpenId, 128))
                .col(string_len(NicknameCheck::NickName, 255))
                .col(integer(NicknameCheck::Attempts).default(0))
                .col(big_integer(NicknameCheck::NextAttemptAt))
                .col(big_integer(NicknameCheck::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_nickname_check_next_attempt_at")
                .table(NicknameCheck::Table)
                .col(NicknameCheck::NextAttemptAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(NicknameCheck::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(FlowUser::Table)
                .drop_column(FlowUser::NickNameStatus)
                .to_owned(),
        )
        .await
    }
}
