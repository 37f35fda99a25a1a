//! Sign-in states at the authorization endpoint are bound to the browser that started them: a
//! keyed hash of a short-lived cookie, so that a WeChat callback link made by someone else does
//! not sign a victim's browser into the attacker's account (login CSRF).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AuthState::Table)
                .add_column(string_len_null(AuthState::BrowserHash, 128))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AuthState::Table)
                .drop_column(AuthState::BrowserHash)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum AuthState {
    Table,
    BrowserHash,
}
