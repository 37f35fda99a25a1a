//! Resource indicators (RFC 8707, issue 16 §4): the `resource` table of protected APIs a client
//! may ask tokens for, by identifier (an absolute URI without a fragment), with a display name
//! and the scopes each accepts; and `oauth_client.resources`, the identifiers a client may ask
//! for (newline-separated; none when NULL).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Resource {
    Table,
    Identifier,
    DisplayName,
    Scopes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    Resources,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Resource::Table)
                .if_not_exists()
                // 255 characters: MySQL indexes no longer VARCHAR key under utf8mb4.
                .col(string_len(Resource::Identifier, 255).primary_key())
                .col(string_len_null(Resource::DisplayName, 128))
                .col(text(Resource::Scopes))
                .col(big_integer(Resource::CreatedAt))
                .col(big_integer(Resource::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(text_null(OauthClient::Resources))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .drop_column(OauthClient::Resources)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(Resource::Table).to_owned())
            .await
    }
}
