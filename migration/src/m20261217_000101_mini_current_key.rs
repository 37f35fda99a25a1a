//! Each Mini Program identity's current session_key, by fingerprint: the key of its last sign-in.
//! A session is live only while it holds that key (or its identity has no row yet), so two
//! instances signing one person in at the same instant leave one live key whatever order their
//! writes interleave in: the row is one row, written by one statement at a time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MiniCurrentKey {
    Table,
    Appid,
    OpenId,
    SessionKeyHash,
    ExpiresAt,
}

/// As long as the other short keys (ids, hashes), so that MySQL can index them.
const KEY: u32 = 128;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MiniCurrentKey::Table)
                .if_not_exists()
                .col(string_len(MiniCurrentKey::Appid, 32))
                .col(string_len(MiniCurrentKey::OpenId, KEY))
                .col(string_len(MiniCurrentKey::SessionKeyHash, KEY))
                .col(big_integer(MiniCurrentKey::ExpiresAt))
                .primary_key(
                    Index::create()
                        .col(MiniCurrentKey::Appid)
                        .col(MiniCurrentKey::OpenId),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_mini_current_key_expires_at")
                .table(MiniCurrentKey::Table)
                .col(MiniCurrentKey::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(MiniCurrentKey::Table).to_owned())
            .await
    }
}
