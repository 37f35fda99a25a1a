//! Avatars people chose in the Mini Program (`chooseAvatar`), re-encoded by wxauth and kept in
//! the database so that every backend serves them with no other service. Rows are addressed by
//! the SHA-256 of their bytes, so the URL of one never changes and can be cached for good.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Avatar {
    Table,
    ContentHash,
    ContentType,
    Bytes,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // MySQL's BLOB holds 64 KiB; an avatar may be larger.
        let mut bytes = ColumnDef::new(Avatar::Bytes);
        bytes.not_null();
        if m.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::MySql {
            bytes.custom(Alias::new("MEDIUMBLOB"));
        } else {
            bytes.blob();
        }
        m.create_table(
            Table::create()
                .table(Avatar::Table)
                .if_not_exists()
                .col(string_len(Avatar::ContentHash, 64).primary_key())
                .col(string_len(Avatar::ContentType, 32))
                .col(bytes)
                .col(big_integer(Avatar::CreatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Avatar::Table).to_owned())
            .await
    }
}
