//! `auth_state`: the server side of the H5 two-hop authorization's `state` values. Only a keyed
//! hash of each value is stored; a row is spent by one conditional UPDATE (`consumed_at` set
//! where it is still NULL and not expired), so two callbacks with one state cannot both win.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Short keys (ids, hashes, appids) are bounded so that MySQL can index them.
const KEY: u32 = 128;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuthState::Table)
                .if_not_exists()
                .col(string_len(AuthState::StateHash, KEY).primary_key())
                .col(string_len(AuthState::Kind, 16))
                .col(string_len(AuthState::Appid, 32))
                .col(text(AuthState::NextUrl))
                .col(string_len_null(AuthState::EntryAppid, 32))
                .col(string_len_null(AuthState::EntryOpenId, KEY))
                .col(big_integer(AuthState::ExpiresAt))
                .col(big_integer_null(AuthState::ConsumedAt))
                .col(big_integer(AuthState::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_auth_state_expires_at")
                .table(AuthState::Table)
                .col(AuthState::ExpiresAt)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuthState::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuthState {
    Table,
    StateHash,
    Kind,
    Appid,
    NextUrl,
    EntryAppid,
    EntryOpenId,
    ExpiresAt,
    ConsumedAt,
    CreatedAt,
}
