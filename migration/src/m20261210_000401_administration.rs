//! What administration needs of the schema (issue 14):
//! - `flow_user.disabled_at`: a disabled account gets no tokens and cannot refresh;
//! - `oauth_client.previous_secret_hash` / `previous_secret_expires_at`: after a rotation the old
//!   secret keeps working until the overlap ends; `display_name` and `logo_url` for people;
//! - `signing_key.activates_at`: a staged key is published first and signs only from this instant.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FlowUser {
    Table,
    DisabledAt,
}

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    PreviousSecretHash,
    PreviousSecretExpiresAt,
    DisplayName,
    LogoUrl,
}

#[derive(DeriveIden)]
enum SigningKey {
    Table,
    ActivatesAt,
}

/// Every added column, as (table, column definition). SQLite's ALTER TABLE adds one column per
/// statement, so each is its own statement on every backend.
fn columns() -> Vec<(DynIden, ColumnDef)> {
    vec![
        (
            FlowUser::Table.into_iden(),
            big_integer_null(FlowUser::DisabledAt),
        ),
        (
            OauthClient::Table.into_iden(),
            string_len_null(OauthClient::PreviousSecretHash, 128),
        ),
        (
            OauthClient::Table.into_iden(),
            big_integer_null(OauthClient::PreviousSecretExpiresAt),
        ),
        (
            OauthClient::Table.into_iden(),
            string_len_null(OauthClient::DisplayName, 128),
        ),
        (
            OauthClient::Table.into_iden(),
            text_null(OauthClient::LogoUrl),
        ),
        (
            SigningKey::Table.into_iden(),
            big_integer_null(SigningKey::ActivatesAt),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, mut column) in columns() {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in columns() {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .drop_column(column.get_column_name())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
