//! Two client settings: `introspect` marks a client as a resource server, the only kind that may
//! introspect other clients' tokens or ask whether a unionid has an account; and
//! `refresh_family_ttl`, the absolute lifetime of the refresh-token families issued to the client
//! (30 days unless set).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The default family lifetime (seconds): 30 days.
const DEFAULT_FAMILY_TTL: i64 = 30 * 24 * 3600;

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    Introspect,
    RefreshFamilyTtl,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(
                    ColumnDef::new(OauthClient::Introspect)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(
                    ColumnDef::new(OauthClient::RefreshFamilyTtl)
                        .big_integer()
                        .not_null()
                        .default(DEFAULT_FAMILY_TTL),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [OauthClient::Introspect, OauthClient::RefreshFamilyTtl] {
            m.alter_table(
                Table::alter()
                    .table(OauthClient::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
