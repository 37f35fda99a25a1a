//! Expired rows are swept periodically (`wxauth::janitor`): index every table's `expires_at` so
//! that the sweep does not scan the table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table) pairs; every table has an `expires_at` column.
const INDEXES: &[(&str, &str)] = &[
    ("ix_login_ticket_expires_at", "login_ticket"),
    ("ix_mini_session_expires_at", "mini_session"),
    ("ix_refresh_token_expires_at", "refresh_token"),
    ("ix_revoked_access_token_expires_at", "revoked_access_token"),
    ("ix_authorization_code_expires_at", "authorization_code"),
    ("ix_browser_session_expires_at", "browser_session"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in INDEXES {
            m.create_index(
                Index::create()
                    .name(*name)
                    .table(Alias::new(*table))
                    .col(Alias::new("expires_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in INDEXES {
            m.drop_index(
                Index::drop()
                    .name(*name)
                    .table(Alias::new(*table))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
