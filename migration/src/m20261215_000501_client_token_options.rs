//! Two client settings for what the token endpoint returns (issue 16):
//! - `id_token_signed_response_alg`: the algorithm the client's ID tokens are signed with (`ES256`
//!   or `RS256`, OIDC Dynamic Client Registration's name); `NULL` takes the server's default;
//! - `seed_fields`: the token response also carries the seed's user fields (`tenant_id`, …), for
//!   front ends that read them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    IdTokenSignedResponseAlg,
    SeedFields,
}

/// Every added column. SQLite's ALTER TABLE adds one column per statement.
fn columns() -> Vec<ColumnDef> {
    vec![
        string_len_null(OauthClient::IdTokenSignedResponseAlg, 16),
        ColumnDef::new(OauthClient::SeedFields)
            .boolean()
            .not_null()
            .default(false)
            .to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for mut column in columns() {
            m.alter_table(
                Table::alter()
                    .table(OauthClient::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in columns() {
            m.alter_table(
                Table::alter()
                    .table(OauthClient::Table)
                    .drop_column(column.get_column_name())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
