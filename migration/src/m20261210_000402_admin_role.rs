//! The admin role (issue 14): which accounts may sign in to the console at `/admin`. One row per
//! admin account, with when and by whom the role was granted. Revoking the role deletes the row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AdminRole {
    Table,
    AccountId,
    GrantedAt,
    GrantedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AdminRole::Table)
                .if_not_exists()
                .col(big_integer(AdminRole::AccountId).primary_key())
                .col(big_integer(AdminRole::GrantedAt))
                .col(string_len(AdminRole::GrantedBy, 128))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AdminRole::Table).to_owned())
            .await
    }
}
