//! H5 sign-in states carry the client the login ticket is for and the page's own `nonce` from
//! `entryBuildUrl` through both hops, server-side like the rest of the state.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The length of a client id (as `oauth_client.client_id`).
const KEY: u32 = 128;
/// Room for the longest `nonce` a page may pass (128 printable ASCII characters).
const NONCE: u32 = 255;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        m.alter_table(
            Table::alter()
                .table(AuthState::Table)
                .add_column(string_len_null(AuthState::ClientId, KEY))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AuthState::Table)
                .add_column(string_len_null(AuthState::Nonce, NONCE))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [AuthState::ClientId, AuthState::Nonce] {
            m.alter_table(
                Table::alter()
                    .table(AuthState::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AuthState {
    Table,
    ClientId,
    Nonce,
}
