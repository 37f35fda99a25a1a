//! Login tickets of a second kind: `web_view`, minted for a Mini Program's `<web-view>` page,
//! which redeems it with the ticket alone (the identity is the ticket's). Existing tickets are
//! `login` tickets, redeemed with the identity they vouch for.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginTicket {
    Table,
    Kind,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(LoginTicket::Table)
                .add_column(string_len(LoginTicket::Kind, 16).default("login"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(LoginTicket::Table)
                .drop_column(LoginTicket::Kind)
                .to_owned(),
        )
        .await
    }
}
