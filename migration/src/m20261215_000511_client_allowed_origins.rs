//! `allowed_origins` on `oauth_client` (issue 16 §1): the web origins, beyond those of its
//! redirect URIs, from which a browser app of this client may call the token, userinfo and
//! revocation endpoints (CORS). Newline-separated serialized origins (`https://app.example.com`);
//! NULL for none, so existing rows need no default (MySQL gives TEXT columns none).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    AllowedOrigins,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(ColumnDef::new(OauthClient::AllowedOrigins).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .drop_column(OauthClient::AllowedOrigins)
                .to_owned(),
        )
        .await
    }
}
