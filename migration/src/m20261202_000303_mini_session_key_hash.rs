//! A Mini Program session remembers a keyed fingerprint of its WeChat session_key, so that a new
//! `wx.login` ends only the identity's sessions that hold another key: the two answers to one
//! repeated code carry the same key and both stay usable.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(MiniSession::Table)
                .add_column(string_len_null(MiniSession::SessionKeyHash, 128))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(MiniSession::Table)
                .drop_column(MiniSession::SessionKeyHash)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum MiniSession {
    Table,
    SessionKeyHash,
}
