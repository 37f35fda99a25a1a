//! What a client registers for logout (OpenID Connect RP-Initiated and Back-Channel Logout 1.0):
//! `post_logout_redirect_uris` (newline-separated, exact match; NULL for none), and
//! `backchannel_logout_uri` with `backchannel_logout_session_required`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    PostLogoutRedirectUris,
    BackchannelLogoutUri,
    BackchannelLogoutSessionRequired,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time. The text
        // columns are nullable: MySQL gives a TEXT column no default.
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(
                    ColumnDef::new(OauthClient::PostLogoutRedirectUris)
                        .text()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(
                    ColumnDef::new(OauthClient::BackchannelLogoutUri)
                        .text()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(
                    ColumnDef::new(OauthClient::BackchannelLogoutSessionRequired)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            OauthClient::PostLogoutRedirectUris,
            OauthClient::BackchannelLogoutUri,
            OauthClient::BackchannelLogoutSessionRequired,
        ] {
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
