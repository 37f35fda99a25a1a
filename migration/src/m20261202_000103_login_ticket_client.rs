//! A login ticket may name the client that can redeem it (`clientId` at `/api/wechat/ma/session`
//! and `entryBuildUrl`); the `flow` grant refuses it for any other.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The length of a client id (as `oauth_client.client_id`).
const KEY: u32 = 128;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(LoginTicket::Table)
                .add_column(string_len_null(LoginTicket::ClientId, KEY))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(LoginTicket::Table)
                .drop_column(LoginTicket::ClientId)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum LoginTicket {
    Table,
    ClientId,
}
