//! Refresh-token families get a row of their own: the client and owner, when the family began,
//! an absolute expiry it never slides past, when a token of it was last rotated, and a revoked
//! mark that rotation checks in the same conditional statement that spends a token. Each refresh token also records the access token
//! issued beside it (`access_jti`, `access_expires_at`), so that revoking a family can deny what
//! it produced.
//!
//! Existing families are carried over: one row per `family_id` found in `refresh_token`, expiring
//! with the latest of its tokens and revoked if its tokens were.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Short keys (ids, hashes) are bounded so that MySQL can index them.
const KEY: u32 = 128;

#[derive(DeriveIden)]
enum RefreshTokenFamily {
    Table,
    FamilyId,
    ClientId,
    OwnerId,
    CreatedAt,
    ExpiresAt,
    LastRotatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RefreshToken {
    Table,
    FamilyId,
    ClientId,
    OwnerId,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    AccessJti,
    AccessExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RefreshTokenFamily::Table)
                .if_not_exists()
                .col(string_len(RefreshTokenFamily::FamilyId, KEY).primary_key())
                .col(string_len(RefreshTokenFamily::ClientId, KEY))
                .col(string_len(RefreshTokenFamily::OwnerId, KEY))
                .col(big_integer(RefreshTokenFamily::CreatedAt))
                .col(big_integer(RefreshTokenFamily::ExpiresAt))
                .col(big_integer_null(RefreshTokenFamily::LastRotatedAt))
                .col(big_integer_null(RefreshTokenFamily::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_refresh_token_family_expires_at")
                .table(RefreshTokenFamily::Table)
                .col(RefreshTokenFamily::ExpiresAt)
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        m.alter_table(
            Table::alter()
                .table(RefreshToken::Table)
                .add_column(string_len_null(RefreshToken::AccessJti, KEY))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RefreshToken::Table)
                .add_column(big_integer_null(RefreshToken::AccessExpiresAt))
                .to_owned(),
        )
        .await?;

        let existing = Query::select()
            .column(RefreshToken::FamilyId)
            .expr(Expr::col(RefreshToken::ClientId).min())
            .expr(Expr::col(RefreshToken::OwnerId).min())
            .expr(Expr::col(RefreshToken::CreatedAt).min())
            .expr(Expr::col(RefreshToken::ExpiresAt).max())
            .expr(Expr::col(RefreshToken::RevokedAt).max())
            .from(RefreshToken::Table)
            .group_by_col(RefreshToken::FamilyId)
            .to_owned();
        let backfill = Query::insert()
            .into_table(RefreshTokenFamily::Table)
            .columns([
                RefreshTokenFamily::FamilyId,
                RefreshTokenFamily::ClientId,
                RefreshTokenFamily::OwnerId,
                RefreshTokenFamily::CreatedAt,
                RefreshTokenFamily::ExpiresAt,
                RefreshTokenFamily::RevokedAt,
            ])
            .select_from(existing)
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        m.exec_stmt(backfill).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [RefreshToken::AccessJti, RefreshToken::AccessExpiresAt] {
            m.alter_table(
                Table::alter()
                    .table(RefreshToken::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        m.drop_table(
            Table::drop()
                .table(RefreshTokenFamily::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
