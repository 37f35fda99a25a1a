//! Sign-in states remember the client IP that asked for them, so that one address can hold only
//! a bounded number of live states (`WXAUTH_LIVE_STATES_PER_IP`), counted on this index.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AuthState::Table)
                .add_column(string_len_null(AuthState::ClientIp, 45))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_auth_state_client_ip")
                .table(AuthState::Table)
                .col(AuthState::ClientIp)
                .col(AuthState::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_auth_state_client_ip")
                .table(AuthState::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AuthState::Table)
                .drop_column(AuthState::ClientIp)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum AuthState {
    Table,
    ClientIp,
    ExpiresAt,
}
